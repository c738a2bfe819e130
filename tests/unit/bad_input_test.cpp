// Bad input at every boundary (issue 9): genome files, config files, flags, datasets and
// run directories. Each case must end with exactly one line on stderr naming the
// problem, a non-zero exit, and nothing written (no run directory, no output file, no
// change to an existing run directory).
#include <fstream>
#include <map>

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/files.hpp"
#include "test_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

// Every file under `dir` with its bytes (the lock file aside).
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != ".lock") out[fs::relative(e.path(), dir).string()] = read_text_file(e.path());
  return out;
}

struct Case {
  std::string args;    // CLI arguments; OUT is replaced by a fresh output path
  std::string expect;  // a substring of the one error line
};

}  // namespace

TEST(BadInput, EveryCaseEndsWithOneLineANonZeroExitAndNothingWritten) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  const std::string data = " --data-dir " + test::data_dir().string();
  const fs::path g = tmp / "genomes";
  write(g / "typo_weight.json", R"({"terms": [{"term": "GRAD", "wieght": 0.5}]})");
  write(g / "typo_key.json", R"({"terms": ["GRAD"], "learning_rat": 0.1})");
  write(g / "version99.json", R"({"version": 99, "terms": ["GRAD"]})");
  write(g / "version_string.json", R"({"version": "2", "terms": ["GRAD"]})");
  write(g / "format.json", R"({"format": "other", "terms": ["GRAD"]})");
  write(g / "malformed.json", "{ not json");
  write(g / "nested.json", std::string(100000, '[') + std::string(100000, ']'));
  write(g / "nested_object.json", [] {
    std::string s;
    for (int i = 0; i < 100000; ++i) s += "{\"a\":";
    return s + "1" + std::string(100000, '}');
  }());
  write(g / "unknown_term.json", R"({"terms": ["FOO"]})");
  write(g / "weight_range.json", R"({"terms": [{"term": "GRAD", "weight": 50}]})");
  write(g / "negative_lr.json", R"({"terms": ["GRAD"], "lr": -1})");
  write(g / "beta1.json", R"({"terms": ["MOMENTUM"], "beta1": 2})");
  write(g / "bool.json", R"({"terms": ["ADAM_TERM"], "bias_correction": 1})");
  write(g / "empty_terms.json", R"({"terms": []})");
  write(g / "weights_length.json", R"({"terms": ["GRAD"], "weights": [1, 2]})");
  write(g / "array.json", R"([1, 2, 3])");
  write(g / "term_entry_key.json", R"({"terms": [{"term": "GRAD", "scale": 2}]})");

  const fs::path c = tmp / "configs";
  write(c / "population_range.toml", "[ga]\npopulation = 4294967298\n");
  write(c / "seed_negative.toml", "seed = -1\n");
  write(c / "bool.toml", "break_even = 1\n");
  write(c / "unknown_top.toml", "popluation = 3\n");
  write(c / "unknown_ga.toml", "[ga]\nfoo = 3\n");
  write(c / "twice.toml", "tasks = [\"mnist\", \"mnist\"]\n");
  write(c / "syntax.toml", "steps = = 3\n");
  write(c / "protocol.toml", "[compare]\nprotocol = \"weak\"\n");
  write(c / "model.toml", "model = \"huge\"\n");
  write(c / "steps_string.toml", "steps = \"100\"\n");
  write(c / "empty_grid.toml", "[compare]\nlr_grid = []\n");
  write(c / "crossover.toml", "[ga]\ncrossover_rate = 2.0\n");
  write(c / "steps_float.toml", "steps = 1.5\n");
  write(c / "workers_range.toml", "workers = 99999999999\n");

  // A data dir whose MNIST labels have one flipped bit (images linked from the real one).
  const fs::path bad_data = tmp / "bad-data";
  fs::create_directories(bad_data / "mnist");
  for (const auto& e : fs::directory_iterator(test::data_dir() / "mnist")) {
    const auto name = e.path().filename().string();
    if (name == ".verified.json") continue;
    if (name == "t10k-labels-idx1-ubyte") {
      std::string bytes = read_text_file(e.path());
      bytes[200] = static_cast<char>(bytes[200] ^ 4);
      write(bad_data / "mnist" / name, bytes);
    } else {
      fs::create_symlink(e.path(), bad_data / "mnist" / name);
    }
  }
  const fs::path bad_meta = tmp / "bad-meta";
  write(bad_meta / "mnist" / "metadata.json", "{ \"files\": ");
  fs::create_directories(tmp / "empty-data");

  // A small completed run to damage, one file at a time.
  const fs::path run = tmp / "run";
  auto made = test::run_cli("evolve --out " + run.string() +
                            " --tasks mnist --population 3 --generations 1 --steps 2 --train-subset 200 --val-size 100 --final-test-seeds 1"
                            " --no-compare --no-break-even --workers 1" +
                            data);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string config_text = read_text_file(run / "config.json");
  const std::string journal_text = read_text_file(run / "journal.jsonl");
  const std::string checkpoint_text = read_text_file(run / "checkpoint.json");
  struct RunCase {
    std::string file, content, expect;
  };
  const std::vector<RunCase> run_cases = {
      {"config.json", "{ broken", "config.json: malformed JSON"},
      {"config.json", std::string(100000, '[') + std::string(100000, ']'), "config.json: JSON nested deeper than 256 levels"},
      {"config.json", R"({"format": "evoopt.config"})", "config.json: /preset: missing"},
      {"config.json", R"({"format": "something else"})", "not an evoopt config"},
      {"journal.jsonl", "{\"key\": 1}\n" + journal_text, "journal.jsonl line 1: not a run-store entry"},
      {"journal.jsonl", "not json at all\n", "journal.jsonl line 1"},
      {"checkpoint.json", "[]", "checkpoint.json: not an evoopt checkpoint"},
      {"checkpoint.json", "{", "checkpoint.json: malformed JSON"},
  };

  std::vector<Case> cases = {
      // Genome files.
      {"genome show " + (g / "typo_weight.json").string(), "unknown key 'wieght'"},
      {"genome show " + (g / "typo_key.json").string(), "unknown key 'learning_rat'"},
      {"genome show " + (g / "version99.json").string(), "version 99 is not one this evoopt reads"},
      {"genome show " + (g / "version_string.json").string(), "version \"2\" is not one this evoopt reads"},
      {"genome show " + (g / "format.json").string(), "has format \"other\""},
      {"genome show " + (g / "malformed.json").string(), "malformed.json: malformed JSON"},
      {"genome show " + (g / "nested.json").string(), "nested.json: JSON nested deeper than 256 levels"},
      {"genome show " + (g / "nested_object.json").string(), "JSON nested deeper than 256 levels"},
      {"genome show " + (g / "unknown_term.json").string(), "unknown genome term 'FOO'"},
      {"genome show " + (g / "weight_range.json").string(), "weights[0] = 50 is outside"},
      {"genome show " + (g / "negative_lr.json").string(), "must be a positive finite number"},
      {"genome show " + (g / "beta1.json").string(), "beta1 = 2 is outside"},
      {"genome show " + (g / "bool.json").string(), "bias_correction must be true or false"},
      {"genome show " + (g / "empty_terms.json").string(), "terms is empty"},
      {"genome show " + (g / "weights_length.json").string(), "weights must be an array as long as terms"},
      {"genome show " + (g / "array.json").string(), "genome JSON must be an object"},
      {"genome show " + (g / "term_entry_key.json").string(), "unknown key 'scale'"},
      {"genome show " + (tmp / "missing.json").string(), "is neither a genome preset"},
      {"train --genome " + (g / "typo_weight.json").string() + " --steps 2 --out OUT" + data, "unknown key 'wieght'"},
      {"compare --genome " + (g / "nested.json").string() + " --out OUT" + data, "JSON nested deeper than 256 levels"},
      // Config files.
      {"evolve --config " + (c / "population_range.toml").string() + " --out OUT", "ga.population = 4294967298 is out of range"},
      {"evolve --config " + (c / "seed_negative.toml").string() + " --out OUT", "seed must be >= 0"},
      {"evolve --config " + (c / "bool.toml").string() + " --out OUT", "break_even must be true or false"},
      {"evolve --config " + (c / "unknown_top.toml").string() + " --out OUT", "unknown key popluation"},
      {"evolve --config " + (c / "unknown_ga.toml").string() + " --out OUT", "unknown key ga.foo"},
      {"evolve --config " + (c / "twice.toml").string() + " --out OUT", "listed twice"},
      {"evolve --config " + (c / "syntax.toml").string() + " --out OUT", "syntax.toml"},
      {"evolve --config " + (c / "protocol.toml").string() + " --out OUT", "baseline protocol 'weak'"},
      {"evolve --config " + (c / "model.toml").string() + " --out OUT", "huge"},
      {"evolve --config " + (c / "steps_string.toml").string() + " --out OUT", "steps must be an integer"},
      {"evolve --config " + (c / "empty_grid.toml").string() + " --out OUT", "must not be empty"},
      {"evolve --config " + (c / "crossover.toml").string() + " --out OUT", "crossover rate must lie in [0, 1]"},
      {"evolve --config " + (c / "steps_float.toml").string() + " --out OUT", "steps must be an integer"},
      {"evolve --config " + (c / "workers_range.toml").string() + " --out OUT", "workers = 99999999999 is out of range"},
      {"evolve --config " + (tmp / "nope.toml").string() + " --out OUT", "nope.toml"},
      // Flags.
      {"evolve --seed -1 --out OUT", "--seed: must be an integer in 0"},
      {"evolve --seed 1180591620717411303424 --out OUT", "--seed: must be at most 18446744073709551615"},
      {"evolve --seed 18446744073709551616 --out OUT", "--seed: must be at most"},
      {"train --seed -1 --out OUT", "--seed: must be an integer"},
      {"evolve --seed 12abc --out OUT", "--seed: must be an integer"},
      {"evolve --out \"\"", "--out: must not be empty"},
      {"train --steps 2 --out \"\"", "--out: must not be empty"},
      {"compare --genome adam --out \"\"", "--out: must not be empty"},
      {"evolve --baselines weak --out OUT", "baseline protocol 'weak'"},
      {"evolve --tasks imagenet --out OUT", "imagenet"},
      {"evolve --tasks mnist:giant --out OUT", "task 'mnist:giant': unknown model preset 'giant'"},
      {"evolve --tasks jargon:tiny --out OUT", "Jargon File is a text; its model must be lstm"},
      {"evolve --transfer-tasks mnist:lstm --out OUT", "lstm reads text"},
      {"evolve --transfer-tasks mnist --out OUT", "transfer task 'mnist' is a search task"},
      {"evolve --transfer-tasks jargon jargon --out OUT", "transfer task 'jargon' is listed twice"},
      {"train --task cifar10:lstm --out OUT", "CIFAR-10 holds images; lstm reads text"},
      {"evolve --vocabulary huge --out OUT", "unknown vocabulary 'huge'"},
      {"evolve --population 1 --out OUT", "population must be >= 2"},
      {"evolve --model giant --out OUT", "giant"},
      {"evolve --device tpu --out OUT", "unknown device 'tpu'"},
      {"compare --genome adam --device gpu --out OUT", "unknown device 'gpu'"},
      {"train --split train --out OUT" + data, "--split must be val or test"},
      {"compare --genome " + (tmp / "absent.json").string() + " --out OUT", "is neither a genome preset"},
      // Datasets.
      {"train --task mnist --steps 2 --out OUT --data-dir " + (tmp / "empty-data").string(), "dataset 'mnist' is not in"},
      {"train --task mnist --steps 2 --out OUT --data-dir " + bad_meta.string(), "metadata.json: malformed JSON"},
      {"train --task mnist --steps 2 --out OUT --data-dir " + bad_data.string(), "t10k-labels-idx1-ubyte: SHA-256 mismatch"},
      {"evolve --tasks mnist --out OUT --data-dir " + bad_data.string(), "SHA-256 mismatch"},
      // Run directories.
      {"resume " + (tmp / "no-such-run").string(), "not a run directory"},
      {"status " + (tmp / "no-such-run").string(), "not a run directory"},
      {"report " + (tmp / "no-such-run").string(), "not a run directory"},
      {"report " + (tmp / "no-such-run").string() + " -o OUT", "not a run directory"},
  };
  if (!torch::cuda::is_available())
    cases.push_back({"evolve --tasks mnist --device cuda --out OUT" + data, "device cuda: no CUDA device is available"});
  ASSERT_GE(cases.size() + run_cases.size(), 40u);

  auto check = [&](const std::string& args, const std::string& expect, const std::function<void()>& nothing_written) {
    const auto r = test::run_cli(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(test::count_lines(r.err), 1) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << args << "\nexpected: " << expect << "\ngot: " << r.err;
    EXPECT_EQ(r.err.find("terminate"), std::string::npos) << args;
    nothing_written();
  };
  int n = 0;
  for (const auto& k : cases) {
    const fs::path out = tmp / ("out" + std::to_string(n++));
    std::string args = k.args;
    if (auto pos = args.find("OUT"); pos != std::string::npos) args.replace(pos, 3, out.string());
    check(args, k.expect, [&] { EXPECT_FALSE(fs::exists(out)) << args << " wrote " << out; });
  }
  for (const auto& k : run_cases) {
    write(run / k.file, k.content);
    const auto before = snapshot(run);
    check("resume " + run.string(), k.expect, [&] { EXPECT_EQ(snapshot(run), before) << "resume changed " << run << " (" << k.file << ")"; });
    write(run / "config.json", config_text);
    write(run / "journal.jsonl", journal_text);
    write(run / "checkpoint.json", checkpoint_text);
  }
  // Intact again: it resumes.
  EXPECT_EQ(test::run_cli("resume " + run.string()).exit_code, 0);
}

TEST(BadInput, AFullDiskNamesThePath) {
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  try {
    append_line_durable("/dev/full", "x");
    FAIL() << "a write to a full device succeeded";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("/dev/full: write failed: No space left on device"), std::string::npos) << e.what();
  }
}
