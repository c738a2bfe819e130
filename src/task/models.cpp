#include "evoopt/task/models.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/rng.hpp"
#include "evoopt/task/cartpole.hpp"

namespace evoopt::task {
namespace nn = torch::nn;

ModelPreset model_preset_from_name(const std::string& name) {
  for (ModelPreset p : {ModelPreset::Tiny, ModelPreset::Paper, ModelPreset::Mlp, ModelPreset::Lstm, ModelPreset::Transformer})
    if (name == model_preset_name(p)) return p;
  throw Error("unknown model preset '" + name + "' (allowed: tiny, paper, mlp, lstm, transformer)");
}

const char* model_preset_name(ModelPreset p) {
  switch (p) {
    case ModelPreset::Tiny:
      return "tiny";
    case ModelPreset::Paper:
      return "paper";
    case ModelPreset::Mlp:
      return "mlp";
    case ModelPreset::Lstm:
      return "lstm";
    case ModelPreset::Transformer:
      return "transformer";
    case ModelPreset::TorchScript:
      return "torchscript";
    case ModelPreset::Policy:
      return "policy";
  }
  return "?";
}

bool is_image_model(ModelPreset p) { return p == ModelPreset::Tiny || p == ModelPreset::Paper || p == ModelPreset::Mlp; }

std::vector<std::pair<std::string, torch::Tensor>> named_parameters(Model& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& [name, t] : model.named_state())
    if (name.rfind("param/", 0) == 0) out.emplace_back(name.substr(6), t);
  return out;
}

SeededDropoutImpl::SeededDropoutImpl(double p, std::uint64_t seed) : p_(p), seed_(seed) {}

namespace {
// A 32-bit integer hash (Wellons' "lowbias32"): two rounds of xor-shift and multiply.
inline std::uint32_t mix32(std::uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}
}  // namespace

torch::Tensor dropout_mask(const torch::Tensor& like, double keep, std::uint64_t key) {
  if (like.numel() >= (std::int64_t{1} << 32)) throw Error("dropout: a tensor of 2^32 or more elements");
  const auto format = like.dim() == 4 && like.is_contiguous(at::MemoryFormat::ChannelsLast) && !like.is_contiguous() ? at::MemoryFormat::ChannelsLast
                                                                                                                     : at::MemoryFormat::Contiguous;
  torch::Tensor mask = torch::empty(like.sizes(), torch::TensorOptions().dtype(torch::kFloat32)).contiguous(format);
  float* out = mask.data_ptr<float>();
  const float kept = static_cast<float>(1.0 / keep);
  // Keep element j when mix32(mix32(j ^ key_lo) ^ key_hi) < keep·2^32 (32-bit lanes: the
  // compiler vectorises the loops).
  const auto lo = static_cast<std::uint32_t>(key), hi = static_cast<std::uint32_t>(key >> 32);
  const auto threshold = static_cast<std::uint32_t>(std::min(std::ceil(keep * 0x1.0p32), 4294967295.0));
  const auto draw = [=](std::uint32_t j) { return mix32(mix32(j ^ lo) ^ hi) < threshold ? kept : 0.0f; };
  if (format == at::MemoryFormat::ChannelsLast) {
    // Memory order (n, h, w, c); the counter is the logical (n, c, h, w) index.
    const auto N = static_cast<std::uint32_t>(like.size(0)), C = static_cast<std::uint32_t>(like.size(1)),
               H = static_cast<std::uint32_t>(like.size(2)), W = static_cast<std::uint32_t>(like.size(3));
    at::parallel_for(0, N, 1, [&](std::int64_t n0, std::int64_t n1) {
      for (auto n = static_cast<std::uint32_t>(n0); n < static_cast<std::uint32_t>(n1); ++n)
        for (std::uint32_t h = 0; h < H; ++h)
          for (std::uint32_t w = 0; w < W; ++w) {
            float* o = out + ((static_cast<std::int64_t>(n) * H + h) * W + w) * C;
            const std::uint32_t base = (n * C * H + h) * W + w, stride = H * W;
            for (std::uint32_t c = 0; c < C; ++c) o[c] = draw(base + c * stride);
          }
    });
  } else {
    at::parallel_for(0, mask.numel(), 1 << 15, [&](std::int64_t j0, std::int64_t j1) {
      for (auto j = static_cast<std::uint32_t>(j0); j < static_cast<std::uint32_t>(j1); ++j) out[j] = draw(j);
    });
  }
  return mask;
}

torch::Tensor SeededDropoutImpl::forward(const torch::Tensor& x) {
  if (!is_training() || p_ == 0.0) return x;
  // Drawn on the CPU (the same mask on every device), then moved.
  const torch::Tensor mask = dropout_mask(x, 1.0 - p_, derive_seed(seed_, "dropout/mask", calls_++));
  return x * (x.device().is_cpu() ? mask : mask.to(x.device()));
}

namespace {

// In place: the values and gradients are the same, without a new activation tensor per
// layer and step (ReLU was 10-12% of a `paper` step in libtorch's profiler).
nn::ReLU relu() { return nn::ReLU(nn::ReLUOptions().inplace(true)); }

nn::Conv2d conv(std::int64_t in, std::int64_t out) { return nn::Conv2d(nn::Conv2dOptions(in, out, 3).padding(1)); }

void init_uniform(torch::Tensor& t, double bound, at::Generator& gen) { t.uniform_(-bound, bound, gen); }

void initialise(nn::Sequential& model, std::uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  for (auto& module : model->modules(/*include_self=*/false)) {
    if (auto* c = module->as<nn::Conv2d>()) {
      const double fan_in = static_cast<double>(c->weight.size(1) * c->weight.size(2) * c->weight.size(3));
      init_uniform(c->weight, 1.0 / std::sqrt(fan_in), gen);
      if (c->bias.defined()) init_uniform(c->bias, 1.0 / std::sqrt(fan_in), gen);
    } else if (auto* l = module->as<nn::Linear>()) {
      const double fan_in = static_cast<double>(l->weight.size(1));
      init_uniform(l->weight, 1.0 / std::sqrt(fan_in), gen);
      if (l->bias.defined()) init_uniform(l->bias, 1.0 / std::sqrt(fan_in), gen);
    }
  }
}

}  // namespace

// Every "conv, ReLU, max-pool" block is built as conv, max-pool, ReLU: the same function
// (ReLU is monotonic, so max(relu(x)) = relu(max(x)) exactly) and the same gradients (a
// window's maximum is the same element either way, and a window whose maximum is <= 0
// passes no gradient either way), with ReLU's forward and backward on a quarter of the
// elements. Tested bit-equal against the conventional order (Models.PoolBeforeRelu...).
nn::Sequential make_model(ModelPreset preset, const InputShape& in, std::uint64_t seed, at::MemoryFormat format) {
  if (!is_image_model(preset)) throw Error(std::string("make_model: ") + model_preset_name(preset) + " is not an image model");
  nn::Sequential m;
  const auto h4 = in.height / 4, w4 = in.width / 4;
  const std::uint64_t dseed = derive_seed(seed, "dropout");
  if (preset == ModelPreset::Mlp) {
    m->push_back(nn::Flatten());
    m->push_back(nn::Linear(in.channels * in.height * in.width, 256));
    m->push_back(relu());
    m->push_back(nn::Linear(256, 128));
    m->push_back(relu());
    m->push_back(nn::Linear(128, in.classes));
  } else if (preset == ModelPreset::Tiny) {
    // Sized for about a second per 200-step run on one core (28x28: 8/16 channels; 32x32 RGB: 16/32).
    const std::int64_t c1 = in.channels == 1 ? 8 : 16, c2 = 2 * c1;
    m->push_back(conv(in.channels, c1));
    m->push_back(nn::MaxPool2d(2));
    m->push_back(relu());
    m->push_back(conv(c1, c2));
    m->push_back(nn::MaxPool2d(2));
    m->push_back(relu());
    m->push_back(nn::Flatten());
    m->push_back(nn::Linear(c2 * h4 * w4, in.classes));
  } else if (in.channels == 1) {
    m->push_back(conv(in.channels, 32));
    m->push_back(nn::MaxPool2d(2));
    m->push_back(relu());
    m->push_back(conv(32, 64));
    m->push_back(nn::MaxPool2d(2));
    m->push_back(relu());
    m->push_back(nn::Flatten());
    m->push_back(nn::Linear(64 * h4 * w4, 256));
    m->push_back(relu());
    m->push_back(SeededDropout(0.3, derive_seed(dseed, "d", 0)));
    m->push_back(nn::Linear(256, in.classes));
  } else {
    m->push_back(conv(in.channels, 32));
    m->push_back(nn::BatchNorm2d(32));
    m->push_back(relu());
    m->push_back(conv(32, 32));
    m->push_back(nn::MaxPool2d(2));
    m->push_back(relu());
    m->push_back(SeededDropout(0.25, derive_seed(dseed, "d", 0)));
    m->push_back(conv(32, 64));
    m->push_back(nn::BatchNorm2d(64));
    m->push_back(relu());
    m->push_back(conv(64, 64));
    m->push_back(nn::MaxPool2d(2));
    m->push_back(relu());
    m->push_back(SeededDropout(0.25, derive_seed(dseed, "d", 1)));
    m->push_back(nn::Flatten());
    m->push_back(nn::Linear(64 * h4 * w4, 512));
    m->push_back(relu());
    m->push_back(SeededDropout(0.5, derive_seed(dseed, "d", 2)));
    m->push_back(nn::Linear(512, in.classes));
  }
  initialise(m, seed);
  if (format != at::MemoryFormat::Contiguous) {
    torch::NoGradGuard no_grad;
    for (auto& p : m->parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(format));
  }
  return m;
}

namespace {
constexpr std::int64_t kLstmEmbedding = 64, kLstmHidden = 128;

// Byte embedding → one LSTM layer → linear next-byte logits, batch-first.
class CharLstmImpl : public nn::Module {
 public:
  CharLstmImpl(std::int64_t vocab, std::uint64_t seed)
      : embed_(register_module("embed", nn::Embedding(vocab, kLstmEmbedding))),
        lstm_(register_module("lstm", nn::LSTM(nn::LSTMOptions(kLstmEmbedding, kLstmHidden).batch_first(true)))),
        out_(register_module("out", nn::Linear(kLstmHidden, vocab))) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    torch::NoGradGuard no_grad;
    embed_->weight.normal_(0.0, 1.0, gen);
    const double bound = 1.0 / std::sqrt(static_cast<double>(kLstmHidden));
    for (auto& p : lstm_->parameters()) init_uniform(p, bound, gen);
    init_uniform(out_->weight, bound, gen);
    init_uniform(out_->bias, bound, gen);
  }
  torch::Tensor forward(const torch::Tensor& x) { return out_->forward(std::get<0>(lstm_->forward(embed_->forward(x)))); }

 private:
  nn::Embedding embed_;
  nn::LSTM lstm_;
  nn::Linear out_;
};
TORCH_MODULE(CharLstm);

// The byte transformer's sizes besides its context (kTransformerContext): blocks, width,
// heads (of kTfWidth / kTfHeads = 32 dimensions each) and the MLP's hidden width (4 × width,
// as in Vaswani et al. 2017 and GPT-2).
constexpr std::int64_t kTfLayers = 2, kTfWidth = 128, kTfHeads = 4, kTfHidden = 4 * kTfWidth;

// PyTorch's default for a linear layer: weight and bias U(−1/√fan_in, 1/√fan_in).
void init_linear(nn::Linear& l, at::Generator& gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(l->weight.size(1)));
  init_uniform(l->weight, bound, gen);
  init_uniform(l->bias, bound, gen);
}

// LayerNorm starts as the identity map up to normalisation: γ = 1, β = 0 (PyTorch's default).
void init_layer_norm(nn::LayerNorm& n) {
  n->weight.fill_(1.0);
  n->bias.fill_(0.0);
}

// Causal multi-head self-attention written out (Vaswani et al. 2017, "Attention Is All You
// Need", §3.2): per head h, softmax(Q_h K_hᵀ / √d_head + M) V_h with M = −∞ above the
// diagonal (position t sees positions ≤ t only), heads concatenated, then the output
// projection. Plain matmul/softmax rather than a fused attention kernel, so the same
// arithmetic runs in every libtorch build; no dropout.
class CausalSelfAttentionImpl : public nn::Module {
 public:
  CausalSelfAttentionImpl()
      : query_(register_module("query", nn::Linear(kTfWidth, kTfWidth))),
        key_(register_module("key", nn::Linear(kTfWidth, kTfWidth))),
        value_(register_module("value", nn::Linear(kTfWidth, kTfWidth))),
        out_(register_module("out", nn::Linear(kTfWidth, kTfWidth))) {}
  void initialise(at::Generator& gen) {
    for (nn::Linear* l : {&query_, &key_, &value_, &out_}) init_linear(*l, gen);
  }
  // (B, T, width) → (B, T, width).
  torch::Tensor forward(const torch::Tensor& x) {
    const std::int64_t B = x.size(0), T = x.size(1), D = kTfWidth / kTfHeads;
    // (B, T, width) → (B, heads, T, d_head).
    const auto heads = [&](const torch::Tensor& t) { return t.view({B, T, kTfHeads, D}).transpose(1, 2); };
    const torch::Tensor q = heads(query_->forward(x)), k = heads(key_->forward(x)), v = heads(value_->forward(x));
    const torch::Tensor future = torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(x.device())).triu(1);
    // (B, heads, T, T); row t: how much position t attends to each position s <= t. A masked
    // score is −∞, so its softmax weight is exactly 0 and later bytes cannot change row t.
    torch::Tensor scores = torch::matmul(q, k.transpose(-2, -1)).mul_(1.0 / std::sqrt(static_cast<double>(D)));
    scores.masked_fill_(future, -std::numeric_limits<float>::infinity());
    const torch::Tensor mixed = torch::matmul(torch::softmax(scores, -1), v);  // (B, heads, T, d_head)
    return out_->forward(mixed.transpose(1, 2).reshape({B, T, kTfWidth}));
  }

 private:
  nn::Linear query_, key_, value_, out_;
};
TORCH_MODULE(CausalSelfAttention);

// One pre-LayerNorm block (GPT-2, Radford et al. 2019, §2.3: LayerNorm moved to each
// sub-block's input): x + attention(LN(x)), then x + MLP(LN(x)) with MLP = 128→512, GELU
// (exact, erf form: PyTorch's default), 512→128.
class TransformerBlockImpl : public nn::Module {
 public:
  TransformerBlockImpl()
      : norm1_(register_module("norm1", nn::LayerNorm(nn::LayerNormOptions({kTfWidth})))),
        attention_(register_module("attention", CausalSelfAttention())),
        norm2_(register_module("norm2", nn::LayerNorm(nn::LayerNormOptions({kTfWidth})))),
        fc_(register_module("fc", nn::Linear(kTfWidth, kTfHidden))),
        proj_(register_module("proj", nn::Linear(kTfHidden, kTfWidth))) {}
  void initialise(at::Generator& gen) {
    init_layer_norm(norm1_);
    attention_->initialise(gen);
    init_layer_norm(norm2_);
    init_linear(fc_, gen);
    init_linear(proj_, gen);
  }
  torch::Tensor forward(torch::Tensor x) {
    x = x + attention_->forward(norm1_->forward(x));
    return x + proj_->forward(torch::gelu(fc_->forward(norm2_->forward(x))));
  }

 private:
  nn::LayerNorm norm1_;
  CausalSelfAttention attention_;
  nn::LayerNorm norm2_;
  nn::Linear fc_, proj_;
};
TORCH_MODULE(TransformerBlock);

// Decoder-only byte transformer: learned token and position embeddings (summed), kTfLayers
// pre-LN blocks, a final LayerNorm (GPT-2) and a linear head to next-byte logits. The
// parameters, and so named_state, come in registration order: token, position, block0,
// block1, norm, head.
class ByteTransformerImpl : public nn::Module {
 public:
  ByteTransformerImpl(std::int64_t vocab, std::uint64_t seed)
      : token_(register_module("token", nn::Embedding(vocab, kTfWidth))),
        position_(register_module("position", nn::Embedding(kTransformerContext, kTfWidth))) {
    for (std::int64_t i = 0; i < kTfLayers; ++i) blocks_.push_back(register_module("block" + std::to_string(i), TransformerBlock()));
    norm_ = register_module("norm", nn::LayerNorm(nn::LayerNormOptions({kTfWidth})));
    head_ = register_module("head", nn::Linear(kTfWidth, vocab));
    // Every draw from one generator, in the order above.
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    torch::NoGradGuard no_grad;
    token_->weight.normal_(0.0, 0.02, gen);
    position_->weight.normal_(0.0, 0.02, gen);
    for (auto& b : blocks_) b->initialise(gen);
    init_layer_norm(norm_);
    init_linear(head_, gen);
  }
  // int64 bytes (B, T ≤ kTransformerContext) → logits (B, T, vocab).
  torch::Tensor forward(const torch::Tensor& x) {
    if (x.dim() != 2) throw Error(fmt::format("the transformer reads byte sequences (B, T), got a tensor of {} dimensions", x.dim()));
    if (x.size(1) < 1 || x.size(1) > kTransformerContext)
      throw Error(fmt::format("the transformer reads 1 to {} bytes at once (its context), got sequences of {}", kTransformerContext, x.size(1)));
    const torch::Tensor positions = torch::arange(x.size(1), torch::TensorOptions().dtype(torch::kInt64).device(x.device()));
    torch::Tensor h = token_->forward(x) + position_->forward(positions);  // (B, T, width) + (T, width)
    for (auto& b : blocks_) h = b->forward(h);
    return head_->forward(norm_->forward(h));
  }

 private:
  nn::Embedding token_, position_;
  std::vector<TransformerBlock> blocks_;
  nn::LayerNorm norm_{nullptr};
  nn::Linear head_{nullptr};
};
TORCH_MODULE(ByteTransformer);

template <typename Holder>
class ModuleModel : public Model {
 public:
  explicit ModuleModel(Holder m) : m_(std::move(m)) {}
  torch::Tensor forward(const torch::Tensor& x) override { return m_->forward(x); }
  std::vector<torch::Tensor> parameters() override { return m_->parameters(); }
  void train(bool on) override { m_->train(on); }
  void to(const torch::Device& device) override { m_->to(device); }
  std::vector<std::pair<std::string, torch::Tensor>> named_state() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : m_->named_parameters()) out.emplace_back("param/" + p.key(), p.value());
    for (const auto& b : m_->named_buffers()) out.emplace_back("buffer/" + b.key(), b.value());
    return out;
  }
  std::vector<std::uint64_t> counters() override {
    std::vector<std::uint64_t> out;
    for (const auto* d : dropouts()) out.push_back(d->calls());
    return out;
  }
  bool recompute_batch_norm(const std::function<torch::Tensor()>& next_batch, int batches) override {
    std::vector<std::pair<nn::BatchNorm2dImpl*, c10::optional<double>>> layers;
    for (const auto& m : m_->modules(/*include_self=*/false))
      if (auto* bn = m->template as<nn::BatchNorm2dImpl>()) layers.emplace_back(bn, bn->options.momentum());
    if (layers.empty()) return false;
    for (auto& [bn, momentum] : layers) {
      bn->reset_running_stats();
      bn->options.momentum(c10::nullopt);
    }
    torch::NoGradGuard no_grad;
    const bool training = m_->is_training();
    m_->train(true);
    for (int i = 0; i < batches; ++i) m_->forward(next_batch());
    m_->train(training);
    for (auto& [bn, momentum] : layers) bn->options.momentum(momentum);
    return true;
  }
  void set_counters(const std::vector<std::uint64_t>& values) override {
    const auto dropouts = this->dropouts();
    if (dropouts.size() != values.size())
      throw Error(fmt::format("the model has {} random counters, the saved state {}", dropouts.size(), values.size()));
    for (std::size_t i = 0; i < values.size(); ++i) dropouts[i]->set_calls(values[i]);
  }

 private:
  // The model's dropout layers, in module order: their counters are part of a run's state.
  std::vector<SeededDropoutImpl*> dropouts() {
    std::vector<SeededDropoutImpl*> out;
    for (const auto& m : m_->modules(/*include_self=*/false))
      if (auto* d = m->template as<SeededDropoutImpl>()) out.push_back(d);
    return out;
  }
  Holder m_;
};
}  // namespace

void Model::set_counters(const std::vector<std::uint64_t>& values) {
  if (!values.empty()) throw Error(fmt::format("the model has no random counters, the saved state {}", values.size()));
}

std::unique_ptr<Model> build_model(ModelPreset preset, const InputShape& in, std::uint64_t seed, at::MemoryFormat format) {
  if (preset == ModelPreset::TorchScript) throw Error("build_model: a TorchScript model comes from its task (Task::instantiate_model)");
  if (preset == ModelPreset::Policy) return cartpole::make_policy(seed);
  if (preset == ModelPreset::Lstm) {
    if (in.channels != 0) throw Error("the lstm model reads byte sequences (a text dataset), not images");
    return std::make_unique<ModuleModel<CharLstm>>(CharLstm(in.classes, seed));
  }
  if (preset == ModelPreset::Transformer) {
    if (in.channels != 0) throw Error("the transformer model reads byte sequences (a text dataset), not images");
    return std::make_unique<ModuleModel<ByteTransformer>>(ByteTransformer(in.classes, seed));
  }
  if (in.channels < 1) throw Error(std::string("the ") + model_preset_name(preset) + " model reads images, not text");
  return std::make_unique<ModuleModel<nn::Sequential>>(make_model(preset, in, seed, format));
}

std::vector<std::string> muon_parameters(ModelPreset preset) {
  std::vector<std::string> out;
  if (preset != ModelPreset::Transformer) return out;
  for (int b = 0; b < kTfLayers; ++b)
    for (const char* m : {"attention.query", "attention.key", "attention.value", "attention.out", "fc", "proj"})
      out.push_back(fmt::format("block{}.{}.weight", b, m));
  return out;
}

double forward_flops(ModelPreset preset, const InputShape& in) {
  if (preset == ModelPreset::TorchScript) return 0;                            // unknown
  if (preset == ModelPreset::Policy) return cartpole::policy_forward_flops();  // per observation
  if (preset == ModelPreset::Lstm)
    return 2.0 * 4.0 * kLstmHidden * (kLstmEmbedding + kLstmHidden) + 2.0 * kLstmHidden * static_cast<double>(in.classes);
  if (preset == ModelPreset::Transformer) {
    // Per block and byte, in multiply-adds: the q, k, v and output projections 4·d², the
    // scores q·k and the weighted sum of v against all T = kTransformerContext positions
    // (the explicit attention computes the whole T × T matrix, masked entries included)
    // 2·T·d, the MLP 2·d·4d; then the head d·vocab. d = 128: 983,040 FLOPs per byte.
    const double d = kTfWidth, T = kTransformerContext;
    const double block = 4.0 * d * d + 2.0 * T * d + 2.0 * d * kTfHidden;
    return 2.0 * (kTfLayers * block + d * static_cast<double>(in.classes));
  }
  if (preset == ModelPreset::Mlp)
    return 2.0 * (static_cast<double>(in.channels * in.height * in.width) * 256 + 256.0 * 128 + 128.0 * static_cast<double>(in.classes));
  auto conv_flops = [](double cin, double cout, double h, double w) { return 2.0 * cin * cout * 9.0 * h * w; };
  const double H = static_cast<double>(in.height), W = static_cast<double>(in.width), C = static_cast<double>(in.channels);
  const double K = static_cast<double>(in.classes);
  if (preset == ModelPreset::Tiny) {
    const double c1 = in.channels == 1 ? 8 : 16, c2 = 2 * c1;
    return conv_flops(C, c1, H, W) + conv_flops(c1, c2, H / 2, W / 2) + 2.0 * c2 * (H / 4) * (W / 4) * K;
  }
  if (in.channels == 1) return conv_flops(C, 32, H, W) + conv_flops(32, 64, H / 2, W / 2) + 2.0 * 64 * (H / 4) * (W / 4) * 256 + 2.0 * 256 * K;
  return conv_flops(C, 32, H, W) + conv_flops(32, 32, H, W) + conv_flops(32, 64, H / 2, W / 2) + conv_flops(64, 64, H / 2, W / 2) +
         2.0 * 64 * (H / 4) * (W / 4) * 512 + 2.0 * 512 * K;
}

}  // namespace evoopt::task
