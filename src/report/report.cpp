#include "evoopt/report/report.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/common/run_dir.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/progress.hpp"
#include "evoopt/experiment/stats.hpp"
#include "evoopt/experiment/study.hpp"
#include "evoopt/export/export.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/optim/schedule.hpp"

namespace evoopt::report {
namespace fs = std::filesystem;

// ------------------------------------------------------------------ LaTeX → MathML

namespace {

// Text for HTML and MathML content and attributes.
std::string esc(const std::string& t) {
  std::string o;
  for (char c : t) {
    if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '&')
      o += "&amp;";
    else if (c == '"')
      o += "&quot;";
    else
      o += c;
  }
  return o;
}

class LatexToMathml {
 public:
  explicit LatexToMathml(const std::string& s) : s_(s) {}
  std::string run() {
    std::string out = row(/*until_brace=*/false);
    if (pos_ < s_.size()) fail("unexpected '" + std::string(1, s_[pos_]) + "'");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const { throw Error(fmt::format("LaTeX to MathML: {} at {} in \"{}\"", what, pos_, s_)); }

  void skip_spaces() {
    while (pos_ < s_.size() && s_[pos_] == ' ') ++pos_;
  }

  // Atoms and their scripts until '}' (when inside a group), \right or the end.
  std::string row(bool until_brace) {
    std::string out;
    while (true) {
      skip_spaces();
      if (pos_ >= s_.size()) {
        if (until_brace) fail("missing '}'");
        break;
      }
      if (s_[pos_] == '}') {
        if (!until_brace) fail("unbalanced '}'");
        break;
      }
      if (s_.compare(pos_, 6, "\\right") == 0 && !std::isalpha(static_cast<unsigned char>(pos_ + 6 < s_.size() ? s_[pos_ + 6] : ' '))) break;
      out += scripted(atom());
    }
    return out;
  }

  std::string scripted(std::string base) {
    std::optional<std::string> sub, sup;
    while (true) {
      skip_spaces();
      if (pos_ < s_.size() && (s_[pos_] == '_' || s_[pos_] == '^')) {
        const char k = s_[pos_++];
        skip_spaces();
        (k == '_' ? sub : sup) = argument();
        continue;
      }
      break;
    }
    if (sub && sup) return "<msubsup>" + base + wrap(*sub) + wrap(*sup) + "</msubsup>";
    if (sub) return "<msub>" + base + wrap(*sub) + "</msub>";
    if (sup) return "<msup>" + base + wrap(*sup) + "</msup>";
    return base;
  }

  static std::string wrap(const std::string& x) { return "<mrow>" + x + "</mrow>"; }

  // A command's argument: a {group} or one token.
  std::string argument() {
    skip_spaces();
    if (pos_ >= s_.size()) fail("missing argument");
    if (s_[pos_] == '{') {
      ++pos_;
      std::string g = row(true);
      ++pos_;  // '}'
      return g;
    }
    if (s_[pos_] == '\\') return atom();
    const char c = s_[pos_++];
    if (std::isdigit(static_cast<unsigned char>(c))) return "<mn>" + std::string(1, c) + "</mn>";
    if (std::isalpha(static_cast<unsigned char>(c))) return "<mi>" + std::string(1, c) + "</mi>";
    return "<mo>" + esc(std::string(1, c)) + "</mo>";
  }

  std::string raw_group() {
    skip_spaces();
    if (pos_ >= s_.size() || s_[pos_] != '{') fail("expected '{'");
    const auto end = s_.find('}', pos_);
    if (end == std::string::npos) fail("missing '}'");
    std::string t = s_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return t;
  }

  // A delimiter after \left or \right: a character or a command (\lVert); '.' is none.
  std::string delimiter() {
    skip_spaces();
    if (pos_ >= s_.size()) fail("missing delimiter");
    if (s_[pos_] == '\\') {
      const std::string a = atom();
      return a;
    }
    const char c = s_[pos_++];
    if (c == '.') return "";
    return "<mo stretchy=\"true\">" + esc(std::string(1, c)) + "</mo>";
  }

  std::string atom() {
    const char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      std::string g = row(true);
      ++pos_;
      return wrap(g);
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      std::size_t end = pos_;
      while (end < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[end])) || s_[end] == '.')) ++end;
      std::string n = s_.substr(pos_, end - pos_);
      pos_ = end;
      return "<mn>" + n + "</mn>";
    }
    if (std::isalpha(static_cast<unsigned char>(c))) {
      ++pos_;
      return "<mi>" + std::string(1, c) + "</mi>";
    }
    if (c == '\\') return command();
    ++pos_;
    if (c == '-') return "<mo>&#x2212;</mo>";
    if (std::string("+=()[],/|<>!:;'*").find(c) != std::string::npos) return "<mo>" + esc(std::string(1, c)) + "</mo>";
    fail("unsupported character '" + std::string(1, c) + "'");
  }

  std::string command() {
    ++pos_;  // '\'
    if (pos_ >= s_.size()) fail("lone backslash");
    if (!std::isalpha(static_cast<unsigned char>(s_[pos_]))) {
      const char c = s_[pos_++];
      if (c == ',') return "<mspace width=\"0.17em\"/>";
      if (c == ';') return "<mspace width=\"0.28em\"/>";
      if (c == ' ') return "<mspace width=\"0.25em\"/>";
      if (c == '!') return "";
      if (c == '{' || c == '}') return "<mo>" + std::string(1, c) + "</mo>";
      fail("unsupported command '\\" + std::string(1, c) + "'");
    }
    std::size_t end = pos_;
    while (end < s_.size() && std::isalpha(static_cast<unsigned char>(s_[end]))) ++end;
    const std::string name = s_.substr(pos_, end - pos_);
    pos_ = end;
    static const std::map<std::string, std::string> letters = {
        {"alpha", "&#x3B1;"}, {"beta", "&#x3B2;"},  {"gamma", "&#x3B3;"},  {"delta", "&#x3B4;"},  {"epsilon", "&#x3B5;"},
        {"eta", "&#x3B7;"},   {"theta", "&#x3B8;"}, {"lambda", "&#x3BB;"}, {"mu", "&#x3BC;"},     {"pi", "&#x3C0;"},
        {"psi", "&#x3C8;"},   {"sigma", "&#x3C3;"}, {"tau", "&#x3C4;"},    {"nabla", "&#x2207;"}, {"infty", "&#x221E;"}};
    static const std::map<std::string, std::string> operators = {
        {"cdot", "&#x22C5;"},      {"odot", "&#x2299;"}, {"times", "&#xD7;"},   {"le", "&#x2264;"},    {"ge", "&#x2265;"},   {"pm", "&#xB1;"},
        {"leftarrow", "&#x2190;"}, {"to", "&#x2192;"},   {"lVert", "&#x2016;"}, {"rVert", "&#x2016;"}, {"prod", "&#x220F;"}, {"sum", "&#x2211;"}};
    static const std::set<std::string> functions = {"min", "max", "cos", "sin", "exp", "log", "sign"};
    if (auto it = letters.find(name); it != letters.end()) return "<mi>" + it->second + "</mi>";
    if (auto it = operators.find(name); it != operators.end()) return "<mo>" + it->second + "</mo>";
    if (functions.count(name)) return "<mi>" + name + "</mi><mo>&#x2061;</mo>";
    if (name == "frac" || name == "tfrac" || name == "dfrac") {
      const std::string num = argument();
      const std::string den = argument();
      return "<mfrac>" + wrap(num) + wrap(den) + "</mfrac>";
    }
    if (name == "sqrt") return "<msqrt>" + argument() + "</msqrt>";
    if (name == "hat") return "<mover accent=\"true\">" + wrap(argument()) + "<mo>^</mo></mover>";
    if (name == "operatorname") return "<mi>" + esc(raw_group()) + "</mi><mo>&#x2061;</mo>";
    if (name == "text") return "<mtext>" + esc(raw_group()) + "</mtext>";
    if (name == "quad") return "<mspace width=\"1em\"/>";
    if (name == "qquad") return "<mspace width=\"2em\"/>";
    if (name == "left") {
      const std::string open = delimiter();
      const std::string inner = row(false);
      if (s_.compare(pos_, 6, "\\right") != 0) fail("\\left without \\right");
      pos_ += 6;
      const std::string close = delimiter();
      return "<mrow>" + open + inner + close + "</mrow>";
    }
    fail("unsupported command '\\" + name + "'");
  }

  const std::string& s_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string latex_to_mathml(const std::string& latex, bool display) {
  return fmt::format("<math{}><mrow>{}</mrow></math>", display ? " display=\"block\"" : "", LatexToMathml(latex).run());
}

// ------------------------------------------------------------------ page pieces

namespace {

const std::vector<std::string> kColors = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                          "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#637939"};

std::string color(std::size_t i) { return kColors[i % kColors.size()]; }

// About five round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi) {
  if (!(hi > lo)) hi = lo + 1;
  const double raw = (hi - lo) / 5;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step) t.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);
  return t;
}

std::string tick_label(double v) { return fmt::format("{:g}", std::abs(v) < 1e-12 ? 0.0 : v); }

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
  bool dashed = false;
  bool marks = true;  // a mark per point (class "pt"); false: the line only (dense curves)
};

// A shaded band between two curves (e.g. mean ± std).
struct Band {
  std::string name;
  std::vector<double> x, lo, hi;
};

struct Frame {
  double x0, x1, y0, y1;
  int w = 660, h = 300, left = 60, right = 190, top = 30, bottom = 45;
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (w - left - right); }
  double py(double y) const { return top + (1 - (y - y0) / (y1 - y0)) * (h - top - bottom); }
};

std::string axes(const Frame& f, const std::string& title, const std::string& xlabel, const std::string& ylabel, bool integer_x) {
  std::string s = fmt::format("<text x=\"{}\" y=\"18\" class=\"title\">{}</text>", f.left, esc(title));
  for (double v : ticks(f.y0, f.y1)) {
    if (v < f.y0 - 1e-12 || v > f.y1 + 1e-12) continue;
    s += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/>", f.px(f.x0), f.px(f.x1), f.py(v), f.py(v));
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" class=\"ytick\">{}</text>", f.left - 6.0, f.py(v) + 4, tick_label(v));
  }
  for (double v : ticks(f.x0, f.x1)) {
    if (v < f.x0 - 1e-12 || v > f.x1 + 1e-12 || (integer_x && std::abs(v - std::round(v)) > 1e-9)) continue;
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" class=\"xtick\">{}</text>", f.px(v), f.h - f.bottom + 16, tick_label(v));
  }
  s += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"axis\"/>", f.left, f.w - f.right, f.py(f.y0), f.py(f.y0));
  s += fmt::format("<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{:.1f}\" class=\"axis\"/>", f.left, f.left, f.top, f.py(f.y0));
  s += fmt::format("<text x=\"{}\" y=\"{}\" class=\"xlabel\">{}</text>", (f.left + f.w - f.right) / 2, f.h - 6, esc(xlabel));
  s += fmt::format("<text transform=\"translate(14,{}) rotate(-90)\" class=\"ylabel\">{}</text>", (f.top + f.h - f.bottom) / 2, esc(ylabel));
  return s;
}

std::string line_chart(const std::string& id, const std::string& title, const std::string& xlabel, const std::string& ylabel,
                       const std::vector<Series>& series, const std::vector<Band>& bands = {}, std::optional<std::pair<double, double>> yrange = {},
                       bool integer_x = false) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  std::size_t n = 0;
  for (const auto& s : series)
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
      ++n;
    }
  for (const auto& b : bands)
    for (std::size_t i = 0; i < b.x.size(); ++i) {
      y0 = std::min(y0, b.lo[i]);
      y1 = std::max(y1, b.hi[i]);
    }
  if (n == 0) return "<p class=\"note\">" + esc(title) + ": no data yet.</p>";
  if (yrange) std::tie(y0, y1) = *yrange;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) {
    y0 -= 0.5;
    y1 += 0.5;
  } else if (!yrange) {
    const double pad = 0.05 * (y1 - y0);
    y0 -= pad;
    y1 += pad;
  }
  const Frame f{x0, x1, y0, y1};
  std::string body = axes(f, title, xlabel, ylabel, integer_x);
  std::size_t marks = 0, k = 0;
  for (const auto& b : bands) {
    std::string pts;
    for (std::size_t i = 0; i < b.x.size(); ++i) pts += fmt::format("{:.1f},{:.1f} ", f.px(b.x[i]), f.py(std::clamp(b.hi[i], y0, y1)));
    for (std::size_t i = b.x.size(); i-- > 0;) pts += fmt::format("{:.1f},{:.1f} ", f.px(b.x[i]), f.py(std::clamp(b.lo[i], y0, y1)));
    body += fmt::format("<polygon points=\"{}\" class=\"band\"><title>{}</title></polygon>", pts, esc(b.name));
  }
  std::string legend;
  for (const auto& s : series) {
    const std::string c = color(k);
    std::string pts, dots;
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(y)) continue;
      const double yy = std::clamp(y, y0, y1);
      pts += fmt::format("{:.1f},{:.1f} ", f.px(x), f.py(yy));
      if (s.marks) {
        dots += fmt::format(
            "<circle class=\"pt\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.6\" fill=\"{}\" data-x=\"{:g}\" data-y=\"{:g}\"><title>{}: {:g}, "
            "{:.4g}</title></circle>",
            f.px(x), f.py(yy), c, x, y, esc(s.name), x, y);
        ++marks;
      }
    }
    body += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{}/>", pts, c,
                        s.dashed ? " stroke-dasharray=\"5,3\"" : "");
    body += dots;
    legend += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"{}/><text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
        f.w - f.right + 10, f.w - f.right + 28, f.top + 8 + 16 * k, f.top + 8 + 16 * k, c, s.dashed ? " stroke-dasharray=\"5,3\"" : "",
        f.w - f.right + 32, f.top + 12 + 16 * k, esc(s.name));
    ++k;
  }
  if (!bands.empty())
    legend += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"8\" class=\"band\"/><text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
                          f.w - f.right + 10, f.top + 4 + 16 * k, f.w - f.right + 32, f.top + 12 + 16 * k, esc(bands.front().name));
  // Dense curves without marks: the points are still counted, as the curve's vertices.
  std::size_t points = marks;
  for (const auto& s : series)
    if (!s.marks) {
      body += fmt::format("<g class=\"pts\" data-series=\"{}\">", esc(s.name));
      for (const auto& [x, y] : s.points)
        if (std::isfinite(y)) {
          body += fmt::format("<circle class=\"pt\" cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"0\"/>", f.px(x), f.py(std::clamp(y, y0, y1)));
          ++points;
        }
      body += "</g>";
    }
  return fmt::format(
      "<svg class=\"chart\" data-chart=\"{}\" data-points=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"{}\">{}{}</svg>",
      id, points, f.w, f.h, f.w, f.h, esc(title), body, legend);
}

// Grouped bars with error bars: value ± half-width per (group, method).
struct BarValue {
  double value = 0, half = 0;
  bool present = false;
};

std::string bar_chart(const std::string& id, const std::string& title, const std::string& ylabel, const std::vector<std::string>& groups,
                      const std::vector<std::string>& methods, const std::vector<std::vector<BarValue>>& v) {
  double y0 = 1e300, y1 = -1e300;
  std::size_t n = 0;
  for (const auto& row : v)
    for (const auto& b : row)
      if (b.present) {
        y0 = std::min(y0, b.value - b.half);
        y1 = std::max(y1, b.value + b.half);
        ++n;
      }
  if (n == 0) return "<p class=\"note\">" + esc(title) + ": no data yet.</p>";
  const double pad = std::max(0.02, 0.1 * (y1 - y0));
  y0 = std::max(0.0, y0 - pad);
  y1 = std::min(1.0, y1 + pad);
  if (y1 <= y0) y1 = y0 + 0.1;
  Frame f{0, static_cast<double>(groups.size()), y0, y1};
  f.w = std::max(660, static_cast<int>(groups.size() * std::max<std::size_t>(130, methods.size() * 18 + 40)) + f.left + f.right);
  std::string body = fmt::format("<text x=\"{}\" y=\"18\" class=\"title\">{}</text>", f.left, esc(title));
  for (double t : ticks(y0, y1)) {
    if (t < y0 || t > y1) continue;
    body += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/><text x=\"{:.1f}\" y=\"{:.1f}\" class=\"ytick\">{}</text>",
        f.px(0), f.px(f.x1), f.py(t), f.py(t), f.left - 6.0, f.py(t) + 4, tick_label(t));
  }
  body += fmt::format("<text transform=\"translate(14,{}) rotate(-90)\" class=\"ylabel\">{}</text>", (f.top + f.h - f.bottom) / 2, esc(ylabel));
  const double group_w = f.px(1) - f.px(0);
  const double bar_w = std::min(22.0, (group_w - 16) / static_cast<double>(std::max<std::size_t>(1, methods.size())));
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const double gx = f.px(static_cast<double>(g)) + (group_w - bar_w * static_cast<double>(methods.size())) / 2;
    body += fmt::format("<text x=\"{:.1f}\" y=\"{}\" class=\"xtick\">{}</text>", f.px(g + 0.5), f.h - f.bottom + 16, esc(groups[g]));
    for (std::size_t m = 0; m < methods.size(); ++m) {
      const BarValue& b = v[g][m];
      if (!b.present) continue;
      const double x = gx + bar_w * static_cast<double>(m);
      const double top = f.py(std::clamp(b.value, y0, y1));
      body += fmt::format(
          "<rect class=\"pt\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" data-group=\"{}\" data-method=\"{}\" "
          "data-y=\"{:g}\" "
          "data-ci=\"{:g}\"><title>{} / {}: {:.4f} ± {:.4f} (95% CI of the mean)</title></rect>",
          x + 1, top, bar_w - 2, f.py(y0) - top, color(m), esc(groups[g]), esc(methods[m]), b.value, b.half, esc(methods[m]), esc(groups[g]), b.value,
          b.half);
      const double cx = x + bar_w / 2;
      body += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"err\"/>", cx, cx,
                          f.py(std::clamp(b.value - b.half, y0, y1)), f.py(std::clamp(b.value + b.half, y0, y1)));
      for (double e : {b.value - b.half, b.value + b.half})
        body += fmt::format("<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"err\"/>", cx - 3, cx + 3,
                            f.py(std::clamp(e, y0, y1)), f.py(std::clamp(e, y0, y1)));
    }
  }
  std::string legend;
  for (std::size_t m = 0; m < methods.size(); ++m)
    legend += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\" class=\"legend\">{}</text>",
                          f.w - f.right + 10, f.top + 16 * m, color(m), f.w - f.right + 26, f.top + 9 + 16 * m, esc(methods[m]));
  return fmt::format(
      "<svg class=\"chart\" data-chart=\"{}\" data-points=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"{}\">{}{}</svg>",
      id, n, f.w, f.h, f.w, f.h, esc(title), body, legend);
}

// ------------------------------------------------------------------ reading the run
//
// Every file the page shows is read and checked here, into the structs below, before any
// of the page is made: a damaged file ends with one error naming it and the key (JsonView),
// and write_report writes nothing.

// A number the writer leaves null when there is none (the mean of no values, the interval
// of one value): NaN.
double nullable_number(const JsonView& v) { return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>(); }

std::string f4(double v) { return fmt::format("{:.4f}", v); }

// Mean ± 95% CI half-width (Student's t) of `v`.
BarValue mean_ci(const std::vector<double>& v) {
  BarValue b;
  if (v.empty()) return b;
  const auto s = experiment::summarize(v);
  b.value = s.mean;
  b.half = s.n > 1 ? experiment::t_quantile_975(s.n - 1) * s.stddev / std::sqrt(static_cast<double>(s.n)) : 0.0;
  b.present = true;
  return b;
}

// A value per seed (null: none, shown as −1 like a diverged run).
std::vector<double> seed_values(const JsonView& array) {
  std::vector<double> out;
  for (const auto& x : array.elements()) out.push_back(x.is_null() ? -1.0 : x.get<double>());
  return out;
}

// best_genome.json.
struct Best {
  genome::Genome genome;  // canonical
  std::string hash;
  std::uint64_t id = 0;
  int generation = 0;
  double validation_fitness = 0;
  std::map<std::string, double> validation_per_task;
};

Best read_best(const JsonView& j) {
  Best b;
  b.genome = j.at("genome").convert(genome::Genome::from_json).canonical();
  b.hash = j.get<std::string>("hash");
  b.id = j.get<std::uint64_t>("id");
  b.generation = j.get<int>("generation");
  b.validation_fitness = nullable_number(j.at("validation_fitness"));
  b.validation_per_task = j.get_or<std::map<std::string, double>>("validation_per_task", {});
  return b;
}

// summary.json.
struct FinalTestTask {
  std::vector<double> accuracy;
  double mean = 0, std = 0;
};
struct BreakEven {
  std::string baseline, verdict;
  double baseline_val_fitness = 0, winner_val_fitness = 0;
  std::vector<std::pair<double, double>> measured;  // steps multiple, the baseline's validation fitness
};
struct Summary {
  std::map<std::string, FinalTestTask> final_test;
  double overall_mean = 0, overall_std = 0;
  std::int64_t search_runs = 0, search_steps = 0, other_runs = 0, other_steps = 0;
  double search_train_seconds = 0, wall_seconds = 0, cpu_seconds = 0;
  std::optional<BreakEven> break_even;
};

Summary read_summary(const JsonView& j) {
  Summary s;
  const JsonView ft = j.at("final_test");
  if (const auto per_task = ft.find("per_task"); per_task && !per_task->is_null())
    for (const auto& [t, v] : per_task->members())
      s.final_test[t] = {seed_values(v.at("accuracy")), nullable_number(v.at("mean")), nullable_number(v.at("std"))};
  s.overall_mean = nullable_number(ft.at("overall_mean"));
  s.overall_std = nullable_number(ft.at("overall_std"));
  const JsonView c = j.at("cost");
  s.search_runs = c.get<std::int64_t>("search_training_runs");
  s.search_steps = c.get<std::int64_t>("search_training_steps");
  s.search_train_seconds = c.get<double>("search_train_seconds");
  s.other_runs = c.get<std::int64_t>("other_training_runs");
  s.other_steps = c.get<std::int64_t>("other_training_steps");
  s.wall_seconds = c.get<double>("wall_seconds_this_process");
  s.cpu_seconds = c.get<double>("cpu_seconds");
  if (const auto be = j.find("break_even"); be && !be->is_null()) {
    BreakEven b;
    b.baseline = be->get<std::string>("baseline");
    b.verdict = be->get<std::string>("verdict");
    b.baseline_val_fitness = nullable_number(be->at("baseline_val_fitness"));
    b.winner_val_fitness = nullable_number(be->at("winner_val_fitness"));
    for (const auto& m : be->at("measured").elements())
      b.measured.emplace_back(m.get<double>("steps_multiple"), nullable_number(m.at("baseline_val_fitness")));
    s.break_even = b;
  }
  return s;
}

// comparison.json.
struct Paired {  // evolved − this, per test seed
  double mean = 0, ci_low = 0, ci_high = 0;
  bool significant = false;
};
struct Stats {
  double mean = 0, std = 0;
  std::vector<double> values;
  std::optional<Paired> evolved_minus_this;
  std::optional<double> perplexity;  // next-token tasks with a seed that did not diverge: the mean
};
struct Method {
  std::string name, hash;
  experiment::MethodKind kind = experiment::MethodKind::Evolved;
  double val_fitness = 0;
  std::map<std::string, Stats> test;  // per task
  Stats overall;
};
struct Horizon {
  std::int64_t steps = 0;
  std::vector<Method> methods;  // the evolved genome first
};
struct Baseline {
  std::string name, regime_text;
  double lr = 0, weight_decay = 0, val_fitness = 0;
  std::int64_t training_runs = 0;
};
struct AttributionRow {
  std::string part, difference;
  Paired paired;
};
struct Comparison {
  experiment::Protocol protocol = experiment::Protocol::Strong;
  std::vector<Baseline> baselines;
  std::vector<Horizon> horizons;
  std::optional<std::vector<std::string>> transfer_tasks;
  std::vector<Horizon> transfer;
  std::optional<std::string> attribution_baseline;
  std::int64_t attribution_steps = 0;
  std::vector<AttributionRow> attribution;
};

Paired read_paired(const JsonView& j) {
  return {nullable_number(j.at("mean")), nullable_number(j.at("ci95_low")), nullable_number(j.at("ci95_high")), j.get<bool>("significant")};
}

Stats read_stats(const JsonView& j) {
  Stats s;
  s.mean = nullable_number(j.at("mean"));
  s.std = nullable_number(j.at("std"));
  s.values = seed_values(j.at("values"));
  if (const auto d = j.find("evolved_minus_this")) s.evolved_minus_this = read_paired(*d);
  if (const auto p = j.find("perplexity"); p && p->get<std::int64_t>("n") > 0) s.perplexity = nullable_number(p->at("mean"));
  return s;
}

std::vector<Horizon> read_horizons(const JsonView& j) {
  std::vector<Horizon> out;
  for (const auto& h : j.elements()) {
    Horizon hz;
    hz.steps = h.get<std::int64_t>("steps");
    for (const auto& m : h.at("methods").elements()) {
      Method x;
      x.name = m.get<std::string>("name");
      x.kind = m.at("kind").convert([](const nlohmann::json& k) { return experiment::method_kind_from_name(k.get<std::string>()); });
      x.hash = m.at("genome").convert(genome::Genome::from_json).hash_hex();
      x.val_fitness = nullable_number(m.at("val_fitness"));
      for (const auto& [t, v] : m.at("test").members()) x.test[t] = read_stats(v);
      x.overall = read_stats(m.at("overall"));
      hz.methods.push_back(std::move(x));
    }
    out.push_back(std::move(hz));
  }
  return out;
}

Comparison read_comparison(const JsonView& j) {
  Comparison c;
  c.protocol = j.at("protocol").convert([](const nlohmann::json& p) { return experiment::protocol_from_name(p.get<std::string>()); });
  for (const auto& b : j.at("baselines").elements()) {
    const JsonView ch = b.at("chosen");
    c.baselines.push_back({b.get<std::string>("name"), ch.get<std::string>("regime_text"), ch.get<double>("lr"), ch.get<double>("weight_decay"),
                           nullable_number(ch.at("val_fitness")), b.get<std::int64_t>("training_runs")});
  }
  c.horizons = read_horizons(j.at("horizons"));
  if (const auto t = j.find("transfer")) {
    c.transfer_tasks = t->get<std::vector<std::string>>("tasks");
    c.transfer = read_horizons(t->at("horizons"));
  }
  if (const auto a = j.find("attribution")) {
    c.attribution_baseline = a->get<std::string>("baseline");
    c.attribution_steps = a->get<std::int64_t>("steps");
    for (const auto& row : a->at("rows").elements())
      c.attribution.push_back({row.get<std::string>("part"), row.get<std::string>("difference"), read_paired(row.at("paired"))});
  }
  return c;
}

struct Run {
  fs::path dir;
  std::vector<std::string> tasks;
  std::vector<std::string> transfer_tasks;                          // held-out (the comparison's transfer block)
  std::map<std::string, std::string> labels;                        // task → display label (with the lossy mirror named)
  std::map<std::string, std::pair<std::string, std::string>> data;  // task → (source, label) from config.json's provenance
  std::string evoopt_version;
  std::vector<ga::GenerationRecord> history;
  std::vector<ga::Individual> lineage;
  std::optional<Best> best;
  std::optional<Summary> summary;
  std::optional<Comparison> comparison;
  std::vector<std::pair<eval::RunKey, train::RunResult>> journal;  // read when the comparison's loss curves need it
  experiment::RunStatus status;
  experiment::ExperimentConfig ex;  // config.json as the study reads it
};

Run read_run(const fs::path& dir) {
  Run r;
  r.dir = dir;
  r.status = experiment::read_run_status(dir);  // checks config.json and the journal
  r.ex = experiment::load_run_config(dir);
  const RunDirectory run_dir(dir);
  const JsonView config = run_dir.read(run_files::kConfig);
  r.tasks = r.ex.tasks;
  r.transfer_tasks = r.ex.transfer_tasks;
  const auto provenance = config.find("provenance");
  for (const auto& t : r.ex.all_tasks()) {
    std::string source, label;
    if (provenance && !provenance->is_null())
      if (const auto p = provenance->find(t)) {
        source = p->get_or<std::string>("source", "");
        label = p->get_or<std::string>("label", "");
      }
    r.data[t] = {source, label};
    r.labels[t] = experiment::display_label(t, label);
  }
  r.evoopt_version = config.get_or<std::string>("evoopt_version", "");
  if (auto h = run_dir.read_if_present(run_files::kHistory))
    for (const auto& g : h->at("generations").elements()) r.history.push_back(g.convert(ga::GenerationRecord::from_json));
  else if (auto ck = run_dir.read_if_present(run_files::kCheckpoint))
    for (const auto& g : ck->at("history").elements()) r.history.push_back(g.convert(ga::GenerationRecord::from_json));
  if (auto l = run_dir.read_if_present(run_files::kLineage))
    for (const auto& i : l->at("individuals").elements()) {
      r.lineage.push_back(i.convert(ga::Individual::from_json));
      i.get_in<int>("generation", 0, r.ex.ga.generations);  // the family tree's columns
    }
  if (auto b = run_dir.read_if_present(run_files::kBestGenome)) r.best = read_best(*b);
  if (auto s = run_dir.read_if_present(run_files::kSummary)) r.summary = read_summary(*s);
  if (auto c = run_dir.read_if_present(run_files::kComparison)) r.comparison = read_comparison(*c);
  if (r.comparison && r.best)
    for (const auto& e : experiment::journal_entries(run_dir / run_files::kJournal))
      r.journal.emplace_back(e.at("key").convert(eval::RunKey::from_json), e.at("result").convert(train::run_result_from_json));
  return r;
}

// ------------------------------------------------------------------ sections

std::string section_search(const Run& r) {
  if (r.history.empty()) return "<p class=\"note\">No generation has finished yet.</p>";
  std::vector<Series> fit = {{"best", {}}, {"mean", {}}, {"median", {}}};
  Band spread{"mean ± std", {}, {}, {}};
  std::map<std::string, Series> per_task;
  std::map<std::string, Series> terms;
  Series distance{"gene distance", {}}, diversity{"distinct share", {}, true};
  bool have_terms = false;
  for (const auto& g : r.history) {
    const double x = g.generation;
    fit[0].points.emplace_back(x, g.best);
    fit[1].points.emplace_back(x, g.mean);
    fit[2].points.emplace_back(x, g.median);
    spread.x.push_back(x);
    spread.lo.push_back(g.mean - g.stddev);
    spread.hi.push_back(g.mean + g.stddev);
    for (const auto& t : r.tasks)
      if (g.best_per_task.count(t)) {
        per_task[t].name = r.labels.at(t);
        per_task[t].points.emplace_back(x, g.best_per_task.at(t));
      }
    distance.points.emplace_back(x, g.gene_distance);
    diversity.points.emplace_back(x, g.diversity);
    if (!g.term_share.empty()) {
      have_terms = true;
      for (const auto& [name, share] : g.term_share) terms[name].name = name;
    }
  }
  if (have_terms)
    for (const auto& g : r.history) {
      const double x = g.generation;
      for (auto& [name, s] : terms) s.points.emplace_back(x, g.term_share.count(name) ? g.term_share.at(name) : 0.0);
    }
  std::string out;
  out += "<h2 id=\"search\">Search</h2>";
  out +=
      "<p>Validation fitness (mean accuracy over the search tasks; a diverged run counts −1) of the population after each generation. The band is "
      "the population's mean ± std.</p>";
  double lo = 1.0;
  for (const auto& s : fit)
    for (const auto& p : s.points) lo = std::min(lo, p.second);
  for (double v : spread.lo) lo = std::min(lo, v);
  out += line_chart("fitness", "Fitness per generation", "generation", "validation fitness", fit, {spread}, std::pair{std::max(-1.0, lo - 0.02), 1.0},
                    true);
  std::vector<Series> pt;
  for (const auto& t : r.tasks)
    if (per_task.count(t)) pt.push_back(per_task[t]);
  out += line_chart("per-task", "Best validation accuracy per task", "generation", "validation accuracy", pt, {}, std::nullopt, true);
  if (have_terms) {
    std::vector<Series> ts;
    for (const auto& [name, s] : terms) ts.push_back(s);
    out += line_chart("terms", "Share of the population using each term", "generation", "share of genomes", ts, {}, std::pair{0.0, 1.0}, true);
  } else {
    out += "<p class=\"note\">Term shares were not recorded by the evoopt that ran this search.</p>";
  }
  out += line_chart("diversity", "Diversity", "generation", "gene distance / distinct share", {distance, diversity}, {}, std::pair{0.0, 1.0}, true);
  // The table behind the charts.
  out += "<details><summary>Generation table</summary><table><tr><th>generation</th><th>best</th><th>mean</th><th>median</th><th>std</th>";
  for (const auto& t : r.tasks) out += "<th>best " + esc(r.labels.at(t)) + "</th>";
  out += "<th>gene distance</th><th>new runs</th><th>seconds</th></tr>";
  for (const auto& g : r.history) {
    out +=
        fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>", g.generation, f4(g.best), f4(g.mean), f4(g.median), f4(g.stddev));
    for (const auto& t : r.tasks) out += "<td>" + (g.best_per_task.count(t) ? f4(g.best_per_task.at(t)) : std::string("–")) + "</td>";
    out += fmt::format("<td>{:.3f}</td><td>{}</td><td>{:.1f}</td></tr>", g.gene_distance, g.evaluations, g.seconds);
  }
  out += "</table></details>";
  return out;
}

// At most 20 characters (the column is narrow; the node's tooltip has it all).
std::string brief_label(const std::string& s) {
  if (s.size() <= 20) return s;
  std::size_t cut = 19;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
  return s.substr(0, cut) + "…";
}

std::string section_tree(const Run& r) {
  if (!r.best || r.lineage.empty()) return "";
  std::map<std::uint64_t, const ga::Individual*> by_id;
  for (const auto& i : r.lineage) by_id[i.id] = &i;
  const std::uint64_t winner = r.best->id;
  // Ancestors of the winner (breadth first), each once.
  std::vector<std::uint64_t> order;
  std::set<std::uint64_t> seen{winner};
  std::vector<std::uint64_t> queue{winner};
  for (std::size_t q = 0; q < queue.size(); ++q) {
    order.push_back(queue[q]);
    if (!by_id.count(queue[q])) continue;
    for (const auto id : by_id[queue[q]]->parents)
      if (seen.insert(id).second) queue.push_back(id);
  }
  std::map<int, std::vector<std::uint64_t>> by_gen;
  int max_gen = 0;
  for (auto id : order) {
    const int g = by_id.count(id) ? by_id[id]->generation : 0;
    by_gen[g].push_back(id);
    max_gen = std::max(max_gen, g);
  }
  std::size_t tallest = 1;
  for (auto& [g, ids] : by_gen) {
    std::sort(ids.begin(), ids.end());
    tallest = std::max(tallest, ids.size());
  }
  const int col = 120, rowh = 44, left = 50, top = 40;
  const int w = left + col * (max_gen + 1) + 60, h = top + rowh * static_cast<int>(tallest) + 20;
  std::map<std::uint64_t, std::pair<double, double>> pos;
  for (const auto& [g, ids] : by_gen)
    for (std::size_t k = 0; k < ids.size(); ++k) pos[ids[k]] = {left + col * g, top + rowh * static_cast<double>(k) + 10};
  std::string edges, nodes;
  std::map<std::string, std::string> origin_color;
  auto kind = [](const std::string& origin) { return origin.rfind("seed:", 0) == 0 ? std::string("seed") : origin; };
  for (auto id : order) {
    if (!by_id.count(id)) continue;
    const ga::Individual& ind = *by_id[id];
    for (const auto pid : ind.parents) {
      if (!pos.count(pid)) continue;
      edges += fmt::format("<line x1=\"{:.0f}\" y1=\"{:.0f}\" x2=\"{:.0f}\" y2=\"{:.0f}\" class=\"edge\"/>", pos[pid].first, pos[pid].second,
                           pos[id].first, pos[id].second);
    }
    const std::string& origin = ind.origin;
    const std::string k = kind(origin);
    if (!origin_color.count(k)) origin_color[k] = color(origin_color.size());
    std::string muts;
    for (const auto& m : ind.mutations) muts += (muts.empty() ? "" : ", ") + m;
    nodes += fmt::format(
        "<g class=\"pt node\" data-id=\"{}\" data-origin=\"{}\"><circle cx=\"{:.0f}\" cy=\"{:.0f}\" r=\"{}\" fill=\"{}\"/><text x=\"{:.0f}\" "
        "y=\"{:.0f}\" "
        "class=\"nodelabel\">#{} {}</text><text x=\"{:.0f}\" y=\"{:.0f}\" class=\"nodesub\">{}</text><title>#{} generation {}, {}{}; fitness "
        "{:.4f}\n{}</title></g>",
        id, esc(origin), pos[id].first, pos[id].second, id == winner ? 8 : 6, origin_color[k], pos[id].first + 10, pos[id].second + 4, id,
        fmt::format("{:.3f}", ind.fitness), pos[id].first + 10, pos[id].second + 16, esc(brief_label(origin + (muts.empty() ? "" : ": " + muts))), id,
        ind.generation, esc(origin), muts.empty() ? "" : esc(" (" + muts + ")"), ind.fitness, esc(ind.genome.formula()));
  }
  std::string gens;
  for (int g = 0; g <= max_gen; ++g) gens += fmt::format("<text x=\"{}\" y=\"24\" class=\"xtick\">gen {}</text>", left + col * g, g);
  std::string legend;
  int k = 0;
  for (const auto& [name, c] : origin_color)
    legend += fmt::format("<span class=\"key\"><span class=\"dot\" style=\"background:{}\"></span>{}</span>", c, esc(name)), ++k;
  return fmt::format(
      "<h2 id=\"tree\">The winner's family tree</h2><p>Every ancestor of the winner (#{}), by the generation it was made in, with the operator that "
      "made "
      "it (seed optimizer, random, crossover, mutation, elite copy) and the genes its mutation changed; hover a node for its formula. {}</p>"
      "<div class=\"scroll\"><svg class=\"chart wide\" data-chart=\"family-tree\" data-points=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" "
      "height=\"{}\" "
      "role=\"img\" "
      "aria-label=\"family tree\">{}{}{}</svg></div>",
      winner, legend, order.size(), w, h, w, h, gens, edges, nodes);
}

std::string hyper_rows(const genome::Genome& g) {
  std::string t;
  auto row = [&](const std::string& k, const std::string& v) { t += "<tr><td>" + k + "</td><td>" + esc(v) + "</td></tr>"; };
  row("learning rate η", fmt::format("{:.4g}", g.lr()));
  if (g.needs_m() || g.needs_lion_m()) row("β1", fmt::format("{:.6g}", g.beta1));
  if (g.needs_v() || g.needs_lion_m()) row("β2", fmt::format("{:.6g}", g.beta2));
  if (g.needs_v()) row("ε", fmt::format("{:.3g}", g.eps()));
  row("weight decay λ", g.log10_weight_decay ? fmt::format("{:.3g} ({})", g.weight_decay(), g.decoupled_weight_decay ? "decoupled" : "L2") : "off");
  if (g.reads_bias_correction()) row("bias correction", g.bias_correction ? "on" : "off");
  row("warmup", fmt::format("{:.3g}% of the steps", g.warmup_fraction * 100));
  row("cosine decay", g.cosine_decay ? "on" : "off");
  row("gradient clipping", g.clip_norm ? fmt::format("global norm ≤ {:g}", *g.clip_norm) : "off");
  return "<table class=\"kv\">" + t + "</table>";
}

std::string section_winner(const Run& r, std::int64_t steps) {
  if (!r.best) return "<p class=\"note\">No winner yet.</p>";
  const genome::Genome& g = r.best->genome;
  std::string out = "<h2 id=\"winner\">The winner</h2>";
  out += fmt::format("<p>Individual #{} of generation {}, validation fitness {:.4f}", r.best->id, r.best->generation, r.best->validation_fitness);
  if (!r.best->validation_per_task.empty()) {
    std::string per;
    for (const auto& t : r.tasks)
      if (r.best->validation_per_task.count(t)) per += (per.empty() ? "" : ", ") + r.labels.at(t) + " " + f4(r.best->validation_per_task.at(t));
    out += " (" + esc(per) + ")";
  }
  out += ".</p><div class=\"formula\">" + latex_to_mathml(exports::latex_update(g)) + "</div><p>where</p><div class=\"defs\">";
  for (const auto& d : exports::latex_definitions(g, steps)) out += latex_to_mathml(d);
  out += "</div><p class=\"plain\">Plain text: <code>" + esc(g.formula()) + "</code></p>";
  out += "<div class=\"cols\"><div>" + hyper_rows(g) + "</div><div>";
  Series sched{"learning-rate multiplier", {}, false, false};
  for (std::int64_t s = 0; s < steps; ++s)
    sched.points.emplace_back(static_cast<double>(s + 1), optim::schedule_factor(g.warmup_fraction, g.cosine_decay, s, steps));
  out += line_chart("schedule", fmt::format("Schedule over the {} training steps", steps), "step", "η_t / η", {sched}, {}, std::pair{0.0, 1.05});
  out += "</div></div>";
  out += fmt::format(
      "<p>Export it: <code>evoopt export {} --format pytorch -o evolved_optimizer.py</code> (or <code>--format cpp</code>, <code>latex</code>, "
      "<code>markdown</code>).</p>",
      esc(r.dir.string()));
  return out;
}

std::string section_final(const Run& r) {
  if (!r.summary) return "";
  const Summary& s = *r.summary;
  std::string out = "<h2 id=\"test\">Final test and cost</h2>";
  out +=
      "<p>The winner on the test split, touched once, with fresh seeds (mean ± std over seeds):</p><table><tr><th>task</th><th>test "
      "accuracy</th><th>per seed</th></tr>";
  for (const auto& t : r.tasks)
    if (s.final_test.count(t)) {
      const FinalTestTask& pt = s.final_test.at(t);
      std::string seeds;
      for (double a : pt.accuracy) seeds += (seeds.empty() ? "" : ", ") + f4(a);
      out += fmt::format("<tr><td>{}</td><td>{} ± {}</td><td>{}</td></tr>", esc(r.labels.at(t)), f4(pt.mean), f4(pt.std), seeds);
    }
  out += fmt::format("<tr><td><b>overall</b></td><td><b>{} ± {}</b></td><td></td></tr></table>", f4(s.overall_mean), f4(s.overall_std));
  out += fmt::format(
      "<p>Cost: {} search training runs ({} steps, {:.0f} s of single-core training), {} further runs ({} steps); the process and its workers: "
      "{:.0f} s "
      "wall, {:.0f} s CPU.</p>",
      s.search_runs, s.search_steps, s.search_train_seconds, s.other_runs, s.other_steps, s.wall_seconds, s.cpu_seconds);
  if (s.break_even) {
    const BreakEven& be = *s.break_even;
    out += "<p>Break-even: " + esc(be.verdict) + ".</p>";
    if (!be.measured.empty()) {
      Series base{be.baseline + " with more steps", {}};
      base.points.emplace_back(1.0, be.baseline_val_fitness);
      for (const auto& [multiple, fitness] : be.measured) base.points.emplace_back(multiple, fitness);
      Series win{"the winner at 1×", {{1.0, be.winner_val_fitness}}};
      out += line_chart("break-even", "Break-even: the best seed optimizer with more steps", "steps multiple", "validation fitness", {base, win});
    }
  }
  return out;
}

// Mean smoothed training loss per step over the test runs of `hash` on `task` at `steps`.
Series loss_curve(const std::vector<std::pair<eval::RunKey, train::RunResult>>& journal, const std::string& hash, const std::string& task,
                  std::int64_t steps, const std::string& name, bool dashed) {
  std::map<std::int64_t, std::pair<double, int>> sum;
  for (const auto& [k, result] : journal) {
    if (k.genome != hash || k.task != task || k.split != "test" || k.steps != steps) continue;
    for (const auto& p : result.loss_curve) {
      if (!std::isfinite(p.smoothed)) continue;
      auto& s = sum[p.step];
      s.first += p.smoothed;
      ++s.second;
    }
  }
  Series s{name, {}, dashed, false};
  for (const auto& [step, v] : sum) s.points.emplace_back(static_cast<double>(step), v.first / v.second);
  return s;
}

std::string diff_cell(const std::optional<Paired>& d) {
  if (!d) return "";
  return fmt::format("{:+.4f} [{:+.4f}, {:+.4f}]{}", d->mean, d->ci_low, d->ci_high, d->significant ? " *" : "");
}

std::string section_comparison(const Run& r, std::int64_t steps) {
  if (!r.comparison) {
    if (!r.ex.compare.enabled) return "<h2 id=\"comparison\">Comparison</h2><p class=\"note\">Not run (--no-compare).</p>";
    return "<h2 id=\"comparison\">Comparison</h2><p class=\"note\">Not run yet.</p>";
  }
  const Comparison& c = *r.comparison;
  std::string out = "<h2 id=\"comparison\">Comparison with tuned baselines</h2>";
  const bool seed = c.protocol == experiment::Protocol::Seed;
  out +=
      seed
          ? "<p class=\"warn\">Seed protocol: the baselines got no schedule, no clipping and a coarse lr grid. This flatters the evolved genome; use "
            "the default (strong) protocol before claiming a gain.</p>"
          : "<p>Strong protocol: every baseline tuned on validation over a fine lr grid × weight decay × {constant, the winner's schedule + "
            "clipping}, with successive halving, chosen at the full budget.</p>";
  out += "<table><tr><th>baseline</th><th>chosen (validation)</th><th>val fitness</th><th>tuning runs</th></tr>";
  for (const auto& b : c.baselines) {
    std::string chosen = fmt::format("lr {:.3g}, weight decay {}, {}", b.lr,
                                     b.weight_decay > 0 ? fmt::format("{:g}", b.weight_decay) : std::string("off"), b.regime_text);
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(b.name), esc(chosen), f4(b.val_fitness), b.training_runs);
  }
  out += "</table>";
  // Bars and a table per horizon over `tasks`; chart ids are `id` + the steps beyond the first.
  auto horizon_blocks = [&](const std::vector<Horizon>& horizons, const std::vector<std::string>& tasks, const std::string& id,
                            const std::string& what) {
    std::string html;
    int hi = 0;
    for (const auto& h : horizons) {
      const std::int64_t hs = h.steps;
      const auto& methods = h.methods;
      std::vector<std::string> names, groups;
      for (const auto& m : methods) names.push_back(m.name);
      for (const auto& t : tasks) groups.push_back(r.labels.count(t) ? r.labels.at(t) : t);
      groups.push_back("overall");
      std::vector<std::vector<BarValue>> vals(groups.size(), std::vector<BarValue>(names.size()));
      for (std::size_t m = 0; m < names.size(); ++m) {
        for (std::size_t t = 0; t < tasks.size(); ++t)
          if (methods[m].test.count(tasks[t])) vals[t][m] = mean_ci(methods[m].test.at(tasks[t]).values);
        vals.back()[m] = mean_ci(methods[m].overall.values);
      }
      const std::string label = hi == 0 ? " (search horizon)" : " (longer horizon)";
      html += fmt::format("<h3>{} steps{}{}</h3>", hs, label, what);
      html += bar_chart(hi == 0 ? id : fmt::format("{}-{}", id, hs), fmt::format("Test fitness at {} steps{}, mean and 95% CI over seeds", hs, what),
                        "test fitness", groups, names, vals);
      html += "<table><tr><th>method</th>";
      for (const auto& g : groups) html += "<th>" + esc(g) + "</th>";
      html += "</tr>";
      for (std::size_t m = 0; m < names.size(); ++m) {
        html += "<tr><td>" + esc(names[m]) + "</td>";
        for (std::size_t t = 0; t <= tasks.size(); ++t) {
          if (t < tasks.size() && !methods[m].test.count(tasks[t])) {
            html += "<td>–</td>";
            continue;
          }
          const Stats& cell = t < tasks.size() ? methods[m].test.at(tasks[t]) : methods[m].overall;
          const std::string ppl = cell.perplexity ? fmt::format("<br>perplexity {:.2f}", *cell.perplexity) : std::string();
          html += fmt::format("<td>{} ± {}{}<br><span class=\"diff\">{}</span></td>", f4(cell.mean), f4(cell.std), ppl,
                              m == 0 ? "" : "evolved − this: " + diff_cell(cell.evolved_minus_this));
        }
        html += "</tr>";
      }
      html +=
          "</table><p class=\"note\">Paired differences per test seed (same seeds for every method) with a 95% t-interval; * = the interval "
          "excludes 0.</p>";
      ++hi;
    }
    return html;
  };
  out += horizon_blocks(c.horizons, r.tasks, "test-bars", "");
  std::string strongest;
  if (!c.horizons.empty() && c.horizons[0].methods.size() > 1) {
    const auto& methods = c.horizons[0].methods;
    if (c.attribution_baseline) {
      strongest = *c.attribution_baseline + " (tuned)";  // the strongest tuned baseline on validation
    } else {
      double best = -2;
      for (std::size_t m = 1; m < methods.size(); ++m)
        if (methods[m].kind == experiment::MethodKind::Baseline && methods[m].val_fitness > best) {
          best = methods[m].val_fitness;
          strongest = methods[m].name;
        }
    }
  }
  if (c.transfer_tasks) {
    out +=
        "<h3 id=\"transfer\">Transfer: tasks the search never saw</h3><p>Every method with the hyperparameters chosen on the search tasks (none "
        "re-tuned on these tasks), on their test splits with the same fresh seeds. Classification: fitness = accuracy; next-token tasks: fitness = "
        "exp(−loss) = 1/perplexity.</p>";
    out += horizon_blocks(c.transfer, *c.transfer_tasks, "transfer-bars", ", held-out tasks");
  }
  if (c.attribution_baseline) {
    out += fmt::format(
        "<h3>Where the gain comes from</h3><p>Against the strongest tuned baseline B = {} at {} steps, paired per test seed. A1 = the evolved rule "
        "in B's setting, A2 = B's rule in the evolved setting, each with its learning rate re-tuned on validation.</p>",
        esc(*c.attribution_baseline), c.attribution_steps);
    out += "<table><tr><th>part of the gain</th><th>difference</th><th>mean [95% CI]</th></tr>";
    for (const auto& row : c.attribution)
      out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", esc(row.part), esc(row.difference), diff_cell(row.paired));
    out += "</table>";
  }
  // Training loss of the winner against the strongest tuned baseline, per task (test runs).
  if (r.best && !strongest.empty()) {
    std::string base_hash;
    for (const auto& m : c.horizons[0].methods)
      if (m.name == strongest) base_hash = m.hash;
    out += fmt::format(
        "<h3>Training loss: the winner against {}</h3><p>Smoothed training loss, mean over the test seeds, at the search horizon.</p><div "
        "class=\"grid2\">",
        esc(strongest));
    for (const auto& t : r.ex.all_tasks()) {
      Series w = loss_curve(r.journal, r.best->hash, t, steps, "evolved", false);
      Series b = loss_curve(r.journal, base_hash, t, steps, strongest, true);
      out += "<div>" + line_chart("loss-" + t, r.labels.at(t), "step", "training loss (smoothed)", {w, b}) + "</div>";
    }
    out += "</div>";
  }
  return out;
}

std::string section_provenance(const Run& r) {
  std::string out = "<h2 id=\"data\">Data</h2><table><tr><th>task</th><th>source</th><th>label</th></tr>";
  for (const auto& t : r.ex.all_tasks()) {
    const auto& [source, label] = r.data.at(t);
    const bool lossy = label.find("lossy") != std::string::npos || label.find("JPEG") != std::string::npos;
    out += fmt::format("<tr><td>{}</td><td>{}</td><td>{}{}</td></tr>", esc(r.labels.at(t)), esc(source), esc(label),
                       lossy ? " <span class=\"warn\">lossy: JPEG-compressed images, not the official files; results differ from the official "
                               "dataset's</span>"
                             : "");
  }
  return out + "</table>";
}

const char* kStyle = R"CSS(
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;max-width:1100px;margin:0 auto;padding:16px 20px;color:#222;background:#fff;line-height:1.45}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
.note{color:#666;font-size:.9em}.warn{color:#a4000f}.diff{color:#555;font-size:.85em}.status{background:#f4f7fb;border:1px solid #d8e0ea;padding:8px 12px}
svg.chart{max-width:100%;height:auto;display:block;margin:.6em 0}svg.chart.wide{max-width:none}svg text{font-size:11px;fill:#333}svg .title{font-size:13px;font-weight:600}
svg .ytick{text-anchor:end}svg .xtick{text-anchor:middle}svg .xlabel{text-anchor:middle}svg .ylabel{text-anchor:middle}
svg .grid{stroke:#eee}svg .axis{stroke:#999}svg .band{fill:#1f77b4;fill-opacity:.15;stroke:none}svg .err{stroke:#222;stroke-width:1.2}
svg .edge{stroke:#bbb;stroke-width:1.2}svg .nodelabel{font-size:10px}svg .nodesub{font-size:9px;fill:#777}
.formula math{font-size:1.3em;margin:.5em 0}.defs math{margin:.3em 0}.cols{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:8px}.scroll{overflow-x:auto}
.key{margin-right:12px;white-space:nowrap}.dot{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:4px}
nav a{margin-right:12px}code{background:#f4f4f4;padding:1px 4px}
)CSS";

}  // namespace

std::string render_report(const fs::path& run_dir) {
  const Run r = read_run(run_dir);
  const auto& ex = r.ex;
  const auto& st = r.status;
  std::string tasks;
  for (const auto& t : r.tasks) tasks += (tasks.empty() ? "" : ", ") + r.labels.at(t);
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char when[64];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  std::string status =
      fmt::format("<b>{}</b>: {} of {} generations finished", esc(experiment::run_state_name(st.state)), st.generations_done, st.generations);
  if (st.best_fitness)
    status += fmt::format("; best validation fitness so far {:.4f} (#{}, generation {})", *st.best_fitness, st.best_id, st.best_generation);
  if (st.state != experiment::RunState::Complete && st.eta_seconds) status += "; ETA about " + experiment::format_duration(*st.eta_seconds);
  if (st.final_test) status += fmt::format("; the winner's final test fitness {:.4f}", *st.final_test);
  std::string html =
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
  html += "<title>evoopt report: " + esc(run_dir.filename().string().empty() ? run_dir.string() : run_dir.filename().string()) + "</title>";
  html += "<style>" + std::string(kStyle) + "</style></head><body>";
  html += "<h1>evoopt report: " + esc(run_dir.string()) + "</h1>";
  html += fmt::format(
      "<p class=\"status\">{}.<br>Preset {}, model {}, {} steps per run, population {}, seed {}; tasks {}. Written {} from the run's files{}.</p>",
      status, esc(ex.preset), esc(ex.model), ex.steps, ex.ga.population, ex.seed, esc(tasks), when,
      st.state == experiment::RunState::Complete ? "" : " (evoopt evolve rewrites it after every generation: reload to follow the run)");
  html +=
      "<nav><a href=\"#search\">search</a><a href=\"#winner\">winner</a><a href=\"#tree\">family tree</a><a href=\"#test\">final test</a><a "
      "href=\"#comparison\">comparison</a><a href=\"#data\">data</a></nav>";
  html += section_search(r);
  html += section_winner(r, ex.steps);
  html += section_tree(r);
  html += section_final(r);
  html += section_comparison(r, ex.steps);
  html += section_provenance(r);
  html += "<p class=\"note\">Made by evoopt " + esc(r.evoopt_version) + "; one self-contained file (no scripts, fonts or network).</p>";
  html += "</body></html>\n";
  return html;
}

fs::path write_report(const fs::path& run_dir) {
  const std::string html = render_report(run_dir);
  const RunDirectory dir(run_dir);
  dir.write_text(run_files::kReport, html);
  return dir / run_files::kReport;
}

experiment::StudyEvents with_live_report(experiment::StudyEvents events) {
  auto before = events.outputs_written;
  auto say = events.message;
  events.outputs_written = [before, say](const std::filesystem::path& run_dir) {
    if (before) before(run_dir);
    try {
      write_report(run_dir);
    } catch (const std::exception& e) {
      if (say) say(std::string("report.html not written: ") + e.what());
    }
  };
  return events;
}

}  // namespace evoopt::report
