#include "evoopt/task/user_task.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "evoopt/common/checked_json.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/limits.hpp"
#include "evoopt/common/schema.hpp"
#include "evoopt/data/checksum.hpp"
#include "evoopt/data/cifar.hpp"
#include "evoopt/data/idx.hpp"
#include "evoopt/data/image_folder.hpp"

namespace evoopt::task {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const std::vector<std::string> kFormats = {"tensors", "image_folder", "idx", "cifar"};
const std::vector<std::string> kIdxFiles = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

Bytes read_bytes(const fs::path& p) { return read_binary_file(p, limits::kDataFileBytes); }

std::string file_digest(const fs::path& p) { return data::sha256_hex(read_bytes(p)); }

// IDX files by their MNIST names, raw or gzip.
fs::path idx_file(const fs::path& dir, const std::string& name) {
  for (const fs::path& p : {dir / name, dir / (name + ".gz")})
    if (fs::is_regular_file(p)) return p;
  throw Error(dir.string() + ": no " + name + " (or " + name + ".gz) for an idx dataset");
}

// Integer tensor → int64; throws naming the key when it is not one.
torch::Tensor integer_tensor(const torch::Tensor& t, const std::string& what) {
  if (!t.defined() || at::isFloatingType(t.scalar_type()) || t.scalar_type() == torch::kBool) throw Error(what + " must be an integer tensor");
  return t.to(torch::kInt64).contiguous();
}
}  // namespace

const char* task_kind_name(TaskKind k) {
  switch (k) {
    case TaskKind::NextToken:
      return "next_token";
    case TaskKind::Reinforcement:
      return "reinforcement";
    case TaskKind::Classification:
      break;
  }
  return "classification";
}

TaskKind task_kind_from_name(const std::string& name) {
  if (name == "classification") return TaskKind::Classification;
  if (name == "next_token") return TaskKind::NextToken;
  throw Error("unknown kind '" + name + "' (allowed: classification, next_token)");
}

void UserTaskSpec::validate() const {
  const std::string where = "[[task]] '" + name + "': ";
  if (name.empty()) throw Error("[[task]]: name is missing");
  if (name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
    throw Error("[[task]] name '" + name + "' may hold only a-z, 0-9, _ and -");
  if (model.empty()) throw Error(where + "model (a TorchScript file) is missing");
  if (data.empty()) throw Error(where + "data is missing");
  if (std::find(kFormats.begin(), kFormats.end(), format) == kFormats.end())
    throw Error(where + "unknown format '" + format + "' (allowed: " + joined(kFormats) + ")");
  if (kind == TaskKind::NextToken && format != "tensors")
    throw Error(where + "next_token data must be in the tensors format (train and test token streams)");
  if (batch_size < 0) throw Error(where + "batch_size must be >= 0 (0: the study's)");
  limits::check(where + "batch_size", batch_size, limits::kBatchSize);
  if (steps < 0) throw Error(where + "steps must be >= 0 (0: the study's)");
  limits::check(where + "steps", steps, limits::kSteps);
  if (val_size < 0) throw Error(where + "val_size must be >= 0 (0: the study's)");
  limits::check(where + "val_size", val_size, limits::kExamples);
  if (seq_len < 1) throw Error(where + "seq_len must be >= 1");
  limits::check(where + "seq_len", seq_len, limits::kSequenceLength);
  if (!input.empty() && (input.size() != 3 || *std::min_element(input.begin(), input.end()) < 1))
    throw Error(where + "input must be [channels, height, width], each >= 1");
  if (!input.empty()) {
    // The product checked in doubles: three int64 factors can overflow int64.
    const double values = static_cast<double>(input[0]) * static_cast<double>(input[1]) * static_cast<double>(input[2]);
    if (values > static_cast<double>(limits::kImageValues.max))
      throw Error(
          limits::exceeds(where + "input", fmt::format("[{}, {}, {}] ({:.0f} values)", input[0], input[1], input[2], values), limits::kImageValues));
  }
  if (format == "image_folder" && input.empty()) throw Error(where + "an image_folder needs input = [channels, height, width]");
  if (mean.size() != stddev.size()) throw Error(where + "mean and std need one value per channel each");
  // Normalisation is (x − mean) / std: an infinite std scales every input to zero, a NaN
  // anywhere makes every input NaN.
  for (double m : mean)
    if (!std::isfinite(m)) throw Error(where + fmt::format("mean values must be finite numbers, got {}", m));
  for (double s : stddev)
    if (!(s > 0) || !std::isfinite(s)) throw Error(where + fmt::format("std values must be finite and > 0, got {}", s));
  if (!fs::is_regular_file(model)) throw Error(where + "model file " + model.string() + " does not exist");
  if (format == "tensors" ? !fs::is_regular_file(data) : !fs::is_directory(data))
    throw Error(where + "data " + data.string() + " is not " + (format == "tensors" ? "a file" : "a directory"));
}

void UserTaskSpec::resolve_paths(const fs::path& base) {
  if (!model.empty() && model.is_relative()) model = fs::absolute(base / model).lexically_normal();
  if (!data.empty() && data.is_relative()) data = fs::absolute(base / data).lexically_normal();
}

json UserTaskSpec::to_json() const { return schema::to_json(*this); }

UserTaskSpec UserTaskSpec::from_json(const json& j) {
  UserTaskSpec s;
  schema::from_json(s, j, "user task: ");
  return s;
}

std::string user_data_label(const UserTaskSpec& spec) { return spec.name + " (user data: " + spec.data.filename().string() + ")"; }

namespace {

// format = "tensors": a torch.save'd dict of tensors. Returns the digest of its bytes.
std::string load_tensors(const UserTaskSpec& spec, const std::string& where, data::DatasetPair& pair) {
  const Bytes bytes = read_bytes(spec.data);
  std::string digests = data::sha256_hex(bytes);
  std::vector<char> chars(bytes.begin(), bytes.end());
  const c10::IValue v = torch::pickle_load(chars);
  if (!v.isGenericDict()) throw Error(where + spec.data.string() + " is not a dict of tensors (torch.save({...}, path))");
  std::map<std::string, torch::Tensor> t;
  for (const auto& kv : v.toGenericDict())
    if (kv.key().isString() && kv.value().isTensor()) t[kv.key().toStringRef()] = kv.value().toTensor();
  auto need = [&](const std::string& key) {
    if (!t.count(key)) throw Error(where + spec.data.string() + " has no tensor '" + key + "'");
    return t.at(key);
  };
  if (spec.kind == TaskKind::NextToken) {
    for (const char* k : {"train", "test"}) {
      const auto s = integer_tensor(need(k), where + "'" + k + "'");
      if (s.dim() != 1) throw Error(where + "'" + k + "' must be a 1-D token stream");
      if (s.numel() > 0 && s.min().item<std::int64_t>() < 0) throw Error(where + "'" + k + "' holds negative tokens");
      if (s.numel() > 0 && s.max().item<std::int64_t>() >= limits::kClasses.max)
        throw Error(limits::exceeds(where + "'" + k + "' token value", std::to_string(s.max().item<std::int64_t>()), limits::kClasses));
      (std::string(k) == "train" ? pair.train : pair.test).tokens = s;
    }
    return digests;
  }
  for (const char* part : {"train", "test"}) {
    auto x = need(std::string(part) + "_x");
    auto y = integer_tensor(need(std::string(part) + "_y"), where + "'" + part + "_y'");
    if (x.scalar_type() != torch::kUInt8) throw Error(where + "'" + part + "_x' must be uint8 images (0-255)");
    if (x.dim() == 3) x = x.unsqueeze(1);
    if (x.dim() != 4) throw Error(where + "'" + part + "_x' must be N×C×H×W or N×H×W");
    if (y.dim() != 1 || y.size(0) != x.size(0))
      throw Error(where + "'" + part + "_y' must hold one label per image (" + std::to_string(x.size(0)) + ")");
    if (y.numel() > 0 && y.min().item<std::int64_t>() < 0) throw Error(where + "'" + part + "_y' holds negative labels");
    // Labels are 0 … classes − 1: the largest one sizes the class list and the logits.
    if (y.numel() > 0 && y.max().item<std::int64_t>() >= limits::kClasses.max)
      throw Error(limits::exceeds(where + "'" + part + "_y' label", std::to_string(y.max().item<std::int64_t>()), limits::kClasses));
    data::Dataset& d = std::string(part) == "train" ? pair.train : pair.test;
    d.images = x.contiguous();
    d.labels = y;
  }
  return digests;
}

// format = "image_folder": one folder per class. Returns the digest of every file, by path.
std::string load_image_folder(const UserTaskSpec& spec, data::DatasetPair& pair) {
  data::ImageFolderOptions o;
  o.channels = static_cast<int>(spec.input[0]);
  o.height = static_cast<int>(spec.input[1]);
  o.width = static_cast<int>(spec.input[2]);
  auto r = data::import_image_folder(spec.data, o);
  pair.classes = r.classes;
  pair.train = r.train;
  pair.test = r.test;
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(spec.data))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::string digests;
  for (const auto& f : files) digests += fs::relative(f, spec.data).string() + ":" + file_digest(f) + ";";
  return digests;
}

// format = "idx": the four MNIST-layout files. Returns the digest of each.
std::string load_idx(const UserTaskSpec& spec, const std::string& where, data::DatasetPair& pair) {
  std::string digests;
  std::vector<Bytes> parts;
  for (const auto& n : kIdxFiles) {
    parts.push_back(read_file_maybe_gz(idx_file(spec.data, n)));
    digests += n + ":" + data::sha256_hex(parts.back()) + ";";
  }
  for (int p = 0; p < 2; ++p) {
    data::Dataset& d = p == 0 ? pair.train : pair.test;
    d.images = data::parse_idx_images(parts[2 * p], kIdxFiles[2 * p]);
    d.labels = data::parse_idx_labels(parts[2 * p + 1], kIdxFiles[2 * p + 1], 256);
    if (d.images.size(0) != d.labels.size(0)) throw Error(where + kIdxFiles[2 * p] + " and " + kIdxFiles[2 * p + 1] + " disagree in count");
  }
  return digests;
}

// format = "cifar": data_batch_*.bin and test_batch.bin. Returns the digest of each.
std::string load_cifar(const UserTaskSpec& spec, const std::string& where, data::DatasetPair& pair) {
  std::vector<fs::path> train;
  for (const auto& e : fs::directory_iterator(spec.data)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("data_batch_", 0) == 0) train.push_back(e.path());
  }
  std::sort(train.begin(), train.end());
  if (train.empty()) throw Error(where + spec.data.string() + " has no data_batch_*.bin");
  const fs::path test = spec.data / "test_batch.bin";
  if (!fs::is_regular_file(test)) throw Error(where + spec.data.string() + " has no test_batch.bin");
  pair.train = data::read_cifar_files(train);
  pair.test = data::read_cifar_files({test});
  train.push_back(test);
  std::string digests;
  for (const auto& f : train) digests += f.filename().string() + ":" + file_digest(f) + ";";
  return digests;
}

// Both parts non-empty; a classification task's class list (0 … max label when the format
// names none) and its images' shape, the same in both parts and as the spec's input says.
void check_loaded(const UserTaskSpec& spec, const std::string& where, data::DatasetPair& pair) {
  if (pair.train.size() == 0) throw Error(where + "the training part is empty");
  if (pair.test.size() == 0) throw Error(where + "the test part is empty");
  if (spec.kind != TaskKind::Classification) return;
  if (pair.classes.empty()) {
    const auto k = std::max(pair.train.labels.max().item<std::int64_t>(), pair.test.labels.max().item<std::int64_t>()) + 1;
    for (std::int64_t i = 0; i < k; ++i) pair.classes.push_back(std::to_string(i));
  }
  if (pair.train.images.sizes().slice(1) != pair.test.images.sizes().slice(1)) throw Error(where + "training and test images differ in shape");
  if (!spec.input.empty() && pair.train.images.sizes().slice(1) != c10::IntArrayRef(spec.input))
    throw Error(where + "the images are " + std::to_string(pair.train.images.size(1)) + "×" + std::to_string(pair.train.images.size(2)) + "×" +
                std::to_string(pair.train.images.size(3)) + ", not the input given");
}

}  // namespace

data::DatasetPair load_user_data(const UserTaskSpec& spec) {
  spec.validate();
  const std::string where = "[[task]] '" + spec.name + "': ";
  data::DatasetPair pair;
  pair.name = spec.name;
  pair.label = user_data_label(spec);
  std::string digests;
  try {
    if (spec.format == "tensors")
      digests = load_tensors(spec, where, pair);
    else if (spec.format == "image_folder")
      digests = load_image_folder(spec, pair);
    else if (spec.format == "idx")
      digests = load_idx(spec, where, pair);
    else
      digests = load_cifar(spec, where, pair);
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    throw Error(where + spec.data.string() + ": cannot be read as " + spec.format + " (" + msg.substr(0, msg.find('\n')) + ")");
  }
  check_loaded(spec, where, pair);
  pair.digest = data::sha256_hex(digests.data(), digests.size());
  return pair;
}

namespace {
class ScriptModel : public Model {
 public:
  explicit ScriptModel(torch::jit::Module m) : m_(std::move(m)) {}
  torch::Tensor forward(const torch::Tensor& x) override { return m_.forward({x}).toTensor(); }
  std::vector<torch::Tensor> parameters() override {
    std::vector<torch::Tensor> out;
    for (const auto& p : m_.parameters()) out.push_back(p);
    return out;
  }
  void train(bool on) override { m_.train(on); }
  void to(const torch::Device& device) override { m_.to(device); }
  std::vector<std::pair<std::string, torch::Tensor>> named_state() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : m_.named_parameters()) out.emplace_back("param/" + p.name, p.value);
    for (const auto& b : m_.named_buffers()) out.emplace_back("buffer/" + b.name, b.value);
    return out;
  }

 private:
  torch::jit::Module m_;
};
}  // namespace

ScriptModelSource::ScriptModelSource(const fs::path& file) {
  const Bytes bytes = read_bytes(file);
  digest_ = data::sha256_hex(bytes);
  try {
    std::istringstream in(std::string(bytes.begin(), bytes.end()));
    module_ = std::make_shared<torch::jit::Module>(torch::jit::load(in));
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    throw Error(file.string() + ": not a TorchScript model (" + msg.substr(0, msg.find('\n')) +
                "; save one with torch.jit.script(model).save(path))");
  }
}

std::unique_ptr<Model> ScriptModelSource::instantiate(std::uint64_t seed) const {
  torch::NoGradGuard no_grad;  // the copy's parameters are leaves, not outputs of a clone
  torch::jit::Module m = module_->clone();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& sub : m.named_modules()) {
    torch::Tensor weight, bias;
    for (const auto& p : sub.value.named_parameters(/*recurse=*/false)) {
      if (p.name == "weight") weight = p.value;
      if (p.name == "bias") bias = p.value;
    }
    if (!weight.defined() || weight.dim() < 2) continue;
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight.numel() / weight.size(0)));
    weight.uniform_(-bound, bound, gen);
    if (bias.defined()) bias.uniform_(-bound, bound, gen);
  }
  for (auto p : m.parameters()) p.detach_().set_requires_grad(true);
  m.train(true);
  return std::make_unique<ScriptModel>(std::move(m));
}

}  // namespace evoopt::task
