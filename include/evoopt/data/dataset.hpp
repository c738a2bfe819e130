#pragma once
// In-memory data. Image classification: images stay uint8 (N, C, H, W) so the
// three built-in image datasets together take a few hundred MB; conversion to float
// and normalisation happen per batch (see split.hpp). Text: one uint8 byte stream
// (next-token prediction over bytes, vocabulary 256).
#include <torch/types.h>

#include <string>
#include <vector>

namespace evoopt::data {

struct Dataset {
  torch::Tensor images;  // uint8, (N, C, H, W)
  torch::Tensor labels;  // int64, (N)
  torch::Tensor tokens;  // text: uint8 (N) bytes; images and labels undefined
  // Images, or bytes of a text.
  std::int64_t size() const { return labels.defined() ? labels.size(0) : tokens.defined() ? tokens.size(0) : 0; }
};

// A dataset's official train and test parts plus where they came from.
struct DatasetPair {
  std::string name;   // registry name, e.g. "cifar10"
  std::string label;  // provenance label shown wherever results are, e.g. "CIFAR-10 (JPEG mirror, lossy)"
  bool lossy = false;
  std::vector<std::string> classes;
  Dataset train;
  Dataset test;
  // SHA-256 over the verified files' checksums (load_dataset), or empty for
  // data made in memory; part of every run-store fingerprint.
  std::string digest;
};

// A text dataset's test part is its last kTextHeldOutBytes bytes; make_splits carves
// validation as the kTextHeldOutBytes before them; training is the rest.
inline constexpr std::int64_t kTextHeldOutBytes = 65536;

// Counts of each label 0..num_classes-1.
std::vector<std::int64_t> label_histogram(const Dataset& ds, int num_classes);

}  // namespace evoopt::data
