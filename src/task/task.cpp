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

std::vector<std::string> task_names() { return {"mnist", "fashion_mnist", "cifar10"}; }

InputShape Task::input() const {
  const auto& img = data->train.images;
  return {img.size(1), img.size(2), img.size(3), static_cast<std::int64_t>(data->classes.size())};
}

nlohmann::json Task::description() const {
  nlohmann::json d = {{"task", name}, {"model", model_preset_name(model)}, {"batch_size", batch_size}, {"augment", augment}};
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
  t.model = options.model;
  t.data = std::move(splits);
  const bool rgb = t.data->train.images.size(1) == 3;
  t.batch_size = options.batch_size > 0 ? options.batch_size : 64;
  t.default_steps = 300;
  t.augment = options.augment < 0 ? rgb : options.augment == 1;
  return t;
}

Task load_task(const std::string& name, const TaskOptions& options) {
  bool known = false;
  for (const auto& n : task_names()) known = known || n == name;
  if (!known) {
    std::string list;
    for (const auto& n : task_names()) list += (list.empty() ? "" : ", ") + n;
    throw Error("unknown task '" + name + "' (known: " + list + ")");
  }
  auto pair = data::load_dataset(name, options.data_dir);
  auto splits = std::make_shared<data::Splits>(data::make_splits(pair, options.split));
  return make_task(name, std::move(splits), options);
}

}  // namespace evoopt::task
