#include "evoopt/eval/halving.hpp"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <utility>

namespace evoopt::eval {

std::vector<std::size_t> successive_halving(std::size_t n, const Halving& halving, const RungScores& score) {
  std::vector<std::size_t> alive(n);
  std::iota(alive.begin(), alive.end(), std::size_t{0});
  for (std::size_t rung = 0; rung < halving.rungs; ++rung) {
    if (alive.empty() || (halving.stop_at_one && alive.size() <= 1)) break;
    const std::vector<double> fitness = score(rung, alive);
    if (fitness.size() != alive.size()) throw std::logic_error("successive_halving: one score per alive candidate expected");
    const std::size_t keep = std::clamp<std::size_t>(halving.keep(rung, alive.size()), 1, alive.size());
    if (keep == alive.size()) continue;
    std::vector<std::pair<double, std::size_t>> ranked;  // (fitness, position in alive)
    for (std::size_t k = 0; k < alive.size(); ++k) ranked.emplace_back(fitness[k], k);
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<bool> stays(alive.size(), false);
    for (std::size_t k = 0; k < keep; ++k) stays[ranked[k].second] = true;
    std::vector<std::size_t> next, cut;
    for (std::size_t k = 0; k < alive.size(); ++k) (stays[k] ? next : cut).push_back(alive[k]);
    alive = std::move(next);
    if (halving.on_cut) halving.on_cut(rung, cut);
  }
  return alive;
}

}  // namespace evoopt::eval
