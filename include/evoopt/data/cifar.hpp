#pragma once
// CIFAR-10 binary format (https://www.cs.toronto.edu/~kriz/cifar.html): any
// whole number of 3,073-byte records, each 1 label byte then 3,072 pixel bytes
// (1,024 red, 1,024 green, 1,024 blue, row-major 32x32).
#include <filesystem>
#include <string>
#include <vector>

#include "evoopt/common/files.hpp"
#include "evoopt/data/dataset.hpp"

namespace evoopt::data {

constexpr std::size_t kCifarRecordBytes = 3073;

Dataset parse_cifar_records(const Bytes& bytes, const std::string& what, int num_classes = 10);
// Reads and concatenates CIFAR binary files (raw or gzip).
Dataset read_cifar_files(const std::vector<std::filesystem::path>& files);
// Serialises a (N,3,32,32) uint8 dataset into the CIFAR binary layout.
Bytes to_cifar_records(const Dataset& ds);

}  // namespace evoopt::data
