#include "evoopt/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>

#include <torch/torch.h>
#include <torch/version.h>

#include <fmt/format.h>

#include "evoopt/common/blas.hpp"
#include "evoopt/common/checked_json.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/limits.hpp"
#include "evoopt/common/rng.hpp"
#include "evoopt/optim/algorithm.hpp"
#include "evoopt/task/cartpole.hpp"

namespace evoopt::train {

void Budget::validate() const {
  if (steps < 0) throw Error("training steps must be >= 0 (0 = the task's default), got " + std::to_string(steps));
  limits::check("steps", steps, limits::kSteps);
  if (log_every < 1) throw Error("log_every must be >= 1, got " + std::to_string(log_every));
  limits::check("log_every", log_every, limits::kSteps);
  if (eval_batch < 1) throw Error("evaluation batch must be >= 1, got " + std::to_string(eval_batch));
  limits::check("evaluation batch", eval_batch, limits::kBatchSize);
  if (eval_limit < 0) throw Error("evaluation limit must be >= 0 (0 = the whole split), got " + std::to_string(eval_limit));
  limits::check("evaluation limit", eval_limit, limits::kExamples);
  if (threads < 0) throw Error("threads must be >= 0, got " + std::to_string(threads));
  limits::check("threads", static_cast<std::int64_t>(threads), limits::threads());
  if (memory_format != at::MemoryFormat::ChannelsLast && memory_format != at::MemoryFormat::Contiguous)
    throw Error("memory format must be channels-last or contiguous");
  if (!(divergence_loss > 0)) throw Error("divergence loss threshold must be > 0, got " + std::to_string(divergence_loss));
  if (stop_at < 0 || (stop_at > 0 && steps > 0 && stop_at >= steps))
    throw Error(fmt::format("stop_at must be 0 (train every step) or fewer than the run's {} steps, got {}", steps, stop_at));
  if (!save_state.empty() && stop_at == 0) throw Error("save_state needs stop_at: a run's state is saved where it stops");
  if (curve_every < 0) throw Error("curve_every must be >= 0 (0 = no curve), got " + std::to_string(curve_every));
  limits::check("stop_at", stop_at, limits::kSteps);
  if (sync_every < 0)
    throw Error("sync_every must be >= 0 (0 = every step on the CPU, every log_every steps on a GPU), got " + std::to_string(sync_every));
  limits::check("sync_every", sync_every, limits::kSteps);
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
  const std::string what = "budget: ";
  Budget b;
  b.steps = json_at<std::int64_t>(j, "steps", what);
  b.log_every = json_at<std::int64_t>(j, "log_every", what);
  b.divergence_loss = json_at<double>(j, "divergence_loss", what);
  b.eval_batch = json_at<std::int64_t>(j, "eval_batch", what);
  b.threads = json_at<int>(j, "threads", what);
  b.eval_split = data::split_from_name(json_at<std::string>(j, "eval_split", what));
  b.eval_limit = json_at<std::int64_t>(j, "eval_limit", what);
  b.memory_format = layout_from_name(json_at<std::string>(j, "memory_format", what));
  b.device = json_value<std::string>(j, "device", "cpu", what);
  b.sync_every = json_value<std::int64_t>(j, "sync_every", 0, what);
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
// A loss curve as [[step, loss, smoothed], ...]: in run results and in saved run states.
nlohmann::json curve_json(const std::vector<LossPoint>& curve) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& p : curve) j.push_back({p.step, number_json(p.loss), number_json(p.smoothed)});
  return j;
}
std::vector<LossPoint> curve_from_json(const nlohmann::json& j) {
  std::vector<LossPoint> curve;
  if (!j.is_array()) throw Error("run result field loss_curve must be an array");
  for (const auto& p : j) {
    if (!p.is_array() || p.size() != 3) throw Error("run result field loss_curve must hold [step, loss, smoothed] triples, got " + p.dump());
    curve.push_back({json_as<std::int64_t>(p.at(0), "run result field loss_curve step"), number_from_json(p.at(1), "loss_curve"),
                     number_from_json(p.at(2), "loss_curve")});
  }
  return curve;
}
}  // namespace

nlohmann::json to_json(const RunResult& r) {
  nlohmann::json j = {{"task", r.task},
                      {"task_label", r.task_label},
                      {"seed", r.seed},
                      {"split", r.split},
                      {"accuracy", number_json(r.accuracy)},
                      {"eval_loss", number_json(r.eval_loss)},
                      {"final_loss", number_json(r.final_loss)},
                      {"smoothed_loss", number_json(r.smoothed_loss)},
                      {"loss_curve", curve_json(r.loss_curve)},
                      {"diverged", r.diverged},
                      {"divergence_reason", r.divergence_reason},
                      {"steps_done", r.steps_done},
                      {"steps_planned", r.steps_planned},
                      {"seconds", r.seconds},
                      {"train_seconds", r.train_seconds}};
  if (r.resumed_at > 0) j["resumed_at"] = r.resumed_at;                      // absent for uninterrupted runs (journals stay as they were)
  if (!r.parameter_split.empty()) j["parameter_split"] = r.parameter_split;  // absent where all parameters are treated alike
  if (!r.val_curve.empty()) {
    nlohmann::json c = nlohmann::json::array();
    for (const auto& [step, score] : r.val_curve) c.push_back({step, number_json(score)});
    j["val_curve"] = c;
  }
  return j;
}

RunResult run_result_from_json(const nlohmann::json& j) {
  const std::string what = "run result: ";
  RunResult r;
  r.task = json_at<std::string>(j, "task", what);
  r.task_label = json_value<std::string>(j, "task_label", r.task, what);
  r.seed = json_at<std::uint64_t>(j, "seed", what);
  r.split = json_at<std::string>(j, "split", what);
  if (!j.contains("accuracy")) throw Error(what + "accuracy: missing");
  r.accuracy = number_from_json(j.at("accuracy"), "accuracy");
  r.eval_loss = j.contains("eval_loss") ? number_from_json(j.at("eval_loss"), "eval_loss") : std::numeric_limits<double>::quiet_NaN();
  for (const char* k : {"final_loss", "smoothed_loss", "loss_curve"})
    if (!j.contains(k)) throw Error(what + k + ": missing");
  r.final_loss = number_from_json(j.at("final_loss"), "final_loss");
  r.smoothed_loss = number_from_json(j.at("smoothed_loss"), "smoothed_loss");
  r.loss_curve = curve_from_json(j.at("loss_curve"));
  r.diverged = json_at<bool>(j, "diverged", what);
  r.divergence_reason = json_value<std::string>(j, "divergence_reason", "", what);
  r.steps_done = json_at<std::int64_t>(j, "steps_done", what);
  r.steps_planned = json_value<std::int64_t>(j, "steps_planned", r.steps_done, what);
  r.resumed_at = json_value<std::int64_t>(j, "resumed_at", 0, what);
  r.parameter_split = json_value<std::string>(j, "parameter_split", "", what);
  if (j.contains("val_curve")) {
    const auto& c = j.at("val_curve");
    if (!c.is_array()) throw Error(what + "val_curve must be an array");
    for (const auto& p : c) {
      if (!p.is_array() || p.size() != 2) throw Error(what + "val_curve must hold [step, score] pairs, got " + p.dump());
      r.val_curve.emplace_back(json_as<std::int64_t>(p.at(0), what + "val_curve step"), number_from_json(p.at(1), "val_curve"));
    }
  }
  r.seconds = json_value<double>(j, "seconds", 0.0, what);
  r.train_seconds = json_value<double>(j, "train_seconds", 0.0, what);
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

// Logits and targets as (N, classes) and (N): a text model's (B, T, 256) per byte.
torch::Tensor flat_cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets,
                                 torch::nn::functional::CrossEntropyFuncOptions::reduction_t reduction) {
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
                                              torch::nn::functional::CrossEntropyFuncOptions().reduction(reduction));
}

// The windows of a text split scored by an evaluation: non-overlapping, seq_len + 1 bytes
// each (inputs and the next bytes), starting at 0, seq_len, 2·seq_len, ...
torch::Tensor window_starts(std::int64_t first, std::int64_t count, std::int64_t seq_len, const torch::Device& device) {
  return torch::arange(first, first + count, torch::TensorOptions().dtype(torch::kInt64).device(device)).mul_(seq_len);
}

// (B) starts → int64 (B, seq_len) inputs and (B, seq_len) next-byte targets.
std::pair<torch::Tensor, torch::Tensor> text_batch(const torch::Tensor& tokens, const torch::Tensor& starts, std::int64_t seq_len) {
  const auto offsets = torch::arange(seq_len + 1, starts.options());
  const auto idx = starts.unsqueeze(1) + offsets.unsqueeze(0);
  const auto windows = tokens.index({idx}).to(torch::kInt64);
  return {windows.narrow(1, 0, seq_len), windows.narrow(1, 1, seq_len)};
}

Evaluation evaluate_on(task::Model& model, const task::Task& task, const data::Splits& data, data::Split split, std::int64_t batch,
                       std::int64_t limit, at::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  model.train(false);
  const data::Dataset& ds = data.get(split);
  const bool text = task.kind == task::TaskKind::NextToken;
  const torch::Device device = text ? ds.tokens.device() : ds.labels.device();
  const std::int64_t total = task.examples(split);
  const std::int64_t n = limit > 0 ? std::min(limit, total) : total;
  auto on = torch::TensorOptions().device(device);
  torch::Tensor correct = torch::zeros({}, on.dtype(torch::kInt64));
  torch::Tensor loss_sum = torch::zeros({}, on.dtype(torch::kFloat64));
  for (std::int64_t start = 0; start < n; start += batch) {
    const std::int64_t len = std::min(batch, n - start);
    torch::Tensor x, y;
    if (text) {
      std::tie(x, y) = text_batch(ds.tokens, window_starts(start, len, task.seq_len, device), task.seq_len);
    } else {
      x = data.normalise(ds.images.narrow(0, start, len), format);
      y = ds.labels.narrow(0, start, len);
    }
    const auto logits = model.forward(x);
    correct.add_(logits.argmax(-1).eq(y).sum());
    loss_sum.add_(flat_cross_entropy(logits, y, torch::kSum).to(torch::kFloat64));
  }
  model.train(true);
  const double predictions = static_cast<double>(text ? n * task.seq_len : n);
  const auto host = torch::stack({correct.to(torch::kFloat64), loss_sum}).to(torch::kCPU);  // the one host read
  Evaluation e;
  e.accuracy = host[0].item<double>() / predictions;
  e.loss = host[1].item<double>() / predictions;
  e.score = text ? std::exp(-e.loss) : e.accuracy;
  return e;
}

// A run's state at a stop (Budget::save_state): the model's tensors (t0, t1, ... in
// Model::named_state order), the optimizer (libtorch's own serialisation) and, as JSON,
// what identifies the run plus the host-side state: step, smoothed and last loss, loss
// curve, random engines and counters. Written atomically; read back only by the same run.
struct HostState {
  std::int64_t step = 0;
  double smoothed = 0.0;
  double final_loss = 0.0;
  std::vector<LossPoint> curve;
  std::string text_rng, augment_rng;
  std::vector<std::uint64_t> counters;
};

nlohmann::json run_identity(const genome::Genome& genome, const task::Task& task, std::uint64_t seed, std::int64_t steps, task::Model& model) {
  nlohmann::json names = nlohmann::json::array();
  for (const auto& [name, t] : model.named_state()) names.push_back({name, t.sizes().vec()});
  return {{"genome", genome.hash_hex()}, {"task", task.name}, {"seed", seed}, {"steps", steps}, {"state", names}};
}

void save_run_state(const std::string& path, const nlohmann::json& identity, const HostState& h, task::Model& model,
                    const optim::AlgorithmOptimizer& opt) {
  torch::serialize::OutputArchive archive;
  std::size_t i = 0;
  for (const auto& [name, t] : model.named_state()) archive.write("t" + std::to_string(i++), t.detach().to(torch::kCPU), /*is_buffer=*/true);
  torch::serialize::OutputArchive optimizer;
  opt.save(optimizer);
  archive.write("optimizer", optimizer);
  const nlohmann::json meta = {{"identity", identity},         {"step", h.step},         {"smoothed", h.smoothed},       {"final_loss", h.final_loss},
                               {"curve", curve_json(h.curve)}, {"text_rng", h.text_rng}, {"augment_rng", h.augment_rng}, {"counters", h.counters}};
  archive.write("meta", c10::IValue(meta.dump()));
  std::ostringstream bytes;
  archive.save_to(bytes);
  const std::string data = bytes.str();
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  write_file_atomic(path, data);
}

// Loads a state saved by this run (same identity, fewer than `before` steps) into the model
// and optimizer. Nothing is changed, and nullopt comes back, when the file is missing,
// unreadable or another run's; a file that reads but cannot be applied throws.
std::optional<HostState> load_run_state(const std::string& path, const nlohmann::json& identity, std::int64_t before, task::Model& model,
                                        optim::AlgorithmOptimizer& opt, const torch::Device& device) {
  if (path.empty() || !std::filesystem::exists(path)) return std::nullopt;
  const auto state = model.named_state();
  HostState h;
  std::vector<torch::Tensor> saved;
  torch::serialize::InputArchive archive, optimizer;
  try {
    archive.load_from(path, device);
    c10::IValue meta_value;
    archive.read("meta", meta_value);
    const auto meta = parse_json(meta_value.toStringRef(), path + ": meta");
    if (meta.at("identity") != identity) return std::nullopt;
    h.step = meta.at("step").get<std::int64_t>();
    if (h.step < 1 || h.step >= before) return std::nullopt;
    h.smoothed = meta.at("smoothed").get<double>();
    h.final_loss = meta.at("final_loss").get<double>();
    h.curve = curve_from_json(meta.at("curve"));
    h.text_rng = meta.at("text_rng").get<std::string>();
    h.augment_rng = meta.at("augment_rng").get<std::string>();
    h.counters = meta.at("counters").get<std::vector<std::uint64_t>>();
    for (std::size_t i = 0; i < state.size(); ++i) {
      torch::Tensor t;
      archive.read("t" + std::to_string(i), t, /*is_buffer=*/true);
      if (!t.sizes().equals(state[i].second.sizes())) return std::nullopt;
      saved.push_back(t);
    }
    archive.read("optimizer", optimizer);
  } catch (const std::exception&) {
    return std::nullopt;  // unreadable (e.g. cut short): the run trains from step 0, to the same result
  }
  try {
    model.set_counters(h.counters);
    {
      torch::NoGradGuard no_grad;
      for (std::size_t i = 0; i < state.size(); ++i) state[i].second.copy_(saved[i]);
    }
    opt.load(optimizer);
  } catch (const std::exception& e) {
    throw Error("cannot continue the run from " + path + ": " + e.what());
  }
  return h;
}

// What the training loop keeps on the device between host reads: each step's loss and, at
// the steps that log, whether every parameter is finite.
struct PendingStep {
  std::int64_t step;
  torch::Tensor loss;           // 0-dim float
  torch::Tensor params_finite;  // 0-dim bool; undefined when the step does not log
};

// Resolves the budget's device and applies the process-wide settings a run trains under.
torch::Device prepare_device(const Budget& budget) {
  const torch::Device device(resolve_device(budget.device));
  if (budget.threads > 0 && at::get_num_threads() != budget.threads) at::set_num_threads(budget.threads);
  set_blas_threads(budget.threads);
  if (device.is_cuda()) at::globalContext().setDeterministicCuDNN(true);  // same seed, same result on one GPU
  return device;
}

// A run's step counts: the steps its schedule spans, how often the host reads the
// device, and the step it stops after (steps, or earlier for stop_at).
struct StepPlan {
  std::int64_t steps;
  std::int64_t sync_every;
  std::int64_t stop;
};

StepPlan plan_steps(const Budget& budget, const task::Task& task, const torch::Device& device) {
  // A user task's own step count scales every horizon the study asks for (step_scale).
  // The scaled count is checked in doubles before it is rounded into an integer.
  const double scaled = budget.steps > 0 ? static_cast<double>(budget.steps) * task.step_scale : static_cast<double>(task.default_steps);
  if (!(scaled <= static_cast<double>(limits::kSteps.max)))
    throw Error(limits::exceeds("task '" + task.name + "': steps x the task's step scale", fmt::format("{:.0f}", scaled), limits::kSteps));
  const std::int64_t steps = budget.steps > 0 ? std::max<std::int64_t>(1, std::llround(scaled)) : task.default_steps;
  const std::int64_t sync_every = budget.sync_every > 0 ? budget.sync_every : device.is_cpu() ? 1 : budget.log_every;
  // A stop scales with the steps (a user task's step_scale) and stays before the end.
  if (budget.stop_at > 0 && steps < 2) throw Error("a run of one step cannot stop early (stop_at)");
  const std::int64_t stop =
      budget.stop_at > 0 ? std::clamp<std::int64_t>(std::llround(static_cast<double>(budget.stop_at) * task.step_scale), 1, steps - 1) : steps;
  return {steps, sync_every, stop};
}

// A run's training batches and the random engines that draw them, all functions of
// (task, seed). Images: a fresh permutation per epoch. Text: each sequence starts at a
// uniformly drawn byte.
struct BatchSource {
  BatchSource(const task::Task& task, const data::Splits& data, const torch::Device& device, std::uint64_t seed, at::MemoryFormat format)
      : task(task),
        data(data),
        device(device),
        format(format),
        text(task.kind == task::TaskKind::NextToken),
        sampler(text ? std::nullopt
                     : std::make_optional<data::BatchSampler>(data.train.size(), task.batch_size, derive_seed(seed, "batches/" + task.name))),
        text_rng(derive_seed(seed, "batches/" + task.name)),
        starts(static_cast<std::size_t>(text ? task.batch_size : 0)),
        start_range(text ? static_cast<std::uint64_t>(data.train.size() - task.seq_len) : 1),
        augment_rng(derive_seed(seed, "augment/" + task.name)) {}

  // The next step's inputs and targets, on the run's device.
  std::pair<torch::Tensor, torch::Tensor> next() {
    if (text) {
      for (auto& st : starts) st = static_cast<std::int64_t>(text_rng.below(start_range));
      auto st = torch::tensor(starts, torch::kInt64);
      if (!device.is_cpu()) st = st.to(device);
      return text_batch(data.train.tokens, st, task.seq_len);
    }
    auto idx = sampler->next();
    if (!device.is_cpu()) idx = idx.to(device);
    auto images = data.train.images.index_select(0, idx);
    if (task.augment) images = data::augment_crop_flip(images, 4, augment_rng);
    auto x = data.normalise(images, format);
    auto y = data.train.labels.index_select(0, idx);
    return {std::move(x), std::move(y)};
  }

  const task::Task& task;
  const data::Splits& data;
  const torch::Device device;
  const at::MemoryFormat format;
  const bool text;
  std::optional<data::BatchSampler> sampler;
  Rng text_rng;
  std::vector<std::int64_t> starts;  // reused by every text batch
  const std::uint64_t start_range;
  Rng augment_rng;
};

// A 0-dim bool on the parameters' device: whether every parameter is finite.
torch::Tensor all_finite(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> flags;
  for (const auto& p : params) flags.push_back(torch::isfinite(p).all());
  return torch::stack(flags).all();
}

// The training loop's host-side record: the steps not yet read from the device, and what
// the reads so far give (smoothed loss here; steps done, last loss, loss curve and
// divergence in the run's result).
struct LossLog {
  LossLog(const Budget& budget, const ProgressFn& progress, RunResult& r) : budget(budget), progress(progress), r(r) {}

  const Budget& budget;
  const ProgressFn& progress;
  RunResult& r;
  double smoothed = 0.0;
  std::vector<PendingStep> pending;

  // Reads the pending steps' values from the device (one transfer) and applies, step by step,
  // what a loop reading every step would: divergence, the smoothed loss, the loss curve.
  // Returns false when the run diverged.
  bool drain() {
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
  }
};

// Continues from the budget's resume_state when it holds a state of this run: the model,
// optimizer, samplers and log as the uninterrupted run has them at the saved step.
// Returns the first step to train (1 when nothing was resumed).
std::int64_t resume_run(const Budget& budget, const nlohmann::json& identity, std::int64_t stop, task::Model& model, optim::AlgorithmOptimizer& opt,
                        const torch::Device& device, BatchSource* batches, LossLog& log) {
  if (budget.resume_state.empty()) return 1;
  auto h = load_run_state(budget.resume_state, identity, stop, model, opt, device);
  if (!h) return 1;
  // The samplers drawn up to the saved step, as the uninterrupted run has them.
  if (batches != nullptr) {
    if (batches->sampler) batches->sampler->skip(h->step);
    batches->text_rng.set_state(h->text_rng);
    batches->augment_rng.set_state(h->augment_rng);
  }
  log.smoothed = h->smoothed;
  log.r.final_loss = h->final_loss;
  log.r.loss_curve = h->curve;
  log.r.steps_done = h->step;
  log.r.resumed_at = h->step;
  return h->step + 1;
}

// The loss one training step minimises (1-based step): a batch's cross-entropy, or a policy's
// REINFORCE loss over its episodes.
using StepLoss = std::function<torch::Tensor(std::int64_t)>;

// Trains steps first_step .. plan.stop, stopping early on cancellation or divergence.
void train_steps(std::int64_t first_step, const StepPlan& plan, const Budget& budget, optim::AlgorithmOptimizer& opt,
                 const std::vector<torch::Tensor>& params, const StepLoss& step_loss, LossLog& log,
                 const std::function<void(std::int64_t)>& after_step) {
  for (std::int64_t step = first_step; step <= plan.stop; ++step) {
    if (budget.cancel != nullptr && budget.cancel->load(std::memory_order_relaxed)) {
      log.r.cancelled = true;
      break;
    }
    // Gradients are dropped, not zeroed (set_to_none, PyTorch 2's default): backward then
    // hands its fresh gradient tensors over instead of adding them into zeros, which saves
    // a fill and an add over every parameter each step. A parameter that gets no gradient
    // is left alone by the step, as in torch.optim.
    for (auto& group : opt.optimizer().param_groups())
      for (auto& p : group.params()) p.mutable_grad().reset();
    auto loss = step_loss(step);
    loss.backward();
    opt.step(step);
    // A diverged loss is found at the next read, so a step may be taken on it: the run
    // is over then and its model discarded, which changes nothing reported.
    log.pending.push_back({step, loss.detach(), (step % budget.log_every == 0 || step == plan.steps) ? all_finite(params) : torch::Tensor()});
    if ((step % plan.sync_every == 0 || step == plan.stop) && !log.drain()) break;
    after_step(step);
  }
}
// Batches whose forward passes re-estimate batch-norm statistics at the weights a model is
// evaluated with when they are not those it trained at (Schedule-Free's x; the authors'
// advice: a few dozen training batches in training mode, without gradients).
constexpr int kBatchNormBatches = 20;

// Step `step`'s loss: the next batch's mean cross-entropy, or the REINFORCE loss of the
// policy's episodes, drawn from (seed, step) alone.
StepLoss step_loss(const task::Task& task, task::Model& model, BatchSource* batches, std::uint64_t seed) {
  if (task.kind == task::TaskKind::Reinforcement) {
    const task::cartpole::RolloutOptions options{static_cast<int>(task.batch_size), task::cartpole::kDiscount};
    const std::uint64_t key = derive_seed(seed, "rollouts/" + task.name);
    return [&model, options, key](std::int64_t step) { return task::cartpole::reinforce_loss(model, key, step - 1, options).loss; };
  }
  return [&model, batches](std::int64_t) {
    auto [x, y] = batches->next();
    return flat_cross_entropy(model.forward(x), y, torch::kMean);
  };
}

// What a finished run scores on the budget's split: the split's accuracy or 1/perplexity, or a
// policy's mean return / 500 over its evaluation episodes (validation and test draw different
// starts, each a function of the run's seed).
Evaluation evaluate_run(task::Model& model, const task::Task& task, const data::Splits& data, const Budget& budget, std::uint64_t seed) {
  if (task.kind != task::TaskKind::Reinforcement)
    return evaluate_on(model, task, data, budget.eval_split, budget.eval_batch, budget.eval_limit, budget.memory_format);
  model.train(false);
  Evaluation e;
  e.loss = std::numeric_limits<double>::quiet_NaN();  // a return, not a loss, is measured
  e.score = e.accuracy = task::cartpole::evaluate_policy(model, derive_seed(seed, "episodes/" + std::string(data::split_name(budget.eval_split))),
                                                         task::cartpole::kEvalEpisodes);
  model.train(true);
  return e;
}
// The score of the evaluation split where the model is evaluated: Schedule-Free moves the
// weights to x and recomputes batch-norm statistics there from its own batches (a function of
// the run's seed, not the training batches).
Evaluation evaluate_where_scored(task::Model& model, optim::AlgorithmOptimizer& opt, const task::Task& task, const data::Splits& data,
                                 const Budget& budget, std::uint64_t seed, const torch::Device& device) {
  opt.to_evaluation();
  if (opt.evaluates_elsewhere() && task.kind != task::TaskKind::Reinforcement) {
    BatchSource batches(task, data, device, derive_seed(seed, "batch-norm"), budget.memory_format);
    model.recompute_batch_norm([&batches] { return batches.next().first; }, kBatchNormBatches);
  }
  return evaluate_run(model, task, data, budget, seed);
}

// A point of the validation curve mid-run, leaving the run as it was: where evaluating moves
// weights (Schedule-Free's x) or statistics, every tensor of the model is put back bit for bit.
double curve_point(task::Model& model, optim::AlgorithmOptimizer& opt, const task::Task& task, const data::Splits& data, const Budget& budget,
                   std::uint64_t seed, const torch::Device& device) {
  if (!opt.evaluates_elsewhere()) return evaluate_run(model, task, data, budget, seed).score;
  std::vector<torch::Tensor> saved;
  for (auto& [name, t] : model.named_state()) saved.push_back(t.detach().clone());
  const double score = evaluate_where_scored(model, opt, task, data, budget, seed, device).score;
  opt.to_training();
  torch::NoGradGuard no_grad;
  std::size_t i = 0;
  for (auto& [name, t] : model.named_state()) t.copy_(saved[i++]);
  return score;
}

}  // namespace

Evaluation evaluate(task::Model& model, const task::Task& task, data::Split split, std::int64_t batch, std::int64_t limit, at::MemoryFormat format) {
  const auto params = model.parameters();
  const auto device = params.empty() ? torch::Device(torch::kCPU) : params.front().device();
  return evaluate_on(model, task, splits_on(task, device), split, batch, limit, format);
}

RunResult train_and_evaluate(const genome::Genome& genome, const task::Task& task, std::uint64_t seed, const Budget& budget,
                             const ProgressFn& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  budget.validate();
  const torch::Device device = prepare_device(budget);
  genome.validate(genome::Bounds::kHardMaxTerms);
  const StepPlan plan = plan_steps(budget, task, device);

  RunResult r;
  r.task = task.name;
  r.task_label = task.label();
  r.seed = seed;
  r.split = data::split_name(budget.eval_split);
  r.steps_planned = plan.stop;

  // Common random numbers: everything random below is a function of (task, seed).
  // The model is initialised on the CPU (one generator) and then moved.
  auto model = task.instantiate_model(derive_seed(seed, "init/" + task.name), budget.memory_format);
  if (!device.is_cpu()) model->to(device);
  const bool control = task.kind == task::TaskKind::Reinforcement;
  const data::Splits& data = control ? *task.data : splits_on(task, device);  // an environment has no data to move
  std::optional<BatchSource> batches;
  if (!control) batches.emplace(task, data, device, seed, budget.memory_format);
  const auto params = model->parameters();
  optim::AlgorithmOptimizer opt(genome, task::named_parameters(*model), plan.steps, task.muon_parameters);
  r.parameter_split = opt.split();
  model->train(true);

  LossLog log(budget, progress, r);
  const bool continuing = !budget.resume_state.empty() || !budget.save_state.empty();
  const nlohmann::json identity = continuing ? run_identity(genome, task, seed, plan.steps, *model) : nlohmann::json();
  BatchSource* source = batches ? &*batches : nullptr;
  const std::int64_t first_step = resume_run(budget, identity, plan.stop, *model, opt, device, source, log);

  const auto train_t0 = std::chrono::steady_clock::now();
  const auto at_step = [&](std::int64_t step) {
    if (budget.curve_every > 0 && step % budget.curve_every == 0 && step < plan.stop)
      r.val_curve.emplace_back(step, curve_point(*model, opt, task, data, budget, seed, device));
  };
  train_steps(first_step, plan, budget, opt, params, step_loss(task, *model, source, seed), log, at_step);
  r.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - train_t0).count();
  r.smoothed_loss = log.smoothed;
  // A stop between logged steps checks the parameters too (without a loss-curve point, which
  // the uninterrupted run does not have there).
  const std::int64_t stop = plan.stop, steps = plan.steps;
  if (stop < steps && !r.diverged && !r.cancelled && stop % budget.log_every != 0 && !all_finite(params).item<bool>()) {
    r.diverged = true;
    r.divergence_reason = "non-finite parameter";
  }
  if (stop < steps && !r.diverged && !r.cancelled && !budget.save_state.empty())
    save_run_state(budget.save_state, identity,
                   HostState{stop, log.smoothed, r.final_loss, r.loss_curve, source ? source->text_rng.state() : "",
                             source ? source->augment_rng.state() : "", model->counters()},
                   *model, opt);
  if (!r.diverged && !r.cancelled) {
    const Evaluation e = evaluate_where_scored(*model, opt, task, data, budget, seed, device);
    r.accuracy = e.score;
    r.eval_loss = e.loss;
    if (budget.curve_every > 0) r.val_curve.emplace_back(r.steps_done, e.score);
  }
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
