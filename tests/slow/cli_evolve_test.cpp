// evoopt evolve / resume end to end through the real CLI: kill -9 and resume
// gives identical outputs, Ctrl-C checkpoints and says how to resume, and the
// quick preset produces every output file (issues 5 and 6). Label: slow.
#include <chrono>
#include <csignal>
#include <fstream>
#include <thread>

#include <map>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <stb_image.h>
#include "evoopt/common/files.hpp"
#include "evoopt/eval/mpi.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace evoopt;

namespace {

const std::string kTiny =
    " --tasks mnist fashion_mnist --population 4 --generations 4 --steps 30 --train-subset 2000 --val-size 500"
    " --no-compare --no-break-even --final-test-seeds 2 --workers 2 --seed 11";

// Complete lines of a journal another process may be appending to.
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

// report.html as a browser shows it: headless Chromium's screenshot (PNG) and its DOM after
// parsing. Empty `dom` when Chromium is not installed (scripts/test.sh installs it).
struct Rendered {
  std::string dom;
  int width = 0, height = 0;
  double non_white = 0;     // share of pixels that are not white
  std::size_t colours = 0;  // distinct colours (quantised)
};

Rendered render_in_chromium(const fs::path& html, const fs::path& work) {
  Rendered r;
  if (std::system("command -v chromium > /dev/null 2>&1") != 0) return r;
  const std::string flags =
      "timeout 180 chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking --user-data-dir=" +
      (work / "profile").string() + " ";
  const fs::path png = work / "report.png";
  const std::string shot = flags + "--window-size=1200,2000 --screenshot=" + png.string() + " file://" + html.string() + " > /dev/null 2>&1";
  EXPECT_EQ(std::system(shot.c_str()), 0) << shot;
  const std::string dump = flags + "--dump-dom file://" + html.string() + " > " + (work / "dom.html").string() + " 2> /dev/null";
  EXPECT_EQ(std::system(dump.c_str()), 0) << dump;
  r.dom = read_text_file(work / "dom.html");
  int channels = 0;
  const std::string bytes = fs::exists(png) ? read_text_file(png) : std::string();
  unsigned char* px =
      stbi_load_from_memory(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()), &r.width, &r.height, &channels, 3);
  if (px == nullptr) {
    ADD_FAILURE() << "no screenshot at " << png;
    return r;
  }
  std::set<int> colours;
  std::size_t coloured = 0;
  const std::size_t n = static_cast<std::size_t>(r.width) * static_cast<std::size_t>(r.height);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char* p = px + 3 * i;
    if (p[0] < 250 || p[1] < 250 || p[2] < 250) ++coloured;
    colours.insert((p[0] >> 4) << 8 | (p[1] >> 4) << 4 | (p[2] >> 4));
  }
  stbi_image_free(px);
  r.non_white = static_cast<double>(coloured) / static_cast<double>(n);
  r.colours = colours.size();
  return r;
}

// Every <svg class="chart" data-chart="NAME" data-points="N"> in `dom`: NAME → (N, marks of class "pt" inside).
std::map<std::string, std::pair<int, int>> charts(const std::string& dom) {
  std::map<std::string, std::pair<int, int>> out;
  for (auto p = dom.find("<svg class=\"chart"); p != std::string::npos; p = dom.find("<svg class=\"chart", p + 1)) {
    const auto end = dom.find("</svg>", p);
    const std::string svg = dom.substr(p, end - p);
    auto attr = [&](const std::string& name) {
      const auto a = svg.find(name + "=\"") + name.size() + 2;
      return svg.substr(a, svg.find('"', a) - a);
    };
    int marks = 0;
    for (auto q = svg.find("class=\"pt"); q != std::string::npos; q = svg.find("class=\"pt", q + 1)) {
      const char next = svg[q + 9];
      if (next == '"' || next == ' ') ++marks;
    }
    out[attr("data-chart")] = {std::stoi(attr("data-points")), marks};
  }
  return out;
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
    // evoopt status reads where the killed run stands from its files.
    auto status = test::run_cli("status " + dir.string());
    ASSERT_EQ(status.exit_code, 0) << status.err;
    EXPECT_NE(status.out.find(at == 3 ? ": searching" : ": final test / comparison"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("no process is working on it: evoopt resume " + dir.string()), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("runs done: " + std::to_string(before) + " "), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("ETA: about"), std::string::npos) << status.out;
    // The report of an unfinished run: what there is so far.
    auto report = test::run_cli("report " + dir.string());
    ASSERT_EQ(report.exit_code, 0) << report.err;
    const std::string html = read_text_file(dir / "report.html");
    EXPECT_NE(html.find(at == 3 ? "No generation has finished yet." : "data-chart=\"fitness\""), std::string::npos);
    EXPECT_NE(html.find(at == 3 ? "<b>searching</b>" : "<b>final test / comparison</b>"), std::string::npos);
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
  // Progress lines with throughput and ETAs, and a line per phase with its wall time.
  EXPECT_NE(r.out.find("training runs ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" runs/s, generation ETA "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(", study ETA "), std::string::npos) << r.out;
  for (const char* phase : {"Search finished: 78 runs trained in ", "Final test finished: 9 runs trained in ",
                            "Break-even finished: ", "Tuning finished: ", "Comparison finished: ", "Attribution finished: "})
    EXPECT_NE(r.out.find(phase), std::string::npos) << phase;
  auto status = test::run_cli("status " + dir.string());
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find(dir.string() + ": complete"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("generations finished: 4/4"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("winner's final test fitness: "), std::string::npos) << status.out;
  EXPECT_EQ(test::run_cli("status " + (tmp / "nothing").string()).exit_code, 1);

  // report.html, written by evolve, as Chromium shows it: not blank, every chart holds its points.
  ASSERT_TRUE(fs::exists(dir / "report.html"));
  const std::string html = read_text_file(dir / "report.html");
  for (const char* external : {"<script", "src=\"http", "href=\"http", "@import", "url("})
    EXPECT_EQ(html.find(external), std::string::npos) << external;
  const Rendered page = render_in_chromium(dir / "report.html", tmp.path());
  if (page.dom.empty()) GTEST_SKIP() << "chromium is not installed (scripts/test.sh installs it)";
  EXPECT_EQ(page.width, 1200);
  EXPECT_GT(page.non_white, 0.03);
  EXPECT_GT(page.colours, 20u);
  const auto found = charts(page.dom);
  const auto lineage = nlohmann::json::parse(read_text_file(dir / "lineage.json"))["individuals"];
  const auto best = nlohmann::json::parse(read_text_file(dir / "best_genome.json"));
  // The winner's ancestors, counted here from lineage.json.
  std::map<std::uint64_t, nlohmann::json> by_id;
  for (const auto& i : lineage) by_id[i["id"].get<std::uint64_t>()] = i;
  std::set<std::uint64_t> ancestors;
  std::vector<std::uint64_t> todo{best["id"].get<std::uint64_t>()};
  while (!todo.empty()) {
    const auto id = todo.back();
    todo.pop_back();
    if (!ancestors.insert(id).second) continue;
    for (const auto& p : by_id[id]["parents"]) todo.push_back(p.get<std::uint64_t>());
  }
  const std::map<std::string, int> expected = {{"fitness", 3 * 4},
                                               {"per-task", 3 * 4},
                                               {"terms", -1},
                                               {"diversity", 2 * 4},
                                               {"schedule", 50},
                                               {"family-tree", static_cast<int>(ancestors.size())},
                                               {"break-even", -1},
                                               {"test-bars", 5 * 4},
                                               {"loss-mnist", -1},
                                               {"loss-cifar10", -1},
                                               {"loss-fashion_mnist", -1},
                                               {"transfer-bars", 5 * 2},
                                               {"loss-fashion_mnist:mlp", -1}};
  for (const auto& [name, n] : expected) {
    ASSERT_TRUE(found.count(name)) << "no chart " << name;
    EXPECT_EQ(found.at(name).first, found.at(name).second) << name << ": data-points differs from the marks in the DOM";
    EXPECT_GT(found.at(name).second, 0) << name;
    if (n >= 0) EXPECT_EQ(found.at(name).second, n) << name;
  }
  EXPECT_NE(page.dom.find("<math"), std::string::npos);  // the formula, as MathML
  EXPECT_NE(page.dom.find("lossy: JPEG-compressed images"), std::string::npos);
  EXPECT_NE(page.dom.find("Where the gain comes from"), std::string::npos);
  EXPECT_NE(r.out.find("Best fitness:"), std::string::npos);
  EXPECT_NE(r.out.find("Final test of the winner"), std::string::npos);
  EXPECT_NE(r.out.find("Break-even:"), std::string::npos);
  EXPECT_NE(r.out.find("adamw (tuned)"), std::string::npos);
  EXPECT_NE(r.out.find("CIFAR-10 (JPEG mirror)"), std::string::npos);
  const auto cmp = nlohmann::json::parse(read_text_file(dir / "comparison.json"));
  EXPECT_EQ(cmp["labels"]["cifar10"], "CIFAR-10 (JPEG mirror)");
  EXPECT_EQ(cmp["horizons"].size(), 1u);  // quick skips the longer-horizon block (the default has it; see CliCompare)
  EXPECT_EQ(cmp["transfer"]["tasks"], nlohmann::json::array({"fashion_mnist:mlp"}));  // quick's held-out task
  EXPECT_NE(page.dom.find("Transfer: tasks the search never saw"), std::string::npos);
  EXPECT_EQ(cmp["baselines"].size(), 4u);  // quick: sgd, adamw, schedule_free_adamw, muon
  // The quasirandom protocol and the gain attribution are the default.
  EXPECT_EQ(cmp["protocol"], "quasirandom");
  EXPECT_EQ(cmp["baselines"][0]["sweep"].size(), 4u);  // quick: 4 trials per method
  EXPECT_EQ(cmp["evolved_tuning"]["sweep"].size(), 4u);
  EXPECT_EQ(cmp["attribution"]["rows"].size(), 5u);
  EXPECT_NE(r.out.find("quasirandom protocol: 4 quasi-random trials"), std::string::npos);
  EXPECT_NE(r.out.find("Tuned per workload"), std::string::npos);
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
  // The strong protocol (held-out tasks never tuned) over the five classic baselines.
  write_file_atomic(tmp / "five.toml", "[compare]\nbaselines = [\"sgd\", \"adam\", \"rmsprop\", \"adamw\", \"lion\"]\n");
  const std::string held_out = " --transfer-tasks fashion_mnist:mlp --baselines strong --config " + (tmp / "five.toml").string();
  auto r = test::run_cli("compare --genome adam --tasks mnist --steps 20 --train-subset 1000 --val-size 300 --test-seeds 2 --out " +
                         (tmp / "cmp").string() + " --data-dir " + test::data_dir().string() + held_out);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("lion (tuned)"), std::string::npos) << r.out;
  // The held-out task: its own block at both horizons, never tuned on.
  EXPECT_NE(r.out.find("Transfer: tasks the search never saw"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("40 steps (longer horizon), held-out tasks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Fashion-MNIST, MLP"), std::string::npos) << r.out;
  const auto cmp = nlohmann::json::parse(read_text_file(tmp / "cmp/comparison.json"));
  EXPECT_EQ(cmp["transfer"]["tasks"], nlohmann::json::array({"fashion_mnist:mlp"}));
  ASSERT_EQ(cmp["transfer"]["horizons"].size(), 2u);
  EXPECT_EQ(cmp["transfer"]["horizons"][0]["methods"].size(), 6u);  // evolved + 5 tuned baselines
  for (const auto& line : read_journal_lines(tmp / "cmp/journal.jsonl")) {
    const auto e = nlohmann::json::parse(line);
    if (e["key"]["task"] == "fashion_mnist:mlp") EXPECT_EQ(e["key"]["split"], "test") << "tuned on a held-out task";
  }
  EXPECT_NE(r.out.find("40 steps (longer horizon)"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(tmp / "cmp/comparison.json"));
  EXPECT_TRUE(fs::exists(tmp / "cmp/comparison.csv"));
  // Re-running finds every run in the run store.
  const auto lines = journal_lines(tmp / "cmp/journal.jsonl");
  auto again = test::run_cli("compare --genome adam --tasks mnist --steps 20 --train-subset 1000 --val-size 300 --test-seeds 2 --out " +
                             (tmp / "cmp").string() + " --data-dir " + test::data_dir().string() + held_out);
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
    const std::string args = "compare --genome adam --tasks mnist --no-transfer --baselines seed " + change +
                             " --val-size 300 --test-seeds 2 --data-dir " + test::data_dir().string() + " --out ";
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
