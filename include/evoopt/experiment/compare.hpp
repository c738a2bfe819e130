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
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/eval/evaluator.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/experiment/stats.hpp"
#include "evoopt/experiment/tuning.hpp"
#include "evoopt/experiment/work.hpp"

namespace evoopt::experiment {

// Evaluator + run store + progress + cancel: what every stage needs to run training runs.
struct RunContext {
  eval::Evaluator& evaluator;
  eval::RunStore& store;
  const std::atomic<bool>* cancel = nullptr;
  // A batch of `total` runs, `batch` (each with its steps), has `done` (found in the store or
  // trained); `trained`: the run this process just trained (nullptr: the batch starts).
  std::function<void(eval::RunStage stage, int done, int total, const std::vector<eval::RunRequest>& batch, const train::RunResult* trained)>
      progress;
  std::int64_t runs_executed = 0;  // runs this process trained (not found in the store)
};

// Runs every request (the run store first), in request order; throws eval::Interrupted.
// `stage` is recorded with each new run (provenance and cost accounting).
std::vector<train::RunResult> run_all(RunContext& ctx, eval::RunStage stage, const std::vector<eval::RunRequest>& requests);

// Seeds for the test split: a function of (run seed, task, index), disjoint
// from the search seeds of the same run (checked, colliding values skipped).
std::vector<std::uint64_t> test_seeds(std::uint64_t run_seed, const std::string& task, int count, int search_seeds);

// The regimes the strong protocol offers against `winner`: constant without clipping,
// and the winner's schedule (warmup + cosine with its warmup fraction; 5% warmup +
// cosine when it has none) with the winner's clip norm (none when it has none).
std::vector<Regime> strong_regimes(const genome::Genome& winner);

// A baseline preset with a learning rate, weight decay and regime. SGD's rate is
// torch's (η·(1−β1), see the sgd preset), so its grid means what it means for
// torch.optim.SGD; sgd/adam/rmsprop use L2 weight decay (torch's weight_decay),
// adamw and lion decoupled.
genome::Genome baseline_genome(const std::string& name, double lr, double wd, const Regime& regime = {});
// The learning rate a grid value means for a genome's rule: η = lr/(1−β1) for the
// sgd preset's EMA momentum (torch's scale), lr otherwise.
double eta_for(const std::string& name, const genome::Genome& g, double lr);

struct SweepEntry {
  double lr = 0, wd = 0;
  Regime regime;
  genome::Genome genome;
  double val_fitness = 0;                              // at the last rung it reached
  std::map<std::string, double> per_task;              // at the last rung it reached
  std::vector<std::pair<std::int64_t, double>> rungs;  // (steps, validation fitness) per rung reached
};

struct BaselineChoice {
  std::string name;
  Protocol protocol = Protocol::Strong;
  std::vector<SweepEntry> sweep;
  std::size_t chosen = 0;  // index into sweep: best validation fitness at the full budget (ties: first)
  // Quasirandom protocol: the trial chosen on each workload's own validation split (search and
  // held-out tasks), and where the search space comes from.
  std::map<std::string, std::size_t> chosen_for;
  std::string space_source;
  std::int64_t runs = 0;   // training runs the tuning needed
  std::int64_t steps = 0;  // training steps the tuning needed
  const SweepEntry& best() const { return sweep.at(chosen); }
};

// Validation fitness of each genome (mean over tasks of mean over search seeds), at
// `steps` (0: the evaluator's budget), scored on the first `eval_limit` validation images
// (0: all).
std::vector<train::Fitness> validation_fitness(RunContext& ctx, eval::RunStage stage, const std::vector<genome::Genome>& genomes,
                                               const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds,
                                               std::int64_t steps = 0, std::int64_t eval_limit = 0);

// The seed protocol: lr × weight decay grid, constant learning rate, no clipping, every
// point at the full budget (`steps`; 0: the evaluator's).
BaselineChoice sweep_baseline(RunContext& ctx, const std::string& name, const std::vector<double>& lr_grid, const std::vector<double>& wd_grid,
                              const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds, std::int64_t steps = 0);

// Successive halving over training steps (eval::successive_halving): every candidate at
// steps/4 (scored on the first `rung_val_size` validation images), the best quarter at
// steps/2 (same), the best third of those at the full budget on the whole validation split,
// where the choice is made. `halving` false: every candidate at the full budget.
struct HalvingOptions {
  bool enabled = true;
  std::int64_t rung_val_size = 500;  // 0: the whole validation split at every rung
};
// The rungs `tune` runs for `n` candidates at `steps`: (steps, validation images, how many
// run it). Also what progress.hpp counts.
struct Rung {
  std::int64_t steps = 0, eval_limit = 0;
  std::size_t keep = 0;
};
std::vector<Rung> halving_rungs(std::size_t n, std::int64_t steps, const HalvingOptions& halving);
void tune(RunContext& ctx, eval::RunStage stage, BaselineChoice& choice, const std::vector<std::string>& tasks, std::uint64_t run_seed,
          int search_seeds, std::int64_t steps, const HalvingOptions& halving);

// The strong protocol: lr grid × weight-decay grid × regimes, tuned with `tune`.
BaselineChoice tune_baseline(RunContext& ctx, const std::string& name, const std::vector<double>& lr_grid, const std::vector<double>& wd_grid,
                             const std::vector<Regime>& regimes, const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds,
                             std::int64_t steps, const HalvingOptions& halving);

// Which row of a comparison a method is.
enum class MethodKind { Evolved, Baseline, RandomSearch, Attribution };
const char* method_kind_name(MethodKind k);                 // "evolved", "baseline", "random-search", "attribution"
MethodKind method_kind_from_name(const std::string& name);  // throws evoopt::Error naming the value

struct MethodResult {
  std::string name;  // "evolved", "adam (tuned)", ...
  MethodKind kind = MethodKind::Evolved;
  genome::Genome genome;
  double val_fitness = 0;
  std::map<std::string, std::vector<double>> test;     // per task: fitness per test seed (diverged = −1)
  std::vector<double> overall;                         // per seed: mean over tasks
  std::map<std::string, std::string> parameter_split;  // per task, where the optimizer splits the parameters (Muon)
  std::map<std::string, genome::Genome> task_genome;   // tuned per workload: the genome each task was tested with
};

struct HorizonResult {
  std::int64_t steps = 0;
  std::vector<MethodResult> methods;  // evolved first
};

// How much of the evolved genome W's gain over the strongest tuned baseline B comes from
// its update rule and how much from its schedule, clipping and hyperparameters:
//   A1 = W's rule (terms, β1, β2, ε, bias correction) with B's schedule, clipping and
//        weight decay, learning rate re-tuned on validation;
//   A2 = B's rule with W's schedule, clipping and weight decay, lr re-tuned likewise.
// Per test seed, W − B = (A1 − B) + (W − A1) = (W − A2) + (A2 − B): the first term of each
// pair is the update rule's share (under B's setting, under W's), the second the setting's.
struct Attribution {
  std::string baseline;                        // B
  BaselineChoice rule_in_baseline_setting;     // A1's lr sweep
  BaselineChoice baseline_in_evolved_setting;  // A2's lr sweep
  MethodResult a1, a2;                         // on the test split at the search horizon
  std::int64_t steps = 0;
};

// Time to target, as MLCommons AlgoPerf scores training algorithms: per workload (search and
// held-out tasks), the target is the validation score tuned AdamW reaches at the full budget
// (the strongest tuned baseline's when AdamW is not a baseline), and each method's time is the
// first step, every `every` steps, where its validation score (mean over the fresh seeds)
// reaches it. Each method trains with its comparison setting (its per-workload choice under
// the quasirandom protocol).
struct TimeToTarget {
  std::vector<std::string> workloads;
  std::string target_method;
  std::int64_t steps = 0, every = 0;
  std::map<std::string, double> target;                                               // workload → validation score
  std::vector<std::string> methods;                                                   // evolved first
  std::map<std::string, std::map<std::string, std::optional<std::int64_t>>> reached;  // method → workload → step (none: not reached)
  std::map<std::string, std::map<std::string, std::vector<std::pair<std::int64_t, double>>>> curve;  // method → workload → mean curve
  // The performance profile (Dolan & Moré 2002, as AlgoPerf uses it): the share of workloads on
  // which `method` reaches the target within τ times the fastest method's steps.
  double profile(const std::string& method, double tau) const;
};
// The step at which a mean curve first reaches `target` (none: never).
std::optional<std::int64_t> steps_to_target(const std::vector<std::pair<std::int64_t, double>>& curve, double target);

struct Comparison {
  Protocol protocol = Protocol::Strong;  // how the baselines were tuned: Strong or Seed
  std::vector<std::string> tasks;
  // Held-out tasks (transfer): the same methods with the hyperparameters chosen on `tasks`,
  // on the test split at the same horizons; selection and tuning never saw these tasks.
  std::vector<std::string> transfer_tasks;
  std::vector<HorizonResult> transfer;
  std::map<std::string, std::string> labels;                // task → display label with provenance (search and transfer tasks)
  std::map<std::string, std::vector<std::uint64_t>> seeds;  // test seeds per task (search and transfer tasks)
  std::vector<BaselineChoice> baselines;
  std::optional<BaselineChoice> random_search;  // equal-budget option
  std::int64_t random_search_runs = 0;
  std::vector<HorizonResult> horizons;
  std::optional<Attribution> attribution;
  // Quasirandom protocol: the evolved genome's own trials (the comparison's evolved row is
  // their choice), and every method tuned on each workload alone (search and held-out tasks),
  // tested there on the same fresh seeds at the search horizon.
  std::optional<BaselineChoice> evolved_tuning;
  std::vector<std::string> workload_tasks;
  std::vector<MethodResult> per_workload;  // evolved first
  std::optional<TimeToTarget> time_to_target;
  // Next-token tasks (fitness = exp(−loss)): comparison.json adds each method's test loss
  // (−ln fitness) and perplexity (1/fitness) per seed for them.
  std::set<std::string> next_token_tasks;
  nlohmann::json to_json() const;
  std::string to_csv() const;
  // The attribution's rows: (what, which difference, paired difference); empty without one.
  struct AttributionRow {
    std::string part;  // "total", "update rule", "schedule/clipping/hyperparameters"
    std::string how;   // "W − B", "A1 − B (in B's setting)", ...
    PairedDifference diff;
  };
  std::vector<AttributionRow> attribution_rows() const;
  // The strongest tuned baseline: best validation fitness (ties: the first).
  std::size_t strongest() const;
};

struct CompareInputs {
  genome::Genome evolved;
  double evolved_val_fitness = 0;
  std::vector<std::string> tasks;
  std::vector<std::string> transfer_tasks;  // held-out: tested, never tuned on
  std::map<std::string, std::string> labels;
  std::uint64_t run_seed = 0;
  int search_seeds = 1;
  std::int64_t steps = 0;
  std::int64_t evolution_runs = 0;  // for the equal-budget random search
  CompareOptions options;
  std::set<std::string> next_token_tasks;  // see Comparison::next_token_tasks
};

// Whether a config's task is scored as next-token prediction (a text dataset, or a [[task]]
// of kind next_token); false for a name it does not know.
bool is_next_token_task(const ExperimentConfig& config, const std::string& task);

// The inputs a study's config gives the comparison of `evolved`.
CompareInputs compare_inputs(const ExperimentConfig& config, const genome::Genome& evolved, double evolved_val_fitness,
                             const std::map<std::string, std::string>& labels, std::int64_t evolution_runs);

// The comparison's phases, in the order they run: Tuning (every baseline on validation,
// then the equal-budget random search), Comparison (the test split at each horizon),
// Transfer (the held-out tasks, with the settings tuned on the search tasks) and
// Attribution. Each is a stage of the study; `evoopt compare` runs them in turn.
std::vector<Phase> comparison_phases(const CompareOptions& o, bool has_transfer);
// Runs one phase, filling its part of `c` (Tuning first: the later phases read its choices).
void run_comparison_phase(Phase phase, RunContext& ctx, const CompareInputs& in, Comparison& c);
// Every phase in turn.
Comparison run_comparison(RunContext& ctx, const CompareInputs& in);

// Validation runs of one genome in the search's setting: its tasks × search seeds.
std::int64_t runs_per_genome(const ExperimentConfig& c);

// The work run_comparison does (`evoopt compare`, or the study's comparison stage): baseline
// tuning with its halving rungs, the equal-budget random search, the test runs at each
// horizon, transfer, the gain attribution. `evolved`: its schedule decides the baselines'
// regimes (nullptr: not known yet, the larger grid is counted). `evolution_runs`: the
// equal-budget search's default size. Test runs of the evolved genome on seeds the final
// test already ran are not counted. `after_final_test`: in a study (the final test ran the
// evolved genome on the first test seeds, and the search scored it on validation); false:
// `evoopt compare`. Transfer runs are counted at their tasks' `costs` (in the search tasks'
// units).
Work plan_comparison(const ExperimentConfig& c, const EvalSizes& sizes, const genome::Genome* evolved, std::int64_t evolution_runs,
                     bool after_final_test, const TaskCosts& costs = {});
// One phase's share of it (the sum over comparison_phases is plan_comparison).
Work plan_comparison_phase(Phase phase, const ExperimentConfig& c, const EvalSizes& sizes, const genome::Genome* evolved, std::int64_t evolution_runs,
                           bool after_final_test, const TaskCosts& costs = {});

// Writes DIR/comparison.json and DIR/comparison.csv atomically.
void write_comparison(const Comparison& c, const std::filesystem::path& dir);

}  // namespace evoopt::experiment
