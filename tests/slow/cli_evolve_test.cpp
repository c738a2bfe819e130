// evoopt evolve / resume end to end through the real CLI: kill -9 and resume
// gives identical outputs, Ctrl-C checkpoints and says how to resume, and the
// quick preset produces every output file (issues 5 and 6). Label: slow.
#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/files.hpp"
#include "evoopt/eval/mpi.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace evoopt;

namespace {

const std::string kTiny =
    " --tasks mnist fashion_mnist --population 4 --generations 4 --steps 30 --train-subset 2000 --val-size 500"
    " --no-compare --no-break-even --final-test-seeds 2 --workers 2 --seed 11";

// Complete lines of a journal another process may be appending to (read-only:
// read_journal_lines would cut a line that is being written).
std::size_t journal_lines(const fs::path& p) {
  if (!fs::exists(p)) return 0;
  return static_cast<std::size_t>(test::count_lines(read_text_file(p)));
}

// Starts the CLI in the background; returns when `ready` holds, then sends `sig`.
// Returns the exit code.
int run_and_signal(const std::string& args, const std::function<bool()>& ready, int sig, std::string* out_text) {
  test::TempDir tmp;
  const std::string cmd = "(" + std::string(EVOOPT_CLI) + " " + args + " > " + (tmp / "out").string() + " 2>&1 & echo $! > " +
                          (tmp / "pid").string() + "; wait $!; echo $? > " + (tmp / "rc").string() + ") &";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  while (!fs::exists(tmp / "pid") || read_text_file(tmp / "pid").empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int pid = std::stoi(read_text_file(tmp / "pid"));
  bool signalled = false;
  while (!fs::exists(tmp / "rc") && std::chrono::steady_clock::now() < deadline) {
    if (!signalled && ready()) {
      ::kill(pid, sig);
      signalled = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(signalled) << "the run ended before it could be signalled";
  while (!fs::exists(tmp / "rc") || read_text_file(tmp / "rc").empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (out_text) *out_text = read_text_file(tmp / "out");
  return std::stoi(read_text_file(tmp / "rc"));
}

}  // namespace

TEST(CliEvolve, KillNineThenResumeGivesIdenticalOutputs) {
  EVOOPT_REQUIRE_DATASET("mnist");
  EVOOPT_REQUIRE_DATASET("fashion_mnist");
  test::TempDir tmp;
  const std::string data = " --data-dir " + test::data_dir().string();
  auto full = test::run_cli("evolve --out " + (tmp / "full").string() + kTiny + data);
  ASSERT_EQ(full.exit_code, 0) << full.out << full.err;
  const std::size_t total = journal_lines(tmp / "full/journal.jsonl");
  ASSERT_GT(total, 10u);
  // Kill at two different moments: early in the search, and later.
  for (std::size_t at : {std::size_t{3}, total - 2}) {
    const fs::path dir = tmp / ("killed" + std::to_string(at));
    const int rc = run_and_signal(
        "evolve --out " + dir.string() + kTiny + data, [&] { return journal_lines(dir / "journal.jsonl") >= at; }, SIGKILL, nullptr);
    EXPECT_EQ(rc, 128 + SIGKILL);
    const std::size_t before = journal_lines(dir / "journal.jsonl");
    auto resumed = test::run_cli("resume " + dir.string());
    ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
    // No completed run was repeated: the journal grew by exactly the missing runs.
    EXPECT_EQ(journal_lines(dir / "journal.jsonl"), total) << "killed after " << before << " runs";
    EXPECT_EQ(test::csv_without_last_column(read_text_file(dir / "history.csv")),
              test::csv_without_last_column(read_text_file(tmp / "full/history.csv")));
    for (const char* f : {"lineage.json", "best_genome.json", "final_test.json"})
      EXPECT_EQ(read_text_file(dir / f), read_text_file(tmp / "full" / f)) << f;
  }
}

TEST(CliEvolve, CtrlCWritesACheckpointAndSaysHowToResume) {
  EVOOPT_REQUIRE_DATASET("mnist");
  EVOOPT_REQUIRE_DATASET("fashion_mnist");
  test::TempDir tmp;
  const fs::path dir = tmp / "run";
  std::string out;
  const int rc = run_and_signal(
      "evolve --out " + dir.string() + kTiny + " --data-dir " + test::data_dir().string(), [&] { return journal_lines(dir / "journal.jsonl") >= 1; },
      SIGINT, &out);
  EXPECT_EQ(rc, 130) << out;
  EXPECT_NE(out.find("Resume with: evoopt resume " + dir.string()), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(dir / "checkpoint.json"));
  auto resumed = test::run_cli("resume " + dir.string());
  EXPECT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_TRUE(fs::exists(dir / "final_test.json"));
  // A second evolve into the same directory is refused with one line.
  auto again = test::run_cli("evolve --out " + dir.string() + kTiny);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already holds a run"), std::string::npos) << again.err;
}

TEST(CliEvolve, QuickPresetProducesEveryOutputFile) {
  for (const char* n : {"mnist", "fashion_mnist", "cifar10"}) EVOOPT_REQUIRE_DATASET(n);
  test::TempDir tmp;
  const fs::path dir = tmp / "quick";
  auto r = test::run_cli("evolve --preset quick --out " + dir.string() + " --data-dir " + test::data_dir().string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* f : {"config.json", "journal.jsonl", "checkpoint.json", "history.csv", "lineage.json", "best_genome.json", "final_test.json",
                        "summary.json", "comparison.json", "comparison.csv"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  EXPECT_NE(r.out.find("Generation 1/4"), std::string::npos);
  EXPECT_NE(r.out.find("Best fitness:"), std::string::npos);
  EXPECT_NE(r.out.find("Final test of the winner"), std::string::npos);
  EXPECT_NE(r.out.find("Break-even:"), std::string::npos);
  EXPECT_NE(r.out.find("adam (tuned)"), std::string::npos);
  EXPECT_NE(r.out.find("CIFAR-10 (JPEG mirror)"), std::string::npos);
  const auto cmp = nlohmann::json::parse(read_text_file(dir / "comparison.json"));
  EXPECT_EQ(cmp["labels"]["cifar10"], "CIFAR-10 (JPEG mirror)");
  EXPECT_EQ(cmp["horizons"].size(), 1u);  // quick skips the longer-horizon block (the default has it; see CliCompare)
  EXPECT_EQ(cmp["baselines"].size(), 5u);
  // The strong protocol and the gain attribution are the default.
  EXPECT_EQ(cmp["protocol"], "strong");
  EXPECT_EQ(cmp["baselines"][0]["sweep"].size(), 4u * 2 * 2);  // quick: 4 lr x 2 weight decay x 2 regimes
  EXPECT_EQ(cmp["attribution"]["rows"].size(), 5u);
  EXPECT_NE(r.out.find("strong protocol"), std::string::npos);
  EXPECT_NE(r.out.find("Gain attribution against the strongest tuned baseline"), std::string::npos);
  EXPECT_NE(r.out.find("update rule"), std::string::npos);
  EXPECT_NE(read_text_file(dir / "comparison.csv").find("CIFAR-10 (JPEG mirror)"), std::string::npos);
  const auto cfg = nlohmann::json::parse(read_text_file(dir / "config.json"));
  EXPECT_EQ(cfg["provenance"]["cifar10"]["label"], "cifar10 (JPEG mirror, lossy)");
  // The winner loads as a genome and drives evoopt compare / train.
  auto show = test::run_cli("genome show " + (dir / "best_genome.json").string());
  EXPECT_EQ(show.exit_code, 0) << show.err;
}

TEST(CliCompare, ComparesAGenomeFileWithTunedBaselines) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  auto r = test::run_cli("compare --genome adam --tasks mnist --steps 20 --train-subset 1000 --val-size 300 --test-seeds 2 --out " +
                         (tmp / "cmp").string() + " --data-dir " + test::data_dir().string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("lion (tuned)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("40 steps (longer horizon)"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(tmp / "cmp/comparison.json"));
  EXPECT_TRUE(fs::exists(tmp / "cmp/comparison.csv"));
  // Re-running finds every run in the run store.
  const auto lines = journal_lines(tmp / "cmp/journal.jsonl");
  auto again = test::run_cli("compare --genome adam --tasks mnist --steps 20 --train-subset 1000 --val-size 300 --test-seeds 2 --out " +
                             (tmp / "cmp").string() + " --data-dir " + test::data_dir().string());
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_EQ(journal_lines(tmp / "cmp/journal.jsonl"), lines);
  // Other steps or another training subset into the same directory: nothing stale is reused.
  // The comparison made over the old store equals one made from scratch in a fresh
  // directory, and it trained exactly the runs whose full keys the store did not hold (a
  // successive-halving rung of 5 steps is the same run under --steps 20 and 21; under
  // another training subset nothing is shared). The seed protocol keeps this cheap.
  auto keys = [](const fs::path& journal) {
    std::set<std::string> out;
    for (const auto& line : read_journal_lines(journal)) out.insert(nlohmann::json::parse(line).at("key").dump());
    return out;
  };
  for (const std::string change : {"--steps 21 --train-subset 1000", "--steps 20 --train-subset 900"}) {
    const std::string args = "compare --genome adam --tasks mnist --baselines seed " + change + " --val-size 300 --test-seeds 2 --data-dir " +
                             test::data_dir().string() + " --out ";
    const auto old_keys = keys(tmp / "cmp/journal.jsonl");
    auto reused = test::run_cli(args + (tmp / "cmp").string());
    ASSERT_EQ(reused.exit_code, 0) << reused.err;
    EXPECT_NE(reused.out.find("[seed protocol]"), std::string::npos) << reused.out;
    test::TempDir fresh_dir;
    auto fresh = test::run_cli(args + (fresh_dir / "cmp").string());
    ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
    EXPECT_EQ(nlohmann::json::parse(read_text_file(tmp / "cmp/comparison.json")),
              nlohmann::json::parse(read_text_file(fresh_dir / "cmp/comparison.json")))
        << change;
    const auto fresh_keys = keys(fresh_dir / "cmp/journal.jsonl");
    std::size_t shared = 0;
    for (const auto& k : fresh_keys) shared += old_keys.count(k);
    EXPECT_EQ(journal_lines(tmp / "cmp/journal.jsonl") - old_keys.size(), fresh_keys.size() - shared) << change;
    if (change.find("900") != std::string::npos) EXPECT_EQ(shared, 0u) << "a run of another training subset was reused";
    for (const auto& k : fresh_keys)
      if (old_keys.count(k)) EXPECT_LT(nlohmann::json::parse(k).at("steps").get<int>(), 20) << "reused " << k;
  }
  auto bad = test::run_cli("compare --genome adam --seeds 1 --data-dir " + test::data_dir().string());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("test seeds must be >= 2"), std::string::npos) << bad.err;
}

// MPI across machines (issue 10): under `mpirun -np 3`, rank 0 runs the search and ranks 1
// and 2 train; the outputs equal a local run with the same seed.
TEST(CliEvolve, MpiRunEqualsALocalRun) {
  EVOOPT_REQUIRE_DATASET("mnist");
  EVOOPT_REQUIRE_DATASET("fashion_mnist");
  if (!eval::mpi::built_with_mpi()) GTEST_SKIP() << "evoopt was built without MPI";
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not found";
  test::TempDir tmp;
  const std::string data = " --data-dir " + test::data_dir().string();
  auto local = test::run_cli("evolve --out " + (tmp / "local").string() + kTiny + data);
  ASSERT_EQ(local.exit_code, 0) << local.out << local.err;
  // As root, Open MPI needs --allow-run-as-root; --oversubscribe lets 3 ranks share 2 cores.
  const std::string cmd = "mpirun --allow-run-as-root --oversubscribe -np 3 " + std::string(EVOOPT_CLI) + " evolve --out " + (tmp / "mpi").string() +
                          kTiny + data + " > " + (tmp / "mpi.out").string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  const std::string out = read_text_file(tmp / "mpi.out");
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_NE(out.find("2 MPI worker rank(s)"), std::string::npos) << out;
  EXPECT_EQ(test::csv_without_last_column(read_text_file(tmp / "mpi/history.csv")),
            test::csv_without_last_column(read_text_file(tmp / "local/history.csv")));
  for (const char* f : {"lineage.json", "best_genome.json", "final_test.json"})
    EXPECT_EQ(read_text_file(tmp / "mpi" / f), read_text_file(tmp / "local" / f)) << f;
}
