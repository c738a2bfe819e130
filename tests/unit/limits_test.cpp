// Limits on sizes and checked number reads (issue 25): the library's side of what
// bad_input_integration_test checks through the CLI.
#include <sys/stat.h>

#include <fstream>
#include <limits>

#include <gtest/gtest.h>
#include <zlib.h>
#include <nlohmann/json.hpp>

#include "evoopt/common/checked_json.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/limits.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/task/user_task.hpp"
#include "evoopt/train/trainer.hpp"
#include "test_support.hpp"

using namespace evoopt;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
using test::error_of;
#define EXPECT_ERROR(expr, text)                                            \
  do {                                                                      \
    const std::string message = error_of([&] { (void)(expr); });            \
    EXPECT_NE(message.find(text), std::string::npos) << "got: " << message; \
  } while (0)
}  // namespace

TEST(CheckedJson, IntegersMustFitTheFieldExactly) {
  EXPECT_EQ(json_as<int>(json(2147483647), "x"), 2147483647);
  EXPECT_EQ(json_as<int>(json(-2147483648LL), "x"), std::numeric_limits<int>::min());
  EXPECT_EQ(json_as<std::uint64_t>(json(18446744073709551615ULL), "x"), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(json_as<std::int64_t>(json(-5), "x"), -5);
  // nlohmann's get<int>() gives 1, 2^64 − 1, 2 and 0 for these.
  EXPECT_ERROR(json_as<int>(json(4294967297LL), "config.json: workers"),
               "config.json: workers: expected an integer in [-2147483648, 2147483647], got an integer 4294967297");
  EXPECT_ERROR(json_as<std::uint64_t>(json(-1), "seed"), "seed: expected an integer in [0, 18446744073709551615], got an integer -1");
  EXPECT_ERROR(json_as<int>(json(2.5), "n"), "n: expected an integer");
  EXPECT_ERROR(json_as<std::int64_t>(json(18446744073709551615ULL), "n"), "got an integer 18446744073709551615");
  EXPECT_ERROR(json_as<int>(json(true), "n"), "n: expected an integer");
  EXPECT_ERROR(json_as<bool>(json(1), "b"), "b: expected true or false, got an integer 1");
  EXPECT_ERROR(json_as<std::string>(json(1), "s"), "s: expected a string, got an integer 1");
  EXPECT_ERROR(json_as<std::vector<int>>(json::parse("[1, 4294967296]"), "v"), "v: /1: expected an integer");
  EXPECT_ERROR(json_at<int>(json::object(), "steps", "run request: "), "run request: steps: missing");
  EXPECT_EQ(json_value<int>(json::object(), "steps", 7, ""), 7);
}

TEST(Limits, ConfigValidationNamesEachLimit) {
  using experiment::ExperimentConfig;
  auto with = [](auto change) {
    ExperimentConfig c;
    change(c);
    return c;
  };
  EXPECT_NO_THROW(ExperimentConfig().validate());
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.steps = limits::kSteps.max + 1; }).validate(),
               "steps = 1000000001 exceeds the limit of 1000000000 (training steps per run)");
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.steps = 600'000'000; }).validate(), "steps x compare.horizon_multiple = 1200000000 exceeds");
  EXPECT_NO_THROW(with([](ExperimentConfig& c) { c.steps = limits::kSteps.max, c.compare.enabled = false; }).validate());
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.ga.population = 2147483647; }).validate(), "population = 2147483647 exceeds the limit of 100000");
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.ga.generations = 2000000; }).validate(), "generations = 2000000 exceeds");
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.ga.population = 100000, c.ga.generations = 11; }).validate(),
               "population x generations = 1100000 exceeds the limit of 1000000");
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.workers = 513; }).validate(), "workers = 513 exceeds the limit of 512 (worker processes)");
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.batch_size = 100000000; }).validate(), "batch size = 100000000 exceeds the limit of 65536");
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.ga.search_seeds = 10001; }).validate(), "search seeds = 10001 exceeds");
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.final_test_seeds = 10001; }).validate(), "final test seeds = 10001 exceeds");
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.compare.test_seeds = 10001; }).validate(), "compare: test seeds = 10001 exceeds");
  EXPECT_ERROR(with([](ExperimentConfig& c) { c.compare.equal_budget_runs = 10000001; }).validate(), "equal-budget runs = 10000001 exceeds");
}

TEST(Limits, BudgetAndUserTaskSizes) {
  train::Budget b;
  b.steps = std::numeric_limits<std::int64_t>::max();
  EXPECT_ERROR(b.validate(), "steps = 9223372036854775807 exceeds the limit of 1000000000");
  b = train::Budget();
  b.threads = static_cast<int>(limits::threads().max) + 1;
  EXPECT_ERROR(b.validate(), "threads = " + std::to_string(b.threads) + " exceeds the limit of " + std::to_string(limits::threads().max));
  b = train::Budget();
  b.stop_at = limits::kSteps.max + 1;
  EXPECT_ERROR(b.validate(), "stop_at = 1000000001 exceeds");

  task::UserTaskSpec u;
  u.name = "mine";
  u.model = "/nonexistent/model.pt";
  u.data = "/nonexistent/data.pt";
  u.format = "tensors";
  auto spec = [&](auto change) {
    task::UserTaskSpec s = u;
    change(s);
    return s;
  };
  EXPECT_ERROR(u.validate(), "model file /nonexistent/model.pt does not exist");  // every field in range: the file check comes last
  EXPECT_ERROR(spec([](task::UserTaskSpec& s) { s.steps = std::numeric_limits<std::int64_t>::max(); }).validate(),
               "[[task]] 'mine': steps = 9223372036854775807 exceeds the limit of 1000000000");
  EXPECT_ERROR(spec([](task::UserTaskSpec& s) { s.seq_len = 1 << 20; }).validate(), "seq_len = 1048576 exceeds");
  EXPECT_ERROR(spec([](task::UserTaskSpec& s) { s.input = {3, 1 << 20, 1 << 20}; }).validate(), "exceeds the limit of 16777216 (values per image");
  for (double bad : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN(), 0.0, -1.0})
    EXPECT_ERROR(spec([&](task::UserTaskSpec& s) { s.mean = {0.5}, s.stddev = {bad}; }).validate(), "std values must be finite and > 0");
  for (double bad : {std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()})
    EXPECT_ERROR(spec([&](task::UserTaskSpec& s) { s.mean = {bad}, s.stddev = {0.25}; }).validate(), "mean values must be finite");
}

TEST(Limits, WholeFileReadsTakeRegularFilesUpToTheirLimit) {
  test::TempDir tmp;
  EXPECT_ERROR(read_text_file("/dev/zero"), "/dev/zero: not a regular file");
  EXPECT_ERROR(read_text_file(tmp.path()), "not a regular file (a directory)");
  ASSERT_EQ(::mkfifo((tmp / "fifo").c_str(), 0600), 0);
  EXPECT_ERROR(read_text_file(tmp / "fifo"), "fifo: not a regular file");  // and does not block waiting for a writer
  EXPECT_ERROR(read_text_file(tmp / "absent"), "absent: file not found");

  std::ofstream(tmp / "big.json") << std::string(limits::kGenomeFileBytes.max + 1, ' ');
  EXPECT_ERROR(read_text_file(tmp / "big.json", limits::kGenomeFileBytes), "size = 1048577 exceeds the limit of 1048576 (bytes of a genome file)");
  EXPECT_EQ(read_text_file(tmp / "big.json").size(), static_cast<std::size_t>(limits::kGenomeFileBytes.max + 1));
  EXPECT_ERROR(genome::load_genome((tmp / "big.json").string()), "exceeds the limit of 1048576 (bytes of a genome file)");

  // A gzip stream that inflates beyond the limit stops there (a 2 MiB stream of zeros
  // against a 1 MiB limit), read from a file or from memory.
  const std::string zeros(2 << 20, '\0');
  gzFile gz = gzopen((tmp / "bomb.gz").c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  gzwrite(gz, zeros.data(), static_cast<unsigned>(zeros.size()));
  gzclose(gz);
  const limits::Limit small{1 << 20, "bytes of a data file"};
  EXPECT_ERROR(read_file_maybe_gz(tmp / "bomb.gz", small), "bomb.gz: decompressed size = more than 1048576 exceeds the limit of 1048576");
  EXPECT_EQ(read_file_maybe_gz(tmp / "bomb.gz").size(), zeros.size());
  EXPECT_ERROR(gunzip(read_binary_file(tmp / "bomb.gz"), "download", small), "download: decompressed size");
}

TEST(Limits, GenomeJsonRefusesTwoSpellingsOfOneField) {
  const json base = json::parse(R"({"terms": ["ADAM_TERM"]})");
  const std::vector<std::pair<std::string, std::string>> pairs = {{"log10_lr", "lr"},
                                                                  {"lr", "learning_rate"},
                                                                  {"log10_eps", "eps"},
                                                                  {"eps", "epsilon"},
                                                                  {"log10_weight_decay", "weight_decay"},
                                                                  {"bias_correction", "use_bias_correction"},
                                                                  {"schedule", "lr_schedule"},
                                                                  {"use_warmup", "warmup"},
                                                                  {"cosine_decay", "cosine"},
                                                                  {"clip_norm", "grad_clip"}};
  auto value_of = [](const std::string& key) -> json {
    if (key == "log10_lr" || key == "log10_eps" || key == "log10_weight_decay") return -3.0;
    if (key == "schedule" || key == "lr_schedule") return "cosine";
    if (key == "bias_correction" || key == "use_bias_correction" || key == "use_warmup" || key == "warmup" || key == "cosine_decay" ||
        key == "cosine")
      return true;
    if (key == "clip_norm" || key == "grad_clip") return 1.0;
    return 0.001;
  };
  for (const auto& [a, b] : pairs) {
    json j = base;
    j[a] = value_of(a);
    EXPECT_NO_THROW(genome::Genome::from_json(j)) << a;
    j[b] = value_of(b);
    EXPECT_ERROR(genome::Genome::from_json(j), "and '" + b + "', two spellings of one field");
  }
  json many = base;
  many["terms"] = json::array();
  for (int i = 0; i < 100000; ++i) many["terms"].push_back("GRAD");
  EXPECT_ERROR(genome::Genome::from_json(many), "genome field terms: count = 100000 exceeds the limit of 16 (terms per genome)");
}
