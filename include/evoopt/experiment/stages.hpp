#pragma once
// The study behind `evoopt evolve` as a pipeline of stages: the search, then the winner's
// final test, break-even and the comparison with tuned baselines in its phases (tuning, the
// test split at each horizon, transfer, attribution). Each stage has plan() (the
// runs, steps and evaluated images it will train) and run(); a stage's plan is computed from
// the same requests its run makes, so the ETA (ProgressTracker, `evoopt status`) sums what
// the stages will do and no cost is written twice.
//
// The report is not a stage: it trains nothing, and the report layer sits above this one. It
// is written from the pipeline's events (StudyEvents::outputs_written, after every generation
// and at the end), so experiment does not include report.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "evoopt/eval/evaluator.hpp"
#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/experiment/stats.hpp"
#include "evoopt/experiment/work.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/genome/genome.hpp"

namespace evoopt::experiment {

struct TaskTest {
  std::string label;
  std::vector<std::uint64_t> seeds;
  std::vector<double> accuracy;  // fitness per seed (diverged = −1)
  Summary summary;
};

struct FinalTest {
  std::map<std::string, TaskTest> per_task;
  Summary overall;  // per-seed mean over tasks
};

struct BreakEven {
  std::string baseline;  // the best seed optimizer of generation 0
  double baseline_val_fitness = 0;
  double winner_val_fitness = 0;
  double improvement = 0;                           // winner − baseline (validation fitness)
  std::optional<double> multiple_needed;            // steps multiple at which the baseline matches the winner
  std::vector<std::pair<double, double>> measured;  // (multiple, baseline validation fitness)
  std::string verdict;                              // one line, with the number of runs
};

// What a stage's plan depends on besides the config.
struct PlanInputs {
  EvalSizes sizes;
  const genome::Genome* winner = nullptr;  // nullptr: not known yet (the plan counts the larger case)
  std::int64_t search_runs = 0;            // the search's training runs (the equal-budget search's size)
  TaskCosts costs;                         // held-out tasks' runs at their own cost
};

// What the stages share: their inputs and the results they fill in.
struct StageState {
  const ExperimentConfig& config;
  std::filesystem::path run_dir;
  std::map<std::string, std::string> labels;  // task → display label
  ga::GaOutcome search;                       // the finished search (winner, its validation fitness, runs)
  FinalTest final_test;
  std::optional<BreakEven> break_even;
  std::optional<Comparison> comparison;  // once every phase of the comparison has run
  Comparison comparison_so_far;          // what the comparison's phases have filled in
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual Phase phase() const = 0;
  virtual Work plan(const ExperimentConfig& c, const PlanInputs& in) const = 0;
  // Trains through `ctx` (the run store first); throws eval::Interrupted when cancelled.
  virtual void run(RunContext& ctx, StageState& state) const = 0;
};

// The stages after the search, in order, that `c` asks for.
std::vector<std::unique_ptr<Stage>> stages_after_search(const ExperimentConfig& c);

// The search: the genetic algorithm (generational or steady state, `c.ga`) on the validation
// split, checkpointed after every generation; it fills StageState::search. Its progress is
// reported through `events` (generation by generation), not RunContext::progress. Its plan
// is the whole search (plan_search_left with nothing done). Throws eval::Interrupted when
// cancelled, after the checkpoint of the last finished generation is written.
std::unique_ptr<Stage> search_stage(ga::GaEvents events);

// The whole study: the search, then stages_after_search(c).
std::vector<std::unique_ptr<Stage>> study_stages(const ExperimentConfig& c, ga::GaEvents search_events);

// The study's work after the search: the sum of those stages' plans.
Work plan_after_search(const ExperimentConfig& c, const PlanInputs& in);

// The search's work in the generations after `done` (records of the finished ones, in
// order): each later generation as the mean of the finished ones after the first (new runs,
// steps racing saved), or, with none finished yet, the whole population in generation 0 and
// population − elites new genomes after it. `one_running`: the generation after `done` is
// running and not counted.
Work plan_search_left(const ExperimentConfig& c, const EvalSizes& sizes, const std::vector<ga::GenerationRecord>& done, bool one_running = false);

// Break-even's steps multiples, tried in order until the baseline matches the winner.
inline constexpr double kBreakEvenMultiples[] = {1.5, 2.0, 3.0};

}  // namespace evoopt::experiment
