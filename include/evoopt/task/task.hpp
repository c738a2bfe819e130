#pragma once
// Tasks: a dataset split + a model preset + batch size + default steps. A task is named
// DATASET or DATASET:MODEL: `fashion_mnist` trains the study's model preset (tiny by
// default), `fashion_mnist:mlp` an MLP on the same data, `jargon` (a text) the byte-level
// LSTM, `jargon:transformer` a small byte-level transformer on the same text. Image tasks
// are classification scored by accuracy; text tasks are next-byte prediction scored by
// exp(−mean validation cross-entropy) = 1/perplexity, in (0, 1].
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/data/split.hpp"
#include "evoopt/task/models.hpp"
#include "evoopt/task/user_task.hpp"

namespace evoopt::task {

struct TaskOptions {
  std::filesystem::path data_dir;
  ModelPreset model = ModelPreset::Tiny;  // image tasks named without a model
  data::SplitOptions split;               // validation size, split seed, training subset
  std::int64_t batch_size = 0;            // 0: the task's default
  int augment = -1;                       // -1: the task's default (on for CIFAR-10), 0 off, 1 on
  std::vector<UserTaskSpec> user_tasks;   // [[task]] tables: load_task finds them by name
  std::int64_t study_steps = 0;           // the steps a user task's own `steps` stand for (0: its own count is kept as is)
};

// Bytes per training sequence of a text task with the LSTM (unrolled over this many).
inline constexpr std::int64_t kTextSequenceLength = 64;
// A text task's sequence length is a property of its model: kTextSequenceLength for the
// LSTM, the whole context (kTransformerContext) for the transformer. Training sequences and
// the evaluation's non-overlapping windows have this length. Throws evoopt::Error for an
// image model.
std::int64_t text_sequence_length(ModelPreset model);
// The transformer's default batch: 16 sequences of kTransformerContext bytes (2,048 bytes
// predicted per step, half the LSTM's 64 × 64): about 0.085 s per training step on one core
// of the project's machine, 1.5× the LSTM's 0.055 s (batch 8: 0.042 s, 32: 0.18 s), and 1.3 s
// to score the validation split; 300 steps (the built-in tasks' default) reach a validation
// perplexity of about 11 with Adam, the LSTM's 300 about 12 (measured with `evoopt bench
// train --tasks jargon jargon:transformer` and `evoopt train`).
inline constexpr std::int64_t kTransformerBatchSize = 16;

// The built-in environment: `cartpole` (Gymnasium's CartPole-v1 with a policy network trained
// by REINFORCE, task/cartpole.hpp). Its batch is episodes per training step; it is scored by
// the mean return / 500 over cartpole::kEvalEpisodes episodes. No dataset, no model to name.
inline constexpr const char* kCartPole = "cartpole";
inline constexpr std::int64_t kCartPoleEpisodes = 16;
inline constexpr std::int64_t kCartPoleSteps = 100;

struct Task {
  std::string name;     // mnist, fashion_mnist:mlp, jargon, ...
  std::string dataset;  // mnist, fashion_mnist, cifar10, jargon
  TaskKind kind = TaskKind::Classification;
  ModelPreset model = ModelPreset::Tiny;
  std::int64_t batch_size = 64;  // images, or sequences of seq_len bytes
  std::int64_t default_steps = 300;
  std::int64_t seq_len = 0;  // next-token tasks
  double step_scale = 1.0;   // a run trains round(requested steps × this): a user task's own steps
  bool augment = false;
  std::shared_ptr<const data::Splits> data;
  // The parameters (by name) Muon steps, where the automatic split (every matrix but the first
  // and the last) is not right: a user task's muon_parameters, the transformer's hidden
  // matrices (its position embedding is a matrix too). Empty: the automatic split.
  std::vector<std::string> muon_parameters;
  std::shared_ptr<const ScriptModelSource> script;  // a user task's TorchScript model (model = TorchScript)
  nlohmann::json user;                              // a user task's spec and model digest (in description())
  InputShape input() const;
  // A fresh model for one run, initialised from `seed` (build_model, or the user's TorchScript).
  std::unique_ptr<Model> instantiate_model(std::uint64_t seed, at::MemoryFormat format = at::MemoryFormat::ChannelsLast) const;
  // What one evaluation of `split` scores: images, or windows of seq_len bytes.
  std::int64_t examples(data::Split split) const;
  // Estimated floating-point operations of one training step: 3 × the analytic forward FLOPs
  // × batch (× sequence length). 0 when unknown (a user's TorchScript model).
  double step_flops() const;
  const std::string& label() const { return data->label; }  // provenance label
  // Everything about the task that changes a training run's result: name, model,
  // batch size, augmentation, the data's digest (dataset checksums) and how the
  // splits were carved (validation size, split seed, training subset).
  nlohmann::json description() const;
};

// The one field list of TaskOptions (worker processes load their tasks from it).
nlohmann::json to_json(const TaskOptions& options);
TaskOptions task_options_from_json(const nlohmann::json& j);  // checked: validate(), every integer fits its field
// Throws evoopt::Error naming a field outside its range or limit (common/limits.hpp);
// load_task calls it before it reads any data.
void validate(const TaskOptions& options);

// The built-in datasets a task can name (mnist, fashion_mnist, cifar10, jargon).
std::vector<std::string> task_names();
// DATASET[:MODEL] → (dataset, model or none). Throws evoopt::Error naming what is wrong:
// an unknown dataset or model, or a model that does not read the dataset (lstm or
// transformer on images, an image model on text).
struct TaskName {
  std::string dataset;
  std::optional<ModelPreset> model;
};
TaskName parse_task_name(const std::string& name);
// Loads the dataset (must have been fetched, or a [[task]] of options.user_tasks) and
// builds the splits; a user task's model is run on one training batch first.
Task load_task(const std::string& name, const TaskOptions& options);
// What one evaluation of a split of `size` elements scores: `size` images, or, for a text
// task (seq_len > 0), its windows of seq_len bytes (each predicts the byte after it).
std::int64_t scored_examples(std::int64_t size, std::int64_t seq_len);
// Builds a task over already-made splits (tests, user tasks).
Task make_task(const std::string& name, std::shared_ptr<const data::Splits> splits, const TaskOptions& options);

}  // namespace evoopt::task
