// Dataset readers on the prepared datasets and the offline mirror, the sources that fetch
// and verify them (mirror, URL, system package, `evoopt data`), and the memory the three
// datasets take (issue 2).
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/data/checksum.hpp"
#include "evoopt/data/cifar.hpp"
#include "evoopt/data/idx.hpp"
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
