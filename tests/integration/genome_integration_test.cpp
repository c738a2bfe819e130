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
