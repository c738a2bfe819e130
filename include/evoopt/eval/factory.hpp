#pragma once
// The one place that builds evaluators: the study, `evoopt compare` and the CLI describe
// what they need (tasks, budget, workers) and never name a concrete evaluator.
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "evoopt/eval/evaluator.hpp"

namespace evoopt::eval {

struct EvaluatorSpec {
  std::map<std::string, task::Task> tasks;  // loaded here: fingerprints, and the in-process evaluator's data
  task::TaskOptions task_options;           // how `tasks` were loaded; worker processes load them the same way
  train::Budget budget;
  int workers = 1;                       // 1: runs in this process; more: that many worker processes
  std::filesystem::path worker_program;  // empty: default_worker_program() (this executable)
  bool use_mpi = true;                   // under MPI: train on the ranks (false: locally, e.g. to benchmark both)
};

// Under MPI (eval::mpi::active(), rank 0) and use_mpi: the MPI ranks, whatever `workers` says;
// workers == 1: LocalEvaluator (no process start-up; the same results as any worker count);
// workers > 1: ProcessEvaluator. Throws evoopt::Error naming the problem.
std::unique_ptr<Evaluator> make_evaluator(const EvaluatorSpec& spec);

}  // namespace evoopt::eval
