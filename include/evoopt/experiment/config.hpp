#pragma once
// The resolved configuration of a study: built from defaults, then a preset
// (`quick`), then a TOML file, then command-line flags (flags win). It is
// written to the run directory as config.json and is all `evoopt resume` needs.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/task/user_task.hpp"

namespace evoopt::experiment {

struct CompareOptions {
  bool enabled = true;
  std::vector<std::string> baselines = {"sgd", "adam", "rmsprop", "adamw", "lion"};
  // "strong" (default): every baseline tuned over lr_grid × wd_grid × {constant, the
  // winner's schedule + clipping} with successive halving; "seed": the original
  // protocol, lr {1e-4, 1e-3, 1e-2} × weight decay {1e-5, 1e-4, 1e-3}, constant, no clipping.
  std::string protocol = "strong";
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
  void validate() const;
  // The one field list: `visit(key, member)` for every field, under the key that the TOML
  // [compare] table and config.json's "compare" both use (load_toml, to_json, from_json).
  template <typename Self, typename Visit>
  static void fields(Self& c, Visit&& visit) {
    visit("enabled", c.enabled);
    visit("baselines", c.baselines);
    visit("protocol", c.protocol);
    visit("halving", c.halving);
    visit("rung_val_size", c.rung_val_size);
    visit("attribution", c.attribution);
    visit("lr_grid", c.lr_grid);
    visit("wd_grid", c.wd_grid);
    visit("test_seeds", c.test_seeds);
    visit("horizon_multiple", c.horizon_multiple);
    visit("equal_budget", c.equal_budget);
    visit("equal_budget_runs", c.equal_budget_runs);
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
  std::vector<std::string> transfer_tasks = {"fashion_mnist:mlp", "jargon"};
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
  void apply_preset(const std::string& name);         // "default" | "quick"
  void load_toml(const std::filesystem::path& file);  // throws evoopt::Error naming the file and key
  void validate() const;
  int resolved_workers() const;
  std::string resolved_device() const;         // train::resolve_device(device); throws when it is not available
  std::vector<std::string> all_tasks() const;  // tasks, then transfer_tasks
  nlohmann::json to_json() const;
  static ExperimentConfig from_json(const nlohmann::json& j);
  // A hash of every field that changes what the study computes (all of to_json()
  // except `workers`, which changes only the speed; `device` only when not "cpu" and
  // `transfer_tasks` and `user_tasks` only when not empty, so runs started before the fields existed still
  // resume). Recorded in config.json at the
  // start; `evoopt resume` refuses a config.json that no longer matches it.
  std::string fingerprint() const;
};

}  // namespace evoopt::experiment
