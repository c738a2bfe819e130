// eval::successive_halving, the one evaluator behind racing and baseline tuning: which
// candidates each rung scores, the cut (fitness descending, ties by candidate order), and
// racing's "a race of one is no race".
#include <gtest/gtest.h>

#include "evoopt/eval/halving.hpp"

using evoopt::eval::Halving;
using evoopt::eval::successive_halving;

namespace {
Halving keep_half(std::size_t rungs) {
  Halving h;
  h.rungs = rungs;
  h.keep = [](std::size_t, std::size_t alive) { return (alive + 1) / 2; };
  return h;
}
}  // namespace

TEST(SuccessiveHalving, EachRungScoresTheSurvivorsOfTheOneBeforeInCandidateOrder) {
  const std::vector<double> fitness = {0.1, 0.9, 0.5, 0.7, 0.3, 0.8};
  std::vector<std::vector<std::size_t>> scored;
  Halving h = keep_half(3);
  std::vector<std::vector<std::size_t>> cuts;
  h.on_cut = [&](std::size_t, const std::vector<std::size_t>& cut) { cuts.push_back(cut); };
  const auto survivors = successive_halving(fitness.size(), h, [&](std::size_t, const std::vector<std::size_t>& alive) {
    scored.push_back(alive);
    std::vector<double> f;
    for (std::size_t i : alive) f.push_back(fitness[i]);
    return f;
  });
  ASSERT_EQ(scored.size(), 3u);
  EXPECT_EQ(scored[0], (std::vector<std::size_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(scored[1], (std::vector<std::size_t>{1, 3, 5}));
  EXPECT_EQ(scored[2], (std::vector<std::size_t>{1, 5}));
  EXPECT_EQ(survivors, (std::vector<std::size_t>{1}));
  EXPECT_EQ(cuts, (std::vector<std::vector<std::size_t>>{{0, 2, 4}, {3}, {5}}));
}

TEST(SuccessiveHalving, TiesGoToTheEarlierCandidateAndAtLeastOneGoesOn) {
  Halving h;
  h.rungs = 2;
  h.keep = [](std::size_t rung, std::size_t) { return rung == 0 ? std::size_t{2} : std::size_t{0}; };  // 0 is clamped to 1
  const auto survivors =
      successive_halving(4, h, [](std::size_t, const std::vector<std::size_t>& alive) { return std::vector<double>(alive.size(), 0.5); });
  EXPECT_EQ(survivors, (std::vector<std::size_t>{0}));
}

TEST(SuccessiveHalving, RacingStopsWhenOneIsLeftTuningScoresItAtEveryRung) {
  int calls = 0;
  const auto score = [&](std::size_t, const std::vector<std::size_t>& alive) {
    ++calls;
    return std::vector<double>(alive.size(), 1.0);
  };
  Halving racing = keep_half(3);
  racing.stop_at_one = true;
  EXPECT_EQ(successive_halving(1, racing, score), (std::vector<std::size_t>{0}));
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(successive_halving(1, keep_half(3), score), (std::vector<std::size_t>{0}));
  EXPECT_EQ(calls, 3);
}

TEST(SuccessiveHalving, AScoreCountThatDoesNotMatchIsAnError) {
  EXPECT_THROW(successive_halving(3, keep_half(1), [](std::size_t, const std::vector<std::size_t>&) { return std::vector<double>{1.0}; }),
               std::logic_error);
}
