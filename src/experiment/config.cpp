#include "evoopt/experiment/config.hpp"

#include <limits>
#include <set>

#include <fmt/format.h>
#include <toml++/toml.h>

#include "evoopt/common/checked_json.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/fields.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/limits.hpp"
#include "evoopt/data/checksum.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/eval/evaluator.hpp"
#include "evoopt/task/task.hpp"

namespace evoopt::experiment {
using nlohmann::json;

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
  if (protocol != "strong" && protocol != "seed") throw Error("compare: baseline protocol '" + protocol + "' is not one of strong, seed");
  if (rung_val_size < 0) throw Error("compare: rung validation size must be >= 0 (0 = all), got " + std::to_string(rung_val_size));
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
  compare.horizon_multiple = 0;            // no longer-horizon block: it would cost more than the rest of the comparison
  transfer_tasks = {"fashion_mnist:mlp"};  // the text task's LSTM would double the comparison's time
}

namespace {
// Strict reads: a TOML value must have the key's type (no integer where a boolean goes),
// and an integer must fit the field (population = 4294967298 is an error, not 2).
template <typename T>
T get(const toml::node& node, const std::string& key, const std::string& file) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (const auto* v = node.as_string()) return v->get();
    throw Error(file + ": " + key + " must be a string");
  } else if constexpr (std::is_same_v<T, bool>) {
    if (const auto* v = node.as_boolean()) return v->get();
    throw Error(file + ": " + key + " must be true or false");
  } else if constexpr (std::is_floating_point_v<T>) {
    if (const auto* v = node.as_floating_point()) return v->get();
    if (const auto* v = node.as_integer()) return static_cast<T>(v->get());
    throw Error(file + ": " + key + " must be a number");
  } else {
    const auto* v = node.as_integer();
    if (v == nullptr) throw Error(file + ": " + key + " must be an integer");
    const std::int64_t x = v->get();
    if (x < 0 && std::is_unsigned_v<T>) throw Error(file + ": " + key + " must be >= 0, got " + std::to_string(x));
    if constexpr (!std::is_same_v<T, std::int64_t> && !std::is_same_v<T, std::uint64_t>) {
      if (x < static_cast<std::int64_t>(std::numeric_limits<T>::min()) || x > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
        throw Error(file + ": " + key + " = " + std::to_string(x) + " is out of range");
    }
    return static_cast<T>(x);
  }
}
template <typename T>
struct is_vector : std::false_type {};
template <typename T>
struct is_vector<std::vector<T>> : std::true_type {};
template <typename T>
std::vector<T> get_array(const toml::node& node, const std::string& key, const std::string& file) {
  const toml::array* arr = node.as_array();
  if (arr == nullptr) throw Error(file + ": " + key + " must be an array");
  std::vector<T> out;
  for (const auto& e : *arr) out.push_back(get<T>(e, key + "[]", file));
  return out;
}
// Sets the field of Spec's field list named `key` from a TOML value of the field's type;
// false when no field has that name.
template <typename Spec>
bool read_field(Spec& spec, const std::string& key, const toml::node& node, const std::string& full, const std::string& file) {
  bool known = false;
  Spec::fields(spec, [&](const char* name, auto& field) {
    if (key != name) return;
    known = true;
    using T = std::decay_t<decltype(field)>;
    if constexpr (std::is_same_v<T, std::filesystem::path>)
      field = get<std::string>(node, full, file);
    else if constexpr (is_vector<T>::value)
      field = get_array<typename T::value_type>(node, full, file);
    else
      field = get<T>(node, full, file);
  });
  return known;
}
}  // namespace

void ExperimentConfig::load_toml(const std::filesystem::path& path) {
  const std::string file = path.string();
  toml::table tbl;
  const std::string text = read_text_file(path, limits::kConfigFileBytes);
  try {
    tbl = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    throw Error(file + ": " + std::string(e.description()) + " (line " + std::to_string(e.source().begin.line) + ")");
  }
  if (auto p = tbl["preset"]) apply_preset(get<std::string>(*p.node(), "preset", file));
  for (auto&& [k, v] : tbl) {
    const std::string key(k.str());
    if (key == "preset")
      continue;
    else if (key == "seed")
      seed = get<std::uint64_t>(v, key, file);
    else if (key == "tasks")
      tasks = get_array<std::string>(v, key, file);
    else if (key == "transfer_tasks")
      transfer_tasks = get_array<std::string>(v, key, file);
    else if (key == "task") {
      const toml::array* arr = v.as_array();
      if (arr == nullptr) throw Error(file + ": task must be an array of tables ([[task]])");
      for (std::size_t i = 0; i < arr->size(); ++i) {
        const toml::table* t = arr->get(i)->as_table();
        const std::string at = "task[" + std::to_string(i) + "]";
        if (t == nullptr) throw Error(file + ": " + at + " must be a table ([[task]])");
        task::UserTaskSpec u;
        for (auto&& [tk2, tv] : *t) {
          const std::string full = at + "." + std::string(tk2.str());
          if (!read_field(u, std::string(tk2.str()), tv, full, file)) throw Error(file + ": unknown key " + full);
        }
        u.resolve_paths(path.parent_path().empty() ? std::filesystem::current_path() : std::filesystem::absolute(path).parent_path());
        for (const auto& other : user_tasks)
          if (other.name == u.name) throw Error(file + ": [[task]] '" + u.name + "' is defined twice");
        user_tasks.push_back(u);
      }
    } else if (key == "model")
      model = get<std::string>(v, key, file);
    else if (key == "steps")
      steps = get<std::int64_t>(v, key, file);
    else if (key == "batch_size")
      batch_size = get<std::int64_t>(v, key, file);
    else if (key == "workers")
      workers = get<int>(v, key, file);
    else if (key == "device")
      device = get<std::string>(v, key, file);
    else if (key == "final_test_seeds")
      final_test_seeds = get<int>(v, key, file);
    else if (key == "break_even")
      break_even = get<bool>(v, key, file);
    else if (key == "data" && v.is_table()) {
      for (auto&& [dk, dv] : *v.as_table()) {
        const std::string d = "data." + std::string(dk.str());
        if (dk == "dir")
          data_dir = get<std::string>(dv, d, file);
        else if (dk == "train_subset")
          train_subset = get<std::int64_t>(dv, d, file);
        else if (dk == "val_size")
          val_size = get<std::int64_t>(dv, d, file);
        else if (dk == "split_seed")
          split_seed = get<std::uint64_t>(dv, d, file);
        else if (dk == "augment")
          augment = get<bool>(dv, d, file) ? 1 : 0;
        else
          throw Error(file + ": unknown key " + d);
      }
    } else if (key == "ga" && v.is_table()) {
      for (auto&& [gk, gv] : *v.as_table()) {
        const std::string g = "ga." + std::string(gk.str());
        if (gk == "population")
          ga.population = get<int>(gv, g, file);
        else if (gk == "generations")
          ga.generations = get<int>(gv, g, file);
        else if (gk == "tournament")
          ga.tournament = get<int>(gv, g, file);
        else if (gk == "elites")
          ga.elites = get<int>(gv, g, file);
        else if (gk == "crossover_rate")
          ga.crossover_rate = get<double>(gv, g, file);
        else if (gk == "mutation_rate")
          ga.mutation.gene_rate = get<double>(gv, g, file);
        else if (gk == "structural_rate")
          ga.mutation.structural_rate = get<double>(gv, g, file);
        else if (gk == "flip_rate")
          ga.mutation.flip_rate = get<double>(gv, g, file);
        else if (gk == "anneal")
          ga.anneal = get<bool>(gv, g, file);
        else if (gk == "vocabulary")
          ga.space.vocabulary = genome::vocabulary_from_name(get<std::string>(gv, g, file));
        else if (gk == "max_terms")
          ga.space.max_terms = get<int>(gv, g, file);
        else if (gk == "search_seeds")
          ga.search_seeds = get<int>(gv, g, file);
        else if (gk == "async")
          ga.async = get<bool>(gv, g, file);
        else if (gk == "racing")
          ga.racing.enabled = get<bool>(gv, g, file);
        else if (gk == "racing_rungs")
          ga.racing.rungs = get_array<double>(gv, g, file);
        else if (gk == "racing_keep")
          ga.racing.keep = get<double>(gv, g, file);
        else if (gk == "racing_rung_val_size")
          ga.racing.rung_val_size = get<std::int64_t>(gv, g, file);
        else if (gk == "racing_continue")
          ga.racing.continue_runs = get<bool>(gv, g, file);
        else
          throw Error(file + ": unknown key " + g);
      }
    } else if (key == "compare" && v.is_table()) {
      for (auto&& [ck, cv] : *v.as_table()) {
        const std::string c = "compare." + std::string(ck.str());
        if (!read_field(compare, std::string(ck.str()), cv, c, file)) throw Error(file + ": unknown key " + c);
      }
    } else {
      throw Error(file + ": unknown key " + key);
    }
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
    throw Error("model '" + model + "' is not an image model (allowed: tiny, paper, mlp; text tasks use lstm)");
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
  ga::GaOptions g = ga;
  g.tasks = tasks;
  return {{"format", "evoopt.config"},
          {"version", 1},
          {"preset", preset},
          {"seed", seed},
          {"tasks", tasks},
          {"transfer_tasks", transfer_tasks},
          {"model", model},
          {"steps", steps},
          {"batch_size", batch_size},
          {"workers", workers},
          {"device", device},
          {"final_test_seeds", final_test_seeds},
          {"break_even", break_even},
          {"data", {{"dir", data_dir}, {"train_subset", train_subset}, {"val_size", val_size}, {"split_seed", split_seed}, {"augment", augment}}},
          {"user_tasks",
           [&] {
             json a = json::array();
             for (const auto& u : user_tasks) a.push_back(u.to_json());
             return a;
           }()},
          {"ga", g.to_json()},
          {"compare", fields_to_json(compare)}};
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
  // Every field through json_at: a value that does not fit its field is an error naming its
  // key path, never wrapped (nlohmann's get<int>() turns 4294967297 into 1). The caller's
  // JsonView::convert names the file.
  const std::string what = "/";
  ExperimentConfig c;
  c.preset = json_at<std::string>(j, "preset", what);
  c.seed = json_at<std::uint64_t>(j, "seed", what);
  c.tasks = json_at<std::vector<std::string>>(j, "tasks", what);
  c.transfer_tasks = json_value(j, "transfer_tasks", std::vector<std::string>{}, what);  // written before the field existed: none
  if (j.contains("user_tasks")) {
    if (!j.at("user_tasks").is_array()) throw Error("/user_tasks: expected an array, got " + describe_json(j.at("user_tasks")));
    for (std::size_t i = 0; i < j.at("user_tasks").size(); ++i) {
      try {
        c.user_tasks.push_back(task::UserTaskSpec::from_json(j.at("user_tasks").at(i)));
      } catch (const Error& e) {
        throw Error("/user_tasks/" + std::to_string(i) + ": " + e.what());
      }
    }
  }
  c.model = json_at<std::string>(j, "model", what);
  c.steps = json_at<std::int64_t>(j, "steps", what);
  c.batch_size = json_at<std::int64_t>(j, "batch_size", what);
  c.workers = json_at<int>(j, "workers", what);
  c.device = json_value<std::string>(j, "device", "cpu", what);  // written before the field existed: the CPU
  c.final_test_seeds = json_at<int>(j, "final_test_seeds", what);
  c.break_even = json_at<bool>(j, "break_even", what);
  if (!j.contains("data")) throw Error("/data: missing");
  const json& d = j.at("data");
  const std::string data = "/data/";
  c.data_dir = json_at<std::string>(d, "dir", data);
  c.train_subset = json_at<std::int64_t>(d, "train_subset", data);
  c.val_size = json_at<std::int64_t>(d, "val_size", data);
  c.split_seed = json_at<std::uint64_t>(d, "split_seed", data);
  c.augment = json_at<int>(d, "augment", data);
  if (!j.contains("ga")) throw Error("/ga: missing");
  c.ga = ga::GaOptions::from_json(j.at("ga"));
  if (!j.contains("compare")) throw Error("/compare: missing");
  check_fields_json(c.compare, j.at("compare"), "/compare/");
  fields_from_json(c.compare, j.at("compare"), "config.json compare", [](const std::string&) { return false; });
  return c;
}

}  // namespace evoopt::experiment
