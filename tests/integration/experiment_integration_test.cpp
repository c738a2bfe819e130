// The rule that selection never sees the test split, on real MNIST with a garbage test split,
// and the CLI refusing config flags given as 0 or negative (issue 6).
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

TEST(Selection, UsesValidationOnlyGarbageTestSplitChangesNothingUntilTheFinalTest) {
  EVOOPT_REQUIRE_DATASET("mnist");
  task::TaskOptions to;
  to.data_dir = test::data_dir();
  to.split.train_subset = 800;
  to.split.val_size = 400;
  const task::Task real = task::load_task("mnist", to);
  // Same task, but the test split is noise with shuffled labels.
  auto garbage_splits = std::make_shared<data::Splits>(*real.data);
  torch::manual_seed(0);
  garbage_splits->test.images = torch::randint(0, 256, real.data->test.images.sizes(), torch::TensorOptions().dtype(torch::kUInt8));
  garbage_splits->test.labels = real.data->test.labels.flip({0});
  const task::Task garbage = task::make_task("mnist", garbage_splits, to);

  train::Budget b;
  b.steps = 10;
  test::TempDir tmp;
  struct Outcome {
    std::string history, lineage, best;
    std::vector<double> sweep;
    double test_accuracy;
  };
  auto study = [&](const task::Task& t, const std::string& name) {
    eval::LocalEvaluator ev({{"mnist", t}}, b);
    ga::GaOptions o;
    o.population = 4;
    o.generations = 2;
    o.tasks = {"mnist"};
    ga::GaOutcome g = ga::GeneticAlgorithm(o, ev, tmp / name).run();
    eval::RunStore store;
    RunContext ctx{ev, store};
    Outcome out;
    out.history = test::csv_without_last_column(read_text_file(tmp / name / "history.csv"));
    out.lineage = read_text_file(tmp / name / "lineage.json");
    out.best = read_text_file(tmp / name / "best_genome.json");
    for (const auto& e : sweep_baseline(ctx, "adam", {1e-3, 1e-2}, {1e-4}, {"mnist"}, 0, 1).sweep) out.sweep.push_back(e.val_fitness);
    // The final step: the winner on the test split.
    out.test_accuracy = run_all(ctx, eval::RunStage::Test, {{g.best.genome, "mnist", 99, data::Split::Test, 0}}).front().accuracy;
    return out;
  };
  const Outcome a = study(real, "real"), z = study(garbage, "garbage");
  EXPECT_EQ(a.history, z.history);
  EXPECT_EQ(a.lineage, z.lineage);
  EXPECT_EQ(a.best, z.best);
  EXPECT_EQ(a.sweep, z.sweep);
  EXPECT_NE(a.test_accuracy, z.test_accuracy);  // only the final test sees the difference
  EXPECT_GT(a.test_accuracy, z.test_accuracy);
}

// A flag given on the command line is applied as given and validated, even when it is 0;
// nothing starts and nothing is written.
TEST(Config, CliFlagsGivenAsZeroOrNegativeAreRejectedBeforeAnythingRuns) {
  test::TempDir tmp;
  const std::string out = " --out " + (tmp / "run").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"evolve --population 0", "population must be >= 2, got 0"},
      {"evolve --generations 0", "generations must be >= 1, got 0"},
      {"evolve --steps 0", "steps must be >= 1, got 0"},
      {"evolve --seeds 0", "search seeds per task must be >= 1, got 0"},
      {"evolve --final-test-seeds 0", "final test seeds must be >= 1"},
      {"evolve --max-terms 0", "max"},
      {"evolve --train-subset -5", "training subset must be >= 0"},
      {"compare --genome adam --val-size 0", "validation size must be >= 1"},
      {"compare --genome adam --seeds 0", "--seeds: must be >= 1, got 0"},
      {"compare --genome adam --val-seeds 0", "search seeds per task must be >= 1, got 0"},
      {"train --steps -3", "--steps: must be >= 0, got -3"},
  };
  for (const auto& [args, message] : cases) {
    auto r = test::run_cli(args + (args.rfind("train", 0) == 0 ? std::string() : out));
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_NE(r.err.find(message), std::string::npos) << args << ": " << r.err;
    EXPECT_EQ(test::count_lines(r.err), 1) << args << ": " << r.err;
    EXPECT_FALSE(std::filesystem::exists(tmp / "run")) << args;
  }
}

// AdEMAMix, Schedule-Free AdamW and Muon as baselines of `evoopt compare` (issue 27): tuned
// like every baseline, tested on the search task and a held-out one with batch norm, Muon's
// parameter split printed once per task and kept in comparison.json, Schedule-Free never given
// a decay.
TEST(Compare, HandMadeBaselinesAreTunedTestedAndMuonsSplitIsShown) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  {
    std::ofstream cfg(tmp / "c.toml");
    cfg << "tasks = [\"mnist\"]\ntransfer_tasks = [\"mnist:paper\"]\nsteps = 16\nbatch_size = 32\n"
        << "[data]\ndir = \"" << test::data_dir().string() << "\"\ntrain_subset = 600\nval_size = 200\n"
        << "[compare]\nprotocol = \"strong\"\nlr_grid = [0.001, 0.01]\nwd_grid = [0.0]\n"
        << "halving = false\nattribution = false\ntest_seeds = 2\nhorizon_multiple = 0\n";
  }
  // The methods from the command line (--methods), the rest from the config file.
  const auto r = test::run_cli("compare --genome adam --workers 1 --methods ademamix schedule_free_adamw muon --config " + (tmp / "c.toml").string() +
                               " --out " + (tmp / "run").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* name : {"ademamix (tuned)", "schedule_free_adamw (tuned)", "muon (tuned)"})
    EXPECT_NE(r.out.find(name), std::string::npos) << r.out;
  // The split once per task: the search task and the held-out one.
  const auto first = r.out.find("muon (tuned) on MNIST: Muon: ");
  ASSERT_NE(first, std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("muon (tuned) on MNIST: Muon: ", first + 1), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("; AdamW: "), std::string::npos);
  const auto c = nlohmann::json::parse(read_text_file(tmp / "run" / "comparison.json"));
  EXPECT_EQ(c.at("baselines").size(), 3u);  // only the methods named
  int muons = 0;
  for (const auto& h : {c.at("horizons"), c.at("transfer").at("horizons")})
    for (const auto& m : h.at(0).at("methods")) {
      const auto algorithm = m.at("genome").value("algorithm", "terms");
      if (algorithm == "schedule_free_adamw") EXPECT_FALSE(m.at("genome").at("cosine_decay").get<bool>());
      if (algorithm != "muon") {
        EXPECT_FALSE(m.contains("parameter_split")) << m.at("name");
        continue;
      }
      ++muons;
      EXPECT_EQ(m.at("parameter_split").size(), 1u);
      for (const auto& [task, split] : m.at("parameter_split").items()) EXPECT_NE(split.get<std::string>().find("Muon: "), std::string::npos);
      for (const auto& [task, stats] : m.at("test").items()) EXPECT_GT(stats.at("mean").get<double>(), 0.2) << task;  // it learned
    }
  EXPECT_EQ(muons, 2);
}

// The quasirandom protocol from the CLI (issue 27): every method, the evolved genome included,
// gets the same number of trials from its search space; the choice on the search tasks is the
// best mean validation fitness, the choice per workload the best on that workload alone (a
// held-out task's trials scored on its own validation split), and each workload is tested
// with its own choice.
TEST(Compare, QuasirandomProtocolTunesEveryMethodAlikeAndPerWorkload) {
  EVOOPT_REQUIRE_DATASET("mnist");
  EVOOPT_REQUIRE_DATASET("fashion_mnist");
  test::TempDir tmp;
  {
    std::ofstream cfg(tmp / "c.toml");
    cfg << "tasks = [\"mnist\", \"fashion_mnist\"]\ntransfer_tasks = [\"cartpole\"]\nsteps = 16\n"
        << "[data]\ndir = \"" << test::data_dir().string() << "\"\ntrain_subset = 600\nval_size = 200\n"
        << "[compare]\nprotocol = \"quasirandom\"\ntrials = 4\nbaselines = [\"adamw\", \"sgd\"]\nattribution = false\ntest_seeds = 2\n"
        << "horizon_multiple = 0\ntime_to_target = true\n";
  }
  const auto r = test::run_cli("compare --genome adam --workers 2 --config " + (tmp / "c.toml").string() + " --out " + (tmp / "run").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("quasirandom protocol: 4 quasi-random trials"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Tuned per workload"), std::string::npos) << r.out;
  const auto c = nlohmann::json::parse(read_text_file(tmp / "run" / "comparison.json"));
  EXPECT_EQ(c.at("protocol"), "quasirandom");
  std::vector<nlohmann::json> choices = {c.at("evolved_tuning")};
  for (const auto& b : c.at("baselines")) choices.push_back(b);
  const std::vector<std::string> workloads = {"mnist", "fashion_mnist", "cartpole"};
  for (const auto& ch : choices) {
    SCOPED_TRACE(ch.at("name").get<std::string>());
    const auto& sweep = ch.at("sweep");
    ASSERT_EQ(sweep.size(), 4u);  // the same trial count for every method
    // Every method draws its regime: AlgoPerf's or the evolved genome's (adam's: constant).
    EXPECT_NE(ch.at("search_space").get<std::string>().find("regime warmup 5% + cosine or constant"), std::string::npos) << ch.at("search_space");
    std::set<double> warmups;
    for (const auto& e : sweep) warmups.insert(e.at("regime").at("warmup_fraction").get<double>());
    EXPECT_EQ(warmups, (std::set<double>{0.0, 0.05}));
    for (const auto& t : workloads) {
      const std::size_t chosen = ch.at("chosen_per_workload").at(t);
      for (const auto& e : sweep) EXPECT_LE(e.at("val_per_task").at(t).get<double>(), sweep.at(chosen).at("val_per_task").at(t).get<double>());
    }
  }
  // The evolved genome's trials keep its rule and move its rate.
  std::set<double> rates;
  for (const auto& e : c.at("evolved_tuning").at("sweep")) rates.insert(e.at("lr").get<double>());
  EXPECT_EQ(rates.size(), 4u);
  const auto& per = c.at("per_workload");
  EXPECT_EQ(per.at("tasks"), nlohmann::json(workloads));
  ASSERT_EQ(per.at("methods").size(), 3u);
  EXPECT_EQ(per.at("methods").at(0).at("name"), "evolved (tuned)");
  // Time to target: every method with its per-workload choice, a validation curve point every
  // step (16 steps: every 1), the target tuned AdamW's final score, which AdamW itself reaches.
  EXPECT_NE(r.out.find("Time to target"), std::string::npos) << r.out;
  const auto& tt = c.at("time_to_target");
  EXPECT_EQ(tt.at("target_method"), "adamw (tuned)");
  EXPECT_EQ(tt.at("every"), 1);
  ASSERT_EQ(tt.at("methods").size(), 3u);
  for (const auto& m : tt.at("methods")) {
    for (const auto& t : workloads) EXPECT_EQ(m.at("val_curve").at(t).size(), 16u) << m.at("name") << " " << t;
    for (const auto& p : m.at("profile")) EXPECT_TRUE(p.get<double>() >= 0 && p.get<double>() <= 1);
    if (m.at("name") != "adamw (tuned)") continue;
    for (const auto& t : workloads) {
      EXPECT_LE(m.at("steps_to_target").at(t).get<int>(), 16) << t;
      EXPECT_EQ(m.at("val_curve").at(t).back().at(1).get<double>(), tt.at("target").at(t).get<double>());
    }
  }
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& m = per.at("methods").at(i);
    const auto& ch = choices.at(i);
    for (const auto& t : workloads) {
      const std::size_t chosen = ch.at("chosen_per_workload").at(t);
      EXPECT_EQ(genome::Genome::from_json(m.at("per_task_genome").at(t).at("genome")).hash(),
                genome::Genome::from_json(ch.at("sweep").at(chosen).at("genome")).hash());
      EXPECT_EQ(m.at("test").at(t).at("n"), 2);
    }
  }
}
