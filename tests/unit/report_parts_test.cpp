// The parts of report.html (report/parts.hpp) on their own, from synthetic inputs: the
// LaTeX → MathML converter, the SVG charts and the HTML sections of a hand-built Run.
// report_test.cpp checks the whole page and the formulas of every preset and term.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "evoopt/common/error.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/report/parts.hpp"
#include "evoopt/report/report.hpp"

using namespace evoopt;
using report::BarValue;
using report::Series;

namespace {

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

// Whether x[i..] is an entity the parts write (&lt; &gt; &amp; &quot; &#x…; &#…;).
bool entity_at(const std::string& x, std::size_t i) {
  const auto semi = x.find(';', i);
  if (semi == std::string::npos) return false;
  const std::string e = x.substr(i + 1, semi - i - 1);
  if (e == "lt" || e == "gt" || e == "amp" || e == "quot") return true;
  if (e.size() > 2 && e[0] == '#' && e[1] == 'x') return e.find_first_not_of("0123456789abcdefABCDEF", 2) == std::string::npos;
  return e.size() > 1 && e[0] == '#' && e.find_first_not_of("0123456789", 1) == std::string::npos;
}

// "" when `x` is well-formed XML: every tag closed in order, attribute values in double
// quotes, and '<', '>' and '&' only as markup or entities (the parts escape '>' too); else
// what is wrong and where.
std::string xml_problem(const std::string& x) {
  std::vector<std::string> open;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const char c = x[i];
    if (c == '&' && !entity_at(x, i)) return "bad entity at " + std::to_string(i);
    if (c == '>') return "stray '>' at " + std::to_string(i);
    if (c != '<') continue;
    const bool closing = i + 1 < x.size() && x[i + 1] == '/';
    const std::size_t start = i + (closing ? 2 : 1);
    const std::size_t name_end = x.find_first_of(" />", start);
    if (name_end == std::string::npos || name_end == start) return "bad tag at " + std::to_string(i);
    const std::string name = x.substr(start, name_end - start);
    std::size_t k = name_end;
    bool quoted = false;
    for (; k < x.size(); ++k) {
      const char a = x[k];
      if (a == '"') {
        quoted = !quoted;
      } else if (a == '&') {
        if (!entity_at(x, k)) return "bad entity in <" + name + "> at " + std::to_string(k);
      } else if (a == '<') {
        return "'<' inside <" + name + "> at " + std::to_string(k);
      } else if (a == '>' && !quoted) {
        break;
      } else if (a == '>') {
        return "'>' in an attribute of <" + name + "> at " + std::to_string(k);
      }
    }
    if (k == x.size()) return "unclosed <" + name + ">";
    if (closing) {
      if (open.empty() || open.back() != name) return "</" + name + "> closes " + (open.empty() ? "nothing" : "<" + open.back() + ">");
      open.pop_back();
    } else if (x[k - 1] != '/') {
      open.push_back(name);
    }
    i = k;
  }
  return open.empty() ? "" : "unclosed <" + open.back() + ">";
}

// Every <svg>…</svg> in an HTML fragment.
std::vector<std::string> svgs(const std::string& html) {
  std::vector<std::string> out;
  for (auto p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p + 1)) {
    const auto end = html.find("</svg>", p);
    out.push_back(html.substr(p, end == std::string::npos ? std::string::npos : end + 6 - p));
  }
  return out;
}

// The <svg> element with data-chart="id" in `html` ("" when there is none).
std::string chart(const std::string& html, const std::string& id) {
  for (const auto& s : svgs(html))
    if (has(s.substr(0, s.find('>')), "data-chart=\"" + id + "\"")) return s;
  return "";
}

}  // namespace

TEST(ReportParts, TheXmlCheckFindsBrokenMarkup) {
  EXPECT_EQ(xml_problem("<svg a=\"1\"><g><circle r=\"0\"/></g><text>a &amp; b&#x2212;</text></svg>"), "");
  for (const char* bad : {"<svg><g></svg>", "<svg>", "<svg><text>a & b</text></svg>", "<svg><text>a > b</text></svg>", "<svg a=\"<\"></svg>", "</g>"})
    EXPECT_NE(xml_problem(bad), "") << bad;
}

TEST(ReportParts, EscapeCoversTheMarkupCharacters) {
  EXPECT_EQ(report::esc("<a href=\"x\">&</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
  EXPECT_EQ(report::esc("plain ± η"), "plain ± η");
}

// ------------------------------------------------------------------ LaTeX → MathML

TEST(ReportParts, MathmlOfFractionsRootsAndScripts) {
  EXPECT_EQ(report::latex_to_mathml("\\frac{a}{b}"),
            "<math display=\"block\"><mrow><mfrac><mrow><mi>a</mi></mrow><mrow><mi>b</mi></mrow></mfrac></mrow></math>");
  EXPECT_EQ(report::latex_to_mathml("x_t^2", false),
            "<math><mrow><msubsup><mi>x</mi><mrow><mi>t</mi></mrow><mrow><mn>2</mn></mrow></msubsup></mrow></math>");
  EXPECT_EQ(report::latex_to_mathml("\\sqrt{x+1}", false), "<math><mrow><msqrt><mi>x</mi><mo>+</mo><mn>1</mn></msqrt></mrow></math>");
  EXPECT_EQ(report::latex_to_mathml("m^{(0.9)}", false),
            "<math><mrow><msup><mi>m</mi><mrow><mo>(</mo><mn>0.9</mn><mo>)</mo></mrow></msup></mrow></math>");
  // A one-token argument needs no braces; a group is an <mrow>.
  EXPECT_TRUE(has(report::latex_to_mathml("\\dfrac1{2 v}"), "<mfrac><mrow><mn>1</mn></mrow><mrow><mn>2</mn><mi>v</mi></mrow></mfrac>"));
  EXPECT_TRUE(has(report::latex_to_mathml("\\hat{m}"), "<mover accent=\"true\"><mrow><mi>m</mi></mrow><mo>^</mo></mover>"));
}

TEST(ReportParts, MathmlOfNamesLettersOperatorsAndDelimiters) {
  auto inner = [](const std::string& latex) {
    const std::string m = report::latex_to_mathml(latex, false);
    return m.substr(12, m.size() - 12 - 14);  // without <math><mrow> … </mrow></math>
  };
  EXPECT_EQ(inner("\\operatorname{clip}(g)"), "<mi>clip</mi><mo>&#x2061;</mo><mo>(</mo><mi>g</mi><mo>)</mo>");
  EXPECT_EQ(inner("\\max(a,b)"), "<mi>max</mi><mo>&#x2061;</mo><mo>(</mo><mi>a</mi><mo>,</mo><mi>b</mi><mo>)</mo>");
  EXPECT_EQ(inner("\\eta \\cdot \\nabla - \\lambda"), "<mi>&#x3B7;</mi><mo>&#x22C5;</mo><mi>&#x2207;</mi><mo>&#x2212;</mo><mi>&#x3BB;</mi>");
  EXPECT_EQ(inner("\\left\\lVert g \\right\\rVert"), "<mrow><mo>&#x2016;</mo><mi>g</mi><mo>&#x2016;</mo></mrow>");
  EXPECT_EQ(inner("\\left. x \\right)"), "<mrow><mi>x</mi><mo stretchy=\"true\">)</mo></mrow>");
  EXPECT_EQ(inner("a\\,b\\!c\\quad d"), "<mi>a</mi><mspace width=\"0.17em\"/><mi>b</mi><mi>c</mi><mspace width=\"1em\"/><mi>d</mi>");
  // Text and comparison signs are escaped.
  EXPECT_EQ(inner("a < b \\text{if x & y}"), "<mi>a</mi><mo>&lt;</mo><mi>b</mi><mtext>if x &amp; y</mtext>");
  EXPECT_EQ(inner("\\operatorname{a<b}"), "<mi>a&lt;b</mi><mo>&#x2061;</mo>");
  // Braces inside \text group, as in LaTeX: the text runs to the matching brace.
  EXPECT_EQ(inner("\\text{a {b} c} + d"), "<mtext>a b c</mtext><mo>+</mo><mi>d</mi>");
  for (const char* latex : {"\\frac{g_t}{\\sqrt{\\hat{v}_t}+\\epsilon}", "\\left(1-\\beta_1^{t}\\right) \\odot \\operatorname{sign}(m)", "a < b"})
    EXPECT_EQ(xml_problem(report::latex_to_mathml(latex)), "") << latex;
}

TEST(ReportParts, MathmlRefusesWhatItDoesNotKnowAndSaysWhere) {
  try {
    report::latex_to_mathml("a + \\omega");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "unsupported command '\\omega' at 10")) << e.what();
  }
  for (const char* bad : {"\\sqrt", "x^", "\\left( a", "\\text a", "\\text{a {b}", "a \\right)", "a $ b"})
    EXPECT_THROW(report::latex_to_mathml(bad), Error) << bad;
  // A second script of the same kind is LaTeX's "double subscript" error, not a silent overwrite.
  for (const char* bad : {"x_a_b", "x^a^b", "x_a^b_c"}) {
    try {
      report::latex_to_mathml(bad);
      ADD_FAILURE() << bad << ": no error";
    } catch (const Error& e) {
      EXPECT_TRUE(has(e.what(), "double s")) << e.what();
    }
  }
  EXPECT_TRUE(has(report::latex_to_mathml("x_a^b"), "<msubsup><mi>x</mi><mrow><mi>a</mi></mrow><mrow><mi>b</mi></mrow></msubsup>"));
}

// ------------------------------------------------------------------ charts

TEST(ReportParts, TicksAreRoundAndCoverTheRange) {
  EXPECT_EQ(report::ticks(0, 100), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  const auto t = report::ticks(-1, 1);
  ASSERT_EQ(t.size(), 5u);
  EXPECT_EQ(t[2], 0.0);  // exactly zero, not rounding noise
  EXPECT_DOUBLE_EQ(t[0], -1.0);
  EXPECT_DOUBLE_EQ(t[4], 1.0);
  EXPECT_DOUBLE_EQ(report::ticks(5, 5).front(), 5.0);  // an empty range becomes [lo, lo + 1]
  EXPECT_EQ(report::tick_label(-1e-15), "0");
  EXPECT_EQ(report::tick_label(2.5), "2.5");
  EXPECT_EQ(report::color(0), report::color(12));  // the palette cycles
  EXPECT_NE(report::color(0), report::color(1));
}

TEST(ReportParts, LineChartHasASeriesPerLineAMarkPerFinitePointAndEscapedLabels) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<Series> series = {{"a<&>\"b", {{0, 0.1}, {1, 0.5}, {2, nan}}}, {"plain", {{0, 0.2}, {1, 0.3}, {2, 0.4}}, true}};
  const report::Band band{"mean ± std", {0, 1, 2}, {0, 0.1, 0.2}, {0.3, 0.4, 0.5}};
  const std::string svg = report::line_chart("fit", "Fit <1> & more", "generation", "fitness & such", series, {band});
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_EQ(svg.rfind("<svg class=\"chart\" data-chart=\"fit\" data-points=\"5\" ", 0), 0u) << svg;
  EXPECT_EQ(count(svg, "class=\"pt\""), 5);  // the NaN is left out
  EXPECT_EQ(count(svg, "<polyline"), 2);
  EXPECT_EQ(count(svg, "<polygon"), 1);
  EXPECT_EQ(count(svg, "stroke-dasharray"), 2);  // the dashed series' line and its legend
  EXPECT_EQ(count(svg, "class=\"legend\""), 3);  // two series and the band
  EXPECT_TRUE(has(svg, "class=\"legend\">a&lt;&amp;&gt;&quot;b</text>")) << svg;
  EXPECT_TRUE(has(svg, "<title>a&lt;&amp;&gt;&quot;b: 1, 0.5</title>")) << svg;
  EXPECT_TRUE(has(svg, "class=\"legend\">mean ± std</text>")) << svg;
  EXPECT_TRUE(has(svg, "aria-label=\"Fit &lt;1&gt; &amp; more\"")) << svg;
  EXPECT_TRUE(has(svg, "class=\"ylabel\">fitness &amp; such</text>")) << svg;
  EXPECT_FALSE(has(svg, "a<&>"));
}

TEST(ReportParts, LineChartCountsTheVerticesOfACurveWithoutMarks) {
  const Series dense{"dense", {{1, 0.1}, {2, 0.2}, {3, 0.3}, {4, 0.4}}, false, false};
  const std::string svg = report::line_chart("dense", "Dense", "step", "y", {dense});
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_TRUE(has(svg, "data-points=\"4\""));
  EXPECT_TRUE(has(svg, "<g class=\"pts\" data-series=\"dense\">"));
  EXPECT_EQ(count(svg, "r=\"0\""), 4);
  EXPECT_EQ(count(svg, "r=\"2.6\""), 0);
}

TEST(ReportParts, LineChartClampsToAFixedRangeAndLabelsWholeXTicksWhenAsked) {
  // y = 5 outside [0, 1] sits on the top edge (y = the frame's top margin, 30) but keeps its value.
  const std::string clamped = report::line_chart("c", "C", "x", "y", {{"s", {{0, 5.0}, {1, 0.5}}}}, {}, std::pair{0.0, 1.0});
  EXPECT_TRUE(has(clamped, "cx=\"60.0\" cy=\"30.0\" r=\"2.6\" fill=\"#1f77b4\" data-x=\"0\" data-y=\"5\"")) << clamped;
  const Series s{"s", {{0, 0.1}, {1, 0.2}}};
  EXPECT_TRUE(has(report::line_chart("x", "X", "x", "y", {s}), "class=\"xtick\">0.6</text>"));
  const std::string whole = report::line_chart("x", "X", "x", "y", {s}, {}, std::nullopt, true);
  EXPECT_FALSE(has(whole, "class=\"xtick\">0.6</text>")) << whole;
  EXPECT_EQ(count(whole, "class=\"xtick\""), 2);  // 0 and 1
}

TEST(ReportParts, AChartWithoutDataIsANote) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(report::line_chart("e", "Empty <x>", "x", "y", {{"s", {{0, nan}}}}), "<p class=\"note\">Empty &lt;x&gt;: no data yet.</p>");
  EXPECT_EQ(report::line_chart("e", "None", "x", "y", {}), "<p class=\"note\">None: no data yet.</p>");
  EXPECT_EQ(report::bar_chart("b", "Bars", "y", {"g"}, {"m"}, {{BarValue{}}}), "<p class=\"note\">Bars: no data yet.</p>");
}

TEST(ReportParts, BarChartHasABarAndErrorBarPerPresentValueAndEscapedLabels) {
  const std::vector<std::string> groups = {"mnist", "<&>"};
  const std::vector<std::string> methods = {"evolved", "adam \"tuned\"", "sgd"};
  const std::vector<std::vector<BarValue>> v = {{{0.9, 0.01, true}, {0.95, 0.02, true}, {}}, {{0.5, 0.05, true}, {0.6, 0, true}, {0.4, 0.1, true}}};
  const std::string svg = report::bar_chart("bars", "Test <fitness>", "test fitness", groups, methods, v);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_EQ(svg.rfind("<svg class=\"chart\" data-chart=\"bars\" data-points=\"5\" ", 0), 0u) << svg;
  EXPECT_EQ(count(svg, "<rect class=\"pt\""), 5);
  EXPECT_EQ(count(svg, "class=\"err\""), 15);    // a bar and two whiskers per value
  EXPECT_EQ(count(svg, "class=\"legend\""), 3);  // a key per method
  EXPECT_EQ(count(svg, "data-method=\"sgd\""), 1);
  EXPECT_TRUE(has(svg, "data-group=\"mnist\" data-method=\"adam &quot;tuned&quot;\" data-y=\"0.95\" data-ci=\"0.02\"")) << svg;
  EXPECT_TRUE(has(svg, "class=\"xtick\">&lt;&amp;&gt;</text>")) << svg;
  EXPECT_TRUE(has(svg, "<title>sgd / &lt;&amp;&gt;: 0.4000 ± 0.1000 (95% CI of the mean)</title>")) << svg;
  EXPECT_FALSE(has(svg, "<&>"));
}

// ------------------------------------------------------------------ sections

namespace {

// Two search tasks, one with a label that needs escaping; no files behind it.
report::Run base_run() {
  report::Run r;
  r.dir = "/runs/a&b";
  r.tasks = {"mnist", "cifar10"};
  r.ex.tasks = r.tasks;
  r.ex.transfer_tasks = {};
  r.labels = {{"mnist", "mnist"}, {"cifar10", "cifar10 (JPEG & co)"}};
  r.data = {{"mnist", {"https://example.org/mnist", "official"}}, {"cifar10", {"mirror", "cifar10 (JPEG mirror, lossy)"}}};
  return r;
}

ga::GenerationRecord generation(int g, double best, std::map<std::string, double> per_task, std::map<std::string, double> terms) {
  ga::GenerationRecord r;
  r.generation = g;
  r.best = best;
  r.mean = best - 0.1;
  r.median = best - 0.05;
  r.stddev = 0.05;
  r.best_per_task = std::move(per_task);
  r.term_share = std::move(terms);
  r.gene_distance = 0.3;
  r.diversity = 1.0;
  r.evaluations = 4;
  r.seconds = 1.5;
  return r;
}

ga::Individual individual(std::uint64_t id, int g, const std::string& origin, std::vector<std::uint64_t> parents,
                          std::vector<std::string> mutations = {}) {
  ga::Individual i;
  i.id = id;
  i.generation = g;
  i.genome = genome::preset("adam");
  i.origin = origin;
  i.parents = std::move(parents);
  i.mutations = std::move(mutations);
  i.fitness = 0.5 + 0.01 * static_cast<double>(id);
  return i;
}

report::Best best(std::uint64_t id) {
  report::Best b;
  b.genome = genome::preset("adam").canonical();
  b.hash = "evolvedhash";
  b.id = id;
  b.generation = 2;
  b.validation_fitness = 0.8123;
  b.validation_per_task = {{"mnist", 0.9}, {"cifar10", 0.7}};
  return b;
}

}  // namespace

TEST(ReportParts, SearchSectionChartsEveryGenerationAndTabulatesIt) {
  report::Run r = base_run();
  EXPECT_EQ(report::section_search(r), "<p class=\"note\">No generation has finished yet.</p>");
  r.history = {generation(0, 0.5, {{"mnist", 0.6}, {"cifar10", 0.4}}, {}), generation(1, 0.6, {{"mnist", 0.7}}, {{"momentum", 0.5}, {"sign", 0.25}}),
               generation(2, 0.7, {{"mnist", 0.8}, {"cifar10", 0.6}}, {{"momentum", 0.75}})};
  const std::string html = report::section_search(r);
  for (const auto& s : svgs(html)) EXPECT_EQ(xml_problem(s), "") << s;
  EXPECT_TRUE(has(chart(html, "fitness"), "data-points=\"9\""));   // best, mean, median × 3
  EXPECT_TRUE(has(chart(html, "per-task"), "data-points=\"5\""));  // cifar10 misses generation 1
  EXPECT_TRUE(has(chart(html, "terms"), "data-points=\"6\""));     // 2 terms × 3, absent = 0
  EXPECT_TRUE(has(chart(html, "diversity"), "data-points=\"6\""));
  EXPECT_TRUE(has(chart(html, "per-task"), "class=\"legend\">cifar10 (JPEG &amp; co)</text>"));
  EXPECT_TRUE(has(html, "<th>best cifar10 (JPEG &amp; co)</th>")) << html;
  EXPECT_TRUE(has(html,
                  "<tr><td>1</td><td>0.6000</td><td>0.5000</td><td>0.5500</td><td>0.0500</td><td>0.7000</td><td>–</td><td>0.300</td><td>4</td>"
                  "<td>1.5</td></tr>"))
      << html;
  for (auto& g : r.history) g.term_share.clear();
  const std::string no_terms = report::section_search(r);
  EXPECT_TRUE(has(no_terms, "Term shares were not recorded"));
  EXPECT_EQ(chart(no_terms, "terms"), "");
}

TEST(ReportParts, TreeSectionDrawsTheWinnersAncestorsOnly) {
  report::Run r = base_run();
  r.lineage = {individual(1, 0, "seed:adam", {}), individual(2, 0, "random", {}), individual(3, 1, "crossover", {1, 2}),
               individual(4, 1, "elite", {1}), individual(5, 2, "mutation", {3}, {"beta1", "beta2", "lr"})};
  EXPECT_EQ(report::section_tree(r), "");  // no winner yet
  r.best = best(5);
  const std::string html = report::section_tree(r);
  const std::string svg = chart(html, "family-tree");
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_TRUE(has(svg, "data-points=\"4\"")) << svg;  // 5 and its ancestors 3, 1, 2
  EXPECT_EQ(count(svg, "class=\"pt node\""), 4);
  EXPECT_FALSE(has(svg, "data-id=\"4\""));
  EXPECT_EQ(count(svg, "class=\"edge\""), 3);  // 1→3, 2→3, 3→5
  EXPECT_EQ(count(svg, "r=\"8\""), 1);         // the winner's node is the larger one
  EXPECT_TRUE(has(svg, "class=\"nodesub\">mutation: beta1, be…</text>")) << svg;
  EXPECT_TRUE(has(svg, "<text x=\"290\" y=\"24\" class=\"xtick\">gen 2</text>")) << svg;
  for (const char* origin : {"seed", "random", "crossover", "mutation"})
    EXPECT_TRUE(has(html, std::string("></span>") + origin + "</span>")) << origin;
}

TEST(ReportParts, WinnerSectionShowsTheFormulaHyperparametersAndSchedule) {
  report::Run r = base_run();
  EXPECT_EQ(report::section_winner(r, 50), "<p class=\"note\">No winner yet.</p>");
  r.best = best(7);
  const std::string html = report::section_winner(r, 50);
  EXPECT_TRUE(has(html, "<p>Individual #7 of generation 2, validation fitness 0.8123 (mnist 0.9000, cifar10 (JPEG &amp; co) 0.7000).</p>")) << html;
  EXPECT_TRUE(has(html, "<div class=\"formula\"><math display=\"block\">")) << html;
  EXPECT_TRUE(has(html, "<tr><td>learning rate η</td><td>0.001</td></tr>")) << html;
  EXPECT_TRUE(has(html, "<tr><td>β1</td><td>0.9</td></tr>")) << html;
  const std::string schedule = chart(html, "schedule");
  EXPECT_EQ(xml_problem(schedule), "") << schedule;
  EXPECT_TRUE(has(schedule, "data-points=\"50\"")) << schedule;  // a vertex per step
  EXPECT_TRUE(has(html, "<code>evoopt export /runs/a&amp;b --format pytorch")) << html;
}

TEST(ReportParts, FinalSectionShowsTestAccuracyCostAndBreakEven) {
  report::Run r = base_run();
  EXPECT_EQ(report::section_final(r), "");
  report::Summary s;
  s.final_test["mnist"] = {{0.96, 0.98}, 0.97, 0.01};
  s.overall_mean = 0.97;
  s.overall_std = 0.01;
  s.search_runs = 12;
  s.search_steps = 1200;
  s.search_train_seconds = 34.4;
  s.other_runs = 6;
  s.other_steps = 600;
  s.wall_seconds = 50;
  s.cpu_seconds = 80;
  s.break_even = report::BreakEven{"adam", "adam needs 4× the steps & more", 0.7, 0.8, {{2, 0.75}, {4, 0.79}}};
  r.summary = s;
  const std::string html = report::section_final(r);
  EXPECT_TRUE(has(html, "<tr><td>mnist</td><td>0.9700 ± 0.0100</td><td>0.9600, 0.9800</td></tr>")) << html;
  EXPECT_FALSE(has(html, "<tr><td>cifar10"));  // no final test for it
  EXPECT_TRUE(has(html, "<tr><td><b>overall</b></td><td><b>0.9700 ± 0.0100</b></td><td></td></tr></table>")) << html;
  EXPECT_TRUE(has(html,
                  "Cost: 12 search training runs (1200 steps, 34 s of single-core training), 6 further runs (600 steps); the process and its "
                  "workers: 50 s wall, 80 s CPU."))
      << html;
  EXPECT_TRUE(has(html, "<p>Break-even: adam needs 4× the steps &amp; more.</p>")) << html;
  const std::string be = chart(html, "break-even");
  EXPECT_EQ(xml_problem(be), "") << be;
  EXPECT_TRUE(has(be, "data-points=\"4\"")) << be;  // the baseline at 1×, 2×, 4× and the winner at 1×
  EXPECT_TRUE(has(be, "class=\"legend\">adam with more steps</text>")) << be;
}

TEST(ReportParts, ProvenanceSectionWarnsOfLossyData) {
  const std::string html = report::section_provenance(base_run());
  EXPECT_TRUE(has(html, "<tr><td>mnist</td><td>https://example.org/mnist</td><td>official</td></tr>")) << html;
  EXPECT_TRUE(has(html, "<tr><td>cifar10 (JPEG &amp; co)</td><td>mirror</td><td>cifar10 (JPEG mirror, lossy) <span class=\"warn\">lossy:")) << html;
  EXPECT_EQ(count(html, "class=\"warn\""), 1);
}

namespace {

report::Stats stats(double mean, std::vector<double> values, std::optional<report::Paired> diff = std::nullopt) {
  report::Stats s;
  s.mean = mean;
  s.std = 0.01;
  s.values = std::move(values);
  s.evolved_minus_this = diff;
  return s;
}

report::Method method(const std::string& name, experiment::MethodKind kind, double val, std::map<std::string, report::Stats> test,
                      report::Stats overall) {
  report::Method m;
  m.name = name;
  m.hash = name == "evolved" ? "evolvedhash" : name + "-hash";
  m.kind = kind;
  m.val_fitness = val;
  m.test = std::move(test);
  m.overall = std::move(overall);
  return m;
}

// A comparison where a tuned Adam beats the evolved optimizer on mnist (significantly) and
// overall (not significantly), and the evolved one beats SGD.
report::Comparison baseline_wins() {
  using experiment::MethodKind;
  report::Comparison c;
  c.baselines = {{"adam", "constant", 0.001, 0, 0.85, 24}, {"sgd", "the winner's schedule + clipping", 0.1, 1e-4, 0.70, 24}};
  report::Horizon h;
  h.steps = 100;
  h.methods = {
      method("evolved", MethodKind::Evolved, 0.80, {{"mnist", stats(0.90, {0.89, 0.90, 0.91})}, {"cifar10", stats(0.40, {0.39, 0.40, 0.41})}},
             stats(0.65, {0.64, 0.65, 0.66})),
      method("adam (tuned)", MethodKind::Baseline, 0.85, {{"mnist", stats(0.95, {0.94, 0.95, 0.96}, report::Paired{-0.05, -0.07, -0.03, true})}},
             stats(0.67, {0.66, 0.67, 0.68}, report::Paired{-0.02, -0.06, 0.02, false})),
      method("sgd (tuned)", MethodKind::Baseline, 0.70,
             {{"mnist", stats(0.80, {0.79, 0.80, 0.81}, report::Paired{0.1, 0.08, 0.12, true})}, {"cifar10", stats(0.30, {0.3, 0.3, 0.3})}},
             stats(0.55, {0.54, 0.55, 0.56}, report::Paired{0.1, 0.05, 0.15, true}))};
  report::Horizon longer;
  longer.steps = 200;
  longer.methods = {method("evolved", MethodKind::Evolved, 0.8, {}, stats(0.7, {0.7})),
                    method("adam (tuned)", MethodKind::Baseline, 0.85, {}, stats(0.72, {0.72}))};
  c.horizons = {h, longer};
  return c;
}

std::pair<eval::RunKey, train::RunResult> test_run(const std::string& hash, const std::string& task, std::int64_t steps, double loss) {
  eval::RunKey k;
  k.genome = hash;
  k.task = task;
  k.split = "test";
  k.steps = steps;
  train::RunResult result;
  result.loss_curve = {{10, loss, loss}, {20, loss / 2, loss / 2}};
  return {k, result};
}

}  // namespace

TEST(ReportParts, ComparisonSectionWithoutAComparisonSaysWhy) {
  report::Run r = base_run();
  r.ex.compare.enabled = false;
  EXPECT_EQ(report::section_comparison(r, 100), "<h2 id=\"comparison\">Comparison</h2><p class=\"note\">Not run (--no-compare).</p>");
  r.ex.compare.enabled = true;
  EXPECT_EQ(report::section_comparison(r, 100), "<h2 id=\"comparison\">Comparison</h2><p class=\"note\">Not run yet.</p>");
}

TEST(ReportParts, ComparisonSectionShowsWhereATunedBaselineBeatsTheEvolvedOptimizer) {
  report::Run r = base_run();
  r.best = best(5);
  r.comparison = baseline_wins();
  r.journal = {test_run("evolvedhash", "mnist", 100, 2.0), test_run("evolvedhash", "mnist", 100, 4.0),
               test_run("adam (tuned)-hash", "mnist", 100, 1.0), test_run("adam (tuned)-hash", "mnist", 200, 9.0),
               test_run("evolvedhash", "cifar10", 200, 9.0)};
  const std::string html = report::section_comparison(r, 100);
  for (const auto& s : svgs(html)) EXPECT_EQ(xml_problem(s), "") << s;
  EXPECT_TRUE(has(html, "<p>Strong protocol:")) << html;
  EXPECT_TRUE(has(html, "<tr><td>adam</td><td>lr 0.001, weight decay off, constant</td><td>0.8500</td><td>24</td></tr>")) << html;
  EXPECT_TRUE(has(html, "<tr><td>sgd</td><td>lr 0.1, weight decay 0.0001, the winner's schedule + clipping</td><td>0.7000</td><td>24</td></tr>"))
      << html;
  // Bars: every present (method, task) and each method's overall; adam has no cifar10 result.
  const std::string bars = chart(html, "test-bars");
  EXPECT_TRUE(has(bars, "data-points=\"8\"")) << bars;
  EXPECT_TRUE(has(bars, "data-group=\"mnist\" data-method=\"adam (tuned)\" data-y=\"0.95\"")) << bars;
  EXPECT_TRUE(has(bars, "data-group=\"mnist\" data-method=\"evolved\" data-y=\"0.9\"")) << bars;
  EXPECT_TRUE(has(bars, "data-group=\"cifar10 (JPEG &amp; co)\"")) << bars;
  // The table: where the baseline wins the paired difference evolved − this is negative, with
  // a star where its interval excludes 0; where the evolved optimizer wins it is positive.
  EXPECT_TRUE(has(html, "<td>0.9500 ± 0.0100<br><span class=\"diff\">evolved − this: -0.0500 [-0.0700, -0.0300] *</span></td><td>–</td>")) << html;
  EXPECT_TRUE(has(html, "<td>0.6700 ± 0.0100<br><span class=\"diff\">evolved − this: -0.0200 [-0.0600, +0.0200]</span></td>")) << html;
  EXPECT_TRUE(has(html, "evolved − this: +0.1000 [+0.0800, +0.1200] *")) << html;
  EXPECT_TRUE(has(html, "<tr><td>evolved</td><td>0.9000 ± 0.0100<br><span class=\"diff\"></span></td>")) << html;  // no difference with itself
  // The longer horizon gets its own chart id.
  EXPECT_TRUE(has(html, "<h3>200 steps (longer horizon)</h3>")) << html;
  EXPECT_TRUE(has(chart(html, "test-bars-200"), "data-points=\"2\""));
  // Loss curves against the baseline with the best validation fitness (adam), at `steps` only.
  EXPECT_TRUE(has(html, "<h3>Training loss: the winner against adam (tuned)</h3>")) << html;
  const std::string loss = chart(html, "loss-mnist");
  EXPECT_TRUE(has(loss, "data-points=\"4\"")) << loss;  // two steps for each of the two methods
  EXPECT_TRUE(has(loss, "class=\"legend\">adam (tuned)</text>")) << loss;
  EXPECT_TRUE(has(html, "<p class=\"note\">cifar10 (JPEG &amp; co): no data yet.</p>")) << html;  // no test run at 100 steps
  EXPECT_FALSE(has(html, "id=\"transfer\""));
  EXPECT_FALSE(has(html, "Where the gain comes from"));
}

TEST(ReportParts, ComparisonSectionSaysWhatItCannotShow) {
  report::Run r = base_run();
  r.best = best(5);
  report::Comparison c = baseline_wins();
  // An attribution baseline that is not a method of the first horizon: the winner's loss
  // curve alone, and a note naming the baseline.
  c.attribution_baseline = "lion";
  // Differences comparison.json holds as null (read as NaN): no "+nan" in the table.
  c.horizons[0].methods[2].overall.evolved_minus_this = report::Paired{std::nan(""), std::nan(""), std::nan(""), false};
  c.horizons[0].methods[2].test["mnist"].evolved_minus_this = report::Paired{0.1, std::nan(""), std::nan(""), false};
  r.comparison = c;
  r.journal = {test_run("evolvedhash", "mnist", 100, 2.0)};
  const std::string html = report::section_comparison(r, 100);
  EXPECT_TRUE(has(html, "lion (tuned) is not among the methods of the first horizon: the winner is drawn alone.")) << html;
  EXPECT_TRUE(has(chart(html, "loss-mnist"), "data-points=\"2\"")) << html;
  EXPECT_FALSE(has(html, "+nan")) << html;
  EXPECT_FALSE(has(html, "nan]")) << html;
  EXPECT_TRUE(has(html, "evolved − this: n/a")) << html;
  EXPECT_TRUE(has(html, "evolved − this: +0.1000 [no interval]")) << html;
}

TEST(ReportParts, ComparisonSectionShowsTheSeedProtocolTransferAndAttribution) {
  report::Run r = base_run();
  report::Comparison c = baseline_wins();
  c.protocol = experiment::Protocol::Seed;
  c.transfer_tasks = std::vector<std::string>{"jargon"};
  report::Stats jargon = stats(0.2, {0.2, 0.2});
  jargon.perplexity = 5.0;
  report::Horizon t;
  t.steps = 100;
  t.methods = {method("evolved", experiment::MethodKind::Evolved, 0.8, {{"jargon", jargon}}, stats(0.2, {0.2}))};
  c.transfer = {t};
  c.attribution_baseline = "sgd";
  c.attribution_steps = 100;
  c.attribution = {{"A1: the rule", "evolved − A1", report::Paired{0.01, -0.02, 0.04, false}}};
  r.comparison = c;
  const std::string html = report::section_comparison(r, 100);
  EXPECT_TRUE(has(html, "<p class=\"warn\">Seed protocol:")) << html;
  EXPECT_TRUE(has(html, "<h3 id=\"transfer\">")) << html;
  EXPECT_TRUE(has(html, "<h3>100 steps (search horizon), held-out tasks</h3>")) << html;
  EXPECT_TRUE(has(chart(html, "transfer-bars"), "data-group=\"jargon\"")) << html;  // a task without a label is named as is
  EXPECT_TRUE(has(html, "<td>0.2000 ± 0.0100<br>perplexity 5.00<br>")) << html;
  EXPECT_TRUE(has(html, "the strongest tuned baseline B = sgd at 100 steps")) << html;
  EXPECT_TRUE(has(html, "<tr><td>A1: the rule</td><td>evolved − A1</td><td>+0.0100 [-0.0200, +0.0400]</td></tr>")) << html;
  EXPECT_FALSE(has(html, "Training loss: the winner"));  // no winner in this run
  r.best = best(5);
  EXPECT_TRUE(has(report::section_comparison(r, 100), "<h3>Training loss: the winner against sgd (tuned)</h3>"));  // the attribution's baseline
}

// The quasirandom protocol's parts of the page: its description, the evolved genome's own
// tuning row, the per-workload block, and time to target with the performance profile.
TEST(ReportParts, ComparisonSectionShowsQuasirandomTuningPerWorkloadAndTimeToTarget) {
  report::Run r = base_run();
  r.best = best(5);
  report::Comparison c = baseline_wins();
  c.protocol = experiment::Protocol::Quasirandom;
  c.evolved_tuning = report::Baseline{"evolved", "warmup 5% + cosine", 0.002, 0.0, 0.91, 48};
  c.workload_tasks = std::vector<std::string>{"mnist", "cifar10"};
  c.per_workload = {c.horizons.front()};
  experiment::TimeToTarget tt;
  tt.workloads = {"mnist", "cifar10"};
  tt.target_method = "adam (tuned)";
  tt.steps = 100;
  tt.every = 10;
  tt.target = {{"mnist", 0.9}, {"cifar10", 0.5}};
  tt.methods = {"evolved", "adam (tuned)"};
  tt.reached["evolved"] = {{"mnist", 50}, {"cifar10", std::nullopt}};
  tt.reached["adam (tuned)"] = {{"mnist", 100}, {"cifar10", 100}};
  c.time_to_target = tt;
  r.comparison = c;
  const std::string html = report::section_comparison(r, 100);
  for (const auto& s : svgs(html)) EXPECT_EQ(xml_problem(s), "") << s;
  EXPECT_TRUE(has(html, "<p>Quasirandom protocol:")) << html;
  EXPECT_TRUE(has(html, "<tr><td>evolved</td><td>lr 0.002, weight decay off, warmup 5% + cosine</td><td>0.9100</td><td>48</td></tr>")) << html;
  EXPECT_TRUE(has(html, "id=\"per-workload\"")) << html;
  EXPECT_TRUE(has(html, "<tr><td>evolved</td><td>50</td><td>–</td></tr>")) << html;
  EXPECT_TRUE(has(html, "<tr><td>adam (tuned)</td><td>100</td><td>100</td></tr>")) << html;
  // The profile: evolved is the fastest on mnist and never reaches cifar10's target (1/2 at
  // every τ); adam reaches cifar10 first and mnist within τ = 2.
  EXPECT_DOUBLE_EQ(tt.profile("evolved", 1.0), 0.5);
  EXPECT_DOUBLE_EQ(tt.profile("evolved", 4.0), 0.5);
  EXPECT_DOUBLE_EQ(tt.profile("adam (tuned)", 1.0), 0.5);
  EXPECT_DOUBLE_EQ(tt.profile("adam (tuned)", 1.95), 0.5);
  EXPECT_DOUBLE_EQ(tt.profile("adam (tuned)", 2.0), 1.0);
  const std::string profile = chart(html, "performance-profile");
  EXPECT_TRUE(has(profile, "class=\"legend\">adam (tuned)</text>")) << profile;
  EXPECT_EQ(experiment::steps_to_target({{10, 0.2}, {20, 0.6}, {30, 0.5}}, 0.55), std::optional<std::int64_t>(20));
  EXPECT_EQ(experiment::steps_to_target({{10, 0.2}}, 0.55), std::nullopt);
}
