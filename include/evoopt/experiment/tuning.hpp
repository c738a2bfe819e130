#pragma once
// One tuning protocol for every method, the evolved genome included (MLCommons AlgoPerf's
// external-tuning ruleset as the model): each method has a search space, and the same number
// of quasi-random trials is drawn from every space (a Halton sequence, shifted by a seeded
// random vector: Cranley–Patterson rotation), each trial trained at the full budget and
// chosen on validation. The spaces and where each range comes from:
//
//   adamw, nadamw, adam, ademamix, schedule_free_adamw   AlgoPerf's NAdamW space
//       (algorithms/paper_baselines/nadamw/tuning_search_space.json): η log-uniform in
//       [1e-4, 1e-2], 1 − β1 log-uniform in [4e-3, 0.1], β2 = 0.999, warmup 5% then cosine
//       decay, λ log-uniform in [5e-3, 1] (decoupled). adam's λ is torch's L2 decay: evoopt's
//       own range [1e-7, 1e-3] (AlgoPerf has no Adam with L2). Schedule-Free AdamW: warmup 5%,
//       no decay (it replaces the schedule). AdEMAMix: β3 = 0.9999 and α = 5, the authors'.
//   sgd       AlgoPerf's Nesterov space (nesterov/tuning_search_space_no_beta1.json): torch's
//             lr log-uniform in [2e-2, 5], momentum 0.9, L2 λ log-uniform in [1e-7, 5e-5],
//             warmup 5% then cosine.
//   lion      AdamW's space scaled as the Lion paper advises (η 3–10× smaller, λ 3–10× larger):
//             η in [1e-5, 1e-3], λ in [1.5e-2, 1]; β = (0.9, 0.99), warmup 5% then cosine.
//   muon      η (its hidden matrices) log-uniform in [2e-3, 2e-1] (the authors' 0.02 ×/÷ 10),
//             its AdamW part's η in AlgoPerf's [1e-4, 1e-2], λ in [5e-3, 1], momentum 0.95.
//   rmsprop, signum   evoopt's own (no published space): η log-uniform in [1e-5, 1e-2], L2 λ
//             (rmsprop) in [1e-7, 1e-3], warmup 5% then cosine.
//   evolved   its own rule; η log-uniform within ×/÷ 10 of its own and, when it has weight
//             decay, λ within ×/÷ 10 of its own.
//
// Given the evolved genome, every space, its own included, also gets one categorical
// dimension, the regime (schedule and clipping): AlgoPerf's (5% warmup, cosine decay, no
// clipping) or the evolved genome's, so that between tuned methods only the update rule and
// its own hyperparameters differ. Schedule-Free AdamW takes the regime's warmup and clipping,
// never a decay (it replaces the schedule).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/genome/genome.hpp"

namespace evoopt::experiment {

// A learning-rate schedule and gradient clipping, tuned as one pair ("regime").
struct Regime {
  double warmup_fraction = 0.0;
  bool cosine_decay = false;
  std::optional<double> clip_norm;
  bool operator==(const Regime& o) const {
    return warmup_fraction == o.warmup_fraction && cosine_decay == o.cosine_decay && clip_norm == o.clip_norm;
  }
  bool operator!=(const Regime& o) const { return !(*this == o); }
  std::string describe() const;  // "constant", "warmup 20% + cosine, clip 1"
  nlohmann::json to_json() const;
};
// The regime of a genome (its schedule and clipping).
Regime regime_of(const genome::Genome& g);
// Writes `r` into `g`; Schedule-Free AdamW takes its warmup and clipping but no decay.
void apply_regime(genome::Genome& g, const Regime& r);
// AlgoPerf's regime for its baselines: 5% warmup, then cosine decay to 0, no clipping.
Regime algoperf_regime();

// One tuned hyperparameter: a range, log-uniform or uniform.
struct Dimension {
  std::string name;  // "lr", "one_minus_beta1", "weight_decay", "aux_lr", "regime"
  double lo = 0, hi = 0;
  bool log = true;
  double at(double u) const;  // the value at u ∈ [0, 1)
};

struct SearchSpace {
  std::string method;   // a preset name, or "evolved"
  std::string source;   // where its ranges come from (one line)
  genome::Genome base;  // everything a trial does not set: rule, β2, schedule, ...
  std::vector<Dimension> dims;
  // The "regime" dimension's choices (uniform over [0, size), each an equal share of it).
  std::vector<Regime> regimes;
  // The trial at u ∈ [0, 1)^dims: base with each dimension's value written in.
  genome::Genome trial(const std::vector<double>& u) const;
};

// The space of a baseline (preset name) or of the evolved genome. With `evolved` (always for
// the evolved genome's own space), the regime dimension {AlgoPerf's, the evolved genome's}
// is added when the two differ. Throws evoopt::Error for a method without a space.
SearchSpace search_space(const std::string& method, const genome::Genome* evolved = nullptr);
SearchSpace evolved_search_space(const genome::Genome& evolved);

// The first `n` points of the `d`-dimensional Halton sequence (bases 2, 3, 5, 7, ...; the
// sequence starts at index 1), each shifted modulo 1 by one uniform vector drawn from `seed`.
std::vector<std::vector<double>> shifted_halton(std::size_t n, std::size_t d, std::uint64_t seed);

// The space's `n` trials for a study with run seed `run_seed` (the shift is a function of the
// run seed and the method, so every method's trials are reproducible and independent).
std::vector<genome::Genome> quasirandom_trials(const SearchSpace& space, std::size_t n, std::uint64_t run_seed);

}  // namespace evoopt::experiment
