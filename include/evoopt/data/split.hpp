#pragma once
// Train/val/test splits: validation is carved deterministically (by a split
// seed) from the official training set; test is the official test set,
// touched only when explicitly asked for. Per-channel normalisation statistics
// come from the training split alone. Images stay uint8 in memory; batches are
// converted and normalised on the fly.
#include <cstdint>
#include <string>
#include <vector>

#include "evoopt/common/rng.hpp"
#include "evoopt/data/dataset.hpp"

namespace evoopt::data {

struct SplitOptions {
  std::int64_t val_size = 5000;
  std::uint64_t split_seed = 0;
  std::int64_t train_subset = 0;  // 0: the whole remaining training set
};

enum class Split { Train, Val, Test };
const char* split_name(Split s);
Split split_from_name(const std::string& name);  // "train" | "val" | "test"; throws evoopt::Error

struct Splits {
  std::string name;   // "mnist"
  std::string label;  // provenance label, e.g. "cifar10 (JPEG mirror, lossy)"
  std::vector<std::string> classes;
  Dataset train, val, test;
  std::vector<double> mean, stddev;  // per channel, in [0,1] pixel units, from the training split
  std::string digest;                // the source files' digest (DatasetPair::digest), or of the tensors when made in memory
  SplitOptions options;              // how the splits were carved
  const Dataset& get(Split s) const { return s == Split::Train ? train : s == Split::Val ? val : test; }
  bool is_text() const { return train.tokens.defined(); }
  // uint8 (B,C,H,W) -> normalised float32, channels-last by default (the layout
  // oneDNN's convolutions run fastest in; make_model's weights use it too).
  torch::Tensor normalise(const torch::Tensor& images_u8, at::MemoryFormat format = at::MemoryFormat::ChannelsLast) const;
  // Sets mean/stddev and the folded per-channel scale and shift normalise() applies
  // (built once here, not on every batch).
  void set_statistics(std::vector<double> channel_mean, std::vector<double> channel_stddev);
  // A copy whose images, labels and normalisation constants live on `device`.
  Splits to(torch::Device device) const;

 private:
  torch::Tensor scale_, shift_;  // (1, C, 1, 1) float32: x_u8 · scale + shift = (x/255 − mean)/std
};

// Images: validation is `val_size` images drawn by the split seed from the official
// training set, training the rest (or its first `train_subset`). Text: the order of the
// tokens is the data, so validation is the training stream's last kTextHeldOutBytes
// (dataset.hpp; a tenth of it when that is less) and training the tokens before them; val_size, the split seed and
// train_subset (a count of images) do not apply: a text trains on its whole training part.
Splits make_splits(const DatasetPair& pair, const SplitOptions& options);

// Draws minibatch indices: a fresh permutation of the training split each epoch,
// all from one explicit RNG, so the batch sequence is a function of the seed.
class BatchSampler {
 public:
  BatchSampler(std::int64_t dataset_size, std::int64_t batch_size, std::uint64_t seed);
  torch::Tensor next();             // int64 indices (batch_size)
  void skip(std::int64_t batches);  // as `batches` calls of next(), without the tensors

 private:
  std::int64_t n_, batch_;
  Rng rng_;
  std::vector<std::int64_t> order_;
  std::size_t pos_ = 0;
};

// CIFAR-style augmentation on a uint8 batch: zero-pad by `pad`, random crop back
// to the original size, random horizontal flip (probability 1/2).
torch::Tensor augment_crop_flip(const torch::Tensor& images_u8, int pad, Rng& rng);

}  // namespace evoopt::data
