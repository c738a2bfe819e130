#pragma once
// The CLI's commands: main.cpp parses the flags into these arguments and calls one command;
// commands.cpp holds data, genome, train, export and bench, study_commands.cpp evolve, resume,
// status, report and compare. A command calls the library and prints what it returns.
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "evoopt/data/sources.hpp"
#include "evoopt/experiment/config.hpp"

namespace evoopt::cli {

struct DataArgs {
  std::vector<std::string> names;
  std::vector<std::string> mirrors;
  std::vector<std::string> urls;
  std::string data_dir = data::default_data_dir().string();
  bool offline = false;
  bool force = false;
};

struct TrainArgs {
  std::string genome = "adam";
  std::string task = "mnist";
  std::int64_t steps = 0;
  std::uint64_t seed = 0;
  std::string model = "tiny";
  std::string split = "val";
  std::string out;
  std::string data_dir = data::default_data_dir().string();
  std::int64_t train_subset = 0;
  std::int64_t val_size = 5000;
  std::int64_t batch_size = 0;
  bool no_augment = false;
  std::string device = "auto";
  int threads = 1;
  std::string config_file;  // its [[task]] tables
};

// The study flags that are not one config field each; the rest come from
// ExperimentConfig's schema (schema::add_flags).
struct EvolveArgs {
  std::string config_file;
  std::string preset;
  std::string out;
  bool no_transfer = false;
};

// The first line of an error message (libtorch's carry a backtrace after it).
std::string first_line(const std::string& s);
// The schema's command bit of `evolve` or `compare` (which of its flags a command takes).
unsigned study_command(const CLI::App* cmd);

int cmd_data_fetch(const DataArgs& a);
int cmd_data_verify(const DataArgs& a);
int cmd_genome_show(const std::string& which);
int cmd_genome_program(const std::string& which, const std::string& out);
int cmd_train(const TrainArgs& a);
int cmd_export(const std::string& what, const std::string& format, std::int64_t total_steps, const std::string& class_name, const std::string& out);
int cmd_bench_train(const TrainArgs& a, const std::vector<std::string>& tasks, const std::vector<std::string>& models,
                    const std::vector<std::string>& layouts, const std::string& profile);
int cmd_bench_workers(const experiment::ExperimentConfig& config, const std::vector<int>& counts, int genomes, int rounds);
int cmd_bench_optimizer(const TrainArgs& a);

int cmd_evolve(const EvolveArgs& a, CLI::App* cmd);
int cmd_resume(const std::string& dir, int workers);
int cmd_status(const std::string& dir);
int cmd_report(const std::string& dir, const std::string& out);
int cmd_compare(const EvolveArgs& a, CLI::App* cmd, const std::string& genome_file, int test_seeds);

}  // namespace evoopt::cli
