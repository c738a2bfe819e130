// Progress and ETA (issue 11): the work a study plans is the work it does (every request
// the comparison makes, counted by the same halving rungs), the tracker reports rates, ETAs
// and one line per phase, and `evoopt status` reads where a run stands from its files. Task
// costs measured on the real data: tests/integration/progress_integration_test.cpp.
#include <cmath>

#include <gtest/gtest.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/progress.hpp"
#include "evoopt/experiment/stages.hpp"
#include "evoopt/experiment/study.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/task/task.hpp"
#include "test_support.hpp"

using namespace evoopt;
using namespace evoopt::experiment;

namespace {

double landscape(const genome::Genome& g, const std::string& task, std::uint64_t seed) {
  return 0.7 - 0.05 * std::fabs(g.log10_lr + 3.0) - (task == "b" ? 0.1 : 0.0) + 1e-3 * static_cast<double>(seed % 5) + (g.cosine_decay ? 0.01 : 0.0);
}

}  // namespace

TEST(Progress, PlannedComparisonWorkIsEveryRequestTheComparisonMakes) {
  const EvalSizes sizes{500, 2000};
  for (const Protocol protocol : {Protocol::Strong, Protocol::Seed, Protocol::Quasirandom})
    for (bool equal_budget : {false, true})
      for (bool scheduled_winner : {false, true})
        for (bool transfer : {false, true}) {
          ExperimentConfig c;
          c.tasks = {"a", "b"};
          c.transfer_tasks = transfer ? std::vector<std::string>{"c", "d", "e"} : std::vector<std::string>{};
          c.steps = 40;
          c.ga.search_seeds = 2;
          c.final_test_seeds = 0;  // nothing in the store before the comparison
          c.compare.protocol = protocol;
          c.compare.baselines = {"sgd", "adam", "lion"};
          c.compare.lr_grid = {1e-4, 1e-3, 1e-2, 1e-1};
          c.compare.wd_grid = {0.0, 1e-4};
          c.compare.test_seeds = 3;
          c.compare.horizon_multiple = 2.0;
          c.compare.equal_budget = equal_budget;
          c.compare.rung_val_size = 200;
          c.compare.trials = 5;
          c.compare.time_to_target = scheduled_winner;  // with and without held-out tasks
          genome::Genome evolved = genome::preset("adam");
          if (scheduled_winner) {
            evolved.cosine_decay = true;
            evolved.warmup_fraction = 0.1;
          }
          eval::SyntheticEvaluator ev(landscape);
          eval::RunStore store;
          Work requested;
          RunContext ctx{ev, store};
          // Held-out tasks cost another amount per step and per evaluation (an LSTM, an MLP).
          TaskCosts costs;
          costs.step = {{"c", 3.0}, {"d", 0.25}};
          costs.eval = {{"c", 2.0}, {"e", 0.5}};
          ctx.progress = [&](eval::RunStage, int, int total, const std::vector<eval::RunRequest>& batch, const train::RunResult* trained) {
            if (trained != nullptr) return;  // count each batch once, as it starts
            EXPECT_EQ(static_cast<std::size_t>(total), batch.size());
            for (const auto& r : batch) {
              const std::int64_t images = r.split == data::Split::Test ? sizes.test
                                          : r.eval_limit > 0           ? std::min(r.eval_limit, sizes.val)
                                                                       : sizes.val;
              EXPECT_EQ(evaluated_images(sizes, r.split, r.eval_limit), images);
              requested += costs.scaled(r.task, Work{1, r.steps, images * (1 + curve_points(r.steps, r.curve_every))});
              EXPECT_EQ(request_work(sizes, r).images, images * (1 + curve_points(r.steps, r.curve_every)));
            }
          };
          run_comparison(ctx, compare_inputs(c, evolved, 0.7, {{"a", "A"}, {"b", "B"}}, /*evolution_runs=*/24));
          const Work planned = plan_comparison(c, sizes, &evolved, 24, /*after_final_test=*/true, costs);
          EXPECT_EQ(planned.runs, requested.runs) << protocol_name(protocol) << " equal budget " << equal_budget << " scheduled " << scheduled_winner
                                                  << " transfer " << transfer;
          EXPECT_EQ(planned.steps, requested.steps) << protocol_name(protocol);
          EXPECT_EQ(planned.images, requested.images) << protocol_name(protocol);
          // Not knowing the winner counts the larger grid: never less.
          EXPECT_GE(plan_comparison(c, sizes, nullptr, 24, true, costs).steps, planned.steps);
        }
}

// Every stage after the search plans the runs it trains: the final test, break-even (all its
// multiples when none matches) and the comparison's phases (tuning, test split, transfer,
// attribution), run in order on one store as run_study runs them.
TEST(Progress, EachStagePlansTheWorkItsRunRequests) {
  test::TempDir dir;
  ExperimentConfig c;
  c.tasks = {"a", "b"};
  c.transfer_tasks = {"c"};
  c.steps = 41;  // odd: break-even's 1.5x rounds
  c.ga.search_seeds = 2;
  c.final_test_seeds = 3;
  c.break_even = true;
  c.compare.baselines = {"sgd", "adam"};
  c.compare.lr_grid = {1e-3, 1e-2};
  c.compare.wd_grid = {0.0};
  c.compare.test_seeds = 4;
  c.compare.horizon_multiple = 2.0;
  c.compare.rung_val_size = 0;
  const EvalSizes sizes{500, 2000};
  // The best seed optimizer of generation 0, far below the winner: break-even tries every multiple.
  ga::Individual seed;
  seed.genome = genome::preset("sgd");
  seed.origin = "seed:sgd";
  seed.fitness = 0.1;
  write_file_atomic(dir / "lineage.json", nlohmann::json{{"format", "evoopt.lineage"}, {"version", 1}, {"individuals", {seed.to_json()}}}.dump());
  eval::SyntheticEvaluator ev(landscape);
  eval::RunStore store;
  StageState st{c, dir.path(), {{"a", "A"}, {"b", "B"}}, {}, {}, {}, {}, {}};
  st.search.best.genome = genome::preset("adam");
  st.search.best.fitness = 0.99;
  st.search.runs_total = 24;
  const PlanInputs in{sizes, &st.search.best.genome, 24};
  Work total;
  const auto stages = stages_after_search(c);
  ASSERT_EQ(stages.size(), 6u);  // final test, break-even, tuning, comparison, transfer, attribution
  for (const auto& stage : stages) {
    Work requested;
    RunContext ctx{ev, store};
    ctx.progress = [&](eval::RunStage, int, int, const std::vector<eval::RunRequest>& batch, const train::RunResult* trained) {
      if (trained == nullptr)
        for (const auto& r : batch) requested += Work{1, r.steps, evaluated_images(sizes, r.split, r.eval_limit)};
    };
    stage->run(ctx, st);
    // The comparison's test of the evolved genome on the final test's seeds is the final
    // test's: not planned twice.
    if (stage->phase() == Phase::Comparison) {
      const Work overlap = Work{1, c.steps, sizes.test} * (c.final_test_seeds * static_cast<std::int64_t>(c.tasks.size()));
      requested = {requested.runs - overlap.runs, requested.steps - overlap.steps, requested.images - overlap.images};
    }
    const Work planned = stage->plan(c, in);
    EXPECT_EQ(planned.runs, requested.runs) << phase_name(stage->phase());
    EXPECT_EQ(planned.steps, requested.steps) << phase_name(stage->phase());
    EXPECT_EQ(planned.images, requested.images) << phase_name(stage->phase());
    total += planned;
  }
  ASSERT_TRUE(st.break_even.has_value());
  EXPECT_EQ(st.break_even->measured.size(), std::size(kBreakEvenMultiples));
  EXPECT_FALSE(st.break_even->multiple_needed.has_value());
  const Work after = plan_after_search(c, in);
  EXPECT_EQ(after.runs, total.runs);
  EXPECT_EQ(after.steps, total.steps);
  EXPECT_EQ(after.images, total.images);
}

TEST(Progress, SearchPlanUsesTheFinishedGenerations) {
  ExperimentConfig c;
  c.tasks = {"a", "b", "c"};
  c.steps = 100;
  c.ga.population = 10;
  c.ga.elites = 2;
  c.ga.generations = 5;
  const EvalSizes sizes{1000, 10000};
  // Nothing finished: generation 0 in full, then population − elites new genomes.
  Work w = plan_search_left(c, sizes, {});
  EXPECT_EQ(w.runs, 30 + 4 * 24);
  EXPECT_EQ(w.steps, w.runs * 100);
  EXPECT_EQ(w.images, w.runs * 1000);
  // Two finished: later generations as the mean of those after the first (racing's savings too).
  std::vector<ga::GenerationRecord> done(2);
  done[0].evaluations = 30;
  done[1].evaluations = 12;
  done[1].steps_saved = 300;
  w = plan_search_left(c, sizes, done);
  EXPECT_EQ(w.runs, 3 * 12);
  EXPECT_EQ(w.steps, 3 * (12 * 100 - 300));
  EXPECT_EQ(plan_search_left(c, sizes, done, /*one_running=*/true).runs, 2 * 12);
  done.resize(5);
  EXPECT_EQ(plan_search_left(c, sizes, done).runs, 0);
}

TEST(Progress, TrackerReportsRatesEtasAndOneLinePerPhase) {
  ExperimentConfig c;
  c.tasks = {"a"};
  c.steps = 10;
  c.ga.population = 4;
  c.ga.generations = 2;
  c.final_test_seeds = 2;
  c.break_even = false;
  c.compare.enabled = false;
  c.workers = 2;
  std::vector<ProgressReport> reports;
  std::vector<PhaseReport> phases;
  ProgressTracker t(
      c, {100, 100}, /*with_search=*/true, [&](const ProgressReport& r) { reports.push_back(r); },
      [&](const PhaseReport& p) { phases.push_back(p); });
  train::RunResult run;
  run.steps_done = 10;
  run.train_seconds = 0.5;
  run.seconds = 0.6;
  for (int g = 0; g < 2; ++g) {
    t.generation_started(g, 2);
    for (int i = 1; i <= 4; ++i) t.search_run(i, 4, run);
    ga::GenerationRecord rec;
    rec.generation = g;
    rec.evaluations = 4;
    t.generation_finished(rec);
  }
  ASSERT_EQ(reports.size(), 8u);
  EXPECT_EQ(reports[0].phase, Phase::Search);
  EXPECT_EQ(reports[0].generation, 1);
  EXPECT_EQ(reports[5].generation, 2);
  EXPECT_EQ(reports[3].done, 4);
  EXPECT_EQ(reports[3].total, 4);
  for (std::size_t i = 0; i < reports.size(); ++i) {
    const ProgressReport& r = reports[i];
    EXPECT_GT(r.runs_per_second, 0);
    ASSERT_TRUE(r.batch_eta_seconds.has_value());
    // The study ETA waits for two timed runs per worker.
    ASSERT_EQ(r.study_eta_seconds.has_value(), i >= 3) << i;
    if (i < 3) continue;
    EXPECT_GE(*r.study_eta_seconds, 0.0);
    EXPECT_TRUE(std::isfinite(*r.study_eta_seconds));
  }
  EXPECT_EQ(*reports[3].batch_eta_seconds, 0.0);  // the generation is done
  // The search's last report still counts the final test to come.
  EXPECT_GT(*reports[7].study_eta_seconds, 0.0);
  t.set_winner(genome::preset("adam"), 8);
  t.start_phase(Phase::FinalTest);
  t.batch(eval::RunStage::Test, 0, 2, Work{1, 10, 100}, nullptr);
  EXPECT_FALSE(reports.back().batch_eta_seconds.has_value());  // nothing trained in this batch yet
  t.batch(eval::RunStage::Test, 1, 2, Work{1, 10, 100}, &run);
  t.batch(eval::RunStage::Test, 2, 2, Work{1, 10, 100}, &run);
  EXPECT_EQ(reports.back().phase, Phase::FinalTest);
  EXPECT_EQ(reports.back().stage, eval::RunStage::Test);
  EXPECT_EQ(*reports.back().study_eta_seconds, 0.0);  // nothing left
  t.finish();
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].phase, Phase::Search);
  EXPECT_EQ(phases[0].runs, 8);
  EXPECT_EQ(phases[1].phase, Phase::FinalTest);
  EXPECT_EQ(phases[1].runs, 2);
}

TEST(Progress, DurationsReadAsPeopleWriteThem) {
  EXPECT_EQ(format_duration(14.2), "14 s");
  EXPECT_EQ(format_duration(75), "1 min 15 s");
  EXPECT_EQ(format_duration(6 * 60 + 20), "6 min 20 s");
  EXPECT_EQ(format_duration(25 * 60 + 10), "25 min");
  EXPECT_EQ(format_duration(72 * 60 + 5), "1 h 12 min");
}

TEST(Progress, DirInUseSeesAnotherHoldersLock) {
  test::TempDir tmp;
  EXPECT_FALSE(dir_in_use(tmp.path()));
  {
    const DirLock lock(tmp.path());
    // flock locks belong to the open file: this process's second descriptor sees the lock too.
    EXPECT_TRUE(dir_in_use(tmp.path()));
  }
  EXPECT_FALSE(dir_in_use(tmp.path()));
}

// The evaluation a run's status counts is in scored examples: a text task's recorded sizes
// are bytes, its evaluation windows of seq_len of them (as Task::examples counts), so an
// image task and a text task average to what they score; transfer tasks are not the unit.
TEST(Progress, EvalSizesCountATextTasksWindowsNotItsBytes) {
  test::TempDir dir;
  const nlohmann::json cfg = {{"format", "evoopt.config"},
                              {"version", 1},
                              {"tasks", {"mnist", "jargon"}},
                              {"task_fingerprint_inputs",
                               {{"mnist", {{"task", {{"val_size", 5000}, {"test_size", 10000}}}}},
                                {"jargon", {{"task", {{"seq_len", 64}, {"val_size", 64001}, {"test_size", 128001}}}}},
                                {"cifar10", {{"task", {{"val_size", 7}, {"test_size", 7}}}}}}}};
  write_file_atomic(dir / "config.json", cfg.dump());
  const EvalSizes s = eval_sizes_of_run(dir.path());
  EXPECT_EQ(s.val, (5000 + 1000) / 2);
  EXPECT_EQ(s.test, (10000 + 2000) / 2);
  EXPECT_EQ(task::scored_examples(64001, 64), 1000);
  EXPECT_EQ(task::scored_examples(5000, 0), 5000);
}

// A damaged size in config.json, or a damaged journal line, is named with its key (and line).
TEST(Progress, DamagedSizesAndJournalLinesAreNamedWithTheirKey) {
  test::TempDir dir;
  nlohmann::json cfg = {{"format", "evoopt.config"},
                        {"version", 1},
                        {"tasks", {"mnist"}},
                        {"task_fingerprint_inputs", {{"mnist", {{"task", {{"val_size", -5}, {"test_size", 10000}}}}}}}};
  write_file_atomic(dir / "config.json", cfg.dump());
  try {
    eval_sizes_of_run(dir.path());
    FAIL() << "a negative size was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              (dir / "config.json").string() +
                  ": /task_fingerprint_inputs/mnist/task/val_size: expected an integer in [0, 1099511627776], got an integer -5");
  }
  write_file_atomic(dir / "journal.jsonl", "{\"key\": 1}\n{\"key\": 2, \"key\": 3}\n");
  try {
    journal_entries(dir / "journal.jsonl");
    FAIL() << "a duplicate key was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), (dir / "journal.jsonl").string() + " line 2: /key: duplicate key");
  }
  write_file_atomic(dir / "journal.jsonl", "{\"key\": 1}\n");
  const auto entries = journal_entries(dir / "journal.jsonl");
  ASSERT_EQ(entries.size(), 1u);
  try {
    entries[0].get<std::string>("key");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), (dir / "journal.jsonl").string() + " line 1: /key: expected a string, got an integer 1");
  }
}
