#include "evoopt/experiment/tuning.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/rng.hpp"

namespace evoopt::experiment {
using genome::Genome;

std::string Regime::describe() const {
  std::string out;
  if (warmup_fraction > 0) out += fmt::format("warmup {:.0f}%", warmup_fraction * 100);
  if (cosine_decay) out += std::string(out.empty() ? "" : " + ") + "cosine";
  if (out.empty()) out = "constant";
  if (clip_norm) out += fmt::format(", clip {:.3g}", *clip_norm);
  return out;
}

nlohmann::json Regime::to_json() const {
  return {{"warmup_fraction", warmup_fraction},
          {"cosine_decay", cosine_decay},
          {"clip_norm", clip_norm ? nlohmann::json(*clip_norm) : nlohmann::json(nullptr)}};
}

Regime regime_of(const Genome& g) { return {g.has_schedule() ? g.warmup_fraction : 0.0, g.cosine_decay, g.clip_norm}; }

void apply_regime(Genome& g, const Regime& r) {
  g.warmup_fraction = r.warmup_fraction;
  g.cosine_decay = r.cosine_decay && g.algorithm != genome::Algorithm::ScheduleFreeAdamW;
  g.clip_norm = r.clip_norm;
}

Regime algoperf_regime() { return {0.05, true, std::nullopt}; }

double Dimension::at(double u) const {
  if (log) return std::pow(10.0, std::log10(lo) + u * (std::log10(hi) - std::log10(lo)));
  return lo + u * (hi - lo);
}

namespace {

// torch's SGD learning rate → the sgd genome's η at its β1 (EMA momentum, compare's eta_for).
constexpr const char* kTorchSgdLr = "torch_sgd_lr";

void write(Genome& g, const std::string& name, double v) {
  if (name == "lr") {
    g.log10_lr = std::log10(v);
  } else if (name == kTorchSgdLr) {
    g.log10_lr = std::log10(v / (1.0 - g.beta1));
  } else if (name == "one_minus_beta1") {
    g.beta1 = 1.0 - v;
  } else if (name == "weight_decay") {
    g.log10_weight_decay = std::log10(v);
  } else if (name == "aux_lr") {
    g.log10_aux_lr = std::log10(v);
  } else {
    throw Error("search space: unknown dimension '" + name + "'");
  }
}

// A preset in AlgoPerf's regime.
Genome scheduled(const std::string& preset, bool decoupled) {
  Genome g = genome::preset(preset);
  apply_regime(g, algoperf_regime());
  g.decoupled_weight_decay = decoupled;
  if (!g.log10_weight_decay) g.log10_weight_decay = -2.0;  // overwritten by every trial
  return g;
}

const char* const kAlgoPerfNAdamW = "AlgoPerf's NAdamW space (paper_baselines/nadamw/tuning_search_space.json)";
constexpr const char* kRegime = "regime";

// Adds the regime dimension {AlgoPerf's, the evolved genome's} when the two differ.
void offer_regimes(SearchSpace& s, const Genome& evolved) {
  const Regime published = algoperf_regime(), own = regime_of(evolved);
  if (own == published) return;
  s.regimes = {published, own};
  // First, in the Halton sequence's base 2: points 2k and 2k + 1 lie half a period apart
  // whatever the shift, so each regime gets at least ⌊(n − 1)/2⌋ of n trials.
  s.dims.insert(s.dims.begin(), Dimension{kRegime, 0.0, 2.0, false});
  s.source += fmt::format("; regime {} or {} (the evolved genome's)", published.describe(), own.describe());
}

}  // namespace

Genome SearchSpace::trial(const std::vector<double>& u) const {
  if (u.size() != dims.size()) throw Error("search space " + method + ": a point has the wrong number of coordinates");
  Genome g = base;
  // β1 first: sgd's η depends on it.
  for (std::size_t i = 0; i < dims.size(); ++i)
    if (dims[i].name == "one_minus_beta1") write(g, dims[i].name, dims[i].at(u[i]));
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i].name == "one_minus_beta1") continue;
    if (dims[i].name == kRegime) {
      if (regimes.empty()) throw Error("search space " + method + ": a regime dimension without regimes");
      apply_regime(g, regimes[std::min(regimes.size() - 1, static_cast<std::size_t>(u[i] * static_cast<double>(regimes.size())))]);
    } else {
      write(g, dims[i].name, dims[i].at(u[i]));
    }
  }
  g.validate(genome::Bounds::kHardMaxTerms);
  return g;
}

SearchSpace search_space(const std::string& method, const Genome* evolved) {
  SearchSpace s;
  s.method = method;
  const Dimension lr{"lr", 1e-4, 1e-2}, beta1{"one_minus_beta1", 4e-3, 0.1}, decoupled{"weight_decay", 5e-3, 1.0};
  if (method == "adamw" || method == "nadamw" || method == "ademamix" || method == "schedule_free_adamw") {
    s.source = kAlgoPerfNAdamW;
    s.base = scheduled(method, true);
    s.dims = {lr, beta1, decoupled};
  } else if (method == "adam") {
    s.source = std::string(kAlgoPerfNAdamW) + "; L2 weight decay in [1e-7, 1e-3] (evoopt's)";
    s.base = scheduled(method, false);
    s.dims = {lr, beta1, {"weight_decay", 1e-7, 1e-3}};
  } else if (method == "sgd") {
    s.source = "AlgoPerf's Nesterov space (paper_baselines/nesterov/tuning_search_space_no_beta1.json), torch lr capped at 1";
    s.base = scheduled(method, false);
    s.dims = {{kTorchSgdLr, 2e-2, 1.0}, {"weight_decay", 1e-7, 5e-5}};
  } else if (method == "lion") {
    s.source = "AdamW's space with η ÷10 and λ ×3 (capped at 1), as the Lion paper advises";
    s.base = scheduled(method, true);
    s.dims = {{"lr", 1e-5, 1e-3}, {"weight_decay", 1.5e-2, 1.0}};
  } else if (method == "muon") {
    s.source = "the authors' η 0.02 ×/÷ 10; its AdamW part and λ as AlgoPerf's NAdamW space";
    s.base = scheduled(method, true);
    s.dims = {{"lr", 2e-3, 2e-1}, {"aux_lr", 1e-4, 1e-2}, decoupled};
  } else if (method == "rmsprop" || method == "signum") {
    s.source = "evoopt's own (no published space)";
    s.base = scheduled(method, false);
    s.dims = {{"lr", 1e-5, 1e-2}};
    if (method == "rmsprop")
      s.dims.push_back({"weight_decay", 1e-7, 1e-3});
    else
      s.base.log10_weight_decay.reset();
  } else {
    throw Error("no tuning search space for '" + method + "'");
  }
  if (evolved != nullptr) offer_regimes(s, *evolved);
  return s;
}

SearchSpace evolved_search_space(const Genome& evolved) {
  SearchSpace s;
  s.method = "evolved";
  s.source = "its own rule; η and λ within ×/÷ 10 of its own";
  s.base = evolved;
  const double lr = evolved.lr();
  s.dims = {{"lr", std::max(lr / 10, std::pow(10.0, genome::Bounds::kLog10LrMin)), std::min(lr * 10, std::pow(10.0, genome::Bounds::kLog10LrMax))}};
  if (evolved.log10_weight_decay) {
    const double wd = evolved.weight_decay();
    s.dims.push_back({"weight_decay", std::max(wd / 10, std::pow(10.0, genome::Bounds::kLog10WdMin)), std::min(wd * 10, 1.0)});
  }
  offer_regimes(s, evolved);
  return s;
}

std::vector<std::vector<double>> shifted_halton(std::size_t n, std::size_t d, std::uint64_t seed) {
  static const int kPrimes[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  if (d > std::size(kPrimes)) throw Error("Halton sequence: at most 12 dimensions");
  Rng rng(seed);
  std::vector<double> shift(d);
  for (auto& x : shift) x = rng.uniform(0.0, 1.0);
  std::vector<std::vector<double>> out(n, std::vector<double>(d));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < d; ++k) {
      // The radical inverse of i + 1 in base b: its digits mirrored behind the point.
      const int b = kPrimes[k];
      double f = 1.0, x = 0.0;
      for (std::size_t j = i + 1; j > 0; j /= static_cast<std::size_t>(b)) {
        f /= b;
        x += f * static_cast<double>(j % static_cast<std::size_t>(b));
      }
      out[i][k] = std::fmod(x + shift[k], 1.0);
    }
  return out;
}

std::vector<Genome> quasirandom_trials(const SearchSpace& space, std::size_t n, std::uint64_t run_seed) {
  std::vector<Genome> out;
  for (const auto& u : shifted_halton(n, space.dims.size(), derive_seed(run_seed, "tuning/" + space.method))) out.push_back(space.trial(u));
  return out;
}

}  // namespace evoopt::experiment
