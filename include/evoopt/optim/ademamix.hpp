#pragma once
// AdEMAMix (Pagliardini, Ablin, Grangier 2024, "The AdEMAMix Optimizer: Better, Faster,
// Older", Algorithm 1, and the authors' code apple/ml-ademamix): Adam's fast momentum mixed
// with a slow one. Per step t, with g the gradient:
//   m1 ← β1·m1 + (1 − β1)·g            fast EMA, bias-corrected
//   m2 ← β3(t)·m2 + (1 − β3(t))·g      slow EMA, not bias-corrected
//   ν  ← β2·ν + (1 − β2)·g²
//   θ  ← θ − η·( (m1/(1 − β1^t) + α(t)·m2) / (√ν/√(1 − β2^t) + ε) + λ·θ )
// With warmup T > 0, α(t) rises linearly from 0 to α over T steps and β3(t) moves from β1 to
// β3 linearly in half-life (f(β) = ln 0.5/ln β − 1), as the authors' schedulers do; T = 0
// uses α and β3 from the first step.
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

namespace evoopt::optim {

struct AdEMAMixOptions : public torch::optim::OptimizerCloneableOptions<AdEMAMixOptions> {
  AdEMAMixOptions(double lr = 1e-3);
  TORCH_ARG(double, lr) = 1e-3;
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, beta3) = 0.9999;
  TORCH_ARG(double, alpha) = 5.0;
  TORCH_ARG(std::int64_t, warmup) = 0;  // T for α and β3 (the authors use the run's length)
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;  // λ, scaled by η as in AdamW

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
  void check() const;  // throws evoopt::Error naming the first value out of range
};

struct AdEMAMixParamState : public torch::optim::OptimizerCloneableParamState<AdEMAMixParamState> {
  TORCH_ARG(std::int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg_fast);
  TORCH_ARG(torch::Tensor, exp_avg_slow);
  TORCH_ARG(torch::Tensor, exp_avg_sq);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class AdEMAMix : public torch::optim::Optimizer {
 public:
  explicit AdEMAMix(std::vector<torch::optim::OptimizerParamGroup> param_groups, AdEMAMixOptions defaults = {});
  explicit AdEMAMix(std::vector<torch::Tensor> params, AdEMAMixOptions defaults = {})
      : AdEMAMix({torch::optim::OptimizerParamGroup(std::move(params))}, std::move(defaults)) {}

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // The schedules at step t (1-based).
  static double alpha_at(const AdEMAMixOptions& o, std::int64_t t);
  static double beta3_at(const AdEMAMixOptions& o, std::int64_t t);
};

}  // namespace evoopt::optim
