// Tasks beyond the three search CNNs (issue 12) on the prepared data: the Jargon File (the
// byte-level LSTM's and transformer's text) and Fashion-MNIST with the MLP load as held-out
// tasks and train.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/task/task.hpp"
#include "evoopt/train/trainer.hpp"
#include "test_support.hpp"

using namespace evoopt;

namespace {

train::Budget budget(std::int64_t steps) {
  train::Budget b;
  b.steps = steps;
  b.log_every = 5;
  return b;
}

}  // namespace

TEST(Tasks, JargonFileAndTheMlpLoadAsHeldOutTasks) {
  EVOOPT_REQUIRE_DATASET("jargon");
  EVOOPT_REQUIRE_DATASET("fashion_mnist");
  task::TaskOptions o;
  o.data_dir = test::data_dir();
  o.batch_size = 8;
  const task::Task text = task::load_task("jargon", o);
  EXPECT_EQ(text.kind, task::TaskKind::NextToken);
  EXPECT_EQ(text.data->train.size() + text.data->val.size() + text.data->test.size(), 1681817);  // the Jargon File 4.4.7's bytes
  EXPECT_FALSE(text.data->digest.empty());
  const auto r = train::train_and_evaluate(genome::preset("adam"), text, 0, budget(5));
  EXPECT_FALSE(r.diverged);
  EXPECT_GT(r.accuracy, 1.0 / 256);  // better than uniform after 5 steps
  o.split.train_subset = 2000;
  o.split.val_size = 500;
  const task::Task mlp = task::load_task("fashion_mnist:mlp", o);
  EXPECT_EQ(mlp.model, task::ModelPreset::Mlp);
  EXPECT_EQ(mlp.description().at("model"), "mlp");
  EXPECT_EQ(mlp.dataset, "fashion_mnist");
  // Only the models with dropout record how their masks are drawn (so runs stored with the
  // earlier masks never answer for them); the others' fingerprints are unchanged.
  EXPECT_FALSE(mlp.description().contains("dropout_masks"));
  EXPECT_EQ(task::load_task("fashion_mnist:paper", o).description().at("dropout_masks"), "counter");
}

// `evoopt train --task jargon:transformer`: the byte transformer trains a few steps on the
// Jargon File through the CLI, in sequences of its whole context, and is scored by 1/perplexity.
TEST(Tasks, CliTrainsTheByteTransformerOnTheJargonFile) {
  EVOOPT_REQUIRE_DATASET("jargon");
  test::TempDir tmp;
  const auto r = test::run_cli("train --genome adam --task jargon:transformer --steps 4 --batch-size 4 --seed 2 --data-dir " +
                               test::data_dir().string() + " --out " + (tmp / "r.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("task jargon:transformer [jargon], model transformer, 4 steps, batch 4, seed 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("val loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("perplexity"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(read_text_file(tmp / "r.json"));
  EXPECT_EQ(j["model"], "transformer");
  EXPECT_EQ(j["steps_done"], 4);
  EXPECT_FALSE(j["diverged"].get<bool>());
  EXPECT_NEAR(j["accuracy"].get<double>(), std::exp(-j["eval_loss"].get<double>()), 1e-12);
  EXPECT_GT(j["accuracy"].get<double>(), 1.0 / 256);  // better than uniform after 4 steps
}
