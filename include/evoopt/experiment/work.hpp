#pragma once
// The unit in which a study's stages plan their cost and the tracker measures rates: training
// runs, training steps and evaluated images. A stage's plan and its run sit side by side
// (experiment/stages.hpp, compare.hpp), so the ETA sums what the stages will do.
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "evoopt/data/split.hpp"
#include "evoopt/eval/evaluator.hpp"

namespace evoopt::experiment {

// The study's phases, in the order they run: what the CLI shows and times. Tuning,
// Comparison (the test split at each horizon), Transfer and Attribution are the comparison
// with tuned baselines (experiment/compare.hpp), also the steps of `evoopt compare`.
enum class Phase { Search, FinalTest, BreakEven, Tuning, Comparison, Transfer, Attribution };
inline const char* phase_name(Phase p) {
  switch (p) {
    case Phase::Search:
      return "search";
    case Phase::FinalTest:
      return "final test";
    case Phase::BreakEven:
      return "break-even";
    case Phase::Tuning:
      return "tuning";
    case Phase::Comparison:
      return "comparison";
    case Phase::Transfer:
      return "transfer";
    case Phase::Attribution:
      return "attribution";
  }
  return "?";
}

struct Work {
  std::int64_t runs = 0;
  std::int64_t steps = 0;   // training steps
  std::int64_t images = 0;  // evaluated images (validation or test)
  Work& operator+=(const Work& o) {
    runs += o.runs;
    steps += o.steps;
    images += o.images;
    return *this;
  }
  Work operator*(std::int64_t k) const { return {runs * k, steps * k, images * k}; }
};

// Images one run evaluates, averaged over the tasks: the validation split and the test split.
struct EvalSizes {
  std::int64_t val = 0, test = 0;
};

// What a training step and an evaluation of each task cost relative to the search tasks'
// mean (1), so that the ETA counts a held-out task's runs (an LSTM, an MLP) at their own cost.
// Measured when a study starts (experiment::measure_task_costs); a task not measured costs 1.
struct TaskCosts {
  std::map<std::string, double> step;  // seconds per training step / the search tasks' mean
  std::map<std::string, double> eval;  // seconds to evaluate a split / the search tasks' mean
  double step_of(const std::string& task) const { return of(step, task); }
  double eval_of(const std::string& task) const { return of(eval, task); }
  // `per_task` (seconds of something, by task) divided by its mean over `search_tasks` (those
  // present); empty when none is present.
  static std::map<std::string, double> relative(const std::map<std::string, double>& per_task, const std::vector<std::string>& search_tasks) {
    double sum = 0;
    int n = 0;
    for (const auto& t : search_tasks)
      if (const auto it = per_task.find(t); it != per_task.end()) sum += it->second, ++n;
    std::map<std::string, double> out;
    if (n == 0 || sum <= 0) return out;
    for (const auto& [t, v] : per_task) out[t] = v / (sum / n);
    return out;
  }
  // `w`, work of runs of `task`, in the search tasks' units.
  Work scaled(const std::string& task, const Work& w) const {
    return {w.runs, std::llround(static_cast<double>(w.steps) * step_of(task)), std::llround(static_cast<double>(w.images) * eval_of(task))};
  }

 private:
  static double of(const std::map<std::string, double>& m, const std::string& task) {
    const auto it = m.find(task);
    return it != m.end() ? it->second : 1.0;
  }
};

// Images a run evaluates: the test split, or the validation split (its first `eval_limit`
// images when > 0, a cheap rung).
std::int64_t evaluated_images(const EvalSizes& sizes, data::Split split, std::int64_t eval_limit);
// The mid-run evaluations of a run with a validation curve every `curve_every` steps (the
// points before its last step): (steps − 1) / curve_every, 0 without a curve.
std::int64_t curve_points(std::int64_t steps, std::int64_t curve_every);
// The work of one request: a run, its steps, the images its evaluations score (the final one
// and a curve's).
Work request_work(const EvalSizes& sizes, const eval::RunRequest& r);

}  // namespace evoopt::experiment
