// The one run store: keys that hold everything that changes a result, reload, non-finite
// losses, cancelled batches (issue 9). Dataset verification on load and `evoopt resume`
// refusing a run directory that no longer fits: tests/integration/run_store_integration_test.cpp.
#include <atomic>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/task/task.hpp"
#include "test_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;

namespace {

train::RunResult result(double accuracy) {
  train::RunResult r;
  r.task = "t";
  r.split = "val";
  r.accuracy = accuracy;
  r.steps_done = r.steps_planned = 5;
  r.loss_curve = {{1, 2.0, 2.0}, {5, 1.0, 1.5}};
  return r;
}

eval::RunKey key(std::int64_t steps, const std::string& fingerprint = "f") { return {"abcd", "t", "val", steps, 7, fingerprint}; }

// A tiny in-memory 28×28 task (random images) for real LocalEvaluator runs.
task::Task synthetic_task(const task::TaskOptions& o) {
  torch::manual_seed(0);
  data::DatasetPair pair;
  pair.name = "mnist";
  pair.label = "synthetic";
  pair.classes = {"0", "1"};
  pair.train = {torch::randint(0, 256, {300, 1, 28, 28}, torch::kUInt8), torch::randint(0, 2, {300}, torch::kInt64)};
  pair.test = {torch::randint(0, 256, {60, 1, 28, 28}, torch::kUInt8), torch::randint(0, 2, {60}, torch::kInt64)};
  auto splits = std::make_shared<data::Splits>(data::make_splits(pair, o.split));
  return task::make_task("mnist", splits, o);
}

task::TaskOptions small_options() {
  task::TaskOptions o;
  o.split.val_size = 50;
  o.batch_size = 16;
  return o;
}

}  // namespace

TEST(RunStore, StoresReloadsAndKeysOnEveryField) {
  test::TempDir tmp;
  {
    eval::RunStore store(tmp / "journal.jsonl");
    store.append(key(5), eval::RunStage::Search, result(0.5));
    store.append(key(5), eval::RunStage::Test, result(0.9));  // same key: the first result stays
    store.append(key(6), eval::RunStage::Sweep, result(0.6));
    EXPECT_EQ(store.size(), 2u);
  }
  eval::RunStore again(tmp / "journal.jsonl");
  EXPECT_EQ(again.size(), 2u);
  EXPECT_EQ(again.find(key(5))->accuracy, 0.5);
  EXPECT_EQ(again.find(key(6))->accuracy, 0.6);
  EXPECT_EQ(again.entries().at(1).stage, eval::RunStage::Sweep);
  EXPECT_FALSE(again.find(key(7)).has_value());
  EXPECT_FALSE(again.find(key(5, "other-fingerprint")).has_value());
  eval::RunKey k = key(5);
  k.split = "test";
  EXPECT_FALSE(again.find(k).has_value());
  k = key(5);
  k.seed = 8;
  EXPECT_FALSE(again.find(k).has_value());
  // A malformed line names the file and the line.
  std::ofstream(tmp / "journal.jsonl", std::ios::app) << "{\"key\": {\"genome\": \"x\"}}\n";
  try {
    eval::RunStore bad(tmp / "journal.jsonl");
    FAIL() << "a malformed line was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("journal.jsonl line 3"), std::string::npos) << e.what();
  }
}

TEST(RunStore, NonFiniteLossesSurviveTheJsonRoundTrip) {
  train::RunResult r = result(0.1);
  r.diverged = true;
  r.final_loss = std::numeric_limits<double>::quiet_NaN();
  r.smoothed_loss = std::numeric_limits<double>::infinity();
  r.loss_curve.push_back({6, -std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()});
  const auto back = train::run_result_from_json(nlohmann::json::parse(train::to_json(r).dump()));
  EXPECT_TRUE(std::isnan(back.final_loss));
  EXPECT_TRUE(std::isinf(back.smoothed_loss) && back.smoothed_loss > 0);
  EXPECT_TRUE(std::isinf(back.loss_curve.back().loss) && back.loss_curve.back().loss < 0);
  test::TempDir tmp;
  eval::RunStore(tmp / "j").append(key(5), eval::RunStage::Search, r);
  EXPECT_TRUE(std::isnan(eval::RunStore(tmp / "j").find(key(5))->final_loss));
}

TEST(RunStore, ACancelledBatchThrowsInterruptedAndStoresOnlyWhatFinished) {
  train::Budget b;
  b.steps = 3;
  const eval::RunRequest req{genome::preset("adam"), "mnist", 11, data::Split::Val, 0};
  eval::RunStore store;
  eval::LocalEvaluator ev({{"mnist", synthetic_task(small_options())}}, b);
  const std::atomic<bool> cancel{true};
  EXPECT_THROW(eval::run_with_store(store, ev, eval::RunStage::Search, {req}, {}, &cancel), eval::Interrupted);
  EXPECT_EQ(store.size(), 0u);
  // A batch the store answers whole needs no training: nothing to cancel.
  eval::run_with_store(store, ev, eval::RunStage::Search, {req}, {}, nullptr);
  EXPECT_EQ(eval::run_with_store(store, ev, eval::RunStage::Search, {req}, {}, &cancel).size(), 1u);
}

TEST(RunStore, ARequestWithOtherStepsModelBatchOrSubsetIsNeverAnsweredFromTheStore) {
  const task::TaskOptions base = small_options();
  train::Budget b;
  b.steps = 3;
  const genome::Genome adam = genome::preset("adam");
  const eval::RunRequest req{adam, "mnist", 11, data::Split::Val, 0};
  eval::RunStore store;
  eval::LocalEvaluator ev({{"mnist", synthetic_task(base)}}, b);
  ASSERT_EQ(eval::run_with_store(store, ev, eval::RunStage::Search, {req}, {}, nullptr).size(), 1u);
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.entries().at(0).key.steps, 3);  // 0 = "the budget's" is never a key
  // The same request again: found.
  int trained = 0;
  eval::StoreEvents events;
  events.trained = [&](const train::RunResult&) { ++trained; };
  eval::run_with_store(store, ev, eval::RunStage::Search, {req}, events, nullptr);
  EXPECT_EQ(trained, 0);
  // Any change that alters the result: trained anew.
  auto expect_new = [&](const eval::Evaluator& other, const eval::RunRequest& r, const std::string& what) {
    EXPECT_NE(eval::run_key(other, r).str(), eval::run_key(ev, req).str()) << what;
  };
  train::Budget b4 = b;
  b4.steps = 4;
  expect_new(eval::LocalEvaluator({{"mnist", synthetic_task(base)}}, b4), req, "steps");
  eval::RunRequest explicit_steps = req;
  explicit_steps.steps = 5;
  expect_new(ev, explicit_steps, "request steps");
  task::TaskOptions o = base;
  o.model = task::ModelPreset::Paper;
  expect_new(eval::LocalEvaluator({{"mnist", synthetic_task(o)}}, b), req, "model");
  o = base;
  o.batch_size = 32;
  expect_new(eval::LocalEvaluator({{"mnist", synthetic_task(o)}}, b), req, "batch size");
  o = base;
  o.split.train_subset = 100;
  expect_new(eval::LocalEvaluator({{"mnist", synthetic_task(o)}}, b), req, "training subset");
  o = base;
  o.split.val_size = 60;
  expect_new(eval::LocalEvaluator({{"mnist", synthetic_task(o)}}, b), req, "validation size");
  o = base;
  o.split.split_seed = 1;
  expect_new(eval::LocalEvaluator({{"mnist", synthetic_task(o)}}, b), req, "split seed");
  o = base;
  o.augment = 1;
  expect_new(eval::LocalEvaluator({{"mnist", synthetic_task(o)}}, b), req, "augmentation");
  train::Budget log = b;
  log.log_every = 1;
  expect_new(eval::LocalEvaluator({{"mnist", synthetic_task(base)}}, log), req, "loss-curve resolution");
  // Same settings, same fingerprint (it is a function of them, not of the object).
  EXPECT_EQ(eval::LocalEvaluator({{"mnist", synthetic_task(base)}}, b).fingerprint("mnist"), ev.fingerprint("mnist"));
}
