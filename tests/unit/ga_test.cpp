// Genetic operators and the GA on a synthetic fitness: invariants, search
// quality against random search, interrupt-and-resume, worker counts (issue 5).
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/eval/process_evaluator.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/ga/operators.hpp"
#include "test_support.hpp"

using namespace evoopt;
using namespace evoopt::ga;
using genome::Genome;
using genome::Term;

namespace {

// The racing tests' search: 6 genomes, 2 generations, 16-step runs on a small MNIST.
std::map<std::string, task::Task> racing_tasks() { return {{"mnist", task::load_task("mnist", test::small_mnist_options())}}; }
train::Budget racing_budget() {
  train::Budget b;
  b.steps = 16;
  return b;
}
GaOptions racing_options(bool continue_runs) {
  GaOptions o;
  o.population = 6;
  o.generations = 2;
  o.tasks = {"mnist"};
  o.seed = 4;
  o.racing.enabled = true;
  o.racing.continue_runs = continue_runs;
  o.racing.rungs = {0.25, 0.5};  // the counts below are for these rungs, not the default's
  o.racing.rung_val_size = 100;
  return o;
}
// The steps racing saved over a search's generations.
std::int64_t steps_saved(const GaOutcome& out) {
  std::int64_t saved = 0;
  for (const auto& r : out.history) saved += r.steps_saved;
  return saved;
}
// The search of `o`, stopped after `cut_after` runs trained in generation `generation` in
// DIR/cut_G_N and resumed there, ends with DIR/full's history and lineage. A cut in a
// generation >= 1 resumes from the checkpoint of the one before (its elites already trained
// the full budget and must not be raced again).
void expect_cut_search_resumes_identically(const GaOptions& o, eval::Evaluator& ev, const std::filesystem::path& dir, int cut_after,
                                           int generation = 0) {
  const std::filesystem::path cut = dir / ("cut_" + std::to_string(generation) + "_" + std::to_string(cut_after));
  std::atomic<bool> cancel{false};
  int finished = 0, current = -1;
  GaEvents stop_soon;
  stop_soon.generation_started = [&](int g, int) { current = g; };
  stop_soon.run_finished = [&](int, int, const train::RunResult&) {
    if (current == generation && ++finished == cut_after) cancel = true;
  };
  EXPECT_FALSE(GeneticAlgorithm(o, ev, cut).run(stop_soon, &cancel).completed);
  ASSERT_TRUE(GeneticAlgorithm(o, ev, cut).run().completed);
  EXPECT_EQ(test::csv_without_last_column(read_text_file(cut / "history.csv")),
            test::csv_without_last_column(read_text_file(dir / "full/history.csv")))
      << "cut in generation " << generation;
  EXPECT_EQ(read_text_file(cut / "lineage.json"), read_text_file(dir / "full/lineage.json")) << "cut in generation " << generation;
}

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

// In this process, and in 2 and 3 worker processes (the real evoopt binary): one history.
TEST(GeneticAlgorithm, HistoryIsIdenticalWithOneTwoAndThreeWorkerProcesses) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const task::TaskOptions to = test::small_mnist_options();
  std::map<std::string, task::Task> tasks = {{"mnist", task::load_task("mnist", to)}};
  train::Budget b;
  b.steps = 15;
  GaOptions o;
  o.population = 4;
  o.generations = 2;
  o.tasks = {"mnist"};
  o.seed = 3;
  test::TempDir tmp;
  eval::LocalEvaluator one(tasks, b);
  eval::ProcessEvaluator two(tasks, to, b, 2, EVOOPT_CLI), three(tasks, to, b, 3, EVOOPT_CLI);
  GaOutcome a = GeneticAlgorithm(o, one, tmp / "w1").run();
  GaOutcome c = GeneticAlgorithm(o, two, tmp / "w2").run();
  GaOutcome d = GeneticAlgorithm(o, three, tmp / "w3").run();
  ASSERT_TRUE(a.completed && c.completed && d.completed);
  for (const char* dir : {"w2", "w3"}) {
    EXPECT_EQ(test::csv_without_last_column(read_text_file(tmp / "w1/history.csv")),
              test::csv_without_last_column(read_text_file(tmp / dir / "history.csv")))
        << dir;
    EXPECT_EQ(read_text_file(tmp / "w1/lineage.json"), read_text_file(tmp / dir / "lineage.json")) << dir;
  }
  EXPECT_GT(a.best.fitness, 0.1);
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

// Racing (issue 10): new genomes train rungs of 1/4 and 1/2 of the steps first; those raced
// out keep their rung fitness and are marked, are never the winner, the steps saved are
// recorded, and an interrupted racing search resumes to the identical history.
TEST(GeneticAlgorithm, RacingSavesStepsNeverCrownsARacedOutGenomeAndResumesIdentically) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto tasks = racing_tasks();
  const train::Budget b = racing_budget();
  const GaOptions o = racing_options(/*continue_runs=*/false);
  test::TempDir tmp;
  eval::LocalEvaluator ev(tasks, b);
  const GaOutcome full = GeneticAlgorithm(o, ev, tmp / "full").run();
  ASSERT_TRUE(full.completed);
  const std::int64_t saved = steps_saved(full);
  // Generation 0: 6 racers × 16 steps = 96 without racing; with it 6×4 + 2×8 + 1×16 = 56.
  EXPECT_EQ(full.history.front().steps_saved, 40);
  EXPECT_GT(saved, 40);
  const nlohmann::json lineage = read_json_file(tmp / "full/lineage.json");
  int raced = 0;
  for (const auto& i : lineage.at("individuals")) {
    const auto at = i.at("raced_out_at").get<std::int64_t>();
    EXPECT_TRUE(at == 0 || at == 4 || at == 8) << at;
    raced += at > 0;
  }
  EXPECT_GE(raced, 5);
  EXPECT_EQ(full.best.raced_out_at, 0);
  for (const auto& r : full.history)
    for (const auto& i : lineage.at("individuals"))
      if (i.at("id").get<std::uint64_t>() == r.best_id) EXPECT_EQ(i.at("raced_out_at").get<std::int64_t>(), 0) << "generation " << r.generation;
  // Rung runs are in the store under their own steps: an interrupted search resumes to the same history.
  expect_cut_search_resumes_identically(o, ev, tmp.path(), 7);
  expect_cut_search_resumes_identically(o, ev, tmp.path(), 1, /*generation=*/1);
  // Selection ranks a raced-out genome below every genome that went further, whatever its
  // (shorter-run) fitness: the elites are the two full-budget genomes here.
  {
    GaOptions sel = o;
    sel.population = 4;
    GeneticStrategy strategy(sel, ev.default_steps());
    Rng rng(1);
    std::vector<Individual> parents = strategy.ask_initial(rng);
    const double fit[] = {0.5, 0.6, 0.9, 0.95};
    const std::int64_t at[] = {0, 0, 8, 4};
    for (std::size_t k = 0; k < 4; ++k) {
      parents[k].fitness = fit[k];
      parents[k].raced_out_at = at[k];
    }
    strategy.tell(parents);
    const auto next = strategy.ask_generation(1, rng);
    ASSERT_EQ(next[0].origin, "elite");
    EXPECT_EQ(next[0].parents.front(), parents[1].id);
    EXPECT_EQ(next[1].parents.front(), parents[0].id);
  }
  // Bad racing settings are refused naming the field.
  GaOptions bad = o;
  bad.racing.rungs = {0.5, 0.25};
  EXPECT_THROW(bad.validate(), Error);
  bad = o;
  bad.racing.keep = 1.0;
  EXPECT_THROW(bad.validate(), Error);
}

// Racing that continues (issue 10, `continue_runs`): a rung is the first k steps of the full
// run; the next rung and the survivor's full run continue from its saved state. Fewer steps
// are trained, the states are gone at the end, a continued full run is stored under the plain
// full-run key with the uninterrupted run's result, and a cut search resumes identically.
TEST(GeneticAlgorithm, ContinuedRacingTrainsEachSurvivorStepOnceAndResumesIdentically) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto tasks = racing_tasks();
  const train::Budget b = racing_budget();
  const GaOptions o = racing_options(/*continue_runs=*/true);
  test::TempDir tmp;
  eval::LocalEvaluator ev(tasks, b);
  const GaOutcome full = GeneticAlgorithm(o, ev, tmp / "full").run();
  ASSERT_TRUE(full.completed);
  const std::int64_t saved = steps_saved(full);
  // Generation 0: 6 racers × 16 steps = 96 without racing; with it 6×4 rung-1 steps, the 2
  // survivors continue 4 → 8, the last continues 8 → 16: 24 + 8 + 8 = 40 trained, 56 saved.
  EXPECT_EQ(full.history.front().steps_saved, 56);
  EXPECT_GT(saved, 56);
  // Survivors continued from their rungs' saved states, which are gone once used; a continued
  // full run is stored under the plain full-run key with the uninterrupted run's result.
  EXPECT_TRUE(!std::filesystem::exists(tmp / "full/states") || std::filesystem::is_empty(tmp / "full/states"));
  int continued = 0, winner_checked = 0;
  for (const auto& e : eval::RunStore(tmp / "full/journal.jsonl").entries()) {
    if (e.result.resumed_at == 0) continue;
    ++continued;
    EXPECT_EQ(e.key.stop == 0 ? 16 : e.key.stop, e.result.steps_done);
    if (e.key.stop != 0 || e.key.genome != full.best.genome.hash_hex()) continue;
    const eval::RunRequest plain{full.best.genome, "mnist", e.key.seed, data::Split::Val, 16, 0};
    const auto straight = eval::run_request(tasks.at("mnist"), b, plain, nullptr);
    EXPECT_EQ(straight.accuracy, e.result.accuracy);
    EXPECT_EQ(straight.final_loss, e.result.final_loss);
    EXPECT_EQ(straight.resumed_at, 0);
    ++winner_checked;
  }
  EXPECT_GE(continued, 3);  // generation 0 alone: two rung-2 runs and one full run
  EXPECT_EQ(winner_checked, 1);
  EXPECT_EQ(full.best.raced_out_at, 0);
  expect_cut_search_resumes_identically(o, ev, tmp.path(), 8);
  expect_cut_search_resumes_identically(o, ev, tmp.path(), 1, /*generation=*/1);
  // The mode is part of the options' JSON only when on (older run directories keep theirs).
  EXPECT_TRUE(o.to_json().at("racing").value("continue", false));
  GaOptions restart = o;
  restart.racing.continue_runs = false;
  EXPECT_FALSE(restart.to_json().at("racing").contains("continue"));
  EXPECT_TRUE(GaOptions::from_json(o.to_json()).racing.continue_runs);
}
