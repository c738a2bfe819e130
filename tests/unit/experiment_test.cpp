// Comparison statistics, baseline sweeps, config files, gain attribution and tuning on
// synthetic fitnesses (issue 6). That selection never sees the test split (real MNIST) and the
// CLI's flag checks: tests/integration/experiment_integration_test.cpp.
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/experiment/stats.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "test_support.hpp"

using namespace evoopt;
using namespace evoopt::experiment;

TEST(Stats, PairedConfidenceIntervalMatchesAHandComputedExample) {
  const std::vector<double> a = {0.80, 0.82, 0.78, 0.85, 0.81};
  const std::vector<double> b = {0.75, 0.80, 0.77, 0.80, 0.79};
  // d = 0.05 0.02 0.01 0.05 0.02: mean 0.03, s = sqrt(0.0014/4) = 0.0187083,
  // se = s/√5 = 0.0083666, t(0.975, 4) = 2.776, half-width 0.0232257.
  const PairedDifference d = paired_difference(a, b);
  EXPECT_NEAR(d.mean, 0.03, 1e-12);
  EXPECT_NEAR(d.stddev, 0.0187083, 1e-6);
  EXPECT_NEAR(d.ci_low, 0.0067743, 1e-6);
  EXPECT_NEAR(d.ci_high, 0.0532257, 1e-6);
  EXPECT_TRUE(d.significant);
  // Swapping the methods mirrors the interval.
  const PairedDifference r = paired_difference(b, a);
  EXPECT_NEAR(r.ci_low, -0.0532257, 1e-6);
  // Noisy, centred differences are not significant.
  const PairedDifference n = paired_difference({0.5, 0.6, 0.4}, {0.55, 0.5, 0.45});
  EXPECT_FALSE(n.significant);
  EXPECT_THROW(paired_difference({1.0}, {1.0}), Error);
  EXPECT_THROW(paired_difference({1.0, 2.0}, {1.0}), Error);
  const Summary s = summarize({1.0, 2.0, 3.0, 4.0});
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.stddev, 1.2909944, 1e-6);
  EXPECT_DOUBLE_EQ(t_quantile_975(1), 12.706);
  EXPECT_NEAR(t_quantile_975(60), 2.000, 2e-3);
  EXPECT_NEAR(t_quantile_975(1000), 1.962, 2e-3);
}

TEST(Sweep, PicksTheBestConfigurationOnASyntheticFitness) {
  // Validation fitness peaks at lr 1e-3, weight decay 1e-4 for adam; test runs are garbage.
  eval::SyntheticEvaluator ev([](const genome::Genome& g, const std::string&, std::uint64_t) {
    return 1.0 - 0.1 * std::fabs(g.log10_lr + 3.0) - 0.1 * std::fabs(g.log10_weight_decay.value_or(-9.0) + 4.0);
  });
  eval::RunStore store;
  RunContext ctx{ev, store};
  BaselineChoice c = sweep_baseline(ctx, "adam", {1e-4, 1e-3, 1e-2}, {1e-5, 1e-4, 1e-3}, {"a", "b"}, 0, 2);
  EXPECT_EQ(c.sweep.size(), 9u);
  EXPECT_EQ(c.best().lr, 1e-3);
  EXPECT_EQ(c.best().wd, 1e-4);
  EXPECT_FALSE(c.best().genome.decoupled_weight_decay);  // adam: torch's L2 weight decay
  EXPECT_EQ(ev.calls(), 9u * 2 * 2);
  // The sgd grid is torch's learning rate: η = lr/(1−β1).
  EXPECT_NEAR(baseline_genome("sgd", 0.01, 0).lr(), 0.1, 1e-12);
  EXPECT_TRUE(baseline_genome("adamw", 1e-3, 1e-2).decoupled_weight_decay);
  EXPECT_FALSE(baseline_genome("rmsprop", 1e-3, 0).log10_weight_decay.has_value());
  // A second sweep finds everything in the journal.
  sweep_baseline(ctx, "adam", {1e-4, 1e-3, 1e-2}, {1e-5, 1e-4, 1e-3}, {"a", "b"}, 0, 2);
  EXPECT_EQ(ev.calls(), 9u * 2 * 2);
}

TEST(Seeds, TestSeedsAreFreshAndDisjointFromSearchSeeds) {
  for (std::uint64_t run : {0ull, 1ull, 12345ull}) {
    const auto t = test_seeds(run, "mnist", 20, 10);
    std::set<std::uint64_t> uniq(t.begin(), t.end());
    EXPECT_EQ(uniq.size(), 20u);
    for (int i = 0; i < 10; ++i) EXPECT_EQ(uniq.count(ga::search_seed(run, "mnist", i)), 0u);
    EXPECT_EQ(test_seeds(run, "mnist", 5, 1), test_seeds(run, "mnist", 5, 1));
  }
}

TEST(Config, TomlFileFlagsPresetsAndErrors) {
  test::TempDir tmp;
  std::ofstream(tmp / "c.toml") << R"(seed = 7
tasks = ["mnist"]
steps = 40
[ga]
population = 6
generations = 3
vocabulary = "seed"
racing = true
racing_continue = true
[data]
train_subset = 1000
[compare]
lr_grid = [0.001]
wd_grid = [0.0]
test_seeds = 2
)";
  ExperimentConfig c;
  c.load_toml(tmp / "c.toml");
  EXPECT_EQ(c.seed, 7u);
  EXPECT_EQ(c.tasks, std::vector<std::string>{"mnist"});
  EXPECT_EQ(c.steps, 40);
  EXPECT_EQ(c.ga.population, 6);
  EXPECT_EQ(c.ga.space.vocabulary, genome::Vocabulary::Seed);
  EXPECT_TRUE(c.ga.racing.enabled && c.ga.racing.continue_runs);
  EXPECT_EQ(c.train_subset, 1000);
  EXPECT_NO_THROW(c.validate());
  // JSON round trip (what config.json and resume use).
  const ExperimentConfig back = ExperimentConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_TRUE(back.ga.racing.continue_runs);
  // The quick preset shrinks every size.
  ExperimentConfig q;
  q.apply_preset("quick");
  ExperimentConfig d;
  EXPECT_LT(q.ga.population, d.ga.population);
  EXPECT_LT(q.ga.generations, d.ga.generations);
  EXPECT_LT(q.steps, d.steps);
  EXPECT_LT(q.val_size, d.val_size);
  EXPECT_GT(q.train_subset, 0);
  EXPECT_THROW(q.apply_preset("huge"), Error);
  // Errors name the file and the key.
  std::ofstream(tmp / "bad.toml") << "[ga]\npopulaton = 3\n";
  try {
    ExperimentConfig e;
    e.load_toml(tmp / "bad.toml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown key ga.populaton"), std::string::npos) << e.what();
  }
  std::ofstream(tmp / "type.toml") << "steps = \"many\"\n";
  ExperimentConfig e;
  EXPECT_THROW(e.load_toml(tmp / "type.toml"), Error);
  std::ofstream(tmp / "syntax.toml") << "steps = = 3\n";
  EXPECT_THROW(e.load_toml(tmp / "syntax.toml"), Error);
  ExperimentConfig v;
  v.tasks = {"mnist", "mnist"};
  EXPECT_THROW(v.validate(), Error);
  v = ExperimentConfig();
  v.compare.test_seeds = 1;
  EXPECT_THROW(v.validate(), Error);
}

TEST(Comparison, EqualBudgetRandomSearchAndPairedTablesOnASyntheticFitness) {
  // Validation and test share one synthetic landscape: adam is best near lr 3e-3.
  eval::SyntheticEvaluator ev([](const genome::Genome& g, const std::string& task, std::uint64_t seed) {
    double base = 0.9 - 0.1 * std::fabs(g.log10_lr - std::log10(3e-3));
    if (g.terms.front().term != genome::Term::AdamTerm) base -= 0.2;
    return base - (task == "b" ? 0.1 : 0.0) + 1e-3 * static_cast<double>(seed % 5);
  });
  eval::RunStore store;
  RunContext ctx{ev, store};
  CompareInputs in;
  in.evolved = genome::preset("adam");
  in.evolved.log10_lr = std::log10(3e-3);
  in.evolved_val_fitness = 0.85;
  in.tasks = {"a", "b"};
  in.labels = {{"a", "A"}, {"b", "B"}};
  in.run_seed = 4;
  in.search_seeds = 1;
  in.steps = 10;
  in.evolution_runs = 40;
  in.options.protocol = Protocol::Strong;
  in.options.baselines = {"sgd", "adam"};
  in.options.lr_grid = {1e-3, 1e-2};
  in.options.wd_grid = {0.0};
  in.options.test_seeds = 4;
  in.options.equal_budget = true;
  in.options.attribution = false;  // see GainAttribution below
  const Comparison c = run_comparison(ctx, in);
  ASSERT_EQ(c.baselines.size(), 2u);
  ASSERT_TRUE(c.random_search.has_value());
  EXPECT_EQ(c.random_search->name, "adam (random search)");  // the strongest baseline on validation
  EXPECT_EQ(c.random_search_runs, 40);                       // as many runs as the evolution spent
  EXPECT_EQ(c.random_search->sweep.size(), 20u);             // 40 runs / (2 tasks × 1 seed)
  ASSERT_EQ(c.horizons.size(), 2u);
  EXPECT_EQ(c.horizons[0].steps, 10);
  EXPECT_EQ(c.horizons[1].steps, 20);
  const auto& methods = c.horizons[0].methods;
  ASSERT_EQ(methods.size(), 4u);  // evolved, sgd, adam, random search
  EXPECT_EQ(methods[0].name, "evolved");
  EXPECT_EQ(methods[0].test.at("a").size(), 4u);
  // Test runs used the fresh test seeds, not the search seeds.
  for (const auto& t : in.tasks) EXPECT_EQ(c.seeds.at(t), test_seeds(4, t, 4, 1));
  const auto j = c.to_json();
  EXPECT_EQ(j["labels"]["a"], "A");
  EXPECT_TRUE(j["horizons"][0]["methods"][1]["overall"].contains("evolved_minus_this"));
  EXPECT_TRUE(j["horizons"][0]["methods"][1]["overall"]["evolved_minus_this"]["significant"].get<bool>());  // sgd is 0.2 worse
  const std::string csv = c.to_csv();
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "steps,method,kind,task,label,mean,std,n,diff_vs_evolved,ci95_low,ci95_high,significant,val_fitness,protocol,block");
  // header + (4 methods at 10 steps + evolved, the strongest baseline and the random search at 20) × (2 tasks + overall)
  EXPECT_EQ(test::count_lines(csv), 1 + (4 + 3) * 3);
  EXPECT_EQ(c.horizons[1].methods.size(), 3u);
  EXPECT_EQ(c.horizons[1].methods[1].name, "adam (tuned)");
  // The equal-budget search samples every hyperparameter the baseline genome has.
  std::set<double> beta1, beta2, eps;
  int scheduled = 0, clipped = 0;
  for (const auto& e : c.random_search->sweep) {
    beta1.insert(e.genome.beta1);
    beta2.insert(e.genome.beta2);
    eps.insert(e.genome.log10_eps);
    scheduled += e.genome.has_schedule() ? 1 : 0;
    clipped += e.genome.clip_norm ? 1 : 0;
  }
  EXPECT_EQ(beta1.size(), 20u);
  EXPECT_EQ(beta2.size(), 20u);
  EXPECT_EQ(eps.size(), 20u);
  EXPECT_GT(scheduled, 0);
  EXPECT_LT(scheduled, 20);
  EXPECT_GT(clipped, 0);
  EXPECT_LT(clipped, 20);
}

namespace {
// A landscape where a cosine schedule is worth +0.05, a SIGN_GRAD term +0.02, and lr
// 1e-3 is best; every seed shifts all methods alike (common random numbers).
double schedule_and_rule_fitness(const genome::Genome& g, const std::string&, std::uint64_t seed) {
  double f = 0.6 - 0.05 * std::fabs(g.log10_lr + 3.0);
  if (g.cosine_decay) f += 0.05;
  for (const auto& t : g.terms)
    if (t.term == genome::Term::SignGrad) f += 0.02;
  return f + 0.01 * static_cast<double>(seed % 7);
}

CompareInputs attribution_inputs(Protocol protocol) {
  CompareInputs in;
  in.evolved = genome::preset("adam");
  in.evolved.terms.push_back({genome::Term::SignGrad, 0.5});
  in.evolved.cosine_decay = true;
  in.evolved.warmup_fraction = 0.2;
  in.tasks = {"a", "b"};
  in.labels = {{"a", "A"}, {"b", "B"}};
  in.steps = 40;
  in.options.baselines = {"adam", "rmsprop"};
  in.options.protocol = protocol;
  in.options.horizon_multiple = 0;
  in.options.test_seeds = 5;
  return in;
}

double row(const Comparison& c, const std::string& how) {
  for (const auto& r : c.attribution_rows())
    if (r.how == how) return r.diff.mean;
  ADD_FAILURE() << "no attribution row " << how;
  return 0;
}
}  // namespace

TEST(GainAttribution, SplitsTheGainIntoRuleAndScheduleOnASyntheticFitness) {
  // Seed protocol: the baseline gets no schedule, so most of the gain is the schedule's.
  {
    eval::SyntheticEvaluator ev(schedule_and_rule_fitness);
    eval::RunStore store;
    RunContext ctx{ev, store};
    const Comparison c = run_comparison(ctx, attribution_inputs(Protocol::Seed));
    ASSERT_TRUE(c.attribution.has_value());
    EXPECT_EQ(c.attribution->baseline, "adam");
    EXPECT_FALSE(c.baselines[0].best().genome.cosine_decay);
    EXPECT_NEAR(row(c, "W − B"), 0.07, 1e-9);
    EXPECT_NEAR(row(c, "A1 − B (in B's setting)"), 0.02, 1e-9);
    EXPECT_NEAR(row(c, "W − A2 (in W's setting)"), 0.02, 1e-9);
    EXPECT_NEAR(row(c, "W − A1 (with W's rule)"), 0.05, 1e-9);
    EXPECT_NEAR(row(c, "A2 − B (with B's rule)"), 0.05, 1e-9);
    EXPECT_EQ(c.to_json()["attribution"]["rows"].size(), 5u);
  }
  // Strong protocol: the baselines are offered the winner's schedule and take it; the gain left
  // is the rule's alone.
  {
    eval::SyntheticEvaluator ev(schedule_and_rule_fitness);
    eval::RunStore store;
    RunContext ctx{ev, store};
    const Comparison c = run_comparison(ctx, attribution_inputs(Protocol::Strong));
    const auto& adam = c.baselines[0].best();
    EXPECT_TRUE(adam.genome.cosine_decay);
    EXPECT_EQ(adam.genome.warmup_fraction, 0.2);  // the winner's warmup fraction
    EXPECT_EQ(adam.lr, 1e-3);
    EXPECT_NEAR(row(c, "W − B"), 0.02, 1e-9);
    EXPECT_NEAR(row(c, "A1 − B (in B's setting)"), 0.02, 1e-9);
    EXPECT_NEAR(row(c, "W − A1 (with W's rule)"), 0.0, 1e-9);
  }
}

// Against a hand-made baseline the attribution's hybrids stay what the algorithm allows: B's
// rule in W's setting takes W's rate, decay strength and warmup, but Schedule-Free keeps no
// cosine decay and every hand-made algorithm its decoupled decay (W here decays by L2).
TEST(GainAttribution, AHandMadeStrongestBaselineKeepsItsOwnRules) {
  for (const char* strongest : {"schedule_free_adamw", "muon"})
    for (Protocol protocol : {Protocol::Strong, Protocol::Quasirandom}) {
      SCOPED_TRACE(std::string(strongest) + " " + protocol_name(protocol));
      eval::SyntheticEvaluator ev([strongest](const genome::Genome& g, const std::string& task, std::uint64_t seed) {
        const std::string name = genome::algorithm_name(g.algorithm);
        return schedule_and_rule_fitness(g, task, seed) + (name == strongest ? 0.2 : 0.0);
      });
      eval::RunStore store;
      RunContext ctx{ev, store};
      CompareInputs in = attribution_inputs(protocol);
      in.options.baselines = {"adam", strongest};
      in.options.trials = 4;
      in.evolved.log10_weight_decay = -4.0;
      in.evolved.decoupled_weight_decay = false;
      const Comparison c = run_comparison(ctx, in);
      ASSERT_TRUE(c.attribution.has_value());
      EXPECT_EQ(c.attribution->baseline, strongest);
      const genome::Genome& a2 = c.attribution->a2.genome;
      EXPECT_EQ(genome::algorithm_name(a2.algorithm), std::string(strongest));
      EXPECT_TRUE(a2.decoupled_weight_decay);
      const genome::Genome& w = c.horizons.front().methods.front().genome;  // the evolved row's (tuned under quasirandom)
      EXPECT_EQ(a2.log10_weight_decay, w.log10_weight_decay);
      EXPECT_EQ(a2.cosine_decay, std::string(strongest) != "schedule_free_adamw");
      EXPECT_EQ(a2.warmup_fraction, w.warmup_fraction);
    }
}

TEST(Tuning, SuccessiveHalvingKeepsAQuarterThenAThirdAndChoosesAtTheFullBudget) {
  int calls = 0;
  std::map<std::int64_t, int> by_steps;
  eval::SyntheticEvaluator ev([&](const genome::Genome& g, const std::string&, std::uint64_t) {
    ++calls;
    return 0.9 - 0.1 * std::fabs(g.log10_lr + 2.5) - (g.log10_weight_decay ? 0.01 : 0.0) - (g.cosine_decay ? 0.0 : 0.02);
  });
  eval::RunStore store;
  RunContext ctx{ev, store};
  const std::vector<double> lrs = {1e-4, 3.16227766e-4, 1e-3, 3.16227766e-3, 1e-2, 3.16227766e-2, 1e-1};
  const BaselineChoice c =
      tune_baseline(ctx, "adam", lrs, {0.0, 1e-5, 1e-4, 1e-3}, strong_regimes(genome::preset("adam")), {"a", "b"}, 0, 1, 100, HalvingOptions{});
  EXPECT_EQ(c.sweep.size(), 7u * 4 * 2);
  // 56 at 25 steps, 14 at 50, 5 at 100; two tasks each.
  EXPECT_EQ(calls, (56 + 14 + 5) * 2);
  EXPECT_EQ(c.runs, (56 + 14 + 5) * 2);
  EXPECT_EQ(c.steps, (56 * 25 + 14 * 50 + 5 * 100) * 2);
  for (const auto& e : store.entries()) by_steps[e.key.steps] += 1;
  EXPECT_EQ(by_steps[25], 56 * 2);
  EXPECT_EQ(by_steps[50], 14 * 2);
  EXPECT_EQ(by_steps[100], 5 * 2);
  // Cheap rungs are scored on the first 500 validation images, the choice on the whole split.
  for (const auto& e : store.entries()) EXPECT_EQ(e.key.split, e.key.steps == 100 ? "val" : "val:first500");
  const SweepEntry& best = c.best();
  EXPECT_NEAR(best.lr, 3.16227766e-3, 1e-12);
  EXPECT_EQ(best.wd, 0.0);
  EXPECT_TRUE(best.regime.cosine_decay);
  ASSERT_EQ(best.rungs.size(), 3u);
  EXPECT_EQ(best.rungs.back().first, 100);
  // Halving off: every point at the full budget.
  calls = 0;
  eval::RunStore fresh;
  RunContext ctx2{ev, fresh};
  tune_baseline(ctx2, "adam", {1e-3, 1e-2}, {0.0}, {Regime{}}, {"a"}, 0, 1, 100, HalvingOptions{false, 0});
  EXPECT_EQ(calls, 2);
}
