#pragma once
// The term registry: every primitive update term an optimizer genome can use.
// Adding a term touches one place: the table in src/genome/term.cpp (name,
// formula, which state it needs, vocabulary, pure tensor function with its
// reference in the comment above it).
#include <torch/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace evoopt::genome {

enum class Term : int {
  Grad = 0,
  Momentum,
  RmsNorm,
  AdamTerm,
  SignGrad,
  Nesterov,
  SignMomentum,
  Lion,
  AddSign,
  PowerSign,
  // Legacy: the meaning LION and NESTEROV had in genome format v1, kept so v1
  // files load with their old meaning; never in a search vocabulary.
  LionV1,
  NesterovV1,
};

// Which terms the search may use. Seed: the five primitives of the original
// idea; Extended: adds Nesterov, sign-momentum, Lion, AddSign, PowerSign.
// Legacy: format-v1 meanings, loadable but never searched.
enum class Vocabulary { Seed, Extended, Legacy };

// What a term sees: the gradient g, the first moment m̂ (bias-corrected when the
// genome says so, else the raw EMA m), the raw EMA m itself, the denominator
// √v̂ + ε, β1, Lion's own momentum c_{t−1} (an EMA of g with β2, read before it
// is updated), and the two Nesterov coefficients (a_g, a_m) the optimizer
// computes for this step (see NESTEROV in term.cpp).
// Tensors a term does not need may be undefined.
struct TermInputs {
  const torch::Tensor& g;
  const torch::Tensor& m;
  const torch::Tensor& denom;
  double beta1;
  const torch::Tensor& m_raw;
  const torch::Tensor& lion_m;
  double nesterov_g = 0.0;
  double nesterov_m = 0.0;
};

// NESTEROV's coefficients at step t (1-based): NESTEROV = a_g·g + a_m·m (raw EMA m).
// Without bias correction (a_g, a_m) = (1−β1, β1): torch SGD(nesterov=True) with
// lr = η·(1−β1). With it, NAdam's (Dozat 2016; torch.optim.NAdam, ψ = 0.004):
// μ_t = β1·(1 − ½·0.96^{tψ}), a_g = (1−μ_t)/(1−Π_{i≤t} μ_i),
// a_m = μ_{t+1}/(1−Π_{i≤t+1} μ_i). `mu_product` is Π_{i<t} μ_i and is updated.
struct NesterovCoefficients {
  double g, m;
};
inline constexpr double kNadamMomentumDecay = 0.004;
NesterovCoefficients nesterov_coefficients(double beta1, bool bias_correction, std::int64_t t, double& mu_product);

using TermFn = torch::Tensor (*)(const TermInputs&);

struct TermInfo {
  Term id;
  std::string_view name;     // stable identifier used in JSON: "ADAM_TERM"
  std::string_view formula;  // with hats: "m̂/(√v̂+ε)"; hats dropped without bias correction
  bool needs_m;
  bool needs_v;
  bool needs_lion_m;           // Lion's own momentum (EMA of g with β2)
  bool reads_bias_correction;  // the value depends on the bias-correction flag
  Vocabulary vocabulary;       // the smallest vocabulary that contains it
  TermFn fn;                   // pure: returns a new tensor, never modifies its inputs
  // For exports (export/export.hpp), the same formula as `fn`: LaTeX (with hats; dropped
  // without bias correction), and a PyTorch expression over g, m_hat, m (raw EMA), denom,
  // beta1, c (Lion's momentum), ng, nm (NESTEROV's coefficients), and in libtorch C++.
  std::string_view latex;
  std::string_view python;
  std::string_view cpp;  // the same expression in libtorch C++ (torch::Tensor g, m_hat, ...; double beta1, ng, nm)
};

const std::vector<TermInfo>& term_registry();
const TermInfo& term_info(Term t);
std::optional<Term> term_from_name(std::string_view name);
// Terms of a vocabulary, in registry order.
std::vector<Term> vocabulary_terms(Vocabulary v);
Vocabulary vocabulary_from_name(const std::string& name);  // "seed" | "extended"; throws evoopt::Error
const char* vocabulary_name(Vocabulary v);

}  // namespace evoopt::genome
