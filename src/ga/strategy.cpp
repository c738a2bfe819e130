// GeneticStrategy: the genetic algorithm's proposals (ask) from the scored population it was
// last told (tell). The drivers are in genetic_algorithm.cpp (generational) and async.cpp
// (steady state).
#include <algorithm>
#include <cmath>

#include "evoopt/ga/genetic_algorithm.hpp"

namespace evoopt::ga {

std::int64_t rung_steps(double fraction, std::int64_t full_steps) {
  return std::max<std::int64_t>(1, std::llround(fraction * static_cast<double>(full_steps)));
}

std::vector<std::string> default_seed_presets(genome::Vocabulary vocabulary) {
  std::vector<std::string> p = {"sgd", "adam", "rmsprop", "adamw"};
  if (vocabulary == genome::Vocabulary::Extended) {
    p.push_back("signum");
    p.push_back("lion");
  }
  return p;
}

GeneticStrategy::GeneticStrategy(GaOptions options, std::int64_t full_steps) : options_(std::move(options)), full_steps_(full_steps) {
  if (options_.seed_presets.empty()) options_.seed_presets = default_seed_presets(options_.space.vocabulary);
}

std::vector<Individual> GeneticStrategy::ask_initial(Rng& rng) {
  std::vector<Individual> pop;
  for (const auto& name : options_.seed_presets) {
    if (static_cast<int>(pop.size()) == options_.population) break;
    Individual i;
    i.id = next_id++;
    i.genome = options_.space.rules == RuleSpace::Programs ? genome::program_preset(name) : genome::preset(name);
    i.origin = "seed:" + name;
    pop.push_back(i);
  }
  const std::size_t seeds = pop.size();
  while (static_cast<int>(pop.size()) < options_.population) {
    Individual i;
    i.id = next_id++;
    if (options_.fill == "mutants" && seeds > 0) {
      const Individual& parent = pop[(pop.size() - seeds) % seeds];
      i.genome = mutate(parent.genome, options_.space, options_.mutation, rng, &i.mutations);
      i.parents = {parent.id};
      i.origin = "mutant";
    } else {
      i.genome = random_genome(options_.space, rng);
      i.origin = "random";
    }
    pop.push_back(i);
  }
  return pop;
}

// Selection compares fitness measured at the same budget only: a genome raced out at a rung
// ranks below every genome that went further (its shorter run can score higher than a full
// one: measured on the default study, raced-out genomes became elites and the search lost
// its best). Without racing the score is the fitness.
double GeneticStrategy::selection_score(const Individual& i) const {
  if (i.raced_out_at == 0) return i.fitness;
  int above = 1;  // the full budget
  for (double r : options_.racing.rungs)
    if (rung_steps(r, full_steps_) > i.raced_out_at) ++above;
  return i.fitness - 3.0 * above;  // fitness is in [-1, 1]: levels never overlap
}

void GeneticStrategy::tell(std::vector<Individual> scored) {
  parents_ = std::move(scored);
  score_.clear();
  for (const auto& p : parents_) score_.push_back(selection_score(p));
}

std::vector<Individual> GeneticStrategy::ask_generation(int generation, Rng& rng) {
  std::vector<std::size_t> ranked(parents_.size());
  for (std::size_t k = 0; k < ranked.size(); ++k) ranked[k] = k;
  std::stable_sort(ranked.begin(), ranked.end(), [&](std::size_t a, std::size_t b) {
    return score_[a] > score_[b] || (score_[a] == score_[b] && parents_[a].id < parents_[b].id);
  });
  std::vector<Individual> next;
  for (int e = 0; e < options_.elites; ++e) {
    Individual i = parents_[ranked[static_cast<std::size_t>(e)]];
    i.parents = {i.id};
    i.id = next_id++;
    i.generation = generation;
    i.origin = "elite";
    i.mutations.clear();
    next.push_back(i);
  }
  while (static_cast<int>(next.size()) < options_.population) next.push_back(ask_child(generation, rng));
  return next;
}

Individual GeneticStrategy::ask_child(int generation, Rng& rng) {
  MutationOptions m = options_.mutation;
  if (options_.anneal && options_.generations > 1)
    m.strength *= 1.0 - 0.7 * static_cast<double>(std::min(generation, options_.generations - 1)) / static_cast<double>(options_.generations - 1);
  Individual child;
  const Individual& a = parents_[tournament_select(score_, options_.tournament, rng)];
  genome::Genome g;
  if (rng.bernoulli(options_.crossover_rate)) {
    const Individual& b = parents_[tournament_select(score_, options_.tournament, rng)];
    g = crossover(a.genome, b.genome, options_.space, rng);
    child.parents = {a.id, b.id};
    child.origin = "crossover";
  } else {
    g = a.genome;
    child.parents = {a.id};
    child.origin = "mutation";
  }
  // A program that is not finite or blind to g on the probe is drawn again before any
  // training (at most 16 times), each redraw noted in the child's mutations.
  for (int attempt = 0;; ++attempt) {
    std::vector<std::string> notes;
    genome::Genome c = mutate(g, options_.space, m, rng, &notes);
    if (c.is_program() && attempt < 16) {
      const genome::Probe p = genome::probe(c);
      if (!p.finite || !p.reads_g) {
        child.mutations.push_back(p.finite ? "rejected:blind_to_g" : "rejected:not_finite");
        continue;
      }
    }
    child.genome = std::move(c);
    child.mutations.insert(child.mutations.end(), notes.begin(), notes.end());
    break;
  }
  child.id = next_id++;
  child.generation = generation;
  return child;
}

}  // namespace evoopt::ga
