#include "evoopt/task/task.hpp"

#include "evoopt/common/error.hpp"
#include "evoopt/data/sources.hpp"

namespace evoopt::task {

nlohmann::json to_json(const TaskOptions& o) {
  return {{"data_dir", o.data_dir.string()},
          {"model", model_preset_name(o.model)},
          {"val_size", o.split.val_size},
          {"split_seed", o.split.split_seed},
          {"train_subset", o.split.train_subset},
          {"batch_size", o.batch_size},
          {"augment", o.augment}};
}

TaskOptions task_options_from_json(const nlohmann::json& j) {
  TaskOptions o;
  o.data_dir = j.at("data_dir").get<std::string>();
  o.model = model_preset_from_name(j.at("model").get<std::string>());
  o.split.val_size = j.at("val_size").get<std::int64_t>();
  o.split.split_seed = j.at("split_seed").get<std::uint64_t>();
  o.split.train_subset = j.at("train_subset").get<std::int64_t>();
  o.batch_size = j.at("batch_size").get<std::int64_t>();
  o.augment = j.at("augment").get<int>();
  return o;
}

std::vector<std::string> task_names() { return data::dataset_names(); }

TaskName parse_task_name(const std::string& name) {
  TaskName t;
  const auto colon = name.find(':');
  t.dataset = name.substr(0, colon);
  bool known = false;
  for (const auto& d : data::dataset_names()) known = known || d == t.dataset;
  if (!known) {
    std::string list;
    for (const auto& d : data::dataset_names()) list += (list.empty() ? "" : ", ") + d;
    throw Error("unknown task '" + name + "' (DATASET[:MODEL]; datasets: " + list + "; models: tiny, paper, mlp, lstm)");
  }
  const data::DatasetSpec& spec = data::dataset_spec(t.dataset);
  if (colon == std::string::npos) return t;
  const std::string model = name.substr(colon + 1);
  try {
    t.model = model_preset_from_name(model);
  } catch (const Error& e) {
    throw Error("task '" + name + "': " + e.what());
  }
  const bool text = spec.format == data::Format::Text;
  if (text && is_image_model(*t.model)) throw Error("task '" + name + "': " + spec.display + " is a text; its model must be lstm, not " + model);
  if (!text && !is_image_model(*t.model))
    throw Error("task '" + name + "': " + spec.display + " holds images; lstm reads text (allowed: tiny, paper, mlp)");
  return t;
}

InputShape Task::input() const {
  if (kind == TaskKind::NextToken) return {0, 0, 0, 256};
  const auto& img = data->train.images;
  return {img.size(1), img.size(2), img.size(3), static_cast<std::int64_t>(data->classes.size())};
}

std::int64_t Task::examples(data::Split split) const {
  const std::int64_t n = data->get(split).size();
  return kind == TaskKind::NextToken ? (n - 1) / seq_len : n;
}

nlohmann::json Task::description() const {
  nlohmann::json d = {{"task", name}, {"model", model_preset_name(model)}, {"batch_size", batch_size}, {"augment", augment}};
  if (kind == TaskKind::NextToken) d["seq_len"] = seq_len;
  if (!data) {
    d["data"] = nullptr;
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
  Task t;
  t.name = name;
  const auto colon = name.find(':');
  t.dataset = name.substr(0, colon);
  t.data = std::move(splits);
  t.batch_size = options.batch_size > 0 ? options.batch_size : 64;
  t.default_steps = 300;
  std::optional<ModelPreset> model;
  if (colon != std::string::npos) model = model_preset_from_name(name.substr(colon + 1));
  if (t.data->is_text()) {
    t.kind = TaskKind::NextToken;
    t.model = model.value_or(ModelPreset::Lstm);
    if (is_image_model(t.model)) throw Error("task '" + name + "': a text task needs the lstm model, not " + model_preset_name(t.model));
    t.seq_len = kTextSequenceLength;
    t.augment = false;
    return t;
  }
  t.model = model.value_or(options.model);
  if (!is_image_model(t.model)) throw Error("task '" + name + "': an image task cannot use the lstm model");
  const bool rgb = t.data->train.images.size(1) == 3;
  t.augment = options.augment < 0 ? rgb : options.augment == 1;
  return t;
}

Task load_task(const std::string& name, const TaskOptions& options) {
  const TaskName parsed = parse_task_name(name);
  auto pair = data::load_dataset(parsed.dataset, options.data_dir);
  auto splits = std::make_shared<data::Splits>(data::make_splits(pair, options.split));
  return make_task(name, std::move(splits), options);
}

}  // namespace evoopt::task
