#pragma once
// Tasks: a dataset split + a model preset + batch size + default steps.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/data/split.hpp"
#include "evoopt/task/models.hpp"

namespace evoopt::task {

struct TaskOptions {
  std::filesystem::path data_dir;
  ModelPreset model = ModelPreset::Tiny;
  data::SplitOptions split;     // validation size, split seed, training subset
  std::int64_t batch_size = 0;  // 0: the task's default
  int augment = -1;             // -1: the task's default (on for CIFAR-10), 0 off, 1 on
};

struct Task {
  std::string name;  // mnist, fashion_mnist, cifar10
  ModelPreset model = ModelPreset::Tiny;
  std::int64_t batch_size = 64;
  std::int64_t default_steps = 300;
  bool augment = false;
  std::shared_ptr<const data::Splits> data;
  InputShape input() const;
  const std::string& label() const { return data->label; }  // provenance label
  // Everything about the task that changes a training run's result: name, model,
  // batch size, augmentation, the data's digest (dataset checksums) and how the
  // splits were carved (validation size, split seed, training subset).
  nlohmann::json description() const;
};

// The one field list of TaskOptions (worker processes load their tasks from it).
nlohmann::json to_json(const TaskOptions& options);
TaskOptions task_options_from_json(const nlohmann::json& j);

std::vector<std::string> task_names();
// Loads the dataset (must have been fetched) and builds the splits.
Task load_task(const std::string& name, const TaskOptions& options);
// Builds a task over already-made splits (tests, user tasks).
Task make_task(const std::string& name, std::shared_ptr<const data::Splits> splits, const TaskOptions& options);

}  // namespace evoopt::task
