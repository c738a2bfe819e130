#pragma once
// Muon (Keller Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks",
// and the authors' KellerJordan/Muon code) with its usual hybrid: hidden weight matrices step
// with Muon, everything else (biases, normalisation parameters, the first layer, the
// classifier head) with AdamW at its own learning rate. A group's options say which
// (use_muon). Per step t of a Muon group, with g the gradient:
//   b ← β·b + (1 − β)·g;   u = Nesterov ? β·b + (1 − β)·g : b
//   O = orthogonalize(u viewed as a matrix (rows = size(0)); conv kernels (out, in·k·k))
//   θ ← θ·(1 − η·λ) − η·√max(1, rows/cols)·O
// and of an AdamW group (the authors' adam_update):
//   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
//   θ ← θ·(1 − η·λ) − η·(m/(1 − β1^t)) / (√(v/(1 − β2^t)) + ε)
// The authors run Newton–Schulz in bfloat16; here it runs in the parameter's dtype. The scale
// comes from the matrix view (rows/cols of (out, in·k·k)); the authors' code takes it from the
// last two sizes of the gradient as it is (kh/kw for a conv kernel), which differs for a conv
// with more outputs than in·k·k. A parameter without a gradient is skipped (the authors fill
// a zero gradient and still decay it).
//
//   auto split = evoopt::optim::muon_split(model->named_parameters().pairs());
//   evoopt::optim::Muon opt(split.groups(evoopt::optim::MuonOptions(0.02),
//                                        evoopt::optim::MuonOptions::adamw(3e-4)));
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

#include "evoopt/genome/rule.hpp"

namespace evoopt::optim {

// Muon's Newton–Schulz iterations (genome/rule.hpp: a program's orthogonalize is the same function).
using genome::rule::orthogonalize;

struct MuonOptions : public torch::optim::OptimizerCloneableOptions<MuonOptions> {
  MuonOptions(double lr = 0.02);
  // The AdamW part's options (use_muon false), the authors' defaults: betas (0.9, 0.95), ε 1e-10.
  static MuonOptions adamw(double lr = 3e-4);
  TORCH_ARG(bool, use_muon) = true;
  TORCH_ARG(double, lr) = 0.02;
  TORCH_ARG(double, weight_decay) = 0.0;  // decoupled, both parts: θ·(1 − lr·weight_decay)
  // Muon part
  TORCH_ARG(double, momentum) = 0.95;
  TORCH_ARG(bool, nesterov) = true;
  TORCH_ARG(std::int64_t, ns_steps) = 5;
  // AdamW part
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.95;
  TORCH_ARG(double, eps) = 1e-10;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
  void check() const;  // throws evoopt::Error naming the first value out of range
};

struct MuonParamState : public torch::optim::OptimizerCloneableParamState<MuonParamState> {
  TORCH_ARG(std::int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, momentum_buffer);  // Muon part
  TORCH_ARG(torch::Tensor, exp_avg);          // AdamW part
  TORCH_ARG(torch::Tensor, exp_avg_sq);       // AdamW part

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class Muon : public torch::optim::Optimizer {
 public:
  // A Muon group holding a parameter of fewer than 2 dimensions is refused (evoopt::Error).
  explicit Muon(std::vector<torch::optim::OptimizerParamGroup> param_groups, MuonOptions defaults = {});

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

// Which parameters step with Muon: the hidden weight matrices, i.e. every parameter of 2 or
// more dimensions except the first and the last of them in the model's order (the input layer
// and the classifier head). Everything else goes to AdamW. `muon_names`, when given, replaces
// the rule: exactly those parameters (by name) step with Muon; an unknown name or one of
// fewer than 2 dimensions is an evoopt::Error.
struct MuonSplit {
  std::vector<std::pair<std::string, torch::Tensor>> muon, adamw;
  // Two param groups (Muon first; a group with no parameters is left out).
  std::vector<torch::optim::OptimizerParamGroup> groups(const MuonOptions& muon_options, const MuonOptions& adamw_options) const;
  // One line: "Muon: conv2.weight [32, 16, 3, 3], ...; AdamW: conv1.weight [16, 1, 3, 3], ...".
  // `first` and `second` name the two groups' rules.
  std::string describe(const std::string& first = "Muon", const std::string& second = "AdamW") const;
};
MuonSplit muon_split(const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters, const std::vector<std::string>& muon_names = {});

}  // namespace evoopt::optim
