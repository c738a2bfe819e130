#include "evoopt/optim/muon.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <torch/torch.h>

#include "evoopt/optim/param_state.hpp"

namespace evoopt::optim {

MuonOptions::MuonOptions(double lr) : lr_(lr) {}

MuonOptions MuonOptions::adamw(double lr) { return MuonOptions(lr).use_muon(false); }

void MuonOptions::check() const {
  check_options(lr(), beta1(), beta2(), eps(), weight_decay(), "Muon");
  check_range(momentum() >= 0 && momentum() < 1, "Muon", "momentum", momentum(), "in [0, 1)");
  check_range(ns_steps() >= 0 && ns_steps() <= 100, "Muon", "ns_steps", static_cast<double>(ns_steps()), "in [0, 100]");
}

void MuonOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(use_muon);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(nesterov);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(ns_steps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta1);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(beta2);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
}

void MuonOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, use_muon);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, momentum);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(bool, nesterov);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(std::int64_t, ns_steps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta1);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, beta2);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, eps);
}

void MuonParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(momentum_buffer);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
}

void MuonParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(std::int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, momentum_buffer);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
}

Muon::Muon(std::vector<torch::optim::OptimizerParamGroup> param_groups, MuonOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<MuonOptions>(defaults)) {
  for (const auto& group : param_groups_) {
    const auto& o = static_cast<const MuonOptions&>(group.options());
    o.check();
    if (o.use_muon())
      for (const auto& p : group.params())
        if (p.dim() < 2)
          throw Error(fmt::format("Muon: a parameter of shape {} is in a Muon group; parameters of fewer than 2 dimensions go to the AdamW group",
                                  fmt::join(p.sizes(), "x")));
  }
}

namespace {

void muon_step(torch::Tensor& p, MuonParamState& s, const MuonOptions& o) {
  const torch::Tensor& g = p.grad();
  s.momentum_buffer().lerp_(g, 1 - o.momentum());
  const torch::Tensor u = o.nesterov() ? g.lerp(s.momentum_buffer(), o.momentum()) : s.momentum_buffer();
  const auto rows = static_cast<double>(p.size(0));
  const double cols = static_cast<double>(p.numel()) / rows;
  const torch::Tensor update = orthogonalize(u, static_cast<int>(o.ns_steps()));
  p.mul_(1 - o.lr() * o.weight_decay());
  p.add_(update, -o.lr() * std::sqrt(std::max(1.0, rows / cols)));
}

void adamw_step(torch::Tensor& p, MuonParamState& s, const MuonOptions& o) {
  const torch::Tensor& g = p.grad();
  const auto t = static_cast<double>(s.step());
  s.exp_avg().lerp_(g, 1 - o.beta1());
  s.exp_avg_sq().lerp_(g.square(), 1 - o.beta2());
  const torch::Tensor m_hat = s.exp_avg() / (1 - std::pow(o.beta1(), t));
  const torch::Tensor denom = (s.exp_avg_sq() / (1 - std::pow(o.beta2(), t))).sqrt_().add_(o.eps());
  p.mul_(1 - o.lr() * o.weight_decay());
  p.addcdiv_(m_hat, denom, -o.lr());
}

}  // namespace

torch::Tensor Muon::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = closure ? call_closure(closure) : torch::Tensor{};
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const MuonOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "Muon does not support sparse gradients");
      auto& s = param_state<MuonParamState>(state_, p, [&o](MuonParamState& st, const torch::Tensor& q) {
        if (o.use_muon()) {
          st.momentum_buffer(torch::zeros_like(q, torch::MemoryFormat::Preserve));
        } else {
          st.exp_avg(torch::zeros_like(q, torch::MemoryFormat::Preserve));
          st.exp_avg_sq(torch::zeros_like(q, torch::MemoryFormat::Preserve));
        }
      });
      s.step(s.step() + 1);
      if (o.use_muon())
        muon_step(p, s, o);
      else
        adamw_step(p, s, o);
    }
  }
  return loss;
}

void Muon::save(torch::serialize::OutputArchive& archive) const { torch::optim::serialize<MuonParamState, MuonOptions>(archive, *this); }

void Muon::load(torch::serialize::InputArchive& archive) { torch::optim::serialize<MuonParamState, MuonOptions>(archive, *this); }

// ------------------------------------------------------------------ the split

MuonSplit muon_split(const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters, const std::vector<std::string>& muon_names) {
  MuonSplit split;
  std::set<std::string> chosen;
  if (!muon_names.empty()) {
    chosen.insert(muon_names.begin(), muon_names.end());
    std::set<std::string> known;
    for (const auto& [name, p] : named_parameters) {
      known.insert(name);
      if (chosen.count(name) && p.dim() < 2)
        throw Error(fmt::format("Muon: parameter '{}' has shape {}; only parameters of 2 or more dimensions can step with Muon", name,
                                fmt::join(p.sizes(), "x")));
    }
    for (const auto& name : muon_names)
      if (!known.count(name)) throw Error("Muon: the model has no parameter named '" + name + "'");
  } else {
    std::vector<std::string> matrices;
    for (const auto& [name, p] : named_parameters)
      if (p.dim() >= 2) matrices.push_back(name);
    // The first (input layer) and the last (classifier head) stay on AdamW.
    for (std::size_t i = 1; i + 1 < matrices.size(); ++i) chosen.insert(matrices[i]);
  }
  for (const auto& np : named_parameters) (chosen.count(np.first) ? split.muon : split.adamw).push_back(np);
  return split;
}

std::vector<torch::optim::OptimizerParamGroup> MuonSplit::groups(const MuonOptions& muon_options, const MuonOptions& adamw_options) const {
  auto tensors = [](const std::vector<std::pair<std::string, torch::Tensor>>& v) {
    std::vector<torch::Tensor> t;
    for (const auto& np : v) t.push_back(np.second);
    return t;
  };
  std::vector<torch::optim::OptimizerParamGroup> g;
  if (!muon.empty()) g.emplace_back(tensors(muon), std::make_unique<MuonOptions>(MuonOptions(muon_options).use_muon(true)));
  if (!adamw.empty()) g.emplace_back(tensors(adamw), std::make_unique<MuonOptions>(MuonOptions(adamw_options).use_muon(false)));
  return g;
}

std::string MuonSplit::describe(const std::string& first, const std::string& second) const {
  auto list = [](const std::vector<std::pair<std::string, torch::Tensor>>& v) {
    std::vector<std::string> items;
    for (const auto& [name, p] : v) items.push_back(fmt::format("{} [{}]", name, fmt::join(p.sizes(), ", ")));
    return items.empty() ? std::string("none") : fmt::format("{}", fmt::join(items, ", "));
  };
  return first + ": " + list(muon) + "; " + second + ": " + list(adamw);
}

}  // namespace evoopt::optim
