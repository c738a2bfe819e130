#pragma once
// Local parallel evaluation in worker processes. Small models use cores best as
// parallel single-threaded runs, and separate processes are safe with any BLAS
// (OpenBLAS's serial build is not safe when two threads of one process call it).
//
// Protocol (JSON lines over a Unix socket on the worker's stdin/stdout):
//   parent → worker  {"setup": {"tasks": [names], "task_options": {...}, "budget": {...}}}
//   worker → parent  {"ready": {"fingerprints": {task: fp}, "pid": n}}   or {"error": "..."}
//   parent → worker  {"id": n, "request": RunRequest}
//   worker → parent  {"id": n, "result": RunResult, "cpu_seconds": s} or {"id": n, "error": "..."}
// End of input ends the worker. Every request runs through eval::run_request, so a
// result does not depend on which worker (or whether a worker) ran it.
#include <sys/types.h>

#include <filesystem>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "evoopt/eval/evaluator.hpp"

namespace evoopt::eval {

// The worker's side: reads the protocol from `in`, answers on `out`, until end of input.
// Returns the process exit code. `evoopt worker` is this function.
int run_worker(std::istream& in, std::ostream& out);

// The program started as `PROGRAM worker`: $EVOOPT_WORKER_PROGRAM when set, else this
// process's own executable (/proc/self/exe), which is right whenever evoopt itself runs.
std::filesystem::path default_worker_program();

class ProcessEvaluator : public Evaluator {
 public:
  // Starts `workers` processes, each loading `tasks` (names) with `task_options`, and checks
  // that every worker computes the same run-store fingerprint as `tasks` here (same data,
  // binary, libraries); throws evoopt::Error naming the problem otherwise.
  ProcessEvaluator(std::map<std::string, task::Task> tasks, task::TaskOptions task_options, train::Budget budget, int workers,
                   std::filesystem::path program = default_worker_program());
  ~ProcessEvaluator() override;
  ProcessEvaluator(const ProcessEvaluator&) = delete;
  ProcessEvaluator& operator=(const ProcessEvaluator&) = delete;

  // Hands requests to idle workers in request order; results come back in request order.
  // A worker that dies or fails ends the call with an evoopt::Error naming the worker and its
  // request (completed runs have been reported through on_done, so a run store keeps them).
  // On cancel, running workers are stopped and their runs come back empty; the next call
  // starts fresh workers.
  std::vector<std::optional<train::RunResult>> evaluate(const std::vector<RunRequest>& requests, const RunDone& on_done,
                                                        const std::atomic<bool>* cancel) override;
  int workers() const override { return workers_; }
  std::string describe() const override;
  std::string fingerprint(const std::string& task) const override;
  std::int64_t default_steps() const override { return budget_.steps; }
  double live_worker_cpu_seconds() const override;
  std::vector<pid_t> worker_pids() const;  // for tests and diagnostics

 private:
  struct Worker {
    pid_t pid = -1;
    int fd = -1;
    std::string buffer;   // bytes read but not yet a full line
    long request = -1;    // index of the request it runs, or -1 when idle
    double cpu_seconds = 0;
  };
  void start();
  void stop();
  void spawn(Worker& w);
  std::string read_line(Worker& w, int timeout_ms);  // empty on timeout
  std::string describe_exit(Worker& w);
  [[noreturn]] void fail(Worker& w, const std::string& what, const RunRequest* request);

  std::map<std::string, task::Task> tasks_;
  task::TaskOptions task_options_;
  train::Budget budget_;
  int workers_;
  std::filesystem::path program_;
  std::map<std::string, std::string> fingerprints_;
  std::vector<Worker> pool_;
};

}  // namespace evoopt::eval
