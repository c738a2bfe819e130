#pragma once
// Schedule-Free AdamW (Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky 2024, "The Road
// Less Scheduled", Algorithm 1, in the form of the authors' facebookresearch/schedule_free
// AdamWScheduleFree). Three sequences: gradients are taken at y, the model is evaluated at x,
// and z takes the steps. Per step t, with γ_t = γ·min(1, t/warmup):
//   y_t = (1 − β1)·z_t + β1·x_t,        g = ∇f(y_t)
//   v ← β2·v + (1 − β2)·g²,             u = g/(√(v/(1 − β2^t)) + ε) + λ·y_t
//   z_{t+1} = z_t − γ_t·u
//   c_{t+1} = w_t/Σ_{i≤t} w_i with w_t = t^r·(max_{i≤t} γ_i)^p   (r = 0, p = 2: γ_t²/Σγ_i²)
//   x_{t+1} = (1 − c_{t+1})·x_t + c_{t+1}·z_{t+1}
// The parameters hold y while training (the optimizer keeps z; x is recovered from y and z):
// call eval_mode() before evaluating or saving the model's weights (they become x), and
// train_mode() before training on (they become y again). step() refuses to run in eval mode.
// save()/load() keep the mode, so weights saved in eval mode resume correctly. The step count,
// the largest γ so far and the weights' sum are kept per parameter (the authors keep them per
// group: the same unless some parameters get no gradient on some steps).
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

namespace evoopt::optim {

struct ScheduleFreeAdamWOptions : public torch::optim::OptimizerCloneableOptions<ScheduleFreeAdamWOptions> {
  ScheduleFreeAdamWOptions(double lr = 0.0025);
  TORCH_ARG(double, lr) = 0.0025;
  TORCH_ARG(double, beta1) = 0.9;
  TORCH_ARG(double, beta2) = 0.999;
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;  // λ, applied at y
  TORCH_ARG(std::int64_t, warmup_steps) = 0;
  TORCH_ARG(double, r) = 0.0;                // the averaging weight's power of t
  TORCH_ARG(double, weight_lr_power) = 2.0;  // the averaging weight's power of the largest γ so far

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
  void check() const;  // throws evoopt::Error naming the first value out of range
};

struct ScheduleFreeAdamWParamState : public torch::optim::OptimizerCloneableParamState<ScheduleFreeAdamWParamState> {
  TORCH_ARG(std::int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, z);
  TORCH_ARG(torch::Tensor, exp_avg_sq);
  TORCH_ARG(double, weight_sum) = 0.0;
  TORCH_ARG(double, lr_max) = 0.0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class ScheduleFreeAdamW : public torch::optim::Optimizer {
 public:
  explicit ScheduleFreeAdamW(std::vector<torch::optim::OptimizerParamGroup> param_groups, ScheduleFreeAdamWOptions defaults = {});
  explicit ScheduleFreeAdamW(std::vector<torch::Tensor> params, ScheduleFreeAdamWOptions defaults = {})
      : ScheduleFreeAdamW({torch::optim::OptimizerParamGroup(std::move(params))}, std::move(defaults)) {}

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // The parameters to x (evaluation) or back to y (training); each does nothing when the
  // parameters are already there. A parameter that has not stepped yet has x = y = z.
  void eval_mode();
  void train_mode();
  bool in_train_mode() const { return train_mode_; }

 private:
  void move_toward_z(bool to_x);  // the parameters from y to x (to_x) or from x to y
  bool train_mode_ = true;
};

}  // namespace evoopt::optim
