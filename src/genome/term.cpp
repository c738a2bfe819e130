#include "evoopt/genome/term.hpp"

#include <torch/torch.h>

#include <cmath>

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

// NESTEROV = a_g·g + a_m·m with (a_g, a_m) from nesterov_coefficients():
// without bias correction (1−β1)·g + β1·m, torch SGD(nesterov=True) up to the lr
// scale (Sutskever et al. 2013); with it, the numerator of NAdam (Dozat 2016,
// https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ; torch.optim.NAdam).
torch::Tensor nesterov_term(const TermInputs& in) { return in.g * in.nesterov_g + in.m_raw * in.nesterov_m; }

// SIGN_MOMENTUM = sign(m) (Signum, Bernstein et al. 2018); sign(m̂) = sign(m).
torch::Tensor sign_momentum_term(const TermInputs& in) { return in.m.sign(); }

// LION = sign(β1·c_{t−1} + (1−β1)·g_t), where c is Lion's own momentum,
// c_t = β2·c_{t−1} + (1−β2)·g_t, updated after the step and never bias-corrected
// (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2,
// https://arxiv.org/abs/2302.06675). The genome's β2 is Lion's β2.
torch::Tensor lion_term(const TermInputs& in) { return (in.lion_m * in.beta1 + in.g * (1.0 - in.beta1)).sign_(); }

// ADD_SIGN = (α + sign(g)·sign(m))·g with α = 1 fixed (Bello et al. 2017,
// "Neural Optimizer Search with Reinforcement Learning", https://arxiv.org/abs/1709.07417,
// the AddSign rule with α = 1 and no internal decay, as in its Table 1).
torch::Tensor add_sign_term(const TermInputs& in) { return (in.g.sign() * in.m.sign()).add_(1.0).mul_(in.g); }

// POWER_SIGN = α^{sign(g)·sign(m)}·g with base α = e fixed (Bello et al. 2017, PowerSign).
torch::Tensor power_sign_term(const TermInputs& in) { return (in.g.sign() * in.m.sign()).exp_().mul_(in.g); }

// Format v1's LION: sign(β1·m̂ + (1−β1)·g) on the genome's m (an EMA with β1),
// so it equalled Lion with (β1², β1). Kept for v1 files only.
torch::Tensor lion_v1_term(const TermInputs& in) { return (in.m * in.beta1 + in.g * (1.0 - in.beta1)).sign_(); }

// Format v1's NESTEROV: β1·m̂ + (1−β1)·g (equal to NESTEROV without bias correction).
torch::Tensor nesterov_v1_term(const TermInputs& in) { return in.m * in.beta1 + in.g * (1.0 - in.beta1); }

}  // namespace

const std::vector<TermInfo>& term_registry() {
  // Order = enum order = canonical order.
  static const std::vector<TermInfo> registry = {
      // id, name, formula, needs m, needs v, needs Lion's c, reads bias correction, vocabulary, fn, LaTeX, PyTorch, C++
      {Term::Grad, "GRAD", "g", false, false, false, false, Vocabulary::Seed, grad_term, "g_t", "g.clone()", "g.clone()"},
      {Term::Momentum, "MOMENTUM", "m̂", true, false, false, true, Vocabulary::Seed, momentum_term, "\\hat{m}_t", "m_hat.clone()", "m_hat.clone()"},
      {Term::RmsNorm, "RMS_NORM", "g/(√v̂+ε)", false, true, false, true, Vocabulary::Seed, rms_norm_term, "\\frac{g_t}{\\sqrt{\\hat{v}_t}+\\epsilon}",
       "g / denom", "g / denom"},
      {Term::AdamTerm, "ADAM_TERM", "m̂/(√v̂+ε)", true, true, false, true, Vocabulary::Seed, adam_term,
       "\\frac{\\hat{m}_t}{\\sqrt{\\hat{v}_t}+\\epsilon}", "m_hat / denom", "m_hat / denom"},
      {Term::SignGrad, "SIGN_GRAD", "sign(g)", false, false, false, false, Vocabulary::Seed, sign_grad_term, "\\operatorname{sign}(g_t)", "g.sign()",
       "g.sign()"},
      {Term::Nesterov, "NESTEROV", "nesterov(g, m̂)", true, false, false, true, Vocabulary::Extended, nesterov_term,
       "\\left(a_t\\,g_t + b_t\\,m_t\\right)", "g * ng + m * nm", "g * ng + m * nm"},
      {Term::SignMomentum, "SIGN_MOMENTUM", "sign(m)", true, false, false, false, Vocabulary::Extended, sign_momentum_term,
       "\\operatorname{sign}(m_t)", "m_hat.sign()", "m_hat.sign()"},
      {Term::Lion, "LION", "sign(β1·c+(1−β1)·g)", false, false, true, false, Vocabulary::Extended, lion_term,
       "\\operatorname{sign}\\left(\\beta_1 c_{t-1} + (1-\\beta_1)\\,g_t\\right)", "(c * beta1 + g * (1.0 - beta1)).sign_()",
       "(c * beta1 + g * (1.0 - beta1)).sign_()"},
      {Term::AddSign, "ADD_SIGN", "(1+sign(g)·sign(m))·g", true, false, false, false, Vocabulary::Extended, add_sign_term,
       "\\left(1+\\operatorname{sign}(g_t)\\operatorname{sign}(m_t)\\right) g_t", "(g.sign() * m_hat.sign()).add_(1.0).mul_(g)",
       "(g.sign() * m_hat.sign()).add_(1.0).mul_(g)"},
      {Term::PowerSign, "POWER_SIGN", "e^(sign(g)·sign(m))·g", true, false, false, false, Vocabulary::Extended, power_sign_term,
       "e^{\\operatorname{sign}(g_t)\\operatorname{sign}(m_t)}\\, g_t", "(g.sign() * m_hat.sign()).exp_().mul_(g)",
       "(g.sign() * m_hat.sign()).exp_().mul_(g)"},
      {Term::LionV1, "LION_V1", "sign(β1·m̂+(1−β1)·g)", true, false, false, true, Vocabulary::Legacy, lion_v1_term,
       "\\operatorname{sign}\\left(\\beta_1 \\hat{m}_t + (1-\\beta_1)\\,g_t\\right)", "(m_hat * beta1 + g * (1.0 - beta1)).sign_()",
       "(m_hat * beta1 + g * (1.0 - beta1)).sign_()"},
      {Term::NesterovV1, "NESTEROV_V1", "(β1·m̂+(1−β1)·g)", true, false, false, true, Vocabulary::Legacy, nesterov_v1_term,
       "\\left(\\beta_1 \\hat{m}_t + (1-\\beta_1)\\,g_t\\right)", "m_hat * beta1 + g * (1.0 - beta1)", "m_hat * beta1 + g * (1.0 - beta1)"},
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
  for (const auto& info : term_registry()) {
    if (info.vocabulary == Vocabulary::Legacy) continue;  // loadable, never searched
    if (v != Vocabulary::Seed || info.vocabulary == Vocabulary::Seed) out.push_back(info.id);
  }
  return out;
}

NesterovCoefficients nesterov_coefficients(double beta1, bool bias_correction, std::int64_t t, double& mu_product) {
  if (!bias_correction) return {1.0 - beta1, beta1};
  const auto mu = [beta1](double step) { return beta1 * (1.0 - 0.5 * std::pow(0.96, step * kNadamMomentumDecay)); };
  const double mu_t = mu(static_cast<double>(t)), mu_next = mu(static_cast<double>(t + 1));
  mu_product *= mu_t;
  return {(1.0 - mu_t) / (1.0 - mu_product), mu_next / (1.0 - mu_product * mu_next)};
}

Vocabulary vocabulary_from_name(const std::string& name) {
  if (name == "seed") return Vocabulary::Seed;
  if (name == "extended") return Vocabulary::Extended;
  throw Error("unknown vocabulary '" + name + "' (allowed: seed, extended)");
}

const char* vocabulary_name(Vocabulary v) { return v == Vocabulary::Seed ? "seed" : v == Vocabulary::Extended ? "extended" : "legacy"; }

}  // namespace evoopt::genome
