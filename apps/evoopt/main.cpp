// evoopt CLI: parses flags, calls the library, prints. No logic of its own.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/optim/genome_optimizer.hpp"
#include "evoopt/task/task.hpp"
#include "evoopt/train/trainer.hpp"

namespace {
namespace fs = std::filesystem;
using namespace evoopt;

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

struct DataArgs {
  std::vector<std::string> names;
  std::vector<std::string> mirrors;
  std::string data_dir = data::default_data_dir().string();
  bool offline = false;
  bool force = false;
};

std::vector<std::string> names_or_all(const std::vector<std::string>& names) {
  return names.empty() ? data::dataset_names() : names;
}

int cmd_data_fetch(const DataArgs& a) {
  data::FetchOptions opt;
  opt.data_dir = a.data_dir;
  for (const auto& m : a.mirrors) opt.mirrors.emplace_back(m);
  for (const auto& m : data::default_mirrors()) opt.mirrors.push_back(m);
  opt.allow_download = !a.offline;
  opt.force = a.force;
  for (const auto& name : names_or_all(a.names)) {
    data::dataset_spec(name);  // reject unknown names before any work
  }
  for (const auto& name : names_or_all(a.names)) {
    auto r = data::fetch_dataset(name, opt, [](const std::string& msg) { std::cout << msg << std::endl; });
    std::cout << fmt::format("{:<14} {:>6} train {:>6} test  [{}]  from {}", r.dataset, r.train_count, r.test_count, r.label, r.source) << std::endl;
  }
  return 0;
}

int cmd_data_verify(const DataArgs& a) {
  bool all_ok = true;
  std::cout << fmt::format("{:<14} {:<7} {:>7} {:>7}  {:<32} {}", "dataset", "status", "train", "test", "label", "source / problem") << "\n";
  for (const auto& name : names_or_all(a.names)) {
    auto r = data::verify_dataset(name, a.data_dir);
    all_ok = all_ok && r.ok;
    std::cout << fmt::format("{:<14} {:<7} {:>7} {:>7}  {:<32} {}", r.dataset, r.ok ? "ok" : "BAD", r.train_count, r.test_count,
                             r.label.empty() ? "-" : r.label, r.ok ? r.source : r.status)
              << "\n";
  }
  return all_ok ? 0 : 1;
}

int cmd_genome_show(const std::string& which) {
  const genome::Genome g = genome::load_genome(which);
  g.validate(genome::Bounds::kHardMaxTerms);
  const genome::Genome c = g.canonical();
  std::cout << c.formula() << "\n" << c.hyperparameters() << "\n";
  std::cout << "hash: " << g.hash_hex() << "\n";
  std::cout << c.to_json().dump(2) << "\n";
  return 0;
}

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
  int threads = 1;
};

task::TaskOptions task_options(const TrainArgs& a) {
  task::TaskOptions o;
  o.data_dir = a.data_dir;
  o.model = task::model_preset_from_name(a.model);
  o.split.train_subset = a.train_subset;
  o.split.val_size = a.val_size;
  o.batch_size = a.batch_size;
  if (a.no_augment) o.augment = 0;
  return o;
}

int cmd_train(const TrainArgs& a) {
  const genome::Genome g = genome::load_genome(a.genome);
  g.validate(genome::Bounds::kHardMaxTerms);
  if (a.split != "val" && a.split != "test") throw Error("--split must be val or test, got '" + a.split + "'");
  if (a.threads < 1) throw Error("--threads must be >= 1");
  at::set_num_threads(a.threads);
  const task::Task t = task::load_task(a.task, task_options(a));
  train::Budget b;
  b.steps = a.steps;
  b.threads = a.threads;
  b.eval_split = a.split == "test" ? data::Split::Test : data::Split::Val;
  const std::int64_t steps = a.steps > 0 ? a.steps : t.default_steps;
  b.log_every = std::max<std::int64_t>(1, steps / 10);
  std::cout << fmt::format("task {} [{}], model {}, {} steps, batch {}, seed {}", t.name, t.label(), a.model, steps, t.batch_size, a.seed) << "\n";
  std::cout << "genome " << g.formula() << "\n       " << g.hyperparameters() << std::endl;
  auto r = train::train_and_evaluate(g, t, a.seed, b, [](std::int64_t step, double loss, double smoothed) {
    std::cout << fmt::format("step {:>6}  loss {:.4f}  smoothed {:.4f}", step, loss, smoothed) << std::endl;
  });
  if (r.diverged) {
    std::cout << fmt::format("DIVERGED at step {} ({}); fitness -1", r.steps_done + 1, r.divergence_reason) << "\n";
  } else {
    std::cout << fmt::format("{} accuracy: {:.4f}  [{}]", r.split, r.accuracy, r.task_label) << "\n";
  }
  std::cout << fmt::format("wall time {:.2f} s, {:.1f} steps/s", r.seconds, static_cast<double>(r.steps_done) / std::max(r.seconds, 1e-9)) << "\n";
  if (!a.out.empty()) {
    nlohmann::json j = train::to_json(r);
    j["genome"] = g.to_json();
    j["model"] = a.model;
    write_file_atomic(a.out, j.dump(2) + "\n");
    std::cout << "wrote " << a.out << "\n";
  }
  return 0;
}

double sgemm_gflops() {
  const std::int64_t n = 256;
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  auto c = torch::mm(a, b);
  int reps = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double secs = 0;
  while (secs < 0.5) {
    c = torch::mm(a, b);
    ++reps;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return 2.0 * n * n * n * reps / secs / 1e9;
}

int cmd_bench_train(const TrainArgs& a, const std::vector<std::string>& tasks, const std::vector<std::string>& models) {
  at::set_num_threads(1);
  const double peak = sgemm_gflops();
  std::cout << fmt::format("reference: single-core sgemm (torch::mm 256x256, 1 thread, this run): {:.1f} GFLOP/s", peak) << "\n";
  if (const char* core = std::getenv("OPENBLAS_CORETYPE")) std::cout << "  (OPENBLAS_CORETYPE=" << core << " is set: BLAS runs that kernel)\n";
  std::cout << fmt::format("{:<14} {:<6} {:>6} {:>9} {:>10} {:>9} {:>9}  {}", "task", "model", "batch", "ms/step", "GFLOP/step", "GFLOP/s", "/ sgemm", "data") << "\n";
  const genome::Genome g = genome::preset("adam");
  for (const auto& tn : tasks)
    for (const auto& mn : models) {
      TrainArgs ta = a;
      ta.model = mn;
      ta.task = tn;
      const task::Task t = task::load_task(tn, task_options(ta));
      train::Budget b;
      b.steps = a.steps > 0 ? a.steps : 50;
      b.log_every = b.steps;
      train::train_and_evaluate(g, t, 0, train::Budget{5, 5});  // warm-up
      const auto t0 = std::chrono::steady_clock::now();
      auto r = train::train_and_evaluate(g, t, 1, b);
      (void)r;
      // Time the training steps only: subtract one validation pass measured alone.
      const auto t1 = std::chrono::steady_clock::now();
      auto model = task::make_model(t.model, t.input(), 0);
      const auto t2 = std::chrono::steady_clock::now();
      train::evaluate_accuracy(model, t, data::Split::Val, 1000);
      const auto t3 = std::chrono::steady_clock::now();
      const double secs = std::chrono::duration<double>(t1 - t0).count() - std::chrono::duration<double>(t3 - t2).count();
      const double ms = 1000.0 * secs / static_cast<double>(b.steps);
      const double gflop = 3.0 * task::forward_flops(t.model, t.input()) * static_cast<double>(t.batch_size) / 1e9;
      const double rate = gflop / (ms / 1000.0);
      std::cout << fmt::format("{:<14} {:<6} {:>6} {:>9.2f} {:>10.4f} {:>9.2f} {:>8.2f}x  {}", tn, mn, t.batch_size, ms, gflop, rate, rate / peak, t.label())
                << std::endl;
    }
  std::cout << "GFLOP/step = 3 x analytic forward FLOPs (conv + linear) x batch (forward + backward).\n"
               "Convolutions run on oneDNN, which can beat the BLAS sgemm reference; '/ sgemm' > 1 means exactly that.\n";
  return 0;
}

int cmd_bench_optimizer(const TrainArgs& a) {
  // GenomeOptimizer(adam) vs torch::optim::Adam: step() alone, same model and gradients, interleaved.
  at::set_num_threads(1);
  const task::InputShape in = a.task == "cifar10" ? task::InputShape{3, 32, 32, 10} : task::InputShape{1, 28, 28, 10};
  auto model_a = task::make_model(task::model_preset_from_name(a.model), in, 0);
  auto model_b = task::make_model(task::model_preset_from_name(a.model), in, 0);
  for (auto* m : {&model_a, &model_b})
    for (auto& p : (*m)->parameters()) p.mutable_grad() = torch::randn_like(p);
  optim::GenomeOptimizer ga(model_a->parameters(), optim::GenomeOptimizerOptions(genome::preset("adam")));
  torch::optim::Adam tb(model_b->parameters(), torch::optim::AdamOptions(1e-3));
  const int rounds = 20, steps = a.steps > 0 ? static_cast<int>(a.steps) : 200;
  double ta = 0, tbt = 0;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) ga.step();
    auto t1 = std::chrono::steady_clock::now();
    for (int s = 0; s < steps; ++s) tb.step();
    auto t2 = std::chrono::steady_clock::now();
    ta += std::chrono::duration<double>(t1 - t0).count();
    tbt += std::chrono::duration<double>(t2 - t1).count();
  }
  std::int64_t nparams = 0;
  for (auto& p : model_a->parameters()) nparams += p.numel();
  const double n = static_cast<double>(rounds) * steps;
  std::cout << fmt::format("model {} ({} parameters), {} steps each, interleaved in {} rounds, 1 thread", a.model, nparams, steps, rounds) << "\n";
  std::cout << fmt::format("GenomeOptimizer(adam)  {:8.2f} us/step", 1e6 * ta / n) << "\n";
  std::cout << fmt::format("torch::optim::Adam     {:8.2f} us/step", 1e6 * tbt / n) << "\n";
  std::cout << fmt::format("ratio                  {:8.3f}x (target <= 1.2x)", ta / tbt) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"evoopt: discover neural-network optimizers by evolution"};
  app.set_version_flag("--version", std::string(EVOOPT_VERSION));
  app.require_subcommand(1);

  DataArgs data_args;
  auto* data_cmd = app.add_subcommand("data", "Fetch and verify datasets");
  data_cmd->require_subcommand(1);
  auto* fetch = data_cmd->add_subcommand("fetch", "Resolve, verify and store datasets (data dir, mirrors, system dirs, official URLs)");
  fetch->add_option("names", data_args.names, "Datasets (default: all): mnist fashion_mnist cifar10");
  fetch->add_option("--mirror", data_args.mirrors, "Mirror directory (repeatable; EVOOPT_DATA_MIRROR adds more, ':'-separated)");
  fetch->add_option("--data-dir", data_args.data_dir, "Data directory (default: $EVOOPT_DATA_DIR or ./data)");
  fetch->add_flag("--offline", data_args.offline, "Never download");
  fetch->add_flag("--force", data_args.force, "Fetch again even if the data dir has it");
  auto* verify = data_cmd->add_subcommand("verify", "Check stored datasets: source, counts, checksums");
  verify->add_option("names", data_args.names, "Datasets (default: all)");
  verify->add_option("--data-dir", data_args.data_dir, "Data directory (default: $EVOOPT_DATA_DIR or ./data)");

  std::string genome_which;
  auto* genome_cmd = app.add_subcommand("genome", "Inspect genomes");
  genome_cmd->require_subcommand(1);
  auto* show = genome_cmd->add_subcommand("show", "Print formula, hyperparameters, hash and canonical JSON");
  show->add_option("genome", genome_which, "Preset (sgd adam adamw rmsprop signum lion-like) or JSON file")->required();

  TrainArgs train_args;
  auto add_task_flags = [&](CLI::App* c) {
    c->add_option("--model", train_args.model, "Model preset: tiny (CPU default) or paper")->capture_default_str();
    c->add_option("--data-dir", train_args.data_dir, "Data directory (default: $EVOOPT_DATA_DIR or ./data)");
    c->add_option("--train-subset", train_args.train_subset, "Use only N training images (0 = all)")->capture_default_str();
    c->add_option("--val-size", train_args.val_size, "Validation images carved from the training set")->capture_default_str();
    c->add_option("--batch-size", train_args.batch_size, "Minibatch size (0 = the task's default, 64)");
    c->add_flag("--no-augment", train_args.no_augment, "Disable CIFAR-10 random crop + flip");
  };
  auto* train_cmd = app.add_subcommand("train", "Train one model with one genome and report accuracy");
  train_cmd->add_option("--genome", train_args.genome, "Preset or JSON file")->capture_default_str();
  train_cmd->add_option("--task", train_args.task, "mnist, fashion_mnist or cifar10")->capture_default_str();
  train_cmd->add_option("--steps", train_args.steps, "Training steps (0 = the task's default, 300)");
  train_cmd->add_option("--seed", train_args.seed, "Seed for initial weights and minibatches")->capture_default_str();
  train_cmd->add_option("--split", train_args.split, "Evaluate on val (default) or test")->capture_default_str();
  train_cmd->add_option("--out", train_args.out, "Write the result as JSON");
  train_cmd->add_option("--threads", train_args.threads, "Intra-op threads")->capture_default_str();
  add_task_flags(train_cmd);

  auto* bench_cmd = app.add_subcommand("bench", "Benchmarks (speed is measured here, never in tests)");
  bench_cmd->require_subcommand(1);
  std::vector<std::string> bench_tasks = {"mnist", "fashion_mnist", "cifar10"};
  std::vector<std::string> bench_models = {"tiny", "paper"};
  auto* bench_train = bench_cmd->add_subcommand("train", "ms/step and GFLOP/s per task and model, beside single-core sgemm");
  bench_train->add_option("--tasks", bench_tasks, "Tasks")->capture_default_str();
  bench_train->add_option("--models", bench_models, "Model presets")->capture_default_str();
  bench_train->add_option("--steps", train_args.steps, "Timed steps per configuration (default 50)");
  add_task_flags(bench_train);
  auto* bench_opt = bench_cmd->add_subcommand("optimizer", "GenomeOptimizer(adam) step time vs torch::optim::Adam");
  bench_opt->add_option("--model", train_args.model, "Model preset")->capture_default_str();
  bench_opt->add_option("--task", train_args.task, "Input shape of this task")->capture_default_str();
  bench_opt->add_option("--steps", train_args.steps, "Steps per round (default 200)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (fetch->parsed()) return cmd_data_fetch(data_args);
    if (verify->parsed()) return cmd_data_verify(data_args);
    if (show->parsed()) return cmd_genome_show(genome_which);
    if (train_cmd->parsed()) return cmd_train(train_args);
    if (bench_train->parsed()) return cmd_bench_train(train_args, bench_tasks, bench_models);
    if (bench_opt->parsed()) return cmd_bench_optimizer(train_args);
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
