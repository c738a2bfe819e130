#include "evoopt/experiment/bench.hpp"

#include <chrono>

#include "evoopt/common/error.hpp"
#include "evoopt/eval/mpi.hpp"
#include "evoopt/experiment/study.hpp"

namespace evoopt::experiment {

namespace {
// Same result, timings aside (through the journal's JSON, where NaN losses compare equal).
bool same_result(const std::optional<train::RunResult>& a, const std::optional<train::RunResult>& b) {
  if (!a || !b) return false;
  auto ja = train::to_json(*a), jb = train::to_json(*b);
  for (auto* j : {&ja, &jb}) {
    j->erase("seconds");
    j->erase("train_seconds");
  }
  return ja == jb;
}
}  // namespace

std::vector<WorkerBenchRow> bench_workers(const ExperimentConfig& config, const std::vector<int>& worker_counts, int genomes) {
  config.validate();
  if (worker_counts.empty()) throw Error("bench workers: give at least one worker count");
  for (int w : worker_counts)
    if (w < 1) throw Error("bench workers: worker counts must be >= 1, got " + std::to_string(w));
  if (genomes < 1) throw Error("bench workers: genomes must be >= 1, got " + std::to_string(genomes));
  const LoadedTasks loaded = load_tasks(config);

  std::vector<genome::Genome> pool;
  for (const char* p : {"sgd", "adam", "rmsprop"})
    if (static_cast<int>(pool.size()) < genomes) pool.push_back(genome::preset(p));
  Rng rng(derive_seed(config.seed, "bench/workers"));
  while (static_cast<int>(pool.size()) < genomes) pool.push_back(ga::random_genome(config.ga.space, rng));
  std::vector<eval::RunRequest> requests;
  for (const auto& g : pool)
    for (const auto& t : config.tasks) requests.push_back({g, t, ga::search_seed(config.seed, t, 0), data::Split::Val, 0, 0});

  std::vector<WorkerBenchRow> rows;
  std::vector<std::optional<train::RunResult>> reference;
  std::vector<int> counts = worker_counts;
  if (eval::mpi::active()) counts.push_back(0);  // 0: the MPI ranks
  for (int w : counts) {
    ExperimentConfig c = config;
    c.workers = w == 0 ? 1 : w;
    WorkerBenchRow row;
    const auto t0 = std::chrono::steady_clock::now();
    const auto evaluator = make_study_evaluator(c, loaded, /*use_mpi=*/w == 0);
    row.workers = evaluator->workers();
    row.kind = w == 0 ? "MPI ranks" : w == 1 ? "in-process" : "worker processes";
    const auto t1 = std::chrono::steady_clock::now();
    const auto results = evaluator->evaluate(requests, {}, nullptr);
    const auto t2 = std::chrono::steady_clock::now();
    row.startup_seconds = std::chrono::duration<double>(t1 - t0).count();
    row.seconds = std::chrono::duration<double>(t2 - t1).count();
    row.runs_per_hour = 3600.0 * static_cast<double>(requests.size()) / row.seconds;
    if (rows.empty()) reference = results;
    row.speedup = row.runs_per_hour / (rows.empty() ? row.runs_per_hour : rows.front().runs_per_hour);
    row.identical = true;
    for (std::size_t i = 0; i < results.size(); ++i) row.identical = row.identical && same_result(results[i], reference[i]);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace evoopt::experiment
