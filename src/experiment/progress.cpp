#include "evoopt/experiment/progress.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/common/run_dir.hpp"
#include "evoopt/eval/evaluator.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/stages.hpp"
#include "evoopt/experiment/study.hpp"
#include "evoopt/task/task.hpp"

namespace evoopt::experiment {
namespace fs = std::filesystem;
using nlohmann::json;

std::int64_t evaluated_images(const EvalSizes& sizes, data::Split split, std::int64_t eval_limit) {
  if (split == data::Split::Test) return sizes.test;
  return eval_limit > 0 ? std::min(eval_limit, sizes.val) : sizes.val;
}

std::int64_t curve_points(std::int64_t steps, std::int64_t curve_every) { return curve_every > 0 && steps > 0 ? (steps - 1) / curve_every : 0; }

Work request_work(const EvalSizes& sizes, const eval::RunRequest& r) {
  return Work{1, r.steps, evaluated_images(sizes, r.split, r.eval_limit) * (1 + curve_points(r.steps, r.curve_every))};
}

EvalSizes eval_sizes_of_run(const fs::path& run_dir) {
  const JsonView cfg = RunDirectory(run_dir).read(run_files::kConfig);
  // Far beyond any dataset (2^40 examples); keeps the sums and the work estimates in range.
  constexpr std::int64_t kMax = std::int64_t{1} << 40;
  EvalSizes s;
  std::int64_t n = 0;
  const auto search = cfg.get_or<std::vector<std::string>>("tasks", {});
  if (const auto inputs = cfg.find("task_fingerprint_inputs"))
    for (const auto& [t, d] : inputs->members()) {
      if (std::find(search.begin(), search.end(), t) == search.end()) continue;  // transfer tasks: not the unit
      // A text task's sizes are bytes; what it scores is windows (as Task::examples counts).
      const JsonView td = d.at("task");
      const std::int64_t seq_len = td.find("seq_len") ? td.get_in<std::int64_t>("seq_len", 0, kMax) : 0;
      s.val += task::scored_examples(td.get_in<std::int64_t>("val_size", 0, kMax), seq_len);
      s.test += task::scored_examples(td.get_in<std::int64_t>("test_size", 0, kMax), seq_len);
      ++n;
    }
  if (n > 0) return {s.val / n, s.test / n};
  return {cfg.find("val_size") ? cfg.get_in<std::int64_t>("val_size", 0, kMax) : 5000, 10000};
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0)) return "?";
  const auto s = static_cast<std::int64_t>(std::llround(seconds));
  if (s < 60) return fmt::format("{} s", s);
  if (s < 3600) {
    const auto m = (s + 30) / 60;
    return m < 10 ? fmt::format("{} min {} s", s / 60, s % 60) : fmt::format("{} min", m);
  }
  const auto m = (s + 30) / 60;
  return fmt::format("{} h {} min", m / 60, m % 60);
}

// ------------------------------------------------------------------ tracker

ProgressTracker::ProgressTracker(const ExperimentConfig& config, const EvalSizes& sizes, bool with_search,
                                 std::function<void(const ProgressReport&)> report, std::function<void(const PhaseReport&)> phase_done)
    : config_(config), sizes_(sizes), with_search_(with_search), report_(std::move(report)), phase_done_(std::move(phase_done)) {}

void ProgressTracker::set_winner(const genome::Genome& g, std::int64_t search_runs) {
  winner_ = g;
  search_runs_ = search_runs;
}

void ProgressTracker::close_batch() {
  if (now_.total > 0 && now_.phase != Phase::Search) {
    const Work w = batch_per_run_ * now_.total;
    after_search_done_ += w;
    if (now_.phase == Phase::BreakEven) break_even_done_ += w;
  }
  now_.done = now_.total = 0;
}

void ProgressTracker::start_phase(Phase phase) {
  if (phase_open_ && now_.phase == phase) return;
  close_batch();
  if (phase_open_ && phase_done_) phase_done_({now_.phase, phase_trained_, std::chrono::duration<double>(Clock::now() - phase_t0_).count()});
  if (now_.phase == Phase::BreakEven) break_even_over_ = true;
  phase_open_ = true;
  now_ = ProgressReport{};
  now_.phase = phase;
  phase_t0_ = Clock::now();
  phase_trained_ = 0;
  phase_ = Rates{};
}

void ProgressTracker::finish() {
  close_batch();
  if (phase_open_ && phase_done_) phase_done_({now_.phase, phase_trained_, std::chrono::duration<double>(Clock::now() - phase_t0_).count()});
  phase_open_ = false;
}

void ProgressTracker::generation_started(int generation, int generations) {
  start_phase(Phase::Search);
  now_.stage = eval::RunStage::Search;
  now_.generation = generation + 1;
  now_.generations = generations;
  now_.done = now_.total = 0;
  batch_t0_ = Clock::now();
  batch_trained_ = 0;
  batch_per_run_ = {1, config_.steps, sizes_.val};
}

void ProgressTracker::generation_finished(const ga::GenerationRecord& record) { finished_.push_back(record); }

void ProgressTracker::count_trained(const train::RunResult& r, std::int64_t images) {
  const auto t = Clock::now();
  // Wall time from the batch's start or the last trained run, whichever is later.
  const double wall = std::chrono::duration<double>(t - std::max(batch_t0_, last_trained_)).count();
  last_trained_ = t;
  for (Rates* x : {&all_, &phase_}) {
    x->wall_seconds += wall;
    // A continued run trained only its own steps; a task's steps count at their cost.
    x->trained += Work{1, std::llround(static_cast<double>(r.steps_done - r.resumed_at) * costs_.step_of(r.task)), images};
    x->train_seconds += r.train_seconds;
    x->eval_seconds += std::max(0.0, r.seconds - r.train_seconds);
  }
  ++batch_trained_;
  ++phase_trained_;
}

void ProgressTracker::search_run(int done, int total, const train::RunResult& trained) {
  count_trained(trained, std::llround(static_cast<double>(sizes_.val) * costs_.eval_of(trained.task)));
  now_.done = done;
  now_.total = total;
  emit();
}

void ProgressTracker::batch(eval::RunStage stage, int done, int total, const Work& per_run, const train::RunResult* trained) {
  if (trained == nullptr) {
    // A new batch (run_all reports what the store holds first): the one before it is finished.
    close_batch();
    batch_t0_ = Clock::now();
    batch_trained_ = 0;
    batch_per_run_ = per_run;
  } else {
    count_trained(*trained, per_run.images);
  }
  now_.stage = stage;
  now_.done = done;
  now_.total = total;
  emit();
}

std::optional<double> ProgressTracker::Rates::seconds_for(const Work& w) const {
  const double run_seconds = train_seconds + eval_seconds;
  if (trained.steps <= 0 || run_seconds <= 0 || wall_seconds <= 0) return std::nullopt;
  double s = static_cast<double>(w.steps) * train_seconds / static_cast<double>(trained.steps);
  if (trained.images > 0) s += static_cast<double>(w.images) * eval_seconds / static_cast<double>(trained.images);
  return s * wall_seconds / run_seconds;  // runs in parallel (workers) or with overheads
}

void ProgressTracker::emit() {
  const double batch_secs = std::chrono::duration<double>(Clock::now() - batch_t0_).count();
  now_.runs_per_second = batch_trained_ > 0 && batch_secs > 0 ? batch_trained_ / batch_secs : 0.0;
  now_.batch_eta_seconds.reset();
  now_.study_eta_seconds.reset();
  if (now_.runs_per_second > 0) now_.batch_eta_seconds = std::max(0, now_.total - now_.done) / now_.runs_per_second;
  // Work left: the rest of this batch, later generations, every phase after the search.
  const genome::Genome* winner = winner_ ? &*winner_ : nullptr;
  const PlanInputs plan_in{sizes_, winner, search_runs_, costs_};
  const Work after =
      with_search_ ? plan_after_search(config_, plan_in) : plan_comparison(config_, sizes_, winner, search_runs_, /*after_final_test=*/false, costs_);
  const Work batch_left = batch_per_run_ * std::max(0, now_.total - now_.done);
  Work left = batch_left;
  if (now_.phase == Phase::Search) {
    left += plan_search_left(config_, sizes_, finished_, /*one_running=*/true);
    left += after;
  } else {
    Work done = after_search_done_;
    done += batch_per_run_ * now_.done;
    if (break_even_over_ && config_.break_even) {
      // Break-even stopped at the first multiple that matched: the others are not coming.
      Work planned;
      for (const auto& stage : stages_after_search(config_))
        if (stage->phase() == Phase::BreakEven) planned = stage->plan(config_, plan_in);
      done += Work{0, std::max<std::int64_t>(0, planned.steps - break_even_done_.steps),
                   std::max<std::int64_t>(0, planned.images - break_even_done_.images)};
    }
    const Work rest{0, std::max(after.steps - done.steps, batch_left.steps), std::max(after.images - done.images, batch_left.images)};
    left = rest;
  }
  // A worker's first run pays its warm-up (first calls, allocations): the study ETA waits
  // until the study has timed two runs per worker, so that most of what it extrapolates is warm.
  if (all_.trained.runs >= 2 * static_cast<std::int64_t>(config_.resolved_workers()))
    now_.study_eta_seconds = (phase_.trained.runs >= kPhaseRuns ? phase_ : all_).seconds_for(left);
  if (report_) report_(now_);
}

// ------------------------------------------------------------------ status from files

const char* run_state_name(RunState s) {
  switch (s) {
    case RunState::NotStarted:
      return "not started";
    case RunState::Searching:
      return "searching";
    case RunState::AfterSearch:
      return "final test / comparison";
    case RunState::Complete:
      return "complete";
  }
  return "?";
}

std::vector<JsonView> journal_entries(const fs::path& p) {
  std::vector<JsonView> out;
  if (!fs::exists(p)) return out;
  const std::string text = read_text_file(p);
  std::size_t start = 0, line = 1;
  for (std::size_t nl = text.find('\n'); nl != std::string::npos; start = nl + 1, nl = text.find('\n', start), ++line) {
    if (nl == start) continue;
    out.push_back(parse_json_view(text.substr(start, nl - start), fmt::format("{} line {}", p.string(), line)));
  }
  return out;
}

namespace {

// The images a journal entry's run scored, from its key's split: "val", "test", or
// "val:firstN" (run_key: a rung scored on its first N images), each evaluation once (a run
// with a validation curve, ":curveK" in its key, evaluated at every point of it).
std::int64_t entry_images(const JsonView& split_view, const EvalSizes& sizes, std::size_t evaluations) {
  std::string split = split_view.get<std::string>();
  if (const auto curve = split.find(":curve"); curve != std::string::npos) split = split.substr(0, curve);
  const auto first = split.find(":first");
  const std::string name = split.substr(0, first);
  if (name != "val" && name != "test") split_view.fail_expected("a split (val, test or val:firstN)");
  std::int64_t limit = 0;
  if (first != std::string::npos) {
    const std::string digits = split.substr(first + 6);
    const bool ok = !digits.empty() && digits.size() <= 18 && digits.find_first_not_of("0123456789") == std::string::npos;
    if (!ok || (limit = std::stoll(digits)) < 1) split_view.fail_expected("a split (val, test or val:firstN with N >= 1)");
  }
  return evaluated_images(sizes, data::split_from_name(name), limit) * static_cast<std::int64_t>(std::max<std::size_t>(1, evaluations));
}

// The search's history and its best individual so far, from the checkpoint.
std::vector<ga::GenerationRecord> read_checkpoint_status(const RunDirectory& dir, RunStatus& s) {
  std::vector<ga::GenerationRecord> history;
  const auto ck = dir.read_if_present(run_files::kCheckpoint);
  if (!ck) return history;
  const JsonView& j = *ck;
  for (const auto& r : j.at("history").elements()) history.push_back(r.convert(ga::GenerationRecord::from_json));
  for (const auto& ind : j.at("individuals").elements()) {
    const double fitness = ind.get<double>("fitness");
    const auto id = ind.get<std::uint64_t>("id");
    const int generation = ind.get<int>("generation");
    if (!s.best_fitness || fitness > *s.best_fitness) {
      s.best_fitness = fitness;
      s.best_id = id;
      s.best_generation = generation;
    }
  }
  return history;
}

// What the journal holds: the work done per stage (as trained, and in the search tasks' units),
// the run and training seconds, and what a step of each task cost.
struct JournalWork {
  std::map<eval::RunStage, Work> done_by_stage;    // as trained
  std::map<eval::RunStage, Work> scaled_by_stage;  // in the search tasks' units
  Work timed;                                      // all of it, in the search tasks' units
  double run_seconds = 0, train_seconds = 0;
  TaskCosts costs;
};

JournalWork read_journal_work(const fs::path& journal, const EvalSizes& sizes, const ExperimentConfig& c) {
  struct Entry {
    eval::RunStage stage;
    std::string task;
    Work run;
    double seconds, train_seconds;
  };
  std::vector<Entry> entries;
  std::map<std::string, std::pair<double, double>> task_time;  // task → (training seconds, steps)
  for (const auto& e : journal_entries(journal)) {
    // Read as the run store reads it (a resume would refuse what is refused here).
    const JsonView key = e.at("key");
    static_cast<void>(key.convert(eval::RunKey::from_json));
    const train::RunResult r = e.at("result").convert(train::run_result_from_json);
    entries.push_back({e.find("stage") ? e.at("stage").convert([](const json& j) { return eval::run_stage_from_name(j.get<std::string>()); })
                                       : eval::RunStage::Search,
                       r.task, Work{1, r.steps_done - r.resumed_at, entry_images(key.at("split"), sizes, r.val_curve.size())}, r.seconds,
                       r.train_seconds});
    task_time[r.task].first += r.train_seconds;
    task_time[r.task].second += static_cast<double>(r.steps_done - r.resumed_at);
  }
  // What a step of each task cost, relative to the search tasks' mean, from the journal (the
  // tracker measures it when the study starts; a task without runs counts 1).
  std::map<std::string, double> step_seconds;
  for (const auto& [t, ts] : task_time)
    if (ts.second > 0) step_seconds[t] = ts.first / ts.second;
  JournalWork w;
  w.costs.step = TaskCosts::relative(step_seconds, c.tasks);
  for (const auto& e : entries) {
    w.done_by_stage[e.stage] += e.run;
    w.scaled_by_stage[e.stage] += w.costs.scaled(e.task, e.run);
    w.timed += w.costs.scaled(e.task, e.run);
    w.run_seconds += e.seconds;
    w.train_seconds += e.train_seconds;
  }
  return w;
}

// The run's state and the work left in it (s.left), from what the journal and the run
// directory hold.
void set_state_and_work_left(const RunDirectory& dir, const ExperimentConfig& c, const EvalSizes& sizes,
                             const std::vector<ga::GenerationRecord>& history, const JournalWork& jw, RunStatus& s) {
  Work after_done;
  std::int64_t search_runs = 0;
  for (const auto& [stage, w] : jw.scaled_by_stage) {
    if (stage == eval::RunStage::Search)
      search_runs = w.runs;
    else
      after_done += w;
  }
  if (dir.has(run_files::kSummary)) {
    s.state = RunState::Complete;
    const JsonView summary = dir.read(run_files::kSummary);
    s.final_test = summary.at("final_test").get<std::optional<double>>("overall_mean");  // null: no test seeds
  } else if (s.generations_done >= s.generations) {
    s.state = RunState::AfterSearch;
    std::optional<genome::Genome> winner;
    if (const auto best = dir.read_if_present(run_files::kBestGenome)) winner = best->at("genome").convert(genome::Genome::from_json);
    const Work plan = plan_after_search(c, {sizes, winner ? &*winner : nullptr, search_runs, jw.costs});
    s.left = {std::max<std::int64_t>(0, plan.runs - after_done.runs), std::max<std::int64_t>(0, plan.steps - after_done.steps),
              std::max<std::int64_t>(0, plan.images - after_done.images)};
  } else {
    s.state = s.generations_done == 0 && s.done_by_stage.empty() ? RunState::NotStarted : RunState::Searching;
    // The runs of the generation in progress are in the journal already.
    std::int64_t recorded = 0;
    for (const auto& r : history) recorded += r.evaluations;
    const std::int64_t current = std::max<std::int64_t>(0, search_runs - recorded);
    s.left = plan_search_left(c, sizes, history);
    s.left.runs = std::max<std::int64_t>(0, s.left.runs - current);
    s.left.steps = std::max<std::int64_t>(0, s.left.steps - current * c.steps);
    s.left.images = std::max<std::int64_t>(0, s.left.images - current * sizes.val);
    s.left += plan_after_search(c, {sizes, nullptr, search_runs, jw.costs});
  }
}

}  // namespace

RunStatus read_run_status(const fs::path& run_dir) {
  RunStatus s;
  s.run_dir = run_dir;
  const ExperimentConfig c = load_run_config(run_dir);
  s.preset = c.preset;
  s.model = c.model;
  s.tasks = c.tasks;
  s.generations = c.ga.generations;
  s.workers = c.resolved_workers();
  s.in_use = dir_in_use(run_dir);

  const RunDirectory dir(run_dir);
  const std::vector<ga::GenerationRecord> history = read_checkpoint_status(dir, s);
  s.generations_done = static_cast<int>(history.size());

  const EvalSizes sizes = eval_sizes_of_run(run_dir);
  const fs::path journal = dir / run_files::kJournal;
  const JournalWork jw = read_journal_work(journal, sizes, c);
  s.done_by_stage = jw.done_by_stage;
  s.run_seconds = jw.run_seconds;
  if (fs::exists(journal))
    s.seconds_since_last_run = std::chrono::duration<double>(fs::file_time_type::clock::now() - fs::last_write_time(journal)).count();

  set_state_and_work_left(dir, c, sizes, history, jw, s);
  if (s.state != RunState::Complete && jw.timed.steps > 0 && jw.timed.images > 0 && s.run_seconds > 0) {
    const double per_step = jw.train_seconds / static_cast<double>(jw.timed.steps);
    const double per_image = std::max(0.0, s.run_seconds - jw.train_seconds) / static_cast<double>(jw.timed.images);
    s.eta_seconds = (static_cast<double>(s.left.steps) * per_step + static_cast<double>(s.left.images) * per_image) / std::max(1, s.workers);
  }
  return s;
}

}  // namespace evoopt::experiment
