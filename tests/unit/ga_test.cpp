// Genetic operators and the GA on a synthetic fitness: invariants, search quality against
// random search, interrupt-and-resume, lineage (issue 5). Worker counts and racing on real
// MNIST: tests/integration/ga_integration_test.cpp.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/ga/operators.hpp"
#include "test_support.hpp"

using namespace evoopt;
using namespace evoopt::ga;
using genome::Genome;
using genome::Term;

namespace {

Genome hidden_target() {
  Genome t;
  t.terms = {{Term::SignGrad, 0.5}, {Term::AdamTerm, 1.5}};
  t.log10_lr = -2.5;
  t.beta1 = 0.85;
  t.beta2 = 0.99;
  t.log10_eps = -8.0;
  t.bias_correction = true;
  t.cosine_decay = true;
  return t;
}

// Distance to the hidden target in gene space (0 = identical behaviour).
double distance(const Genome& g0, const Genome& t0) {
  const Genome g = g0.canonical(), t = t0.canonical();
  auto weight = [](const Genome& x, Term term) {
    for (const auto& tg : x.terms)
      if (tg.term == term) return tg.weight;
    return 0.0;
  };
  double d = std::fabs(g.log10_lr - t.log10_lr) + 5 * std::fabs(g.beta1 - t.beta1) + std::fabs(std::log10(1 - g.beta2) - std::log10(1 - t.beta2)) +
             0.2 * std::fabs(g.log10_eps - t.log10_eps);
  for (const auto& info : genome::term_registry()) d += std::fabs(weight(g, info.id) - weight(t, info.id));
  d += 0.5 * (g.bias_correction != t.bias_correction) + 0.5 * (g.cosine_decay != t.cosine_decay) +
       0.5 * (g.log10_weight_decay.has_value() != t.log10_weight_decay.has_value()) + 0.5 * ((g.warmup_fraction > 0) != (t.warmup_fraction > 0)) +
       0.5 * (g.clip_norm.has_value() != t.clip_norm.has_value());
  return d;
}

double synthetic_fitness(const Genome& g) { return 1.0 / (1.0 + distance(g, hidden_target())); }

GaOptions synthetic_options(std::uint64_t seed) {
  GaOptions o;
  o.population = 20;
  o.generations = 60;
  o.seed = seed;
  o.tasks = {"synthetic"};
  o.space.vocabulary = genome::Vocabulary::Seed;
  o.anneal = true;
  return o;
}

}  // namespace

TEST(Operators, InvariantsHoldOverThousandsOfDraws) {
  for (auto vocab : {genome::Vocabulary::Seed, genome::Vocabulary::Extended})
    for (int max_terms : {1, 2, 4}) {
      SearchSpace space;
      space.vocabulary = vocab;
      space.max_terms = max_terms;
      const auto allowed = genome::vocabulary_terms(vocab);
      auto check = [&](const Genome& g) {
        ASSERT_NO_THROW(g.validate(max_terms)) << g.to_json().dump();
        ASSERT_GE(g.terms.size(), 1u);
        ASSERT_LE(static_cast<int>(g.terms.size()), max_terms);
        for (const auto& t : g.terms) ASSERT_NE(std::find(allowed.begin(), allowed.end(), t.term), allowed.end());
      };
      Rng rng(max_terms * 7 + static_cast<int>(vocab));
      MutationOptions strong;
      strong.gene_rate = 1.0;
      strong.structural_rate = 1.0;
      strong.flip_rate = 0.5;
      strong.strength = 5.0;  // far larger nudges than the defaults: bounds must still hold
      std::vector<Genome> pool;
      for (int i = 0; i < 1000; ++i) {
        Genome g = random_genome(space, rng);
        check(g);
        pool.push_back(g);
      }
      for (int i = 0; i < 3000; ++i) {
        const Genome& a = pool[rng.below(pool.size())];
        const Genome& b = pool[rng.below(pool.size())];
        Genome c = crossover(a, b, space, rng);
        check(c);
        Genome m = mutate(c, space, i % 2 ? strong : MutationOptions{}, rng);
        check(m);
        pool[rng.below(pool.size())] = m;
      }
    }
}

// The population diversity measure: a distance in [0, 1], symmetric, 0 exactly for
// genomes with the same canonical form, over thousands of random pairs.
TEST(Operators, GenomeDistanceIsABoundedSymmetricMeasureOverRandomPairs) {
  SearchSpace space;
  space.vocabulary = genome::Vocabulary::Extended;
  Rng rng(11);
  double sum = 0;
  for (int i = 0; i < 3000; ++i) {
    const Genome a = random_genome(space, rng), b = random_genome(space, rng);
    const double d = genome::genome_distance(a, b);
    ASSERT_GE(d, 0.0);
    ASSERT_LE(d, 1.0);
    ASSERT_EQ(d, genome::genome_distance(b, a));
    ASSERT_EQ(genome::genome_distance(a, a), 0.0);
    if (a.hash() != b.hash()) ASSERT_GT(d, 0.0) << a.to_json().dump() << " " << b.to_json().dump();
    sum += d;
  }
  // Random genomes are far apart on average; a small mutation is close.
  EXPECT_GT(sum / 3000, 0.2);
  const Genome g = random_genome(space, rng);
  Genome near = g;
  near.log10_lr += 0.1;
  EXPECT_LT(genome::genome_distance(g, near), 0.01);
}

TEST(Operators, AreDeterministicInTheRngAndCrossoverIsSinglePoint) {
  SearchSpace space;
  Rng r1(5), r2(5);
  EXPECT_EQ(random_genome(space, r1), random_genome(space, r2));
  Genome a = genome::preset("adam"), b = genome::preset("sgd");
  a.terms = {{Term::Grad, 1.0}, {Term::Momentum, 2.0}};
  b.terms = {{Term::SignGrad, 3.0}, {Term::RmsNorm, 4.0}};
  Rng rng(1);
  for (int i = 0; i < 200; ++i) {
    Genome c = crossover(a, b, space, rng);
    // child = a[:i] + b[j:]: a prefix of a's terms followed by a suffix of b's.
    std::size_t k = 0;
    while (k < c.terms.size() && k < a.terms.size() && c.terms[k] == a.terms[k]) ++k;
    const std::size_t rest = c.terms.size() - k;
    for (std::size_t q = 0; q < rest; ++q) {
      const auto& t = c.terms[k + q];
      const bool from_b = rest <= b.terms.size() && t == b.terms[b.terms.size() - rest + q];
      const bool fallback = c.terms.size() == 1;
      EXPECT_TRUE(from_b || fallback);
    }
    // Scalars come from one parent or the other.
    EXPECT_TRUE(c.log10_lr == a.log10_lr || c.log10_lr == b.log10_lr);
    EXPECT_TRUE(c.beta2 == a.beta2 || c.beta2 == b.beta2);
  }
  // Tournament: k = population always finds the best; k = 1 is uniform.
  std::vector<double> f = {0.1, 0.9, 0.5};
  for (int i = 0; i < 50; ++i) EXPECT_EQ(tournament_select(f, 3 * 10, rng), 1u);
  std::vector<int> hits(3, 0);
  for (int i = 0; i < 3000; ++i) hits[tournament_select(f, 1, rng)]++;
  for (int h : hits) EXPECT_GT(h, 800);
}

TEST(GeneticAlgorithm, FindsAHiddenTargetAndBeatsRandomSearch) {
  int found = 0;
  double ga_total = 0, random_total = 0;
  const int trials = 5;
  for (int trial = 0; trial < trials; ++trial) {
    eval::SyntheticEvaluator ev([](const Genome& g, const std::string&, std::uint64_t) { return synthetic_fitness(g); });
    GeneticAlgorithm ga(synthetic_options(100 + trial), ev);
    GaOutcome out = ga.run();
    ASSERT_TRUE(out.completed);
    const double d = distance(out.best.genome, hidden_target());
    found += d < 0.5;
    ga_total += out.best.fitness;
    // Random search with the same number of evaluations.
    Rng rng(1000 + trial);
    SearchSpace space;
    space.vocabulary = genome::Vocabulary::Seed;
    double best_random = 0;
    for (std::size_t i = 0; i < ev.calls(); ++i) best_random = std::max(best_random, synthetic_fitness(random_genome(space, rng)));
    random_total += best_random;
    EXPECT_GT(out.best.fitness, best_random) << "trial " << trial;
    std::printf("trial %d: GA best %.3f (distance %.3f, %zu evaluations), random best %.3f\n", trial, out.best.fitness, d, ev.calls(), best_random);
  }
  EXPECT_GE(found, 4) << "GA reached the target (distance < 0.5) in " << found << " of " << trials << " trials";
  EXPECT_GT(ga_total / trials, random_total / trials + 0.1);
}

TEST(GeneticAlgorithm, InterruptAndResumeGiveIdenticalOutputs) {
  auto fn = [](const Genome& g, const std::string& task, std::uint64_t seed) {
    return synthetic_fitness(g) * (task == "a" ? 1.0 : 0.9) + 1e-3 * static_cast<double>(seed % 7);
  };
  GaOptions o = synthetic_options(7);
  o.generations = 6;
  o.tasks = {"a", "b"};
  o.search_seeds = 2;
  test::TempDir tmp;
  eval::SyntheticEvaluator full_ev(fn);
  GaOutcome full = GeneticAlgorithm(o, full_ev, tmp / "full").run();
  ASSERT_TRUE(full.completed);
  // Interrupt after k runs, for several k, then resume (possibly several times).
  for (int stop_every : {1, 7, 33, 150}) {
    const auto dir = tmp / ("cut" + std::to_string(stop_every));
    std::size_t total_calls = 0;
    bool completed = false;
    int sessions = 0;
    while (!completed) {
      ASSERT_LT(++sessions, 1000);
      std::atomic<bool> cancel{false};
      int runs = 0;
      GaEvents ev;
      ev.run_finished = [&](int, int, const train::RunResult&) {
        if (++runs >= stop_every) cancel = true;
      };
      eval::SyntheticEvaluator se(fn);
      GaOutcome part = GeneticAlgorithm(o, se, dir).run(ev, &cancel);
      total_calls += se.calls();
      completed = part.completed;
      EXPECT_TRUE(std::filesystem::exists(dir / "checkpoint.json")) << "an interrupted run always leaves a checkpoint";
    }
    EXPECT_EQ(total_calls, full_ev.calls()) << "a completed run was repeated (stop every " << stop_every << ")";
    EXPECT_EQ(test::csv_without_last_column(read_text_file(dir / "history.csv")),
              test::csv_without_last_column(read_text_file(tmp / "full/history.csv")));
    EXPECT_EQ(read_text_file(dir / "lineage.json"), read_text_file(tmp / "full/lineage.json"));
    EXPECT_EQ(read_text_file(dir / "best_genome.json"), read_text_file(tmp / "full/best_genome.json"));
  }
  // A torn last journal line (crash mid-append) is cut off; runs appended
  // after it are read back by the next resume.
  const auto torn = tmp / "torn";
  std::filesystem::create_directories(torn);
  const auto lines = read_journal_lines(tmp / "full/journal.jsonl");
  {
    std::ofstream out(torn / "journal.jsonl");
    for (std::size_t i = 0; i < lines.size() / 2; ++i) out << lines[i] << "\n";
    out << "{\"hash\": \"00";
  }
  std::atomic<bool> cancel{false};
  int runs = 0;
  GaEvents stop_soon;
  stop_soon.run_finished = [&](int, int, const train::RunResult&) { cancel = ++runs >= 5; };
  eval::SyntheticEvaluator first(fn);
  EXPECT_FALSE(GeneticAlgorithm(o, first, torn).run(stop_soon, &cancel).completed);
  eval::SyntheticEvaluator second(fn);
  GaOutcome r = GeneticAlgorithm(o, second, torn).run();
  EXPECT_TRUE(r.completed);
  EXPECT_EQ(first.calls() + second.calls() + lines.size() / 2, full_ev.calls());
  EXPECT_EQ(test::csv_without_last_column(read_text_file(torn / "history.csv")),
            test::csv_without_last_column(read_text_file(tmp / "full/history.csv")));
}

TEST(GeneticAlgorithm, RecordsLineageAndRejectsBadOptions) {
  eval::SyntheticEvaluator ev([](const Genome& g, const std::string&, std::uint64_t) { return synthetic_fitness(g); });
  GaOptions o = synthetic_options(1);
  o.generations = 3;
  test::TempDir tmp;
  GaOutcome out = GeneticAlgorithm(o, ev, tmp.path()).run();
  auto lineage = nlohmann::json::parse(read_text_file(tmp / "lineage.json"));
  const auto& inds = lineage["individuals"];
  EXPECT_EQ(inds.size(), 60u);
  EXPECT_EQ(inds[0]["origin"], "seed:sgd");
  EXPECT_EQ(inds[1]["origin"], "seed:adam");
  EXPECT_EQ(inds[2]["origin"], "seed:rmsprop");
  int elites = 0, crossed = 0;
  for (const auto& i : inds) {
    if (i["generation"] == 0) continue;
    EXPECT_FALSE(i["parents"].empty());
    elites += i["origin"] == "elite";
    crossed += i["origin"] == "crossover";
  }
  EXPECT_EQ(elites, 4);  // 2 per bred generation
  EXPECT_GT(crossed, 0);
  auto best = nlohmann::json::parse(read_text_file(tmp / "best_genome.json"));
  EXPECT_EQ(best["validation_fitness"].get<double>(), out.best.fitness);
  EXPECT_EQ(genome::load_genome((tmp / "best_genome.json").string()), out.best.genome);
  const std::string csv = read_text_file(tmp / "history.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "generation,best,mean,median,std,best_synthetic,diversity,gene_distance,evaluations,reused,steps_saved,seconds");
  EXPECT_EQ(test::count_lines(csv), 4);
  GaOptions bad = o;
  bad.population = 1;
  EXPECT_THROW(GeneticAlgorithm(bad, ev), Error);
  bad = o;
  bad.elites = 20;
  EXPECT_THROW(GeneticAlgorithm(bad, ev), Error);
  bad = o;
  bad.tasks.clear();
  EXPECT_THROW(GeneticAlgorithm(bad, ev), Error);
}
