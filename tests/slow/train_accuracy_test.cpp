// The adam preset on the tiny models reaches the required validation
// accuracy within 300 steps (issue 4). Label: slow.
#include <gtest/gtest.h>

#include "evoopt/task/task.hpp"
#include "evoopt/train/trainer.hpp"
#include "test_support.hpp"

using namespace evoopt;

namespace {
double adam_accuracy(const std::string& name) {
  task::TaskOptions o;
  o.data_dir = test::data_dir();
  const task::Task t = task::load_task(name, o);
  train::Budget b;
  b.steps = 300;
  auto r = train::train_and_evaluate(genome::preset("adam"), t, /*seed=*/0, b);
  EXPECT_FALSE(r.diverged);
  EXPECT_EQ(r.split, "val");
  return r.accuracy;
}
}  // namespace

TEST(TrainAccuracy, AdamTinyMnistAtLeast093) {
  EVOOPT_REQUIRE_DATASET("mnist");
  EXPECT_GE(adam_accuracy("mnist"), 0.93);
}

TEST(TrainAccuracy, AdamTinyFashionMnistAtLeast075) {
  EVOOPT_REQUIRE_DATASET("fashion_mnist");
  EXPECT_GE(adam_accuracy("fashion_mnist"), 0.75);
}

TEST(TrainAccuracy, AdamTinyCifar10JpegMirrorAtLeast030) {
  EVOOPT_REQUIRE_DATASET("cifar10");
  EXPECT_GE(adam_accuracy("cifar10"), 0.30);
}
