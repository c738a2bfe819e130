#pragma once
// Image-folder importer: train/<class>/*.{jpg,jpeg,png} and test/<class>/...,
// from a directory on disk or from a tar archive in memory. Classes are sorted
// by name unless a class list is given; images are decoded once (stb_image)
// and must all have the expected size; the result is usually cached in the
// CIFAR binary layout so later loads need no decoding.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "evoopt/common/files.hpp"
#include "evoopt/data/dataset.hpp"

namespace evoopt::data {

struct ImageFolderOptions {
  std::vector<std::string> classes;  // empty: the sorted class directory names of train/
  int height = 32;
  int width = 32;
  int channels = 3;
};

struct ImageFolderResult {
  std::vector<std::string> classes;
  Dataset train;
  Dataset test;
};

// One file of a tar archive.
struct TarEntry {
  std::string name;  // path inside the archive, "./" prefix removed
  std::size_t offset = 0;
  std::size_t size = 0;
};
// Lists the regular files of a POSIX (ustar/GNU) tar held in memory.
std::vector<TarEntry> list_tar(const Bytes& tar, const std::string& what);

ImageFolderResult import_image_folder(const std::filesystem::path& root, const ImageFolderOptions& options = {});
// `root_prefix` selects the directory inside the archive holding train/ and test/ ("" = auto-detect).
ImageFolderResult import_image_folder_tar(const Bytes& tar, const std::string& what, const ImageFolderOptions& options = {});

}  // namespace evoopt::data
