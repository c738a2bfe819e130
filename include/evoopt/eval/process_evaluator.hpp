#pragma once
// Parallel evaluation by workers reached through messages: local worker processes
// (ProcessEvaluator) and MPI ranks (MpiEvaluator, eval/mpi.hpp). Small models use cores
// best as parallel single-threaded runs, and separate processes are safe with any BLAS
// (OpenBLAS's serial build is not safe when two threads of one process call it).
//
// Protocol (one JSON text per message; for worker processes, lines over a Unix socket on
// the worker's stdin/stdout):
//   parent → worker  {"setup": {"tasks": [names], "task_options": {...}, "budget": {...}}}
//   worker → parent  {"ready": {"fingerprints": {task: fp}, "pid": n}}   or {"error": "..."}
//   parent → worker  {"id": n, "request": RunRequest}
//   worker → parent  {"id": n, "result": RunResult, "cpu_seconds": s} or {"id": n, "error": "..."}
// Every request runs through eval::run_request, so a result does not depend on which
// worker (or whether a worker) ran it.
#include <sys/types.h>

#include <deque>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "evoopt/eval/evaluator.hpp"

namespace evoopt::eval {

// The worker's side of the protocol, one message at a time; the transport is the caller's
// (a socket for worker processes, MPI messages for ranks). A setup message (re)loads the
// tasks; `fatal` is set when it failed (the worker should end after sending the answer).
class WorkerSession {
 public:
  std::string handle(const std::string& message, bool& fatal);

 private:
  std::map<std::string, task::Task> tasks_;
  train::Budget budget_;
};

// A worker process: reads the protocol from `in`, answers on `out`, until end of input.
// Returns the process exit code. `evoopt worker` is this function.
int run_worker(std::istream& in, std::ostream& out);

// The program started as `PROGRAM worker`: $EVOOPT_WORKER_PROGRAM when set, else this
// process's own executable (/proc/self/exe), which is right whenever evoopt itself runs.
std::filesystem::path default_worker_program();

// The parent's side, whatever the transport: sets the workers up (each must compute the
// same run-store fingerprints as this process: same binary, libraries and data), hands
// submitted requests to idle workers in submission order, and returns them as they finish
// (Evaluator::evaluate, the batch form, returns them in request order).
// A worker that fails or disappears ends the call with an evoopt::Error naming it and its
// request; completed runs have been reported through on_done, so a run store keeps them.
class WorkerPoolEvaluator : public Evaluator {
 public:
  std::uint64_t submit(const RunRequest& request) override;
  std::optional<Completion> next_done(const std::atomic<bool>* cancel) override;
  std::size_t outstanding() const override { return queued_.size() + in_flight_.size(); }
  std::string fingerprint(const std::string& task) const override;
  std::int64_t default_steps() const override { return budget_.steps; }
  double live_worker_cpu_seconds() const override;

 protected:
  WorkerPoolEvaluator(std::map<std::string, task::Task> tasks, task::TaskOptions task_options, train::Budget budget);
  struct Message {
    std::size_t slot = 0;
    std::string text;
    bool gone = false;  // the worker has gone (end of its output)
  };
  // The transport. connect(): makes every worker reachable and set up (a no-op when it is).
  virtual std::size_t slots() const = 0;
  virtual bool connected() const = 0;
  virtual void connect() = 0;
  virtual bool send(std::size_t slot, const std::string& text) = 0;  // false: the worker has gone
  virtual std::optional<Message> receive(int timeout_ms) = 0;        // from any worker; empty on timeout
  // Ends whatever the workers run (on cancel when kill_on_cancel(), and on failure).
  virtual void abandon() = 0;
  // true: cancel kills running workers; false: cancel waits for running runs (and reports them).
  virtual bool kill_on_cancel() const = 0;
  virtual std::string slot_name(std::size_t slot) const = 0;            // "worker 2 (pid 123)", "rank 2"
  virtual std::string exit_detail(std::size_t /*slot*/) { return ""; }  // why a worker has gone

  // Sends the setup to every worker and checks their answers; `what` names the program.
  void set_up(const std::string& what);
  [[noreturn]] void fail(std::size_t slot, const std::string& what, const RunRequest* request);
  const task::Task* loaded_task(const std::string& name) const override;

  std::map<std::string, task::Task> tasks_;
  task::TaskOptions task_options_;
  train::Budget budget_;
  std::map<std::string, std::string> fingerprints_;
  void dispatch_idle();                                      // hands queued requests to idle workers
  std::vector<long> running_;                                // per slot: the ticket of the request it runs, or -1
  std::deque<std::pair<std::uint64_t, RunRequest>> queued_;  // submitted, no worker yet
  std::map<std::uint64_t, RunRequest> in_flight_;            // on a worker
  std::uint64_t next_ticket_ = 0;
  std::vector<double> cpu_;  // per slot: the worker's CPU seconds as it last reported
};

// Local worker processes (`PROGRAM worker`), each in its own process group (Ctrl-C reaches
// the parent only) with one intra-op and one BLAS thread.
class ProcessEvaluator : public WorkerPoolEvaluator {
 public:
  ProcessEvaluator(std::map<std::string, task::Task> tasks, task::TaskOptions task_options, train::Budget budget, int workers,
                   std::filesystem::path program = default_worker_program());
  ~ProcessEvaluator() override;
  ProcessEvaluator(const ProcessEvaluator&) = delete;
  ProcessEvaluator& operator=(const ProcessEvaluator&) = delete;
  int workers() const override { return workers_; }
  std::string describe() const override;
  std::vector<pid_t> worker_pids() const;  // for tests and diagnostics

 protected:
  std::size_t slots() const override { return static_cast<std::size_t>(workers_); }
  bool connected() const override { return !procs_.empty(); }
  void connect() override;
  bool send(std::size_t slot, const std::string& text) override;
  std::optional<Message> receive(int timeout_ms) override;
  void abandon() override;
  bool kill_on_cancel() const override { return true; }
  std::string slot_name(std::size_t slot) const override;
  std::string exit_detail(std::size_t slot) override;

 private:
  struct Proc {
    pid_t pid = -1;
    int fd = -1;
    std::string buffer;  // bytes read but not yet a full line
  };
  void spawn(Proc& p);
  int workers_;
  std::filesystem::path program_;
  std::vector<Proc> procs_;
};

}  // namespace evoopt::eval
