// The GA on real MNIST (issue 5): one history in this process and in 2 and 3 worker
// processes (the real evoopt binary), and racing (issue 10) that saves steps, never crowns a
// raced-out genome and resumes identically, with and without continued runs.
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

}  // namespace

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

// The program space (issue 28): the presets compiled to programs seed the search, children
// are programs, degenerate ones are drawn again before training and counted; the history is
// the same in this process and in 2 worker processes, and an interrupted search resumes to it.
TEST(GeneticAlgorithm, TheProgramSpaceSearchesProgramsReproduciblyAndResumes) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const task::TaskOptions to = test::small_mnist_options();
  std::map<std::string, task::Task> tasks = {{"mnist", task::load_task("mnist", to)}};
  train::Budget b;
  b.steps = 15;
  GaOptions o;
  o.population = 8;
  o.generations = 3;
  o.tasks = {"mnist"};
  o.seed = 6;
  o.space.rules = RuleSpace::Programs;
  test::TempDir tmp;
  eval::LocalEvaluator one(tasks, b);
  eval::ProcessEvaluator two(tasks, to, b, 2, EVOOPT_CLI);
  GaOutcome a = GeneticAlgorithm(o, one, tmp / "full").run();
  ASSERT_TRUE(a.completed);
  ASSERT_TRUE(GeneticAlgorithm(o, two, tmp / "w2").run().completed);
  EXPECT_EQ(test::csv_without_last_column(read_text_file(tmp / "full/history.csv")),
            test::csv_without_last_column(read_text_file(tmp / "w2/history.csv")));
  EXPECT_EQ(read_text_file(tmp / "full/lineage.json"), read_text_file(tmp / "w2/lineage.json"));
  const auto lineage = nlohmann::json::parse(read_text_file(tmp / "full/lineage.json"));
  int seeds = 0, rejected = 0;
  for (const auto& i : lineage.at("individuals")) {
    EXPECT_EQ(i.at("genome").at("algorithm"), "program");
    if (i.at("origin").get<std::string>().rfind("seed:", 0) == 0) ++seeds;
    for (const auto& m : i.at("mutations")) rejected += m.get<std::string>().rfind("rejected:", 0) == 0;
  }
  EXPECT_EQ(seeds, 6);  // sgd, adam, rmsprop, adamw, signum, lion as programs
  int recorded = 0;
  for (const auto& r : a.history) recorded += r.rejected;
  EXPECT_EQ(recorded, rejected);
  EXPECT_TRUE(a.best.genome.is_program());
  EXPECT_GT(a.best.fitness, 0.1);
  expect_cut_search_resumes_identically(o, one, tmp.path(), 5, 1);
}

// Racing and the asynchronous mode search programs as they search term genomes: seeded with
// program presets (Muon as two programs, Schedule-Free AdamW evaluated at x) and a first
// generation of their mutants; racing resumes identically after a cut, and the asynchronous
// order of 2 worker processes replays in this process.
TEST(GeneticAlgorithm, ProgramsRaceAndEvolveAsynchronouslyFromProgramPresets) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const task::TaskOptions to = test::small_mnist_options();
  auto tasks = racing_tasks();
  GaOptions o = racing_options(false);
  o.space.rules = RuleSpace::Programs;
  o.seed_presets = {"sgd", "muon", "schedule_free_adamw"};
  o.fill = "mutants";
  test::TempDir tmp;
  eval::LocalEvaluator one(tasks, racing_budget());
  const GaOutcome raced = GeneticAlgorithm(o, one, tmp / "full").run();
  ASSERT_TRUE(raced.completed);
  EXPECT_GT(steps_saved(raced), 0);
  const auto lineage = nlohmann::json::parse(read_text_file(tmp / "full/lineage.json"));
  int mutants = 0, two_programs = 0;
  for (const auto& i : lineage.at("individuals")) {
    EXPECT_EQ(i.at("genome").at("algorithm"), "program");
    mutants += i.at("origin") == "mutant";
    two_programs += i.at("genome").contains("program_rest");
  }
  EXPECT_EQ(mutants, 3);  // population 6: 3 seeds, then a mutant of each
  EXPECT_GE(two_programs, 2);
  expect_cut_search_resumes_identically(o, one, tmp.path(), 3, 0);

  GaOptions a = o;
  a.racing.enabled = false;
  a.async = true;
  {
    eval::ProcessEvaluator two(tasks, to, racing_budget(), 2, EVOOPT_CLI);
    ASSERT_TRUE(GeneticAlgorithm(a, two, tmp / "async2").run().completed);
  }
  std::filesystem::create_directories(tmp / "async1");
  std::filesystem::copy_file(tmp / "async2/completions.jsonl", tmp / "async1/completions.jsonl");
  ASSERT_TRUE(GeneticAlgorithm(a, one, tmp / "async1").run().completed);
  EXPECT_EQ(read_text_file(tmp / "async1/lineage.json"), read_text_file(tmp / "async2/lineage.json"));
  EXPECT_EQ(read_text_file(tmp / "async1/best_genome.json"), read_text_file(tmp / "async2/best_genome.json"));
}
