#pragma once
// Genetic operators: pure functions of their inputs and an explicit RNG, so
// they can be tested over thousands of draws without any training. Every
// genome they return passes validate().
#include <cstddef>
#include <string>
#include <vector>

#include "evoopt/common/rng.hpp"
#include "evoopt/genome/genome.hpp"

namespace evoopt::ga {

struct SearchSpace {
  genome::Vocabulary vocabulary = genome::Vocabulary::Extended;
  int max_terms = genome::Bounds::kDefaultMaxTerms;
  void validate() const;
};

struct MutationOptions {
  double gene_rate = 0.3;        // probability that each scalar gene is nudged
  double structural_rate = 0.3;  // probability of one add / remove / change of a term
  double flip_rate = 0.1;        // probability that each flag gene flips
  double sigma_log10_lr = 0.25;  // Gaussian nudges in log10 space
  double sigma_log10_eps = 0.5;
  double sigma_log10_wd = 0.5;
  double sigma_beta1 = 0.03;           // bounded nudge of β1
  double sigma_log10_1m_beta2 = 0.25;  // β2 is nudged in log10(1−β2)
  double sigma_weight = 0.25;          // multiplicative: w·exp(N(0, σ))
  double sigma_warmup = 0.05;
  double strength = 1.0;  // scales every σ (annealing)
  void validate() const;
};

// A uniformly random genome of the search space: 1..max_terms terms, log-uniform
// learning rate in [1e-4, 1e-1], β1 in [0.5, 0.99], β2 in [0.9, 0.9999], ...
genome::Genome random_genome(const SearchSpace& space, Rng& rng);

// Index of the tournament winner among k uniformly drawn contestants (ties: lowest index).
std::size_t tournament_select(const std::vector<double>& fitness, int k, Rng& rng);

// Single-point crossover on the term lists (cut points in each parent; child =
// a[:i] + b[j:], truncated to max_terms, never empty) and uniform crossover on
// every scalar and flag gene.
genome::Genome crossover(const genome::Genome& a, const genome::Genome& b, const SearchSpace& space, Rng& rng);

// Mutation; `applied` (optional) receives the names of the changes made.
genome::Genome mutate(const genome::Genome& g, const SearchSpace& space, const MutationOptions& options, Rng& rng,
                      std::vector<std::string>* applied = nullptr);

// Clamps every gene into its bounds and ensures at least one non-zero term.
genome::Genome repair(genome::Genome g, const SearchSpace& space, Rng& rng);

}  // namespace evoopt::ga
