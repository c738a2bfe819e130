#pragma once
// An optimizer genome: a weighted sum of update terms plus hyperparameters.
//   θ ← θ − η_t·Σ_k α_k·T_k − η_t·λ·θ
// (or, with L2 weight decay, g ← g + λ·θ before the moments)
// where η_t follows the schedule (linear warmup, optional cosine decay) over the
// run's total steps, m and v are EMAs of g and g² with β1 and β2 (optionally
// bias-corrected), and λ is decoupled weight decay (Loshchilov & Hutter 2019).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/common/limits.hpp"
#include "evoopt/genome/program.hpp"
#include "evoopt/genome/term.hpp"

namespace evoopt::genome {

struct TermGene {
  Term term;
  double weight;
  bool operator==(const TermGene& o) const { return term == o.term && weight == o.weight; }
};

// Allowed ranges; validate() names the field, the value and the range.
struct Bounds {
  static constexpr int kDefaultMaxTerms = 4;
  static constexpr int kHardMaxTerms = static_cast<int>(limits::kGenomeTerms.max);
  static constexpr double kWeightMin = -10.0, kWeightMax = 10.0;
  static constexpr double kLog10LrMin = -7.0, kLog10LrMax = 1.0;
  static constexpr double kBeta1Min = 0.0, kBeta1Max = 0.9999;
  static constexpr double kBeta2Min = 0.0, kBeta2Max = 0.99999;
  static constexpr double kLog10EpsMin = -12.0, kLog10EpsMax = -2.0;
  static constexpr double kLog10WdMin = -8.0, kLog10WdMax = -1.0;  // the search's range (mutation, distance)
  static constexpr double kLog10WdLimit = 0.0;                     // what a genome may hold (λ ≤ 1: AlgoPerf's ranges)
  static constexpr double kWarmupMin = 0.0, kWarmupMax = 0.5;
  static constexpr double kClipMin = 1e-3, kClipMax = 1e3;
  static constexpr double kBeta3Min = 0.0, kBeta3Max = 0.99999;
  static constexpr double kAlphaMin = 0.0, kAlphaMax = 100.0;
};

// What a genome's update is: a weighted sum of terms (what the search evolves), or one of
// today's strongest hand-made optimizers as published (comparison baselines, never searched;
// include/evoopt/optim/). A hand-made method has no terms; it reads the genome's learning
// rate, β's, ε, decoupled weight decay, schedule and clipping as its own hyperparameters
// (optim/algorithm.hpp says how each is mapped).
enum class Algorithm {
  Terms,
  Program,            // a program over primitive operations (genome/program.hpp): the program search space
  AdEMAMix,           // Pagliardini et al. 2024: reads beta3 and alpha besides Adam's
  ScheduleFreeAdamW,  // Defazio et al. 2024: warmup only (no decay: the method is schedule-free)
  Muon,               // Jordan et al. 2024: lr for the hidden matrices (beta1 its momentum), aux_lr for its AdamW part
};
const char* algorithm_name(Algorithm a);  // "terms", "program", "ademamix", "schedule_free_adamw", "muon"
std::optional<Algorithm> algorithm_from_name(const std::string& name);

struct Genome {
  Algorithm algorithm = Algorithm::Terms;
  std::vector<TermGene> terms;  // empty for a program or a hand-made method
  Program program;              // Algorithm::Program: its statements (empty otherwise)
  // Algorithm::Program, optional: the rule of the parameters outside the hidden weight matrices
  // (biases, normalisation, first layer, head), stepped at aux_lr; empty: `program` steps all.
  Program program_rest;
  double log10_lr = -3.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double log10_eps = -8.0;
  std::optional<double> log10_weight_decay;  // nullopt: no weight decay
  // true: decoupled, θ ← θ − η·λ·θ (AdamW); false: L2, g ← g + λ·θ before
  // the moments (torch's SGD/Adam/RMSprop weight_decay).
  bool decoupled_weight_decay = true;
  bool bias_correction = true;
  double warmup_fraction = 0.0;               // fraction of the run's steps spent in linear warmup
  bool cosine_decay = false;                  // cosine decay to 0 after warmup
  std::optional<double> clip_norm;            // clip gradients by global norm when set
  double beta3 = 0.9999;                      // AdEMAMix: the slow EMA's β3
  double alpha = 5.0;                         // AdEMAMix: the weight of the slow EMA
  double log10_aux_lr = -3.5228787452803374;  // Muon, or program_rest: log10 of the other parameters' learning rate (3e-4)

  double lr() const;
  double eps() const;
  double weight_decay() const;  // 0 when off
  double aux_lr() const;        // Muon's AdamW part
  bool is_terms() const { return algorithm == Algorithm::Terms; }
  bool is_program() const { return algorithm == Algorithm::Program; }
  bool has_program_rest() const { return !program_rest.statements.empty(); }
  // Where the model is evaluated differs from where it trains (Schedule-Free AdamW, or a
  // program with an evaluation point).
  bool evaluates_elsewhere() const;
  // An update rule GenomeOptimizer runs (terms or a program), as opposed to a hand-made method.
  bool has_rule() const { return is_terms() || is_program(); }
  bool needs_m() const;
  bool needs_v() const;
  bool needs_lion_m() const;           // LION's own momentum (EMA with β2)
  bool reads_bias_correction() const;  // some term's value depends on the flag
  bool has_schedule() const { return warmup_fraction > 0.0 || cosine_decay; }

  // Throws evoopt::Error naming the first bad field, its value and the allowed range.
  void validate(int max_terms = Bounds::kDefaultMaxTerms) const;

  // Repeated terms merged (weights summed), zero weights dropped, terms in
  // registry order, and genes the update cannot see reset to fixed values
  // (β1 without m; β2 and ε without v; bias correction without either), so
  // genomes that behave identically share one canonical form.
  Genome canonical() const;
  // Stable 64-bit hash of the canonical form (FNV-1a over its exact bits).
  std::uint64_t hash() const;
  std::string hash_hex() const;

  // Δθ = −η·(0.41·sign(g) + 2.00·m̂/(√v̂+ε)) − η·λ·θ
  std::string formula() const;
  // η = 1.2e-03 (warmup 5%, cosine), β1 = 0.855, ... one line.
  std::string hyperparameters() const;

  nlohmann::json to_json() const;
  // Accepts evoopt's own format and common field aliases (lr, learning_rate,
  // eps, epsilon, weight_decay, use_bias_correction, terms as names + weights).
  static Genome from_json(const nlohmann::json& j);

  bool operator==(const Genome& o) const;
  bool operator!=(const Genome& o) const { return !(*this == o); }
};

inline constexpr const char* kGenomeFormat = "evoopt.genome";
// Version 2 (this one): LION is Lion as published (own momentum with β2) and
// NESTEROV with bias correction is NAdam's numerator. A version-1 file loads with
// its old meaning: its LION becomes LION_V1, its NESTEROV with bias correction
// NESTEROV_V1 (legacy terms, never searched).
// Version 3 adds programs ("algorithm": "program", "program": [statements]); a genome without
// one is written as version 2, which version 3 reads unchanged.
inline constexpr int kGenomeFormatVersion = 3;
inline constexpr int kGenomeFormatVersionWithoutProgram = 2;

// Presets: sgd (EMA momentum), adam, adamw, rmsprop, signum, lion ("lion-like" is an alias),
// nadamw (AlgoPerf's NAdamW), and the hand-made ademamix, schedule_free_adamw, muon (the last
// four are baselines, not seeds of the search).
std::vector<std::string> preset_names();
Genome preset(const std::string& name);  // throws evoopt::Error listing the presets
// A preset name or a JSON file path.
Genome load_genome(const std::string& preset_or_file);
void save_genome(const Genome& g, const std::string& path);  // atomic

// Genotype distance in [0, 1] between the canonical forms of two genomes, for the
// population diversity in history.csv: half from the term weights (L1 difference of the
// weight vectors over the sum of their L1 norms), half from the mean normalised
// difference of the hyperparameters (log10 η, log10(1−β1), log10(1−β2), log10 ε, weight
// decay, warmup, clipping, flags), each scaled by its allowed range. 0 = same canonical form.
double genome_distance(const Genome& a, const Genome& b);

}  // namespace evoopt::genome
