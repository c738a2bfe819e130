#pragma once
// Model zoo. Every parameter is initialised from an explicit generator (not
// libtorch's global one), and dropout draws from its own generator, so parallel
// runs in one process stay deterministic and independent.
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace evoopt::task {

enum class ModelPreset {
  Tiny,         // CPU default: two small conv-relu-pool blocks and a linear classifier
  Paper,        // the architectures of the best-known public implementation of this idea
  Mlp,          // images: flatten, 256 and 128 ReLU units, linear classifier (a held-out architecture)
  Lstm,         // text: byte embedding (64), one LSTM layer (128), linear next-byte classifier
  Transformer,  // text: a decoder-only byte transformer, 2 pre-LN blocks of width 128, 4 heads, context 128 (a held-out architecture)
  TorchScript,  // a user task's own model file (user_task.hpp); never named in a task name
  Policy,       // cartpole's policy network (task/cartpole.hpp); never named in a task name
};
// "tiny" | "paper" | "mlp" | "lstm" | "transformer"; throws evoopt::Error naming the allowed ones.
ModelPreset model_preset_from_name(const std::string& name);
const char* model_preset_name(ModelPreset p);
bool is_image_model(ModelPreset p);  // tiny, paper, mlp (lstm and transformer read byte sequences; TorchScript: either)

// The transformer's context: the most bytes it reads at once (its position embeddings), and
// so the sequence length of its text tasks.
inline constexpr std::int64_t kTransformerContext = 128;

// Images: channels × height × width → classes. Text: channels = height = width = 0,
// classes = the vocabulary (256 bytes).
struct InputShape {
  std::int64_t channels, height, width, classes;
};

// What the trainer needs of a model: the parameters the optimizer updates, a forward
// pass, train/eval mode and a device.
class Model {
 public:
  virtual ~Model() = default;
  // Images: normalised float (B, C, H, W) → logits (B, classes). Text: int64 bytes (B, T)
  // → logits (B, T, 256).
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  virtual std::vector<torch::Tensor> parameters() = 0;
  virtual void train(bool on) = 0;
  virtual void to(const torch::Device& device) = 0;
  // What a run carries from one step to the next besides the optimizer, for continuing it
  // (racing): every parameter and buffer by name, in a fixed order, and the counters of
  // random draws made so far (SeededDropout's calls).
  virtual std::vector<std::pair<std::string, torch::Tensor>> named_state() = 0;
  virtual std::vector<std::uint64_t> counters() { return {}; }
  // Recomputes every batch-norm layer's running statistics for the weights the model holds now
  // (Schedule-Free's x): resets them, runs `batches` inputs from `next_batch` forward in
  // training mode without gradients, their plain average (momentum none) becoming the
  // statistics, then puts each layer's momentum back. False, and nothing changed, when the
  // model has no batch norm (or is a user's TorchScript model, whose layers are not reachable).
  virtual bool recompute_batch_norm(const std::function<torch::Tensor()>& next_batch, int batches) {
    (void)next_batch;
    (void)batches;
    return false;
  }
  virtual void set_counters(const std::vector<std::uint64_t>& values);  // throws evoopt::Error on a count mismatch
};

// A model's trainable parameters by name, in the model's order (named_state's "param/" entries,
// the prefix dropped): what an optimizer that treats parameters by name or position reads.
std::vector<std::pair<std::string, torch::Tensor>> named_parameters(Model& model);

// Dropout with counter-based masks: the k-th call in training mode keeps element j (its
// row-major index in the logical shape) when mix32(mix32(j ^ key_lo) ^ key_hi) < (1 − p)·2^32,
// key = derive_seed(seed, "dropout/mask", k), and scales kept elements by 1/(1 − p). A mask
// is a function of (seed, call, shape) alone: the same for any memory layout, thread count
// or device, and several times cheaper to draw than libtorch's CPU bernoulli_ (mt19937, two
// 32-bit draws per element, serial; 7% of a `paper` CIFAR-10 step).
class SeededDropoutImpl : public torch::nn::Module {
 public:
  SeededDropoutImpl(double p, std::uint64_t seed);
  torch::Tensor forward(const torch::Tensor& x);
  std::uint64_t calls() const { return calls_; }  // masks drawn so far (training-mode calls)
  void set_calls(std::uint64_t calls) { calls_ = calls; }

 private:
  double p_;
  std::uint64_t seed_;
  std::uint64_t calls_ = 0;
};
// The mask itself (float on the CPU, 0 or 1/keep, laid out like `like`): exposed for tests.
torch::Tensor dropout_mask(const torch::Tensor& like, double keep, std::uint64_t key);
TORCH_MODULE(SeededDropout);

// Builds the model and initialises it from `seed` (PyTorch's default scheme:
// weights and biases U(−1/√fan_in, 1/√fan_in); batch norm γ=1, β=0). Convolution
// weights are stored channels-last by default: with channels-last inputs
// (Splits::normalise's default) oneDNN runs the tiny models' training steps about
// 1.3–1.7× faster than in NCHW on one core (`evoopt bench train --layouts`). The
// values are the same; only float rounding differs (tested within tolerance).
torch::nn::Sequential make_model(ModelPreset preset, const InputShape& input, std::uint64_t seed,
                                 at::MemoryFormat format = at::MemoryFormat::ChannelsLast);

// Any preset as a Model (make_model for the image presets; the LSTM is initialised the
// same way: PyTorch's default scheme from `seed`, embedding N(0, 1)). The transformer: linear
// layers by PyTorch's default scheme, token and position embeddings N(0, 0.02²) as GPT-2's
// (Radford et al. 2019; `initializer_range` = 0.02 in Hugging Face's GPT2Config), LayerNorm
// γ = 1, β = 0; its forward takes int64 bytes (B, T ≤ kTransformerContext).
std::unique_ptr<Model> build_model(ModelPreset preset, const InputShape& input, std::uint64_t seed,
                                   at::MemoryFormat format = at::MemoryFormat::ChannelsLast);

// The hidden matrices Muon steps in a built-in model whose embeddings are not only its first
// matrix (the transformer: q, k, v, output, fc and proj of each block); empty for the others,
// where every matrix but the first and the last is hidden.
std::vector<std::string> muon_parameters(ModelPreset preset);

// Analytic multiply-adds ×2 of one forward pass of one sample (convolutions and
// linear layers; activations, pooling and normalisation are not counted). Text: per
// byte predicted (the LSTM's gates and the classifier; the transformer's projections,
// attention scores and weighted sums over the full context of kTransformerContext bytes,
// MLP and head; embeddings, LayerNorm, softmax and GELU not counted).
double forward_flops(ModelPreset preset, const InputShape& input);

}  // namespace evoopt::task
