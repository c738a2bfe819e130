// The quasi-random tuning protocol's parts (experiment/tuning.hpp, issue 27): the shifted
// Halton sequence, every method's search space and the trials drawn from it.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "evoopt/common/error.hpp"
#include "evoopt/experiment/tuning.hpp"

using namespace evoopt;
using namespace evoopt::experiment;

namespace {
// The radical inverse of i in base b, written independently of tuning.cpp.
double radical_inverse(std::size_t i, int b) {
  double x = 0, scale = 1.0 / b;
  while (i > 0) {
    x += scale * static_cast<double>(i % static_cast<std::size_t>(b));
    i /= static_cast<std::size_t>(b);
    scale /= b;
  }
  return x;
}
}  // namespace

TEST(Tuning, HaltonPointsAreTheSequenceShiftedByOneSeededVector) {
  const auto p = shifted_halton(16, 3, 42);
  ASSERT_EQ(p.size(), 16u);
  const int bases[] = {2, 3, 5};
  for (int k = 0; k < 3; ++k) {
    // The shift is the same for every point: p_i − h_i is constant modulo 1.
    const double shift = std::fmod(p[0][k] - radical_inverse(1, bases[k]) + 1.0, 1.0);
    for (std::size_t i = 0; i < p.size(); ++i) {
      EXPECT_GE(p[i][k], 0.0);
      EXPECT_LT(p[i][k], 1.0);
      EXPECT_NEAR(std::fmod(radical_inverse(i + 1, bases[k]) + shift, 1.0), p[i][k], 1e-12) << "point " << i << ", dimension " << k;
    }
  }
  EXPECT_EQ(shifted_halton(16, 3, 42), p);
  EXPECT_NE(shifted_halton(16, 3, 43), p);
  // Quasi-random: the first 8 points of base 2 fall into 8 different eighths (shifted or not).
  std::set<int> eighths;
  for (std::size_t i = 0; i < 8; ++i) eighths.insert(static_cast<int>(std::floor(std::fmod(p[i][0] - p[0][0] + 1.5, 1.0) * 8)));
  EXPECT_EQ(eighths.size(), 8u);
}

TEST(Tuning, EveryBaselineHasASpaceAndItsTrialsLieInIt) {
  for (const auto& name : genome::preset_names()) {
    SCOPED_TRACE(name);
    const SearchSpace s = search_space(name);
    EXPECT_FALSE(s.source.empty());
    const auto trials = quasirandom_trials(s, 16, 7);
    ASSERT_EQ(trials.size(), 16u);
    std::set<std::uint64_t> distinct;
    for (const auto& g : trials) {
      EXPECT_NO_THROW(g.validate(genome::Bounds::kHardMaxTerms));
      EXPECT_EQ(g.algorithm, genome::preset(name).algorithm);
      EXPECT_EQ(g.warmup_fraction, 0.05);
      EXPECT_EQ(g.cosine_decay, g.algorithm != genome::Algorithm::ScheduleFreeAdamW);
      distinct.insert(g.hash());
      for (const auto& d : s.dims) {
        double v = 0;
        if (d.name == "lr") v = g.lr();
        if (d.name == "torch_sgd_lr") v = g.lr() * (1 - g.beta1);
        if (d.name == "one_minus_beta1") v = 1 - g.beta1;
        if (d.name == "weight_decay") v = g.weight_decay();
        if (d.name == "aux_lr") v = g.aux_lr();
        EXPECT_GE(v, d.lo * (1 - 1e-12)) << d.name;
        EXPECT_LE(v, d.hi * (1 + 1e-12)) << d.name;
      }
    }
    EXPECT_EQ(distinct.size(), 16u);
    EXPECT_EQ(quasirandom_trials(s, 16, 7), trials);  // seeded
    EXPECT_NE(quasirandom_trials(s, 16, 8), trials);
  }
  // AlgoPerf's NAdamW ranges, as published.
  const SearchSpace adamw = search_space("adamw");
  ASSERT_EQ(adamw.dims.size(), 3u);
  EXPECT_EQ(adamw.dims[0].lo, 1e-4);
  EXPECT_EQ(adamw.dims[0].hi, 1e-2);
  EXPECT_EQ(adamw.dims[1].lo, 4e-3);
  EXPECT_EQ(adamw.dims[2].hi, 1.0);
  EXPECT_THROW(search_space("adafactor"), Error);
}

TEST(Tuning, TheEvolvedGenomeIsTunedAroundItsOwnRateAndDecay) {
  genome::Genome g = genome::preset("adamw");
  g.terms = {{genome::Term::AdamTerm, 2.0}, {genome::Term::Lion, 1.0}};
  g.log10_lr = -3.3;
  g.log10_weight_decay = -4.0;
  g.warmup_fraction = 0.1;
  g.cosine_decay = true;
  g.clip_norm = 1.0;
  const SearchSpace s = evolved_search_space(g);
  ASSERT_EQ(s.dims.size(), 3u);  // η, λ and the regime
  std::set<double> warmups;
  for (const auto& t : quasirandom_trials(s, 16, 3)) {
    EXPECT_EQ(t.terms, g.terms);  // its rule stays; its regime or AlgoPerf's
    const Regime r = regime_of(t);
    EXPECT_TRUE(r == regime_of(g) || r == algoperf_regime()) << r.describe();
    warmups.insert(t.warmup_fraction);
    EXPECT_LE(std::abs(t.log10_lr - g.log10_lr), 1.0 + 1e-12);
    EXPECT_LE(std::abs(*t.log10_weight_decay - *g.log10_weight_decay), 1.0 + 1e-12);
  }
  EXPECT_EQ(warmups.size(), 2u);  // both regimes tried
  g.log10_weight_decay.reset();
  EXPECT_EQ(evolved_search_space(g).dims.size(), 2u);  // no decay: its rate and the regime
  apply_regime(g, algoperf_regime());
  EXPECT_EQ(evolved_search_space(g).dims.size(), 1u);  // in AlgoPerf's regime already: its rate alone
}

// Given the evolved genome, every baseline may take its schedule and clipping too, so only
// the rules differ; about half of the trials in each regime.
TEST(Tuning, EveryMethodIsOfferedTheEvolvedRegime) {
  genome::Genome evolved = genome::preset("adam");
  evolved.warmup_fraction = 0.19;
  evolved.cosine_decay = true;
  evolved.clip_norm = 1.0;
  for (const auto& name : genome::preset_names()) {
    SCOPED_TRACE(name);
    const SearchSpace s = search_space(name, &evolved);
    EXPECT_EQ(s.dims.size(), search_space(name).dims.size() + 1);
    EXPECT_NE(s.source.find("warmup 19% + cosine, clip 1"), std::string::npos) << s.source;
    int own = 0;
    const auto trials = quasirandom_trials(s, 16, 7);
    for (const auto& g : trials) {
      const bool sf = g.algorithm == genome::Algorithm::ScheduleFreeAdamW;
      EXPECT_EQ(g.cosine_decay, !sf);
      if (g.warmup_fraction == 0.19) {
        EXPECT_EQ(g.clip_norm, std::optional<double>(1.0));
        ++own;
      } else {
        EXPECT_EQ(g.warmup_fraction, 0.05);
        EXPECT_FALSE(g.clip_norm);
      }
    }
    EXPECT_GE(own, 7);  // the regime is the Halton sequence's base-2 coordinate: trials alternate
    EXPECT_LE(own, 9);
    for (std::size_t n : {3, 4, 5}) {  // few trials still try both
      std::set<double> warmups;
      for (const auto& g : quasirandom_trials(s, n, 11)) warmups.insert(g.warmup_fraction);
      EXPECT_EQ(warmups.size(), 2u) << n;
    }
  }
}
