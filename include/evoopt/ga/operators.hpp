#pragma once
// Genetic operators: pure functions of their inputs and an explicit RNG, so
// they can be tested over thousands of draws without any training. Every
// genome they return passes validate().
#include <cstddef>
#include <string>
#include <vector>

#include "evoopt/common/rng.hpp"
#include "evoopt/common/schema.hpp"
#include "evoopt/genome/genome.hpp"

namespace evoopt::ga {
// What the search evolves: weighted sums of terms, or programs (genome/program.hpp).
enum class RuleSpace { Terms, Programs };
const char* rule_space_name(RuleSpace s);  // "terms", "programs"
RuleSpace rule_space_from_name(const std::string& name);
}  // namespace evoopt::ga

namespace evoopt::schema {
template <>
struct EnumText<ga::RuleSpace> {
  static std::string name(ga::RuleSpace s) { return ga::rule_space_name(s); }
  static ga::RuleSpace parse(const std::string& s) { return ga::rule_space_from_name(s); }
};
// A vocabulary is its name in config files ("seed" | "extended").
template <>
struct EnumText<genome::Vocabulary> {
  static std::string name(genome::Vocabulary v) { return genome::vocabulary_name(v); }
  static genome::Vocabulary parse(const std::string& s) { return genome::vocabulary_from_name(s); }
};
}  // namespace evoopt::schema

namespace evoopt::ga {

struct SearchSpace {
  genome::Vocabulary vocabulary = genome::Vocabulary::Extended;
  int max_terms = genome::Bounds::kDefaultMaxTerms;
  // Programs instead of weighted sums of terms, at most max_statements long; random
  // genomes are then weighted sums compiled to programs.
  RuleSpace rules = RuleSpace::Terms;
  int max_statements = 20;
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
  // The schema (common/schema.hpp): TOML [ga.mutation], config.json "mutation". `strength`,
  // the annealing factor, is set per generation and not configured.
  template <typename Self, typename Visit>
  static void fields(Self& m, Visit&& visit) {
    using schema::help;
    visit("gene_rate", m.gene_rate, help("Probability that each scalar gene is nudged").at_least(0).at_most(1));
    visit("structural_rate", m.structural_rate, help("Probability of one add / remove / change of a term").at_least(0).at_most(1));
    visit("flip_rate", m.flip_rate, help("Probability that each flag gene flips").at_least(0).at_most(1));
    visit("sigma_log10_lr", m.sigma_log10_lr, help("Gaussian nudge of the learning rate, in log10").at_least(0));
    visit("sigma_log10_eps", m.sigma_log10_eps, help("Gaussian nudge of ε, in log10").at_least(0));
    visit("sigma_log10_wd", m.sigma_log10_wd, help("Gaussian nudge of the weight decay, in log10").at_least(0));
    visit("sigma_beta1", m.sigma_beta1, help("Bounded Gaussian nudge of β1").at_least(0));
    visit("sigma_log10_1m_beta2", m.sigma_log10_1m_beta2, help("Gaussian nudge of β2, in log10(1 − β2)").at_least(0));
    visit("sigma_weight", m.sigma_weight, help("Multiplicative nudge of a term's weight: w·exp(N(0, σ))").at_least(0));
    visit("sigma_warmup", m.sigma_warmup, help("Gaussian nudge of the warmup fraction").at_least(0));
  }
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

// A program's structural mutation, one move: change an operation, an operand or a constant,
// insert a random statement or delete one. A move that leaves an invalid program (a
// temporary read before it is written, u no longer written or blind to g, longer than
// `max_statements`) is drawn again, at most 32 times; then the program is returned as it is.
// `applied` receives the move's name.
genome::Program mutate_program(const genome::Program& p, int max_statements, Rng& rng, std::vector<std::string>* applied = nullptr);
// One-point crossover of two programs (a's first i statements, then b's from j), drawn again
// while invalid or too long (at most 32 times; then a).
genome::Program crossover_programs(const genome::Program& a, const genome::Program& b, int max_statements, Rng& rng);

}  // namespace evoopt::ga
