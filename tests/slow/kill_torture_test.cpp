// Kill-torture: every search mode (generational, --async, --racing, --racing-continue) is
// killed several times at points chosen by its own progress (journal lines and finished
// generations, not wall time), once by SIGINT inside a generation >= 1 and once inside an
// atomic output write, resumed each time, and must end with the outputs of an uninterrupted
// run (timing fields aside). A SIGKILLed run's worker processes must be gone 1 s later.
// Label: slow.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/files.hpp"
#include "evoopt/eval/mpi.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace evoopt;

namespace {

// The reproduction: quick sizes, one task, no later stages.
const std::string kRun =
    " --preset quick --tasks mnist --no-compare --no-break-even --seed 11 --train-subset 2000 --val-size 500"
    " --final-test-seeds 2";

std::size_t lines_of(const fs::path& p) {
  if (!fs::exists(p)) return 0;
  return static_cast<std::size_t>(test::count_lines(read_text_file(p)));
}

// Finished generations: history.csv rows (its header aside).
std::size_t generations_done(const fs::path& dir) {
  const std::size_t n = lines_of(dir / "history.csv");
  return n > 0 ? n - 1 : 0;
}

// A JSON file without the fields named by `timing` (JSON pointers) that measure time.
json without(json j, const std::vector<std::string>& timing) {
  for (const auto& p : timing) {
    const json::json_pointer ptr(p);
    if (j.contains(ptr)) j.at(ptr.parent_pointer()).erase(ptr.back());
  }
  return j;
}

// The journal's run keys, sorted (worker processes finish in any order).
std::vector<std::string> journal_keys(const fs::path& dir) {
  std::vector<std::string> keys;
  for (const auto& line : read_journal_lines(dir / "journal.jsonl")) keys.push_back(json::parse(line).at("key").dump());
  std::sort(keys.begin(), keys.end());
  return keys;
}

void expect_same_outputs(const fs::path& got, const fs::path& want) {
  EXPECT_EQ(test::csv_without_last_column(read_text_file(got / "history.csv")), test::csv_without_last_column(read_text_file(want / "history.csv")));
  for (const char* f : {"lineage.json", "best_genome.json", "final_test.json"}) EXPECT_EQ(read_text_file(got / f), read_text_file(want / f)) << f;
  auto history = [](const fs::path& d) {
    json h = json::parse(read_text_file(d / "history.json"));
    for (auto& g : h.at("generations")) g.erase("seconds");
    return h;
  };
  EXPECT_EQ(history(got), history(want));
  const std::vector<std::string> timing = {"/cost/wall_seconds_this_process", "/cost/cpu_seconds", "/cost/search_train_seconds"};
  EXPECT_EQ(without(json::parse(read_text_file(got / "summary.json")), timing), without(json::parse(read_text_file(want / "summary.json")), timing));
  EXPECT_EQ(journal_keys(got), journal_keys(want));
  // Nothing a killed write left behind survives the resume.
  for (const auto& e : fs::recursive_directory_iterator(got)) EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

// The pids of `parent`'s child processes (from /proc).
std::vector<int> children_of(int parent) {
  std::vector<int> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat;
    try {
      stat = read_text_file(e.path() / "stat");
    } catch (const std::exception&) {
      continue;  // gone meanwhile
    }
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    int ppid = 0;
    char state = 0;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) out.push_back(std::stoi(name));
  }
  return out;
}

// Whether `pid` is a live process (a zombie has ended).
bool alive(int pid) {
  try {
    const std::string stat = read_text_file("/proc/" + std::to_string(pid) + "/stat");
    const auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
  } catch (const std::exception&) {
    return false;
  }
}

// The MPI rank 0 among mpirun's children (from their environment); -1 when not found.
int rank_zero_of(int mpirun) {
  for (int child : children_of(mpirun)) {
    std::string env;
    try {
      env = read_text_file("/proc/" + std::to_string(child) + "/environ");
    } catch (const std::exception&) {
      continue;
    }
    if (env.find(std::string("OMPI_COMM_WORLD_RANK=0") + '\0') != std::string::npos) return child;
  }
  return -1;
}

// Runs `PROGRAM ARGS` (PROGRAM: evoopt, or a launcher such as mpirun followed by evoopt) in the
// background and sends `sig` to the process `victim(pid)` picks (the program itself by default)
// once `ready()` holds (checked every 5 ms). Returns the exit status as the shell reports it
// (128 + signal when killed). With SIGKILL, also checks that 1 s later no process it had
// started is alive: the victim's children (worker processes) and, under a launcher, the other
// ranks.
int run_until(
    const std::string& args, const std::function<bool()>& ready, int sig, const std::string& env = "", const std::string& program = EVOOPT_CLI,
    const std::function<int(int)>& victim = [](int pid) { return pid; }) {
  test::TempDir tmp;
  const std::string cmd = "(" + env + " " + program + " " + args + " > " + (tmp / "out").string() + " 2>&1 & echo $! > " + (tmp / "pid").string() +
                          "; wait $!; echo $? > " + (tmp / "rc").string() + ") &";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  while (!fs::exists(tmp / "pid") || read_text_file(tmp / "pid").empty()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int pid = std::stoi(read_text_file(tmp / "pid"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  bool signalled = false;
  while (!fs::exists(tmp / "rc") && std::chrono::steady_clock::now() < deadline) {
    if (!signalled && sig != 0 && ready()) {
      const int target = victim(pid);
      if (target <= 0) continue;
      const std::vector<int> workers = children_of(target);
      std::vector<int> ranks;
      if (target != pid)
        for (int sibling : children_of(pid))
          if (sibling != target) ranks.push_back(sibling);
      ::kill(target, sig);
      signalled = true;
      if (sig == SIGKILL) {
        std::this_thread::sleep_for(std::chrono::seconds(1));
        for (int w : workers) EXPECT_FALSE(alive(w)) << "worker " << w << " outlived its SIGKILLed parent by 1 s";
        // The launcher ends the other ranks once it has seen rank 0 die (Open MPI: about 1 s).
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::any_of(ranks.begin(), ranks.end(), alive) && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        for (int r : ranks) EXPECT_FALSE(alive(r)) << "rank " << r << " outlived rank 0 by 10 s";
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  while (!fs::exists(tmp / "rc") || read_text_file(tmp / "rc").empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (sig != 0) EXPECT_TRUE(signalled) << "the run ended before it could be signalled: " << read_text_file(tmp / "out");
  return std::stoi(read_text_file(tmp / "rc"));
}

// One mode: an uninterrupted run, then a run killed at three points and resumed after each.
void torture(const std::string& flags) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  const std::string run = kRun + flags + " --data-dir " + test::data_dir().string();
  const fs::path full = tmp / "full", cut = tmp / "cut";
  auto r = test::run_cli("evolve --out " + full.string() + run);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_GE(generations_done(full), 3u);
  const std::string resume = "resume " + cut.string();

  // 1. SIGKILL inside generation 0, a few runs in.
  EXPECT_EQ(run_until(
                "evolve --out " + cut.string() + run, [&] { return lines_of(cut / "journal.jsonl") >= 3; }, SIGKILL),
            128 + SIGKILL);
  EXPECT_EQ(generations_done(cut), 0u);

  // 2. SIGINT inside a generation >= 1: generation 0 finished and checkpointed, and a run of
  // the next one in the journal.
  std::size_t mark = 0;
  EXPECT_NE(run_until(
                resume,
                [&] {
                  if (mark == 0 && generations_done(cut) >= 1) mark = lines_of(cut / "journal.jsonl");
                  return mark > 0 && lines_of(cut / "journal.jsonl") > mark;
                },
                SIGINT),
            0);
  EXPECT_GE(generations_done(cut), 1u);

  // 3. SIGKILL inside an output write: history.csv's temporary file written, not yet renamed
  // (the third write this process makes, a later generation's).
  EXPECT_EQ(run_until(
                resume, [] { return false; }, 0, "EVOOPT_TEST_KILL_BEFORE_RENAME=history.csv:3"),
            128 + SIGKILL);
  bool stale = false;
  for (const auto& e : fs::directory_iterator(cut)) stale = stale || e.path().filename().string().rfind("history.csv.tmp.", 0) == 0;
  EXPECT_TRUE(stale) << "the write was not cut (no history.csv.tmp.* left)";

  r = test::run_cli(resume);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  expect_same_outputs(cut, full);
}

}  // namespace

TEST(KillTorture, Generational) { torture(" --workers 2"); }

TEST(KillTorture, Racing) { torture(" --racing --workers 2"); }

TEST(KillTorture, RacingContinue) { torture(" --racing-continue --workers 2"); }

// In-process training (--workers 1), one individual in flight: its completion order, and so
// its search, is fixed, so an uninterrupted run is the reference.
TEST(KillTorture, Async) { torture(" --async --workers 1"); }

// Two workers finish in any order: the resumed run must equal a replay of the order it
// recorded, in a fresh directory.
TEST(KillTorture, AsyncTwoWorkersEqualsAReplayOfItsOrder) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  const std::string run = kRun + " --async --workers 2 --data-dir " + test::data_dir().string();
  const fs::path cut = tmp / "cut", replay = tmp / "replay";
  EXPECT_EQ(run_until(
                "evolve --out " + cut.string() + run, [&] { return generations_done(cut) >= 1; }, SIGKILL),
            128 + SIGKILL);
  EXPECT_EQ(run_until(
                "resume " + cut.string(), [] { return false; }, 0, "EVOOPT_TEST_KILL_BEFORE_RENAME=history.csv:2"),
            128 + SIGKILL);
  auto r = test::run_cli("resume " + cut.string());
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  fs::create_directories(replay);
  fs::copy_file(cut / "completions.jsonl", replay / "completions.jsonl");
  r = test::run_cli("evolve --out " + replay.string() + run);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  expect_same_outputs(cut, replay);
}

// MPI: rank 0 SIGKILLed inside a generation >= 1 of a racing search takes the other ranks
// with it (mpirun ends them: about 1 s after here); `resume` under mpirun ends with the outputs of an uninterrupted local
// run (an MPI run equals a local one: CliEvolve.MpiRunEqualsALocalRun).
TEST(KillTorture, MpiRankZeroKilledTakesTheRanksWithItAndResumes) {
  EVOOPT_REQUIRE_DATASET("mnist");
  if (!eval::mpi::built_with_mpi()) GTEST_SKIP() << "evoopt was built without MPI";
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not found";
  test::TempDir tmp;
  const std::string run = kRun + " --racing --workers 2 --data-dir " + test::data_dir().string();
  const fs::path full = tmp / "full", cut = tmp / "cut";
  auto r = test::run_cli("evolve --out " + full.string() + run);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // As root, Open MPI needs --allow-run-as-root; --oversubscribe lets 3 ranks share 2 cores.
  const std::string mpirun = "mpirun --allow-run-as-root --oversubscribe -np 3 " + std::string(EVOOPT_CLI);
  std::size_t mark = 0;
  EXPECT_NE(run_until(
                "evolve --out " + cut.string() + run,
                [&] {
                  if (mark == 0 && generations_done(cut) >= 1) mark = lines_of(cut / "journal.jsonl");
                  return mark > 0 && lines_of(cut / "journal.jsonl") > mark;
                },
                SIGKILL, "", mpirun, rank_zero_of),
            0);
  const std::string resumed_out = (tmp / "resume.out").string();
  ASSERT_EQ(std::system((mpirun + " resume " + cut.string() + " > " + resumed_out + " 2>&1").c_str()), 0) << read_text_file(resumed_out);
  expect_same_outputs(cut, full);
}
