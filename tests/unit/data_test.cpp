// Dataset readers, sources, splits and bad-input handling (issue 2).
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/data/checksum.hpp"
#include "evoopt/data/cifar.hpp"
#include "evoopt/data/idx.hpp"
#include "evoopt/data/image_folder.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/data/split.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace evoopt;
using namespace evoopt::data;
using evoopt::test::TempDir;

namespace {

void write_bytes(const fs::path& p, const Bytes& b) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// The one-line error fetch_dataset throws; a test failure (and "") when it does not throw.
std::string fetch_error(const std::string& name, const FetchOptions& opt) {
  try {
    fetch_dataset(name, opt);
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "fetching " << name << " gave no error";
  return "";
}

Bytes idx_images(std::uint32_t magic, std::uint32_t n, std::uint32_t rows, std::uint32_t cols, std::size_t pixels) {
  Bytes b;
  for (std::uint32_t v : {magic, n, rows, cols})
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
  for (std::size_t i = 0; i < pixels; ++i) b.push_back(static_cast<std::uint8_t>(i % 251));
  return b;
}

// A small image folder: `per_class` PNGs (lossless) of 4x4 RGB per class and split.
void make_image_folder(const fs::path& root, const std::vector<std::string>& classes, int per_class) {
  for (const char* split : {"train", "test"})
    for (std::size_t c = 0; c < classes.size(); ++c)
      for (int i = 0; i < per_class; ++i) {
        std::vector<std::uint8_t> px(4 * 4 * 3);
        for (std::size_t k = 0; k < px.size(); ++k) px[k] = static_cast<std::uint8_t>(c * 50 + i * 7 + k);
        const fs::path p = root / split / classes[c] / (std::to_string(i) + ".png");
        fs::create_directories(p.parent_path());
        ASSERT_NE(stbi_write_png(p.c_str(), 4, 4, 3, px.data(), 4 * 3), 0);
      }
}

ImageFolderOptions tiny_options() {
  ImageFolderOptions o;
  o.height = 4;
  o.width = 4;
  return o;
}

}  // namespace

TEST(Idx, MnistCountsAndTrainingLabelHistogram) {
  EVOOPT_REQUIRE_DATASET("mnist");
  const DatasetPair mnist = load_dataset("mnist", test::data_dir());
  EXPECT_EQ(mnist.train.size(), 60000);
  EXPECT_EQ(mnist.test.size(), 10000);
  EXPECT_EQ(mnist.train.images.sizes(), (std::vector<std::int64_t>{60000, 1, 28, 28}));
  const std::vector<std::int64_t> expected = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
  EXPECT_EQ(label_histogram(mnist.train, 10), expected);
}

TEST(Idx, ReadsRawAndGzipIdentically) {
  EVOOPT_REQUIRE_MIRROR();
  TempDir tmp;
  const fs::path gz = test::mirror_dir() / "mnist" / "t10k-labels-idx1-ubyte.gz";
  Bytes raw = read_file_maybe_gz(gz);
  write_bytes(tmp / "labels", raw);
  EXPECT_EQ(sha256_hex(raw), "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2");
  auto a = parse_idx_labels(read_file_maybe_gz(tmp / "labels"), "raw");
  auto b = parse_idx_labels(raw, "gz");
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(a.size(0), 10000);
  EXPECT_EQ(a[0].item<std::int64_t>(), 7);  // the first MNIST test digit is a 7
}

TEST(Idx, RejectsWrongMagicTruncationAndWrongDimensions) {
  auto message = [](const Bytes& b) {
    try {
      parse_idx_images(b, "images.idx");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(idx_images(0x00000801, 2, 3, 3, 18)).find("images.idx: wrong magic number 0x00000801"), std::string::npos);
  EXPECT_NE(message(idx_images(0x00000803, 2, 3, 3, 17)).find("images.idx: truncated"), std::string::npos);
  EXPECT_NE(message(idx_images(0x00000803, 2, 3, 3, 20)).find("trailing bytes"), std::string::npos);
  EXPECT_NE(message(idx_images(0x00000803, 0, 3, 3, 0)).find("wrong dimensions"), std::string::npos);
  EXPECT_NE(message(Bytes{0, 0, 8}).find("truncated"), std::string::npos);
  EXPECT_EQ(message(idx_images(0x00000803, 2, 3, 3, 18)), "no error");
  // Labels: out-of-range label and count mismatch between files.
  Bytes labels = {0, 0, 8, 1, 0, 0, 0, 2, 3, 12};
  EXPECT_THROW(parse_idx_labels(labels, "labels"), Error);
  TempDir tmp;
  write_bytes(tmp / "img", idx_images(0x00000803, 3, 2, 2, 12));
  write_bytes(tmp / "lab", Bytes{0, 0, 8, 1, 0, 0, 0, 2, 3, 4});
  EXPECT_THROW(read_idx_pair(tmp / "img", tmp / "lab"), Error);
}

TEST(Idx, TruncatedGzipIsReported) {
  EVOOPT_REQUIRE_MIRROR();
  TempDir tmp;
  const std::string gz = read_text_file(test::mirror_dir() / "mnist" / "t10k-labels-idx1-ubyte.gz");
  std::ofstream(tmp / "cut.gz", std::ios::binary) << gz.substr(0, gz.size() / 2);
  try {
    read_file_maybe_gz(tmp / "cut.gz");
    FAIL() << "no error for a truncated gzip file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.gz"), std::string::npos) << e.what();
  }
}

TEST(Cifar, OfficialSampleRecordsReadBackExactly) {
  EVOOPT_REQUIRE_MIRROR();
  const fs::path test_file = test::mirror_dir() / "cifar10" / "test_batch_first1000.bin.gz";
  const fs::path train_file = test::mirror_dir() / "cifar10" / "data_batch_1_first1000.bin.gz";
  EXPECT_EQ(sha256_hex(read_file_maybe_gz(test_file)), "8314c96d7cd65618193bab23acdd5d4c4af15bf6dd00a1781d55beedf3be1ef5");
  EXPECT_EQ(sha256_hex(read_file_maybe_gz(train_file)), "1c5f9ea0fc1111d586f29115efd3db25eecf7db27b29aaebbe84721446b052cc");
  Dataset test = read_cifar_files({test_file});
  Dataset train = read_cifar_files({train_file});
  ASSERT_EQ(test.size(), 1000);
  ASSERT_EQ(train.size(), 1000);
  const std::vector<std::int64_t> test_labels = {3, 8, 8, 0, 6, 6, 1, 6, 3, 1};
  const std::vector<std::int64_t> train_labels = {6, 9, 9, 4, 1, 1, 2, 7, 8, 3};
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(test.labels[i].item<std::int64_t>(), test_labels[static_cast<std::size_t>(i)]);
    EXPECT_EQ(train.labels[i].item<std::int64_t>(), train_labels[static_cast<std::size_t>(i)]);
  }
  const std::vector<int> red = {59, 43, 50, 68, 98};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(train.images[0][0][0][i].item<int>(), red[static_cast<std::size_t>(i)]);
  // Round trip through the writer gives back the official bytes.
  EXPECT_EQ(sha256_hex(to_cifar_records(test)), "8314c96d7cd65618193bab23acdd5d4c4af15bf6dd00a1781d55beedf3be1ef5");
  // Any whole number of records: a 2-record slice parses; a ragged one does not.
  Bytes all = read_file_maybe_gz(test_file);
  Bytes two(all.begin(), all.begin() + 2 * 3073);
  EXPECT_EQ(parse_cifar_records(two, "two").size(), 2);
  Bytes ragged(all.begin(), all.begin() + 3073 + 100);
  EXPECT_THROW(parse_cifar_records(ragged, "ragged"), Error);
  Bytes bad_label = two;
  bad_label[0] = 10;
  EXPECT_THROW(parse_cifar_records(bad_label, "bad"), Error);
}

TEST(ImageFolder, ImportsGeneratedFolderWithSortedClasses) {
  TempDir tmp;
  make_image_folder(tmp.path(), {"zebra", "apple", "mango"}, 3);
  ImageFolderResult r = import_image_folder(tmp.path(), tiny_options());
  EXPECT_EQ(r.classes, (std::vector<std::string>{"apple", "mango", "zebra"}));
  ASSERT_EQ(r.train.size(), 9);
  ASSERT_EQ(r.test.size(), 9);
  // apple (index 0) was written as class 1 in make_image_folder's loop: pixel k of image 0 = 1*50 + k.
  EXPECT_EQ(r.train.labels[0].item<std::int64_t>(), 0);
  // Planar CHW: red plane first; interleaved pixel 0 is (50, 51, 52).
  EXPECT_EQ(r.train.images[0][0][0][0].item<int>(), 50);
  EXPECT_EQ(r.train.images[0][1][0][0].item<int>(), 51);
  EXPECT_EQ(r.train.images[0][2][0][0].item<int>(), 52);
  EXPECT_EQ(r.train.images[0][0][0][1].item<int>(), 53);
  EXPECT_EQ(label_histogram(r.train, 3), (std::vector<std::int64_t>{3, 3, 3}));
  // An explicit class list overrides the sorted order.
  ImageFolderOptions opt = tiny_options();
  opt.classes = {"zebra", "apple", "mango"};
  ImageFolderResult r2 = import_image_folder(tmp.path(), opt);
  EXPECT_EQ(r2.train.labels[0].item<std::int64_t>(), 0);
  EXPECT_EQ(r2.train.images[0][0][0][0].item<int>(), 0);  // zebra = class 0 in the writer
  // The same tree as a tar archive gives identical data.
  ASSERT_EQ(std::system(("tar -C " + tmp.path().string() + " -cf " + (tmp / "f.tar").string() + " train test").c_str()), 0);
  const std::string tar = read_text_file(tmp / "f.tar");
  ImageFolderResult r3 = import_image_folder_tar(Bytes(tar.begin(), tar.end()), "f.tar", tiny_options());
  EXPECT_TRUE(torch::equal(r.train.images, r3.train.images));
  EXPECT_TRUE(torch::equal(r.test.labels, r3.test.labels));
}

TEST(ImageFolder, RejectsEmptyMalformedAndMissizedFolders) {
  TempDir tmp;
  auto message = [](const fs::path& root, ImageFolderOptions opt) {
    try {
      import_image_folder(root, opt);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  fs::create_directories(tmp / "empty/train/a");
  fs::create_directories(tmp / "empty/test/a");
  EXPECT_NE(message(tmp / "empty", tiny_options()).find("no images under train"), std::string::npos);
  EXPECT_NE(message(tmp / "nothere", tiny_options()).find("not found"), std::string::npos);
  make_image_folder(tmp / "bad", {"a", "b"}, 1);
  std::ofstream(tmp / "bad/train/a/broken.jpg") << "this is not a jpeg";
  const std::string m = message(tmp / "bad", tiny_options());
  EXPECT_NE(m.find("train/a/broken.jpg: cannot decode image"), std::string::npos) << m;
  make_image_folder(tmp / "size", {"a"}, 1);
  ImageFolderOptions big = tiny_options();
  big.width = 8;
  EXPECT_NE(message(tmp / "size", big).find("image is 4x4, expected 8x4"), std::string::npos);
  make_image_folder(tmp / "cls", {"a", "b"}, 1);
  ImageFolderOptions only_a = tiny_options();
  only_a.classes = {"a"};
  EXPECT_NE(message(tmp / "cls", only_a).find("is not one of the 1 classes"), std::string::npos);
}

TEST(Sources, FetchFromMirrorVerifiesAndRecordsProvenance) {
  EVOOPT_REQUIRE_MIRROR();
  TempDir tmp;
  FetchOptions opt;
  opt.data_dir = tmp / "data";
  opt.mirrors = {test::mirror_dir()};
  opt.allow_download = false;
  FetchResult r = fetch_dataset("mnist", opt);
  EXPECT_EQ(r.train_count, 60000);
  EXPECT_EQ(r.test_count, 10000);
  EXPECT_NE(r.source.find("mirror"), std::string::npos);
  const auto meta = nlohmann::json::parse(read_text_file(tmp / "data/mnist/metadata.json"));
  EXPECT_EQ(meta["label"], "mnist");
  EXPECT_EQ(meta["lossy"], false);
  EXPECT_EQ(meta["files"]["train-labels-idx1-ubyte"]["sha256"], "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5");
  // Second fetch resolves from the data dir without touching the mirror.
  FetchOptions again = opt;
  again.mirrors.clear();
  EXPECT_NE(fetch_dataset("mnist", again).source.find("data dir"), std::string::npos);
  EXPECT_TRUE(verify_dataset("mnist", opt.data_dir).ok);
  // No staging leftovers.
  for (const auto& e : fs::directory_iterator(opt.data_dir)) EXPECT_EQ(e.path().filename().string().rfind(".staging", 0), std::string::npos);
}

// The download path (libcurl) without internet: a --url base with file:// serves the
// official .gz files; they are decompressed and verified like any other source.
TEST(Sources, DownloadsFromAUrlBaseAndVerifiesEveryFile) {
  EVOOPT_REQUIRE_MIRROR();
  TempDir tmp;
  fs::create_directories(tmp / "srv");
  for (const auto& e : fs::directory_iterator(test::mirror_dir() / "mnist"))
    if (e.path().extension() == ".gz") fs::copy_file(e.path(), tmp / "srv" / e.path().filename());
  FetchOptions opt;
  opt.data_dir = tmp / "data";
  opt.use_system_dirs = false;
  opt.official_urls = false;
  opt.url_bases = {"file://" + (tmp / "srv").string()};  // no trailing slash: one is added
  std::vector<std::string> log;
  FetchResult r = fetch_dataset("mnist", opt, [&log](const std::string& m) { log.push_back(m); });
  EXPECT_EQ(r.train_count, 60000);
  EXPECT_EQ(r.test_count, 10000);
  EXPECT_EQ(r.source, "url file://" + (tmp / "srv").string() + "/");
  ASSERT_EQ(log.size(), 4u);
  EXPECT_NE(log[0].find("downloading file://"), std::string::npos) << log[0];
  EXPECT_TRUE(verify_dataset("mnist", opt.data_dir).ok);
  const auto meta = nlohmann::json::parse(read_text_file(tmp / "data/mnist/metadata.json"));
  EXPECT_EQ(meta["files"]["train-labels-idx1-ubyte"]["sha256"], "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5");

  // A served file whose content is wrong: SHA-256 mismatch named, nothing written.
  fs::create_directories(tmp / "bad");
  for (const auto& e : fs::directory_iterator(tmp / "srv")) fs::copy_file(e.path(), tmp / "bad" / e.path().filename());
  Bytes labels = read_file_maybe_gz(tmp / "srv/t10k-labels-idx1-ubyte.gz");
  labels[500] ^= 1;
  fs::remove(tmp / "bad/t10k-labels-idx1-ubyte.gz");
  write_bytes(tmp / "bad/t10k-labels-idx1-ubyte", labels);
  ASSERT_EQ(std::system(("gzip -n " + (tmp / "bad/t10k-labels-idx1-ubyte").string()).c_str()), 0);
  FetchOptions bad = opt;
  bad.data_dir = tmp / "data2";
  bad.url_bases = {"file://" + (tmp / "bad").string() + "/"};
  const std::string corrupt = fetch_error("mnist", bad);
  EXPECT_NE(corrupt.find("t10k-labels-idx1-ubyte.gz: SHA-256 mismatch of the decompressed file"), std::string::npos) << corrupt;
  EXPECT_FALSE(fs::exists(tmp / "data2/mnist"));
  // A missing file on the server, and a CIFAR tarball that is not the official one.
  bad.url_bases = {"file://" + (tmp / "nowhere").string() + "/"};
  const std::string missing = fetch_error("mnist", bad);
  EXPECT_NE(missing.find("download failed"), std::string::npos) << missing;
  write_bytes(tmp / "srv/cifar-10-binary.tar.gz", Bytes(100, 7));
  const std::string wrong = fetch_error("cifar10", opt);
  EXPECT_NE(wrong.find("srv/cifar-10-binary.tar.gz: MD5 mismatch"), std::string::npos) << wrong;
  EXPECT_FALSE(fs::exists(tmp / "data/cifar10"));
  // The CLI flag, and its contradiction with --offline.
  auto cli =
      test::run_cli("data fetch mnist --data-dir " + (tmp / "data3").string() + " --url file://" + (tmp / "srv").string(), "EVOOPT_DATA_MIRROR=");
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_NE(cli.out.find("from url file://"), std::string::npos) << cli.out;
  auto off = test::run_cli("data fetch mnist --offline --url file:///x --data-dir " + (tmp / "data4").string());
  EXPECT_NE(off.exit_code, 0);
  EXPECT_NE(off.err.find("--url and --offline contradict"), std::string::npos) << off.err;
}

TEST(Sources, FashionMnistComesFromTheSystemPackageDir) {
  if (!fs::is_directory("/usr/share/datasets/fashion-mnist")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  TempDir tmp;
  FetchOptions opt;
  opt.data_dir = tmp / "data";
  opt.allow_download = false;
  FetchResult r = fetch_dataset("fashion_mnist", opt);
  EXPECT_EQ(r.source, "system /usr/share/datasets/fashion-mnist");
  EXPECT_EQ(r.train_count, 60000);
}

TEST(Sources, ChecksumMismatchAndMissingFilesLeaveNothingBehind) {
  EVOOPT_REQUIRE_MIRROR();
  TempDir tmp;
  // A mirror whose train labels are one byte off.
  fs::create_directories(tmp / "mirror/mnist");
  for (const char* f : {"train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(test::mirror_dir() / "mnist" / f, tmp / "mirror" / "mnist" / f);
  Bytes labels = read_file_maybe_gz(test::mirror_dir() / "mnist/train-labels-idx1-ubyte.gz");
  labels[100] ^= 1;
  write_bytes(tmp / "mirror/mnist/train-labels-idx1-ubyte", labels);
  FetchOptions opt;
  opt.data_dir = tmp / "data";
  opt.mirrors = {tmp / "mirror"};
  opt.allow_download = false;
  opt.use_system_dirs = false;
  const std::string m = fetch_error("mnist", opt);
  EXPECT_NE(m.find("train-labels-idx1-ubyte: SHA-256 mismatch"), std::string::npos) << m;
  EXPECT_FALSE(fs::exists(tmp / "data/mnist"));
  // The CLI: one line on stderr, non-zero exit, nothing written.
  auto r = test::run_cli("data fetch mnist --offline --data-dir " + (tmp / "data").string() + " --mirror " + (tmp / "mirror").string(),
                         "EVOOPT_DATA_MIRROR=");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(test::count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("SHA-256 mismatch"), std::string::npos) << r.err;
  EXPECT_TRUE(!fs::exists(tmp / "data") || fs::is_empty(tmp / "data"));
  // Missing files: an empty mirror, offline.
  fs::create_directories(tmp / "empty");
  auto r2 = test::run_cli("data fetch mnist --offline --data-dir " + (tmp / "data").string() + " --mirror " + (tmp / "empty").string(),
                          "EVOOPT_DATA_MIRROR=");
  EXPECT_NE(r2.exit_code, 0);
  EXPECT_EQ(test::count_lines(r2.err), 1) << r2.err;
  EXPECT_NE(r2.err.find("mnist: no usable source"), std::string::npos) << r2.err;
  // Unknown dataset name.
  auto r3 = test::run_cli("data fetch imagenet --offline --data-dir " + (tmp / "data").string());
  EXPECT_NE(r3.exit_code, 0);
  EXPECT_NE(r3.err.find("unknown dataset 'imagenet'"), std::string::npos) << r3.err;
}

TEST(Sources, VerifyReportsTamperedFiles) {
  EVOOPT_REQUIRE_DATASET("mnist");
  TempDir tmp;
  fs::create_directories(tmp / "data");
  fs::copy(test::data_dir() / "mnist", tmp / "data/mnist", fs::copy_options::recursive);
  auto ok = test::run_cli("data verify mnist --data-dir " + (tmp / "data").string());
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("mnist"), std::string::npos);
  EXPECT_NE(ok.out.find("60000"), std::string::npos);
  Bytes labels = read_file_maybe_gz(tmp / "data/mnist/t10k-labels-idx1-ubyte");
  labels[50] ^= 1;
  write_bytes(tmp / "data/mnist/t10k-labels-idx1-ubyte", labels);
  auto bad = test::run_cli("data verify mnist --data-dir " + (tmp / "data").string());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.out.find("SHA-256 mismatch"), std::string::npos) << bad.out;
  auto missing = test::run_cli("data verify cifar10 --data-dir " + (tmp / "data").string());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.out.find("evoopt data fetch cifar10"), std::string::npos) << missing.out;
}

TEST(Sources, Cifar10FromJpegMirrorIsLabelledLossy) {
  EVOOPT_REQUIRE_DATASET("cifar10");
  const auto meta = nlohmann::json::parse(read_text_file(test::data_dir() / "cifar10/metadata.json"));
  if (meta["source"].get<std::string>().find("url") != std::string::npos) GTEST_SKIP() << "official CIFAR-10 in use";
  EXPECT_EQ(meta["label"], "cifar10 (JPEG mirror, lossy)");
  EXPECT_EQ(meta["lossy"], true);
  const DatasetPair c = load_dataset("cifar10", test::data_dir());
  EXPECT_EQ(c.label, "cifar10 (JPEG mirror, lossy)");
  EXPECT_EQ(c.train.size(), 50000);
  EXPECT_EQ(c.test.size(), 10000);
  EXPECT_EQ(label_histogram(c.train, 10), std::vector<std::int64_t>(10, 5000));
  EXPECT_EQ(label_histogram(c.test, 10), std::vector<std::int64_t>(10, 1000));
  // Close to the official pixels (JPEG error ~6/255): first official training image.
  EVOOPT_REQUIRE_MIRROR();
  Dataset official = read_cifar_files({test::mirror_dir() / "cifar10/data_batch_1_first1000.bin.gz"});
  // Official record 0 is a frog (label 6); in the mirror it is frog/0000.jpg, the first frog of the train split.
  const auto frog0 = (c.train.labels == 6).nonzero()[0][0].item<std::int64_t>();
  const double mae = (c.train.images[frog0].to(torch::kFloat) - official.images[0].to(torch::kFloat)).abs().mean().item<double>();
  EXPECT_LT(mae, 15.0);
}

TEST(Split, DeterministicDisjointAndNormalisedOnTrain) {
  DatasetPair pair;
  pair.name = "synthetic";
  pair.train.images = torch::randint(0, 256, {1000, 3, 4, 4}, torch::TensorOptions().dtype(torch::kUInt8));
  pair.train.labels = torch::arange(1000, torch::kInt64);  // label = original index, to track membership
  pair.test = pair.train;
  SplitOptions opt;
  opt.val_size = 100;
  opt.split_seed = 7;
  Splits a = make_splits(pair, opt), b = make_splits(pair, opt);
  EXPECT_TRUE(torch::equal(a.val.labels, b.val.labels));
  EXPECT_EQ(a.val.size(), 100);
  EXPECT_EQ(a.train.size(), 900);
  auto all = std::get<0>(torch::cat({a.train.labels, a.val.labels}).sort());
  EXPECT_TRUE(torch::equal(all, torch::arange(1000, torch::kInt64)));  // disjoint and complete
  opt.split_seed = 8;
  EXPECT_FALSE(torch::equal(make_splits(pair, opt).val.labels, a.val.labels));
  opt.train_subset = 50;
  EXPECT_EQ(make_splits(pair, opt).train.size(), 50);
  // Normalised training data has per-channel mean 0 and std 1.
  auto x = a.normalise(a.train.images).transpose(0, 1).reshape({3, -1});
  for (int ch = 0; ch < 3; ++ch) {
    EXPECT_NEAR(x[ch].mean().item<double>(), 0.0, 1e-4);
    EXPECT_NEAR(x[ch].std(false).item<double>(), 1.0, 1e-3);
  }
  opt.val_size = 1000;
  EXPECT_THROW(make_splits(pair, opt), Error);
}

TEST(Split, BatchSamplerCoversEpochAndAugmentationKeepsShape) {
  BatchSampler s(10, 5, 42);
  auto a = s.next(), b = s.next();
  auto epoch = std::get<0>(torch::cat({a, b}).sort());
  EXPECT_TRUE(torch::equal(epoch, torch::arange(10, torch::kInt64)));
  BatchSampler s2(10, 5, 42);
  EXPECT_TRUE(torch::equal(s2.next(), a));
  Rng rng(1);
  auto imgs = torch::randint(0, 256, {8, 3, 32, 32}, torch::TensorOptions().dtype(torch::kUInt8));
  auto out = augment_crop_flip(imgs, 4, rng);
  EXPECT_EQ(out.sizes(), imgs.sizes());
  Rng rng0(1);
  EXPECT_TRUE(torch::equal(out, augment_crop_flip(imgs, 4, rng0)));                                             // deterministic in the RNG
  EXPECT_TRUE(torch::equal(std::get<0>(augment_crop_flip(imgs, 0, rng0).sort(3)), std::get<0>(imgs.sort(3))));  // pad 0: only flips
}

// The batched augmentation (two gathers) gives the bytes of the straightforward version:
// per image, crop the padded image at the drawn offsets and flip it when drawn so.
TEST(Split, BatchedAugmentationEqualsThePerImageLoop) {
  auto reference = [](const torch::Tensor& images, int pad, Rng& rng) {
    const auto b = images.size(0), h = images.size(2), w = images.size(3);
    auto padded = torch::constant_pad_nd(images, {pad, pad, pad, pad}, 0);
    auto out = torch::empty_like(images);
    for (std::int64_t i = 0; i < b; ++i) {
      const auto dy = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(2 * pad + 1)));
      const auto dx = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(2 * pad + 1)));
      auto crop = padded[i].narrow(1, dy, h).narrow(2, dx, w);
      if (rng.bernoulli(0.5)) crop = crop.flip({2});
      out[i].copy_(crop);
    }
    return out;
  };
  for (const auto& shape : std::vector<std::vector<std::int64_t>>{{64, 3, 32, 32}, {5, 1, 28, 28}, {1, 3, 7, 9}})
    for (int pad : {0, 1, 4}) {
      auto imgs = torch::randint(0, 256, shape, torch::TensorOptions().dtype(torch::kUInt8));
      Rng a(17), b(17);
      const auto fast = augment_crop_flip(imgs, pad, a);
      EXPECT_TRUE(torch::equal(fast, reference(imgs, pad, b))) << "pad " << pad << ", batch " << shape[0];
      EXPECT_EQ(a.below(1000000), b.below(1000000));  // the same draws, in the same order
    }
}

namespace {
long resident_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}
}  // namespace

TEST(Memory, AllThreeDatasetsWithSplitsStayUnder2GiB) {
  for (const char* n : {"mnist", "fashion_mnist", "cifar10"}) EVOOPT_REQUIRE_DATASET(n);
  std::vector<Splits> all;
  for (const char* n : {"mnist", "fashion_mnist", "cifar10"}) all.push_back(make_splits(load_dataset(n, test::data_dir()), {}));
  const long kib = resident_kib();
  ASSERT_GT(kib, 0);
  EXPECT_LT(kib, 2L * 1024 * 1024) << "resident " << kib << " KiB";
  EXPECT_EQ(all[2].val.size(), 5000);
  EXPECT_EQ(all[2].train.size(), 45000);
}
