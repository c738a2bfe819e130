#pragma once
// Successive halving: the one evaluator behind the search's racing (ga/) and baseline
// tuning (experiment/compare). Candidates 0..n−1 are scored rung by rung, each rung longer
// or better measured than the one before; after each rung the best go on (fitness
// descending, ties by candidate order, so the cut is a function of the scores alone) and
// the next rung scores only them, in candidate order.
#include <cstddef>
#include <functional>
#include <vector>

namespace evoopt::eval {

struct Halving {
  std::size_t rungs = 0;
  // How many of the `alive` candidates scored at `rung` go on (clamped to [1, alive]).
  std::function<std::size_t(std::size_t rung, std::size_t alive)> keep;
  // Racing: a single candidate left goes on without being scored at the later rungs.
  bool stop_at_one = false;
  // Told the candidates a rung cut (in candidate order), right after the cut.
  std::function<void(std::size_t rung, const std::vector<std::size_t>& cut)> on_cut;
};

// The fitness at `rung` of each `alive` candidate (in that order).
using RungScores = std::function<std::vector<double>(std::size_t rung, const std::vector<std::size_t>& alive)>;

// The candidates alive after the last rung, in candidate order.
std::vector<std::size_t> successive_halving(std::size_t n, const Halving& halving, const RungScores& score);

}  // namespace evoopt::eval
