#pragma once
// Where a study stands and how long it has left: a tracker that turns the runs a study
// trains into rates and ETAs (StudyEvents::progress / phase_finished), and the same estimate
// read from a run directory's files (`evoopt status`). The work still to come is what the
// study's stages plan (experiment/stages.hpp): no cost is written here.
//
// Work is counted in training steps and evaluated images: the ETA is the steps left times the
// training seconds per step plus the images left times the evaluation seconds per image, both
// measured on the runs so far, times the wall/run-time ratio (the workers' parallelism).
// Estimates, not promises: the search reuses runs it already has, and break-even stops at the
// first multiple that matches.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "evoopt/common/json_io.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/experiment/work.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/train/trainer.hpp"

namespace evoopt::experiment {

// From a run's config.json (its recorded task sizes).
EvalSizes eval_sizes_of_run(const std::filesystem::path& run_dir);
// A run directory's journal.jsonl, read-only: its complete lines (a run in progress may be
// appending the last one), parsed; each entry's errors name "JOURNAL line N" and the key.
std::vector<JsonView> journal_entries(const std::filesystem::path& journal);

// What the CLI shows while a study runs.
struct ProgressReport {
  Phase phase = Phase::Search;
  eval::RunStage stage = eval::RunStage::Search;  // the runs' stage
  int generation = 0, generations = 0;            // search: 1-based
  int done = 0, total = 0;                        // runs of the current batch (a generation, a sweep rung, ...)
  double runs_per_second = 0;                     // runs trained in this batch per wall second (0: none yet)
  std::optional<double> batch_eta_seconds;
  std::optional<double> study_eta_seconds;  // every phase still to come, at the seconds per step measured so far
};

struct PhaseReport {
  Phase phase = Phase::Search;
  std::int64_t runs = 0;  // runs this process trained in it
  double seconds = 0;     // wall time in this process
};

// Fed by run_study (and run_compare) with the batches it runs and the runs it trains;
// reports progress and a line per finished phase. One object per process and study.
class ProgressTracker {
 public:
  ProgressTracker(const ExperimentConfig& config, const EvalSizes& sizes, bool with_search, std::function<void(const ProgressReport&)> report,
                  std::function<void(const PhaseReport&)> phase_done);
  // The winner (or the genome `evoopt compare` tests) and the search's run count, once known.
  void set_winner(const genome::Genome& g, std::int64_t search_runs);
  // What each task's steps and evaluations cost (held-out tasks' runs counted at theirs).
  void set_task_costs(TaskCosts costs) { costs_ = std::move(costs); }
  const TaskCosts& task_costs() const { return costs_; }
  void start_phase(Phase phase);
  void finish();  // the last phase's report
  // The search: a generation starts / finishes / trains a run.
  void generation_started(int generation, int generations);
  void generation_finished(const ga::GenerationRecord& record);
  void search_run(int done, int total, const train::RunResult& trained);
  // A later stage's batch: `done` of `total` runs (found in the store or trained), each
  // `per_run` work (in the search tasks' units: task_costs().scaled); `trained`: the run this
  // process just trained (nullptr: the batch starts).
  void batch(eval::RunStage stage, int done, int total, const Work& per_run, const train::RunResult* trained);

 private:
  void emit();
  void close_batch();
  void count_trained(const train::RunResult& r, std::int64_t images);
  using Clock = std::chrono::steady_clock;
  ExperimentConfig config_;
  EvalSizes sizes_;
  bool with_search_;
  std::function<void(const ProgressReport&)> report_;
  std::function<void(const PhaseReport&)> phase_done_;
  std::optional<genome::Genome> winner_;
  TaskCosts costs_;
  std::int64_t search_runs_ = 0;
  std::vector<ga::GenerationRecord> finished_;
  ProgressReport now_;
  Clock::time_point batch_t0_{}, phase_t0_{};
  int batch_trained_ = 0;
  std::int64_t phase_trained_ = 0;
  // Runs this process trained: their steps, images, training and evaluation seconds, and the
  // wall seconds of the batches they were trained in; over the study and in this phase (a
  // phase's runs can cost another amount per step: the search's genomes have up to four terms,
  // the baselines one). The phase's rates count once it has trained kPhaseRuns runs.
  struct Rates {
    Work trained;
    double train_seconds = 0, eval_seconds = 0, wall_seconds = 0;
    std::optional<double> seconds_for(const Work& w) const;
  };
  static constexpr std::int64_t kPhaseRuns = 10;
  Rates all_, phase_;
  Clock::time_point last_trained_{};
  Work after_search_done_;  // finished batches after the search (found or trained)
  Work batch_per_run_;
  bool phase_open_ = false;
  bool break_even_over_ = false;
  Work break_even_done_;
};

// Where a run stands, as `evoopt status` and the report show it.
enum class RunState { NotStarted, Searching, AfterSearch, Complete };
const char* run_state_name(RunState s);  // "not started", "searching", "final test / comparison", "complete"

// Where a run directory stands, from its files only (for a run in progress or interrupted).
struct RunStatus {
  std::filesystem::path run_dir;
  RunState state = RunState::NotStarted;
  bool in_use = false;  // another process holds the directory's lock (the run is going on)
  std::string preset, model;
  std::vector<std::string> tasks;
  int generations = 0, generations_done = 0;
  std::optional<double> best_fitness;  // best validation fitness so far
  std::uint64_t best_id = 0;
  int best_generation = 0;
  std::map<eval::RunStage, Work> done_by_stage;  // runs in the journal, by stage
  double run_seconds = 0;                        // their single-run wall seconds, summed
  Work left;                                     // estimated
  int workers = 1;                               // the config's (0: one per core of this machine)
  std::optional<double> eta_seconds;             // left × seconds per step / workers
  std::optional<double> seconds_since_last_run;
  std::optional<double> final_test;  // complete: the winner's mean test fitness
};
// Throws evoopt::Error naming the file (and the key, for a damaged one) when `run_dir` is not
// a run directory or a file it reads is bad: config.json, checkpoint.json, journal.jsonl,
// summary.json (complete), best_genome.json (search done). Writes nothing.
RunStatus read_run_status(const std::filesystem::path& run_dir);

// "14 s", "6 min", "1 h 12 min".
std::string format_duration(double seconds);

}  // namespace evoopt::experiment
