// The asynchronous steady-state mode (GaOptions::async, issue 10) with the real data and the
// real CLI: a many-worker order of real worker processes replayed in process, and `evolve
// --async` / `resume` from the CLI.
#include <fstream>
#include <functional>
#include <map>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/eval/process_evaluator.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "test_support.hpp"

using namespace evoopt;
using namespace evoopt::ga;
namespace fs = std::filesystem;

namespace {

void expect_same_search(const fs::path& a, const fs::path& b) {
  EXPECT_EQ(test::csv_without_last_column(read_text_file(a / "history.csv")), test::csv_without_last_column(read_text_file(b / "history.csv")));
  EXPECT_EQ(read_text_file(a / "lineage.json"), read_text_file(b / "lineage.json"));
  EXPECT_EQ(read_text_file(a / "best_genome.json"), read_text_file(b / "best_genome.json"));
  EXPECT_EQ(read_text_file(a / "completions.jsonl"), read_text_file(b / "completions.jsonl"));
}

}  // namespace

TEST(AsyncGa, RealWorkerProcessesReplayWithTheInProcessEvaluator) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const task::TaskOptions to = test::small_mnist_options();
  std::map<std::string, task::Task> tasks = {{"mnist", task::load_task("mnist", to)}};
  train::Budget b;
  b.steps = 15;
  GaOptions o;
  o.population = 4;
  o.generations = 3;
  o.tasks = {"mnist"};
  o.seed = 5;
  o.async = true;
  test::TempDir tmp;
  {
    eval::ProcessEvaluator two(tasks, to, b, 2, EVOOPT_CLI);
    ASSERT_TRUE(GeneticAlgorithm(o, two, tmp / "w2").run().completed);
  }
  fs::create_directories(tmp / "w1");
  fs::copy_file(tmp / "w2/completions.jsonl", tmp / "w1/completions.jsonl");
  eval::LocalEvaluator one(tasks, b);
  const GaOutcome r = GeneticAlgorithm(o, one, tmp / "w1").run();
  ASSERT_TRUE(r.completed);
  // Every run trained again (no journal was copied): as many as the search needed (identical
  // genomes, which depend on the order, share their runs).
  EXPECT_EQ(static_cast<std::size_t>(r.runs_executed), read_journal_lines(tmp / "w2/journal.jsonl").size());
  expect_same_search(tmp / "w2", tmp / "w1");
  EXPECT_GT(r.best.fitness, 0.1);
}

// From the CLI: `evolve --async` with worker processes records the mode and the completion
// order; `resume` of a completed run replays it without training anything again.
TEST(AsyncGa, EvolveAsyncFromTheCliAndResumeReplays) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  const fs::path run = tmp / "run";
  const auto made = test::run_cli("evolve --async --out " + run.string() +
                                  " --tasks mnist --population 4 --generations 2 --steps 5 --train-subset 300 --val-size 100"
                                  " --final-test-seeds 1 --no-compare --no-break-even --workers 2 --data-dir " +
                                  test::data_dir().string());
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const auto config = nlohmann::json::parse(read_text_file(run / "config.json"));
  EXPECT_EQ(config["ga"]["async"], true);
  EXPECT_EQ(read_journal_lines(run / "completions.jsonl").size(), 9u);
  EXPECT_FALSE(fs::exists(run / "checkpoint.json"));
  const std::string lineage = read_text_file(run / "lineage.json");
  const std::size_t journal = read_journal_lines(run / "journal.jsonl").size();
  const auto again = test::run_cli("resume " + run.string());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(read_text_file(run / "lineage.json"), lineage);
  EXPECT_EQ(read_journal_lines(run / "journal.jsonl").size(), journal);  // nothing trained again
  // A resume that is refused changes nothing: a finished run with one tampered completion
  // line, a damaged journal line (and a torn last one) or an edited config keeps every byte.
  auto snapshot = [](const fs::path& dir) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_text_file(e.path());
    return files;
  };
  auto tamper = [&](const std::string& file, const std::function<std::string(std::string)>& edit, const std::string& expect) {
    const fs::path copy = tmp / ("tampered_" + file);
    fs::copy(run, copy, fs::copy_options::recursive);
    write_file_atomic(copy / file, edit(read_text_file(copy / file)));
    const auto before = snapshot(copy);
    const auto refused = test::run_cli("resume " + copy.string());
    EXPECT_NE(refused.exit_code, 0) << file;
    EXPECT_NE(refused.err.find(expect), std::string::npos) << file << ": " << refused.err;
    EXPECT_EQ(test::count_lines(refused.err), 1) << refused.err;
    EXPECT_TRUE(snapshot(copy) == before) << file << ": the refused resume changed the run directory";
  };
  tamper(
      "completions.jsonl",
      [](std::string text) {  // the last finisher's id swapped for an individual that never ran
        const auto at = text.rfind("\"id\":") + 5;
        return text.replace(at, text.find(',', at) - at, "9999");
      },
      "individual 9999 was not being evaluated");
  tamper(
      "journal.jsonl", [](std::string text) { return "not json\n" + text + "{\"key\": {\"gen"; }, "journal.jsonl");
  tamper(
      "config.json",
      [](std::string text) {
        const std::string from = "\"population\": 4";
        return text.replace(text.find(from), from.size(), "\"population\": 5");
      },
      "changed since the run started");
  const auto bad = test::run_cli("evolve --async --racing --out " + (tmp / "bad").string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("racing and the asynchronous mode cannot be combined"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(tmp / "bad"));
}
