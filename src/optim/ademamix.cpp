#include "evoopt/optim/ademamix.hpp"

#include <cmath>

#include <torch/torch.h>

#include "evoopt/optim/param_state.hpp"

namespace evoopt::optim {

AdEMAMixOptions::AdEMAMixOptions(double lr) : lr_(lr) {}

void AdEMAMixOptions::check() const {
  check_options(lr(), beta1(), beta2(), eps(), weight_decay(), "AdEMAMix");
  check_range(beta3() >= 0 && beta3() < 1, "AdEMAMix", "beta3", beta3(), "in [0, 1)");
  check_range(std::isfinite(alpha()) && alpha() >= 0, "AdEMAMix", "alpha", alpha(), ">= 0");
  check_range(warmup() >= 0, "AdEMAMix", "warmup", static_cast<double>(warmup()), ">= 0");
}

void AdEMAMixOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta1);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta2);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta3);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(alpha);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(warmup);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
}

void AdEMAMixOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta1);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta2);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta3);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, alpha);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(std::int64_t, warmup);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
}

void AdEMAMixParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_fast);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_slow);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
}

void AdEMAMixParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(std::int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_fast);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_slow);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
}

AdEMAMix::AdEMAMix(std::vector<torch::optim::OptimizerParamGroup> param_groups, AdEMAMixOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<AdEMAMixOptions>(defaults)) {
  for (const auto& group : param_groups_) static_cast<const AdEMAMixOptions&>(group.options()).check();
}

double AdEMAMix::alpha_at(const AdEMAMixOptions& o, std::int64_t t) {
  if (t >= o.warmup()) return o.alpha();
  return static_cast<double>(t) / static_cast<double>(o.warmup()) * o.alpha();
}

double AdEMAMix::beta3_at(const AdEMAMixOptions& o, std::int64_t t) {
  if (t >= o.warmup()) return o.beta3();
  // Linear in half-life: f(β) = ln 0.5 / ln(β + 1e-8) − 1 steps, f⁻¹(h) = 0.5^(1/(h + 1)).
  const auto half_life = [](double beta) { return std::log(0.5) / std::log(beta + 1e-8) - 1; };
  const double a = static_cast<double>(t) / static_cast<double>(o.warmup());
  return std::pow(0.5, 1 / ((1 - a) * half_life(o.beta1()) + a * half_life(o.beta3()) + 1));
}

torch::Tensor AdEMAMix::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = closure ? call_closure(closure) : torch::Tensor{};
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const AdEMAMixOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "AdEMAMix does not support sparse gradients");
      auto& s = param_state<AdEMAMixParamState>(state_, p, [](AdEMAMixParamState& st, const torch::Tensor& q) {
        st.exp_avg_fast(torch::zeros_like(q, torch::MemoryFormat::Preserve));
        st.exp_avg_slow(torch::zeros_like(q, torch::MemoryFormat::Preserve));
        st.exp_avg_sq(torch::zeros_like(q, torch::MemoryFormat::Preserve));
      });
      s.step(s.step() + 1);
      const std::int64_t t = s.step();
      const double beta3 = beta3_at(o, t);
      const torch::Tensor& g = p.grad();
      s.exp_avg_fast().mul_(o.beta1()).add_(g, 1 - o.beta1());
      s.exp_avg_slow().mul_(beta3).add_(g, 1 - beta3);
      s.exp_avg_sq().mul_(o.beta2()).addcmul_(g, g, 1 - o.beta2());
      const auto td = static_cast<double>(t);
      const torch::Tensor denom = (s.exp_avg_sq().sqrt() / std::sqrt(1 - std::pow(o.beta2(), td))).add_(o.eps());
      torch::Tensor update = (s.exp_avg_fast() / (1 - std::pow(o.beta1(), td))).add_(s.exp_avg_slow(), alpha_at(o, t)).div_(denom);
      if (o.weight_decay() != 0) update.add_(p, o.weight_decay());
      p.add_(update, -o.lr());
    }
  }
  return loss;
}

void AdEMAMix::save(torch::serialize::OutputArchive& archive) const { torch::optim::serialize<AdEMAMixParamState, AdEMAMixOptions>(archive, *this); }

void AdEMAMix::load(torch::serialize::InputArchive& archive) { torch::optim::serialize<AdEMAMixParamState, AdEMAMixOptions>(archive, *this); }

}  // namespace evoopt::optim
