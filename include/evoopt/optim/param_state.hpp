#pragma once
// What evoopt's torch::optim optimizers share: a parameter's state, made on its first step;
// the closure called with gradients on; the one-line errors for bad hyperparameters.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <torch/optim/optimizer.h>

#include "evoopt/common/error.hpp"

namespace evoopt::optim {

// The state of `p` in `states` (Optimizer::state_), made by `init(state, p)` on first use.
template <typename State, typename Init>
State& param_state(ska::flat_hash_map<std::string, std::unique_ptr<torch::optim::OptimizerParamState>>& states, const torch::Tensor& p, Init&& init) {
  const auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
  auto it = states.find(key);
  if (it == states.end()) {
    auto s = std::make_unique<State>();
    init(*s, p);
    it = states.emplace(key, std::move(s)).first;
  }
  return static_cast<State&>(*it->second);
}

inline torch::Tensor call_closure(const torch::optim::Optimizer::LossClosure& closure) {
  at::AutoGradMode enable_grad(true);
  return closure();
}

// Clips the gradients of `params` in place by their global L2 norm, like
// torch::nn::utils::clip_grad_norm_ (coefficient min(1, c/(‖g‖ + 1e-6))); defined in algorithm.cpp.
void clip_grad_norm(const std::vector<torch::Tensor>& params, double clip_norm);

// Throws evoopt::Error naming the optimizer and the first value out of range.
inline void check_range(bool ok, const char* optimizer, const char* name, double value, const char* range) {
  if (!ok) throw Error(std::string(optimizer) + ": " + name + " must be " + range + ", got " + std::to_string(value));
}

// The hyperparameters every Adam-like optimizer has.
inline void check_options(double lr, double beta1, double beta2, double eps, double weight_decay, const char* optimizer) {
  check_range(std::isfinite(lr) && lr >= 0, optimizer, "lr", lr, ">= 0");
  check_range(beta1 >= 0 && beta1 < 1, optimizer, "beta1", beta1, "in [0, 1)");
  check_range(beta2 >= 0 && beta2 < 1, optimizer, "beta2", beta2, "in [0, 1)");
  check_range(std::isfinite(eps) && eps >= 0, optimizer, "eps", eps, ">= 0");
  check_range(std::isfinite(weight_decay) && weight_decay >= 0, optimizer, "weight_decay", weight_decay, ">= 0");
}

}  // namespace evoopt::optim
