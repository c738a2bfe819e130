// The byte-level decoder-only transformer (ModelPreset::Transformer, task `jargon:transformer`):
// its shape and parameter order, causality, seeding, analytic FLOPs, and that it learns.
// Its task name and sequence length: tasks_test.cpp.
#include <cmath>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "evoopt/common/error.hpp"
#include "evoopt/task/models.hpp"

using namespace evoopt;

namespace {

const task::InputShape kBytes{0, 0, 0, 256};

std::unique_ptr<task::Model> transformer(std::uint64_t seed) { return task::build_model(task::ModelPreset::Transformer, kBytes, seed); }

// (B, T) random bytes from their own generator.
torch::Tensor random_bytes(std::int64_t b, std::int64_t t, std::uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(0, 256, {b, t}, gen, torch::TensorOptions().dtype(torch::kInt64));
}

}  // namespace

TEST(Transformer, HasTheDocumentedShapeAndParameterOrder) {
  auto m = transformer(0);
  std::int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  // token 256×128 (32,768) + position 128×128 (16,384) + 2 blocks × (two LayerNorms 2·256, q/k/v/out
  // 4·(128·128 + 128), MLP 128·512 + 512 + 512·128 + 128) + final LayerNorm 256 + head 128·256 + 256
  EXPECT_EQ(n, 32768 + 16384 + 2 * (512 + 4 * 16512 + 66048 + 65664) + 256 + 33024);
  EXPECT_EQ(m->forward(torch::zeros({3, 7}, torch::kInt64)).sizes(), (std::vector<std::int64_t>{3, 7, 256}));
  EXPECT_EQ(m->forward(torch::zeros({2, task::kTransformerContext}, torch::kInt64)).sizes(),
            (std::vector<std::int64_t>{2, task::kTransformerContext, 256}));
  EXPECT_THROW(m->forward(torch::zeros({1, task::kTransformerContext + 1}, torch::kInt64)), Error);  // beyond the context
  EXPECT_THROW(m->forward(torch::zeros({4}, torch::kInt64)), Error);
  // named_state: every parameter in registration order, no buffers, no random counters.
  const auto state = m->named_state();
  ASSERT_EQ(state.size(), 2u + 2u * 16u + 2u + 2u);
  EXPECT_EQ(state.front().first, "param/token.weight");
  EXPECT_EQ(state[1].first, "param/position.weight");
  EXPECT_EQ(state[2].first, "param/block0.norm1.weight");
  EXPECT_EQ(state[4].first, "param/block0.attention.query.weight");
  EXPECT_EQ(state[18].first, "param/block1.norm1.weight");
  EXPECT_EQ(state[34].first, "param/norm.weight");
  EXPECT_EQ(state.back().first, "param/head.bias");
  EXPECT_TRUE(m->counters().empty());
  EXPECT_FALSE(task::is_image_model(task::ModelPreset::Transformer));
  EXPECT_EQ(task::model_preset_from_name("transformer"), task::ModelPreset::Transformer);
  EXPECT_STREQ(task::model_preset_name(task::ModelPreset::Transformer), "transformer");
  EXPECT_THROW(task::build_model(task::ModelPreset::Transformer, {1, 28, 28, 10}, 0), Error);  // images
  EXPECT_THROW(task::make_model(task::ModelPreset::Transformer, {1, 28, 28, 10}, 0), Error);
}

TEST(Transformer, ForwardFlopsCountProjectionsAttentionMlpAndHead) {
  // Per block and byte, multiply-adds: 4·128² (q, k, v, out) + 2·128·128 (scores and weighted
  // sum over the full context of 128) + 2·128·512 (MLP); then 128·256 (head); × 2.
  const double block = 4.0 * 128 * 128 + 2.0 * 128 * 128 + 2.0 * 128 * 512;
  EXPECT_EQ(task::forward_flops(task::ModelPreset::Transformer, kBytes), 2.0 * (2 * block + 128.0 * 256));
  EXPECT_EQ(task::forward_flops(task::ModelPreset::Transformer, kBytes), 983040.0);
}

// Position t's logits depend on bytes 0..t only: changing every byte after t leaves them bit for
// bit the same (a masked score is −∞, its softmax weight exactly 0).
TEST(Transformer, IsCausalExactly) {
  auto m = transformer(5);
  m->train(false);
  torch::NoGradGuard no_grad;
  const torch::Tensor x = random_bytes(3, task::kTransformerContext, 1);
  const torch::Tensor base = m->forward(x);
  for (std::int64_t t : {0, 1, 40, 126}) {
    SCOPED_TRACE("t = " + std::to_string(t));
    torch::Tensor changed = x.clone();
    const std::int64_t rest = task::kTransformerContext - t - 1;
    // Each later byte moves by 1..255 (mod 256), so every one of them differs.
    changed.narrow(1, t + 1, rest).add_(random_bytes(3, rest, 2 + t).remainder(255).add(1)).remainder_(256);
    const torch::Tensor out = m->forward(changed);
    EXPECT_TRUE(torch::equal(out.narrow(1, 0, t + 1), base.narrow(1, 0, t + 1)));
    EXPECT_FALSE(torch::equal(out.narrow(1, t + 1, 1), base.narrow(1, t + 1, 1)));  // the change is seen after t
  }
  // A shorter sequence gives the same logits as the full one's prefix (up to float rounding:
  // other matrix shapes may sum in another order).
  const torch::Tensor prefix = m->forward(x.narrow(1, 0, 50));
  EXPECT_TRUE(torch::allclose(prefix, base.narrow(1, 0, 50), /*rtol=*/1e-5, /*atol=*/1e-5));
}

TEST(Transformer, InitialWeightsAreAFunctionOfTheSeed) {
  auto a = transformer(7), again = transformer(7), other = transformer(8);
  const auto sa = a->named_state(), sb = again->named_state(), so = other->named_state();
  ASSERT_EQ(sa.size(), so.size());
  for (std::size_t i = 0; i < sa.size(); ++i) {
    SCOPED_TRACE(sa[i].first);
    EXPECT_TRUE(torch::equal(sa[i].second, sb[i].second));
    const bool layer_norm = sa[i].first.find("norm") != std::string::npos;
    // LayerNorm starts at γ = 1, β = 0 whatever the seed; every other tensor is drawn.
    EXPECT_EQ(torch::equal(sa[i].second, so[i].second), layer_norm);
    if (layer_norm) EXPECT_EQ(sa[i].second.sum().item<double>(), sa[i].first.find("weight") != std::string::npos ? 128.0 : 0.0);
  }
  // Embeddings N(0, 0.02²) (GPT-2); linear layers U(±1/√fan_in) (PyTorch's default).
  EXPECT_NEAR(sa[0].second.std().item<double>(), 0.02, 0.001);
  EXPECT_LE(sa[4].second.abs().max().item<double>(), 1.0 / std::sqrt(128.0));
  EXPECT_GT(sa[4].second.abs().max().item<double>(), 0.95 / std::sqrt(128.0));
}

TEST(Transformer, AdamLearnsARepeatedBytePattern) {
  auto m = transformer(3);
  m->train(true);
  const std::string pattern = "evoopt!";
  std::vector<std::int64_t> stream;
  for (int i = 0; i < 80; ++i) stream.push_back(static_cast<unsigned char>(pattern[i % pattern.size()]));
  const torch::Tensor bytes = torch::tensor(stream);
  // Four windows of 33 bytes at different phases of the pattern: inputs and next bytes.
  std::vector<torch::Tensor> windows;
  for (std::int64_t start : {0, 2, 3, 5}) windows.push_back(bytes.narrow(0, start, 33));
  const torch::Tensor w = torch::stack(windows);
  const torch::Tensor x = w.narrow(1, 0, 32), y = w.narrow(1, 1, 32);
  torch::optim::Adam adam(m->parameters(), torch::optim::AdamOptions(3e-3));
  auto loss_now = [&] { return torch::nn::functional::cross_entropy(m->forward(x).reshape({-1, 256}), y.reshape({-1})); };
  const double first = loss_now().item<double>();
  EXPECT_NEAR(first, std::log(256.0), 0.5);  // about uniform at initialisation
  double last = first;
  for (int step = 0; step < 30; ++step) {
    adam.zero_grad();
    const torch::Tensor loss = loss_now();
    loss.backward();
    adam.step();
    last = loss.item<double>();
  }
  EXPECT_LT(last, 0.25 * first) << "first " << first << ", last " << last;
}
