#pragma once
// Evaluators run training runs for the GA and the comparison. The interface is
// at the level of single runs (genome, task, seed) so a run can be journaled
// the moment it completes; backends: in this process (LocalEvaluator), in local
// worker processes (ProcessEvaluator, eval/process_evaluator.hpp), a synthetic
// fitness for testing the search itself. eval::make_evaluator (eval/factory.hpp)
// chooses; the GA, the study and the CLI never name a concrete evaluator.
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "evoopt/genome/genome.hpp"
#include "evoopt/task/task.hpp"
#include "evoopt/train/trainer.hpp"

namespace evoopt::eval {

struct RunRequest {
  genome::Genome genome;
  std::string task;
  std::uint64_t seed = 0;
  data::Split split = data::Split::Val;
  std::int64_t steps = 0;       // 0: the evaluator's budget
  std::int64_t eval_limit = 0;  // > 0: score on the split's first N images only (a cheap rung of successive halving)
  // > 0: stop after this many of the `steps` (the schedule spans all of them) and score there:
  // a rung of racing. Part of the run's key.
  std::int64_t stop_at = 0;
  // > 0: also score the split every this many steps while training (RunResult::val_curve, for
  // time to target). Part of the run's key; the training itself is the same.
  std::int64_t curve_every = 0;
  // Files for continuing a run (train::Budget): where to save its state at the stop, and a
  // state of an earlier stop of the same run to start from. Not part of the key: a continued
  // run's result equals the uninterrupted run's.
  std::string save_state = {};
  std::string resume_state = {};
};

nlohmann::json to_json(const RunRequest& r);
RunRequest run_request_from_json(const nlohmann::json& j);

// Called once per completed (not cancelled) run, serialised by the evaluator.
using RunDone = std::function<void(std::size_t index, const train::RunResult& result)>;

// A submitted request that finished (streaming use, Evaluator::next_done).
struct Completion {
  std::uint64_t ticket = 0;  // what submit() returned
  train::RunResult result;
};

class Evaluator {
 public:
  virtual ~Evaluator() = default;
  // Runs every request; results come back in request order. Runs stopped by
  // `cancel` come back empty. Requests are handed out longest first (estimated_cost), so a
  // batch's last runs are short ones and no worker idles long at its end; the order changes
  // no result.
  virtual std::vector<std::optional<train::RunResult>> evaluate(const std::vector<RunRequest>& requests, const RunDone& on_done,
                                                                const std::atomic<bool>* cancel);
  // Streaming use (the asynchronous GA): submit() hands a request over (to an idle worker, or
  // queued) and returns its ticket at once; next_done() waits until some submitted request
  // finishes and returns it, in completion order. It returns nothing when no request is
  // outstanding, or once `cancel` is set (queued requests are dropped; worker processes are
  // stopped, MPI ranks finish and report their runs first). In-process evaluators run the
  // oldest queued request inside next_done(), so their completion order is submission order.
  virtual std::uint64_t submit(const RunRequest& request);
  virtual std::optional<Completion> next_done(const std::atomic<bool>* cancel);
  virtual std::size_t outstanding() const { return queue_.size(); }
  virtual int workers() const = 0;
  virtual std::string describe() const = 0;
  // Everything besides (genome, task, split, steps, seed) that changes a run's result
  // on `task`, as a short stable hash: the run store's key holds it.
  virtual std::string fingerprint(const std::string& task) const = 0;
  // The step count of a request that gives none.
  virtual std::int64_t default_steps() const = 0;
  // A request's estimated training work, to order a batch by: its steps (its stop, for a
  // rung) × the task's FLOPs per step (task::Task::step_flops) × the task's step scale; a
  // task of unknown size counts as 1 FLOP per step here (evaluate orders it before the others).
  double estimated_cost(const RunRequest& request) const;
  // CPU seconds spent so far by helper processes that are still alive (worker processes;
  // the operating system counts them in RUSAGE_CHILDREN only once they are reaped).
  virtual double live_worker_cpu_seconds() const { return 0.0; }

 protected:
  // The loaded task of that name, for estimated_cost; none: costs count steps alone.
  virtual const task::Task* loaded_task(const std::string& /*name*/) const { return nullptr; }
  // Runs one request here (in-process evaluators); the default streaming and batch forms use it.
  virtual std::optional<train::RunResult> run_one(const RunRequest& request, const std::atomic<bool>* cancel);

 private:
  std::deque<std::pair<std::uint64_t, RunRequest>> queue_;  // in-process streaming: submitted, not yet run
  std::uint64_t next_ticket_ = 0;
};

// What a task's run-store fingerprint hashes: the training semantics version, libtorch's
// version, the BLAS, the task's description (model, batch, data digest, splits,
// augmentation) and the budget's evaluation settings and layout.
nlohmann::json fingerprint_description(const task::Task& task, const train::Budget& budget);
std::string fingerprint_of(const task::Task& task, const train::Budget& budget);  // 16 hex digits

// One training run of `request` on `task` under `budget` (the request's steps, split and
// evaluation limit replace the budget's; one intra-op thread). Every evaluator runs
// requests through here, so a run's result does not depend on where it ran.
train::RunResult run_request(const task::Task& task, const train::Budget& budget, const RunRequest& request, const std::atomic<bool>* cancel);

// Runs requests one after another in this process.
class LocalEvaluator : public Evaluator {
 public:
  LocalEvaluator(std::map<std::string, task::Task> tasks, train::Budget budget);
  int workers() const override { return 1; }
  std::string describe() const override { return "this process, 1 intra-op thread"; }
  std::string fingerprint(const std::string& task) const override;
  std::int64_t default_steps() const override { return budget_.steps; }
  nlohmann::json fingerprint_description(const std::string& name) const { return eval::fingerprint_description(task(name), budget_); }
  const task::Task& task(const std::string& name) const;
  const train::Budget& budget() const { return budget_; }

 protected:
  std::optional<train::RunResult> run_one(const RunRequest& request, const std::atomic<bool>* cancel) override;
  const task::Task* loaded_task(const std::string& name) const override;

 private:
  std::map<std::string, task::Task> tasks_;
  train::Budget budget_;
  std::map<std::string, std::string> fingerprints_;
};

// A synthetic fitness: accuracy = fn(genome, task, seed), no training. For
// testing the search (operators, selection, resume) in milliseconds.
class SyntheticEvaluator : public Evaluator {
 public:
  using Fn = std::function<double(const genome::Genome&, const std::string& task, std::uint64_t seed)>;
  SyntheticEvaluator(Fn fn, int workers = 1) : fn_(std::move(fn)), workers_(workers) {}
  int workers() const override { return workers_; }
  std::string describe() const override { return "synthetic fitness"; }
  std::string fingerprint(const std::string&) const override { return "synthetic"; }
  std::int64_t default_steps() const override { return 1; }
  std::size_t calls() const { return calls_; }

 protected:
  std::optional<train::RunResult> run_one(const RunRequest& request, const std::atomic<bool>* cancel) override;

 private:
  Fn fn_;
  int workers_;
  std::size_t calls_ = 0;
};

// Default worker count: one per core.
int default_workers();

}  // namespace evoopt::eval
