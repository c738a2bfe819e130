#include "evoopt/optim/nadamw.hpp"

#include <cmath>

#include <torch/torch.h>

#include "evoopt/optim/param_state.hpp"

namespace evoopt::optim {

NAdamWOptions::NAdamWOptions(double lr) : lr_(lr) {}

void NAdamWOptions::check() const { check_options(lr(), beta1(), beta2(), eps(), weight_decay(), "NAdamW"); }

void NAdamWOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta1);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta2);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
}

void NAdamWOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta1);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta2);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
}

void NAdamWParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
}

void NAdamWParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(std::int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
}

NAdamW::NAdamW(std::vector<torch::optim::OptimizerParamGroup> param_groups, NAdamWOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<NAdamWOptions>(defaults)) {
  for (const auto& group : param_groups_) static_cast<const NAdamWOptions&>(group.options()).check();
}

torch::Tensor NAdamW::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = closure ? call_closure(closure) : torch::Tensor{};
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const NAdamWOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "NAdamW does not support sparse gradients");
      auto& s = param_state<NAdamWParamState>(state_, p, [](NAdamWParamState& st, const torch::Tensor& q) {
        st.exp_avg(torch::zeros_like(q, torch::MemoryFormat::Preserve));
        st.exp_avg_sq(torch::zeros_like(q, torch::MemoryFormat::Preserve));
      });
      s.step(s.step() + 1);
      const auto t = static_cast<double>(s.step());
      const torch::Tensor& g = p.grad();
      p.mul_(1 - o.lr() * o.weight_decay());
      s.exp_avg().mul_(o.beta1()).add_(g, 1 - o.beta1());
      s.exp_avg_sq().mul_(o.beta2()).addcmul_(g, g, 1 - o.beta2());
      const torch::Tensor nesterov = s.exp_avg().mul(o.beta1()).add_(g, 1 - o.beta1());
      const torch::Tensor denom = (s.exp_avg_sq().sqrt() / std::sqrt(1 - std::pow(o.beta2(), t))).add_(o.eps());
      p.addcdiv_(nesterov, denom, -o.lr() / (1 - std::pow(o.beta1(), t)));
    }
  }
  return loss;
}

void NAdamW::save(torch::serialize::OutputArchive& archive) const { torch::optim::serialize<NAdamWParamState, NAdamWOptions>(archive, *this); }

void NAdamW::load(torch::serialize::InputArchive& archive) { torch::optim::serialize<NAdamWParamState, NAdamWOptions>(archive, *this); }

}  // namespace evoopt::optim
