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
  LionLike,
  AddSign,
  PowerSign,
};

// Which terms the search may use. Seed: the five primitives of the original
// idea; Extended: adds Nesterov, sign-momentum, Lion-like, AddSign, PowerSign.
enum class Vocabulary { Seed, Extended };

// What a term sees: the gradient g, the first moment m̂ (bias-corrected when the
// genome says so, else the raw EMA m), the denominator √v̂ + ε, and β1.
// Tensors a term does not need may be undefined.
struct TermInputs {
  const torch::Tensor& g;
  const torch::Tensor& m;
  const torch::Tensor& denom;
  double beta1;
};

using TermFn = torch::Tensor (*)(const TermInputs&);

struct TermInfo {
  Term id;
  std::string_view name;     // stable identifier used in JSON: "ADAM_TERM"
  std::string_view formula;  // with hats: "m̂/(√v̂+ε)"; hats dropped without bias correction
  bool needs_m;
  bool needs_v;
  Vocabulary vocabulary;  // the smallest vocabulary that contains it
  TermFn fn;              // pure: returns a new tensor, never modifies its inputs
};

const std::vector<TermInfo>& term_registry();
const TermInfo& term_info(Term t);
std::optional<Term> term_from_name(std::string_view name);
// Terms of a vocabulary, in registry order.
std::vector<Term> vocabulary_terms(Vocabulary v);
Vocabulary vocabulary_from_name(const std::string& name);  // "seed" | "extended"; throws evoopt::Error
const char* vocabulary_name(Vocabulary v);

}  // namespace evoopt::genome
