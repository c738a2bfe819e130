// Worker processes (issue 10): results equal in-process runs, a worker that dies is
// reported with its request and the search resumes to the same history, cancel stops
// workers, and a program that is not an evoopt worker is refused with one line.
#include <signal.h>

#include <gtest/gtest.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/eval/factory.hpp"
#include "evoopt/eval/process_evaluator.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "test_support.hpp"

using namespace evoopt;

namespace {
struct Setup {
  task::TaskOptions options;
  std::map<std::string, task::Task> tasks;
  train::Budget budget;
};

const Setup& small() {
  static const Setup s = [] {
    Setup s;
    s.options = test::small_mnist_options();
    s.tasks = {{"mnist", task::load_task("mnist", s.options)}};
    s.budget.steps = 12;
    return s;
  }();
  return s;
}

std::vector<eval::RunRequest> requests(int n) {
  std::vector<eval::RunRequest> r;
  const char* presets[] = {"adam", "sgd", "rmsprop", "lion"};
  for (int i = 0; i < n; ++i) r.push_back({genome::preset(presets[i % 4]), "mnist", static_cast<std::uint64_t>(i), data::Split::Val, 0, 0});
  return r;
}

std::string one_line_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST(ProcessEvaluator, ResultsEqualInProcessRunsWhateverWorkerRanThem) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto& s = small();
  eval::LocalEvaluator local(s.tasks, s.budget);
  eval::ProcessEvaluator pool(s.tasks, s.options, s.budget, 2, EVOOPT_CLI);
  EXPECT_EQ(pool.fingerprint("mnist"), local.fingerprint("mnist"));
  EXPECT_EQ(pool.workers(), 2);
  const auto reqs = requests(5);
  std::vector<std::size_t> reported;
  const auto a = local.evaluate(reqs, {}, nullptr);
  const auto b = pool.evaluate(
      reqs, [&](std::size_t i, const train::RunResult&) { reported.push_back(i); }, nullptr);
  ASSERT_EQ(reported.size(), reqs.size());
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    ASSERT_TRUE(a[i] && b[i]);
    EXPECT_EQ(a[i]->accuracy, b[i]->accuracy) << i;
    EXPECT_EQ(a[i]->final_loss, b[i]->final_loss) << i;
    EXPECT_EQ(train::to_json(*a[i]).at("loss_curve"), train::to_json(*b[i]).at("loss_curve")) << i;
  }
  // The pool is reused across calls; the factory picks in-process for 1 worker.
  EXPECT_EQ(pool.evaluate(requests(1), {}, nullptr)[0]->accuracy, a[0]->accuracy);
  eval::EvaluatorSpec spec{s.tasks, s.options, s.budget, 1, {}};
  EXPECT_EQ(eval::make_evaluator(spec)->workers(), 1);
  EXPECT_GT(pool.live_worker_cpu_seconds(), 0.0);
}

TEST(ProcessEvaluator, AWorkerThatDiesIsReportedWithItsRequestAndTheSearchResumes) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto& s = small();
  ga::GaOptions o;
  o.population = 4;
  o.generations = 2;
  o.tasks = {"mnist"};
  o.seed = 5;
  test::TempDir tmp;
  eval::LocalEvaluator local(s.tasks, s.budget);
  ASSERT_TRUE(ga::GeneticAlgorithm(o, local, tmp / "full").run().completed);

  // Kill every worker once the first run has been journaled (both are then busy: one with the
  // second run, one about to get the third): the GA ends with one line naming a worker and
  // the genome, task and seed it was training.
  eval::ProcessEvaluator pool(s.tasks, s.options, s.budget, 2, EVOOPT_CLI);
  int done = 0;
  ga::GaEvents events;
  events.run_finished = [&](int, int, const train::RunResult&) {
    if (++done == 1)
      for (pid_t pid : pool.worker_pids()) kill(pid, SIGKILL);
  };
  std::string message;
  try {
    ga::GeneticAlgorithm(o, pool, tmp / "crash").run(events);
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("worker"), std::string::npos) << message;
  EXPECT_NE(message.find("killed by signal 9"), std::string::npos) << message;
  EXPECT_NE(message.find("while training genome"), std::string::npos) << message;
  EXPECT_NE(message.find("on mnist (seed"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_GE(test::count_lines(read_text_file(tmp / "crash/journal.jsonl")), 1);

  // Resuming (fresh workers) gives the uninterrupted history.
  ASSERT_TRUE(ga::GeneticAlgorithm(o, pool, tmp / "crash").run().completed);
  EXPECT_EQ(test::csv_without_last_column(read_text_file(tmp / "full/history.csv")),
            test::csv_without_last_column(read_text_file(tmp / "crash/history.csv")));
}

TEST(ProcessEvaluator, CancelStopsTheWorkersAndTheNextCallStartsFreshOnes) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto& s = small();
  eval::ProcessEvaluator pool(s.tasks, s.options, s.budget, 2, EVOOPT_CLI);
  std::atomic<bool> cancel{false};
  const auto reqs = requests(6);
  const auto r = pool.evaluate(
      reqs, [&](std::size_t, const train::RunResult&) { cancel = true; }, &cancel);
  std::size_t completed = 0;
  for (const auto& x : r) completed += x.has_value();
  EXPECT_GE(completed, 1u);
  EXPECT_LT(completed, reqs.size());
  EXPECT_TRUE(pool.worker_pids().empty());
  const auto again = pool.evaluate(requests(2), {}, nullptr);
  EXPECT_TRUE(again[0] && again[1]);
}

TEST(ProcessEvaluator, AProgramThatIsNotAWorkerIsRefusedWithOneLine) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto& s = small();
  test::TempDir tmp;
  const auto chatty = tmp / "chatty";  // answers, but not in the protocol
  write_file_atomic(chatty, "#!/bin/sh\necho hello\ncat >/dev/null\n");
  std::filesystem::permissions(chatty, std::filesystem::perms::owner_all);
  const auto json_echo = tmp / "echo";  // answers JSON, but not "ready"
  write_file_atomic(json_echo, "#!/bin/sh\nhead -n 1\ncat >/dev/null\n");
  std::filesystem::permissions(json_echo, std::filesystem::perms::owner_all);
  for (const auto& [program, expected] :
       std::vector<std::pair<std::string, std::string>>{{"/nonexistent/evoopt", "cannot start worker program /nonexistent/evoopt"},
                                                        {"/bin/true", "ended before it was ready"},
                                                        {chatty.string(), "did not answer as an evoopt worker"},
                                                        {json_echo.string(), "did not answer as an evoopt worker"}}) {
    const std::string msg = one_line_error([&] { eval::ProcessEvaluator(s.tasks, s.options, s.budget, 2, program); });
    EXPECT_NE(msg.find(expected), std::string::npos) << program << ": " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  // Workers that cannot load the tasks say why (here: a data dir without the dataset).
  auto bad = s.options;
  bad.data_dir = "/nonexistent-data";
  const std::string msg = one_line_error([&] { eval::ProcessEvaluator(s.tasks, bad, s.budget, 2, EVOOPT_CLI); });
  EXPECT_NE(msg.find("could not load its tasks"), std::string::npos) << msg;
  // Workers whose tasks differ from this process's (other options) are refused by fingerprint.
  auto other = s.options;
  other.split.val_size = 299;
  const std::string fp = one_line_error([&] { eval::ProcessEvaluator(s.tasks, other, s.budget, 2, EVOOPT_CLI); });
  EXPECT_NE(fp.find("computes another fingerprint for task mnist"), std::string::npos) << fp;
}

// `evoopt bench workers` trains the same runs with each worker count and says whether the
// results are identical (speed itself is never asserted).
TEST(ProcessEvaluator, BenchWorkersReportsIdenticalResults) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto r =
      test::run_cli("bench workers --workers 1 2 --genomes 2 --tasks mnist --steps 5 --train-subset 500 --data-dir " + test::data_dir().string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("in-process"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("worker processes"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("DIFFERENT"), std::string::npos) << r.out;
  EXPECT_EQ(test::count_lines(r.out) >= 5, true) << r.out;
  const auto bad = test::run_cli("bench workers --workers 0");
  EXPECT_NE(bad.exit_code, 0);
  // Rounds: the counts repeated, interleaved; every round's results compared with the first.
  const auto two = test::run_cli("bench workers --workers 1 2 --rounds 2 --genomes 1 --tasks mnist --steps 3 --train-subset 500 --data-dir " +
                                 test::data_dir().string());
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  EXPECT_NE(two.out.find("timed 2 times per worker count, one after another, interleaved"), std::string::npos) << two.out;
  EXPECT_EQ(two.out.find("DIFFERENT"), std::string::npos) << two.out;
  const auto zero = test::run_cli("bench workers --rounds 0");
  EXPECT_NE(zero.exit_code, 0);
  EXPECT_NE(zero.err.find("--rounds"), std::string::npos) << zero.err;
}

// A batch is handed out longest first (estimated steps × FLOPs per step), so the long runs
// do not start last and leave workers idle at its end; the order changes no result. An
// in-process evaluator finishes in submission order, which shows the order.
TEST(ProcessEvaluator, ABatchRunsLongestFirstAndTheOrderChangesNoResult) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto& s = small();
  std::map<std::string, task::Task> tasks = s.tasks;
  tasks.emplace("mnist:paper", task::load_task("mnist:paper", s.options));
  EXPECT_GT(tasks.at("mnist:paper").step_flops(), 10 * tasks.at("mnist").step_flops());
  eval::LocalEvaluator local(tasks, s.budget);
  const std::vector<eval::RunRequest> reqs = {{genome::preset("adam"), "mnist", 1, data::Split::Val, 8, 0},
                                              {genome::preset("adam"), "mnist:paper", 2, data::Split::Val, 2, 0},
                                              {genome::preset("sgd"), "mnist", 3, data::Split::Val, 2, 0},
                                              {genome::preset("sgd"), "mnist", 4, data::Split::Val, 8, 0}};
  EXPECT_GT(local.estimated_cost(reqs[1]), local.estimated_cost(reqs[0]));
  EXPECT_EQ(local.estimated_cost(reqs[0]), 4 * local.estimated_cost(reqs[2]));
  std::vector<std::size_t> order;
  const auto batch = local.evaluate(
      reqs, [&](std::size_t i, const train::RunResult&) { order.push_back(i); }, nullptr);
  EXPECT_EQ(order, (std::vector<std::size_t>{1, 0, 3, 2}));  // ties keep request order
  for (std::size_t i = 0; i < reqs.size(); ++i) {
    const auto alone = local.evaluate({reqs[i]}, {}, nullptr);
    ASSERT_TRUE(batch[i] && alone[0]);
    EXPECT_EQ(batch[i]->task, reqs[i].task);
    EXPECT_EQ(batch[i]->accuracy, alone[0]->accuracy) << i;
    EXPECT_EQ(batch[i]->final_loss, alone[0]->final_loss) << i;
  }
}
