#pragma once
// Shared helpers for the test suite: temporary directories and error messages for every test;
// paths to the prepared data dir and the offline mirror, MNIST options and running the real
// CLI only for integration and slow tests (EVOOPT_INTEGRATION_TESTS, tests/CMakeLists.txt).
// A unit test needs none of them: one that reaches for them does not compile.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "evoopt/common/error.hpp"
#include "evoopt/task/task.hpp"

namespace evoopt::test {

// The message of the evoopt::Error `f` throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline std::filesystem::path source_dir() { return EVOOPT_SOURCE_DIR; }

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("evoopt-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

 private:
  std::filesystem::path path_;
};

// history.csv without its last column (seconds, the only timing field).
inline std::string csv_without_last_column(const std::string& csv) {
  std::string out;
  std::size_t start = 0;
  while (start < csv.size()) {
    auto nl = csv.find('\n', start);
    if (nl == std::string::npos) nl = csv.size();
    const std::string line = csv.substr(start, nl - start);
    out += line.substr(0, line.rfind(',')) + "\n";
    start = nl + 1;
  }
  return out;
}

inline int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

#ifdef EVOOPT_INTEGRATION_TESTS

// The data dir prepared by scripts/setup.sh (or $EVOOPT_DATA_DIR).
inline std::filesystem::path data_dir() {
  if (const char* env = std::getenv("EVOOPT_DATA_DIR"); env != nullptr && *env) return env;
  return source_dir() / "data";
}

// The offline mirror (shared/datasets beside the checkout, or $EVOOPT_TEST_MIRROR).
inline std::filesystem::path mirror_dir() {
  if (const char* env = std::getenv("EVOOPT_TEST_MIRROR"); env != nullptr && *env) return env;
  return EVOOPT_SHARED_DATASETS;
}

// Skips (or, under CI, fails) when the offline mirror is absent.
#define EVOOPT_REQUIRE_MIRROR()                                                                               \
  do {                                                                                                        \
    if (!std::filesystem::is_directory(::evoopt::test::mirror_dir())) {                                       \
      if (std::getenv("CI") != nullptr) FAIL() << "offline mirror missing: " << ::evoopt::test::mirror_dir(); \
      GTEST_SKIP() << "offline mirror not present: " << ::evoopt::test::mirror_dir();                         \
    }                                                                                                         \
  } while (0)

#define EVOOPT_REQUIRE_DATASET(name)                                                                                                       \
  do {                                                                                                                                     \
    if (!std::filesystem::exists(::evoopt::test::data_dir() / name / "metadata.json"))                                                     \
      FAIL() << "dataset " << name << " not prepared in " << ::evoopt::test::data_dir() << " (run scripts/setup.sh or evoopt data fetch)"; \
  } while (0)

// MNIST from the prepared data dir with 500 training and 300 validation images: real data,
// runs of a fraction of a second.
inline task::TaskOptions small_mnist_options() {
  task::TaskOptions o;
  o.data_dir = data_dir();
  o.split.train_subset = 500;
  o.split.val_size = 300;
  return o;
}

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs the real evoopt binary with `args` (a shell-quoted string).
inline CliResult run_cli(const std::string& args, const std::string& env = "") {
  TempDir tmp;
  const std::string cmd = env + " " + std::string(EVOOPT_CLI) + " " + args + " >" + (tmp / "out").string() + " 2>" + (tmp / "err").string();
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  auto slurp = [](const std::filesystem::path& p) {
    std::string s;
    if (FILE* f = std::fopen(p.c_str(), "rb")) {
      std::array<char, 4096> buf;
      size_t n;
      while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) s.append(buf.data(), n);
      std::fclose(f);
    }
    return s;
  };
  r.out = slurp(tmp / "out");
  r.err = slurp(tmp / "err");
  return r;
}

#else

// Unit tests read no prepared dataset, no offline mirror and run no CLI: a test that needs
// them is an integration test (tests/integration/<stem>_integration_test.cpp).
std::filesystem::path data_dir() = delete;
std::filesystem::path mirror_dir() = delete;
task::TaskOptions small_mnist_options() = delete;
void run_cli(const std::string& args, const std::string& env = "") = delete;
#define EVOOPT_REQUIRE_MIRROR() static_assert(false, "a unit test uses no offline mirror: make it an integration test")
#define EVOOPT_REQUIRE_DATASET(name) static_assert(false, "a unit test uses no prepared dataset: make it an integration test")

#endif  // EVOOPT_INTEGRATION_TESTS

}  // namespace evoopt::test
