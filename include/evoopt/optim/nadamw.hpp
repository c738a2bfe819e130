#pragma once
// NAdamW: AdamW with Nesterov momentum, as MLCommons AlgoPerf's baseline defines it
// (reference_algorithms/paper_baselines/nadamw; see ../shared/docs/REFERENCES.md). Per step t,
// with g the gradient:
//   θ ← θ·(1 − η·λ)                                   decoupled weight decay
//   m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
//   θ ← θ − η/(1 − β1^t) · (β1·m + (1 − β1)·g) / (√v/√(1 − β2^t) + ε)
// The Nesterov look-ahead β1·m + (1 − β1)·g replaces AdamW's m; it is not torch.optim.NAdam
// (which schedules its momentum). A torch::optim::Optimizer like torch::optim::AdamW:
//
//   evoopt::optim::NAdamW opt(model->parameters(), evoopt::optim::NAdamWOptions(1e-3).weight_decay(0.01));
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

namespace evoopt::optim {

struct NAdamWOptions : public torch::optim::OptimizerCloneableOptions<NAdamWOptions> {
  NAdamWOptions(double lr = 1e-3);
  TORCH_ARG(double, lr) = 1e-3;
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;  // decoupled: θ·(1 − lr·weight_decay) each step

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
  void check() const;  // throws evoopt::Error naming the first value out of range
};

struct NAdamWParamState : public torch::optim::OptimizerCloneableParamState<NAdamWParamState> {
  TORCH_ARG(std::int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);
  TORCH_ARG(torch::Tensor, exp_avg_sq);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class NAdamW : public torch::optim::Optimizer {
 public:
  explicit NAdamW(std::vector<torch::optim::OptimizerParamGroup> param_groups, NAdamWOptions defaults = {});
  explicit NAdamW(std::vector<torch::Tensor> params, NAdamWOptions defaults = {})
      : NAdamW({torch::optim::OptimizerParamGroup(std::move(params))}, std::move(defaults)) {}

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

}  // namespace evoopt::optim
