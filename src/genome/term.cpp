#include "evoopt/genome/term.hpp"

#include <cmath>

#include "evoopt/common/error.hpp"

namespace evoopt::genome {
namespace {

using rule::Var;
using rule::x;

// A registry row; the state a term needs is read off its value.
TermInfo term(Term id, std::string_view name, std::string_view formula, Vocabulary vocabulary, rule::Expr value) {
  bool reads_bc = false;
  for (std::size_t i = 0; i < rule::kVarCount; ++i)
    reads_bc = reads_bc || (rule::var_info(static_cast<Var>(i)).reads_bias_correction && value.reads(static_cast<Var>(i)));
  return {id,
          name,
          formula,
          vocabulary,
          value,
          value.reads(Var::M) || value.reads(Var::MHat),
          value.reads(Var::Denom) || value.reads(Var::V),
          value.reads(Var::C),
          reads_bc};
}

}  // namespace

const std::vector<TermInfo>& term_registry() {
  const rule::Expr g = x(Var::G), m = x(Var::M), m_hat = x(Var::MHat), denom = x(Var::Denom), c = x(Var::C), beta1 = x(Var::Beta1);
  const rule::Expr one = rule::num(1.0);
  // Order = enum order = canonical order. m̂ is m/(1−β1^t) with bias correction, else m;
  // sign(m̂) = sign(m), so the sign terms read m and do not depend on the flag.
  static const std::vector<TermInfo> registry = {
      // GRAD = g. Plain SGD direction (Robbins & Monro 1951).
      term(Term::Grad, "GRAD", "g", Vocabulary::Seed, g),
      // MOMENTUM = m̂, m_t = β1·m_{t-1} + (1−β1)·g_t (EMA form of heavy-ball momentum,
      // Polyak 1964); equals torch SGD's buffer times (1−β1).
      term(Term::Momentum, "MOMENTUM", "m̂", Vocabulary::Seed, m_hat),
      // RMS_NORM = g/(√v̂+ε), v_t = β2·v_{t-1} + (1−β2)·g_t² (RMSProp, Tieleman & Hinton 2012).
      term(Term::RmsNorm, "RMS_NORM", "g/(√v̂+ε)", Vocabulary::Seed, g / denom),
      // ADAM_TERM = m̂/(√v̂+ε) (Adam, Kingma & Ba 2015, https://arxiv.org/abs/1412.6980).
      term(Term::AdamTerm, "ADAM_TERM", "m̂/(√v̂+ε)", Vocabulary::Seed, m_hat / denom),
      // SIGN_GRAD = sign(g) (signSGD, Bernstein et al. 2018, https://arxiv.org/abs/1802.04434).
      term(Term::SignGrad, "SIGN_GRAD", "sign(g)", Vocabulary::Seed, rule::sign(g)),
      // NESTEROV = a_g·g + a_m·m with (a_g, a_m) from nesterov_coefficients():
      // without bias correction (1−β1)·g + β1·m, torch SGD(nesterov=True) up to the lr
      // scale (Sutskever et al. 2013); with it, the numerator of NAdam (Dozat 2016,
      // https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ; torch.optim.NAdam).
      term(Term::Nesterov, "NESTEROV", "nesterov(g, m̂)", Vocabulary::Extended, g * x(Var::Ng) + m * x(Var::Nm)),
      // SIGN_MOMENTUM = sign(m) (Signum, Bernstein et al. 2018).
      term(Term::SignMomentum, "SIGN_MOMENTUM", "sign(m)", Vocabulary::Extended, rule::sign(m)),
      // LION = sign(β1·c_{t−1} + (1−β1)·g_t), where c is Lion's own momentum,
      // c_t = β2·c_{t−1} + (1−β2)·g_t, updated after the step and never bias-corrected
      // (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2,
      // https://arxiv.org/abs/2302.06675). The genome's β2 is Lion's β2.
      term(Term::Lion, "LION", "sign(β1·c+(1−β1)·g)", Vocabulary::Extended, rule::sign(c * beta1 + g * (one - beta1))),
      // ADD_SIGN = (α + sign(g)·sign(m))·g with α = 1 fixed (Bello et al. 2017,
      // "Neural Optimizer Search with Reinforcement Learning", https://arxiv.org/abs/1709.07417,
      // the AddSign rule with α = 1 and no internal decay, as in its Table 1).
      term(Term::AddSign, "ADD_SIGN", "(1+sign(g)·sign(m))·g", Vocabulary::Extended, (one + rule::sign(g) * rule::sign(m)) * g),
      // POWER_SIGN = α^{sign(g)·sign(m)}·g with base α = e fixed (Bello et al. 2017, PowerSign).
      term(Term::PowerSign, "POWER_SIGN", "e^(sign(g)·sign(m))·g", Vocabulary::Extended, rule::exp(rule::sign(g) * rule::sign(m)) * g),
      // Format v1's LION: sign(β1·m̂ + (1−β1)·g) on the genome's m (an EMA with β1),
      // so it equalled Lion with (β1², β1). Kept for v1 files only.
      term(Term::LionV1, "LION_V1", "sign(β1·m̂+(1−β1)·g)", Vocabulary::Legacy, rule::sign(m_hat * beta1 + g * (one - beta1))),
      // Format v1's NESTEROV: β1·m̂ + (1−β1)·g (equal to NESTEROV without bias correction).
      term(Term::NesterovV1, "NESTEROV_V1", "(β1·m̂+(1−β1)·g)", Vocabulary::Legacy, m_hat * beta1 + g * (one - beta1)),
      // NADAMW = (β1·m̂ + (1−β1)·g/(1−β1^t))/(√v̂+ε): AdamW with the Nesterov look-ahead
      // β1·m_t + (1−β1)·g_t in m's place, bias-corrected by 1−β1^t, as MLCommons AlgoPerf's
      // NAdamW baseline (optim/nadamw.hpp is the same optimizer as a class). Without bias
      // correction (β1·m + (1−β1)·g)/(√v+ε).
      term(Term::NAdamW, "NADAMW", "(β1·m̂+(1−β1)·ĝ)/(√v̂+ε)", Vocabulary::Baseline, (m_hat * beta1 + g * (one - beta1) / x(Var::Bc1)) / denom),
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
    if (info.vocabulary == Vocabulary::Legacy || info.vocabulary == Vocabulary::Baseline) continue;  // loadable, never searched
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

const char* vocabulary_name(Vocabulary v) {
  switch (v) {
    case Vocabulary::Seed:
      return "seed";
    case Vocabulary::Extended:
      return "extended";
    case Vocabulary::Legacy:
      return "legacy";
    case Vocabulary::Baseline:
      return "baseline";
  }
  return "?";
}

}  // namespace evoopt::genome
