#pragma once
// The whole study behind `evoopt evolve`: evolve on validation → test the
// winner once on fresh seeds → (optionally) compare with tuned baselines →
// outputs in one run directory. Resumable at any point: the GA has its
// checkpoint, and every stage's runs are in the one journal (journal.jsonl).
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/experiment/progress.hpp"
#include "evoopt/experiment/stages.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"

namespace evoopt::experiment {

struct StudyEvents {
  ga::GaEvents ga;                                         // generation lines (progress below reports the runs)
  std::function<void(const ProgressReport&)> progress;     // after each batch starts and each run
  std::function<void(const PhaseReport&)> phase_finished;  // search, final test, break-even, comparison
  std::function<void(const std::string& message)> message;
  // After every generation and at the end, once the run directory's outputs are written
  // (report::with_live_report rewrites report.html here).
  std::function<void(const std::filesystem::path& run_dir)> outputs_written;
};

struct Cost {
  std::int64_t search_runs = 0, search_steps = 0;
  double search_train_seconds = 0;               // sum of single-threaded run times
  std::int64_t other_runs = 0, other_steps = 0;  // final test, break-even, comparison
  double wall_seconds = 0;                       // this process
  double cpu_seconds = 0;                        // this process and its worker processes (user + system)
};

struct StudyResult {
  bool completed = false;
  std::filesystem::path run_dir;
  ga::GaOutcome ga;
  FinalTest final_test;
  std::optional<BreakEven> break_even;
  std::optional<Comparison> comparison;
  Cost cost;
  nlohmann::json summary_json() const;
};

// Display label of a task's data with provenance: "MNIST", "CIFAR-10 (JPEG mirror)".
std::string display_label(const std::string& task, const std::string& provenance_label);

// The config's tasks and (when it compares) its transfer tasks, loaded from its data dir,
// with their display labels.
struct LoadedTasks {
  std::filesystem::path data_dir;
  task::TaskOptions options;  // how they were loaded (worker processes load them the same way)
  std::map<std::string, task::Task> tasks;
  std::map<std::string, std::string> labels;
};
LoadedTasks load_tasks(const ExperimentConfig& config);

// The evaluator of a study or `evoopt compare` (eval::make_evaluator with the config's
// workers and study_budget). `use_mpi` false: local workers even under MPI (benchmarks).
std::unique_ptr<eval::Evaluator> make_study_evaluator(const ExperimentConfig& config, const LoadedTasks& loaded, bool use_mpi = true);

// What each loaded task's training step and the evaluation of its test split cost relative to
// the search tasks' mean: each task trained briefly in this process after an untimed warm-up
// run of every task (Adam, 2 and 10 steps, a step's cost the difference of the two; scored
// on one evaluation batch of its test split; about 1.5 s for the default study's five tasks).
// The ETA's prior: for the search tasks, which a generation trains one after the other, and
// for the held-out tasks, whose runs come last.
TaskCosts measure_task_costs(const ExperimentConfig& config, const LoadedTasks& loaded);

// The training budget of every run a study (or `evoopt compare`) makes: one place, so
// their run-store fingerprints agree.
train::Budget study_budget(const ExperimentConfig& config);

// `resume`: continue the run in `run_dir` with its stored config; of the given one only
// `workers` is taken, when >= 0 (it changes the speed, never a result).
StudyResult run_study(const ExperimentConfig& config, const std::filesystem::path& run_dir, bool resume, const StudyEvents& events,
                      const std::atomic<bool>* cancel);

// `evoopt compare`: `genome` against baselines tuned as `config.compare` says, with the
// run store in `out_dir` (the same call continues an interrupted one). Checks the inputs
// and loads the data before creating `out_dir`; writes comparison.json/csv there.
// Returns nullopt when stopped by `cancel`.
std::optional<Comparison> run_compare(const ExperimentConfig& config, const genome::Genome& genome, const std::filesystem::path& out_dir,
                                      const StudyEvents& events, const std::atomic<bool>* cancel);

// Loads RUN_DIR/config.json.
ExperimentConfig load_run_config(const std::filesystem::path& run_dir);

}  // namespace evoopt::experiment
