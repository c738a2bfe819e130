#pragma once
// The term registry: every primitive update term an optimizer genome can use.
// Adding a term touches one place: the table in src/genome/term.cpp (name, label,
// vocabulary, and its value as an update-rule expression, genome/rule.hpp, with its
// reference in the comment above it). What state it needs is read off the expression.
#include "evoopt/genome/rule.hpp"

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
  // The direction of a hand-made baseline the search does not use (Vocabulary::Baseline).
  NAdamW,
};

// Which terms the search may use. Seed: the five primitives of the original
// idea; Extended: adds Nesterov, sign-momentum, Lion, AddSign, PowerSign.
// Legacy: format-v1 meanings, loadable but never searched. Baseline: the directions of
// hand-made baselines (NAdamW), for the comparison; loadable, never searched.
enum class Vocabulary { Seed, Extended, Legacy, Baseline };

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

struct TermInfo {
  Term id;
  std::string_view name;     // stable identifier used in JSON: "ADAM_TERM"
  std::string_view formula;  // label in files and logs: "m̂/(√v̂+ε)"; hats dropped without bias correction
  Vocabulary vocabulary;     // the smallest vocabulary that contains it
  rule::Expr value;          // the term's value: what GenomeOptimizer executes and the exporters print
  // Derived from `value`:
  bool needs_m;                // reads m or m̂
  bool needs_v;                // reads √v̂+ε
  bool needs_lion_m;           // reads Lion's own momentum (EMA of g with β2)
  bool reads_bias_correction;  // the value depends on the bias-correction flag
};

const std::vector<TermInfo>& term_registry();
const TermInfo& term_info(Term t);
std::optional<Term> term_from_name(std::string_view name);
// Terms of a vocabulary, in registry order.
std::vector<Term> vocabulary_terms(Vocabulary v);
Vocabulary vocabulary_from_name(const std::string& name);  // "seed" | "extended"; throws evoopt::Error
const char* vocabulary_name(Vocabulary v);

}  // namespace evoopt::genome
