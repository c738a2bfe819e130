#include "evoopt/data/idx.hpp"

#include <cstring>

#include <torch/torch.h>

#include "evoopt/common/error.hpp"

namespace evoopt::data {
namespace {
std::uint32_t be32(const Bytes& b, std::size_t offset) {
  return (std::uint32_t{b[offset]} << 24) | (std::uint32_t{b[offset + 1]} << 16) | (std::uint32_t{b[offset + 2]} << 8) | std::uint32_t{b[offset + 3]};
}
std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08X", v);
  return buf;
}
}  // namespace

torch::Tensor parse_idx_images(const Bytes& bytes, const std::string& what) {
  if (bytes.size() < 16) throw Error(what + ": truncated IDX image file (" + std::to_string(bytes.size()) + " bytes, header needs 16)");
  const std::uint32_t magic = be32(bytes, 0);
  if (magic != 0x00000803) throw Error(what + ": wrong magic number " + hex32(magic) + " for an IDX image file (expected 0x00000803)");
  const std::uint64_t n = be32(bytes, 4), rows = be32(bytes, 8), cols = be32(bytes, 12);
  if (n == 0 || rows == 0 || cols == 0 || rows > 4096 || cols > 4096)
    throw Error(what + ": wrong dimensions " + std::to_string(n) + "x" + std::to_string(rows) + "x" + std::to_string(cols));
  const std::uint64_t expected = 16 + n * rows * cols;
  if (bytes.size() < expected)
    throw Error(what + ": truncated IDX image file (" + std::to_string(bytes.size()) + " bytes, header promises " + std::to_string(expected) + ")");
  if (bytes.size() > expected)
    throw Error(what + ": " + std::to_string(bytes.size() - expected) + " trailing bytes after " + std::to_string(n) +
                " images (wrong dimensions in header?)");
  auto t = torch::empty({static_cast<std::int64_t>(n), 1, static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)}, torch::kUInt8);
  std::memcpy(t.data_ptr<std::uint8_t>(), bytes.data() + 16, n * rows * cols);
  return t;
}

torch::Tensor parse_idx_labels(const Bytes& bytes, const std::string& what, int num_classes) {
  if (bytes.size() < 8) throw Error(what + ": truncated IDX label file (" + std::to_string(bytes.size()) + " bytes, header needs 8)");
  const std::uint32_t magic = be32(bytes, 0);
  if (magic != 0x00000801) throw Error(what + ": wrong magic number " + hex32(magic) + " for an IDX label file (expected 0x00000801)");
  const std::uint64_t n = be32(bytes, 4);
  if (bytes.size() < 8 + n)
    throw Error(what + ": truncated IDX label file (" + std::to_string(bytes.size()) + " bytes, header promises " + std::to_string(8 + n) + ")");
  if (bytes.size() > 8 + n)
    throw Error(what + ": " + std::to_string(bytes.size() - 8 - n) + " trailing bytes after " + std::to_string(n) + " labels");
  auto t = torch::empty({static_cast<std::int64_t>(n)}, torch::kInt64);
  auto* out = t.data_ptr<std::int64_t>();
  for (std::uint64_t i = 0; i < n; ++i) {
    const int label = bytes[8 + i];
    if (label >= num_classes)
      throw Error(what + ": label " + std::to_string(label) + " at index " + std::to_string(i) + " is outside 0.." + std::to_string(num_classes - 1));
    out[i] = label;
  }
  return t;
}

Dataset read_idx_pair(const std::filesystem::path& images, const std::filesystem::path& labels) {
  Dataset ds;
  ds.images = parse_idx_images(read_file_maybe_gz(images), images.string());
  ds.labels = parse_idx_labels(read_file_maybe_gz(labels), labels.string());
  if (ds.images.size(0) != ds.labels.size(0))
    throw Error(images.string() + ": " + std::to_string(ds.images.size(0)) + " images but " + labels.string() + " has " +
                std::to_string(ds.labels.size(0)) + " labels");
  return ds;
}

std::vector<std::int64_t> label_histogram(const Dataset& ds, int num_classes) {
  std::vector<std::int64_t> h(static_cast<std::size_t>(num_classes), 0);
  auto labels = ds.labels.contiguous();
  const auto* p = labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < labels.size(0); ++i) h[static_cast<std::size_t>(p[i])]++;
  return h;
}

}  // namespace evoopt::data
