// ga::GeneticStrategy through its ask/tell interface alone (no evaluator, no training): the
// first generation, elites and children bred from the population last told, ids, and the
// same proposals from the same RNG state.
#include <set>

#include <gtest/gtest.h>

#include "evoopt/ga/genetic_algorithm.hpp"

using namespace evoopt;
using namespace evoopt::ga;

namespace {
GaOptions options() {
  GaOptions o;
  o.population = 8;
  o.generations = 3;
  o.elites = 2;
  o.tasks = {"a"};
  return o;
}
}  // namespace

TEST(GeneticStrategy, AsksTheDefaultPresetsThenRandomGenomesWithIdsInOrder) {
  GeneticStrategy s(options(), 100);
  Rng rng(7);
  const auto first = s.ask_initial(rng);
  ASSERT_EQ(first.size(), 8u);
  const auto presets = default_seed_presets(options().space.vocabulary);
  for (std::size_t k = 0; k < first.size(); ++k) {
    EXPECT_EQ(first[k].id, k);
    EXPECT_EQ(first[k].origin, k < presets.size() ? "seed:" + presets[k] : std::string("random"));
  }
  EXPECT_EQ(s.next_id, 8u);
}

TEST(GeneticStrategy, BreedsTheNextGenerationFromThePopulationItWasTold) {
  GeneticStrategy s(options(), 100);
  Rng rng(7);
  auto told = s.ask_initial(rng);
  for (std::size_t k = 0; k < told.size(); ++k) told[k].fitness = 0.1 * static_cast<double>(k % 5);  // best: id 4, then id 3
  s.tell(told);
  const Rng before = rng;
  const std::uint64_t id_before = s.next_id;
  const auto next = s.ask_generation(1, rng);
  ASSERT_EQ(next.size(), 8u);
  // Elites: the best two by fitness (ties by id), copied with new ids.
  EXPECT_EQ(next[0].origin, "elite");
  EXPECT_EQ(next[0].parents, std::vector<std::uint64_t>{4});
  EXPECT_EQ(next[1].parents, std::vector<std::uint64_t>{3});
  EXPECT_EQ(next[0].genome.hash(), told[4].genome.hash());
  std::set<std::uint64_t> told_ids;
  for (const auto& i : told) told_ids.insert(i.id);
  for (std::size_t k = 0; k < next.size(); ++k) {
    EXPECT_EQ(next[k].id, id_before + k);
    EXPECT_EQ(next[k].generation, 1);
    for (auto p : next[k].parents) EXPECT_TRUE(told_ids.count(p)) << "a parent outside the population told";
  }
  // The same state asks the same generation.
  GeneticStrategy again(options(), 100);
  again.next_id = id_before;
  again.tell(told);
  Rng rng2 = before;
  const auto replay = again.ask_generation(1, rng2);
  for (std::size_t k = 0; k < next.size(); ++k) EXPECT_EQ(replay[k].genome.hash(), next[k].genome.hash());
  // Steady state: one child at a time from the same population.
  const Individual child = s.ask_child(2, rng);
  EXPECT_EQ(child.id, id_before + 8);
  EXPECT_TRUE(child.origin == "crossover" || child.origin == "mutation");
}
