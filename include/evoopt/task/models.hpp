#pragma once
// Model zoo. Every parameter is initialised from an explicit generator (not
// libtorch's global one), and dropout draws from its own generator, so parallel
// runs in one process stay deterministic and independent.
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace evoopt::task {

enum class ModelPreset {
  Tiny,   // CPU default: two small conv-relu-pool blocks and a linear classifier
  Paper,  // the architectures of the best-known public implementation of this idea
};
ModelPreset model_preset_from_name(const std::string& name);  // "tiny" | "paper"; throws evoopt::Error
const char* model_preset_name(ModelPreset p);

struct InputShape {
  std::int64_t channels, height, width, classes;
};

// Dropout drawing its mask from a private generator.
class SeededDropoutImpl : public torch::nn::Module {
 public:
  SeededDropoutImpl(double p, std::uint64_t seed);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  double p_;
  at::Generator gen_;
};
TORCH_MODULE(SeededDropout);

// Builds the model and initialises it from `seed` (PyTorch's default scheme:
// weights and biases U(−1/√fan_in, 1/√fan_in); batch norm γ=1, β=0). Convolution
// weights are stored channels-last by default: with channels-last inputs
// (Splits::normalise's default) oneDNN runs the tiny models' training steps about
// 1.3–1.7× faster than in NCHW on one core (`evoopt bench train --layouts`). The
// values are the same; only float rounding differs (tested within tolerance).
torch::nn::Sequential make_model(ModelPreset preset, const InputShape& input, std::uint64_t seed,
                                 at::MemoryFormat format = at::MemoryFormat::ChannelsLast);

// Analytic multiply-adds ×2 of one forward pass of one sample (convolutions and
// linear layers; activations, pooling and normalisation are not counted).
double forward_flops(ModelPreset preset, const InputShape& input);

}  // namespace evoopt::task
