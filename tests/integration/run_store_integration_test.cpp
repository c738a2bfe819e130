// Dataset verification on load (a flipped bit in the prepared MNIST), and `evoopt resume`
// refusing a run directory whose config or checkpoint no longer fits while using the data
// dir it recorded (issue 9).
#include <atomic>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/task/task.hpp"
#include "test_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;

TEST(RunStore, DatasetsAreVerifiedAgainstTheirChecksumsWhenLoaded) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  fs::copy(test::data_dir() / "mnist", tmp / "mnist", fs::copy_options::recursive);
  const auto first = data::load_dataset("mnist", tmp.path());
  EXPECT_FALSE(first.digest.empty());
  EXPECT_EQ(data::load_dataset("mnist", tmp.path()).digest, first.digest);
  // One flipped bit, same size: the load fails naming the file, never trains on it.
  const fs::path labels = tmp / "mnist" / "t10k-labels-idx1-ubyte";
  std::string bytes = read_text_file(labels);
  bytes[100] = static_cast<char>(bytes[100] ^ 1);
  std::ofstream(labels, std::ios::binary | std::ios::trunc) << bytes;
  try {
    data::load_dataset("mnist", tmp.path());
    FAIL() << "a corrupted dataset was loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t10k-labels-idx1-ubyte: SHA-256 mismatch"), std::string::npos) << e.what();
  }
}

namespace {
const std::string kSmallRun =
    " --tasks mnist --population 3 --generations 2 --steps 2 --train-subset 200 --val-size 100 --final-test-seeds 1 --no-compare "
    "--no-break-even --workers 1";
}

TEST(Resume, RefusesAChangedConfigABadCheckpointAndUsesTheRecordedDataDir) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  const fs::path dir = tmp / "run";
  auto r = test::run_cli("evolve --out " + dir.string() + kSmallRun + " --data-dir " + test::data_dir().string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string config_text = read_text_file(dir / "config.json");
  const auto cfg = nlohmann::json::parse(config_text);
  EXPECT_TRUE(fs::path(cfg["data"]["dir"].get<std::string>()).is_absolute());
  EXPECT_EQ(cfg["fingerprint"].get<std::string>().size(), 16u);
  EXPECT_TRUE(cfg["task_fingerprints"].contains("mnist"));

  // From another working directory, with EVOOPT_DATA_DIR pointing elsewhere: the recorded data is used.
  auto elsewhere = test::run_cli("resume " + dir.string(), "cd " + tmp.path().string() + " && EVOOPT_DATA_DIR=/nonexistent");
  EXPECT_EQ(elsewhere.exit_code, 0) << elsewhere.err;

  // config.json edited after the start: refused, naming the file.
  for (const auto& [field, value] : std::vector<std::pair<std::string, nlohmann::json>>{{"steps", 3}, {"tasks", {"mnist", "cifar10"}}}) {
    auto edited = cfg;
    edited[field] = value;
    write_file_atomic(dir / "config.json", edited.dump(2));
    auto refused = test::run_cli("resume " + dir.string());
    EXPECT_EQ(refused.exit_code, 1) << field;
    EXPECT_NE(refused.err.find("config.json: changed since the run started"), std::string::npos) << refused.err;
    EXPECT_EQ(test::count_lines(refused.err), 1) << refused.err;
  }
  auto edited = cfg;
  edited["ga"]["population"] = 4;
  write_file_atomic(dir / "config.json", edited.dump(2));
  EXPECT_NE(test::run_cli("resume " + dir.string()).err.find("changed since the run started"), std::string::npos);
  write_file_atomic(dir / "config.json", config_text);

  // A damaged checkpoint: refused, naming the file and why.
  const std::string ck_text = read_text_file(dir / "checkpoint.json");
  const auto ck = nlohmann::json::parse(ck_text);
  for (const auto& [field, value, why] : std::vector<std::tuple<std::string, nlohmann::json, std::string>>{
           {"rng", "not an rng state", "RNG state"}, {"generation", 7, "generation 7 is outside"}, {"version", 9, "checkpoint version 9"}}) {
    auto bad = ck;
    bad[field] = value;
    write_file_atomic(dir / "checkpoint.json", bad.dump());
    auto refused = test::run_cli("resume " + dir.string());
    EXPECT_EQ(refused.exit_code, 1) << field;
    EXPECT_NE(refused.err.find("checkpoint.json: /" + field + ": "), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find(why), std::string::npos) << refused.err;
  }
  write_file_atomic(dir / "checkpoint.json", ck_text);
  EXPECT_EQ(test::run_cli("resume " + dir.string()).exit_code, 0);
}
