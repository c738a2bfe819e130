#include "evoopt/experiment/config.hpp"

#include <limits>
#include <set>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "evoopt/common/checked_json.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/limits.hpp"
#include "evoopt/common/run_dir.hpp"
#include "evoopt/common/schema.hpp"
#include "evoopt/common/schema_reference.hpp"
#include "evoopt/common/schema_toml.hpp"
#include "evoopt/data/checksum.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/eval/evaluator.hpp"
#include "evoopt/task/task.hpp"

namespace evoopt::experiment {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr std::pair<Protocol, const char*> kProtocolNames[] = {{Protocol::Strong, "strong"},
                                                               {Protocol::Seed, "seed"},
                                                               {Protocol::RandomSearch, "random-search"},
                                                               {Protocol::LrRetuned, "lr re-tuned"},
                                                               {Protocol::Quasirandom, "quasirandom"}};
}  // namespace

const char* protocol_name(Protocol p) {
  for (const auto& [protocol, name] : kProtocolNames)
    if (protocol == p) return name;
  throw Error("unknown protocol");
}

Protocol protocol_from_name(const std::string& name) {
  for (const auto& [protocol, n] : kProtocolNames)
    if (name == n) return protocol;
  throw Error("protocol '" + name + "' is not one of strong, seed, random-search, lr re-tuned, quasirandom");
}

const std::vector<double>& CompareOptions::seed_lr_grid() {
  static const std::vector<double> g = {1e-4, 1e-3, 1e-2};
  return g;
}
const std::vector<double>& CompareOptions::seed_wd_grid() {
  static const std::vector<double> g = {1e-5, 1e-4, 1e-3};
  return g;
}

void CompareOptions::validate() const {
  for (const auto& b : baselines) genome::preset(b);
  if (baselines.empty()) throw Error("compare: no baselines given");
  if (protocol != Protocol::Strong && protocol != Protocol::Seed && protocol != Protocol::Quasirandom)
    throw Error(fmt::format("compare: baseline protocol '{}' is not one of strong, seed, quasirandom", protocol_name(protocol)));
  if (rung_val_size < 0) throw Error("compare: rung validation size must be >= 0 (0 = all), got " + std::to_string(rung_val_size));
  if (trials < 1) throw Error("compare: trials must be >= 1, got " + std::to_string(trials));
  limits::check("compare: trials", static_cast<std::int64_t>(trials), limits::kTrials);
  if (lr_grid.empty() || wd_grid.empty()) throw Error("compare: the learning-rate and weight-decay grids must not be empty");
  for (double lr : lr_grid)
    if (!(lr > 0) || std::log10(lr) < genome::Bounds::kLog10LrMin || std::log10(lr) > genome::Bounds::kLog10LrMax)
      throw Error("compare: learning rate " + std::to_string(lr) + " is outside [1e-7, 10]");
  for (double wd : wd_grid)
    if (!(wd >= 0) || (wd > 0 && (std::log10(wd) < genome::Bounds::kLog10WdMin || std::log10(wd) > genome::Bounds::kLog10WdMax)))
      throw Error("compare: weight decay " + std::to_string(wd) + " is outside {0} ∪ [1e-8, 0.1]");
  if (test_seeds < 2) throw Error("compare: test seeds must be >= 2 for a confidence interval, got " + std::to_string(test_seeds));
  if (horizon_multiple != 0 && !(horizon_multiple > 1)) throw Error("compare: horizon multiple must be > 1 (or 0 = off)");
  if (equal_budget_runs < 0) throw Error("compare: equal-budget runs must be >= 0");
  limits::check("compare: test seeds", static_cast<std::int64_t>(test_seeds), limits::kSeeds);
  limits::check("compare: rung validation size", rung_val_size, limits::kExamples);
  limits::check("compare: equal-budget runs", equal_budget_runs, limits::kRuns);
}

ExperimentConfig::ExperimentConfig() {
  ga.population = 20;
  ga.generations = 15;
  ga.tasks = tasks;
}

void ExperimentConfig::apply_preset(const std::string& name) {
  if (name == "default") {
    *this = ExperimentConfig();
    return;
  }
  if (name != "quick") throw Error("unknown preset '" + name + "' (allowed: default, quick)");
  *this = ExperimentConfig();
  preset = "quick";
  // A first look in about two minutes on two cores: every size shrunk.
  ga.population = 8;
  ga.generations = 4;
  steps = 50;
  train_subset = 10000;
  val_size = 1000;
  final_test_seeds = 3;
  compare.lr_grid = {1e-3, 3.16227766e-3, 1e-2, 3.16227766e-2};
  compare.wd_grid = {0.0, 1e-4};
  compare.test_seeds = 3;
  compare.horizon_multiple = 0;  // no longer-horizon block: it would cost more than the rest of the comparison
  compare.trials = 4;
  compare.baselines = {"sgd", "adamw", "schedule_free_adamw", "muon"};
  transfer_tasks = {"fashion_mnist:mlp"};
}

void ExperimentConfig::load_toml(const std::filesystem::path& path) {
  const std::string file = path.string();
  toml::table tbl;
  const std::string text = read_text_file(path, limits::kConfigFileBytes);
  try {
    tbl = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    throw Error(file + ": " + std::string(e.description()) + " (line " + std::to_string(e.source().begin.line) + ")");
  }
  // The preset first: the file's other keys override it, wherever they stand.
  if (auto p = tbl["preset"]) apply_preset(schema::toml_scalar<std::string>(*p.node(), "preset", file));
  const std::size_t had_user_tasks = user_tasks.size();
  schema::TomlContext ctx{file, {}};
  schema::read_toml_table(*this, tbl, "", ctx);
  // A [[user_tasks]] table's paths are relative to the file that holds it.
  const fs::path base = path.parent_path().empty() ? fs::current_path() : fs::absolute(path).parent_path();
  for (std::size_t i = had_user_tasks; i < user_tasks.size(); ++i) {
    user_tasks[i].resolve_paths(base);
    for (std::size_t k = 0; k < i; ++k)
      if (user_tasks[k].name == user_tasks[i].name) throw Error(file + ": [[task]] '" + user_tasks[i].name + "' is defined twice");
  }
}

void ExperimentConfig::validate() const {
  if (tasks.empty()) throw Error("no tasks given");
  std::set<std::string> user_names;
  for (const auto& u : user_tasks) {
    u.validate();
    for (const auto& d : data::dataset_names())
      if (u.name == d) throw Error("[[task]] '" + u.name + "' has the name of a built-in dataset; choose another");
    if (!user_names.insert(u.name).second) throw Error("[[task]] '" + u.name + "' is defined twice");
  }
  auto check_name = [&](const std::string& t) {
    if (!user_names.count(t)) task::parse_task_name(t);  // names the known datasets and models
  };
  std::set<std::string> seen;
  for (const auto& t : tasks) {
    check_name(t);
    if (!seen.insert(t).second) throw Error("task '" + t + "' is listed twice");
  }
  for (const auto& t : transfer_tasks) {
    check_name(t);
    if (seen.count(t) != 0)
      throw Error("transfer task '" + t + "' is " + (std::find(tasks.begin(), tasks.end(), t) != tasks.end() ? "a search task" : "listed twice") +
                  " (held-out tasks must be outside the search)");
    seen.insert(t);
  }
  if (!task::is_image_model(task::model_preset_from_name(model)))
    throw Error("model '" + model + "' is not an image model (allowed: tiny, paper, mlp; text tasks use lstm or transformer)");
  if (steps < 1) throw Error("steps must be >= 1, got " + std::to_string(steps));
  limits::check("steps", steps, limits::kSteps);
  // The comparison's longer horizon trains steps × horizon_multiple.
  if (compare.enabled && compare.horizon_multiple > 1 &&
      static_cast<double>(steps) * compare.horizon_multiple > static_cast<double>(limits::kSteps.max))
    throw Error(limits::exceeds("steps x compare.horizon_multiple", fmt::format("{:.0f}", static_cast<double>(steps) * compare.horizon_multiple),
                                limits::kSteps));
  if (batch_size < 1) throw Error("batch size must be >= 1, got " + std::to_string(batch_size));
  limits::check("batch size", batch_size, limits::kBatchSize);
  if (workers < 0) throw Error("workers must be >= 0 (0 = one per core), got " + std::to_string(workers));
  limits::check("workers", static_cast<std::int64_t>(workers), limits::kWorkers);
  train::check_device_name(device, /*allow_auto=*/true);
  if (final_test_seeds < 1) throw Error("final test seeds must be >= 1");
  limits::check("final test seeds", static_cast<std::int64_t>(final_test_seeds), limits::kSeeds);
  if (val_size < 1) throw Error("validation size must be >= 1");
  limits::check("validation size", val_size, limits::kExamples);
  if (train_subset < 0) throw Error("training subset must be >= 0");
  if (augment < -1 || augment > 1) throw Error("data.augment must be -1 (the task's default), 0 or 1, got " + std::to_string(augment));
  limits::check("training subset", train_subset, limits::kExamples);
  // Limits before GaOptions::validate, which sizes nothing but compares population with
  // tournament and elites.
  limits::check("population", static_cast<std::int64_t>(ga.population), limits::kPopulation);
  limits::check("generations", static_cast<std::int64_t>(ga.generations), limits::kGenerations);
  if (ga.population > 0 && ga.generations > 0)
    limits::check("population x generations", static_cast<std::int64_t>(ga.population) * ga.generations, limits::kIndividuals);
  limits::check("search seeds", static_cast<std::int64_t>(ga.search_seeds), limits::kSeeds);
  limits::check("racing rung validation size", ga.racing.rung_val_size, limits::kExamples);
  ga::GaOptions g = ga;
  g.tasks = tasks;
  g.validate();
  compare.validate();
}

int ExperimentConfig::resolved_workers() const {
  if (workers > 0) return workers;
  return resolved_device() == "cpu" ? eval::default_workers() : 1;  // one process per GPU by default
}

std::string ExperimentConfig::resolved_device() const { return train::resolve_device(device); }

std::vector<std::string> ExperimentConfig::all_tasks() const {
  std::vector<std::string> all = tasks;
  all.insert(all.end(), transfer_tasks.begin(), transfer_tasks.end());
  return all;
}

json ExperimentConfig::to_json() const {
  ExperimentConfig c = *this;
  c.ga.tasks = tasks;
  json j = schema::to_json(c);
  j.update(RunDirectory::header(run_files::kConfig));
  return j;
}

std::string ExperimentConfig::fingerprint() const {
  json j = to_json();
  j.erase("workers");
  if (device == "cpu") j.erase("device");
  if (transfer_tasks.empty()) j.erase("transfer_tasks");
  if (user_tasks.empty()) j.erase("user_tasks");
  const std::string text = j.dump();
  return data::sha256_hex(text.data(), text.size()).substr(0, 16);
}

ExperimentConfig ExperimentConfig::from_json(const json& j) {
  if (!j.is_object() || j.value("format", "") != "evoopt.config") throw Error("not an evoopt config (format field missing or different)");
  // Every field through the schema's checked reads: a value that does not fit its field is
  // an error naming its key path, never wrapped (nlohmann's get<int>() turns 4294967297
  // into 1). The caller's JsonView::convert names the file.
  ExperimentConfig c;
  schema::from_json(c, j, "/");
  return c;
}

std::string config_reference() {
  return "# Config reference\n\n"
         "Every key of the config file (`evoopt evolve --config study.toml`), generated by `evoopt config reference` from the\n"
         "schemas of `ExperimentConfig`, `ga::GaOptions` and `experiment::CompareOptions`; `scripts/check-reference.sh` fails\n"
         "when this page differs. The same keys, spelt the same, are config.json's in a run directory. Values are\n"
         "applied in order: defaults, `preset`, the file, then flags (`--preset` wins over the file's `preset`). Defaults\n"
         "are the `default` preset's; `quick` shrinks the sizes. How the commands fit together is in the [guide](guide.md),\n"
         "the CLI in the [reference](reference.md).\n\n" +
         schema::reference_markdown(ExperimentConfig());
}

}  // namespace evoopt::experiment

namespace evoopt::schema {
experiment::Protocol EnumText<experiment::Protocol>::parse(const std::string& s) {
  if (s == "strong") return experiment::Protocol::Strong;
  if (s == "seed") return experiment::Protocol::Seed;
  if (s == "quasirandom") return experiment::Protocol::Quasirandom;
  throw Error("baseline protocol '" + s + "' is not one of strong, seed, quasirandom");
}
}  // namespace evoopt::schema
