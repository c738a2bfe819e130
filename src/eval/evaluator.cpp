#include "evoopt/eval/evaluator.hpp"

#include <dlfcn.h>

#include <cstring>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "evoopt/common/error.hpp"
#include "evoopt/data/checksum.hpp"

namespace evoopt::eval {

int default_workers() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

namespace {
// OpenBLAS's build description ("OpenBLAS 0.3.21 ... Haswell ..."), or empty for another BLAS.
std::string openblas_config() {
  using ConfigFn = const char* (*)();
  const auto config = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  const char* c = config == nullptr ? nullptr : config();
  return c == nullptr ? std::string() : std::string(c);
}
}  // namespace

std::string blas_concurrency_problem() {
  // OpenBLAS built SINGLE_THREADED (Debian's libopenblas0-serial) gave different results
  // from run to run when two workers called it at once (measured on the project's machine:
  // the same seed, different history.csv), so parallel workers must not use it.
  const std::string c = openblas_config();
  if (c.find("SINGLE_THREADED") == std::string::npos) return "";
  return "the BLAS in use is a single-threaded OpenBLAS (" + c +
         "), which is not reproducible when several workers call it at once: use --workers 1, or switch the BLAS "
         "(update-alternatives --config libblas.so.3-x86_64-linux-gnu)";
}

LocalEvaluator::LocalEvaluator(std::map<std::string, task::Task> tasks, train::Budget budget, int workers)
    : tasks_(std::move(tasks)), budget_(budget), workers_(workers) {
  if (workers_ < 1) throw Error("workers must be >= 1, got " + std::to_string(workers_));
  if (tasks_.empty()) throw Error("no tasks to evaluate on");
  budget_.validate();
  if (budget_.steps < 1) throw Error("the evaluator's budget needs a step count >= 1, got " + std::to_string(budget_.steps));
  if (workers_ > 1) {
    const std::string problem = blas_concurrency_problem();
    if (!problem.empty()) throw Error(problem);
  }
  for (const auto& [name, t] : tasks_) {
    const std::string text = fingerprint_description(name).dump();
    fingerprints_[name] = data::sha256_hex(text.data(), text.size()).substr(0, 16);
  }
}

nlohmann::json LocalEvaluator::fingerprint_description(const std::string& name) const {
  // The numeric libraries change float rounding, so they are part of what a result depends on:
  // libtorch's version and the BLAS (OpenBLAS's description names its CPU kernel).
  const std::string blas = openblas_config();
  return {{"training_semantics", train::kTrainingSemanticsVersion},
          {"libtorch", fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH)},
          {"blas", blas.empty() ? "not OpenBLAS (reference or other)" : blas},
          {"task", task(name).description()},
          {"divergence_loss", budget_.divergence_loss},
          {"log_every", budget_.log_every},
          {"eval_batch", budget_.eval_batch}};
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

std::string LocalEvaluator::describe() const { return std::to_string(workers_) + " local worker(s), 1 intra-op thread each"; }

std::vector<std::optional<train::RunResult>> LocalEvaluator::evaluate(const std::vector<RunRequest>& requests, const RunDone& on_done,
                                                                      const std::atomic<bool>* cancel) {
  for (const auto& r : requests) task(r.task);  // fail before any work
  std::vector<std::optional<train::RunResult>> results(requests.size());
  std::atomic<std::size_t> next{0};
  std::mutex done_mutex;
  std::exception_ptr error;
  auto worker = [&] {
    at::set_num_threads(1);
    for (;;) {
      const std::size_t i = next.fetch_add(1);
      if (i >= requests.size()) return;
      if (cancel != nullptr && cancel->load()) return;
      try {
        const RunRequest& req = requests[i];
        train::Budget b = budget_;
        b.threads = 1;
        b.eval_split = req.split;
        b.cancel = cancel;
        if (req.steps > 0) b.steps = req.steps;  // else the budget's (>= 1, checked above)
        b.eval_limit = req.eval_limit;
        train::RunResult r = train::train_and_evaluate(req.genome, task(req.task), req.seed, b);
        if (r.cancelled) return;
        std::lock_guard<std::mutex> lock(done_mutex);
        results[i] = r;
        if (on_done) on_done(i, r);
      } catch (...) {
        std::lock_guard<std::mutex> lock(done_mutex);
        if (!error) error = std::current_exception();
        next = requests.size();
        return;
      }
    }
  };
  const int n = std::min<int>(workers_, static_cast<int>(std::max<std::size_t>(1, requests.size())));
  if (n == 1) {
    worker();
  } else {
    std::vector<std::thread> threads;
    for (int t = 0; t < n; ++t) threads.emplace_back(worker);
    for (auto& t : threads) t.join();
  }
  if (error) std::rethrow_exception(error);
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
