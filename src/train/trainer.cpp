#include "evoopt/train/trainer.hpp"

#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>

#include <torch/torch.h>
#include <torch/version.h>

#include "evoopt/common/blas.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/rng.hpp"
#include "evoopt/optim/genome_optimizer.hpp"

namespace evoopt::train {

void Budget::validate() const {
  if (steps < 0) throw Error("training steps must be >= 0 (0 = the task's default), got " + std::to_string(steps));
  if (log_every < 1) throw Error("log_every must be >= 1, got " + std::to_string(log_every));
  if (eval_batch < 1) throw Error("evaluation batch must be >= 1, got " + std::to_string(eval_batch));
  if (eval_limit < 0) throw Error("evaluation limit must be >= 0 (0 = the whole split), got " + std::to_string(eval_limit));
  if (threads < 0) throw Error("threads must be >= 0, got " + std::to_string(threads));
  if (memory_format != at::MemoryFormat::ChannelsLast && memory_format != at::MemoryFormat::Contiguous)
    throw Error("memory format must be channels-last or contiguous");
  if (!(divergence_loss > 0)) throw Error("divergence loss threshold must be > 0, got " + std::to_string(divergence_loss));
  if (sync_every < 0)
    throw Error("sync_every must be >= 0 (0 = every step on the CPU, every log_every steps on a GPU), got " + std::to_string(sync_every));
  check_device_name(device, /*allow_auto=*/false);
}

void check_device_name(const std::string& name, bool allow_auto) {
  const bool index_ok = name.size() > 5 && name.find_first_not_of("0123456789", 5) == std::string::npos && name.size() <= 8;
  if ((allow_auto && name == "auto") || name == "cpu" || name == "cuda" || (name.rfind("cuda:", 0) == 0 && index_ok)) return;
  if (!allow_auto && name == "auto") throw Error("device must be cpu or cuda[:N], got 'auto' (resolve it first)");
  throw Error("unknown device '" + name + "' (allowed: " + (allow_auto ? "auto, " : "") + "cpu, cuda, cuda:N)");
}

std::string resolve_device(const std::string& requested) {
  check_device_name(requested, /*allow_auto=*/true);
  if (requested == "auto") return torch::cuda::is_available() ? "cuda" : "cpu";
  if (requested == "cpu") return requested;
  const torch::Device d(requested);
  if (!torch::cuda::is_available())
    throw Error("device " + requested + ": no CUDA device is available (this libtorch " + std::string(TORCH_VERSION) +
                (at::hasCUDA() ? " has CUDA support but sees no GPU)" : " was built without CUDA; build against a CUDA libtorch)"));
  const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
  if (d.has_index() && d.index() >= count)
    throw Error("device " + requested + ": only " + std::to_string(count) + " CUDA device(s) visible (cuda:0 .. cuda:" + std::to_string(count - 1) +
                ")");
  return requested;
}

const char* layout_name(at::MemoryFormat format) { return format == at::MemoryFormat::ChannelsLast ? "channels_last" : "contiguous"; }

at::MemoryFormat layout_from_name(const std::string& name) {
  if (name == "channels_last") return at::MemoryFormat::ChannelsLast;
  if (name == "contiguous") return at::MemoryFormat::Contiguous;
  throw Error("unknown memory format '" + name + "' (allowed: channels_last, contiguous)");
}

nlohmann::json to_json(const Budget& b) {
  return {{"steps", b.steps},
          {"log_every", b.log_every},
          {"divergence_loss", b.divergence_loss},
          {"eval_batch", b.eval_batch},
          {"threads", b.threads},
          {"eval_split", data::split_name(b.eval_split)},
          {"eval_limit", b.eval_limit},
          {"memory_format", layout_name(b.memory_format)},
          {"device", b.device},
          {"sync_every", b.sync_every}};
}

Budget budget_from_json(const nlohmann::json& j) {
  Budget b;
  b.steps = j.at("steps").get<std::int64_t>();
  b.log_every = j.at("log_every").get<std::int64_t>();
  b.divergence_loss = j.at("divergence_loss").get<double>();
  b.eval_batch = j.at("eval_batch").get<std::int64_t>();
  b.threads = j.at("threads").get<int>();
  b.eval_split = data::split_from_name(j.at("eval_split").get<std::string>());
  b.eval_limit = j.at("eval_limit").get<std::int64_t>();
  b.memory_format = layout_from_name(j.at("memory_format").get<std::string>());
  b.device = j.value("device", "cpu");
  b.sync_every = j.value("sync_every", std::int64_t{0});
  b.validate();
  return b;
}

namespace {
// JSON has no NaN or Inf (nlohmann writes them as null, which then fails to read
// back): a diverged run's loss is written as the string "nan", "inf" or "-inf".
nlohmann::json number_json(double v) {
  if (std::isfinite(v)) return v;
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}
double number_from_json(const nlohmann::json& j, const char* field) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
  }
  if (j.is_null()) return std::numeric_limits<double>::quiet_NaN();  // written by versions before this rule
  throw Error(std::string("run result field ") + field + " must be a number, got " + j.dump());
}
}  // namespace

nlohmann::json to_json(const RunResult& r) {
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& p : r.loss_curve) curve.push_back({p.step, number_json(p.loss), number_json(p.smoothed)});
  return {{"task", r.task},
          {"task_label", r.task_label},
          {"seed", r.seed},
          {"split", r.split},
          {"accuracy", number_json(r.accuracy)},
          {"final_loss", number_json(r.final_loss)},
          {"smoothed_loss", number_json(r.smoothed_loss)},
          {"loss_curve", curve},
          {"diverged", r.diverged},
          {"divergence_reason", r.divergence_reason},
          {"steps_done", r.steps_done},
          {"steps_planned", r.steps_planned},
          {"seconds", r.seconds},
          {"train_seconds", r.train_seconds}};
}

RunResult run_result_from_json(const nlohmann::json& j) {
  RunResult r;
  r.task = j.at("task");
  r.task_label = j.value("task_label", r.task);
  r.seed = j.at("seed");
  r.split = j.at("split");
  r.accuracy = number_from_json(j.at("accuracy"), "accuracy");
  r.final_loss = number_from_json(j.at("final_loss"), "final_loss");
  r.smoothed_loss = number_from_json(j.at("smoothed_loss"), "smoothed_loss");
  for (const auto& p : j.at("loss_curve"))
    r.loss_curve.push_back({p.at(0).get<std::int64_t>(), number_from_json(p.at(1), "loss_curve"), number_from_json(p.at(2), "loss_curve")});
  r.diverged = j.at("diverged");
  r.divergence_reason = j.value("divergence_reason", "");
  r.steps_done = j.at("steps_done");
  r.steps_planned = j.value("steps_planned", r.steps_done);
  r.seconds = j.value("seconds", 0.0);
  r.train_seconds = j.value("train_seconds", 0.0);
  return r;
}

namespace {
// The task's splits on `device`: the task's own on the CPU, else a copy made once per
// (splits, device) and kept while the task's splits live.
const data::Splits& splits_on(const task::Task& task, const torch::Device& device) {
  if (device.is_cpu()) return *task.data;
  struct Entry {
    std::weak_ptr<const data::Splits> source;
    std::shared_ptr<const data::Splits> copy;
  };
  static std::mutex mutex;
  static std::map<std::pair<const data::Splits*, std::string>, Entry> cache;
  const std::lock_guard<std::mutex> lock(mutex);
  auto& e = cache[{task.data.get(), device.str()}];
  if (e.source.lock() != task.data || !e.copy) e = Entry{task.data, std::make_shared<const data::Splits>(task.data->to(device))};
  return *e.copy;
}

double accuracy_on(torch::nn::Sequential& model, const data::Splits& data, data::Split split, std::int64_t batch, std::int64_t limit,
                   at::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  model->eval();
  const data::Dataset& ds = data.get(split);
  const std::int64_t n = limit > 0 ? std::min(limit, ds.size()) : ds.size();
  torch::Tensor correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kInt64).device(ds.labels.device()));
  for (std::int64_t start = 0; start < n; start += batch) {
    const std::int64_t len = std::min(batch, n - start);
    auto x = data.normalise(ds.images.narrow(0, start, len), format);
    auto pred = model->forward(x).argmax(1);
    correct.add_(pred.eq(ds.labels.narrow(0, start, len)).sum());
  }
  model->train();
  return static_cast<double>(correct.item<std::int64_t>()) / static_cast<double>(n);  // the one host read
}

// What the training loop keeps on the device between host reads: each step's loss and, at
// the steps that log, whether every parameter is finite.
struct PendingStep {
  std::int64_t step;
  torch::Tensor loss;           // 0-dim float
  torch::Tensor params_finite;  // 0-dim bool; undefined when the step does not log
};
}  // namespace

double evaluate_accuracy(torch::nn::Sequential& model, const task::Task& task, data::Split split, std::int64_t batch, std::int64_t limit,
                         at::MemoryFormat format) {
  const auto device = model->parameters().empty() ? torch::Device(torch::kCPU) : model->parameters().front().device();
  return accuracy_on(model, splits_on(task, device), split, batch, limit, format);
}

RunResult train_and_evaluate(const genome::Genome& genome, const task::Task& task, std::uint64_t seed, const Budget& budget,
                             const ProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  budget.validate();
  const torch::Device device(resolve_device(budget.device));
  if (budget.threads > 0 && at::get_num_threads() != budget.threads) at::set_num_threads(budget.threads);
  set_blas_threads(budget.threads);
  if (device.is_cuda()) at::globalContext().setDeterministicCuDNN(true);  // same seed, same result on one GPU
  genome.validate(genome::Bounds::kHardMaxTerms);
  const std::int64_t steps = budget.steps > 0 ? budget.steps : task.default_steps;
  const std::int64_t sync_every = budget.sync_every > 0 ? budget.sync_every : device.is_cpu() ? 1 : budget.log_every;

  RunResult r;
  r.task = task.name;
  r.task_label = task.label();
  r.seed = seed;
  r.split = data::split_name(budget.eval_split);
  r.steps_planned = steps;

  // Common random numbers: everything random below is a function of (task, seed).
  // The model is initialised on the CPU (one generator) and then moved.
  auto model = task::make_model(task.model, task.input(), derive_seed(seed, "init/" + task.name), budget.memory_format);
  if (!device.is_cpu()) model->to(device);
  const data::Splits& data = splits_on(task, device);
  data::BatchSampler sampler(data.train.size(), task.batch_size, derive_seed(seed, "batches/" + task.name));
  Rng augment_rng(derive_seed(seed, "augment/" + task.name));
  optim::GenomeOptimizer opt(model->parameters(), optim::GenomeOptimizerOptions(genome, steps));
  model->train();

  auto params_finite = [&] {
    std::vector<torch::Tensor> flags;
    for (const auto& p : model->parameters()) flags.push_back(torch::isfinite(p).all());
    return torch::stack(flags).all();
  };

  // Reads the pending steps' values from the device (one transfer) and applies, step by step,
  // what a loop reading every step would: divergence, the smoothed loss, the loss curve.
  // Returns false when the run diverged.
  double smoothed = 0.0;
  std::vector<PendingStep> pending;
  auto drain = [&]() -> bool {
    if (pending.empty()) return true;
    std::vector<torch::Tensor> losses, flags;
    for (const auto& p : pending) {
      losses.push_back(p.loss);
      if (p.params_finite.defined()) flags.push_back(p.params_finite);
    }
    const torch::Tensor loss_host = torch::stack(losses).to(torch::kCPU);
    const torch::Tensor flag_host = flags.empty() ? torch::Tensor() : torch::stack(flags).to(torch::kCPU);
    const float* lv = loss_host.data_ptr<float>();
    const bool* fv = flags.empty() ? nullptr : flag_host.data_ptr<bool>();
    std::size_t flag_index = 0;
    bool ok = true;
    for (std::size_t i = 0; i < pending.size() && ok; ++i) {
      const std::int64_t step = pending[i].step;
      const double loss_value = lv[i];
      if (!std::isfinite(loss_value) || loss_value > budget.divergence_loss) {
        r.diverged = true;
        r.divergence_reason =
            std::isfinite(loss_value) ? "loss " + std::to_string(loss_value) + " above " + std::to_string(budget.divergence_loss) : "non-finite loss";
        r.final_loss = loss_value;
        ok = false;
        break;
      }
      r.steps_done = step;
      smoothed = step == 1 ? loss_value : 0.9 * smoothed + 0.1 * loss_value;
      r.final_loss = loss_value;
      if (pending[i].params_finite.defined()) {
        if (!fv[flag_index++]) {
          r.diverged = true;
          r.divergence_reason = "non-finite parameter";
          ok = false;
          break;
        }
        r.loss_curve.push_back({step, loss_value, smoothed});
        if (progress) progress(step, loss_value, smoothed);
      }
    }
    pending.clear();
    return ok;
  };

  const auto train_t0 = std::chrono::steady_clock::now();
  for (std::int64_t step = 1; step <= steps; ++step) {
    if (budget.cancel != nullptr && budget.cancel->load(std::memory_order_relaxed)) {
      r.cancelled = true;
      break;
    }
    auto idx = sampler.next();
    if (!device.is_cpu()) idx = idx.to(device);
    auto images = data.train.images.index_select(0, idx);
    if (task.augment) images = data::augment_crop_flip(images, 4, augment_rng);
    auto x = data.normalise(images, budget.memory_format);
    auto y = data.train.labels.index_select(0, idx);
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
    // A diverged loss is found at the next read, so a step may be taken on it: the run
    // is over then and its model discarded, which changes nothing reported.
    pending.push_back({step, loss.detach(), (step % budget.log_every == 0 || step == steps) ? params_finite() : torch::Tensor()});
    if ((step % sync_every == 0 || step == steps) && !drain()) break;
  }
  r.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - train_t0).count();
  r.smoothed_loss = smoothed;
  if (!r.diverged && !r.cancelled)
    r.accuracy = accuracy_on(model, data, budget.eval_split, budget.eval_batch, budget.eval_limit, budget.memory_format);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

Fitness aggregate_fitness(const std::vector<RunResult>& runs) {
  std::map<std::string, std::pair<double, int>> sums;
  for (const auto& r : runs) {
    auto& s = sums[r.task];
    s.first += r.fitness();
    s.second += 1;
  }
  Fitness f;
  for (const auto& [task, s] : sums) f.per_task[task] = s.first / s.second;
  for (const auto& [_, v] : f.per_task) f.overall += v;
  if (!f.per_task.empty()) f.overall /= static_cast<double>(f.per_task.size());
  return f;
}

}  // namespace evoopt::train
