// Progress and ETA (issue 11) on the prepared data: each loaded task's step and evaluation
// cost, measured on real MNIST and the Jargon File, relative to the search tasks' mean.
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

// Each loaded task's step and test-split evaluation cost, relative to the search tasks' mean:
// the search tasks average 1, and a held-out task (here the char LSTM) gets a cost of its own.
TEST(Progress, TaskCostsAreRelativeToTheSearchTasksMean) {
  EVOOPT_REQUIRE_DATASET("mnist");
  EVOOPT_REQUIRE_DATASET("jargon");
  ExperimentConfig c;
  c.tasks = {"mnist", "mnist:mlp"};
  c.transfer_tasks = {"jargon"};
  c.data_dir = test::data_dir().string();
  c.train_subset = 500;
  c.val_size = 200;
  c.steps = 10;
  const LoadedTasks loaded = load_tasks(c);
  ASSERT_EQ(loaded.tasks.size(), 3u);
  const TaskCosts costs = measure_task_costs(c, loaded);
  for (const auto* m : {&costs.step, &costs.eval}) {
    ASSERT_EQ(m->size(), 3u);
    EXPECT_NEAR((m->at("mnist") + m->at("mnist:mlp")) / 2, 1.0, 1e-12);
    for (const auto& [t, v] : *m) EXPECT_GT(v, 0.0) << t;
  }
  EXPECT_EQ(costs.step_of("not loaded"), 1.0);
  const Work w = costs.scaled("jargon", Work{2, 100, 1000});
  EXPECT_EQ(w.runs, 2);
  EXPECT_EQ(w.steps, std::llround(100 * costs.step_of("jargon")));
  EXPECT_EQ(w.images, std::llround(1000 * costs.eval_of("jargon")));
}
