// Training engine on real MNIST, CIFAR-10 and the Jargon File (issue 4): determinism, common
// random numbers, divergence, host reads every k steps, CUDA, the channels-last layout,
// continued runs, and the train CLI.
#include <cmath>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/task/task.hpp"
#include "evoopt/train/trainer.hpp"
#include "test_support.hpp"

using namespace evoopt;

namespace {
// MNIST with a 2,000-image training subset: fast, and the real data.
const task::Task& small_mnist() {
  static const task::Task t = [] {
    task::TaskOptions o;
    o.data_dir = test::data_dir();
    o.split.train_subset = 2000;
    o.split.val_size = 1000;
    return task::load_task("mnist", o);
  }();
  return t;
}

train::Budget budget(std::int64_t steps) {
  train::Budget b;
  b.steps = steps;
  b.log_every = 1;
  return b;
}

void expect_identical(const train::RunResult& a, const train::RunResult& b) {
  EXPECT_EQ(a.accuracy, b.accuracy);
  EXPECT_EQ(a.final_loss, b.final_loss);
  ASSERT_EQ(a.loss_curve.size(), b.loss_curve.size());
  for (std::size_t i = 0; i < a.loss_curve.size(); ++i) EXPECT_EQ(a.loss_curve[i].loss, b.loss_curve[i].loss) << "step " << i + 1;
}
}  // namespace

TEST(Trainer, SameGenomeTaskAndSeedGiveIdenticalResults) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto g = genome::preset("adam");
  auto a = train::train_and_evaluate(g, small_mnist(), 5, budget(40));
  auto b = train::train_and_evaluate(g, small_mnist(), 5, budget(40));
  expect_identical(a, b);
  EXPECT_FALSE(a.diverged);
  EXPECT_EQ(a.steps_done, 40);
  EXPECT_GT(a.accuracy, 0.5);
  // A different seed gives a different run.
  auto c = train::train_and_evaluate(g, small_mnist(), 6, budget(40));
  EXPECT_NE(a.loss_curve[0].loss, c.loss_curve[0].loss);
}

TEST(Trainer, ParallelRunsMatchSerialRuns) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto g = genome::preset("adam");
  const auto& t = small_mnist();
  auto serial1 = train::train_and_evaluate(g, t, 1, budget(30));
  auto serial2 = train::train_and_evaluate(genome::preset("sgd"), t, 2, budget(30));
  train::RunResult par1, par2;
  std::thread th1([&] { par1 = train::train_and_evaluate(g, t, 1, budget(30)); });
  std::thread th2([&] { par2 = train::train_and_evaluate(genome::preset("sgd"), t, 2, budget(30)); });
  th1.join();
  th2.join();
  expect_identical(serial1, par1);
  expect_identical(serial2, par2);
}

TEST(Trainer, GenomesWithTheSameSeedStartFromIdenticalWeightsAndBatches) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const auto& t = small_mnist();
  auto m1 = task::make_model(t.model, t.input(), 99), m2 = task::make_model(t.model, t.input(), 99);
  auto m3 = task::make_model(t.model, t.input(), 100);
  for (std::size_t i = 0; i < m1->parameters().size(); ++i) EXPECT_TRUE(torch::equal(m1->parameters()[i], m2->parameters()[i]));
  EXPECT_FALSE(torch::equal(m1->parameters()[0], m3->parameters()[0]));
  // The loss of step 1 is computed before any update: equal for any two genomes.
  auto a = train::train_and_evaluate(genome::preset("adam"), t, 3, budget(5));
  auto b = train::train_and_evaluate(genome::preset("rmsprop"), t, 3, budget(5));
  EXPECT_EQ(a.loss_curve[0].loss, b.loss_curve[0].loss);
  EXPECT_NE(a.loss_curve[4].loss, b.loss_curve[4].loss);
}

TEST(Trainer, LearningRateTenDivergesEarlyAndScoresMinusOne) {
  EVOOPT_REQUIRE_DATASET("mnist");
  genome::Genome g = genome::preset("sgd");
  g.terms = {{genome::Term::Grad, 1.0}};
  g.log10_lr = 1.0;  // lr 10
  auto r = train::train_and_evaluate(g, small_mnist(), 0, budget(200));
  EXPECT_TRUE(r.diverged);
  EXPECT_LT(r.steps_done, 200);
  EXPECT_EQ(r.fitness(), -1.0);
  EXPECT_FALSE(r.divergence_reason.empty());
}

// Reading the loss from the device every k steps (what a GPU run does) reports the same
// run as reading it every step: same losses, curve, divergence step and reason.
TEST(Trainer, HostReadsEveryKStepsGiveTheSameRunAsEveryStep) {
  EVOOPT_REQUIRE_DATASET("mnist");
  auto every = [](std::int64_t sync, std::int64_t log_every, std::int64_t steps) {
    train::Budget b = budget(steps);
    b.log_every = log_every;
    b.sync_every = sync;
    return b;
  };
  const auto g = genome::preset("adam");
  const auto base = train::train_and_evaluate(g, small_mnist(), 4, every(1, 5, 33));
  for (std::int64_t sync : {7, 10, 100}) {
    const auto r = train::train_and_evaluate(g, small_mnist(), 4, every(sync, 5, 33));
    expect_identical(base, r);
    EXPECT_EQ(r.smoothed_loss, base.smoothed_loss);
    EXPECT_EQ(r.steps_done, 33);
  }
  // A diverging run (SGD, lr 10) stops at the same step with the same reason.
  genome::Genome sgd = genome::preset("sgd");
  sgd.terms = {{genome::Term::Grad, 1.0}};
  sgd.log10_lr = 1.0;
  const auto d1 = train::train_and_evaluate(sgd, small_mnist(), 0, every(1, 3, 200));
  ASSERT_TRUE(d1.diverged);
  for (std::int64_t sync : {4, 50}) {
    const auto dk = train::train_and_evaluate(sgd, small_mnist(), 0, every(sync, 3, 200));
    EXPECT_TRUE(dk.diverged);
    EXPECT_EQ(dk.steps_done, d1.steps_done) << "sync every " << sync;
    EXPECT_EQ(dk.divergence_reason, d1.divergence_reason);
    EXPECT_EQ(std::isnan(dk.final_loss), std::isnan(d1.final_loss));
    if (!std::isnan(d1.final_loss)) EXPECT_EQ(dk.final_loss, d1.final_loss);
    ASSERT_EQ(dk.loss_curve.size(), d1.loss_curve.size());
  }
}

// On a GPU: the run trains (well above chance), is reproducible, and lands within a
// loose tolerance of the CPU run (float rounding differs between devices).
TEST(Trainer, CudaRunTrainsAndIsReproducible) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  EVOOPT_REQUIRE_DATASET("mnist");
  train::Budget b = budget(60);
  b.log_every = 10;
  b.device = "cuda";
  for (const char* preset : {"adam", "lion"}) {
    genome::Genome g = genome::preset(preset);
    g.clip_norm = 1.0;
    const auto a = train::train_and_evaluate(g, small_mnist(), 2, b);
    const auto again = train::train_and_evaluate(g, small_mnist(), 2, b);
    expect_identical(a, again);
    EXPECT_GT(a.accuracy, 0.6) << preset;
    train::Budget cpu = b;
    cpu.device = "cpu";
    const auto c = train::train_and_evaluate(g, small_mnist(), 2, cpu);
    EXPECT_NEAR(a.loss_curve.front().loss, c.loss_curve.front().loss, 1e-3) << preset;
    EXPECT_NEAR(a.accuracy, c.accuracy, 0.05) << preset;
  }
}

TEST(Trainer, ChannelsLastRunMatchesTheStraightforwardLayout) {
  EVOOPT_REQUIRE_DATASET("mnist");
  auto plain = budget(60);
  plain.memory_format = at::MemoryFormat::Contiguous;
  const auto a = train::train_and_evaluate(genome::preset("adam"), small_mnist(), 4, budget(60));
  const auto b = train::train_and_evaluate(genome::preset("adam"), small_mnist(), 4, plain);
  ASSERT_EQ(a.loss_curve.size(), b.loss_curve.size());
  for (std::size_t i = 0; i < a.loss_curve.size(); ++i)
    EXPECT_NEAR(a.loss_curve[i].loss, b.loss_curve[i].loss, 1e-3 * std::abs(b.loss_curve[i].loss)) << "step " << i + 1;
  EXPECT_NEAR(a.accuracy, b.accuracy, 0.005);
}

TEST(TrainCli, WritesJsonAndRejectsBadInput) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  const std::string common = " --data-dir " + test::data_dir().string() + " --train-subset 1000 --val-size 500";
  auto r = test::run_cli("train --genome adam --task mnist --steps 20 --seed 3 --out " + (tmp / "r.json").string() + common);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("val accuracy:"), std::string::npos);
  EXPECT_NE(r.out.find("steps/s"), std::string::npos);
  auto j = nlohmann::json::parse(read_text_file(tmp / "r.json"));
  EXPECT_EQ(j["steps_done"], 20);
  EXPECT_EQ(j["split"], "val");
  EXPECT_EQ(j["seed"], 3);
  EXPECT_EQ(j["genome"]["terms"][0]["term"], "ADAM_TERM");
  auto bad_task = test::run_cli("train --task imagenet" + common);
  EXPECT_EQ(bad_task.exit_code, 1);
  EXPECT_NE(bad_task.err.find("unknown task 'imagenet'"), std::string::npos) << bad_task.err;
  auto bad_split = test::run_cli("train --split train" + common);
  EXPECT_EQ(bad_split.exit_code, 1);
  EXPECT_NE(bad_split.err.find("--split must be val or test"), std::string::npos);
  auto bad_model = test::run_cli("train --model huge" + common);
  EXPECT_NE(bad_model.err.find("unknown model preset 'huge'"), std::string::npos);
  EXPECT_EQ(test::count_lines(bad_model.err), 1);
  if (!torch::cuda::is_available()) {
    auto no_cuda = test::run_cli("train --device cuda --steps 5" + common);
    EXPECT_EQ(no_cuda.exit_code, 1);
    EXPECT_NE(no_cuda.err.find("device cuda: no CUDA device is available"), std::string::npos) << no_cuda.err;
    EXPECT_EQ(test::count_lines(no_cuda.err), 1);
  }
  auto bad_device = test::run_cli("train --device tpu --steps 5" + common);
  EXPECT_NE(bad_device.err.find("unknown device 'tpu'"), std::string::npos) << bad_device.err;
}

// Racing's continuation (issue 10): a run stopped after k of its N steps with its state saved,
// then continued from that state (possibly stopping and saving again), gives the
// uninterrupted run's result bit for bit: model, optimizer buffers (m, v, Lion's c, NAdam's
// μ product), batch order, augmentation draws, dropout masks, loss curve and smoothed loss.
TEST(Trainer, ContinuedRunEqualsTheUninterruptedRun) {
  EVOOPT_REQUIRE_DATASET("mnist");
  EVOOPT_REQUIRE_DATASET("cifar10");
  EVOOPT_REQUIRE_DATASET("jargon");
  test::TempDir dir;
  genome::Genome g = genome::preset("adam");
  g.terms = {{genome::Term::AdamTerm, 0.7}, {genome::Term::Lion, 0.2}, {genome::Term::Nesterov, 0.1}};
  g.warmup_fraction = 0.1;
  g.cosine_decay = true;
  g.validate(genome::Bounds::kHardMaxTerms);
  task::TaskOptions o;
  o.data_dir = test::data_dir();
  o.split.train_subset = 1000;
  o.split.val_size = 300;
  o.batch_size = 32;
  const std::vector<task::Task> tasks = {small_mnist(), task::load_task("mnist:paper", o), task::load_task("cifar10", o),
                                         task::load_task("jargon", o)};
  for (const auto& t : tasks) {
    SCOPED_TRACE(t.name + " (" + task::model_preset_name(t.model) + ")");
    train::Budget b = budget(20);
    b.log_every = 5;
    const auto whole = train::train_and_evaluate(g, t, 3, b);
    ASSERT_FALSE(whole.diverged);
    // Stops at 7 (between logged steps) and 15, each continuing the last.
    const std::string s12 = (dir.path() / (t.name + "-7.pt")).string(), s20 = (dir.path() / (t.name + "-15.pt")).string();
    train::Budget b12 = b;
    b12.stop_at = 7;
    b12.save_state = s12;
    const auto r12 = train::train_and_evaluate(g, t, 3, b12);
    EXPECT_EQ(r12.steps_done, 7);
    EXPECT_EQ(r12.steps_planned, 7);
    EXPECT_EQ(r12.resumed_at, 0);
    ASSERT_TRUE(std::filesystem::exists(s12));
    train::Budget b20 = b;
    b20.stop_at = 15;
    b20.resume_state = s12;
    b20.save_state = s20;
    const auto r20 = train::train_and_evaluate(g, t, 3, b20);
    EXPECT_EQ(r20.resumed_at, 7);
    // The stop's score equals a run stopped there without a resume.
    train::Budget b20_fresh = b;
    b20_fresh.stop_at = 15;
    const auto r20_fresh = train::train_and_evaluate(g, t, 3, b20_fresh);
    expect_identical(r20, r20_fresh);
    train::Budget rest = b;
    rest.resume_state = s20;
    const auto continued = train::train_and_evaluate(g, t, 3, rest);
    EXPECT_EQ(continued.resumed_at, 15);
    EXPECT_EQ(continued.steps_done, 20);
    expect_identical(whole, continued);
    EXPECT_EQ(continued.smoothed_loss, whole.smoothed_loss);
    EXPECT_EQ(continued.eval_loss, whole.eval_loss);
    if (&t != &tasks.front()) continue;
    // A state of another run (another seed) or a missing file: trained from step 0, same result.
    const auto other_seed = train::train_and_evaluate(g, t, 4, rest);
    EXPECT_EQ(other_seed.resumed_at, 0);
    EXPECT_EQ(other_seed.accuracy, train::train_and_evaluate(g, t, 4, b).accuracy);
    rest.resume_state = (dir.path() / "missing.pt").string();
    EXPECT_EQ(train::train_and_evaluate(g, t, 3, rest).resumed_at, 0);
  }
  // A stop at or past the end, or a save without a stop, is refused.
  train::Budget bad = budget(10);
  bad.stop_at = 10;
  EXPECT_THROW(bad.validate(), Error);
  bad.stop_at = 0;
  bad.save_state = "x.pt";
  EXPECT_THROW(bad.validate(), Error);
}

// The hand-made baselines continue exactly too (issue 27): AdEMAMix, Schedule-Free AdamW (its
// z and x, and its evaluation at x with batch-norm statistics recomputed after the stop) and
// Muon (its momentum and its AdamW part) on a model with batch norm and on the transformer.
TEST(Trainer, HandMadeAlgorithmsContinueExactly) {
  EVOOPT_REQUIRE_DATASET("mnist");
  EVOOPT_REQUIRE_DATASET("jargon");
  test::TempDir dir;
  task::TaskOptions o;
  o.data_dir = test::data_dir();
  o.split.train_subset = 1000;
  o.split.val_size = 300;
  o.batch_size = 16;
  const std::vector<task::Task> tasks = {task::load_task("mnist:paper", o), task::load_task("jargon:transformer", o)};
  genome::Genome ademamix = genome::preset("ademamix"), muon = genome::preset("muon");
  ademamix.warmup_fraction = muon.warmup_fraction = 0.1;
  ademamix.cosine_decay = muon.cosine_decay = true;
  muon.clip_norm = 1.0;
  for (const auto& t : tasks)
    for (const auto& g : {ademamix, genome::preset("schedule_free_adamw"), muon}) {
      SCOPED_TRACE(t.name + " " + genome::algorithm_name(g.algorithm));
      train::Budget b = budget(12);
      b.log_every = 4;
      b.eval_limit = 100;
      const auto whole = train::train_and_evaluate(g, t, 5, b);
      ASSERT_FALSE(whole.diverged) << whole.divergence_reason;
      train::Budget first = b;
      first.stop_at = 5;
      first.save_state = (dir.path() / (t.name + genome::algorithm_name(g.algorithm) + ".pt")).string();
      train::train_and_evaluate(g, t, 5, first);
      train::Budget rest = b;
      rest.resume_state = first.save_state;
      const auto continued = train::train_and_evaluate(g, t, 5, rest);
      EXPECT_EQ(continued.resumed_at, 5);
      expect_identical(whole, continued);
      EXPECT_EQ(continued.eval_loss, whole.eval_loss);
      EXPECT_EQ(whole.parameter_split.empty(), g.algorithm != genome::Algorithm::Muon);
    }
}

// Time to target reads a validation curve (issue 27): scoring the split every k steps changes
// nothing of the run — not Adam's, not Schedule-Free's (evaluated at x with batch-norm
// statistics recomputed, then put back at y bit for bit), not the policy's — and the curve ends
// with the run's own score.
TEST(Trainer, AValidationCurveLeavesTheRunAsItWas) {
  EVOOPT_REQUIRE_DATASET("mnist");
  task::TaskOptions o;
  o.data_dir = test::data_dir();
  o.split.train_subset = 1000;
  o.split.val_size = 300;
  o.batch_size = 16;
  const std::vector<std::pair<task::Task, genome::Genome>> cases = {{small_mnist(), genome::preset("adam")},
                                                                    {task::load_task("mnist:paper", o), genome::preset("schedule_free_adamw")},
                                                                    {task::load_task("cartpole", o), genome::preset("adam")}};
  for (const auto& [t, g] : cases) {
    SCOPED_TRACE(t.name);
    train::Budget b = budget(12);
    b.log_every = 4;
    const auto plain = train::train_and_evaluate(g, t, 9, b);
    b.curve_every = 5;
    const auto curved = train::train_and_evaluate(g, t, 9, b);
    expect_identical(plain, curved);
    ASSERT_EQ(curved.val_curve.size(), 3u);  // steps 5, 10 and the last, 12
    EXPECT_EQ(curved.val_curve[0].first, 5);
    EXPECT_EQ(curved.val_curve[2].first, 12);
    EXPECT_EQ(curved.val_curve[2].second, curved.accuracy);
    EXPECT_TRUE(plain.val_curve.empty());
    // Through the JSON a worker sends back.
    EXPECT_EQ(train::run_result_from_json(train::to_json(curved)).val_curve, curved.val_curve);
  }
}
