#include "evoopt/task/task.hpp"

#include <algorithm>

#include "evoopt/common/checked_json.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/limits.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/optim/muon.hpp"
#include "evoopt/task/cartpole.hpp"

namespace evoopt::task {

nlohmann::json to_json(const TaskOptions& o) {
  return {{"data_dir", o.data_dir.string()},
          {"model", model_preset_name(o.model)},
          {"val_size", o.split.val_size},
          {"split_seed", o.split.split_seed},
          {"train_subset", o.split.train_subset},
          {"batch_size", o.batch_size},
          {"augment", o.augment},
          {"study_steps", o.study_steps},
          {"user_tasks", [&] {
             nlohmann::json a = nlohmann::json::array();
             for (const auto& u : o.user_tasks) a.push_back(u.to_json());
             return a;
           }()}};
}

TaskOptions task_options_from_json(const nlohmann::json& j) {
  const std::string what = "task options: ";
  TaskOptions o;
  o.data_dir = json_at<std::string>(j, "data_dir", what);
  o.model = model_preset_from_name(json_at<std::string>(j, "model", what));
  o.split.val_size = json_at<std::int64_t>(j, "val_size", what);
  o.split.split_seed = json_at<std::uint64_t>(j, "split_seed", what);
  o.split.train_subset = json_at<std::int64_t>(j, "train_subset", what);
  o.batch_size = json_at<std::int64_t>(j, "batch_size", what);
  o.augment = json_at<int>(j, "augment", what);
  if (j.contains("user_tasks")) {
    if (!j.at("user_tasks").is_array()) throw Error(what + "user_tasks must be an array");
    for (const auto& u : j.at("user_tasks")) o.user_tasks.push_back(UserTaskSpec::from_json(u));
  }
  o.study_steps = json_value<std::int64_t>(j, "study_steps", 0, what);
  validate(o);
  return o;
}

void validate(const TaskOptions& o) {
  if (o.batch_size < 0) throw Error("batch size must be >= 0 (0 = the task's default), got " + std::to_string(o.batch_size));
  limits::check("batch size", o.batch_size, limits::kBatchSize);
  if (o.split.val_size < 1) throw Error("validation size must be >= 1, got " + std::to_string(o.split.val_size));
  limits::check("validation size", o.split.val_size, limits::kExamples);
  if (o.split.train_subset < 0) throw Error("training subset must be >= 0 (0 = all), got " + std::to_string(o.split.train_subset));
  limits::check("training subset", o.split.train_subset, limits::kExamples);
  if (o.augment < -1 || o.augment > 1) throw Error("augment must be -1 (the task's default), 0 or 1, got " + std::to_string(o.augment));
  if (o.study_steps < 0) throw Error("study steps must be >= 0, got " + std::to_string(o.study_steps));
  limits::check("steps", o.study_steps, limits::kSteps);
}

std::vector<std::string> task_names() { return data::dataset_names(); }

namespace {
// DATASET[:MODEL] split into its parts (the model named, not yet checked against the data).
TaskName split_task_name(const std::string& name) {
  TaskName t;
  const auto colon = name.find(':');
  t.dataset = name.substr(0, colon);
  if (colon == std::string::npos) return t;
  try {
    t.model = model_preset_from_name(name.substr(colon + 1));
  } catch (const Error& e) {
    throw Error("task '" + name + "': " + e.what());
  }
  return t;
}

// The one check that a model reads its data: `text` data needs a text model (lstm,
// transformer), images an image model.
void check_model_reads(const std::string& name, const std::string& dataset, bool text, ModelPreset model) {
  if (text && is_image_model(model))
    throw Error("task '" + name + "': " + dataset + " is a text; its model must be lstm or transformer, not " + model_preset_name(model));
  if (!text && !is_image_model(model))
    throw Error("task '" + name + "': " + dataset + " holds images; " + model_preset_name(model) + " reads text (allowed: tiny, paper, mlp)");
}
}  // namespace

TaskName parse_task_name(const std::string& name) {
  const TaskName t = split_task_name(name);
  if (t.dataset == kCartPole) {
    if (t.model) throw Error("task '" + name + "': cartpole trains its own policy network; it names no model");
    return t;
  }
  const auto names = data::dataset_names();
  if (std::find(names.begin(), names.end(), t.dataset) == names.end()) {
    std::string list;
    for (const auto& d : names) list += (list.empty() ? "" : ", ") + d;
    throw Error("unknown task '" + name + "' (DATASET[:MODEL]; datasets: " + list + "; models: tiny, paper, mlp, lstm, transformer; or cartpole)");
  }
  const data::DatasetSpec& spec = data::dataset_spec(t.dataset);
  if (t.model) check_model_reads(name, spec.display, spec.format == data::Format::Text, *t.model);
  return t;
}

InputShape Task::input() const {
  if (kind == TaskKind::NextToken) return {0, 0, 0, 256};
  if (kind == TaskKind::Reinforcement) return {0, 0, 0, 2};  // two actions
  const auto& img = data->train.images;
  return {img.size(1), img.size(2), img.size(3), static_cast<std::int64_t>(data->classes.size())};
}

double Task::step_flops() const {
  if (kind == TaskKind::Reinforcement) return 0;  // unknown: episodes last 9 to 500 steps
  const double per_example = forward_flops(model, input()) * static_cast<double>(seq_len > 0 ? seq_len : 1);
  return 3.0 * per_example * static_cast<double>(batch_size);
}

std::int64_t text_sequence_length(ModelPreset model) {
  if (model == ModelPreset::Lstm) return kTextSequenceLength;
  if (model == ModelPreset::Transformer) return kTransformerContext;
  throw Error(std::string("text_sequence_length: ") + model_preset_name(model) + " is not a built-in text model");
}

std::int64_t scored_examples(std::int64_t size, std::int64_t seq_len) { return seq_len > 0 ? (size - 1) / seq_len : size; }

std::int64_t Task::examples(data::Split split) const {
  if (kind == TaskKind::Reinforcement) return cartpole::kEvalEpisodes;
  return scored_examples(data->get(split).size(), kind == TaskKind::NextToken ? seq_len : 0);
}

std::unique_ptr<Model> Task::instantiate_model(std::uint64_t seed, at::MemoryFormat format) const {
  if (model == ModelPreset::TorchScript) {
    if (!script) throw Error("task '" + name + "' has no TorchScript model loaded");
    return script->instantiate(seed);
  }
  return build_model(model, input(), seed, format);
}

nlohmann::json Task::description() const {
  nlohmann::json d = {{"task", name}, {"model", model_preset_name(model)}, {"batch_size", batch_size}, {"augment", augment}};
  if (kind == TaskKind::NextToken) d["seq_len"] = seq_len;
  // The `paper` models' dropout masks are counter-based (models.hpp) since 2026-11-29; runs
  // stored before, with libtorch's bernoulli_ masks, have other results and no such field.
  if (model == ModelPreset::Paper) d["dropout_masks"] = "counter";
  if (!user.is_null()) d["user_task"] = user;
  if (step_scale != 1.0) d["step_scale"] = step_scale;
  if (!data) {
    d["data"] = nullptr;
    return d;
  }
  if (kind == TaskKind::Reinforcement) {
    d["environment"] = {{"name", "CartPole-v1"}, {"gamma", cartpole::kDiscount}, {"eval_episodes", cartpole::kEvalEpisodes}};
    return d;
  }
  d["data_label"] = data->label;
  d["data_digest"] = data->digest;
  d["train_size"] = data->train.size();
  d["val_size"] = data->val.size();
  d["test_size"] = data->test.size();
  d["split_seed"] = data->options.split_seed;
  d["train_subset"] = data->options.train_subset;
  return d;
}

Task make_task(const std::string& name, std::shared_ptr<const data::Splits> splits, const TaskOptions& options) {
  const TaskName parsed = split_task_name(name);
  Task t;
  t.name = name;
  t.dataset = parsed.dataset;
  t.data = std::move(splits);
  t.batch_size = options.batch_size > 0 ? options.batch_size : 64;
  t.default_steps = 300;
  const bool text = t.data->is_text();
  t.model = parsed.model.value_or(text ? ModelPreset::Lstm : options.model);
  check_model_reads(name, t.dataset, text, t.model);
  if (text) {
    t.kind = TaskKind::NextToken;
    t.seq_len = text_sequence_length(t.model);
    if (options.batch_size == 0 && t.model == ModelPreset::Transformer) t.batch_size = kTransformerBatchSize;
    t.muon_parameters = muon_parameters(t.model);
    t.augment = false;
    return t;
  }
  const bool rgb = t.data->train.images.size(1) == 3;
  t.augment = options.augment < 0 ? rgb : options.augment == 1;
  return t;
}

namespace {
// The TorchScript interpreter's message ends with the error itself ("RuntimeError: mat1 and
// mat2 shapes cannot be multiplied ..."); its first line only says that something failed.
std::string last_line(const std::string& msg) {
  std::string line, last;
  for (char c : msg + "\n") {
    if (c != '\n') {
      line += c;
      continue;
    }
    if (line.find_first_not_of(" \t") != std::string::npos) last = line.substr(line.find_first_not_of(" \t"));
    line.clear();
  }
  return last;
}

std::string shape_text(c10::IntArrayRef sizes) {
  std::string out = "(";
  for (std::size_t i = 0; i < sizes.size(); ++i) out += (i ? ", " : "") + std::to_string(sizes[i]);
  return out + ")";
}

// Runs the user's model on one training batch and checks what it returns, so a model that
// does not fit the data is refused before any training.
void check_user_model(const Task& t, const UserTaskSpec& spec) {
  const std::string where = "task '" + t.name + "': model " + spec.model.filename().string();
  auto model = t.instantiate_model(0);
  model->train(false);
  torch::NoGradGuard no_grad;
  const std::int64_t b = std::max<std::int64_t>(
      1, std::min<std::int64_t>(t.batch_size,
                                t.kind == TaskKind::NextToken ? std::min<std::int64_t>(4, t.data->train.size() / t.seq_len) : t.data->train.size()));
  torch::Tensor x;
  std::vector<std::int64_t> want;
  std::string what;
  std::int64_t classes = 0;
  if (t.kind == TaskKind::NextToken) {
    const auto& tok = t.data->train.tokens;
    x = tok.narrow(0, 0, b * t.seq_len).to(torch::kInt64).view({b, t.seq_len});
    classes = std::max(tok.max().item<std::int64_t>(), t.data->test.tokens.max().item<std::int64_t>()) + 1;
    want = {b, t.seq_len};
    what = "a batch of token sequences " + shape_text(x.sizes());
  } else {
    x = t.data->normalise(t.data->train.images.narrow(0, 0, b));
    classes = static_cast<std::int64_t>(t.data->classes.size());
    want = {b};
    what = "a batch of images " + shape_text(x.sizes());
  }
  torch::Tensor y;
  try {
    y = model->forward(x);
  } catch (const c10::Error& e) {
    throw Error(where + " cannot take " + what + ": " + last_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {  // the TorchScript interpreter's errors
    throw Error(where + " cannot take " + what + ": " + last_line(e.what()));
  }
  want.push_back(classes);
  const bool ok = t.kind == TaskKind::NextToken ? y.dim() == 3 && y.size(0) == want[0] && y.size(1) == want[1] && y.size(2) >= classes
                                                : y.dim() == 2 && y.size(0) == want[0] && y.size(1) == classes;
  if (!ok || !at::isFloatingType(y.scalar_type()))
    throw Error(
        where + " returns " + shape_text(y.sizes()) + " for " + what + "; expected logits " + shape_text(want) +
        (t.kind == TaskKind::NextToken ? " (at least " + std::to_string(classes) + " token values)" : " (" + std::to_string(classes) + " classes)"));
}

// The environment task: no data (empty splits carry its label), the policy network, episodes
// as its batch.
Task cartpole_task(const TaskOptions& options) {
  auto splits = std::make_shared<data::Splits>();
  splits->name = kCartPole;
  splits->label = "CartPole-v1 (simulated)";
  Task t;
  t.name = t.dataset = kCartPole;
  t.kind = TaskKind::Reinforcement;
  t.model = ModelPreset::Policy;
  t.batch_size = options.batch_size > 0 ? options.batch_size : kCartPoleEpisodes;
  cartpole::RolloutOptions{static_cast<int>(std::min<std::int64_t>(t.batch_size, 1 << 20)), cartpole::kDiscount}.validate();
  t.default_steps = kCartPoleSteps;
  t.data = std::move(splits);
  return t;
}

Task load_user_task(const UserTaskSpec& spec, const TaskOptions& options) {
  spec.validate();
  auto script = std::make_shared<const ScriptModelSource>(spec.model);  // a bad model file fails before the data is read
  data::DatasetPair pair = load_user_data(spec);
  data::SplitOptions so = options.split;
  if (spec.val_size > 0) so.val_size = spec.val_size;
  auto splits = std::make_shared<data::Splits>(data::make_splits(pair, so));
  if (!spec.mean.empty()) {
    if (spec.kind == TaskKind::NextToken) throw Error("[[task]] '" + spec.name + "': mean/std apply to images, not token streams");
    if (static_cast<std::int64_t>(spec.mean.size()) != splits->train.images.size(1))
      throw Error("[[task]] '" + spec.name + "': mean/std need " + std::to_string(splits->train.images.size(1)) + " value(s), one per channel");
    splits->set_statistics(spec.mean, spec.stddev);
  }
  Task t;
  t.name = spec.name;
  t.dataset = spec.name;
  t.data = splits;
  t.kind = spec.kind;
  t.model = ModelPreset::TorchScript;
  t.batch_size = spec.batch_size > 0 ? spec.batch_size : options.batch_size > 0 ? options.batch_size : 64;
  t.seq_len = t.kind == TaskKind::NextToken ? spec.seq_len : 0;
  if (spec.steps > 0) {
    t.default_steps = spec.steps;
    if (options.study_steps > 0) t.step_scale = static_cast<double>(spec.steps) / static_cast<double>(options.study_steps);
  }
  t.augment = false;
  t.muon_parameters = spec.muon_parameters;
  t.script = std::move(script);
  nlohmann::json u = spec.to_json();
  u.erase("model");  // the path is where it lies; the digest is what it is
  u.erase("data");
  u["model_sha256"] = t.script->digest();
  t.user = u;
  if (t.kind == TaskKind::NextToken && splits->train.size() < t.seq_len + 1)
    throw Error("[[task]] '" + spec.name + "': the training stream is shorter than seq_len + 1");
  check_user_model(t, spec);
  if (!t.muon_parameters.empty()) {  // named parameters the model has, each a matrix: checked now, not when Muon first runs
    try {
      optim::muon_split(named_parameters(*t.instantiate_model(0)), t.muon_parameters);
    } catch (const Error& e) {
      throw Error("[[task]] '" + spec.name + "': muon_parameters: " + e.what());
    }
  }
  return t;
}
}  // namespace

Task load_task(const std::string& name, const TaskOptions& options) {
  validate(options);  // before any data is read
  for (const auto& u : options.user_tasks)
    if (u.name == name) return load_user_task(u, options);
  const TaskName parsed = parse_task_name(name);
  if (parsed.dataset == kCartPole) return cartpole_task(options);
  auto pair = data::load_dataset(parsed.dataset, options.data_dir);
  auto splits = std::make_shared<data::Splits>(data::make_splits(pair, options.split));
  return make_task(name, std::move(splits), options);
}

}  // namespace evoopt::task
