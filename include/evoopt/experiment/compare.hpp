#pragma once
// Fair comparison with tuned baselines: each baseline gets a learning-rate ×
// weight-decay sweep chosen by validation fitness (never test); the evolved
// genome and the chosen baselines are then evaluated on the test split with
// the same fresh seeds, paired per seed, at the search horizon and at a longer
// one. Optionally the strongest baseline also gets a random search with as
// many training runs as the evolution spent.
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/eval/evaluator.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/experiment/stats.hpp"

namespace evoopt::experiment {

// Thrown when a study stage is stopped by its cancel flag (Ctrl-C).
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

// Evaluator + run store + progress + cancel: what every stage needs to run training runs.
struct RunContext {
  eval::Evaluator& evaluator;
  eval::RunStore& store;
  const std::atomic<bool>* cancel = nullptr;
  std::function<void(const std::string& stage, int done, int total)> progress;
  std::int64_t runs_executed = 0;  // runs this process trained (not found in the store)
};

// Runs every request (the run store first), in request order; throws Interrupted.
// `stage` is recorded with each new run (provenance and cost accounting).
std::vector<train::RunResult> run_all(RunContext& ctx, const std::string& stage, const std::vector<eval::RunRequest>& requests);

// Seeds for the test split: a function of (run seed, task, index), disjoint
// from the search seeds of the same run (checked, colliding values skipped).
std::vector<std::uint64_t> test_seeds(std::uint64_t run_seed, const std::string& task, int count, int search_seeds);

// A baseline preset with the sweep's learning rate and weight decay. SGD's
// rate is torch's (η·(1−β1), see the sgd preset), so its grid means what it
// means for torch.optim.SGD; sgd/adam/rmsprop use L2 weight decay (torch's
// weight_decay), adamw and lion decoupled.
genome::Genome baseline_genome(const std::string& name, double lr, double wd);

struct SweepEntry {
  double lr = 0, wd = 0;
  genome::Genome genome;
  double val_fitness = 0;
  std::map<std::string, double> per_task;
};

struct BaselineChoice {
  std::string name;
  std::vector<SweepEntry> sweep;
  std::size_t chosen = 0;  // index into sweep: best validation fitness (ties: first)
  const SweepEntry& best() const { return sweep.at(chosen); }
};

// Validation fitness of each genome (mean over tasks of mean over search seeds).
std::vector<train::Fitness> validation_fitness(RunContext& ctx, const std::string& stage, const std::vector<genome::Genome>& genomes,
                                               const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds);

BaselineChoice sweep_baseline(RunContext& ctx, const std::string& name, const std::vector<double>& lr_grid, const std::vector<double>& wd_grid,
                              const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds);

struct MethodResult {
  std::string name;  // "evolved", "adam (tuned)", ...
  std::string kind;  // evolved | baseline | random-search
  genome::Genome genome;
  double val_fitness = 0;
  std::map<std::string, std::vector<double>> test;  // per task: fitness per test seed (diverged = −1)
  std::vector<double> overall;                      // per seed: mean over tasks
};

struct HorizonResult {
  std::int64_t steps = 0;
  std::vector<MethodResult> methods;  // evolved first
};

struct Comparison {
  std::vector<std::string> tasks;
  std::map<std::string, std::string> labels;  // task → display label with provenance
  std::map<std::string, std::vector<std::uint64_t>> seeds;
  std::vector<BaselineChoice> baselines;
  std::optional<BaselineChoice> random_search;  // equal-budget option
  std::int64_t random_search_runs = 0;
  std::vector<HorizonResult> horizons;
  nlohmann::json to_json() const;
  std::string to_csv() const;
};

struct CompareInputs {
  genome::Genome evolved;
  double evolved_val_fitness = 0;
  std::vector<std::string> tasks;
  std::map<std::string, std::string> labels;
  std::uint64_t run_seed = 0;
  int search_seeds = 1;
  std::int64_t steps = 0;
  std::int64_t evolution_runs = 0;  // for the equal-budget random search
  CompareOptions options;
};

// The inputs a study's config gives the comparison of `evolved`.
CompareInputs compare_inputs(const ExperimentConfig& config, const genome::Genome& evolved, double evolved_val_fitness,
                             const std::map<std::string, std::string>& labels, std::int64_t evolution_runs);

Comparison run_comparison(RunContext& ctx, const CompareInputs& in);

// Writes DIR/comparison.json and DIR/comparison.csv atomically.
void write_comparison(const Comparison& c, const std::filesystem::path& dir);

}  // namespace evoopt::experiment
