// Tasks beyond the three search CNNs (issue 12): DATASET:MODEL names, the MLP and the
// byte-level LSTM, text data (splits, batches, 1/perplexity fitness), held-out transfer
// tasks in the config and in the comparison. The Jargon File and Fashion-MNIST themselves:
// tests/integration/tasks_integration_test.cpp.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/rng.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/task/task.hpp"
#include "evoopt/train/trainer.hpp"
#include "test_support.hpp"

using namespace evoopt;

namespace {

std::int64_t parameter_count(task::Model& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

// A generated text with structure a byte model can learn in a few dozen steps: sentences of
// words drawn from a small vocabulary, 800,000 bytes.
const torch::Tensor& generated_bytes() {
  static const torch::Tensor bytes = [] {
    const std::vector<std::string> words = {"the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "its", "red", "ball"};
    Rng rng(11);
    std::string text;
    while (text.size() < 800000) {
      const auto n = 3 + rng.below(6);
      for (std::uint64_t i = 0; i < n; ++i) text += (i == 0 ? "" : " ") + words[rng.below(words.size())];
      text += ".\n";
    }
    return torch::from_blob(text.data(), {static_cast<std::int64_t>(text.size())}, torch::kUInt8).clone();
  }();
  return bytes;
}

std::shared_ptr<const data::Splits> generated_text() {
  static const auto splits = [] {
    data::DatasetPair pair;
    pair.name = "generated_text";
    const torch::Tensor& bytes = generated_bytes();
    const std::int64_t test = data::kTextHeldOutBytes;
    pair.train.tokens = bytes.narrow(0, 0, bytes.size(0) - test).clone();
    pair.test.tokens = bytes.narrow(0, bytes.size(0) - test, test).clone();
    return std::make_shared<const data::Splits>(data::make_splits(pair, {}));
  }();
  return splits;
}

train::Budget budget(std::int64_t steps) {
  train::Budget b;
  b.steps = steps;
  b.log_every = 5;
  return b;
}

}  // namespace

TEST(Tasks, NamesPickADatasetAndAModelThatReadsIt) {
  EXPECT_EQ(task::parse_task_name("mnist").dataset, "mnist");
  EXPECT_FALSE(task::parse_task_name("mnist").model.has_value());
  const auto mlp = task::parse_task_name("fashion_mnist:mlp");
  EXPECT_EQ(mlp.dataset, "fashion_mnist");
  EXPECT_EQ(mlp.model, task::ModelPreset::Mlp);
  EXPECT_EQ(task::parse_task_name("jargon:lstm").model, task::ModelPreset::Lstm);
  EXPECT_EQ(task::parse_task_name("jargon:transformer").model, task::ModelPreset::Transformer);
  auto error_of = [](const std::string& name) {
    try {
      task::parse_task_name(name);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("imagenet").find("unknown task 'imagenet'"), std::string::npos);
  EXPECT_NE(error_of("mnist:giant").find("unknown model preset 'giant'"), std::string::npos);
  EXPECT_NE(error_of("mnist:lstm").find("lstm reads text"), std::string::npos);
  EXPECT_NE(error_of("jargon:mlp").find("its model must be lstm or transformer, not mlp"), std::string::npos);
  EXPECT_NE(error_of("cifar10:transformer").find("CIFAR-10 holds images; transformer reads text (allowed: tiny, paper, mlp)"), std::string::npos);
  EXPECT_NE(error_of("mnist:giant").find("(allowed: tiny, paper, mlp, lstm, transformer)"), std::string::npos);
  EXPECT_NE(error_of("imagenet").find("models: tiny, paper, mlp, lstm, transformer; or cartpole)"), std::string::npos);
}

TEST(Tasks, MlpAndLstmHaveTheDocumentedShapes) {
  auto mlp = task::build_model(task::ModelPreset::Mlp, {1, 28, 28, 10}, 0);
  // 784→256 (200,960) + 256→128 (32,896) + 128→10 (1,290)
  EXPECT_EQ(parameter_count(*mlp), 200960 + 32896 + 1290);
  EXPECT_EQ(mlp->forward(torch::zeros({2, 1, 28, 28})).sizes(), (std::vector<std::int64_t>{2, 10}));
  auto lstm = task::build_model(task::ModelPreset::Lstm, {0, 0, 0, 256}, 0);
  // embedding 256×64 (16,384) + LSTM 4·128·(64+128) weights and 2·4·128 biases (99,328) + 128→256 (33,024)
  EXPECT_EQ(parameter_count(*lstm), 16384 + 99328 + 33024);
  EXPECT_EQ(lstm->forward(torch::zeros({3, 7}, torch::kInt64)).sizes(), (std::vector<std::int64_t>{3, 7, 256}));
  // Initialised from the seed alone.
  auto again = task::build_model(task::ModelPreset::Lstm, {0, 0, 0, 256}, 0);
  auto other = task::build_model(task::ModelPreset::Lstm, {0, 0, 0, 256}, 1);
  EXPECT_TRUE(torch::equal(lstm->parameters()[0], again->parameters()[0]));
  EXPECT_FALSE(torch::equal(lstm->parameters()[0], other->parameters()[0]));
  EXPECT_THROW(task::build_model(task::ModelPreset::Lstm, {1, 28, 28, 10}, 0), Error);
  EXPECT_THROW(task::build_model(task::ModelPreset::Mlp, {0, 0, 0, 256}, 0), Error);
}

TEST(Tasks, TextSplitsKeepTheBytesInOrder) {
  const auto s = generated_text();
  ASSERT_TRUE(s->is_text());
  EXPECT_EQ(s->val.size(), data::kTextHeldOutBytes);
  EXPECT_EQ(s->test.size(), data::kTextHeldOutBytes);
  // Training, then validation (the training part's last bytes), then test: the text in order.
  EXPECT_TRUE(torch::equal(torch::cat({s->train.tokens, s->val.tokens, s->test.tokens}), generated_bytes()));
  const task::Task t = task::make_task("generated_text", s, {});
  EXPECT_EQ(t.kind, task::TaskKind::NextToken);
  EXPECT_EQ(t.model, task::ModelPreset::Lstm);
  EXPECT_EQ(t.examples(data::Split::Val), (data::kTextHeldOutBytes - 1) / task::kTextSequenceLength);
  EXPECT_EQ(t.description().at("seq_len"), task::kTextSequenceLength);
  // The image options do not apply to a text: the same splits under any of them.
  data::SplitOptions o;
  o.train_subset = 1000;
  o.val_size = 10;
  o.split_seed = 5;
  data::DatasetPair pair;
  pair.name = "generated_text";
  pair.train.tokens = torch::cat({s->train.tokens, s->val.tokens});
  pair.test = s->test;
  const auto same = data::make_splits(pair, o);
  EXPECT_TRUE(torch::equal(same.train.tokens, s->train.tokens));
  EXPECT_TRUE(torch::equal(same.val.tokens, s->val.tokens));
  // A shorter stream keeps a tenth for validation.
  pair.train.tokens = pair.train.tokens.narrow(0, 0, 200000);
  EXPECT_EQ(data::make_splits(pair, o).val.size(), 20000);
  pair.train.tokens = pair.train.tokens.narrow(0, 0, 999);
  EXPECT_THROW(data::make_splits(pair, o), Error);  // too short
}

TEST(Tasks, ByteLstmLearnsAGeneratedTextReproducibly) {
  task::TaskOptions o;
  o.batch_size = 16;
  const task::Task t = task::make_task("generated_text", generated_text(), o);
  genome::Genome g = genome::preset("adam");
  g.log10_lr = std::log10(1e-2);
  const auto a = train::train_and_evaluate(g, t, 3, budget(60));
  const auto b = train::train_and_evaluate(g, t, 3, budget(60));
  ASSERT_FALSE(a.diverged) << a.divergence_reason;
  EXPECT_EQ(a.accuracy, b.accuracy);
  EXPECT_EQ(a.eval_loss, b.eval_loss);
  ASSERT_EQ(a.loss_curve.size(), b.loss_curve.size());
  for (std::size_t i = 0; i < a.loss_curve.size(); ++i) EXPECT_EQ(a.loss_curve[i].loss, b.loss_curve[i].loss);
  // Fitness = exp(−mean validation cross-entropy) = 1/perplexity: far above the uniform
  // 1/256 and above a unigram model of this text's ~20 symbols after 60 steps.
  EXPECT_NEAR(a.accuracy, std::exp(-a.eval_loss), 1e-12);
  EXPECT_LT(a.eval_loss, a.loss_curve.front().loss);
  EXPECT_GT(a.accuracy, 0.15) << "perplexity " << std::exp(a.eval_loss);
  // Another seed: other batches and initial weights.
  const auto c = train::train_and_evaluate(g, t, 4, budget(5));
  EXPECT_NE(a.loss_curve.front().loss, c.loss_curve.front().loss);
  // The JSON of a result keeps the loss (old journals without it read as NaN).
  const auto back = train::run_result_from_json(train::to_json(a));
  EXPECT_EQ(back.eval_loss, a.eval_loss);
  auto j = train::to_json(a);
  j.erase("eval_loss");
  EXPECT_TRUE(std::isnan(train::run_result_from_json(j).eval_loss));
}

// The transformer's text task: sequences of its whole context (128 bytes) where the LSTM's are
// 64, its own default batch, both in the description (and so in every run key); the LSTM's
// task as before. A few steps train and score through the trainer.
TEST(Tasks, TransformerTaskReadsItsWholeContext) {
  const task::Task lstm = task::make_task("generated_text", generated_text(), {});
  EXPECT_EQ(lstm.seq_len, task::kTextSequenceLength);
  EXPECT_EQ(lstm.batch_size, 64);
  EXPECT_EQ(lstm.default_steps, 300);
  const task::Task t = task::make_task("generated_text:transformer", generated_text(), {});
  EXPECT_EQ(t.kind, task::TaskKind::NextToken);
  EXPECT_EQ(t.model, task::ModelPreset::Transformer);
  EXPECT_EQ(t.seq_len, task::kTransformerContext);
  EXPECT_EQ(task::text_sequence_length(task::ModelPreset::Lstm), 64);
  EXPECT_EQ(task::text_sequence_length(task::ModelPreset::Transformer), 128);
  EXPECT_THROW(task::text_sequence_length(task::ModelPreset::Tiny), Error);
  EXPECT_EQ(t.batch_size, task::kTransformerBatchSize);
  EXPECT_EQ(t.default_steps, 300);
  EXPECT_EQ(t.examples(data::Split::Val), (data::kTextHeldOutBytes - 1) / 128);
  EXPECT_EQ(t.description().at("seq_len"), 128);
  EXPECT_EQ(t.description().at("model"), "transformer");
  EXPECT_EQ(t.step_flops(), 3.0 * 983040.0 * 128 * static_cast<double>(t.batch_size));
  task::TaskOptions o;
  o.batch_size = 4;
  const task::Task small = task::make_task("generated_text:transformer", generated_text(), o);
  EXPECT_EQ(small.batch_size, 4);
  genome::Genome g = genome::preset("adam");
  g.log10_lr = std::log10(3e-3);
  train::Budget b = budget(20);
  b.eval_limit = 8;
  const auto a = train::train_and_evaluate(g, small, 1, b);
  ASSERT_FALSE(a.diverged) << a.divergence_reason;
  EXPECT_LT(a.eval_loss, a.loss_curve.front().loss);
  EXPECT_EQ(a.eval_loss, train::train_and_evaluate(g, small, 1, b).eval_loss);
}

TEST(Transfer, ConfigKeepsHeldOutTasksOutOfTheSearch) {
  experiment::ExperimentConfig c;
  EXPECT_EQ(c.transfer_tasks, (std::vector<std::string>{"fashion_mnist:mlp", "cartpole"}));
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.all_tasks().size(), 5u);
  c.transfer_tasks = {"mnist"};
  EXPECT_THROW(c.validate(), Error);  // a search task
  c.transfer_tasks = {"jargon", "jargon"};
  EXPECT_THROW(c.validate(), Error);
  c.transfer_tasks = {"mnist:lstm"};
  EXPECT_THROW(c.validate(), Error);
  // A config.json written before the field existed: no transfer, the same fingerprint.
  c.transfer_tasks.clear();
  auto j = c.to_json();
  j.erase("transfer_tasks");
  const auto old = experiment::ExperimentConfig::from_json(j);
  EXPECT_TRUE(old.transfer_tasks.empty());
  EXPECT_EQ(old.fingerprint(), c.fingerprint());
  c.transfer_tasks = {"jargon"};
  EXPECT_NE(c.fingerprint(), old.fingerprint());
  EXPECT_EQ(experiment::ExperimentConfig::from_json(c.to_json()).transfer_tasks, c.transfer_tasks);
}

TEST(Transfer, HeldOutTasksAreTestedWithTheHyperparametersChosenOnTheSearchTasks) {
  // Adam is best near lr 3e-3 on every task; on the held-out task "h" sgd is better than
  // on the search tasks, so the block can disagree with the search block.
  eval::SyntheticEvaluator ev([](const genome::Genome& g, const std::string& task, std::uint64_t seed) {
    double base = 0.9 - 0.1 * std::fabs(g.log10_lr - std::log10(3e-3));
    const bool adam = g.terms.front().term == genome::Term::AdamTerm;
    if (!adam) base -= task == "h" ? -0.3 : 0.2;
    return base + 1e-3 * static_cast<double>(seed % 7);
  });
  eval::RunStore store;
  experiment::RunContext ctx{ev, store};
  experiment::CompareInputs in;
  in.evolved = genome::preset("adam");
  in.evolved.log10_lr = std::log10(3e-3);
  in.evolved_val_fitness = 0.9;
  in.tasks = {"a", "b"};
  in.transfer_tasks = {"h"};
  in.labels = {{"a", "A"}, {"b", "B"}, {"h", "H"}};
  in.run_seed = 2;
  in.steps = 10;
  in.options.protocol = experiment::Protocol::Strong;  // held-out tasks never tuned (quasirandom tunes them per workload)
  in.options.baselines = {"sgd", "adam"};
  in.options.lr_grid = {1e-3, 1e-2};
  in.options.wd_grid = {0.0};
  in.options.test_seeds = 4;
  in.options.attribution = false;
  const auto c = experiment::run_comparison(ctx, in);
  ASSERT_EQ(c.transfer.size(), 2u);  // search horizon and the longer one
  EXPECT_EQ(c.transfer[0].steps, 10);
  EXPECT_EQ(c.transfer[1].steps, 20);
  ASSERT_EQ(c.transfer[0].methods.size(), 3u);  // evolved, sgd, adam
  ASSERT_EQ(c.transfer[1].methods.size(), 2u);  // evolved, the strongest baseline
  for (const auto& m : c.transfer[0].methods) {
    EXPECT_EQ(m.test.size(), 1u);
    EXPECT_EQ(m.test.at("h").size(), 4u);
    EXPECT_EQ(m.overall, m.test.at("h"));
  }
  // The same genomes as in the search block: nothing re-tuned on the held-out task.
  for (std::size_t i = 0; i < c.transfer[0].methods.size(); ++i)
    EXPECT_EQ(c.transfer[0].methods[i].genome.hash_hex(), c.horizons[0].methods[i].genome.hash_hex());
  EXPECT_EQ(c.seeds.at("h"), experiment::test_seeds(2, "h", 4, 1));
  // Selection and tuning never saw the held-out task: its only runs are test runs, stage "transfer".
  int held_out_runs = 0;
  for (const auto& e : store.entries())
    if (e.key.task == "h") {
      ++held_out_runs;
      EXPECT_EQ(e.key.split, "test");
      EXPECT_EQ(e.stage, eval::RunStage::Transfer);
    }
  EXPECT_EQ(held_out_runs, (3 + 2) * 4);
  // sgd wins on the held-out task: the paired difference says so.
  const auto j = c.to_json();
  ASSERT_TRUE(j.contains("transfer"));
  EXPECT_EQ(j["transfer"]["tasks"], nlohmann::json::array({"h"}));
  const auto& sgd = j["transfer"]["horizons"][0]["methods"][1];
  EXPECT_EQ(sgd["name"], "sgd (tuned)");
  EXPECT_LT(sgd["test"]["h"]["evolved_minus_this"]["mean"].get<double>(), 0.0);
  EXPECT_FALSE(sgd["test"].contains("a"));
  const std::string csv = c.to_csv();
  // search block: (3 + 2 methods) × (2 tasks + overall); transfer: (3 + 2) × (1 task + overall)
  EXPECT_EQ(test::count_lines(csv), 1 + 5 * 3 + 5 * 2);
  EXPECT_NE(csv.find(",\"H\","), std::string::npos);
  EXPECT_NE(csv.find(",transfer\n"), std::string::npos);
  // A next-token held-out task also gets its test loss and perplexity per seed in the JSON.
  experiment::ExperimentConfig cfg;
  EXPECT_TRUE(experiment::is_next_token_task(cfg, "jargon"));
  EXPECT_FALSE(experiment::is_next_token_task(cfg, "fashion_mnist:mlp"));
  in.next_token_tasks = {"h"};
  const auto text = experiment::run_comparison(ctx, in).to_json();
  const auto& cell = text["transfer"]["horizons"][0]["methods"][0]["test"]["h"];
  const double f = cell["values"][0].get<double>();
  EXPECT_DOUBLE_EQ(cell["perplexity"]["values"][0].get<double>(), 1.0 / f);
  EXPECT_DOUBLE_EQ(cell["loss_nats"]["values"][0].get<double>(), -std::log(f));
  EXPECT_FALSE(text["horizons"][0]["methods"][0]["test"]["a"].contains("perplexity"));
  in.next_token_tasks.clear();
  // Without held-out tasks there is no block.
  in.transfer_tasks.clear();
  const auto none = experiment::run_comparison(ctx, in);
  EXPECT_TRUE(none.transfer.empty());
  EXPECT_FALSE(none.to_json().contains("transfer"));
}
