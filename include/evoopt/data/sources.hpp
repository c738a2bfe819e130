#pragma once
// Where each dataset comes from, and the one table of official files and
// checksums. A dataset is resolved, in order, from: the data dir (already
// verified), mirror dirs (--mirror or EVOOPT_DATA_MIRROR), system package dirs
// (e.g. /usr/share/datasets/fashion-mnist), the official URLs (libcurl). Every
// file is verified by the checksum of its decompressed bytes before use, and a
// dataset is staged in a temporary directory that is renamed into place only
// once complete, so the data dir never holds half-written data.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "evoopt/data/dataset.hpp"

namespace evoopt::data {

// Idx: four IDX files; CifarBinary: the official binary batches; Text: one UTF-8 text
// file (next-token tasks over its bytes; see kTextHeldOutBytes).
enum class Format { Idx, CifarBinary, Text };

struct FileSpec {
  std::string name;    // decompressed file name
  std::string sha256;  // of the decompressed bytes (empty when the source publishes only MD5)
  std::string md5;     // of the decompressed bytes (CIFAR-10's published checksums)
  std::uint64_t bytes = 0;
};

struct DatasetSpec {
  std::string name;     // registry name: mnist, fashion_mnist, cifar10
  std::string display;  // MNIST, Fashion-MNIST, CIFAR-10
  Format format = Format::Idx;
  std::vector<std::string> classes;
  std::vector<FileSpec> files;              // IDX: train images, train labels, test images, test labels; CIFAR: batches
  std::vector<std::string> urls;            // IDX: base URLs (+ name + ".gz"); CIFAR: the binary tarball
  std::string archive_md5;                  // CIFAR: MD5 of the official tarball as published
  std::vector<std::string> mirror_subdirs;  // sub-directories of a mirror dir to look in
  std::vector<std::string> system_dirs;     // directories filled by Debian packages
  std::string debian_package;               // the package filling system_dirs (named in errors)
};

const std::vector<DatasetSpec>& dataset_registry();
const DatasetSpec& dataset_spec(const std::string& name);  // throws evoopt::Error listing the known names
// The registered dataset a task name (DATASET[:MODEL]) names; none for other names (user
// tasks, synthetic evaluators' names).
const DatasetSpec* dataset_of_task(const std::string& task);
std::vector<std::string> dataset_names();

// The CIFAR-10 JPEG image-folder mirror (lossy): its archive and the SHA-256 of the uncompressed tar.
inline constexpr const char* kCifarJpegArchive = "cifar10-jpeg.tar.gz";
inline constexpr const char* kCifarJpegTarSha256 = "74f15e6469def9a38eaeb54947d736a95716532de50fd246e8924944cc8b4f88";
inline constexpr const char* kCifarJpegLabel = "cifar10 (JPEG mirror, lossy)";

std::filesystem::path default_data_dir();              // $EVOOPT_DATA_DIR or ./data
std::vector<std::filesystem::path> default_mirrors();  // $EVOOPT_DATA_MIRROR, ':'-separated

using LogFn = std::function<void(const std::string&)>;

struct FetchOptions {
  std::filesystem::path data_dir = default_data_dir();
  std::vector<std::filesystem::path> mirrors;               // searched in order
  std::vector<std::filesystem::path> system_dirs_override;  // tests: replace the spec's system dirs
  bool use_system_dirs = true;
  bool allow_download = true;
  // Extra download locations tried before the official URLs, each a directory URL
  // holding the official file names (an internal HTTP mirror; file:// works too).
  std::vector<std::string> url_bases;
  bool official_urls = true;  // false: only url_bases (air-gapped sites, tests)
  bool force = false;         // re-fetch even when the data dir already has it
};

struct FetchResult {
  std::string dataset;
  std::string source;  // "data dir", "mirror <path>", "system <path>", "url <url>"
  std::string label;   // provenance label
  std::int64_t train_count = 0, test_count = 0;
};

FetchResult fetch_dataset(const std::string& name, const FetchOptions& options, const LogFn& log = {});

struct VerifyResult {
  std::string dataset;
  bool ok = false;
  std::string source;
  std::string label;
  std::int64_t train_count = 0, test_count = 0;
  std::string status;  // "ok", or what is wrong
};

VerifyResult verify_dataset(const std::string& name, const std::filesystem::path& data_dir);

// Loads a fetched dataset; throws evoopt::Error saying how to fetch it when absent, and
// naming the file when any byte differs from the SHA-256 recorded when it was fetched:
// every load hashes the very bytes it parses (each file is read once).
DatasetPair load_dataset(const std::string& name, const std::filesystem::path& data_dir);

}  // namespace evoopt::data
