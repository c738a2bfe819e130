#pragma once
// MPI across machines: `mpirun -np K build/evoopt evolve ...`. Rank 0 runs the command (the
// GA, the study) and hands training runs to ranks 1..K-1 as they free up (MpiEvaluator, the
// same protocol as worker processes); the other ranks serve requests until rank 0 ends.
// Built when CMake finds MPI (option EVOOPT_WITH_MPI); otherwise a launch with more than one
// rank is refused with one line.
#include <memory>

#include "evoopt/eval/evaluator.hpp"

namespace evoopt::eval::mpi {

bool built_with_mpi();
// The world size and rank this process was launched with, read from the launcher's
// environment before MPI starts (Open MPI's OMPI_COMM_WORLD_*, PMIx, Slurm's PMI_*); 1 / 0
// when it was not launched by an MPI launcher.
int launched_size();
int launched_rank();
// Starts MPI; throws evoopt::Error when evoopt was built without it.
void start(int* argc, char*** argv);
bool active();  // started, with more than one rank
int rank();
int size();
// Ranks > 0: answer requests from rank 0 until it says stop; returns the exit code.
int serve();
// Rank 0 tells every other rank to stop; every rank ends MPI. A no-op when not started.
void finish();

// The evaluator of rank 0: ranks 1..size-1 are its workers. Throws evoopt::Error when MPI
// is not active.
std::unique_ptr<Evaluator> make_mpi_evaluator(std::map<std::string, task::Task> tasks, task::TaskOptions task_options, train::Budget budget);

}  // namespace evoopt::eval::mpi
