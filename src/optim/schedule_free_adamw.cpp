#include "evoopt/optim/schedule_free_adamw.hpp"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "evoopt/optim/param_state.hpp"

namespace evoopt::optim {

ScheduleFreeAdamWOptions::ScheduleFreeAdamWOptions(double lr) : lr_(lr) {}

void ScheduleFreeAdamWOptions::check() const {
  check_options(lr(), beta1(), beta2(), eps(), weight_decay(), "ScheduleFreeAdamW");
  // x = (y − (1 − β1)·z)/β1 needs β1 > 0.
  check_range(beta1() > 0, "ScheduleFreeAdamW", "beta1", beta1(), "in (0, 1)");
  check_range(warmup_steps() >= 0, "ScheduleFreeAdamW", "warmup_steps", static_cast<double>(warmup_steps()), ">= 0");
  check_range(std::isfinite(r()) && r() >= 0, "ScheduleFreeAdamW", "r", r(), ">= 0");
  check_range(std::isfinite(weight_lr_power()) && weight_lr_power() >= 0, "ScheduleFreeAdamW", "weight_lr_power", weight_lr_power(), ">= 0");
}

void ScheduleFreeAdamWOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta1);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta2);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(warmup_steps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(r);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_lr_power);
}

void ScheduleFreeAdamWOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta1);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta2);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(std::int64_t, warmup_steps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, r);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_lr_power);
}

void ScheduleFreeAdamWParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(z);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_sum);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr_max);
}

void ScheduleFreeAdamWParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(std::int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, z);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_sum);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr_max);
}

ScheduleFreeAdamW::ScheduleFreeAdamW(std::vector<torch::optim::OptimizerParamGroup> param_groups, ScheduleFreeAdamWOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<ScheduleFreeAdamWOptions>(defaults)) {
  for (const auto& group : param_groups_) static_cast<const ScheduleFreeAdamWOptions&>(group.options()).check();
}

torch::Tensor ScheduleFreeAdamW::step(LossClosure closure) {
  if (!train_mode_) throw Error("ScheduleFreeAdamW: step() in eval mode (the parameters hold x); call train_mode() first");
  torch::NoGradGuard no_grad;
  torch::Tensor loss = closure ? call_closure(closure) : torch::Tensor{};
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const ScheduleFreeAdamWOptions&>(group.options());
    for (auto& y : group.params()) {
      if (!y.grad().defined()) continue;
      TORCH_CHECK(!y.grad().is_sparse(), "ScheduleFreeAdamW does not support sparse gradients");
      auto& s = param_state<ScheduleFreeAdamWParamState>(state_, y, [](ScheduleFreeAdamWParamState& st, const torch::Tensor& q) {
        st.z(q.detach().clone());
        st.exp_avg_sq(torch::zeros_like(q, torch::MemoryFormat::Preserve));
      });
      s.step(s.step() + 1);
      const auto t = static_cast<double>(s.step());
      const double lr = o.lr() * (o.warmup_steps() > 0 ? std::min(1.0, t / static_cast<double>(o.warmup_steps())) : 1.0);
      s.lr_max(std::max(lr, s.lr_max()));
      const double weight = std::pow(t, o.r()) * std::pow(s.lr_max(), o.weight_lr_power());
      s.weight_sum(s.weight_sum() + weight);
      const double c = s.weight_sum() > 0 ? weight / s.weight_sum() : 0.0;
      const torch::Tensor& g = y.grad();
      s.exp_avg_sq().mul_(o.beta2()).addcmul_(g, g, 1 - o.beta2());
      const torch::Tensor denom = s.exp_avg_sq().div(1 - std::pow(o.beta2(), t)).sqrt_().add_(o.eps());
      torch::Tensor u = g.div(denom);
      if (o.weight_decay() != 0) u.add_(y, o.weight_decay());
      // y_{t+1} = (1 − c)·y_t + c·z_t − γ_t·(1 − β1·(1 − c))·u: the paper's x and z updates
      // folded into y, so x never has to be stored.
      y.lerp_(s.z(), c);
      y.add_(u, lr * (o.beta1() * (1 - c) - 1));
      s.z().sub_(u, lr);
    }
  }
  return loss;
}

void ScheduleFreeAdamW::eval_mode() {
  if (!train_mode_) return;
  move_toward_z(/*to_x=*/true);
  train_mode_ = false;
}

void ScheduleFreeAdamW::train_mode() {
  if (train_mode_) return;
  move_toward_z(/*to_x=*/false);
  train_mode_ = true;
}

// y = (1 − β1)·z + β1·x: x = lerp(y, z, 1 − 1/β1) and y = lerp(x, z, 1 − β1). A parameter
// without state has not stepped (x = y = z) and stays as it is.
void ScheduleFreeAdamW::move_toward_z(bool to_x) {
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups_) {
    const double beta1 = static_cast<const ScheduleFreeAdamWOptions&>(group.options()).beta1();
    for (auto& p : group.params()) {
      const auto it = state_.find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it != state_.end()) p.lerp_(static_cast<ScheduleFreeAdamWParamState&>(*it->second).z(), to_x ? 1 - 1 / beta1 : 1 - beta1);
    }
  }
}

// The mode is saved with the state: parameters saved in eval mode hold x, and a resumed
// optimizer must know that to turn them back into y.
void ScheduleFreeAdamW::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<ScheduleFreeAdamWParamState, ScheduleFreeAdamWOptions>(archive, *this);
  archive.write("evoopt_train_mode", c10::IValue(train_mode_));
}

void ScheduleFreeAdamW::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<ScheduleFreeAdamWParamState, ScheduleFreeAdamWOptions>(archive, *this);
  c10::IValue mode;
  train_mode_ = !archive.try_read("evoopt_train_mode", mode) || mode.toBool();
}

}  // namespace evoopt::optim
