#include "evoopt/eval/evaluator.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "evoopt/common/blas.hpp"
#include "evoopt/common/checked_json.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/limits.hpp"
#include "evoopt/data/checksum.hpp"

namespace evoopt::eval {

int default_workers() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(std::min<std::int64_t>(n, limits::kWorkers.max));
}

nlohmann::json to_json(const RunRequest& r) {
  nlohmann::json j = {{"genome", r.genome.to_json()},       {"task", r.task},   {"seed", r.seed},
                      {"split", data::split_name(r.split)}, {"steps", r.steps}, {"eval_limit", r.eval_limit}};
  if (r.stop_at > 0) j["stop_at"] = r.stop_at;
  if (r.curve_every > 0) j["curve_every"] = r.curve_every;
  if (!r.save_state.empty()) j["save_state"] = r.save_state;
  if (!r.resume_state.empty()) j["resume_state"] = r.resume_state;
  return j;
}

RunRequest run_request_from_json(const nlohmann::json& j) {
  // A request comes from another process (a worker's socket, an MPI message): every field is
  // checked, none wrapped or defaulted (steps -5 is an error, not "the budget's steps").
  const std::string what = "run request: ";
  RunRequest r;
  if (!j.is_object()) throw Error("run request must be a JSON object");
  if (!j.contains("genome")) throw Error(what + "genome: missing");
  r.genome = genome::Genome::from_json(j.at("genome"));
  r.task = json_at<std::string>(j, "task", what);
  r.seed = json_at<std::uint64_t>(j, "seed", what);
  r.split = data::split_from_name(json_at<std::string>(j, "split", what));
  r.steps = json_at<std::int64_t>(j, "steps", what);
  r.eval_limit = json_at<std::int64_t>(j, "eval_limit", what);
  r.stop_at = json_value<std::int64_t>(j, "stop_at", 0, what);
  r.curve_every = json_value<std::int64_t>(j, "curve_every", 0, what);
  r.save_state = json_value<std::string>(j, "save_state", std::string(), what);
  r.resume_state = json_value<std::string>(j, "resume_state", std::string(), what);
  if (r.steps < 0) throw Error(what + "steps must be >= 0 (0 = the evaluator's budget), got " + std::to_string(r.steps));
  limits::check(what + "steps", r.steps, limits::kSteps);
  if (r.eval_limit < 0) throw Error(what + "eval_limit must be >= 0 (0 = the whole split), got " + std::to_string(r.eval_limit));
  limits::check(what + "eval_limit", r.eval_limit, limits::kExamples);
  if (r.stop_at < 0) throw Error(what + "stop_at must be >= 0 (0 = train every step), got " + std::to_string(r.stop_at));
  limits::check(what + "stop_at", r.stop_at, limits::kSteps);
  if (r.curve_every < 0) throw Error(what + "curve_every must be >= 0 (0 = no curve), got " + std::to_string(r.curve_every));
  limits::check(what + "curve_every", r.curve_every, limits::kSteps);
  return r;
}

nlohmann::json fingerprint_description(const task::Task& task, const train::Budget& budget) {
  // The numeric libraries change float rounding, so they are part of what a result depends on:
  // libtorch's version and the BLAS (OpenBLAS's description names its CPU kernel).
  // The device changes float rounding too; named only off the CPU, so CPU stores made before
  // devices existed keep their keys.
  nlohmann::json j = {{"training_semantics", train::kTrainingSemanticsVersion},
                      {"libtorch", fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH)},
                      {"blas", blas_identity()},
                      {"task", task.description()},
                      {"divergence_loss", budget.divergence_loss},
                      {"log_every", budget.log_every},
                      {"eval_batch", budget.eval_batch},
                      {"layout", train::layout_name(budget.memory_format)}};
  if (budget.device != "cpu") j["device"] = budget.device;
  // Portable mode's pinned kernels; named only when pinned, so stores made without keep their keys.
  if (const std::string k = portable_kernels(); !k.empty()) j["kernels"] = k;
  return j;
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
  b.stop_at = request.stop_at;
  b.curve_every = request.curve_every;
  b.save_state = request.save_state;
  b.resume_state = request.resume_state;
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
  const task::Task* t = loaded_task(name);
  if (t == nullptr) throw Error("task '" + name + "' is not loaded in this evaluator");
  return *t;
}

std::vector<std::optional<train::RunResult>> Evaluator::evaluate(const std::vector<RunRequest>& requests, const RunDone& on_done,
                                                                 const std::atomic<bool>* cancel) {
  if (outstanding() > 0) throw std::logic_error("Evaluator::evaluate called while streamed requests are outstanding");
  for (const auto& r : requests) fingerprint(r.task);  // fail before any work
  std::vector<std::optional<train::RunResult>> results(requests.size());
  // Longest first (ties in request order). Key: (size unknown, estimated cost): a loaded task
  // of unknown size (a user's TorchScript model) goes before every known one, so a big user
  // model does not start last.
  std::vector<std::pair<bool, double>> key(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto* t = loaded_task(requests[i].task);
    key[i] = {t != nullptr && t->step_flops() <= 0, estimated_cost(requests[i])};
  }
  std::vector<std::size_t> order(requests.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key[a] > key[b]; });
  std::map<std::uint64_t, std::size_t> index;
  for (std::size_t i : order) {
    if (cancel != nullptr && cancel->load()) break;
    index[submit(requests[i])] = i;
  }
  while (auto done = next_done(cancel)) {
    const std::size_t i = index.at(done->ticket);
    results[i] = std::move(done->result);
    if (on_done) on_done(i, *results[i]);
  }
  return results;
}

double Evaluator::estimated_cost(const RunRequest& request) const {
  const std::int64_t steps = request.stop_at > 0 ? request.stop_at : request.steps > 0 ? request.steps : default_steps();
  const auto* t = loaded_task(request.task);
  const double per_step = t == nullptr || t->step_flops() <= 0 ? 1.0 : t->step_flops() * t->step_scale;
  return per_step * static_cast<double>(steps);
}

std::uint64_t Evaluator::submit(const RunRequest& request) {
  fingerprint(request.task);  // an unknown task fails here, not later
  queue_.emplace_back(next_ticket_, request);
  return next_ticket_++;
}

std::optional<Completion> Evaluator::next_done(const std::atomic<bool>* cancel) {
  if (cancel != nullptr && cancel->load()) queue_.clear();
  if (queue_.empty()) return std::nullopt;
  auto [ticket, request] = std::move(queue_.front());
  queue_.pop_front();
  auto r = run_one(request, cancel);
  if (!r) {  // cancelled while it ran
    queue_.clear();
    return std::nullopt;
  }
  return Completion{ticket, std::move(*r)};
}

std::optional<train::RunResult> Evaluator::run_one(const RunRequest&, const std::atomic<bool>*) {
  throw std::logic_error(describe() + " does not run requests in this process");
}

std::optional<train::RunResult> LocalEvaluator::run_one(const RunRequest& request, const std::atomic<bool>* cancel) {
  train::RunResult r = run_request(task(request.task), budget_, request, cancel);
  if (r.cancelled) return std::nullopt;
  return r;
}

const task::Task* LocalEvaluator::loaded_task(const std::string& name) const {
  const auto it = tasks_.find(name);
  return it == tasks_.end() ? nullptr : &it->second;
}

std::optional<train::RunResult> SyntheticEvaluator::run_one(const RunRequest& request, const std::atomic<bool>*) {
  train::RunResult r;
  r.task = request.task;
  r.task_label = request.task;
  r.seed = request.seed;
  r.split = data::split_name(request.split);
  r.accuracy = fn_(request.genome, request.task, request.seed);
  r.diverged = r.accuracy < 0;
  r.steps_done = r.steps_planned = 1;
  ++calls_;
  return r;
}

}  // namespace evoopt::eval
