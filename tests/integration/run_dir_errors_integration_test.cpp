// Damaged run-directory JSON (issue 25, items 8 and 9): each file `evoopt report` and
// `evoopt status` read, damaged four ways (a value of the wrong type, a missing key, a key
// given twice, the file cut short), ends with one line naming the file and the key, a
// non-zero exit, and nothing written: every file of the run directory byte-identical,
// report.html among them (or still absent). One small finished run, made once, copied per
// case. The typed reader (common/json_io) itself: tests/unit/run_dir_errors_test.cpp.
#include <fstream>
#include <map>
#include <memory>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/experiment/progress.hpp"
#include "evoopt/report/report.hpp"
#include "test_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary | std::ios::trunc) << text; }

// Every file under `dir` with its bytes.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_text_file(e.path());
  return out;
}

using test::error_of;

enum class Damage { WrongType, Missing, Duplicate, Truncated };

const char* damage_name(Damage d) {
  switch (d) {
    case Damage::WrongType:
      return "wrong type";
    case Damage::Missing:
      return "missing key";
    case Damage::Duplicate:
      return "duplicate key";
    case Damage::Truncated:
      return "truncated";
  }
  return "";
}

// `text` (a JSON file) with the value at `pointer` damaged as `d`.
std::string damaged(const std::string& text, const std::string& pointer, Damage d) {
  if (d == Damage::Truncated) return text.substr(0, text.size() / 2);
  json j = json::parse(text);
  const json::json_pointer p(pointer);
  if (d == Damage::WrongType) {
    j.at(p) = "x";
  } else if (d == Damage::Missing) {
    j.at(p.parent_pointer()).erase(p.back());
  } else {
    // The key twice, with the same value: only a reader that sees duplicates notices.
    const std::string value = j.at(p).dump();
    j.at(p) = "@@duplicate@@";
    std::string out = j.dump(1);
    const std::string marker = "\"@@duplicate@@\"";
    out.replace(out.find(marker), marker.size(), value + ", " + json(p.back()).dump() + ": " + value);
    return out;
  }
  return j.dump(1);
}

struct Case {
  std::string file;     // in the run directory
  std::string pointer;  // the key damaged (not used when truncated)
  bool status_reads;    // `evoopt status` reads it (best_genome.json: once summary.json is gone)
};

class RunDirErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(test::data_dir() / "mnist" / "metadata.json")) return;
    tmp_ = std::make_unique<test::TempDir>();
    // Two generations of three, a final test and a one-baseline comparison: every file.
    write(*tmp_ / "tiny.toml", R"(seed = 5
tasks = ["mnist"]
transfer_tasks = []
steps = 2
final_test_seeds = 2
break_even = false
[data]
train_subset = 200
val_size = 100
[ga]
population = 3
generations = 2
[compare]
baselines = ["sgd"]
lr_grid = [0.01]
wd_grid = [0.0]
halving = false
attribution = false
test_seeds = 2
horizon_multiple = 0.0
)");
    made_ = test::run_cli("evolve --config " + (*tmp_ / "tiny.toml").string() + " --out " + (*tmp_ / "run").string() + " --workers 1 --data-dir " +
                          test::data_dir().string());
  }
  static void TearDownTestSuite() { tmp_.reset(); }

  void SetUp() override {
    EVOOPT_REQUIRE_DATASET("mnist");
    ASSERT_EQ(made_.exit_code, 0) << made_.err;
  }

  // A fresh copy of the finished run.
  fs::path copy(const std::string& name) const {
    const fs::path to = *tmp_ / name;
    fs::remove_all(to);
    fs::copy(*tmp_ / "run", to, fs::copy_options::recursive);
    return to;
  }

  static std::unique_ptr<test::TempDir> tmp_;
  static test::CliResult made_;
};

std::unique_ptr<test::TempDir> RunDirErrors::tmp_;
test::CliResult RunDirErrors::made_;

}  // namespace

TEST_F(RunDirErrors, TheFinishedRunReportsAndHasEveryFile) {
  const fs::path run = copy("intact");
  for (const char* f : {"config.json", "history.json", "lineage.json", "best_genome.json", "summary.json", "comparison.json", "report.html"})
    EXPECT_TRUE(fs::exists(run / f)) << f;
  const auto before = snapshot(run);
  const auto status = test::run_cli("status " + run.string());
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(snapshot(run), before) << "status wrote into the run directory";
  const auto report = test::run_cli("report " + run.string());
  EXPECT_EQ(report.exit_code, 0) << report.err;
}

// Each case in this process (what the command calls: write_report, read_run_status), and one
// damage per file through the CLI (each kind of damage in turn), whose one line must be the
// same message.
TEST_F(RunDirErrors, EveryDamagedFileIsNamedWithItsKeyAndNothingIsWritten) {
  const std::vector<Case> files = {
      {"history.json", "/generations/1/best", false},
      {"lineage.json", "/individuals/2/fitness", false},
      {"best_genome.json", "/genome", true},
      {"summary.json", "/final_test/overall_mean", true},
      {"comparison.json", "/horizons/0/methods/1/overall/mean", false},
      {"config.json", "/steps", true},
  };
  const std::vector<Damage> damages = {Damage::WrongType, Damage::Missing, Damage::Duplicate, Damage::Truncated};
  int n = 0, through_cli = 0;
  for (std::size_t f = 0; f < files.size(); ++f)
    for (std::size_t k = 0; k < damages.size(); ++k)
      for (const std::string command : {"report", "status"}) {
        const Case& c = files[f];
        const Damage d = damages[k];
        if (command == "status" && !c.status_reads) continue;
        const std::string what = command + " with " + c.file + " " + damage_name(d) + " at " + c.pointer;
        const fs::path run = copy("case" + std::to_string(n));
        // Half the cases with report.html, half without it.
        const bool had_report = n++ % 2 == 0;
        if (!had_report) fs::remove(run / "report.html");
        if (command == "status" && c.file == "best_genome.json") fs::remove(run / "summary.json");  // the search done, the rest not
        write(run / c.file, damaged(read_text_file(run / c.file), c.pointer, d));
        const auto before = snapshot(run);

        const std::string err = error_of([&] {
          if (command == "report")
            report::write_report(run);
          else
            experiment::read_run_status(run);
        });
        ASSERT_FALSE(err.empty()) << what << ": no error";
        EXPECT_EQ(err.find('\n'), std::string::npos) << what << "\n" << err;
        EXPECT_EQ(err.rfind((run / c.file).string() + ": ", 0), 0u) << what << "\n" << err;
        // The key: the damaged one's pointer, or for a file cut short where it ends.
        const std::string key = d == Damage::Truncated ? ": malformed JSON near /" : c.pointer;
        EXPECT_NE(err.find(key), std::string::npos) << what << "\nexpected: " << key << "\ngot: " << err;
        EXPECT_EQ(err.find("json.exception"), std::string::npos) << what << "\n" << err;
        EXPECT_EQ(snapshot(run), before) << what << " wrote into the run directory";

        if (k == (f + (command == "status" ? 2 : 0)) % damages.size()) {
          ++through_cli;
          const auto r = test::run_cli(command + " " + run.string());
          EXPECT_NE(r.exit_code, 0) << what;
          EXPECT_EQ(r.err, "evoopt: error: " + err + "\n") << what;
          EXPECT_EQ(snapshot(run), before) << what << " (CLI) wrote into the run directory";
        }
        EXPECT_EQ(fs::exists(run / "report.html"), had_report) << what;
        fs::remove_all(run);
      }
  EXPECT_EQ(n, 36);
  EXPECT_EQ(through_cli, 9);
}
