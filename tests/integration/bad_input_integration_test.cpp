// Bad input at every boundary (issue 9): genome files, config files, flags, datasets and
// run directories. Each case must end with exactly one line on stderr naming the
// problem, a non-zero exit, and nothing written (no run directory, no output file, no
// change to an existing run directory).
#include <algorithm>
#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/files.hpp"
#include "evoopt/eval/evaluator.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/task/task.hpp"
#include "evoopt/train/trainer.hpp"
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
      // A number that does not fit its field is refused, not wrapped (4294967297 into an int was 1).
      {"config.json",
       [&] {
         auto j = nlohmann::json::parse(config_text);
         j["workers"] = 4294967297LL;
         return j.dump(2);
       }(),
       "config.json: /workers: expected an integer in [-2147483648, 2147483647]"},
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
      {"evolve --methods adamm --out OUT", "adamm"},
      {"evolve --fill sometimes --out OUT", "fill = \"sometimes\" is not one of random, mutants"},
      {"evolve --space programs --seed-presets ademamix --out OUT", "no program preset 'ademamix'"},
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

namespace {
// A TorchScript module that loads (its forward is never run where it is used).
void write_script_model(const fs::path& p) {
  torch::jit::Module m("M");
  m.define("def forward(self, x):\n  return x\n");
  m.save(p.string());
}

// A tensors-format dataset (torch.save'd dict) with these training labels.
void write_tensors_data(const fs::path& p, std::int64_t label) {
  c10::Dict<std::string, torch::Tensor> d;
  d.insert("train_x", torch::zeros({2, 1, 4, 4}, torch::kUInt8));
  d.insert("train_y", torch::tensor({std::int64_t{0}, label}));
  d.insert("test_x", torch::zeros({1, 1, 4, 4}, torch::kUInt8));
  d.insert("test_y", torch::tensor({std::int64_t{0}}));
  const std::vector<char> bytes = torch::pickle_save(d);
  std::ofstream(p, std::ios::binary) << std::string(bytes.begin(), bytes.end());
}

// A [[task]] table with the given extra lines (model and data need not exist where a
// field check comes first).
std::string user_task_toml(const std::string& extra, const fs::path& model = "model.pt", const fs::path& data = "data.pt") {
  return "tasks = [\"mine\"]\ntransfer_tasks = []\n[[task]]\nname = \"mine\"\nmodel = \"" + model.string() + "\"\ndata = \"" + data.string() +
         "\"\nformat = \"tensors\"\n" + extra;
}
}  // namespace

// Issue 25: sizes beyond the limits of common/limits.hpp, integers that overflow their
// field, values accepted silently, and errors that named nothing. Every row failed before
// (it trained, ran out of memory, wrapped, hung on /dev/zero, or said something else).
TEST(BadInput, SizesOverflowsAndSilentValuesAreRefusedBeforeAnythingIsWritten) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  const std::string data = " --data-dir " + test::data_dir().string();
  const fs::path c = tmp / "configs";
  write(c / "population_max.toml", "[ga]\npopulation = 2147483647\n");
  write(c / "steps_max.toml", "steps = 9223372036854775807\n");
  write(c / "task_steps.toml", user_task_toml("steps = 9223372036854775807\n"));
  write(c / "task_std_inf.toml", user_task_toml("mean = [0.5]\nstd = [inf]\n"));
  write(c / "task_mean_nan.toml", user_task_toml("mean = [nan]\nstd = [0.25]\n"));
  write(c / "task_batch.toml", user_task_toml("batch_size = 100000000\n"));
  write_script_model(tmp / "model.pt");
  write_tensors_data(tmp / "labels.pt", 1000000000000LL);
  write(c / "task_labels.toml", user_task_toml("", tmp / "model.pt", tmp / "labels.pt"));

  const fs::path g = tmp / "genomes";
  write(g / "lr_twice.json", R"({"terms": ["GRAD"], "lr": 0.1, "log10_lr": -3})");
  write(g / "eps_twice.json", R"({"terms": ["ADAM_TERM"], "eps": 1e-8, "epsilon": 1e-6})");
  write(g / "big.json", R"({"terms": ["GRAD"])" + std::string(2 << 20, ' ') + "}");

  // MNIST with one byte of the test labels changed and the file's mtime put back, beside a
  // size + mtime stamp (.verified.json) of the intact files: the stamp matched, so it was
  // trained on.
  const fs::path flipped = tmp / "flipped-data";
  fs::create_directories(flipped / "mnist");
  nlohmann::json stamp = nlohmann::json::object();
  const auto meta = nlohmann::json::parse(read_text_file(test::data_dir() / "mnist" / "metadata.json"));
  for (const auto& e : fs::directory_iterator(test::data_dir() / "mnist")) {
    const auto name = e.path().filename().string();
    if (name == ".verified.json") continue;
    if (name == "t10k-labels-idx1-ubyte") {
      std::string bytes = read_text_file(e.path());
      bytes[300] = static_cast<char>(bytes[300] == 1 ? 2 : 1);  // another valid label
      write(flipped / "mnist" / name, bytes);
      fs::last_write_time(flipped / "mnist" / name, fs::last_write_time(e.path()));
    } else {
      fs::create_symlink(e.path(), flipped / "mnist" / name);
    }
    if (meta.at("files").contains(name))
      stamp[name] = {{"bytes", fs::file_size(e.path())},
                     {"mtime_ns", std::chrono::duration_cast<std::chrono::nanoseconds>(fs::last_write_time(e.path()).time_since_epoch()).count()},
                     {"sha256", meta.at("files").at(name).at("sha256")}};
  }
  write(flipped / "mnist" / ".verified.json", stamp.dump(1) + "\n");

  const std::vector<Case> cases = {
      // Sizes beyond a limit, named with it.
      {"train --steps 9223372036854775807 --out OUT" + data, "--steps: 9223372036854775807 exceeds the limit of 1000000000 (training steps per run)"},
      {"train --steps 99999999999999999999 --out OUT" + data, "--steps: 99999999999999999999 exceeds the limit of 1000000000"},
      {"evolve --steps 9223372036854775807 --out OUT", "exceeds the limit of 1000000000 (training steps per run)"},
      {"evolve --population 100000000 --out OUT", "--population: 100000000 exceeds the limit of 100000 (individuals per generation)"},
      {"evolve --generations 99999999999 --out OUT", "exceeds the limit of 1000000 (generations per search)"},
      {"evolve --population 1000 --generations 10000 --out OUT", "population x generations = 10000000 exceeds the limit"},
      {"evolve --workers 100000 --out OUT", "--workers: 100000 exceeds the limit of 512 (worker processes)"},
      {"train --threads 100000 --out OUT" + data, "--threads: 100000 exceeds the limit of"},
      {"train --batch-size 100000000 --out OUT" + data, "100000000 exceeds the limit of 65536 (examples per minibatch)"},
      {"export adam --format pytorch --total-steps 99999999999999999999 -o OUT", "exceeds the limit of 1000000000"},
      {"train --steps 0x10 --out OUT" + data, "--steps: must be a decimal integer, got '0x10'"},
      {"evolve --config " + (c / "population_max.toml").string() + " --out OUT", "population = 2147483647 exceeds the limit of 100000"},
      {"evolve --config " + (c / "steps_max.toml").string() + " --out OUT", "steps = 9223372036854775807 exceeds the limit of 1000000000"},
      {"evolve --config " + (c / "task_steps.toml").string() + " --out OUT", "[[task]] 'mine': steps = 9223372036854775807 exceeds the limit"},
      {"evolve --config " + (c / "task_batch.toml").string() + " --out OUT", "[[task]] 'mine': batch_size = 100000000 exceeds the limit"},
      {"train --config " + (c / "task_labels.toml").string() + " --task mine --steps 1 --out OUT",
       "'train_y' label = 1000000000000 exceeds the limit of 1048576 (classes or token values)"},
      {"genome show /dev/zero", "/dev/zero: not a regular file"},
      {"evolve --config /dev/zero --out OUT", "/dev/zero: not a regular file"},
      {"genome show " + (g / "big.json").string(), "exceeds the limit of 1048576 (bytes of a genome file)"},
      // Values accepted silently.
      {"genome show " + (g / "lr_twice.json").string(), "gives both 'log10_lr' and 'lr'"},
      {"genome show " + (g / "eps_twice.json").string(), "gives both 'eps' and 'epsilon'"},
      {"evolve --config " + (c / "task_std_inf.toml").string() + " --out OUT", "std values must be finite and > 0, got inf"},
      {"evolve --config " + (c / "task_mean_nan.toml").string() + " --out OUT", "mean values must be finite numbers, got nan"},
      {"train --task mnist --steps 2 --out OUT --data-dir " + flipped.string(), "t10k-labels-idx1-ubyte: SHA-256 mismatch"},
      // Errors that named nothing.
      {"frobnicate", "unknown command 'frobnicate'; run evoopt --help"},
      {"data frob", "unknown command 'frob'; run evoopt data --help"},
      {"bench optimizer --task imagenet --steps 1", "unknown task 'imagenet'"},
      {"bench optimizer --task jargon --steps 1", "task 'jargon' is a text"},
      {"bench train --profile " + (tmp / "missing" / "trace").string() + " --tasks mnist --models tiny --steps 1" + data,
       (tmp / "missing").string() + " does not exist"},
  };
  // The rows are independent processes, each mostly libtorch's start-up: run a few at a time.
  std::vector<std::string> args(cases.size());
  std::vector<fs::path> outs(cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    outs[i] = tmp / ("out" + std::to_string(i));
    args[i] = cases[i].args;
    if (auto pos = args[i].find("OUT"); pos != std::string::npos) args[i].replace(pos, 3, outs[i].string());
  }
  const std::size_t parallel = std::max(2u, std::thread::hardware_concurrency());
  std::vector<test::CliResult> done;
  for (std::size_t start = 0; start < cases.size(); start += parallel) {
    std::vector<std::future<test::CliResult>> batch;
    for (std::size_t i = start; i < std::min(cases.size(), start + parallel); ++i)
      batch.push_back(std::async(std::launch::async, [a = args[i]] { return test::run_cli(a); }));
    for (auto& f : batch) done.push_back(f.get());
  }
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& r = done[i];
    EXPECT_NE(r.exit_code, 0) << args[i];
    EXPECT_EQ(test::count_lines(r.err), 1) << args[i] << "\n" << r.err;
    EXPECT_NE(r.err.find(cases[i].expect), std::string::npos) << args[i] << "\nexpected: " << cases[i].expect << "\ngot: " << r.err;
    EXPECT_EQ(r.err.find("terminate"), std::string::npos) << args[i];
    EXPECT_FALSE(fs::exists(outs[i])) << args[i] << " wrote " << outs[i];
  }
  EXPECT_FALSE(fs::exists(tmp / "missing")) << "bench train --profile made the missing directory";
}

// A worker process refuses a request whose fields do not fit (a negative seed was 2^64 − 1,
// steps -5 trained the budget's steps) and says so in its reply, training nothing.
TEST(BadInput, AWorkerRefusesRequestsWhoseNumbersDoNotFit) {
  EVOOPT_REQUIRE_DATASET("mnist");
  test::TempDir tmp;
  task::TaskOptions o = test::small_mnist_options();
  train::Budget b;
  b.steps = 2;
  const nlohmann::json setup = {{"setup", {{"tasks", {"mnist"}}, {"task_options", task::to_json(o)}, {"budget", train::to_json(b)}}}};
  eval::RunRequest good;
  good.genome = genome::preset("adam");
  good.task = "mnist";
  struct Row {
    std::string key;
    nlohmann::json value;
    std::string expect;
  };
  const std::vector<Row> rows = {
      {"seed", -1, "run request: seed: expected an integer in [0, "},
      {"seed", 1.5, "run request: seed: expected an integer in [0, "},
      {"steps", -5, "run request: steps must be >= 0"},
      {"steps", 9223372036854775807LL, "run request: steps = 9223372036854775807 exceeds the limit of 1000000000"},
      {"stop_at", 18446744073709551615ULL, "run request: stop_at: expected an integer in"},
  };
  std::string input = setup.dump() + "\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    nlohmann::json req = eval::to_json(good);
    req[rows[i].key] = rows[i].value;
    input += nlohmann::json{{"id", i}, {"request", req}}.dump() + "\n";
  }
  write(tmp / "requests.jsonl", input);
  const auto r = test::run_cli("worker < " + (tmp / "requests.jsonl").string());
  std::vector<nlohmann::json> replies;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) replies.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(replies.size(), rows.size() + 1) << r.out << r.err;
  EXPECT_TRUE(replies[0].contains("ready")) << replies[0];
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& reply = replies[i + 1];
    EXPECT_FALSE(reply.contains("result")) << rows[i].key << " = " << rows[i].value << " was trained";
    EXPECT_NE(reply.value("error", std::string()).find(rows[i].expect), std::string::npos)
        << rows[i].key << " = " << rows[i].value << "\nexpected: " << rows[i].expect << "\ngot: " << reply;
  }
}
