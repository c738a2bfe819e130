// report.html (issue 11): formulas render as MathML from the same LaTeX the exports write,
// for every preset and every term; the page refuses a directory that is not a run. The page
// of a real run is rendered in headless Chromium by tests/slow/cli_evolve_test.cpp.
#include <gtest/gtest.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/export/export.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/genome/term.hpp"
#include "evoopt/report/report.hpp"
#include "test_support.hpp"

using namespace evoopt;

namespace {
int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}
}  // namespace

TEST(Report, LatexSubsetBecomesMathml) {
  EXPECT_EQ(report::latex_to_mathml("\\frac{g_t}{\\sqrt{\\hat{v}_t}+\\epsilon}", false),
            "<math><mrow><mfrac><mrow><msub><mi>g</mi><mrow><mi>t</mi></mrow></msub></mrow><mrow><msqrt><msub><mover "
            "accent=\"true\"><mrow><mi>v</mi></mrow>"
            "<mo>^</mo></mover><mrow><mi>t</mi></mrow></msub></msqrt><mo>+</mo><mi>&#x3B5;</mi></mrow></mfrac></mrow></math>");
  EXPECT_NE(report::latex_to_mathml("\\left(1-\\beta_1\\right)").find("<mo>&#x2212;</mo>"), std::string::npos);
  EXPECT_NE(report::latex_to_mathml("\\tfrac12").find("<mfrac><mrow><mn>1</mn></mrow><mrow><mn>2</mn></mrow></mfrac>"), std::string::npos);
  EXPECT_NE(report::latex_to_mathml("x \\quad\\text{(L2 weight decay)}").find("<mtext>(L2 weight decay)</mtext>"), std::string::npos);
  for (const char* bad : {"\\unknown{x}", "\\frac{a}", "{a", "a}", "\\left(a", "a ~ b"}) EXPECT_THROW(report::latex_to_mathml(bad), Error) << bad;
}

TEST(Report, EveryPresetAndEveryTermRendersAsMathml) {
  std::vector<genome::Genome> genomes;
  for (const char* p : {"sgd", "adam", "adamw", "rmsprop", "signum", "lion"}) genomes.push_back(genome::preset(p));
  for (const char* f : {"all_terms_l2.json", "all_terms_decoupled.json"})
    genomes.push_back(genome::load_genome(std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/export_genomes/" + f));
  // Every registry term, with and without bias correction.
  for (const auto& info : genome::term_registry())
    for (bool bc : {false, true}) {
      genome::Genome g = genome::preset("adam");
      g.terms = {{info.id, 1.0}};
      g.bias_correction = bc;
      genomes.push_back(g);
    }
  for (const auto& g : genomes) {
    const std::string m = report::latex_to_mathml(exports::latex_update(g));
    EXPECT_EQ(count(m, "<mrow>"), count(m, "</mrow>")) << m;
    EXPECT_NE(m.find("&#x3B8;"), std::string::npos) << m;  // θ
    for (const auto& d : exports::latex_definitions(g, 100)) EXPECT_NO_THROW(report::latex_to_mathml(d)) << d;
  }
}

TEST(Report, ADirectoryThatIsNotARunIsRefusedAndNothingIsWritten) {
  test::TempDir tmp;
  try {
    report::write_report(tmp.path());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a run directory"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "report.html"));
}

// The page is made from files checked first: a damaged one is named with its key, and
// report.html stays as it was.
TEST(Report, ADamagedFileIsNamedWithItsKeyAndTheOldPageIsKept) {
  test::TempDir run;
  experiment::ExperimentConfig c;
  c.tasks = {"mnist"};
  c.transfer_tasks = {};
  write_file_atomic(run / "config.json", c.to_json().dump());
  ga::GenerationRecord g;
  g.best_per_task = {{"mnist", 0.5}};
  nlohmann::json history = {{"format", "evoopt.history"}, {"version", 1}, {"generations", {g.to_json(), g.to_json()}}};
  write_file_atomic(run / "history.json", history.dump());
  EXPECT_NE(report::render_report(run.path()).find("data-chart=\"fitness\" data-points=\"6\""), std::string::npos);
  write_file_atomic(run / "report.html", "the page before");
  history["generations"][1]["best"] = "x";
  write_file_atomic(run / "history.json", history.dump());
  try {
    report::write_report(run.path());
    FAIL() << "a damaged history.json was rendered";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), (run / "history.json").string() + ": /generations/1/best: expected a number, got a string \"x\"");
  }
  EXPECT_EQ(read_text_file(run / "report.html"), "the page before");
}
