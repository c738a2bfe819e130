#pragma once
// A user's own task, defined in the config file as a [[task]] table: a TorchScript model
// (made in PyTorch with torch.jit.script(model).save(path)) and a dataset in one of four
// formats. Usable wherever a built-in task is (train, evolve, compare, resume, worker
// processes, MPI ranks); the run store's fingerprint holds the SHA-256 of the model file
// and of every data file.
//
//   [[task]]
//   name = "mine"                 # used in tasks / transfer_tasks / --task
//   model = "model.pt"            # TorchScript; paths relative to the config file
//   data = "data.pt"              # a file or a directory, by format:
//   format = "tensors"            # tensors | image_folder | idx | cifar
//   kind = "classification"       # or "next_token"
//   batch_size = 64               # 0 or absent: the study's
//   steps = 300                   # training steps where the study trains `steps` (0: the study's);
//                                 # other horizons (the 2x block, racing rungs) scale alike
//   val_size = 1000               # classification: validation images carved from train (0: the study's)
//   input = [1, 28, 28]           # image_folder: the images' channels, height, width (required)
//   mean = [0.5]                  # per channel, in [0, 1] pixel units; absent: from the training split
//   std = [0.25]
//   seq_len = 64                  # next_token: tokens per training sequence
//
// Formats: `tensors` is a torch.save'd dict — classification: train_x (uint8 N×C×H×W or
// N×H×W), train_y (integer N), test_x, test_y; next_token: train and test (1-D integer
// token streams). `image_folder`: DIR/train/<class>/*.png|jpg and DIR/test/<class>/...
// `idx`: DIR holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte (raw or .gz). `cifar`: DIR holding data_batch_*.bin and
// test_batch.bin (CIFAR-10's binary layout).
//
// Loss: cross-entropy over the model's logits — (B, classes) for classification, (B, T,
// vocabulary) for next-token prediction. Fitness: accuracy, or exp(−mean cross-entropy) =
// 1/perplexity for next_token, both in [0, 1]. Each run re-draws every weight of two or more
// dimensions and its sibling bias from the run's seed, U(−1/√fan_in, 1/√fan_in) (PyTorch's
// default bound for linear and convolution layers), so seeds vary the initialisation as they
// do for built-in models; one-dimensional weights (normalisation layers) keep the file's
// values. Before any training the model is run on one batch of training data, and a batch
// or output shape that does not fit the data is refused with one line.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/common/limits.hpp"
#include "evoopt/common/schema.hpp"
#include "evoopt/data/dataset.hpp"
#include "evoopt/task/models.hpp"

namespace torch::jit {
struct Module;
}

namespace evoopt::task {

// What a task's model predicts: a class per example, or the next token of a stream.
// Reinforcement: a built-in environment (cartpole), never a user task's kind.
enum class TaskKind { Classification, NextToken, Reinforcement };
const char* task_kind_name(TaskKind k);                 // "classification", "next_token", "reinforcement"
TaskKind task_kind_from_name(const std::string& name);  // a user task's kind; throws evoopt::Error naming the value

}  // namespace evoopt::task

namespace evoopt::schema {
template <>
struct EnumText<task::TaskKind> {
  static std::string name(task::TaskKind k) { return task::task_kind_name(k); }
  static task::TaskKind parse(const std::string& s) { return task::task_kind_from_name(s); }
};
}  // namespace evoopt::schema

namespace evoopt::task {

struct UserTaskSpec {
  std::string name;
  std::filesystem::path model;
  std::filesystem::path data;
  std::string format;  // tensors | image_folder | idx | cifar
  TaskKind kind = TaskKind::Classification;
  std::int64_t batch_size = 0;
  std::int64_t steps = 0;
  std::int64_t val_size = 0;
  std::int64_t seq_len = 64;
  std::vector<std::int64_t> input;  // channels, height, width
  std::vector<double> mean, stddev;
  std::vector<std::string> muon_parameters;  // names Muon steps ([] = the automatic split)
  void validate() const;                     // throws evoopt::Error naming the task and the field
  // Paths made absolute against `base` (the config file's directory).
  void resolve_paths(const std::filesystem::path& base);
  nlohmann::json to_json() const;  // config.json, worker processes
  static UserTaskSpec from_json(const nlohmann::json& j);
  // The schema (common/schema.hpp): a [[user_tasks]] table and its config.json object.
  template <typename Spec, typename Visit>
  static void fields(Spec& s, Visit&& visit) {
    using schema::help;
    visit("name", s.name, help("The task's name, used in `tasks` and `transfer_tasks` (a-z, 0-9, _ and -)"));
    visit("model", s.model, help("TorchScript model file (relative to the config file)"));
    visit("data", s.data, help("Data file or directory (relative to the config file)"));
    visit("format", s.format, help("Data format").one_of("tensors, image_folder, idx, cifar"));
    visit("kind", s.kind, help("What the model predicts").one_of("classification, next_token"));
    visit("batch_size", s.batch_size, help("Minibatch size (0 = the study's)").at_least(0).limit(limits::kBatchSize));
    visit("steps", s.steps, help("Training steps standing for the study's steps (0 = the study's)").at_least(0).limit(limits::kSteps).since("0"));
    visit("val_size", s.val_size, help("Validation examples (0 = the study's)").at_least(0).limit(limits::kExamples));
    visit("seq_len", s.seq_len, help("next_token: tokens per training sequence").at_least(1).limit(limits::kSequenceLength));
    visit("input", s.input, help("Input shape [channels, height, width] ([] = from the data)"));
    visit("mean", s.mean, help("Per-channel normalisation mean ([] = none)"));
    visit("std", s.stddev, help("Per-channel normalisation standard deviation, finite and > 0"));
    visit("muon_parameters", s.muon_parameters,
          help("Parameters (by name) that step with Muon when it is a baseline ([] = every matrix but the first and the last)").since("[]", true));
  }
};

// How results label a user task's data: "NAME (user data: FILE)".
std::string user_data_label(const UserTaskSpec& spec);
// The dataset: its train and test parts (a next-token dataset as token streams) with the
// SHA-256 of every file it was read from as its digest.
data::DatasetPair load_user_data(const UserTaskSpec& spec);

// A TorchScript module loaded once; instantiate() gives each run its own copy with weights
// drawn from the run's seed. The file is read once: the module is loaded from the bytes
// whose SHA-256 digest() gives, so the digest is exactly what was loaded.
class ScriptModelSource {
 public:
  explicit ScriptModelSource(const std::filesystem::path& file);
  std::unique_ptr<Model> instantiate(std::uint64_t seed) const;
  const std::string& digest() const { return digest_; }

 private:
  std::shared_ptr<torch::jit::Module> module_;
  std::string digest_;
};

}  // namespace evoopt::task
