#include "evoopt/eval/factory.hpp"

#include "evoopt/common/error.hpp"
#include "evoopt/eval/mpi.hpp"
#include "evoopt/eval/process_evaluator.hpp"

namespace evoopt::eval {

std::unique_ptr<Evaluator> make_evaluator(const EvaluatorSpec& spec) {
  if (spec.use_mpi && mpi::active()) return mpi::make_mpi_evaluator(spec.tasks, spec.task_options, spec.budget);  // under mpirun: the ranks
  if (spec.workers < 1) throw Error("workers must be >= 1, got " + std::to_string(spec.workers));
  if (spec.workers == 1) return std::make_unique<LocalEvaluator>(spec.tasks, spec.budget);
  return std::make_unique<ProcessEvaluator>(spec.tasks, spec.task_options, spec.budget, spec.workers,
                                            spec.worker_program.empty() ? default_worker_program() : spec.worker_program);
}

}  // namespace evoopt::eval
