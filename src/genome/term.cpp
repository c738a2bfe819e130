#include "evoopt/genome/term.hpp"

#include <torch/torch.h>

#include "evoopt/common/error.hpp"

namespace evoopt::genome {
namespace {

// GRAD = g. Plain SGD direction (Robbins & Monro 1951).
torch::Tensor grad_term(const TermInputs& in) { return in.g.clone(); }

// MOMENTUM = m, m_t = β1·m_{t-1} + (1−β1)·g_t (EMA form of heavy-ball momentum,
// Polyak 1964); equals torch SGD's buffer times (1−β1).
torch::Tensor momentum_term(const TermInputs& in) { return in.m.clone(); }

// RMS_NORM = g/(√v̂+ε), v_t = β2·v_{t-1} + (1−β2)·g_t² (RMSProp, Tieleman & Hinton 2012).
torch::Tensor rms_norm_term(const TermInputs& in) { return in.g / in.denom; }

// ADAM_TERM = m̂/(√v̂+ε) (Adam, Kingma & Ba 2015, https://arxiv.org/abs/1412.6980).
torch::Tensor adam_term(const TermInputs& in) { return in.m / in.denom; }

// SIGN_GRAD = sign(g) (signSGD, Bernstein et al. 2018, https://arxiv.org/abs/1802.04434).
torch::Tensor sign_grad_term(const TermInputs& in) { return in.g.sign(); }

// NESTEROV = β1·m̂ + (1−β1)·g: the look-ahead momentum direction
// (Nesterov 1983; as in NAdam, Dozat 2016).
torch::Tensor nesterov_term(const TermInputs& in) { return in.m * in.beta1 + in.g * (1.0 - in.beta1); }

// SIGN_MOMENTUM = sign(m) (Signum, Bernstein et al. 2018).
torch::Tensor sign_momentum_term(const TermInputs& in) { return in.m.sign(); }

// LION = sign(β1·m̂ + (1−β1)·g): Lion's update direction (Chen et al. 2023,
// https://arxiv.org/abs/2302.06675), here with the genome's single EMA m.
torch::Tensor lion_term(const TermInputs& in) { return (in.m * in.beta1 + in.g * (1.0 - in.beta1)).sign_(); }

// ADD_SIGN = (1 + sign(g)·sign(m))·g (Bello et al. 2017, "Neural Optimizer
// Search with Reinforcement Learning", https://arxiv.org/abs/1709.07417).
torch::Tensor add_sign_term(const TermInputs& in) { return (in.g.sign() * in.m.sign()).add_(1.0).mul_(in.g); }

// POWER_SIGN = exp(sign(g)·sign(m))·g (Bello et al. 2017, base e).
torch::Tensor power_sign_term(const TermInputs& in) { return (in.g.sign() * in.m.sign()).exp_().mul_(in.g); }

}  // namespace

const std::vector<TermInfo>& term_registry() {
  // Order = enum order = canonical order.
  static const std::vector<TermInfo> registry = {
      {Term::Grad, "GRAD", "g", false, false, Vocabulary::Seed, grad_term},
      {Term::Momentum, "MOMENTUM", "m̂", true, false, Vocabulary::Seed, momentum_term},
      {Term::RmsNorm, "RMS_NORM", "g/(√v̂+ε)", false, true, Vocabulary::Seed, rms_norm_term},
      {Term::AdamTerm, "ADAM_TERM", "m̂/(√v̂+ε)", true, true, Vocabulary::Seed, adam_term},
      {Term::SignGrad, "SIGN_GRAD", "sign(g)", false, false, Vocabulary::Seed, sign_grad_term},
      {Term::Nesterov, "NESTEROV", "(β1·m̂+(1−β1)·g)", true, false, Vocabulary::Extended, nesterov_term},
      {Term::SignMomentum, "SIGN_MOMENTUM", "sign(m̂)", true, false, Vocabulary::Extended, sign_momentum_term},
      {Term::LionLike, "LION", "sign(β1·m̂+(1−β1)·g)", true, false, Vocabulary::Extended, lion_term},
      {Term::AddSign, "ADD_SIGN", "(1+sign(g)·sign(m̂))·g", true, false, Vocabulary::Extended, add_sign_term},
      {Term::PowerSign, "POWER_SIGN", "exp(sign(g)·sign(m̂))·g", true, false, Vocabulary::Extended, power_sign_term},
  };
  return registry;
}

const TermInfo& term_info(Term t) { return term_registry().at(static_cast<std::size_t>(t)); }

std::optional<Term> term_from_name(std::string_view name) {
  for (const auto& info : term_registry())
    if (info.name == name) return info.id;
  return std::nullopt;
}

std::vector<Term> vocabulary_terms(Vocabulary v) {
  std::vector<Term> out;
  for (const auto& info : term_registry())
    if (v == Vocabulary::Extended || info.vocabulary == Vocabulary::Seed) out.push_back(info.id);
  return out;
}

Vocabulary vocabulary_from_name(const std::string& name) {
  if (name == "seed") return Vocabulary::Seed;
  if (name == "extended") return Vocabulary::Extended;
  throw Error("unknown vocabulary '" + name + "' (allowed: seed, extended)");
}

const char* vocabulary_name(Vocabulary v) { return v == Vocabulary::Seed ? "seed" : "extended"; }

}  // namespace evoopt::genome
