#include "evoopt/data/cifar.hpp"

#include <cstring>

#include <torch/torch.h>

#include "evoopt/common/error.hpp"

namespace evoopt::data {

Dataset parse_cifar_records(const Bytes& bytes, const std::string& what, int num_classes) {
  if (bytes.empty()) throw Error(what + ": empty CIFAR binary file");
  if (bytes.size() % kCifarRecordBytes != 0)
    throw Error(what + ": size " + std::to_string(bytes.size()) + " is not a whole number of 3073-byte CIFAR records (truncated?)");
  const auto n = static_cast<std::int64_t>(bytes.size() / kCifarRecordBytes);
  Dataset ds;
  ds.images = torch::empty({n, 3, 32, 32}, torch::kUInt8);
  ds.labels = torch::empty({n}, torch::kInt64);
  auto* img = ds.images.data_ptr<std::uint8_t>();
  auto* lab = ds.labels.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint8_t* rec = bytes.data() + static_cast<std::size_t>(i) * kCifarRecordBytes;
    if (rec[0] >= num_classes)
      throw Error(what + ": record " + std::to_string(i) + " has label " + std::to_string(rec[0]) + ", outside 0.." +
                  std::to_string(num_classes - 1));
    lab[i] = rec[0];
    std::memcpy(img + i * 3072, rec + 1, 3072);
  }
  return ds;
}

Dataset read_cifar_files(const std::vector<std::filesystem::path>& files) {
  std::vector<torch::Tensor> images, labels;
  for (const auto& f : files) {
    Dataset part = parse_cifar_records(read_file_maybe_gz(f), f.string());
    images.push_back(part.images);
    labels.push_back(part.labels);
  }
  if (images.empty()) throw Error("no CIFAR files given");
  Dataset ds;
  ds.images = images.size() == 1 ? images[0] : torch::cat(images);
  ds.labels = labels.size() == 1 ? labels[0] : torch::cat(labels);
  return ds;
}

Bytes to_cifar_records(const Dataset& ds) {
  if (ds.images.dim() != 4 || ds.images.size(1) != 3 || ds.images.size(2) != 32 || ds.images.size(3) != 32)
    throw Error("CIFAR layout needs (N,3,32,32) images");
  auto images = ds.images.contiguous();
  auto labels = ds.labels.contiguous();
  const auto n = ds.size();
  Bytes out(static_cast<std::size_t>(n) * kCifarRecordBytes);
  for (std::int64_t i = 0; i < n; ++i) {
    std::uint8_t* rec = out.data() + static_cast<std::size_t>(i) * kCifarRecordBytes;
    rec[0] = static_cast<std::uint8_t>(labels.data_ptr<std::int64_t>()[i]);
    std::memcpy(rec + 1, images.data_ptr<std::uint8_t>() + i * 3072, 3072);
  }
  return out;
}

}  // namespace evoopt::data
