// evoopt CLI: parses flags and calls one command (cli.hpp). No logic of its own.
#include <fmt/format.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <atomic>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <limits>
#include <map>
#include <optional>

#include "cli.hpp"
#include "evoopt/common/blas.hpp"
#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/limits.hpp"
#include "evoopt/common/run_dir.hpp"
#include "evoopt/common/schema_cli.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/eval/evaluator.hpp"
#include "evoopt/eval/mpi.hpp"
#include "evoopt/eval/process_evaluator.hpp"
#include "evoopt/experiment/bench.hpp"
#include "evoopt/experiment/study.hpp"
#include "evoopt/export/export.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/optim/genome_optimizer.hpp"
#include "evoopt/report/report.hpp"
#include "evoopt/task/task.hpp"
#include "evoopt/train/trainer.hpp"

using namespace evoopt;
using namespace evoopt::cli;

namespace {
using schema::integer_flag;
using schema::seed_value;

// An output path flag given as "" is an error, not "no output".
CLI::Validator non_empty() {
  return CLI::Validator([](std::string& value) -> std::string { return value.empty() ? "must not be empty" : std::string(); }, "PATH");
}

}  // namespace

// Training allocates and frees the same few multi-megabyte activations every step. glibc
// serves blocks above 128 KiB with fresh mmap()s by default, so each one page-faults in
// anew; keeping them in the heap (up to glibc's 32 MiB limit) and not trimming it made a
// test-split evaluation 1.35-1.7x faster on the project's 2-core machine (same results:
// only where memory comes from changes). The library leaves process-wide settings alone.
static void tune_allocator() {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
  mallopt(M_TOP_PAD, 64 * 1024 * 1024);
#endif
}

// OpenBLAS 0.3.21 runs an SSE3 kernel on CPUs it does not know (measured here: 22 GFLOP/s
// single-core sgemm instead of 99 with the AVX-512 kernel); it reads OPENBLAS_CORETYPE only
// when it loads, so evoopt sets it and starts itself again. Worker processes inherit it from
// their parent (whose BLAS they must match: the run store's fingerprint names the kernel).
static void select_blas_kernel(char** argv) {
  // Only commands that train (a worker inherits its parent's choice).
  const std::string command = argv[1] != nullptr ? argv[1] : "";
  if (command != "train" && command != "bench" && command != "evolve" && command != "resume" && command != "compare") return;
  const std::string core = better_openblas_coretype();
  if (core.empty()) return;
  setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
  execv("/proc/self/exe", argv);  // on failure: carry on with the kernel OpenBLAS chose
}

// CLI11 answers a word that names no subcommand, where one is required, with "A subcommand
// is required"; this names the word: "unknown command 'frobnicate'; run evoopt --help".
// Only the leading words are looked at (an option's value could be any word).
static std::string unknown_command(CLI::App& app, int argc, char** argv) {
  CLI::App* current = &app;
  std::string path = "evoopt";
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "--portable") continue;
    if (word.empty() || word[0] == '-') return "";
    CLI::App* next = nullptr;
    for (CLI::App* sub : current->get_subcommands([](CLI::App*) { return true; }))
      if (sub->check_name(word)) next = sub;
    if (next == nullptr) {
      if (current->get_require_subcommand_min() == 0) return "";  // a positional argument
      return "unknown command '" + word + "'; run " + path + " --help";
    }
    current = next;
    path += " " + word;
  }
  return "";
}

// Ends MPI (rank 0 first tells the other ranks to stop) however main returns.
struct MpiFinish {
  ~MpiFinish() { eval::mpi::finish(); }
};

// --portable (anywhere on the command line) or EVOOPT_PORTABLE=1: the kernels pinned to an
// AVX2 level before anything trains (common/blas.hpp); the libraries read the pins when they
// load, so evoopt starts itself again with them set. Worker processes inherit them.
static void pin_kernels_if_portable(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--portable") setenv("EVOOPT_PORTABLE", "1", 1);
  pin_portable_kernels(argv);
}

int main(int argc, char** argv) {
  try {
    pin_kernels_if_portable(argc, argv);
  } catch (const evoopt::Error& e) {
    std::fprintf(stderr, "evoopt: error: %s\n", e.what());
    return 1;
  }
  select_blas_kernel(argv);
  tune_allocator();
  MpiFinish mpi_finish;
  const bool is_worker = argc > 1 && std::string(argv[1]) == "worker";
  if (eval::mpi::launched_size() > 1 && !is_worker) {
    // Under mpirun/srun: rank 0 runs the command, every other rank serves its training runs.
    try {
      eval::mpi::start(&argc, &argv);
    } catch (const evoopt::Error& e) {
      std::fprintf(stderr, "evoopt: error: %s\n", e.what());
      return 1;
    }
    if (eval::mpi::rank() > 0) return eval::mpi::serve();
  }
  CLI::App app{"evoopt: discover neural-network optimizers by evolution"};
  app.set_version_flag("--version", std::string(EVOOPT_VERSION));
  app.require_subcommand(1);
  // Read before parsing (pin_kernels_if_portable); declared so that it parses anywhere.
  app.add_flag("--portable",
               "Pin the numeric kernels' choice to AVX2 (OpenBLAS Haswell, oneDNN AVX2, ATen avx2), so a seed's history does not "
               "depend on the kernels a CPU would pick (docs/scaling.md#the-same-result-on-another-machine)")
      ->disable_flag_override();
  app.fallthrough();
  // Bad flags get one line, like every other error.
  app.failure_message([](const CLI::App*, const CLI::Error& e) { return "evoopt: error: " + std::string(e.what()) + " (see --help)\n"; });

  DataArgs data_args;
  auto* data_cmd = app.add_subcommand("data", "Fetch and verify datasets");
  data_cmd->require_subcommand(1);
  auto* fetch = data_cmd->add_subcommand("fetch", "Resolve, verify and store datasets (data dir, mirrors, system dirs, official URLs)");
  fetch->add_option("names", data_args.names, "Datasets (default: all): mnist fashion_mnist cifar10 jargon");
  fetch->add_option("--mirror", data_args.mirrors, "Mirror directory (repeatable; EVOOPT_DATA_MIRROR adds more, ':'-separated)");
  fetch->add_option("--data-dir", data_args.data_dir, "Data directory (default: $EVOOPT_DATA_DIR or ./data)");
  fetch->add_option("--url", data_args.urls, "Download base URL tried before the official ones (repeatable; http(s):// or file://)");
  fetch->add_flag("--offline", data_args.offline, "Never download");
  fetch->add_flag("--force", data_args.force, "Fetch again even if the data dir has it");
  auto* verify = data_cmd->add_subcommand("verify", "Check stored datasets: source, counts, checksums");
  verify->add_option("names", data_args.names, "Datasets (default: all)");
  verify->add_option("--data-dir", data_args.data_dir, "Data directory (default: $EVOOPT_DATA_DIR or ./data)");

  std::string genome_which;
  auto* genome_cmd = app.add_subcommand("genome", "Inspect genomes");
  genome_cmd->require_subcommand(1);
  auto* show = genome_cmd->add_subcommand("show", "Print formula, hyperparameters, hash and canonical JSON");
  show->add_option("genome", genome_which, "Preset (sgd adam adamw rmsprop signum lion ...) or JSON file")->required();
  std::string program_out;
  auto* program_cmd =
      genome_cmd->add_subcommand("program", "The genome's update rule as a program (numbered statements); -o writes it as a genome file");
  program_cmd->add_option("genome", genome_which, "Preset or JSON file of a weighted sum of terms, or a program genome")->required();
  program_cmd->add_option("-o,--out", program_out, "Write the program genome's JSON here");

  TrainArgs train_args;
  auto add_task_flags = [&](CLI::App* c) {
    c->add_option("--model", train_args.model, "Model of image tasks named without one: tiny (CPU default), paper or mlp")->capture_default_str();
    c->add_option("--data-dir", train_args.data_dir, "Data directory (default: $EVOOPT_DATA_DIR or ./data)");
    c->add_option("--train-subset", train_args.train_subset, "Use only N training images (0 = all)")
        ->capture_default_str()
        ->transform(integer_flag(0, limits::kExamples));
    c->add_option("--val-size", train_args.val_size, "Validation images carved from the training set")
        ->capture_default_str()
        ->transform(integer_flag(1, limits::kExamples));
    c->add_option("--batch-size", train_args.batch_size, "Minibatch size (0 = the task's default: 64; jargon:transformer 16)")
        ->transform(integer_flag(0, limits::kBatchSize));
    c->add_flag("--no-augment", train_args.no_augment, "Disable CIFAR-10 random crop + flip");
  };
  auto* train_cmd = app.add_subcommand("train", "Train one model with one genome and report accuracy");
  train_cmd->add_option("--genome", train_args.genome, "Preset or JSON file")->capture_default_str();
  train_cmd
      ->add_option("--task", train_args.task,
                   "DATASET[:MODEL]: mnist, fashion_mnist, cifar10, jargon (text, its LSTM; jargon:transformer), cartpole (RL); e.g. "
                   "fashion_mnist:mlp; or a [[task]] of --config")
      ->capture_default_str();
  train_cmd->add_option("--config", train_args.config_file, "TOML file whose [[task]] tables define your own tasks");
  train_cmd->add_option("--steps", train_args.steps, "Training steps (0 = the task's default, 300)")->transform(integer_flag(0, limits::kSteps));
  train_cmd->add_option("--seed", train_args.seed, "Seed for initial weights and minibatches")->capture_default_str()->transform(seed_value());
  train_cmd->add_option("--split", train_args.split, "Evaluate on val (default) or test")->capture_default_str();
  train_cmd->add_option("--out", train_args.out, "Write the result as JSON")->check(non_empty());
  train_cmd->add_option("--threads", train_args.threads, "Intra-op threads (at most this machine's hardware threads)")
      ->capture_default_str()
      ->transform(integer_flag(1, limits::threads()));
  train_cmd->add_option("--device", train_args.device, "auto (cuda when a GPU is visible, else cpu), cpu, cuda or cuda:N")->capture_default_str();
  add_task_flags(train_cmd);

  auto* bench_cmd = app.add_subcommand("bench", "Benchmarks (speed is measured here, never in tests)");
  bench_cmd->require_subcommand(1);
  std::vector<std::string> bench_tasks = {"mnist", "fashion_mnist", "cifar10"};
  std::vector<std::string> bench_models = {"tiny", "paper"};
  auto* bench_train = bench_cmd->add_subcommand("train", "ms/step and GFLOP/s per task and model, beside single-core sgemm");
  bench_train->add_option("--tasks", bench_tasks, "Tasks")->capture_default_str();
  bench_train->add_option("--models", bench_models, "Model presets")->capture_default_str();
  bench_train->add_option("--steps", train_args.steps, "Timed steps per configuration (default 50)")->transform(integer_flag(1, limits::kSteps));
  std::vector<std::string> bench_layouts = {"channels_last"};
  bench_train->add_option("--layouts", bench_layouts, "Memory layouts to time side by side: channels_last (what training uses), contiguous (NCHW)")
      ->check(CLI::IsMember({"channels_last", "contiguous"}))
      ->capture_default_str();
  std::string bench_profile;
  bench_train
      ->add_option("--profile", bench_profile,
                   "Also record libtorch's profiler over each timed run into PREFIX.TASK.MODEL.LAYOUT.json (Chrome trace; "
                   "bench/profile_summary.py sums it per operator). Profiling slows the run: its ms/step is not comparable")
      ->check(non_empty());
  add_task_flags(bench_train);
  auto* bench_opt = bench_cmd->add_subcommand("optimizer", "GenomeOptimizer(adam) step time vs torch::optim::Adam and vs Adam as a program");
  bench_opt->add_option("--model", train_args.model, "Model preset")->capture_default_str();
  bench_opt->add_option("--task", train_args.task, "Input shape of this task")->capture_default_str();
  bench_opt->add_option("--steps", train_args.steps, "Steps per round (default 200)")->transform(integer_flag(1, limits::kSteps));
  experiment::ExperimentConfig bench_config;
  std::vector<int> bench_worker_counts = {1, std::max(2, eval::default_workers())};
  int bench_genomes = 8;
  int bench_rounds = 1;
  auto* bench_workers = bench_cmd->add_subcommand("workers", "Training runs per hour of the default search with 1 vs N worker processes");
  bench_workers->add_option("--workers", bench_worker_counts, "Worker counts, timed one after another")
      ->capture_default_str()
      ->transform(integer_flag(1, limits::kWorkers));
  bench_workers->add_option("--genomes", bench_genomes, "Genomes (seed presets, then random), each trained on every task")
      ->capture_default_str()
      ->transform(integer_flag(1, limits::kPopulation));
  bench_workers->add_option("--rounds", bench_rounds, "Repeat the worker counts this many times, interleaved; each row sums its rounds")
      ->capture_default_str()
      ->transform(integer_flag(1, limits::kRuns));
  bench_workers->add_option("--tasks", bench_config.tasks, "Tasks")->capture_default_str();
  bench_workers->add_option("--steps", bench_config.steps, "Training steps per run")
      ->capture_default_str()
      ->transform(integer_flag(1, limits::kSteps));
  bench_workers->add_option("--model", bench_config.model, "tiny, paper or mlp")->capture_default_str();
  bench_workers->add_option("--train-subset", bench_config.train_subset, "Training images per task (0 = all)")
      ->transform(integer_flag(0, limits::kExamples));
  bench_workers->add_option("--batch-size", bench_config.batch_size, "Minibatch size")
      ->capture_default_str()
      ->transform(integer_flag(1, limits::kBatchSize));
  bench_workers->add_option("--val-size", bench_config.val_size, "Validation images each run is scored on")
      ->capture_default_str()
      ->transform(integer_flag(1, limits::kExamples));
  bench_workers->add_option("--data-dir", bench_config.data_dir, "Data directory");

  EvolveArgs evolve_args;
  auto add_study_flags = [&](CLI::App* c) {
    c->add_option("--config", evolve_args.config_file, "TOML config file (flags override it)")->check(CLI::ExistingFile);
    c->add_option("--preset", evolve_args.preset, "default or quick (every size shrunk, a first look in about 2 minutes)");
    c->add_option("--out", evolve_args.out, "Run directory")->check(non_empty());
    c->add_flag("--no-transfer", evolve_args.no_transfer, "Skip the held-out (transfer) tasks");
    schema::add_flags(*c, experiment::ExperimentConfig(), study_command(c));
  };
  auto* evolve_cmd = app.add_subcommand("evolve", "Run the study: evolve, test the winner, compare with tuned baselines");
  add_study_flags(evolve_cmd);
  std::string resume_dir;
  auto* resume_cmd = app.add_subcommand("resume", "Continue an interrupted run");
  resume_cmd->add_option("run_dir", resume_dir, "Run directory")->required();
  int resume_workers = -1;
  resume_cmd->add_option("--workers", resume_workers, "Worker processes (0 = one per core; default: as the run recorded); results do not change")
      ->transform(integer_flag(0, limits::kWorkers));
  std::string compare_genome;
  int compare_seeds = 0;
  std::string status_dir;
  auto* status_cmd = app.add_subcommand("status", "Where a run stands (generation, best so far, runs done and left, ETA), from its files");
  status_cmd->add_option("run_dir", status_dir, "Run directory")->required();
  std::string report_dir, report_out;
  auto* report_cmd =
      app.add_subcommand("report", "Write RUN_DIR/report.html: the run as one self-contained page (charts, formula, family tree, comparison)");
  report_cmd->add_option("run_dir", report_dir, "Run directory (finished, interrupted or running)")->required();
  report_cmd->add_option("-o,--out", report_out, "Write the page here instead of RUN_DIR/report.html")->check(non_empty());
  auto* compare_cmd = app.add_subcommand("compare", "Compare a genome with tuned baselines on fresh test seeds");
  compare_cmd->add_option("--genome", compare_genome, "Genome JSON (e.g. a run's best_genome.json) or preset")->required();
  compare_cmd->add_option("--seeds,--test-seeds", compare_seeds, "Fresh test seeds, the same for every method (default 5)")
      ->transform(integer_flag(1, limits::kSeeds));
  add_study_flags(compare_cmd);

  std::string export_what, export_format, export_out, export_class = "EvolvedOptimizer";
  std::int64_t export_total_steps = 0;
  auto* export_cmd = app.add_subcommand("export", "Write a genome as a PyTorch optimizer, a libtorch header, or LaTeX / Markdown formulas");
  export_cmd->add_option("genome", export_what, "Preset, genome JSON file, or run directory (its best_genome.json)")->required();
  export_cmd->add_option("--format", export_format, "pytorch (a .py file), cpp (a header), latex or markdown")
      ->required()
      ->check(CLI::IsMember({"pytorch", "cpp", "latex", "markdown"}));
  export_cmd->add_option("--total-steps", export_total_steps, "The schedule's horizon, the class's default (default: the run's steps)")
      ->transform(integer_flag(1, limits::kSteps));
  export_cmd->add_option("-o,--out", export_out, "Output file (default: standard output)")->check(non_empty());
  export_cmd->add_option("--class-name", export_class, "Name of the exported class")->capture_default_str();

  auto* config_cmd = app.add_subcommand("config", "The config file's keys");
  config_cmd->require_subcommand(1);
  auto* config_reference = config_cmd->add_subcommand("reference", "Print every config key (type, default, range, flag, meaning) as Markdown");

  auto* worker_cmd = app.add_subcommand("worker", "Internal: a worker process of evolve/compare/resume (JSON lines on stdin/stdout)");
  worker_cmd->group("");  // not listed in --help

  if (const std::string unknown = unknown_command(app, argc, argv); !unknown.empty()) {
    std::fprintf(stderr, "evoopt: error: %s\n", unknown.c_str());
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (worker_cmd->parsed()) return eval::run_worker(std::cin, std::cout);
    if (fetch->parsed()) return cmd_data_fetch(data_args);
    if (verify->parsed()) return cmd_data_verify(data_args);
    if (show->parsed()) return cmd_genome_show(genome_which);
    if (program_cmd->parsed()) return cmd_genome_program(genome_which, program_out);
    if (export_cmd->parsed())
      return cmd_export(export_what, export_format, export_cmd->count("--total-steps") > 0 ? export_total_steps : 0, export_class, export_out);
    if (train_cmd->parsed()) return cmd_train(train_args);
    if (bench_train->parsed()) return cmd_bench_train(train_args, bench_tasks, bench_models, bench_layouts, bench_profile);
    if (bench_opt->parsed()) return cmd_bench_optimizer(train_args);
    if (bench_workers->parsed()) return cmd_bench_workers(bench_config, bench_worker_counts, bench_genomes, bench_rounds);
    if (evolve_cmd->parsed()) return cmd_evolve(evolve_args, evolve_cmd);
    if (resume_cmd->parsed()) return cmd_resume(resume_dir, resume_workers);
    if (status_cmd->parsed()) return cmd_status(status_dir);
    if (config_reference->parsed()) {
      std::cout << experiment::config_reference();
      return 0;
    }
    if (report_cmd->parsed()) return cmd_report(report_dir, report_out);
    if (compare_cmd->parsed()) return cmd_compare(evolve_args, compare_cmd, compare_genome, compare_seeds);
  } catch (const evoopt::Error& e) {
    std::fprintf(stderr, "evoopt: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "evoopt: error: %s\n", first_line(e.what_without_backtrace()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "evoopt: error: %s\n", first_line(e.what()).c_str());
    return 1;
  }
  return 0;
}
