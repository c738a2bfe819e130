#include "evoopt/data/sources.hpp"

#include <map>
#include <optional>
#include <set>

#include <curl/curl.h>
#include <unistd.h>

#include <torch/torch.h>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/data/checksum.hpp"
#include "evoopt/data/cifar.hpp"
#include "evoopt/data/idx.hpp"
#include "evoopt/data/image_folder.hpp"

namespace evoopt::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
const std::vector<std::string> kDigits = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
}

// The one table of official files and checksums. Sources:
//  MNIST          http://yann.lecun.com/exdb/mnist/ (SHA-256s of the decompressed IDX files)
//  Fashion-MNIST  https://github.com/zalandoresearch/fashion-mnist (MIT, Zalando SE)
//  CIFAR-10       https://www.cs.toronto.edu/~kriz/cifar.html (the binary version; MD5s as published)
//  Jargon File    version 4.4.7 (public domain, Eric S. Raymond), as plain text in the Debian
//                 package jargon-text (/usr/share/doc/jargon-text/jargon.txt.gz); no official
//                 plain-text download exists, so no URL: a mirror dir or the package provides it
const std::vector<DatasetSpec>& dataset_registry() {
  static const std::vector<DatasetSpec> registry = {
      {"mnist",
       "MNIST",
       Format::Idx,
       kDigits,
       {{"train-images-idx3-ubyte", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", "", 47040016},
        {"train-labels-idx1-ubyte", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", "", 60008},
        {"t10k-images-idx3-ubyte", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", "", 7840016},
        {"t10k-labels-idx1-ubyte", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", "", 10008}},
       {"https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"},
       "",
       {"mnist", "MNIST"},
       {"/usr/share/datasets/mnist"},
       ""},
      {"fashion_mnist",
       "Fashion-MNIST",
       Format::Idx,
       {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"},
       {{"train-images-idx3-ubyte", "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888", "", 47040016},
        {"train-labels-idx1-ubyte", "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9", "", 60008},
        {"t10k-images-idx3-ubyte", "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b", "", 7840016},
        {"t10k-labels-idx1-ubyte", "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34", "", 10008}},
       {"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"},
       "",
       {"fashion-mnist", "fashion_mnist", "FashionMNIST"},
       {"/usr/share/datasets/fashion-mnist"},
       "dataset-fashion-mnist"},
      {"cifar10",
       "CIFAR-10",
       Format::CifarBinary,
       {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"},
       {{"data_batch_1.bin", "", "5dd7e06a14cb22eb9f671a540d1b7c25", 30730000},
        {"data_batch_2.bin", "", "5ea93a67294ea407fff1d09f752e9692", 30730000},
        {"data_batch_3.bin", "", "942cd6a4bcdd0dd3c604fbe906cb4421", 30730000},
        {"data_batch_4.bin", "", "ae636b3ba5c66a11e91e8cb52e771fcb", 30730000},
        {"data_batch_5.bin", "", "53f37980c15c3d472c316c40844f3f0d", 30730000},
        {"test_batch.bin", "", "803d5f7f4d78ea53de84dbe85f74fb6d", 30730000}},
       {"https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"},
       "c32a1d4ab5d03f1284b67883e8d87530",
       {"cifar10", "cifar-10", "CIFAR-10"},
       {},
       ""},
      {"jargon",
       "Jargon File",
       Format::Text,
       {},
       {{"jargon.txt", "40dfb4b98191a670a09a183d5798d50f243d23fdbd1495dcc0aca2ce5895ba97", "", 1681817}},
       {},
       "",
       {"jargon", "jargon-text"},
       {"/usr/share/doc/jargon-text"},
       "jargon-text"},
  };
  return registry;
}

std::vector<std::string> dataset_names() {
  std::vector<std::string> names;
  for (const auto& s : dataset_registry()) names.push_back(s.name);
  return names;
}

const DatasetSpec& dataset_spec(const std::string& name) {
  if (name.find(':') == std::string::npos)
    if (const auto* s = dataset_of_task(name)) return *s;
  std::string known;
  for (const auto& n : dataset_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown dataset '" + name + "' (known: " + known + ")");
}

const DatasetSpec* dataset_of_task(const std::string& task) {
  const std::string dataset = task.substr(0, task.find(':'));
  for (const auto& s : dataset_registry())
    if (s.name == dataset) return &s;
  return nullptr;
}

fs::path default_data_dir() {
  if (const char* env = std::getenv("EVOOPT_DATA_DIR"); env != nullptr && *env != 0) return env;
  return "data";
}

std::vector<fs::path> default_mirrors() {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("EVOOPT_DATA_MIRROR"); env != nullptr) {
    std::string s = env;
    std::size_t start = 0;
    while (start <= s.size()) {
      auto colon = s.find(':', start);
      if (colon == std::string::npos) colon = s.size();
      if (colon > start) out.emplace_back(s.substr(start, colon - start));
      start = colon + 1;
    }
  }
  return out;
}

namespace {

// The files a dataset occupies in the data dir (always decompressed).
struct StagedFile {
  std::string name;
  Bytes bytes;
};

struct Candidate {
  std::vector<StagedFile> files;  // verified
  std::string source;
  std::string label;
  std::string verification;
  bool lossy = false;
};

// Parses the four staged IDX files (rejecting malformed content) and returns
// the train and test counts; images and labels must agree.
std::pair<std::int64_t, std::int64_t> idx_counts(const DatasetSpec& spec, const std::vector<StagedFile>& files) {
  const int classes = static_cast<int>(spec.classes.size());
  std::int64_t counts[2];
  for (int part = 0; part < 2; ++part) {
    const StagedFile& img = files[static_cast<std::size_t>(2 * part)];
    const StagedFile& lab = files[static_cast<std::size_t>(2 * part + 1)];
    const auto n_img = parse_idx_images(img.bytes, img.name).size(0);
    const auto n_lab = parse_idx_labels(lab.bytes, lab.name, classes).size(0);
    if (n_img != n_lab)
      throw Error(img.name + ": " + std::to_string(n_img) + " images but " + lab.name + " has " + std::to_string(n_lab) + " labels");
    counts[part] = n_img;
  }
  return {counts[0], counts[1]};
}

// A text's (training, test) bytes: the test part is its last kTextHeldOutBytes.
std::pair<std::int64_t, std::int64_t> text_counts(std::size_t bytes, const std::string& name) {
  const auto n = static_cast<std::int64_t>(bytes);
  if (n < 4 * kTextHeldOutBytes)
    throw Error(name + ": a text of " + std::to_string(n) + " bytes is too short (at least " + std::to_string(4 * kTextHeldOutBytes) + ")");
  return {n - kTextHeldOutBytes, kTextHeldOutBytes};
}

// IDX and text: every file of the table from one directory (raw or .gz), each checked against it.
bool try_idx_dir(const DatasetSpec& spec, const fs::path& dir, Candidate& out, std::vector<std::string>& problems) {
  std::vector<StagedFile> files;
  for (const auto& f : spec.files) {
    fs::path found;
    for (const fs::path& p : {dir / f.name, dir / (f.name + ".gz")})
      if (fs::is_regular_file(p)) {
        found = p;
        break;
      }
    if (found.empty()) return false;
    Bytes bytes;
    try {
      bytes = read_file_maybe_gz(found);
    } catch (const Error& e) {
      problems.push_back(e.what());
      return false;
    }
    const std::string actual = sha256_hex(bytes);
    if (actual != f.sha256) {
      problems.push_back(found.string() + ": SHA-256 mismatch (got " + actual.substr(0, 16) + "..., expected " + f.sha256.substr(0, 16) + "...)");
      return false;
    }
    files.push_back({f.name, std::move(bytes)});
  }
  out.files = std::move(files);
  out.verification = "SHA-256 of decompressed files matches the official table";
  return true;
}

// CIFAR: the six official batches (MD5 as published), concatenated into train.bin / test.bin.
bool cifar_from_batches(const DatasetSpec& spec, std::vector<std::pair<std::string, Bytes>> batches, const std::string& where, Candidate& out,
                        std::vector<std::string>& problems) {
  Bytes train, test;
  for (const auto& f : spec.files) {
    auto it = std::find_if(batches.begin(), batches.end(), [&](const auto& b) { return b.first == f.name; });
    if (it == batches.end()) {
      problems.push_back(where + ": missing " + f.name);
      return false;
    }
    const std::string actual = md5_hex(it->second);
    if (actual != f.md5) {
      problems.push_back(where + "/" + f.name + ": MD5 mismatch (got " + actual + ", expected " + f.md5 + ")");
      return false;
    }
    Bytes& dst = f.name == "test_batch.bin" ? test : train;
    dst.insert(dst.end(), it->second.begin(), it->second.end());
  }
  out.files = {{"train.bin", std::move(train)}, {"test.bin", std::move(test)}};
  out.verification = "MD5 of each official batch matches the published value";
  out.label = spec.name;
  return true;
}

bool cifar_from_official_tar(const DatasetSpec& spec, const Bytes& tar, const std::string& where, Candidate& out,
                             std::vector<std::string>& problems) {
  std::vector<std::pair<std::string, Bytes>> batches;
  try {
    for (const TarEntry& e : list_tar(tar, where)) {
      auto slash = e.name.rfind('/');
      std::string base = slash == std::string::npos ? e.name : e.name.substr(slash + 1);
      batches.emplace_back(base,
                           Bytes(tar.begin() + static_cast<std::ptrdiff_t>(e.offset), tar.begin() + static_cast<std::ptrdiff_t>(e.offset + e.size)));
    }
  } catch (const Error& e) {
    problems.push_back(e.what());
    return false;
  }
  return cifar_from_batches(spec, std::move(batches), where, out, problems);
}

bool cifar_from_jpeg_tar(const DatasetSpec& spec, const fs::path& archive, Candidate& out, std::vector<std::string>& problems, const LogFn& log) {
  Bytes tar;
  try {
    tar = read_file_maybe_gz(archive);
  } catch (const Error& e) {
    problems.push_back(e.what());
    return false;
  }
  const std::string actual = sha256_hex(tar);
  if (actual != kCifarJpegTarSha256) {
    problems.push_back(archive.string() + ": SHA-256 mismatch of the uncompressed tar (got " + actual.substr(0, 16) + "..., expected " +
                       std::string(kCifarJpegTarSha256).substr(0, 16) + "...)");
    return false;
  }
  if (log) log("cifar10: decoding 60,000 JPEG images from " + archive.string() + " (once; cached in CIFAR binary layout)");
  ImageFolderOptions opt;
  opt.classes = spec.classes;
  ImageFolderResult r = import_image_folder_tar(tar, archive.string(), opt);
  if (r.train.size() != 50000 || r.test.size() != 10000) {
    problems.push_back(archive.string() + ": expected 50000/10000 images, found " + std::to_string(r.train.size()) + "/" +
                       std::to_string(r.test.size()));
    return false;
  }
  out.files = {{"train.bin", to_cifar_records(r.train)}, {"test.bin", to_cifar_records(r.test)}};
  out.lossy = true;
  out.label = kCifarJpegLabel;
  out.verification = "SHA-256 of the mirror's uncompressed tar matches; images decoded from lossy JPEG";
  return true;
}

bool try_cifar_dir(const DatasetSpec& spec, const fs::path& dir, Candidate& out, std::vector<std::string>& problems, const LogFn& log) {
  const fs::path official = dir / "cifar-10-binary.tar.gz";
  if (fs::is_regular_file(official)) {
    try {
      if (cifar_from_official_tar(spec, read_file_maybe_gz(official), official.string(), out, problems)) return true;
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  const fs::path batches_dir = dir / "cifar-10-batches-bin";
  if (fs::is_directory(batches_dir)) {
    std::vector<std::pair<std::string, Bytes>> batches;
    try {
      for (const auto& f : spec.files)
        if (fs::exists(batches_dir / f.name)) batches.emplace_back(f.name, read_file_maybe_gz(batches_dir / f.name));
      if (cifar_from_batches(spec, std::move(batches), batches_dir.string(), out, problems)) return true;
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  const fs::path jpeg = dir / kCifarJpegArchive;
  if (fs::is_regular_file(jpeg) && cifar_from_jpeg_tar(spec, jpeg, out, problems, log)) return true;
  return false;
}

// A download is held in memory: at most limits::kDataFileBytes (returning less than was
// given makes libcurl abort the transfer).
struct DownloadBuffer {
  Bytes bytes;
  bool too_big = false;
};
size_t curl_write(char* ptr, size_t size, size_t nmemb, void* userdata) {
  auto* out = static_cast<DownloadBuffer*>(userdata);
  if (static_cast<std::int64_t>(out->bytes.size() + size * nmemb) > limits::kDataFileBytes.max) {
    out->too_big = true;
    return 0;
  }
  out->bytes.insert(out->bytes.end(), ptr, ptr + size * nmemb);
  return size * nmemb;
}

Bytes download(const std::string& url) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) throw Error("libcurl initialisation failed");
  DownloadBuffer out;
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, curl_write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 20L);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  if (out.too_big)
    throw Error(limits::exceeds(url + ": download size", "more than " + std::to_string(limits::kDataFileBytes.max), limits::kDataFileBytes));
  if (rc != CURLE_OK) throw Error(url + ": download failed: " + (err[0] ? err : curl_easy_strerror(rc)));
  return std::move(out.bytes);
}

// The URLs to try for a dataset: the user's bases first, then (unless turned off) the official ones.
std::vector<std::string> download_urls(const DatasetSpec& spec, const FetchOptions& options) {
  std::vector<std::string> urls;
  for (std::string base : options.url_bases) {
    if (base.empty()) throw Error("--url: empty URL");
    if (base.back() != '/') base += '/';
    // IDX and text: the directory itself (files are NAME.gz); CIFAR: the official tarball's name inside it.
    urls.push_back(spec.format != Format::CifarBinary ? base : base + spec.urls.front().substr(spec.urls.front().rfind('/') + 1));
  }
  if (options.official_urls) urls.insert(urls.end(), spec.urls.begin(), spec.urls.end());
  return urls;
}

bool try_urls(const DatasetSpec& spec, const FetchOptions& options, Candidate& out, std::vector<std::string>& problems, const LogFn& log) {
  for (const auto& base : download_urls(spec, options)) {
    try {
      if (spec.format != Format::CifarBinary) {
        std::vector<StagedFile> files;
        for (const auto& f : spec.files) {
          const std::string url = base + f.name + ".gz";
          if (log) log(spec.name + ": downloading " + url);
          Bytes bytes = gunzip(download(url), url);
          const std::string actual = sha256_hex(bytes);
          if (actual != f.sha256) throw Error(url + ": SHA-256 mismatch of the decompressed file (got " + actual.substr(0, 16) + "...)");
          files.push_back({f.name, std::move(bytes)});
        }
        out.files = std::move(files);
        out.verification = "SHA-256 of decompressed files matches the official table";
        out.source = "url " + base;
        return true;
      }
      if (log) log(spec.name + ": downloading " + base);
      Bytes archive = download(base);
      const std::string md5 = md5_hex(archive);
      if (md5 != spec.archive_md5) throw Error(base + ": MD5 mismatch (got " + md5 + ", expected " + spec.archive_md5 + ")");
      if (cifar_from_official_tar(spec, gunzip(archive, base), base, out, problems)) {
        out.source = "url " + base;
        return true;
      }
    } catch (const Error& e) {
      problems.push_back(e.what());
    }
  }
  return false;
}

fs::path metadata_path(const fs::path& data_dir, const std::string& name) { return data_dir / name / "metadata.json"; }

json read_metadata(const fs::path& data_dir, const std::string& name) {
  const fs::path p = metadata_path(data_dir, name);
  if (!fs::is_regular_file(p)) throw Error("dataset '" + name + "' is not in " + data_dir.string() + " (run: evoopt data fetch " + name + ")");
  return read_json_file(p);
}

// The data dir's copy, when it is complete and --force was not given.
std::optional<FetchResult> complete_copy(const DatasetSpec& spec, const FetchOptions& options, const LogFn& log) {
  const fs::path final_dir = options.data_dir / spec.name;
  if (options.force || !fs::is_regular_file(metadata_path(options.data_dir, spec.name))) return std::nullopt;
  json meta = read_metadata(options.data_dir, spec.name);
  bool complete = true;
  for (const auto& [file, info] : meta.at("files").items())
    complete = complete && fs::is_regular_file(final_dir / file) && fs::file_size(final_dir / file) == info.at("bytes").get<std::uint64_t>();
  if (complete)
    return FetchResult{spec.name, "data dir " + final_dir.string(), meta.at("label").get<std::string>(), meta.at("train_count").get<std::int64_t>(),
                       meta.at("test_count").get<std::int64_t>()};
  if (log) log(spec.name + ": data dir copy is incomplete; fetching again");
  return std::nullopt;
}

// The first usable source, in order: the mirrors (and their known subdirectories), the
// system directories, the official URLs; throws naming every problem when none is usable.
Candidate find_source(const DatasetSpec& spec, const FetchOptions& options, const LogFn& log) {
  Candidate cand;
  std::vector<std::string> problems;
  bool found = false;
  auto try_dir = [&](const fs::path& dir, const std::string& kind) {
    if (found || !fs::is_directory(dir)) return;
    const bool ok = spec.format == Format::CifarBinary ? try_cifar_dir(spec, dir, cand, problems, log) : try_idx_dir(spec, dir, cand, problems);
    if (ok) {
      found = true;
      cand.source = kind + " " + fs::absolute(dir).lexically_normal().string();
    }
  };
  for (const auto& mirror : options.mirrors) {
    if (!fs::is_directory(mirror)) {
      problems.push_back("mirror " + mirror.string() + " is not a directory");
      continue;
    }
    try_dir(mirror, "mirror");
    for (const auto& sub : spec.mirror_subdirs) try_dir(mirror / sub, "mirror");
  }
  if (options.use_system_dirs)
    for (const auto& dir : options.system_dirs_override.empty() ? std::vector<fs::path>(spec.system_dirs.begin(), spec.system_dirs.end())
                                                                : options.system_dirs_override)
      try_dir(dir, "system");
  if (!found && options.allow_download) found = try_urls(spec, options, cand, problems, log);
  if (!found) {
    std::string msg = spec.name + ": no usable source";
    for (const auto& p : problems) msg += "; " + p;
    if (problems.empty()) msg += " (no mirror, system or downloadable copy found; pass --mirror DIR or set EVOOPT_DATA_MIRROR)";
    if (!spec.debian_package.empty()) msg += "; on Debian: apt-get install " + spec.debian_package;
    throw Error(msg);
  }
  if (cand.label.empty()) cand.label = spec.name;
  return cand;
}

// The training and test counts of what will be stored, parsed to reject malformed content.
std::pair<std::int64_t, std::int64_t> parsed_counts(const DatasetSpec& spec, const Candidate& cand) {
  if (spec.format == Format::Idx) return idx_counts(spec, cand.files);
  if (spec.format == Format::Text) return text_counts(cand.files.at(0).bytes.size(), spec.name);
  const auto train = static_cast<std::int64_t>(cand.files[0].bytes.size() / kCifarRecordBytes);
  const auto test = static_cast<std::int64_t>(cand.files[1].bytes.size() / kCifarRecordBytes);
  parse_cifar_records(cand.files[0].bytes, cand.source + " train", 10);
  parse_cifar_records(cand.files[1].bytes, cand.source + " test", 10);
  return {train, test};
}

// The files and metadata.json written to a staging directory, then swapped into place, so
// the data dir holds the old copy or the new one, never a part.
void store_copy(const DatasetSpec& spec, const FetchOptions& options, const Candidate& cand, std::int64_t train, std::int64_t test) {
  const fs::path final_dir = options.data_dir / spec.name;
  fs::create_directories(options.data_dir);
  const fs::path staging = options.data_dir / (".staging-" + spec.name + "-" + std::to_string(::getpid()));
  fs::remove_all(staging);
  try {
    json meta;
    meta["format"] = "evoopt.dataset";
    meta["version"] = 1;
    meta["dataset"] = spec.name;
    meta["display"] = spec.display;
    meta["label"] = cand.label;
    meta["lossy"] = cand.lossy;
    meta["source"] = cand.source;
    meta["verification"] = cand.verification;
    meta["classes"] = spec.classes;
    meta["train_count"] = train;
    meta["test_count"] = test;
    for (const auto& f : cand.files) {
      write_file_atomic(staging / f.name, f.bytes.data(), f.bytes.size());
      meta["files"][f.name] = {{"sha256", sha256_hex(f.bytes)}, {"bytes", f.bytes.size()}};
    }
    write_file_atomic(staging / "metadata.json", meta.dump(2) + "\n");
    fs::remove_all(final_dir);
    fs::rename(staging, final_dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    throw;
  }
}

}  // namespace

FetchResult fetch_dataset(const std::string& name, const FetchOptions& options, const LogFn& log) {
  const DatasetSpec& spec = dataset_spec(name);
  if (auto copy = complete_copy(spec, options, log)) return *copy;
  const Candidate cand = find_source(spec, options, log);
  const auto [train, test] = parsed_counts(spec, cand);
  store_copy(spec, options, cand, train, test);
  return {spec.name, cand.source, cand.label, train, test};
}

namespace {
// The bytes of the dataset file `file` in `dir`, read once and checked against `want` (its
// SHA-256 recorded when it was fetched) and the official table; throws naming the file
// when it is missing or either differs. Every load checks every byte it parses: the
// SHA-256 of CIFAR-10's 184 MB takes 0.17 s on the project's machine (OpenSSL, ~1.1 GB/s)
// of the 1.8 s that `evoopt data verify cifar10` takes to read and parse it; a size + mtime
// stamp would pass a changed byte whose mtime was put back.
Bytes read_verified(const DatasetSpec& spec, const fs::path& dir, const std::string& file, const std::string& want) {
  const fs::path p = dir / file;
  if (!fs::is_regular_file(p)) throw Error(p.string() + ": missing (run: evoopt data fetch " + spec.name + " --force)");
  Bytes bytes = read_binary_file(p);
  const std::string actual = sha256_hex(bytes);
  if (actual != want)
    throw Error(p.string() + ": SHA-256 mismatch: the file changed since it was fetched (run: evoopt data fetch " + spec.name + " --force)");
  for (const auto& f : spec.files)
    if (f.name == file && !f.sha256.empty() && f.sha256 != actual) throw Error(p.string() + ": SHA-256 differs from the official table");
  return bytes;
}

// Loads a dataset's stored files, every one that its metadata lists checked (read_verified)
// on the very bytes that are parsed. Sets the digest: a hash of the files' recorded SHA-256s.
DatasetPair load_from_dir(const DatasetSpec& spec, const fs::path& dir, const json& meta) {
  const fs::path meta_path = dir / "metadata.json";
  std::map<std::string, std::string> want;
  std::string all;
  try {
    for (const auto& [file, info] : meta.at("files").items()) {
      want[file] = info.at("sha256").get<std::string>();
      all += file + ":" + want[file] + ";";
    }
  } catch (const json::exception& e) {
    throw Error(meta_path.string() + ": malformed metadata (" + e.what() + ")");
  }
  std::set<std::string> read;
  auto bytes_of = [&](const std::string& file) {
    const auto it = want.find(file);
    if (it == want.end()) throw Error(meta_path.string() + ": lists no file " + file + " (run: evoopt data fetch " + spec.name + " --force)");
    read.insert(file);
    return read_verified(spec, dir, file, it->second);
  };
  DatasetPair pair;
  pair.name = spec.name;
  pair.classes = spec.classes;
  if (spec.format == Format::Idx) {
    for (int part = 0; part < 2; ++part) {
      const std::string& images = spec.files[static_cast<std::size_t>(2 * part)].name;
      const std::string& labels = spec.files[static_cast<std::size_t>(2 * part + 1)].name;
      Dataset ds;
      ds.images = parse_idx_images(bytes_of(images), (dir / images).string());
      ds.labels = parse_idx_labels(bytes_of(labels), (dir / labels).string());
      if (ds.images.size(0) != ds.labels.size(0))
        throw Error((dir / images).string() + ": " + std::to_string(ds.images.size(0)) + " images but " + labels + " has " +
                    std::to_string(ds.labels.size(0)) + " labels");
      (part == 0 ? pair.train : pair.test) = std::move(ds);
    }
  } else if (spec.format == Format::Text) {
    Bytes text = bytes_of(spec.files[0].name);
    const auto [train, test] = text_counts(text.size(), spec.name);
    auto bytes = torch::from_blob(text.data(), {static_cast<std::int64_t>(text.size())}, torch::kUInt8);
    pair.train.tokens = bytes.narrow(0, 0, train).clone();
    pair.test.tokens = bytes.narrow(0, train, test).clone();
  } else {
    pair.train = parse_cifar_records(bytes_of("train.bin"), (dir / "train.bin").string());
    pair.test = parse_cifar_records(bytes_of("test.bin"), (dir / "test.bin").string());
  }
  for (const auto& [file, sha] : want)  // listed but not parsed: checked all the same
    if (!read.count(file)) read_verified(spec, dir, file, sha);
  pair.digest = sha256_hex(all.data(), all.size());
  return pair;
}
}  // namespace

VerifyResult verify_dataset(const std::string& name, const fs::path& data_dir) {
  const DatasetSpec& spec = dataset_spec(name);
  VerifyResult r;
  r.dataset = spec.name;
  json meta;
  try {
    meta = read_metadata(data_dir, spec.name);
    r.source = meta.at("source").get<std::string>();
    r.label = meta.at("label").get<std::string>();
    DatasetPair pair = load_from_dir(spec, data_dir / spec.name, meta);
    r.train_count = pair.train.size();
    r.test_count = pair.test.size();
    r.ok = true;
    r.status = "ok";
  } catch (const Error& e) {
    r.status = e.what();
  } catch (const json::exception& e) {
    r.status = metadata_path(data_dir, spec.name).string() + ": malformed metadata (" + e.what() + ")";
  }
  return r;
}

DatasetPair load_dataset(const std::string& name, const fs::path& data_dir) {
  const DatasetSpec& spec = dataset_spec(name);
  json meta = read_metadata(data_dir, spec.name);
  DatasetPair pair = load_from_dir(spec, data_dir / spec.name, meta);
  pair.label = meta.value("label", spec.name);
  pair.lossy = meta.value("lossy", false);
  return pair;
}

}  // namespace evoopt::data
