// The asynchronous steady-state mode of the GA (GaOptions::async): regularized evolution
// (Real, Aggarwal, Huang, Le 2019, "Regularized Evolution for Image Classifier Architecture
// Search", Algorithm 1) with this GA's operators. No generation barrier: when an individual's
// runs are all in, it joins the population (the oldest member leaves once there are
// `population`) and a child bred from the population takes its place on the workers.
//
// What happens is a function of the seed and of the order in which individuals finished,
// which RUN_DIR/completions.jsonl records (one line per individual, appended durably before
// anything depends on it). A resume replays that order: the runs come from the journal, the
// same children are bred, and the search continues live where the file ends. The same file
// in a fresh directory replays the search with any worker count (training what the journal
// lacks), which is how a run with many workers is reproduced.
#include <algorithm>
#include <chrono>
#include <deque>
#include <set>

#include <fmt/format.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/common/run_dir.hpp"
#include "evoopt/data/checksum.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"

namespace evoopt::ga {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr int kMaxInFlight = 1 << 20;  // individuals in flight: far above any worker count a machine runs

struct CompletionLog {
  int in_flight = 0;                 // individuals kept in flight once the population is full
  std::string search;                // fingerprint of the GA options the order was recorded under
  std::vector<std::uint64_t> order;  // ids in the order they finished
};

// Reads RUN_DIR/completions.jsonl: a header line, then {"n": k, "id": id} per finished
// individual. A torn last line (a crash mid-append) is left out; any other bad line names the
// file, line and key.
std::optional<CompletionLog> read_completions(const fs::path& path) {
  if (path.empty() || !fs::exists(path)) return std::nullopt;
  const auto lines = read_journal_lines(path);
  if (lines.empty()) return std::nullopt;
  CompletionLog log;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    // Errors name the file, the line and the key (JsonView).
    const JsonView j = parse_json_view(lines[i], fmt::format("{} line {}", path.string(), i + 1));
    if (i == 0) {
      RunDirectory::check_header(run_files::kCompletions, j);
      // Range-checked as written: a value that does not fit must not wrap to a small one.
      log.in_flight = j.get_in<int>("in_flight", 1, kMaxInFlight);
      log.search = j.get<std::string>("search");
      continue;
    }
    if (j.get<std::size_t>("n") != i - 1) j.at("n").fail(fmt::format("entry number {} where {} was expected", j.at("n").raw().dump(), i - 1));
    log.order.push_back(j.get<std::uint64_t>("id"));
  }
  return log;
}

// The completion log checked against this search: the order it recorded (replayed before the
// search goes on live) and how many individuals are kept in flight. A fresh log gets its
// header line here.
struct CompletionPlan {
  fs::path log_path;
  std::vector<std::uint64_t> replay;
  std::size_t in_flight_target = 0;
};

CompletionPlan open_completions(const fs::path& run_dir, const GaOptions& options, const eval::Evaluator& evaluator) {
  const fs::path log_path = RunDirectory(run_dir) / run_files::kCompletions;
  // The order replays only the search it was recorded for (seed, population, operators, tasks, ...).
  const std::string options_text = options.to_json().dump();
  const std::string search = data::sha256_hex(options_text.data(), options_text.size()).substr(0, 16);
  const std::optional<CompletionLog> recorded = read_completions(log_path);
  if (recorded && recorded->search != search)
    throw Error(
        fmt::format("{} line 1: recorded for another search (GA options fingerprint {} there, {} now)", log_path.string(), recorded->search, search));
  const std::vector<std::uint64_t> replay = recorded ? recorded->order : std::vector<std::uint64_t>{};
  // How many individuals are kept in flight is part of what the search does, so a replay
  // takes it from the log, whatever the number of workers now.
  const std::size_t in_flight_target = static_cast<std::size_t>(recorded ? recorded->in_flight : std::max(1, evaluator.workers()));
  if (!recorded && !log_path.empty())
    RunDirectory(run_dir).write_json(run_files::kCompletions, json{{"in_flight", in_flight_target}, {"search", search}}, -1);
  return {log_path, replay, in_flight_target};
}
}  // namespace

void GeneticAlgorithm::tally_search_runs(GaOutcome& outcome) const {
  for (const auto& e : store_->entries()) {
    if (e.stage != eval::RunStage::Search) continue;
    ++outcome.runs_total;
    outcome.steps_total += e.result.steps_done - e.result.resumed_at;  // a continued run: its own steps
    outcome.train_seconds_total += e.result.seconds;
  }
}

// One asynchronous run: the individuals bred and not yet finished, the runs they wait for, the
// aging population, and the block of finished individuals that makes the next row of
// history.csv.
struct GeneticAlgorithm::AsyncRun {
  struct Pending {
    Individual individual;
    int missing = 0;  // runs not yet in
  };

  AsyncRun(GeneticAlgorithm& ga, const GaEvents& events, const std::atomic<bool>* cancel, GaOutcome& outcome, const CompletionPlan& plan);
  AsyncRun(const AsyncRun&) = delete;  // stream.on_trained points at this object
  AsyncRun& operator=(const AsyncRun&) = delete;

  bool search();  // false: interrupted
  void count_trained(const train::RunResult& r);
  void start_block(int index);
  void launch(Individual ind);
  void receive_one();
  std::uint64_t next_replayed();
  std::uint64_t next_ready();
  void finish(std::uint64_t id);
  void close_block();
  void end_replay();
  void top_up();

  GeneticAlgorithm& ga;
  const GaEvents& events;
  const std::atomic<bool>* cancel;
  GaOutcome& outcome;
  const fs::path log_path;
  const std::vector<std::uint64_t> replay;
  const std::size_t in_flight_target;
  const std::size_t pop_size;
  const std::int64_t total;
  const int runs_per_individual;
  std::map<std::uint64_t, Pending> in_flight;         // by id, bred and not yet finished
  std::map<Key, std::vector<std::uint64_t>> waiting;  // a submitted run and the individuals that need it
  std::map<std::uint64_t, Key> ticket_key;            // the stream's ticket of each submitted run
  std::deque<std::uint64_t> ready;                    // ids whose runs are all in, in the order they got ready
  std::deque<Individual> population;                  // oldest first
  std::vector<Individual> all;
  std::vector<GenerationRecord> history;
  std::set<Key> known;  // runs of finished individuals (history.csv `evaluations` counts the others)
  std::int64_t created = 0, finished = 0;
  Rng rng;

  // A block of `population` finished individuals is one row of history.csv.
  GenerationRecord block;
  std::vector<Individual> block_members;
  std::chrono::steady_clock::time_point block_t0 = std::chrono::steady_clock::now();
  int block_runs = 0;
  eval::StoreStream stream;
  std::vector<std::pair<GenerationRecord, Individual>> replayed_blocks;  // finished while replaying, reported at its end
};

GeneticAlgorithm::AsyncRun::AsyncRun(GeneticAlgorithm& ga, const GaEvents& events, const std::atomic<bool>* cancel, GaOutcome& outcome,
                                     const CompletionPlan& plan)
    : ga(ga),
      events(events),
      cancel(cancel),
      outcome(outcome),
      log_path(plan.log_path),
      replay(plan.replay),
      in_flight_target(plan.in_flight_target),
      pop_size(static_cast<std::size_t>(ga.options_.population)),
      total(static_cast<std::int64_t>(ga.options_.population) * ga.options_.generations),
      runs_per_individual(static_cast<int>(ga.options_.tasks.size()) * ga.options_.search_seeds),
      rng(derive_seed(ga.options_.seed, "ga")),
      stream(*ga.store_, ga.evaluator_, eval::RunStage::Search) {
  stream.on_trained = [this](const train::RunResult& r) { count_trained(r); };
}

// A run trained now (not one the journal answers).
void GeneticAlgorithm::AsyncRun::count_trained(const train::RunResult& r) {
  ++outcome.runs_executed;
  outcome.steps_executed += r.steps_done - r.resumed_at;
  ++block_runs;
  const int block_total = ga.options_.population * runs_per_individual;
  if (events.run_finished) events.run_finished(std::min(block_runs, block_total), block_total, r);
}

void GeneticAlgorithm::AsyncRun::start_block(int index) {
  block = GenerationRecord{};
  block.generation = index;
  block_members.clear();
  block_t0 = std::chrono::steady_clock::now();
  block_runs = 0;
  if (events.generation_started) events.generation_started(index, ga.options_.generations);
}

// Submits the runs of `ind` that no one has asked for yet; it is ready at once when all are in.
void GeneticAlgorithm::AsyncRun::launch(Individual ind) {
  ++created;
  const std::uint64_t id = ind.id;
  Pending p{std::move(ind), 0};
  for (const auto& task : ga.options_.tasks)
    for (int s = 0; s < ga.options_.search_seeds; ++s) {
      const Key k{p.individual.genome.hash(), task, s};
      if (ga.results_.count(k)) continue;
      ++p.missing;
      auto& w = waiting[k];
      if (w.empty()) ticket_key[stream.submit(ga.request(k, p.individual.genome))] = k;
      w.push_back(id);
    }
  const bool done = p.missing == 0;
  in_flight.emplace(id, std::move(p));
  if (done) ready.push_back(id);
}

// Waits for one run; throws eval::Interrupted on cancel.
void GeneticAlgorithm::AsyncRun::receive_one() {
  auto c = stream.next_done(cancel);
  if (!c) throw std::logic_error("asynchronous GA: an individual waits for runs that were never submitted");
  const Key k = ticket_key.at(c->ticket);
  ticket_key.erase(c->ticket);
  ga.results_[k] = c->result;
  for (std::uint64_t id : waiting.at(k))
    if (--in_flight.at(id).missing == 0) ready.push_back(id);
  waiting.erase(k);
}

// Replay: the recorded individual finishes next, whatever else is ready.
std::uint64_t GeneticAlgorithm::AsyncRun::next_replayed() {
  const std::uint64_t id = replay[static_cast<std::size_t>(finished)];
  if (!in_flight.count(id))
    throw Error(fmt::format("{} line {}: individual {} was not being evaluated at that point (the file belongs to another run or config)",
                            log_path.string(), finished + 2, id));
  while (in_flight.at(id).missing > 0) receive_one();
  ready.erase(std::find(ready.begin(), ready.end(), id));
  return id;
}

// Live: the first individual whose runs are all in finishes next; the completion log records
// it before anything depends on it.
std::uint64_t GeneticAlgorithm::AsyncRun::next_ready() {
  while (ready.empty()) receive_one();
  const std::uint64_t id = ready.front();
  ready.pop_front();
  if (!log_path.empty()) append_line_durable(log_path, json{{"n", finished}, {"id", id}}.dump());
  return id;
}

// `id` joins the population (the oldest leaves once it is full) and its block.
void GeneticAlgorithm::AsyncRun::finish(std::uint64_t id) {
  Individual ind = std::move(in_flight.at(id).individual);
  in_flight.erase(id);
  ga.score_full_runs(ind);
  population.push_back(ind);
  if (population.size() > pop_size) population.pop_front();  // aging: the oldest leaves
  all.push_back(ind);
  block_members.push_back(ind);
  ++finished;
  if (finished % ga.options_.population != 0 && finished != total) return;
  close_block();
}

// The block is complete: one history row, outputs rewritten.
void GeneticAlgorithm::AsyncRun::close_block() {
  std::set<Key> fresh;
  for (const auto& m : block_members)
    for (const auto& t : ga.options_.tasks)
      for (int s = 0; s < ga.options_.search_seeds; ++s)
        if (!known.count({m.genome.hash(), t, s})) fresh.insert({m.genome.hash(), t, s});
  known.insert(fresh.begin(), fresh.end());
  block.evaluations = static_cast<int>(fresh.size());
  block.reused = static_cast<int>(block_members.size()) * runs_per_individual - block.evaluations;
  const std::vector<Individual> current(population.begin(), population.end());
  summarise_population(current, ga.options_.tasks, block);
  block.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - block_t0).count();
  history.push_back(block);
  // While the recorded order replays, nothing is written or reported: a log that turns out
  // not to fit this run is refused with the run directory untouched.
  if (finished <= static_cast<std::int64_t>(replay.size())) {
    replayed_blocks.push_back({block, best_of(current)});
  } else {
    ga.write_outputs(history, all);
    if (events.generation_finished) events.generation_finished(block, best_of(current));
  }
  if (finished < total) start_block(static_cast<int>(finished / ga.options_.population));
}

// The replay is over (and valid): its outputs and the blocks it finished, once.
void GeneticAlgorithm::AsyncRun::end_replay() {
  if (!history.empty()) ga.write_outputs(history, all);
  for (const auto& [rec, best] : replayed_blocks)
    if (events.generation_finished) events.generation_finished(rec, best);
  replayed_blocks.clear();
}

// Once the population is full, keep `in_flight_target` individuals bred and training.
void GeneticAlgorithm::AsyncRun::top_up() {
  if (population.size() < pop_size) return;
  if (in_flight.size() >= in_flight_target || created >= total) return;
  ga.strategy_->tell(std::vector<Individual>(population.begin(), population.end()));
  while (in_flight.size() < in_flight_target && created < total)
    launch(ga.strategy_->ask_child(static_cast<int>(finished / ga.options_.population), rng));
}

// Breeds the first individuals, then finishes them one at a time (in the recorded order while
// it lasts) until population × generations have finished.
bool GeneticAlgorithm::AsyncRun::search() {
  start_block(0);
  for (auto& ind : ga.strategy_->ask_initial(rng)) launch(std::move(ind));
  try {
    while (finished < total) {
      if (cancel != nullptr && cancel->load()) throw eval::Interrupted();
      const bool replaying = finished < static_cast<std::int64_t>(replay.size());
      const std::uint64_t id = replaying ? next_replayed() : next_ready();
      finish(id);
      if (replaying && finished == static_cast<std::int64_t>(replay.size())) end_replay();
      top_up();
    }
  } catch (const eval::Interrupted&) {
    return false;
  }
  return true;
}

GaOutcome GeneticAlgorithm::run_async(const GaEvents& events, const std::atomic<bool>* cancel) {
  GaOutcome outcome;
  if (!run_dir_.empty()) fs::create_directories(run_dir_);
  results_.clear();
  const CompletionPlan plan = open_completions(run_dir_, options_, evaluator_);
  outcome.resumed = !plan.replay.empty() || store_->size() > 0;
  AsyncRun run(*this, events, cancel, outcome, plan);
  if (static_cast<std::int64_t>(run.replay.size()) > run.total)
    throw Error(fmt::format("{}: {} individuals finished, more than this run's {} (population × generations)", run.log_path.string(),
                            run.replay.size(), run.total));
  const bool completed = run.search();
  outcome.history = run.history;
  if (!run.all.empty()) outcome.best = best_of(run.all);
  if (!completed) return outcome;  // completed = false: the journal and the completion log hold what finished
  outcome.completed = true;
  tally_search_runs(outcome);
  return outcome;
}

}  // namespace evoopt::ga
