#pragma once
// IDX reader (MNIST, Fashion-MNIST): http://yann.lecun.com/exdb/mnist/ —
// big-endian magic 0x00000803 (uint8 images, dims N, rows, cols) and
// 0x00000801 (uint8 labels, dim N). Raw or gzip files.
#include <filesystem>
#include <string>

#include "evoopt/common/files.hpp"
#include "evoopt/data/dataset.hpp"

namespace evoopt::data {

// Parse IDX bytes; `what` names the source in error messages.
torch::Tensor parse_idx_images(const Bytes& bytes, const std::string& what);                        // uint8 (N,1,H,W)
torch::Tensor parse_idx_labels(const Bytes& bytes, const std::string& what, int num_classes = 10);  // int64 (N)

// Read an images file and a labels file and check that their counts agree.
Dataset read_idx_pair(const std::filesystem::path& images, const std::filesystem::path& labels);

}  // namespace evoopt::data
