#include "evoopt/eval/evaluator.hpp"

#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "evoopt/common/blas.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/data/checksum.hpp"

namespace evoopt::eval {

int default_workers() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

nlohmann::json to_json(const RunRequest& r) {
  return {{"genome", r.genome.to_json()},       {"task", r.task},   {"seed", r.seed},
          {"split", data::split_name(r.split)}, {"steps", r.steps}, {"eval_limit", r.eval_limit}};
}

RunRequest run_request_from_json(const nlohmann::json& j) {
  RunRequest r;
  r.genome = genome::Genome::from_json(j.at("genome"));
  r.task = j.at("task").get<std::string>();
  r.seed = j.at("seed").get<std::uint64_t>();
  r.split = data::split_from_name(j.at("split").get<std::string>());
  r.steps = j.at("steps").get<std::int64_t>();
  r.eval_limit = j.at("eval_limit").get<std::int64_t>();
  return r;
}

nlohmann::json fingerprint_description(const task::Task& task, const train::Budget& budget) {
  // The numeric libraries change float rounding, so they are part of what a result depends on:
  // libtorch's version and the BLAS (OpenBLAS's description names its CPU kernel).
  return {{"training_semantics", train::kTrainingSemanticsVersion},
          {"libtorch", fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH)},
          {"blas", blas_identity()},
          {"task", task.description()},
          {"divergence_loss", budget.divergence_loss},
          {"log_every", budget.log_every},
          {"eval_batch", budget.eval_batch},
          {"layout", train::layout_name(budget.memory_format)}};
}

std::string fingerprint_of(const task::Task& task, const train::Budget& budget) {
  const std::string text = fingerprint_description(task, budget).dump();
  return data::sha256_hex(text.data(), text.size()).substr(0, 16);
}

train::RunResult run_request(const task::Task& task, const train::Budget& budget, const RunRequest& request, const std::atomic<bool>* cancel) {
  train::Budget b = budget;
  b.threads = 1;
  b.eval_split = request.split;
  b.cancel = cancel;
  if (request.steps > 0) b.steps = request.steps;  // else the budget's (>= 1, checked by the evaluator)
  b.eval_limit = request.eval_limit;
  return train::train_and_evaluate(request.genome, task, request.seed, b);
}

LocalEvaluator::LocalEvaluator(std::map<std::string, task::Task> tasks, train::Budget budget) : tasks_(std::move(tasks)), budget_(budget) {
  if (tasks_.empty()) throw Error("no tasks to evaluate on");
  budget_.validate();
  if (budget_.steps < 1) throw Error("the evaluator's budget needs a step count >= 1, got " + std::to_string(budget_.steps));
  for (const auto& [name, t] : tasks_) fingerprints_[name] = fingerprint_of(t, budget_);
}

std::string LocalEvaluator::fingerprint(const std::string& name) const {
  task(name);
  return fingerprints_.at(name);
}

const task::Task& LocalEvaluator::task(const std::string& name) const {
  auto it = tasks_.find(name);
  if (it == tasks_.end()) throw Error("task '" + name + "' is not loaded in this evaluator");
  return it->second;
}

std::vector<std::optional<train::RunResult>> LocalEvaluator::evaluate(const std::vector<RunRequest>& requests, const RunDone& on_done,
                                                                      const std::atomic<bool>* cancel) {
  for (const auto& r : requests) task(r.task);  // fail before any work
  std::vector<std::optional<train::RunResult>> results(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (cancel != nullptr && cancel->load()) break;
    train::RunResult r = run_request(task(requests[i].task), budget_, requests[i], cancel);
    if (r.cancelled) break;
    results[i] = r;
    if (on_done) on_done(i, r);
  }
  return results;
}

std::vector<std::optional<train::RunResult>> SyntheticEvaluator::evaluate(const std::vector<RunRequest>& requests, const RunDone& on_done,
                                                                          const std::atomic<bool>* cancel) {
  std::vector<std::optional<train::RunResult>> results(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (cancel != nullptr && cancel->load()) break;
    train::RunResult r;
    r.task = requests[i].task;
    r.task_label = requests[i].task;
    r.seed = requests[i].seed;
    r.split = data::split_name(requests[i].split);
    r.accuracy = fn_(requests[i].genome, requests[i].task, requests[i].seed);
    r.diverged = r.accuracy < 0;
    r.steps_done = r.steps_planned = 1;
    ++calls_;
    results[i] = r;
    if (on_done) on_done(i, r);
  }
  return results;
}

}  // namespace evoopt::eval
