// The asynchronous steady-state mode (GaOptions::async, issue 10): determinism, resume as
// replay of the recorded completion order, replay of a many-worker order with another worker
// count (synthetic; real worker processes and the CLI are in the integration tests), search
// quality, bad logs.
#include <algorithm>
#include <deque>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/rng.hpp"
#include "evoopt/eval/evaluator.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "test_support.hpp"

using namespace evoopt;
using namespace evoopt::ga;
using genome::Genome;
namespace fs = std::filesystem;

namespace {

// A smooth synthetic fitness with a known optimum (lr 10^-2.5, ADAM_TERM weight 1.5).
double fitness_of(const Genome& g, const std::string& task, std::uint64_t seed) {
  double w = 0;
  for (const auto& t : g.terms)
    if (t.term == genome::Term::AdamTerm) w += t.weight;
  const double d = std::fabs(g.log10_lr + 2.5) + std::fabs(w - 1.5) + 0.3 * static_cast<double>(g.terms.size() - 1);
  return 1.0 / (1.0 + d) * (task == "a" ? 1.0 : 0.95) + 1e-4 * static_cast<double>(seed % 5);
}

GaOptions async_options(std::uint64_t seed) {
  GaOptions o;
  o.population = 10;
  o.generations = 8;
  o.seed = seed;
  o.tasks = {"a", "b"};
  o.space.vocabulary = genome::Vocabulary::Seed;
  o.async = true;
  return o;
}

// Like several workers: requests finish in a scrambled order (a seeded draw among the
// outstanding ones), so the completion order differs from the submission order.
class ScrambledEvaluator : public eval::Evaluator {
 public:
  ScrambledEvaluator(int workers, std::uint64_t seed) : workers_(workers), rng_(seed) {}
  std::uint64_t submit(const eval::RunRequest& r) override {
    queue_.emplace_back(next_, r);
    return next_++;
  }
  std::optional<eval::Completion> next_done(const std::atomic<bool>* cancel) override {
    if ((cancel != nullptr && cancel->load()) || queue_.empty()) {
      queue_.clear();
      return std::nullopt;
    }
    // Only the first `workers_` submitted requests are "running"; one of them finishes.
    const std::size_t running = std::min<std::size_t>(queue_.size(), static_cast<std::size_t>(workers_));
    const std::size_t pick = static_cast<std::size_t>(rng_.below(running));
    auto [ticket, r] = queue_[pick];
    queue_.erase(queue_.begin() + static_cast<long>(pick));
    train::RunResult res;
    res.task = r.task;
    res.seed = r.seed;
    res.split = "val";
    res.accuracy = fitness_of(r.genome, r.task, r.seed);
    res.steps_done = res.steps_planned = 1;
    return eval::Completion{ticket, res};
  }
  std::size_t outstanding() const override { return queue_.size(); }
  int workers() const override { return workers_; }
  std::string describe() const override { return "scrambled synthetic"; }
  std::string fingerprint(const std::string&) const override { return "synthetic"; }
  std::int64_t default_steps() const override { return 1; }

 private:
  int workers_;
  Rng rng_;
  std::uint64_t next_ = 0;
  std::deque<std::pair<std::uint64_t, eval::RunRequest>> queue_;
};

void expect_same_search(const fs::path& a, const fs::path& b) {
  EXPECT_EQ(test::csv_without_last_column(read_text_file(a / "history.csv")), test::csv_without_last_column(read_text_file(b / "history.csv")));
  EXPECT_EQ(read_text_file(a / "lineage.json"), read_text_file(b / "lineage.json"));
  EXPECT_EQ(read_text_file(a / "best_genome.json"), read_text_file(b / "best_genome.json"));
  EXPECT_EQ(read_text_file(a / "completions.jsonl"), read_text_file(b / "completions.jsonl"));
}

}  // namespace

TEST(AsyncGa, SameSeedSameSearchAndEveryIndividualIsBredFromThePopulation) {
  test::TempDir tmp;
  eval::SyntheticEvaluator e1(fitness_of), e2(fitness_of);
  const GaOutcome a = GeneticAlgorithm(async_options(4), e1, tmp / "a").run();
  const GaOutcome b = GeneticAlgorithm(async_options(4), e2, tmp / "b").run();
  ASSERT_TRUE(a.completed && b.completed);
  expect_same_search(tmp / "a", tmp / "b");
  EXPECT_EQ(a.history.size(), 8u);  // one row per `population` finished individuals
  const auto lineage = nlohmann::json::parse(read_text_file(tmp / "a/lineage.json"))["individuals"];
  ASSERT_EQ(lineage.size(), 80u);  // population × generations
  int children = 0;
  for (const auto& i : lineage) {
    EXPECT_NE(i["origin"], "elite");  // aging, not elitism
    if (i["generation"] == 0) continue;
    ++children;
    EXPECT_FALSE(i["parents"].empty());
    // Parents finished before the child was bred: their ids are smaller.
    for (const auto& p : i["parents"]) EXPECT_LT(p.get<std::uint64_t>(), i["id"].get<std::uint64_t>());
  }
  EXPECT_EQ(children, 70);
  // One completion line per individual, after the header.
  EXPECT_EQ(read_journal_lines(tmp / "a/completions.jsonl").size(), 81u);
  // The search improves on its initial population.
  EXPECT_GT(a.history.back().best, a.history.front().best);
  EXPECT_GT(a.best.fitness, 0.6);
}

TEST(AsyncGa, InterruptedAnywhereItResumesToTheSameSearchWithoutRepeatingARun) {
  test::TempDir tmp;
  eval::SyntheticEvaluator full_ev(fitness_of);
  ASSERT_TRUE(GeneticAlgorithm(async_options(9), full_ev, tmp / "full").run().completed);
  for (int stop_every : {1, 5, 37, 120}) {
    const auto dir = tmp / ("cut" + std::to_string(stop_every));
    std::size_t calls = 0;
    bool completed = false;
    int sessions = 0;
    while (!completed) {
      ASSERT_LT(++sessions, 1000);
      std::atomic<bool> cancel{false};
      int runs = 0;
      GaEvents ev;
      ev.run_finished = [&](int, int, const train::RunResult&) { cancel = ++runs >= stop_every; };
      eval::SyntheticEvaluator se(fitness_of);
      const GaOutcome part = GeneticAlgorithm(async_options(9), se, dir).run(ev, &cancel);
      calls += se.calls();
      completed = part.completed;
    }
    EXPECT_GT(sessions, 1);
    EXPECT_EQ(calls, full_ev.calls()) << "a completed run was repeated (stop every " << stop_every << ")";
    expect_same_search(dir, tmp / "full");
  }
}

// Many workers finish runs in an order nobody controls; the recorded order reproduces the
// search exactly, here with one in-process evaluator instead of the scrambled "workers".
TEST(AsyncGa, TheRecordedCompletionOrderReplaysAManyWorkerSearchWithOneWorker) {
  test::TempDir tmp;
  ScrambledEvaluator many(4, 77);
  const GaOutcome a = GeneticAlgorithm(async_options(2), many, tmp / "many").run();
  ASSERT_TRUE(a.completed);
  // The same seed without the log: another order, another search (the order matters).
  eval::SyntheticEvaluator plain(fitness_of);
  ASSERT_TRUE(GeneticAlgorithm(async_options(2), plain, tmp / "plain").run().completed);
  EXPECT_NE(read_text_file(tmp / "many/lineage.json"), read_text_file(tmp / "plain/lineage.json"));
  // With the log (and no journal: everything is trained again): the same search.
  fs::create_directories(tmp / "replay");
  fs::copy_file(tmp / "many/completions.jsonl", tmp / "replay/completions.jsonl");
  eval::SyntheticEvaluator one(fitness_of);
  const GaOutcome r = GeneticAlgorithm(async_options(2), one, tmp / "replay").run();
  ASSERT_TRUE(r.completed);
  expect_same_search(tmp / "many", tmp / "replay");
  EXPECT_EQ(r.best.id, a.best.id);
}

TEST(AsyncGa, ABadCompletionLogIsRefusedNamingTheFileAndLine) {
  test::TempDir tmp;
  eval::SyntheticEvaluator ev(fitness_of);
  ASSERT_TRUE(GeneticAlgorithm(async_options(1), ev, tmp / "ok").run().completed);
  const auto lines = read_journal_lines(tmp / "ok/completions.jsonl");
  auto expect_refused = [&](const std::string& name, const std::vector<std::string>& content, const std::string& expect) {
    const auto dir = tmp / name;
    fs::create_directories(dir);
    std::ofstream out(dir / "completions.jsonl");
    for (const auto& l : content) out << l << "\n";
    out.close();
    eval::SyntheticEvaluator e(fitness_of);
    try {
      GeneticAlgorithm(async_options(1), e, dir).run();
      ADD_FAILURE() << name << ": accepted";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find(expect), std::string::npos) << name << ": " << err.what();
    }
  };
  expect_refused("header", {"{\"format\": \"other\"}"}, "line 1: not an evoopt completion log");
  expect_refused("number", {lines[0], lines[2]}, "line 2: /n: entry number 1 where 0 was expected");
  expect_refused("foreign", {lines[0], "{\"n\": 0, \"id\": 999}"}, "line 2: individual 999 was not being evaluated");
  std::vector<std::string> garbled = {lines[0], lines[1], "not json", lines[3]};
  expect_refused("garbled", garbled, "line 3");
  // The order of another search (here: another seed) is refused, not replayed into this one.
  fs::create_directories(tmp / "other");
  fs::copy_file(tmp / "ok/completions.jsonl", tmp / "other/completions.jsonl");
  eval::SyntheticEvaluator e2(fitness_of);
  try {
    GeneticAlgorithm(async_options(2), e2, tmp / "other").run();
    ADD_FAILURE() << "another search's completion order was accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("line 1: recorded for another search"), std::string::npos) << err.what();
  }
  // Racing needs generations.
  GaOptions o = async_options(1);
  o.racing.enabled = true;
  EXPECT_THROW(o.validate(), Error);
}
