#pragma once
// Benchmarks of the study's machinery (speed is measured here, never in tests).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "evoopt/experiment/config.hpp"
#include "evoopt/task/models.hpp"
#include "evoopt/task/task.hpp"

namespace evoopt::experiment {

struct WorkerBenchRow {
  std::string kind;  // "in-process", "worker processes", "MPI ranks"
  int workers = 0;
  double startup_seconds = 0;  // starting the evaluator (worker processes load their tasks)
  double seconds = 0;          // training the runs, summed over the rounds
  double runs_per_hour = 0;
  double speedup = 0;      // runs per hour / the first row's
  bool identical = false;  // every result, in every round, equals the first row's (accuracy, losses)
};

// Trains the same search runs — `genomes` genomes (the seed presets, then random genomes
// of the config's search space, drawn from the config's seed) on each of the config's
// tasks, at its steps and data — once per local worker count and, under MPI, once more on
// the MPI ranks, without a run store, and times them one after another; with rounds > 1 the
// whole sequence is repeated, interleaved (each evaluator started once), and each row's
// time is the sum of its rounds.
std::vector<WorkerBenchRow> bench_workers(const ExperimentConfig& config, const std::vector<int>& worker_counts, int genomes, int rounds = 1);

// The input shape `evoopt bench optimizer --task NAME` builds its model for: a built-in image
// dataset's (MNIST and Fashion-MNIST 1×28×28, CIFAR-10 3×32×32, with its classes). Throws
// evoopt::Error naming the task when it is unknown or a text.
task::InputShape bench_input_shape(const std::string& task);

// The single-core sgemm rate in GFLOP/s (torch::mm of 256×256 matrices, one thread, for half
// a second): the reference `evoopt bench train` compares the tiny models' training rate with.
double sgemm_gflops();

struct TrainBenchRow {
  std::string task, model, layout, label;
  std::int64_t batch = 0;
  double ms_per_step = 0;     // the training steps alone (sampling, augmentation, forward, backward, step)
  double gflop_per_step = 0;  // 3 × the analytic forward FLOPs × batch
  double eval_ms = 0;         // scoring the validation split after training
};

// `evoopt bench train`: each task × model × layout trained in this process on one thread
// (Adam, `steps` steps after a 5-step warm-up, tasks loaded with `options` and the row's
// model). `profile` non-empty: a trace per row, PROFILE.TASK.MODEL.LAYOUT.json. `row_done`
// is called with each row as soon as it is measured.
std::vector<TrainBenchRow> bench_train(const task::TaskOptions& options, const std::vector<std::string>& tasks,
                                       const std::vector<std::string>& models, const std::vector<std::string>& layouts, std::int64_t steps,
                                       const std::string& profile, const std::function<void(const TrainBenchRow&)>& row_done = {});

struct OptimizerBench {
  std::int64_t parameters = 0;
  int steps = 0, rounds = 0;
  double genome_us = 0, torch_us = 0;  // per step: GenomeOptimizer(adam), torch::optim::Adam
  double program_us = 0;               // per step: GenomeOptimizer running adam compiled to a program
};

// `evoopt bench optimizer`: GenomeOptimizer(adam) against torch::optim::Adam and against Adam
// as a program (genome/program.hpp, interpreted), step() alone on the same model and random
// gradients, one thread, `steps` steps each, interleaved in rounds.
OptimizerBench bench_optimizer(const std::string& task, const std::string& model, int steps);

// Checks, before anything is timed, that `evoopt bench train --profile PREFIX` can write its
// traces PREFIX.TASK.MODEL.LAYOUT.json: PREFIX's directory exists and is writable. Throws
// evoopt::Error naming the directory.
void check_profile_prefix(const std::string& prefix);

}  // namespace evoopt::experiment
