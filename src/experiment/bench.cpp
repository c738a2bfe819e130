#include "evoopt/experiment/bench.hpp"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include "evoopt/common/blas.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/limits.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/eval/mpi.hpp"
#include "evoopt/experiment/study.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/optim/genome_optimizer.hpp"
#include "evoopt/train/trainer.hpp"

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

std::vector<WorkerBenchRow> bench_workers(const ExperimentConfig& config, const std::vector<int>& worker_counts, int genomes, int rounds) {
  config.validate();
  if (worker_counts.empty()) throw Error("bench workers: give at least one worker count");
  for (int w : worker_counts) {
    if (w < 1) throw Error("bench workers: worker counts must be >= 1, got " + std::to_string(w));
    limits::check("bench workers: workers", static_cast<std::int64_t>(w), limits::kWorkers);
  }
  if (genomes < 1) throw Error("bench workers: genomes must be >= 1, got " + std::to_string(genomes));
  limits::check("bench workers: genomes", static_cast<std::int64_t>(genomes), limits::kPopulation);
  if (rounds < 1) throw Error("bench workers: rounds must be >= 1, got " + std::to_string(rounds));
  // Every round trains genomes × tasks runs on each worker count.
  limits::check(
      "bench workers: genomes x tasks x rounds x worker counts",
      static_cast<std::int64_t>(genomes) * static_cast<std::int64_t>(config.tasks.size()) * rounds * static_cast<std::int64_t>(worker_counts.size()),
      limits::kRuns);
  const LoadedTasks loaded = load_tasks(config);

  std::vector<genome::Genome> pool;
  for (const char* p : {"sgd", "adam", "rmsprop"})
    if (static_cast<int>(pool.size()) < genomes) pool.push_back(genome::preset(p));
  Rng rng(derive_seed(config.seed, "bench/workers"));
  while (static_cast<int>(pool.size()) < genomes) pool.push_back(ga::random_genome(config.ga.space, rng));
  std::vector<eval::RunRequest> requests;
  for (const auto& g : pool)
    for (const auto& t : config.tasks) requests.push_back({g, t, ga::search_seed(config.seed, t, 0), data::Split::Val, 0, 0});

  std::vector<int> counts = worker_counts;
  if (eval::mpi::active()) counts.push_back(0);  // 0: the MPI ranks
  std::vector<WorkerBenchRow> rows(counts.size());
  std::vector<std::unique_ptr<eval::Evaluator>> evaluators;
  for (std::size_t k = 0; k < counts.size(); ++k) {
    ExperimentConfig c = config;
    c.workers = counts[k] == 0 ? 1 : counts[k];
    const auto t0 = std::chrono::steady_clock::now();
    evaluators.push_back(make_study_evaluator(c, loaded, /*use_mpi=*/counts[k] == 0));
    rows[k].startup_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rows[k].workers = evaluators.back()->workers();
    rows[k].kind = counts[k] == 0 ? "MPI ranks" : counts[k] == 1 ? "in-process" : "worker processes";
    rows[k].identical = true;
  }
  // Round by round, each evaluator in turn (A B A B ...), so that a drift of the machine's
  // speed falls on every row alike; each row's time is its rounds' sum.
  std::vector<std::optional<train::RunResult>> reference;
  for (int round = 0; round < rounds; ++round)
    for (std::size_t k = 0; k < counts.size(); ++k) {
      const auto t1 = std::chrono::steady_clock::now();
      const auto results = evaluators[k]->evaluate(requests, {}, nullptr);
      rows[k].seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
      if (reference.empty()) reference = results;
      for (std::size_t i = 0; i < results.size(); ++i) rows[k].identical = rows[k].identical && same_result(results[i], reference[i]);
    }
  for (auto& row : rows) {
    row.runs_per_hour = 3600.0 * static_cast<double>(requests.size()) * rounds / row.seconds;
    row.speedup = row.runs_per_hour / rows.front().runs_per_hour;
  }
  return rows;
}

task::InputShape bench_input_shape(const std::string& name) {
  const task::TaskName parsed = task::parse_task_name(name);  // an unknown dataset is named here
  const data::DatasetSpec& spec = data::dataset_spec(parsed.dataset);
  const auto classes = static_cast<std::int64_t>(spec.classes.size());
  switch (spec.format) {
    case data::Format::Idx:
      return {1, 28, 28, classes};
    case data::Format::CifarBinary:
      return {3, 32, 32, classes};
    default:
      throw Error("bench optimizer: task '" + name + "' is a text; it times image models (mnist, fashion_mnist, cifar10)");
  }
}

void check_profile_prefix(const std::string& prefix) {
  namespace fs = std::filesystem;
  const fs::path p(prefix);
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("--profile " + prefix + ": directory " + dir.string() + " does not exist");
  if (::access(dir.c_str(), W_OK) != 0) throw Error("--profile " + prefix + ": directory " + dir.string() + " is not writable");
}

double sgemm_gflops() {
  const std::int64_t n = 256;
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  auto c = torch::mm(a, b);
  int reps = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double secs = 0;
  while (secs < 0.5) {
    c = torch::mm(a, b);
    ++reps;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return 2.0 * n * n * n * reps / secs / 1e9;
}

std::vector<TrainBenchRow> bench_train(const task::TaskOptions& options, const std::vector<std::string>& tasks,
                                       const std::vector<std::string>& models, const std::vector<std::string>& layouts, std::int64_t steps,
                                       const std::string& profile, const std::function<void(const TrainBenchRow&)>& row_done) {
  if (!profile.empty()) check_profile_prefix(profile);
  at::set_num_threads(1);
  set_blas_threads(1);
  const genome::Genome g = genome::preset("adam");
  std::vector<TrainBenchRow> rows;
  for (const auto& tn : tasks)
    for (const auto& mn : models) {
      task::TaskOptions o = options;
      o.model = task::model_preset_from_name(mn);
      const task::Task t = task::load_task(tn, o);
      for (const auto& layout : layouts) {
        train::Budget b;
        b.steps = steps > 0 ? steps : 50;
        b.log_every = b.steps;
        b.memory_format = train::layout_from_name(layout);
        train::Budget warm{5, 5};
        warm.memory_format = b.memory_format;
        train::train_and_evaluate(g, t, 0, warm);  // warm-up
        std::optional<torch::autograd::profiler::RecordProfile> recording;
        if (!profile.empty()) recording.emplace(fmt::format("{}.{}.{}.{}.json", profile, tn, mn, layout));
        const auto r = train::train_and_evaluate(g, t, 1, b);
        recording.reset();  // writes the trace
        TrainBenchRow row;
        row.task = tn;
        row.model = task::model_preset_name(t.model);
        row.layout = layout;
        row.label = t.label();
        row.batch = t.batch_size;
        row.ms_per_step = 1000.0 * r.train_seconds / static_cast<double>(r.steps_done);
        row.gflop_per_step = t.step_flops() / 1e9;
        row.eval_ms = 1000.0 * (r.seconds - r.train_seconds);
        rows.push_back(row);
        if (row_done) row_done(row);
      }
    }
  return rows;
}

OptimizerBench bench_optimizer(const std::string& task_name, const std::string& model, int steps) {
  const task::InputShape in = bench_input_shape(task_name);
  at::set_num_threads(1);
  auto model_a = task::make_model(task::model_preset_from_name(model), in, 0);
  auto model_b = task::make_model(task::model_preset_from_name(model), in, 0);
  auto model_c = task::make_model(task::model_preset_from_name(model), in, 0);
  for (auto* m : {&model_a, &model_b, &model_c})
    for (auto& p : (*m)->parameters()) p.mutable_grad() = torch::randn_like(p);
  optim::GenomeOptimizer ga(model_a->parameters(), optim::GenomeOptimizerOptions(genome::preset("adam")));
  torch::optim::Adam tb(model_b->parameters(), torch::optim::AdamOptions(1e-3));
  optim::GenomeOptimizer tc(model_c->parameters(), optim::GenomeOptimizerOptions(genome::program_genome(genome::preset("adam"))));
  OptimizerBench out;
  out.rounds = 20;
  out.steps = steps > 0 ? steps : 200;
  double ta = 0, tbt = 0, tct = 0;
  for (int r = 0; r < out.rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < out.steps; ++s) ga.step();
    auto t1 = std::chrono::steady_clock::now();
    for (int s = 0; s < out.steps; ++s) tb.step();
    auto t2 = std::chrono::steady_clock::now();
    for (int s = 0; s < out.steps; ++s) tc.step();
    auto t3 = std::chrono::steady_clock::now();
    ta += std::chrono::duration<double>(t1 - t0).count();
    tbt += std::chrono::duration<double>(t2 - t1).count();
    tct += std::chrono::duration<double>(t3 - t2).count();
  }
  for (auto& p : model_a->parameters()) out.parameters += p.numel();
  const double n = static_cast<double>(out.rounds) * out.steps;
  out.genome_us = 1e6 * ta / n;
  out.torch_us = 1e6 * tbt / n;
  out.program_us = 1e6 * tct / n;
  return out;
}

}  // namespace evoopt::experiment
