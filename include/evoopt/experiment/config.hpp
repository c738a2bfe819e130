#pragma once
// The resolved configuration of a study: built from defaults, then a preset
// (`quick`), then a TOML file, then command-line flags (flags win). It is
// written to the run directory as config.json and is all `evoopt resume` needs.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/common/limits.hpp"
#include "evoopt/common/schema.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/task/user_task.hpp"

namespace evoopt::experiment {

// How a baseline's hyperparameters are chosen. A study tunes its baselines with Strong or
// Seed (CompareOptions::protocol); a comparison's rows also name RandomSearch (the
// equal-budget search) and LrRetuned (the attribution's learning-rate sweeps).
enum class Protocol { Strong, Seed, RandomSearch, LrRetuned, Quasirandom };
const char* protocol_name(Protocol p);                 // "strong", "seed", "random-search", "lr re-tuned", "quasirandom"
Protocol protocol_from_name(const std::string& name);  // any of the five; throws evoopt::Error

}  // namespace evoopt::experiment

namespace evoopt::schema {
// In a config only the three tuning protocols: strong | seed | quasirandom.
template <>
struct EnumText<experiment::Protocol> {
  static std::string name(experiment::Protocol p) { return experiment::protocol_name(p); }
  static experiment::Protocol parse(const std::string& s);
};
}  // namespace evoopt::schema

namespace evoopt::experiment {

struct CompareOptions {
  bool enabled = true;
  std::vector<std::string> baselines = {"sgd", "adam", "adamw", "rmsprop", "lion", "nadamw", "ademamix", "schedule_free_adamw", "muon"};
  // "quasirandom" (default): `trials` quasi-random trials from each method's published search
  // space, the evolved genome's too, each with AlgoPerf's regime or the evolved genome's
  // (experiment/tuning.hpp), chosen on the search tasks together and on each workload alone;
  // "strong": every baseline tuned over lr_grid × wd_grid × {constant, the winner's schedule
  // + clipping} with successive halving; "seed": the original protocol, lr {1e-4, 1e-3,
  // 1e-2} × weight decay {1e-5, 1e-4, 1e-3}, constant, no clipping.
  Protocol protocol = Protocol::Quasirandom;
  // Half-decades over 1e-4 … 1e-1 (SGD on torch's lr scale); weight decay 0 = off.
  std::vector<double> lr_grid = {1e-4, 3.16227766e-4, 1e-3, 3.16227766e-3, 1e-2, 3.16227766e-2, 1e-1};
  std::vector<double> wd_grid = {0.0, 1e-5, 1e-4, 1e-3};
  bool halving = true;                 // successive halving over steps (strong protocol)
  std::int64_t rung_val_size = 1000;   // validation images scoring the cheap rungs (0 = all)
  bool attribution = true;             // split the gain into update rule vs schedule/clipping/hyperparameters
  int test_seeds = 5;                  // fresh seeds for the test split, disjoint from search seeds
  double horizon_multiple = 2.0;       // the longer-horizon block (evolved vs the strongest tuned baseline): steps × this (0 = off)
  bool equal_budget = false;           // random search for the strongest baseline with the evolution's run count
  std::int64_t equal_budget_runs = 0;  // 0: as many training runs as the evolution spent
  int trials = 16;                     // quasirandom protocol: trials per method
  bool time_to_target = false;         // steps each method needs to reach the target per workload, and a performance profile
  void validate() const;
  // The schema (common/schema.hpp): TOML [compare], config.json "compare".
  template <typename Self, typename Visit>
  static void fields(Self& c, Visit&& visit) {
    using schema::help;
    using schema::kCompare;
    using schema::kEvolve;
    visit("enabled", c.enabled, help("Compare the winner with tuned baselines").flag(kEvolve, "--no-compare"));
    visit("baselines", c.baselines,
          help("Baseline optimizers (genome presets)")
              .one_of("sgd, adam, adamw, rmsprop, signum, lion, nadamw, ademamix, schedule_free_adamw, muon")
              .flag(kEvolve | kCompare, "--methods"));
    visit("protocol", c.protocol,
          help("How baselines are tuned: quasirandom (the same number of quasi-random trials from each method's published search space, "
               "the evolved genome tuned alike, each with AlgoPerf's schedule or the winner's schedule + clipping, chosen per workload too), "
               "strong (lr x weight decay x {constant, the winner's schedule + clipping}, successive halving) or seed (3 x 3 grid, constant lr)")
              .one_of("quasirandom, strong, seed")
              .flag(kEvolve | kCompare, "--baselines"));
    visit("halving", c.halving, help("Successive halving over steps (strong protocol)"));
    visit("rung_val_size", c.rung_val_size, help("Validation images scoring the cheap rungs (0 = all)").at_least(0).limit(limits::kExamples));
    visit("attribution", c.attribution, help("Split the gain into update rule vs schedule/clipping/hyperparameters"));
    visit("lr_grid", c.lr_grid, help("Learning rates of the strong protocol (SGD on torch's lr scale)").at_least(1e-7).at_most(10));
    visit("wd_grid", c.wd_grid, help("Weight decays of the strong protocol (0 = off, else in [1e-8, 0.1])").at_least(0).at_most(0.1));
    visit("test_seeds", c.test_seeds, help("Fresh seeds for the test split, disjoint from search seeds").at_least(2).limit(limits::kSeeds));
    visit("horizon_multiple", c.horizon_multiple,
          help("The longer-horizon block (evolved vs the strongest tuned baseline) trains steps x this (0 = off, else > 1)").at_least(0));
    visit("equal_budget", c.equal_budget, help("Random search for the strongest baseline with the evolution's run count").flag(kEvolve | kCompare));
    visit("equal_budget_runs", c.equal_budget_runs,
          help("Runs of the equal-budget random search (0 = as many as the evolution spent)").at_least(0).limit(limits::kRuns).flag(kCompare));
    visit("trials", c.trials,
          help("Quasi-random trials per method, the evolved genome included (quasirandom protocol)")
              .at_least(1)
              .limit(limits::kTrials)
              .since("16", true));
    visit("time_to_target", c.time_to_target,
          help("Steps each method needs to reach the target validation score on each workload (tuned AdamW's at the full budget), and a "
               "performance profile")
              .flag(kEvolve | kCompare, "--time-to-target")
              .since("false", true));
  }
  static const std::vector<double>& seed_lr_grid();
  static const std::vector<double>& seed_wd_grid();
};

struct ExperimentConfig {
  std::string preset = "default";
  std::uint64_t seed = 0;
  std::vector<std::string> tasks = {"fashion_mnist", "cifar10", "mnist"};
  // Held-out tasks: selection never sees them; the comparison tests every method on them
  // with the hyperparameters chosen on `tasks` (transfer). Empty: no transfer block.
  // The default's are cheap enough for per-workload tuning (16 trials × 10 methods each); the
  // text tasks (jargon's LSTM, ~7 s a run; jargon:transformer, ~9 s) are there to be named.
  std::vector<std::string> transfer_tasks = {"fashion_mnist:mlp", "cartpole"};
  // The user's own tasks ([[task]] tables; paths absolute), named in tasks/transfer_tasks.
  std::vector<task::UserTaskSpec> user_tasks;
  std::string model = "tiny";
  std::int64_t steps = 100;  // training steps per evaluation
  std::int64_t batch_size = 64;
  int workers = 0;  // 0: one per core (on a GPU: 1)
  // Where training runs: "auto" (cuda when libtorch sees a GPU, else cpu), "cpu", "cuda" or
  // "cuda:N". A new study records the resolved device in config.json.
  std::string device = "auto";
  int final_test_seeds = 3;
  bool break_even = true;  // measure how many steps the best seed optimizer needs to match the winner
  // data
  std::string data_dir;  // empty: $EVOOPT_DATA_DIR or ./data
  std::int64_t train_subset = 0;
  std::int64_t val_size = 5000;
  std::uint64_t split_seed = 0;
  int augment = -1;  // -1: task default
  ga::GaOptions ga;
  CompareOptions compare;

  ExperimentConfig();
  // The schema (common/schema.hpp): the TOML file's keys and tables, config.json's, and the
  // evolve/compare flags. `data.*` keys are the [data] table; `ga` and `compare` are tables.
  template <typename Self, typename Visit>
  static void fields(Self& c, Visit&& visit) {
    using schema::help;
    using schema::kCompare;
    using schema::kEvolve;
    const unsigned both = kEvolve | kCompare;
    visit("preset", c.preset, help("Starting values; the file's other keys and flags override them (flag: --preset)").one_of("default, quick"));
    visit("seed", c.seed, help("Run seed").flag(both));
    visit("tasks", c.tasks, help("Search tasks, DATASET[:MODEL] or a [[user_tasks]] name").flag(both));
    visit("transfer_tasks", c.transfer_tasks,
          help("Held-out tasks: never searched or tuned on, tested in the comparison (--no-transfer: none)").flag(both).since("[]"));
    visit("user_tasks", c.user_tasks, help("Tasks of your own (docs/own-task.md)").since("[]"));
    visit("model", c.model, help("Model of image tasks named without one").one_of("tiny, paper, mlp").flag(both));
    visit("steps", c.steps, help("Training steps per run").at_least(1).limit(limits::kSteps).flag(both));
    visit("batch_size", c.batch_size, help("Minibatch size").at_least(1).limit(limits::kBatchSize));
    visit("workers", c.workers,
          help("Worker processes (0 = one per core, on a GPU 1; 1 = train in this process; ignored under mpirun); results do not depend on it")
              .at_least(0)
              .limit(limits::kWorkers)
              .flag(both));
    visit("device", c.device,
          help("Where training runs: auto = cuda when libtorch sees a GPU, else cpu").one_of("auto, cpu, cuda, cuda:N").flag(both).since(R"("cpu")"));
    visit("final_test_seeds", c.final_test_seeds, help("Fresh test seeds for the winner").at_least(1).limit(limits::kSeeds).flag(kEvolve));
    visit("break_even", c.break_even, help("Measure how many steps the best seed optimizer needs to match the winner").flag(kEvolve));
    visit("data.dir", c.data_dir, help("Data directory (\"\" = $EVOOPT_DATA_DIR or ./data)").flag(both, "--data-dir"));
    visit("data.train_subset", c.train_subset, help("Training images per task (0 = all)").at_least(0).limit(limits::kExamples).flag(both));
    visit("data.val_size", c.val_size, help("Validation images carved from the training set").at_least(1).limit(limits::kExamples).flag(both));
    visit("data.split_seed", c.split_seed, help("Seed of the train/validation split"));
    visit("data.augment", c.augment,
          help("Augmentation: -1 = the task's default, 0 = off, 1 = on (TOML: also false / true)").at_least(-1).at_most(1).accepts_bool());
    visit("ga", c.ga, help("The genetic algorithm"));
    visit("compare", c.compare, help("The comparison with tuned baselines"));
  }
  // Old TOML spellings.
  static std::vector<schema::Rename> renamed() { return {{"task", "user_tasks"}}; }
  void apply_preset(const std::string& name);         // "default" | "quick"
  void load_toml(const std::filesystem::path& file);  // throws evoopt::Error naming the file and key
  void validate() const;
  int resolved_workers() const;
  std::string resolved_device() const;         // train::resolve_device(device); throws when it is not available
  std::vector<std::string> all_tasks() const;  // tasks, then transfer_tasks
  nlohmann::json to_json() const;
  static ExperimentConfig from_json(const nlohmann::json& j);  // errors: "/KEY/PATH: problem"
  // A hash of every field that changes what the study computes (all of to_json()
  // except `workers`, which changes only the speed; `device` only when not "cpu" and
  // `transfer_tasks` and `user_tasks` only when not empty, so runs started before the fields
  // existed still resume). Recorded in config.json at the start; `evoopt resume` refuses a
  // config.json that no longer matches it. A new field must keep old fingerprints: give it
  // `since(ABSENT, /*omit=*/true)` in the schema, so it is written only when set.
  std::string fingerprint() const;
};

// The Markdown reference of every config key (docs/config-reference.md; `evoopt config reference`).
std::string config_reference();

}  // namespace evoopt::experiment
