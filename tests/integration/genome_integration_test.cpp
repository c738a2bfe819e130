// `evoopt genome show` (issue 3): the formula, the JSON and the hash of a preset and of a
// genome file, and a bad file or name refused with one line.
#include <fstream>

#include <gtest/gtest.h>

#include "evoopt/common/error.hpp"
#include "evoopt/genome/genome.hpp"
#include "test_support.hpp"

using namespace evoopt;
using namespace evoopt::genome;

namespace {
// The genome found by another tool (issue 3).
Genome foreign_genome() {
  return Genome::from_json(nlohmann::json::parse(R"({
    "terms": ["SIGN_GRAD", "SIGN_GRAD", "ADAM_TERM", "ADAM_TERM"],
    "weights": [0.41, 0.32, 2.00, 1.63],
    "lr": 1.2e-3, "beta1": 0.855, "beta2": 0.936, "eps": 5.4e-9, "weight_decay": 9.7e-4,
    "bias_correction": false, "warmup": true, "cosine_decay": true })"));
}
}  // namespace

TEST(GenomeCli, ShowPrintsFormulaJsonAndHash) {
  auto r = evoopt::test::run_cli("genome show adam");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Δθ = −η·(1.00·m̂/(√v̂+ε))"), std::string::npos);
  EXPECT_NE(r.out.find("hash: 67c1262e8a235a57"), std::string::npos);
  EXPECT_NE(r.out.find("\"format\": \"evoopt.genome\""), std::string::npos);
  evoopt::test::TempDir tmp;
  std::ofstream(tmp / "g.json") << foreign_genome().to_json().dump();
  auto f = evoopt::test::run_cli("genome show " + (tmp / "g.json").string());
  EXPECT_EQ(f.exit_code, 0) << f.err;
  EXPECT_NE(f.out.find("0.73·sign(g)"), std::string::npos) << f.out;
  std::ofstream(tmp / "bad.json") << R"({"terms": ["GRAD"], "beta1": 1.5})";
  auto bad = evoopt::test::run_cli("genome show " + (tmp / "bad.json").string());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(evoopt::test::count_lines(bad.err), 1) << bad.err;
  EXPECT_NE(bad.err.find("beta1 = 1.5 is outside the allowed range"), std::string::npos) << bad.err;
  auto unknown = evoopt::test::run_cli("genome show nadam");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("neither a genome preset"), std::string::npos);
}

// Update rules as programs from the CLI (issue 28): `genome program` writes a preset as a
// program genome; it trains to the preset's accuracy and `compare` tunes and tests it like any
// genome and exports like one; a program with an unknown operation is one line naming the statement.
TEST(GenomeCli, AProgramGenomeFromThePresetTrainsAndComparesLikeIt) {
  EVOOPT_REQUIRE_DATASET("mnist");
  evoopt::test::TempDir tmp;
  const auto file = (tmp / "adam_program.json").string();
  auto p = evoopt::test::run_cli("genome program adam -o " + file);
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.out.find("  7  r3 = mul(r1, r2)"), std::string::npos) << p.out;
  const Genome g = load_genome(file);
  EXPECT_TRUE(g.is_program());
  auto show = evoopt::test::run_cli("genome show " + file);
  EXPECT_NE(show.out.find("  1  s0 = interp(s0, g, beta1)"), std::string::npos) << show.out;
  const std::string data = " --task mnist --steps 40 --train-subset 1000 --val-size 300 --data-dir " + evoopt::test::data_dir().string();
  auto preset = evoopt::test::run_cli("train --genome adam" + data);
  auto program = evoopt::test::run_cli("train --genome " + file + data);
  ASSERT_EQ(program.exit_code, 0) << program.err;
  const auto accuracy = [](const std::string& out) { return out.substr(out.find("val accuracy: "), 20); };
  EXPECT_EQ(accuracy(program.out), accuracy(preset.out));
  {
    std::ofstream cfg(tmp / "c.toml");
    cfg << "tasks = [\"mnist\"]\ntransfer_tasks = []\nsteps = 20\n[data]\ndir = \"" << evoopt::test::data_dir().string()
        << "\"\ntrain_subset = 600\nval_size = 200\n[compare]\ntrials = 2\nbaselines = [\"adam\"]\ntest_seeds = 2\nhorizon_multiple = 0\n";
  }
  auto cmp =
      evoopt::test::run_cli("compare --genome " + file + " --workers 1 --config " + (tmp / "c.toml").string() + " --out " + (tmp / "run").string());
  ASSERT_EQ(cmp.exit_code, 0) << cmp.err;
  EXPECT_NE(cmp.out.find("program: s0 = interp(s0, g, beta1)"), std::string::npos) << cmp.out;
  EXPECT_NE(cmp.out.find("adam (tuned)"), std::string::npos) << cmp.out;
  std::ofstream(tmp / "bad.json") << R"J({"algorithm": "program", "version": 3, "terms": [], "program": ["u = foo(g)"]})J";
  auto bad = evoopt::test::run_cli("train --genome " + (tmp / "bad.json").string() + data);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(evoopt::test::count_lines(bad.err), 1) << bad.err;
  EXPECT_NE(bad.err.find("program statement 1 (u = foo(g)): unknown operation 'foo'"), std::string::npos) << bad.err;
  auto export_program = evoopt::test::run_cli("export " + file + " --format pytorch");
  EXPECT_EQ(export_program.exit_code, 0) << export_program.err;
  EXPECT_NE(export_program.out.find("s0.mul_(beta1).add_(g, alpha=1.0 - beta1)"), std::string::npos) << export_program.out;
}
