// Training engine without data (issue 4): devices, fitness aggregation, the models' shapes,
// layouts and dropout masks. Training runs on real MNIST (determinism, common random numbers,
// divergence, continuation) and the train CLI: tests/integration/trainer_integration_test.cpp.
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

TEST(Trainer, DevicesResolveOrSayWhyNot) {
  EXPECT_EQ(train::resolve_device("cpu"), "cpu");
  EXPECT_EQ(train::resolve_device("auto"), torch::cuda::is_available() ? "cuda" : "cpu");
  EXPECT_THROW(train::resolve_device("tpu"), Error);
  EXPECT_THROW(train::resolve_device("cuda:x"), Error);
  if (torch::cuda::is_available()) {
    EXPECT_EQ(train::resolve_device("cuda"), "cuda");
    EXPECT_THROW(train::resolve_device("cuda:" + std::to_string(torch::cuda::device_count())), Error);
  } else {
    try {
      train::resolve_device("cuda");
      ADD_FAILURE() << "cuda resolved on a machine without CUDA";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no CUDA device is available"), std::string::npos) << e.what();
    }
  }
}

TEST(Trainer, FitnessIsMeanOverTasksOfMeanOverSeeds) {
  auto run = [](const std::string& task, double acc, bool diverged) {
    train::RunResult r;
    r.task = task;
    r.accuracy = acc;
    r.diverged = diverged;
    return r;
  };
  auto f = train::aggregate_fitness({run("a", 0.8, false), run("a", 0.6, false), run("b", 0.9, false), run("b", 0.5, true)});
  EXPECT_DOUBLE_EQ(f.per_task["a"], 0.7);
  EXPECT_DOUBLE_EQ(f.per_task["b"], (0.9 - 1.0) / 2);
  EXPECT_DOUBLE_EQ(f.overall, (0.7 + (-0.05)) / 2);
}

TEST(Models, PresetsHaveTheDocumentedShapes) {
  auto count = [](torch::nn::Sequential& m) {
    std::int64_t n = 0;
    for (auto& p : m->parameters()) n += p.numel();
    return n;
  };
  auto grey = task::make_model(task::ModelPreset::Paper, {1, 28, 28, 10}, 0);
  // conv 1→32 (320) + conv 32→64 (18,496) + 3136→256 (803,072) + 256→10 (2,570)
  EXPECT_EQ(count(grey), 320 + 18496 + 803072 + 2570);
  EXPECT_EQ(grey->forward(torch::zeros({2, 1, 28, 28})).sizes(), (std::vector<std::int64_t>{2, 10}));
  auto rgb = task::make_model(task::ModelPreset::Paper, {3, 32, 32, 10}, 0);
  // convs 896 + 9,248 + 18,496 + 36,928, BN 64 + 128, 4096→512 (2,097,664), 512→10 (5,130)
  EXPECT_EQ(count(rgb), 896 + 9248 + 18496 + 36928 + 64 + 128 + 2097664 + 5130);
  EXPECT_EQ(rgb->forward(torch::zeros({2, 3, 32, 32})).sizes(), (std::vector<std::int64_t>{2, 10}));
  auto tiny = task::make_model(task::ModelPreset::Tiny, {1, 28, 28, 10}, 0);
  EXPECT_EQ(tiny->forward(torch::zeros({3, 1, 28, 28})).sizes(), (std::vector<std::int64_t>{3, 10}));
  EXPECT_GT(task::forward_flops(task::ModelPreset::Paper, {3, 32, 32, 10}), task::forward_flops(task::ModelPreset::Tiny, {3, 32, 32, 10}));
  EXPECT_THROW(task::model_preset_from_name("huge"), Error);
  // Seeded dropout: deterministic in its own seed, identity in eval mode.
  task::SeededDropout d1(0.5, 1), d2(0.5, 1);
  auto x = torch::ones({100});
  EXPECT_TRUE(torch::equal(d1->forward(x), d2->forward(x)));
  d1->eval();
  EXPECT_TRUE(torch::equal(d1->forward(x), x));
}

// Schedule-Free evaluates at x, so batch-norm statistics gathered at y are recomputed:
// recompute_batch_norm() zeroes them, makes the given batches their plain average and puts
// each layer's momentum back; a model without batch norm says so and is left alone.
TEST(Models, RecomputeBatchNormMakesTheStatisticsThoseOfTheGivenBatches) {
  torch::NoGradGuard no_grad;
  const auto a = torch::randn({4, 3, 32, 32}).contiguous(at::MemoryFormat::ChannelsLast), c = a * 3 + 1;
  const auto before = torch::randn({4, 3, 32, 32}).contiguous(at::MemoryFormat::ChannelsLast) * 5;
  // The first batch-norm layer's running mean after recomputing it from `batches` (after one
  // earlier training batch when `earlier`); `then`: one more training batch afterwards.
  const auto running_mean_after = [&](const std::vector<torch::Tensor>& batches, bool earlier, const torch::Tensor& then = {}) {
    auto m = task::build_model(task::ModelPreset::Paper, {3, 32, 32, 10}, 0);
    m->train(true);
    if (earlier) m->forward(before);
    std::size_t next = 0;
    EXPECT_TRUE(m->recompute_batch_norm([&] { return batches.at(next++); }, static_cast<int>(batches.size())));
    if (then.defined()) m->forward(then);
    for (const auto& [name, t] : m->named_state())
      if (name.find("running_mean") != std::string::npos) return t.clone();
    return torch::Tensor();
  };
  const auto both = running_mean_after({a, c}, /*earlier=*/true);
  // Nothing of the earlier batch is left, and the two batches count alike (a plain average).
  EXPECT_TRUE(torch::allclose(both, running_mean_after({a, c}, false)));
  EXPECT_TRUE(torch::allclose(both, (running_mean_after({a}, false) + running_mean_after({c}, false)) / 2, 1e-5, 1e-6));
  // The momentum is back: a later training batch moves the mean by 0.1 of the way (torch's default).
  const auto later = running_mean_after({a, c}, false, before);
  auto fresh = task::build_model(task::ModelPreset::Paper, {3, 32, 32, 10}, 0);
  fresh->train(true);
  std::size_t n = 0;
  const std::vector<torch::Tensor> only = {before};
  fresh->recompute_batch_norm([&] { return only.at(n++); }, 1);
  torch::Tensor batch_mean;
  for (const auto& [name, t] : fresh->named_state())
    if (!batch_mean.defined() && name.find("running_mean") != std::string::npos) batch_mean = t.clone();
  EXPECT_TRUE(torch::allclose(later, 0.9 * both + 0.1 * batch_mean, 1e-5, 1e-6));
  const std::function<torch::Tensor()> none = [] { return torch::zeros({1, 1, 28, 28}); };
  EXPECT_FALSE(task::build_model(task::ModelPreset::Tiny, {1, 28, 28, 10}, 0)->recompute_batch_norm(none, 1));
}

// The fast path (channels-last weights and batches) computes what the straightforward NCHW
// layout computes, up to float rounding: the same initial weights, one step's loss and
// gradients, and whole training runs (issue 10, "a faster step").
TEST(Models, ChannelsLastStepMatchesTheStraightforwardLayout) {
  for (auto preset : {task::ModelPreset::Tiny, task::ModelPreset::Paper})
    for (const task::InputShape in : {task::InputShape{1, 28, 28, 10}, task::InputShape{3, 32, 32, 10}}) {
      SCOPED_TRACE(std::string(task::model_preset_name(preset)) + " " + std::to_string(in.channels) + " channel(s)");
      auto fast = task::make_model(preset, in, 7), plain = task::make_model(preset, in, 7, at::MemoryFormat::Contiguous);
      auto pf = fast->parameters(), pp = plain->parameters();
      ASSERT_EQ(pf.size(), pp.size());
      for (std::size_t i = 0; i < pf.size(); ++i) {
        EXPECT_TRUE(torch::equal(pf[i], pp[i]));  // same values, other strides
        if (pf[i].dim() == 4 && in.channels > 1) EXPECT_TRUE(pf[i].is_contiguous(at::MemoryFormat::ChannelsLast));
        if (pp[i].dim() == 4) EXPECT_TRUE(pp[i].is_contiguous());
      }
      torch::manual_seed(3);
      auto x = torch::randn({16, in.channels, in.height, in.width});
      auto y = torch::randint(in.classes, {16});
      // Training mode: dropout's masks depend on the logical index, not the layout, so both
      // models drop the same elements.
      auto lf = torch::nn::functional::cross_entropy(fast->forward(x.contiguous(at::MemoryFormat::ChannelsLast)), y);
      auto lp = torch::nn::functional::cross_entropy(plain->forward(x), y);
      lf.backward();
      lp.backward();
      EXPECT_NEAR(lf.item<double>(), lp.item<double>(), 1e-5 * std::abs(lp.item<double>()));
      for (std::size_t i = 0; i < pf.size(); ++i)
        EXPECT_TRUE(torch::allclose(pf[i].grad(), pp[i].grad(), /*rtol=*/1e-4, /*atol=*/1e-6)) << "parameter " << i;
    }
}

// make_model builds "conv, ReLU, max-pool" blocks as conv, max-pool, ReLU: the same outputs
// and gradients, bit for bit, as the conventional order (issue 10, "a faster step").
TEST(Models, PoolBeforeReluIsTheConventionalBlockBitForBit) {
  for (auto preset : {task::ModelPreset::Tiny, task::ModelPreset::Paper})
    for (const task::InputShape in : {task::InputShape{1, 28, 28, 10}, task::InputShape{3, 32, 32, 10}}) {
      SCOPED_TRACE(std::string(task::model_preset_name(preset)) + " " + std::to_string(in.channels) + " channel(s)");
      auto built = task::make_model(preset, in, 7), conventional = task::make_model(preset, in, 7);
      std::vector<torch::nn::AnyModule> order(conventional->begin(), conventional->end());
      int swapped = 0;
      for (std::size_t i = 0; i + 1 < order.size(); ++i)
        if (order[i].ptr()->as<torch::nn::MaxPool2d>() && order[i + 1].ptr()->as<torch::nn::ReLU>()) {
          std::swap(order[i], order[i + 1]);
          ++swapped;
        }
      EXPECT_EQ(swapped, 2);
      torch::manual_seed(5);
      // Negative-heavy input: many pooling windows whose maximum is <= 0.
      auto x = (torch::randn({8, in.channels, in.height, in.width}) - 0.5).contiguous(at::MemoryFormat::ChannelsLast);
      auto y = torch::randint(in.classes, {8});
      auto out_built = built->forward(x);
      torch::Tensor out_conv = x;
      for (auto& m : order) out_conv = m.forward(out_conv);
      EXPECT_TRUE(torch::equal(out_built, out_conv));
      torch::nn::functional::cross_entropy(out_built, y).backward();
      torch::nn::functional::cross_entropy(out_conv, y).backward();
      auto pb = built->parameters(), pc = conventional->parameters();
      for (std::size_t i = 0; i < pb.size(); ++i) EXPECT_TRUE(torch::equal(pb[i].grad(), pc[i].grad())) << "parameter " << i;
    }
}

// Dropout masks are counter-based: the same for any memory layout and thread count, a new
// mask per call, 0 or 1/keep, kept with probability keep.
TEST(Models, DropoutMasksAreCounterBased) {
  task::SeededDropout a(0.25, 9), b(0.25, 9);
  const auto x = torch::ones({64, 16, 14, 14});
  const auto first = a->forward(x);
  EXPECT_TRUE(torch::equal(first, b->forward(x.contiguous(at::MemoryFormat::ChannelsLast))));
  EXPECT_FALSE(torch::equal(first, a->forward(x)));  // the second call draws a new mask
  const auto kept = first.gt(0);
  EXPECT_TRUE(torch::equal(first.masked_select(kept), torch::full({kept.sum().item<std::int64_t>()}, 1.0f / 0.75f)));
  EXPECT_NEAR(kept.to(torch::kFloat64).mean().item<double>(), 0.75, 0.01);  // 200,704 draws: sd 0.001
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = task::dropout_mask(x, 0.5, 123);
  at::set_num_threads(2);
  const auto two = task::dropout_mask(x.contiguous(at::MemoryFormat::ChannelsLast), 0.5, 123);
  at::set_num_threads(threads);
  EXPECT_TRUE(two.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::equal(one, two));
  EXPECT_FALSE(torch::equal(one, task::dropout_mask(x, 0.5, 124)));
}
