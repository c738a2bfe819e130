#include "evoopt/experiment/study.hpp"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "evoopt/common/blas.hpp"
#include "evoopt/common/cpu_time.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/common/run_dir.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/eval/factory.hpp"
#include "evoopt/task/task.hpp"

namespace evoopt::experiment {
namespace fs = std::filesystem;
using nlohmann::json;

std::string display_label(const std::string& task, const std::string& provenance_label) {
  const auto colon = task.find(':');
  std::string name = task == task::kCartPole ? "CartPole-v1" : task;
  if (const auto* s = data::dataset_of_task(task)) {
    name = s->display;
    if (colon != std::string::npos || s->format == data::Format::Text) {
      const std::string model = colon != std::string::npos ? task.substr(colon + 1) : "lstm";
      name += model == "mlp" ? ", MLP" : model == "lstm" ? ", char LSTM" : ", " + model;
    }
  }
  if (provenance_label.find("JPEG mirror") != std::string::npos) name += " (JPEG mirror)";
  return name;
}

LoadedTasks load_tasks(const ExperimentConfig& config) {
  LoadedTasks out;
  out.data_dir = config.data_dir.empty() ? data::default_data_dir() : fs::path(config.data_dir);
  task::TaskOptions to;
  to.data_dir = out.data_dir;
  to.model = task::model_preset_from_name(config.model);
  to.split.train_subset = config.train_subset;
  to.split.val_size = config.val_size;
  to.split.split_seed = config.split_seed;
  to.batch_size = config.batch_size;
  to.augment = config.augment;
  to.user_tasks = config.user_tasks;
  to.study_steps = config.steps;
  // Held-out tasks only run in the comparison: without one they are not loaded.
  for (const auto& t : config.compare.enabled ? config.all_tasks() : config.tasks) {
    out.tasks.emplace(t, task::load_task(t, to));
    out.labels[t] = display_label(t, out.tasks.at(t).label());
  }
  out.options = to;
  return out;
}

std::unique_ptr<eval::Evaluator> make_study_evaluator(const ExperimentConfig& config, const LoadedTasks& loaded, bool use_mpi) {
  eval::EvaluatorSpec spec;
  spec.tasks = loaded.tasks;
  spec.task_options = loaded.options;
  spec.budget = study_budget(config);
  spec.workers = config.resolved_workers();
  spec.use_mpi = use_mpi;
  return eval::make_evaluator(spec);
}

train::Budget study_budget(const ExperimentConfig& config) {
  train::Budget budget;
  budget.steps = config.steps;
  budget.log_every = std::max<std::int64_t>(1, config.steps / 20);
  budget.device = config.resolved_device();
  return budget;
}

TaskCosts measure_task_costs(const ExperimentConfig& config, const LoadedTasks& loaded) {
  // Search tasks too: the first runs the ETA extrapolates from need not be a fair mix of the
  // tasks (in the default study the journal's first 24 runs were all CIFAR-10's).
  // A step's cost is the difference of a short and a longer run, so the first steps' warm-up
  // (first calls, allocations), which weighs on a small model far more than on a large one,
  // cancels out.
  constexpr std::int64_t kShort = 2, kLong = 10;
  train::Budget b = study_budget(config);
  b.eval_split = data::Split::Test;
  b.eval_limit = b.eval_batch;
  const genome::Genome adam = genome::preset("adam");
  // A short run of each task first, untimed: the process's first calls (allocations, first
  // kernels, state set up on first use) made the first task measured cold come out at a
  // quarter of its warm cost and the others up to twice theirs.
  b.steps = b.log_every = kShort;
  for (const auto& [name, task] : loaded.tasks) train::train_and_evaluate(adam, task, /*seed=*/0, b);
  std::map<std::string, double> step_seconds, split_seconds;
  for (const auto& [name, task] : loaded.tasks) {
    train::RunResult r[2];
    for (int i = 0; i < 2; ++i) {
      b.steps = b.log_every = i == 0 ? kShort : kLong;
      r[i] = train::train_and_evaluate(adam, task, /*seed=*/0, b);
    }
    const double scored = static_cast<double>(std::min(b.eval_limit, task.examples(data::Split::Test)));
    const double steps = static_cast<double>(r[1].steps_done - r[0].steps_done);
    const double seconds = r[1].train_seconds - r[0].train_seconds;
    if (steps < 1 || seconds <= 0 || scored <= 0) continue;
    step_seconds[name] = seconds / steps;
    split_seconds[name] = std::max(0.0, r[1].seconds - r[1].train_seconds) / scored * static_cast<double>(task.examples(data::Split::Test));
  }
  return {TaskCosts::relative(step_seconds, config.tasks), TaskCosts::relative(split_seconds, config.tasks)};
}

namespace {
decltype(RunContext::progress) tracker_progress(ProgressTracker& tracker, const EvalSizes& sizes) {
  return [&tracker, sizes](eval::RunStage stage, int done, int total, const std::vector<eval::RunRequest>& batch, const train::RunResult* trained) {
    // A batch can mix tasks (the held-out ones, each at its cost): its runs' mean work.
    Work sum;
    for (const auto& r : batch) sum += tracker.task_costs().scaled(r.task, request_work(sizes, r));
    const auto n = static_cast<double>(std::max<std::size_t>(1, batch.size()));
    const Work per_run{1, std::llround(static_cast<double>(sum.steps) / n), std::llround(static_cast<double>(sum.images) / n)};
    tracker.batch(stage, done, total, per_run, trained);
  };
}

// The search tasks' mean evaluation sizes (the ETA's unit of evaluation work).
EvalSizes eval_sizes(const ExperimentConfig& config, const LoadedTasks& loaded) {
  EvalSizes s;
  for (const auto& name : config.tasks) {
    const task::Task& t = loaded.tasks.at(name);
    s.val += t.examples(data::Split::Val);
    s.test += t.examples(data::Split::Test);
  }
  const auto n = static_cast<std::int64_t>(std::max<std::size_t>(1, config.tasks.size()));
  return {s.val / n, s.test / n};
}
}  // namespace

namespace {
// A run directory this process creates, removed again (with what is in it) unless keep() is
// called: a run refused before it wrote its config leaves nothing behind.
class NewDirGuard {
 public:
  explicit NewDirGuard(fs::path dir) : dir_(fs::exists(dir) ? fs::path() : std::move(dir)) {}
  ~NewDirGuard() {
    if (dir_.empty() || kept_) return;
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  void keep() const { kept_ = true; }
  NewDirGuard(const NewDirGuard&) = delete;
  NewDirGuard& operator=(const NewDirGuard&) = delete;

 private:
  fs::path dir_;
  mutable bool kept_ = false;
};

// Removes the temporary files of atomic writes (NAME.tmp.PID.N, write_file_atomic) that a
// process killed mid-write left in `dir` and its subdirectories. Called with the directory's
// lock held, so no live writer owns them.
void remove_stale_temp_files(const fs::path& dir) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string name = it->path().filename().string();
    const auto at = name.rfind(".tmp.");
    if (at == std::string::npos || at == 0) continue;
    const std::string tail = name.substr(at + 5);  // PID.N
    const auto dot = tail.find('.');
    const auto digits = [](const std::string& t) { return !t.empty() && t.find_first_not_of("0123456789") == std::string::npos; };
    if (dot == std::string::npos || !digits(tail.substr(0, dot)) || !digits(tail.substr(dot + 1))) continue;
    std::error_code rm;
    fs::remove(it->path(), rm);
  }
}

}  // namespace

std::optional<Comparison> run_compare(const ExperimentConfig& config, const genome::Genome& genome, const fs::path& out_dir,
                                      const StudyEvents& events, const std::atomic<bool>* cancel) {
  config.validate();
  genome.validate(genome::Bounds::kHardMaxTerms);
  if (config.compare.equal_budget && config.compare.equal_budget_runs == 0)
    throw Error("--equal-budget with evoopt compare needs --equal-budget-runs N (the evolution's run count is not known here)");
  // The directory is held before data is loaded; one this call creates is removed again
  // when the data or the evaluator fails.
  const NewDirGuard new_dir(out_dir);
  const DirLock lock(out_dir);
  remove_stale_temp_files(out_dir);
  const LoadedTasks loaded = load_tasks(config);
  // Measured before the workers start (and load their data), so nothing competes for the cores.
  const TaskCosts costs = measure_task_costs(config, loaded);
  const auto evaluator_ptr = make_study_evaluator(config, loaded);
  eval::Evaluator& evaluator = *evaluator_ptr;
  new_dir.keep();
  eval::RunStore store(RunDirectory(out_dir) / run_files::kJournal);
  const EvalSizes sizes = eval_sizes(config, loaded);
  ProgressTracker tracker(config, sizes, /*with_search=*/false, events.progress, events.phase_finished);
  tracker.set_task_costs(costs);
  tracker.set_winner(genome, config.compare.equal_budget_runs);
  const auto phases = comparison_phases(config.compare, !config.transfer_tasks.empty());
  tracker.start_phase(phases.front());
  RunContext ctx{evaluator, store, cancel, tracker_progress(tracker, sizes)};
  try {
    const double val_fitness =
        validation_fitness(ctx, eval::RunStage::Sweep, {genome}, config.tasks, config.seed, config.ga.search_seeds).front().overall;
    const CompareInputs in = compare_inputs(config, genome, val_fitness, loaded.labels, config.compare.equal_budget_runs);
    Comparison c;
    for (Phase p : phases) {
      tracker.start_phase(p);
      run_comparison_phase(p, ctx, in, c);
    }
    write_comparison(c, out_dir);
    tracker.finish();
    return c;
  } catch (const eval::Interrupted&) {
    return std::nullopt;
  }
}

namespace {
fs::path run_config_path(const fs::path& run_dir) {
  const RunDirectory dir(run_dir);
  if (!dir.has(run_files::kConfig)) throw Error(run_dir.string() + ": not a run directory (no config.json)");
  return dir / run_files::kConfig;
}

}  // namespace

ExperimentConfig load_run_config(const fs::path& run_dir) { return read_json_view(run_config_path(run_dir)).convert(ExperimentConfig::from_json); }

namespace {

// CPU time of this process and its worker processes (reaped ones through RUSAGE_CHILDREN,
// live ones as they last reported).
double cpu_seconds(const eval::Evaluator* evaluator) {
  return process_cpu_seconds(/*reaped_children=*/true) + (evaluator != nullptr ? evaluator->live_worker_cpu_seconds() : 0.0);
}

json provenance(const ExperimentConfig& c, const fs::path& data_dir) {
  json p;
  for (const auto& t : c.all_tasks()) {
    bool user = false;
    for (const auto& u : c.user_tasks)
      if (u.name == t) {
        p[t] = {{"label", task::user_data_label(u)}, {"source", "user data " + u.data.string() + ", model " + u.model.string()}, {"lossy", false}};
        user = true;
      }
    if (user) continue;
    const fs::path meta = data_dir / task::parse_task_name(t).dataset / "metadata.json";
    if (!fs::exists(meta)) continue;
    json m = read_json_file(meta);
    p[t] = {{"label", m.value("label", t)},
            {"source", m.value("source", "")},
            {"lossy", m.value("lossy", false)},
            {"files", m.value("files", json::object())}};
  }
  return p;
}

}  // namespace

json StudyResult::summary_json() const {
  json ft;
  for (const auto& [t, r] : final_test.per_task)
    ft[t] = {{"label", r.label}, {"seeds", r.seeds}, {"accuracy", r.accuracy}, {"mean", r.summary.mean}, {"std", r.summary.stddev}};
  json j = {{"completed", completed},
            {"winner",
             {{"genome", ga.best.genome.to_json()},
              {"formula", ga.best.genome.formula()},
              {"hyperparameters", ga.best.genome.hyperparameters()},
              {"hash", ga.best.genome.hash_hex()},
              {"validation_fitness", ga.best.fitness},
              {"validation_per_task", ga.best.per_task}}},
            {"final_test", {{"per_task", ft}, {"overall_mean", final_test.overall.mean}, {"overall_std", final_test.overall.stddev}}},
            {"cost",
             {{"search_training_runs", cost.search_runs},
              {"search_training_steps", cost.search_steps},
              {"search_train_seconds", cost.search_train_seconds},
              {"other_training_runs", cost.other_runs},
              {"other_training_steps", cost.other_steps},
              {"wall_seconds_this_process", cost.wall_seconds},
              {"cpu_seconds", cost.cpu_seconds}}}};
  if (break_even) {
    json m = json::array();
    for (const auto& [k, f] : break_even->measured) m.push_back({{"steps_multiple", k}, {"baseline_val_fitness", f}});
    j["break_even"] = {{"baseline", break_even->baseline},
                       {"baseline_val_fitness", break_even->baseline_val_fitness},
                       {"winner_val_fitness", break_even->winner_val_fitness},
                       {"improvement", break_even->improvement},
                       {"multiple_needed", break_even->multiple_needed ? json(*break_even->multiple_needed) : json(nullptr)},
                       {"measured", m},
                       {"verdict", break_even->verdict}};
  }
  j.update(RunDirectory::header(run_files::kSummary));
  return j;
}

namespace {

// The stored config of the run in `run_dir` (resume), checked against the fingerprint it was
// started with; `recorded` is config.json as written then. Of `given` only `workers` is
// taken, when >= 0.
ExperimentConfig resumed_config(const ExperimentConfig& given, const fs::path& run_dir, json& recorded) {
  const JsonView view = read_json_view(run_config_path(run_dir));  // read once: the config and its fingerprint
  ExperimentConfig config = view.convert(ExperimentConfig::from_json);
  recorded = view.raw();
  if (given.workers >= 0) config.workers = given.workers;
  const std::string now = config.fingerprint();
  if (!recorded.contains("fingerprint") || !recorded.at("fingerprint").is_string())
    throw Error((RunDirectory(run_dir) / run_files::kConfig).string() +
                ": no fingerprint recorded (written by an older evoopt): start a new run with --out");
  if (recorded.at("fingerprint").get<std::string>() != now)
    throw Error((RunDirectory(run_dir) / run_files::kConfig).string() + ": changed since the run started (fingerprint " +
                recorded.at("fingerprint").get<std::string>() + " recorded, " + now + " now): restore the original, or start a new run with --out");
  return config;
}

// A resumed run's data and training semantics must be those it started with.
void check_task_fingerprints(const json& recorded, const LoadedTasks& loaded, const eval::Evaluator& evaluator, const fs::path& run_dir) {
  const json& fp = recorded.value("task_fingerprints", json::object());
  const json& inputs = recorded.value("task_fingerprint_inputs", json::object());
  for (const auto& [t, unused] : loaded.tasks) {
    if (fp.contains(t) && fp.at(t) == evaluator.fingerprint(t)) continue;
    // Portable mode (the kernels pinned) is chosen per process: say which way to resume.
    if (inputs.contains(t) && inputs.at(t).is_object()) {
      const bool recorded_portable = inputs.at(t).contains("kernels");
      if (recorded_portable && portable_kernels().empty())
        throw Error(fmt::format("{}: the run was made in portable mode ({}); resume it with: evoopt --portable resume {}",
                                (RunDirectory(run_dir) / run_files::kConfig).string(), inputs.at(t).at("kernels").dump(), run_dir.string()));
      if (!recorded_portable && !portable_kernels().empty())
        throw Error(fmt::format("{}: the run was made without portable mode; resume it without --portable (and EVOOPT_PORTABLE unset)",
                                (RunDirectory(run_dir) / run_files::kConfig).string()));
    }
    throw Error(
        fmt::format("{}: task {} no longer matches the run (fingerprint {} recorded, {} now: its data, model settings or evoopt's "
                    "training semantics changed); start a new run with --out",
                    (RunDirectory(run_dir) / run_files::kConfig).string(), t, fp.contains(t) ? fp.at(t).dump() : "none", evaluator.fingerprint(t)));
  }
}

// config.json of a new run: the config, its fingerprint, the data's provenance, the derived
// training seeds and each task's run-store fingerprint with what it is computed from.
json new_run_config_json(const ExperimentConfig& config, const LoadedTasks& loaded, const eval::Evaluator& evaluator) {
  json cfg = config.to_json();
  cfg["fingerprint"] = config.fingerprint();
  cfg["provenance"] = provenance(config, loaded.data_dir);
  // The derived training seeds, spelled out: search (validation) and test are disjoint.
  json search = json::object(), test = json::object();
  const int n_test = std::max(config.final_test_seeds, config.compare.enabled ? config.compare.test_seeds : 0);
  for (const auto& t : config.tasks) {
    for (int s = 0; s < config.ga.search_seeds; ++s) search[t].push_back(ga::search_seed(config.seed, t, s));
    test[t] = test_seeds(config.seed, t, n_test, config.ga.search_seeds);
  }
  for (const auto& t : config.compare.enabled ? config.transfer_tasks : std::vector<std::string>{})
    test[t] = test_seeds(config.seed, t, config.compare.test_seeds, config.ga.search_seeds);
  cfg["derived_seeds"] = {{"search", search}, {"test", test}};
  json fps = json::object(), described = json::object();
  for (const auto& [t, unused] : loaded.tasks) {  // search and (when comparing) held-out tasks
    fps[t] = evaluator.fingerprint(t);
    described[t] = eval::fingerprint_description(loaded.tasks.at(t), study_budget(config));
  }
  cfg["task_fingerprints"] = fps;
  cfg["task_fingerprint_inputs"] = described;
  cfg["evoopt_version"] = EVOOPT_VERSION;
  return cfg;
}

// The GA's events of a study: the caller's, with the tracker counting the search's runs and
// outputs_written after every generation.
ga::GaEvents search_events(const StudyEvents& events, ProgressTracker& tracker, const fs::path& run_dir) {
  ga::GaEvents ga_events = events.ga;
  ga_events.generation_started = [&events, &tracker](int g, int n) {
    tracker.generation_started(g, n);
    if (events.ga.generation_started) events.ga.generation_started(g, n);
  };
  ga_events.run_finished = [&events, &tracker](int done, int total, const train::RunResult& r) {
    tracker.search_run(done, total, r);
    if (events.ga.run_finished) events.ga.run_finished(done, total, r);
  };
  ga_events.generation_finished = [&events, &tracker, run_dir](const ga::GenerationRecord& rec, const ga::Individual& best) {
    tracker.generation_finished(rec);
    if (events.ga.generation_finished) events.ga.generation_finished(rec, best);
    if (events.outputs_written) events.outputs_written(run_dir);
  };
  return ga_events;
}

// final_test.json and summary.json of a finished study.
void write_final_outputs(const StudyResult& result, const fs::path& run_dir) {
  const RunDirectory dir(run_dir);
  const json summary = result.summary_json();
  dir.write_json(run_files::kFinalTest, json{{"winner", summary.at("winner")}, {"final_test", summary.at("final_test")}}, 2);
  dir.write_json(run_files::kSummary, summary, 2);
}

// The study's first line: its tasks, model, steps per run and evaluator.
std::string study_line(const ExperimentConfig& config, const std::map<std::string, std::string>& labels, const eval::Evaluator& evaluator) {
  std::string tasks;
  for (const auto& t : config.tasks) tasks += (tasks.empty() ? "" : ", ") + labels.at(t);
  return fmt::format("{} tasks ({}), model {}, {} steps per run, {}", config.tasks.size(), tasks, config.model, config.steps, evaluator.describe());
}

// Runs the pipeline's stages in order, filling `state`; false when cancelled. The search
// reports its progress through the GA's events, generation by generation; each stage after
// it opens its phase in the tracker, which learns the winner once the search has one.
bool run_stages(const std::vector<std::unique_ptr<Stage>>& stages, RunContext& ctx, StageState& state, ProgressTracker& tracker) {
  try {
    for (const auto& stage : stages) {
      tracker.start_phase(stage->phase());
      stage->run(ctx, state);
      // Once the search has its winner, the later stages' plans are the winner's.
      if (state.search.completed) tracker.set_winner(state.search.best.genome, state.search.runs_total);
    }
  } catch (const eval::Interrupted&) {
    return false;
  }
  return true;
}

// The runs and steps of the stages after the search, from the journal.
void count_other_runs(const eval::RunStore& store, Cost& cost) {
  for (const auto& e : store.entries()) {
    if (e.stage == eval::RunStage::Search) continue;
    ++cost.other_runs;
    cost.other_steps += e.result.steps_done - e.result.resumed_at;
  }
}

}  // namespace

StudyResult run_study(const ExperimentConfig& given, const fs::path& run_dir, bool resume, const StudyEvents& events,
                      const std::atomic<bool>* cancel) {
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = cpu_seconds(nullptr);
  ExperimentConfig config = given;
  json recorded;  // config.json as written when the run started (resume)
  if (!resume) {
    config.validate();
    if (RunDirectory(run_dir).has(run_files::kConfig))
      throw Error(run_dir.string() + " already holds a run (resume it with: evoopt resume " + run_dir.string() + ", or choose another --out)");
  }
  // The directory is held before anything is loaded or started: a second process on it is
  // refused at once. A new run's directory is removed again if the run fails before its
  // config.json is written.
  if (resume) run_config_path(run_dir);  // a directory without a run is refused before it is locked
  const NewDirGuard new_dir(run_dir);
  const DirLock lock(run_dir);
  remove_stale_temp_files(run_dir);
  if (resume)
    config = resumed_config(given, run_dir, recorded);
  else
    config.device = config.resolved_device();  // recorded resolved: a resume trains where the run started
  config.validate();

  // Tasks first: a missing dataset fails before anything is written.
  const LoadedTasks loaded = load_tasks(config);
  // Recorded absolutely, so a resume from another directory or with another
  // EVOOPT_DATA_DIR reads the same data.
  if (!resume) config.data_dir = fs::absolute(loaded.data_dir).lexically_normal().string();

  // Measured before the workers start (and load their data), so nothing competes for the cores.
  const TaskCosts costs = measure_task_costs(config, loaded);
  const auto evaluator = make_study_evaluator(config, loaded);
  if (resume) check_task_fingerprints(recorded, loaded, *evaluator, run_dir);
  if (!resume) {
    RunDirectory(run_dir).write_text(run_files::kConfig, new_run_config_json(config, loaded, *evaluator).dump(2) + "\n");
    new_dir.keep();
  }
  eval::RunStore store(RunDirectory(run_dir) / run_files::kJournal);
  if (events.message) events.message(study_line(config, loaded.labels, *evaluator));

  const EvalSizes sizes = eval_sizes(config, loaded);
  ProgressTracker tracker(config, sizes, /*with_search=*/true, events.progress, events.phase_finished);
  tracker.set_task_costs(costs);
  RunContext ctx{*evaluator, store, cancel, tracker_progress(tracker, sizes)};
  StageState state{config, run_dir, loaded.labels, {}, {}, {}, {}, {}};
  const bool completed = run_stages(study_stages(config, search_events(events, tracker, run_dir)), ctx, state, tracker);

  StudyResult result;
  result.run_dir = run_dir;
  result.ga = std::move(state.search);
  result.final_test = std::move(state.final_test);
  result.break_even = std::move(state.break_even);
  result.comparison = std::move(state.comparison);
  result.cost.search_runs = result.ga.runs_total;
  result.cost.search_steps = result.ga.steps_total;
  result.cost.search_train_seconds = result.ga.train_seconds_total;
  if (completed) {
    count_other_runs(store, result.cost);
    tracker.finish();
  }
  result.cost.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  result.cost.cpu_seconds = cpu_seconds(evaluator.get()) - cpu0;
  if (!completed) return result;
  result.completed = true;
  write_final_outputs(result, run_dir);
  if (events.outputs_written) events.outputs_written(run_dir);
  return result;
}

}  // namespace evoopt::experiment
