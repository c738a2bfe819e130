// Term registry, genome validation, canonical form, hash, JSON, presets (issue 3). The CLI's
// `genome show`: tests/integration/genome_integration_test.cpp.
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "evoopt/common/error.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/genome/term.hpp"
#include "test_support.hpp"

using namespace evoopt;
using namespace evoopt::genome;

namespace {
torch::Tensor t(std::vector<double> v) { return torch::tensor(v, torch::kFloat64); }
void expect_close(const torch::Tensor& a, std::vector<double> b) {
  ASSERT_EQ(a.numel(), static_cast<std::int64_t>(b.size()));
  for (std::size_t i = 0; i < b.size(); ++i) EXPECT_NEAR(a[static_cast<std::int64_t>(i)].item<double>(), b[i], 1e-12) << "element " << i;
}

// The genome found by another tool (issue 3).
Genome foreign_genome() {
  return Genome::from_json(nlohmann::json::parse(R"({
    "terms": ["SIGN_GRAD", "SIGN_GRAD", "ADAM_TERM", "ADAM_TERM"],
    "weights": [0.41, 0.32, 2.00, 1.63],
    "lr": 1.2e-3, "beta1": 0.855, "beta2": 0.936, "eps": 5.4e-9, "weight_decay": 9.7e-4,
    "bias_correction": false, "warmup": true, "cosine_decay": true })"));
}
}  // namespace

TEST(Terms, EachTermMatchesItsFormulaOnHandComputedTensors) {
  // g, m̂, √v̂+ε and β1 chosen so every formula is easy to do by hand.
  const auto g = t({1.0, -2.0, 0.5, 0.0});
  const auto m = t({0.5, 0.1, -0.2, -1.0});
  const auto denom = t({2.0, 1.0, 4.0, 0.5});
  const auto c = t({-1.0, 1.0, 1.0, 1.0});  // Lion's own momentum c_{t−1}
  rule::Env env;
  for (auto [v, value] : {std::pair{rule::Var::G, g}, {rule::Var::M, m}, {rule::Var::MHat, m}, {rule::Var::Denom, denom}, {rule::Var::C, c}})
    env.tensor[static_cast<std::size_t>(v)] = value;
  for (auto [v, value] : {std::pair{rule::Var::Beta1, 0.9}, {rule::Var::Ng, 0.1}, {rule::Var::Nm, 0.9}})
    env.scalar[static_cast<std::size_t>(v)] = value;
  auto run = [&](Term term) { return rule::evaluate(term_info(term).value, env); };
  expect_close(run(Term::Grad), {1.0, -2.0, 0.5, 0.0});
  expect_close(run(Term::Momentum), {0.5, 0.1, -0.2, -1.0});
  expect_close(run(Term::RmsNorm), {0.5, -2.0, 0.125, 0.0});
  expect_close(run(Term::AdamTerm), {0.25, 0.1, -0.05, -2.0});
  expect_close(run(Term::SignGrad), {1.0, -1.0, 1.0, 0.0});
  // a_g·g + a_m·m with the coefficients given: 0.1·g + 0.9·m
  expect_close(run(Term::Nesterov), {0.55, -0.11, -0.13, -0.9});
  expect_close(run(Term::SignMomentum), {1.0, 1.0, -1.0, -1.0});
  // sign(0.9·c + 0.1·g): Lion reads its own momentum c, not m
  expect_close(run(Term::Lion), {-1.0, 1.0, 1.0, 1.0});
  // format v1's LION read m: sign(0.9·m + 0.1·g)
  expect_close(run(Term::LionV1), {1.0, -1.0, -1.0, -1.0});
  expect_close(run(Term::NesterovV1), {0.55, -0.11, -0.13, -0.9});
  // (1 + sign(g)·sign(m))·g: agree → 2g, disagree → 0, g = 0 → 0.
  expect_close(run(Term::AddSign), {2.0, 0.0, 0.0, 0.0});
  // exp(sign(g)·sign(m))·g
  expect_close(run(Term::PowerSign), {std::exp(1.0), -2.0 * std::exp(-1.0), 0.5 * std::exp(-1.0), 0.0});
  // Pure: inputs unchanged.
  expect_close(g, {1.0, -2.0, 0.5, 0.0});
  expect_close(m, {0.5, 0.1, -0.2, -1.0});
}

TEST(Terms, RegistryNamesStateNeedsAndVocabularies) {
  EXPECT_EQ(term_registry().size(), 13u);
  for (std::size_t i = 0; i < term_registry().size(); ++i) {
    const auto& info = term_registry()[i];
    EXPECT_EQ(static_cast<std::size_t>(info.id), i);
    EXPECT_EQ(term_from_name(info.name), info.id);
  }
  EXPECT_TRUE(term_info(Term::AdamTerm).needs_m && term_info(Term::AdamTerm).needs_v);
  EXPECT_FALSE(term_info(Term::SignGrad).needs_m || term_info(Term::SignGrad).needs_v);
  EXPECT_EQ(vocabulary_terms(Vocabulary::Seed).size(), 5u);
  EXPECT_EQ(vocabulary_terms(Vocabulary::Extended).size(), 10u);  // the two legacy terms and the baseline term are never searched
  for (Term legacy : {Term::LionV1, Term::NesterovV1, Term::NAdamW}) {
    const auto ext = vocabulary_terms(Vocabulary::Extended);
    EXPECT_EQ(std::find(ext.begin(), ext.end(), legacy), ext.end());
  }
  EXPECT_FALSE(term_from_name("ADAMW").has_value());
  EXPECT_THROW(vocabulary_from_name("huge"), Error);
}

TEST(Genome, ValidationNamesEachBadField) {
  auto message = [](const Genome& g) {
    try {
      g.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("valid");
  };
  const Genome ok = preset("adam");
  EXPECT_EQ(message(ok), "valid");
  struct Case {
    std::function<void(Genome&)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {[](Genome& g) { g.terms.clear(); }, "terms is empty"},
      {[](Genome& g) {
         g.terms.assign(5, {Term::Grad, 1.0});
       },
       "5 terms, more than the maximum 4"},
      {[](Genome& g) { g.terms[0].weight = 11; }, "weights[0] = 11 is outside the allowed range [-10, 10]"},
      {[](Genome& g) { g.terms[0].weight = std::nan(""); }, "weights[0] = nan"},
      {[](Genome& g) {
         g.terms = {{Term::Grad, 1.0}, {Term::Grad, -1.0}};
       },
       "weights sum to zero"},
      {[](Genome& g) { g.log10_lr = 2; }, "log10_lr = 2 is outside the allowed range [-7, 1]"},
      {[](Genome& g) { g.log10_lr = std::numeric_limits<double>::infinity(); }, "log10_lr = inf"},
      {[](Genome& g) { g.beta1 = 1.0; }, "beta1 = 1 is outside"},
      {[](Genome& g) { g.beta2 = -0.1; }, "beta2 = -0.1 is outside"},
      {[](Genome& g) { g.log10_eps = 0; }, "log10_eps = 0 is outside"},
      {[](Genome& g) { g.log10_weight_decay = 0.5; }, "log10_weight_decay = 0.5 is outside"},
      {[](Genome& g) { g.warmup_fraction = 0.9; }, "warmup_fraction = 0.9 is outside"},
      {[](Genome& g) { g.clip_norm = 0.0; }, "clip_norm = 0 is outside"},
  };
  for (const auto& c : cases) {
    Genome g = ok;
    c.edit(g);
    EXPECT_NE(message(g).find(c.expect), std::string::npos) << message(g) << " (expected: " << c.expect << ")";
  }
}

TEST(Genome, JsonRoundTripsExactly) {
  for (const auto& name : preset_names()) {
    const Genome g = preset(name);
    const Genome back = Genome::from_json(nlohmann::json::parse(g.to_json().dump()));
    EXPECT_EQ(back, g) << name;
    EXPECT_EQ(back.hash(), g.hash()) << name;
  }
  const Genome f = foreign_genome();
  const Genome back = Genome::from_json(nlohmann::json::parse(f.to_json().dump()));
  EXPECT_EQ(back, f);
  EXPECT_EQ(f.to_json()["format"], "evoopt.genome");
  EXPECT_EQ(f.to_json()["version"], 2);
  // Bad JSON is rejected with a message naming the problem.
  EXPECT_THROW(Genome::from_json(nlohmann::json::parse(R"({"terms": ["FOO"]})")), Error);
  EXPECT_THROW(Genome::from_json(nlohmann::json::parse(R"({"terms": ["GRAD"], "weights": [1, 2]})")), Error);
  EXPECT_THROW(Genome::from_json(nlohmann::json::parse(R"({"terms": ["GRAD"], "lr": -1})")), Error);
  EXPECT_THROW(Genome::from_json(nlohmann::json::parse(R"({"terms": ["GRAD"], "beta1": "x"})")), Error);
  EXPECT_THROW(Genome::from_json(nlohmann::json::parse(R"({"format": "other", "terms": ["GRAD"]})")), Error);
  EXPECT_THROW(Genome::from_json(nlohmann::json::parse(R"({"terms": ["GRAD"], "version": 99})")), Error);
  EXPECT_THROW(Genome::from_json(nlohmann::json::parse(R"({"terms": ["GRAD"], "version": 0})")), Error);
  EXPECT_THROW(Genome::from_json(nlohmann::json::parse(R"({"terms": ["GRAD"], "version": "2"})")), Error);
}

TEST(Genome, UnknownKeysAreRejectedNamingTheKey) {
  auto message = [](const char* text) {
    try {
      Genome::from_json(nlohmann::json::parse(text));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message(R"({"terms": [{"term": "GRAD", "wieght": 0.5}]})").find("unknown key 'wieght'"), std::string::npos);
  EXPECT_NE(message(R"({"terms": ["GRAD"], "learning_rat": 0.1})").find("unknown key 'learning_rat'"), std::string::npos);
  EXPECT_EQ(message(R"({"terms": [{"term": "GRAD", "weight": 0.5}], "lr": 0.1})"), "accepted");
}

TEST(Genome, Version1FilesKeepTheirOldMeaning) {
  // v1 LION read the genome's m; v1 NESTEROV with bias correction was β1·m̂ + (1−β1)·g.
  const Genome lion = Genome::from_json(nlohmann::json::parse(R"({"format": "evoopt.genome", "version": 1,
      "terms": [{"term": "LION", "weight": 1.0}], "bias_correction": false})"));
  EXPECT_EQ(lion.terms.at(0).term, Term::LionV1);
  const Genome nest = Genome::from_json(nlohmann::json::parse(R"({"version": 1, "terms": ["NESTEROV"], "bias_correction": true})"));
  EXPECT_EQ(nest.terms.at(0).term, Term::NesterovV1);
  // Without bias correction v1's NESTEROV already was today's.
  const Genome plain = Genome::from_json(nlohmann::json::parse(R"({"version": 1, "terms": ["NESTEROV"], "bias_correction": false})"));
  EXPECT_EQ(plain.terms.at(0).term, Term::Nesterov);
  // The current version reads the names as today's terms and writes version 2.
  const Genome now = Genome::from_json(nlohmann::json::parse(R"({"version": 2, "terms": ["LION", "NESTEROV"]})"));
  EXPECT_EQ(now.terms.at(0).term, Term::Lion);
  EXPECT_EQ(now.terms.at(1).term, Term::Nesterov);
  // A legacy genome round-trips under its legacy name.
  EXPECT_EQ(Genome::from_json(lion.to_json()), lion);
  EXPECT_EQ(lion.to_json()["terms"][0]["term"], "LION_V1");
}

TEST(Genome, LoadsTheGenomeFoundByAnotherTool) {
  const Genome g = foreign_genome();
  EXPECT_NO_THROW(g.validate());
  ASSERT_EQ(g.terms.size(), 4u);
  EXPECT_NEAR(g.lr(), 1.2e-3, 1e-15);
  EXPECT_NEAR(g.eps(), 5.4e-9, 1e-22);
  EXPECT_NEAR(g.weight_decay(), 9.7e-4, 1e-16);
  EXPECT_EQ(g.beta1, 0.855);
  EXPECT_EQ(g.beta2, 0.936);
  EXPECT_FALSE(g.bias_correction);
  EXPECT_GT(g.warmup_fraction, 0.0);
  EXPECT_TRUE(g.cosine_decay);
  const Genome c = g.canonical();
  ASSERT_EQ(c.terms.size(), 2u);
  EXPECT_EQ(c.terms[0].term, Term::AdamTerm);  // registry order
  EXPECT_DOUBLE_EQ(c.terms[0].weight, 3.63);
  EXPECT_EQ(c.terms[1].term, Term::SignGrad);
  EXPECT_DOUBLE_EQ(c.terms[1].weight, 0.41 + 0.32);
  EXPECT_EQ(g.formula(), "Δθ = −η·(3.63·m/(√v+ε) + 0.73·sign(g)) − η·λ·θ");
}

TEST(Genome, CanonicalFormAndHashAreStable) {
  Genome a = preset("adam");
  Genome b = a;
  b.terms = {{Term::AdamTerm, 0.25}, {Term::Grad, 0.0}, {Term::AdamTerm, 0.75}};
  EXPECT_EQ(a.canonical(), b.canonical());
  EXPECT_EQ(a.hash(), b.hash());
  // Genes the update cannot see do not change the hash.
  Genome s = preset("sgd");
  Genome s2 = s;
  s2.beta2 = 0.5;
  s2.log10_eps = -5;
  EXPECT_EQ(s.hash(), s2.hash());
  // Genes it can see do.
  Genome a2 = a;
  a2.beta2 = 0.99;
  EXPECT_NE(a.hash(), a2.hash());
  a2 = a;
  a2.log10_lr = std::nextafter(a.log10_lr, 0.0);
  EXPECT_NE(a.hash(), a2.hash());
  // Distinct across presets.
  std::set<std::uint64_t> hashes;
  for (const auto& n : preset_names()) hashes.insert(preset(n).hash());
  EXPECT_EQ(hashes.size(), preset_names().size());
  // Pinned: identical across runs, builds and machines.
  EXPECT_EQ(preset("adam").hash_hex(), "67c1262e8a235a57");
  EXPECT_EQ(foreign_genome().hash_hex(), foreign_genome().canonical().hash_hex());
}

TEST(Genome, DistanceOnHandComputedExamples) {
  const Genome adam = preset("adam");
  Genome faster = adam;
  faster.log10_lr = -2.0;  // one gene of ten moves by 1 of its range 8: (1/8)/10/2
  EXPECT_DOUBLE_EQ(genome_distance(adam, faster), 0.5 * (0.125 / 10));
  Genome mixed = adam;
  mixed.terms = {{Term::AdamTerm, 1.0}, {Term::SignGrad, 1.0}};  // term part: |0|+|1| over 1+2
  EXPECT_DOUBLE_EQ(genome_distance(adam, mixed), 0.5 * (1.0 / 3.0));
  Genome split = adam;
  split.terms = {{Term::AdamTerm, 0.5}, {Term::AdamTerm, 0.5}};  // same canonical form
  EXPECT_EQ(genome_distance(adam, split), 0.0);
  EXPECT_GT(genome_distance(adam, preset("sgd")), 0.5);  // no shared term
}

TEST(Genome, FormulaStrings) {
  EXPECT_EQ(preset("adam").formula(), "Δθ = −η·(1.00·m̂/(√v̂+ε))");
  EXPECT_EQ(preset("adamw").formula(), "Δθ = −η·(1.00·m̂/(√v̂+ε)) − η·λ·θ");
  EXPECT_EQ(preset("sgd").formula(), "Δθ = −η·(1.00·m)");
  Genome g = preset("adam");
  g.terms = {{Term::SignGrad, -0.5}, {Term::AdamTerm, 2.0}};
  EXPECT_EQ(g.formula(), "Δθ = −η·(2.00·m̂/(√v̂+ε) − 0.50·sign(g))");
  EXPECT_NE(preset("adam").hyperparameters().find("η = 0.001"), std::string::npos);
  Genome l2 = preset("adam");
  l2.log10_weight_decay = -4;
  l2.decoupled_weight_decay = false;
  EXPECT_EQ(l2.formula(), "Δθ = −η·(1.00·m̂/(√v̂+ε)),  g ← g + λ·θ");
  EXPECT_NE(l2.hash(), preset("adamw").hash());
}

TEST(Genome, PresetsAndLoading) {
  for (const auto& n : preset_names()) EXPECT_NO_THROW(preset(n).validate()) << n;
  EXPECT_THROW(preset("adagrad"), Error);
  EXPECT_EQ(load_genome("lion-like"), preset("lion"));  // format v1's name for the preset
  evoopt::test::TempDir tmp;
  save_genome(foreign_genome(), (tmp / "g.json").string());
  EXPECT_EQ(load_genome((tmp / "g.json").string()), foreign_genome());
  EXPECT_EQ(load_genome("rmsprop"), preset("rmsprop"));
  std::ofstream(tmp / "bad.json") << "{ not json";
  try {
    load_genome((tmp / "bad.json").string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.json: malformed JSON"), std::string::npos);
  }
  EXPECT_THROW(load_genome("/no/such/genome.json"), Error);
}
