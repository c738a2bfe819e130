// evoopt data, genome, train, export and bench: each calls the library and prints.
#include <fmt/format.h>
#include <torch/torch.h>
#include <CLI/CLI.hpp>
#include <algorithm>

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

namespace evoopt::cli {

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

namespace {
std::vector<std::string> names_or_all(const std::vector<std::string>& names) { return names.empty() ? data::dataset_names() : names; }
}  // namespace

int cmd_data_fetch(const DataArgs& a) {
  data::FetchOptions opt;
  opt.data_dir = a.data_dir;
  for (const auto& m : a.mirrors) opt.mirrors.emplace_back(m);
  for (const auto& m : data::default_mirrors()) opt.mirrors.push_back(m);
  opt.allow_download = !a.offline;
  if (a.offline && !a.urls.empty()) throw Error("--url and --offline contradict each other");
  opt.url_bases = a.urls;
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

namespace {
// A program genome's statements, numbered; with a second program, each under its parameters.
void print_programs(const genome::Genome& g) {
  const auto print = [](const genome::Program& p) {
    const auto lines = p.lines();
    for (std::size_t i = 0; i < lines.size(); ++i) std::cout << fmt::format("{:>3}  {}\n", i + 1, lines[i]);
  };
  if (g.has_program_rest()) std::cout << "program (hidden weight matrices, η):\n";
  print(g.program);
  if (!g.has_program_rest()) return;
  std::cout << "program_rest (biases, normalisation, first layer, head; η_aux):\n";
  print(g.program_rest);
}
}  // namespace

int cmd_genome_show(const std::string& which) {
  const genome::Genome g = genome::load_genome(which);
  g.validate(genome::Bounds::kHardMaxTerms);
  const genome::Genome c = g.canonical();
  std::cout << c.formula() << "\n" << c.hyperparameters() << "\n";
  std::cout << "hash: " << g.hash_hex() << "\n";
  print_programs(c);
  std::cout << c.to_json().dump(2) << "\n";
  return 0;
}

int cmd_genome_program(const std::string& which, const std::string& out) {
  const auto names = genome::program_preset_names();
  genome::Genome g = std::find(names.begin(), names.end(), which) != names.end() ? genome::program_preset(which) : genome::load_genome(which);
  g.validate(genome::Bounds::kHardMaxTerms);
  if (!g.has_rule()) g = genome::program_preset(which);  // a hand-made method without a program form: the error lists those with one
  if (!g.is_program()) g = genome::program_genome(g);
  print_programs(g);
  std::cout << g.hyperparameters() << "\n";
  if (!out.empty()) {
    genome::save_genome(g, out);
    std::cout << "Wrote " << out << "\n";
  }
  return 0;
}

namespace {
task::TaskOptions task_options(const TrainArgs& a) {
  task::TaskOptions o;
  if (!a.config_file.empty()) {
    experiment::ExperimentConfig c;
    c.load_toml(a.config_file);
    for (const auto& u : c.user_tasks) u.validate();
    o.user_tasks = c.user_tasks;
    o.study_steps = a.steps;  // --steps is the horizon a task's own steps stand for; 0: the task's own
  }
  o.data_dir = a.data_dir;
  o.model = task::model_preset_from_name(a.model);
  o.split.train_subset = a.train_subset;
  o.split.val_size = a.val_size;
  o.batch_size = a.batch_size;
  if (a.no_augment) o.augment = 0;
  return o;
}
}  // namespace

int cmd_train(const TrainArgs& a) {
  const genome::Genome g = genome::load_genome(a.genome);
  g.validate(genome::Bounds::kHardMaxTerms);
  if (a.split != "val" && a.split != "test") throw Error("--split must be val or test, got '" + a.split + "'");
  train::Budget b;
  b.steps = a.steps;
  b.threads = a.threads;
  b.eval_split = a.split == "test" ? data::Split::Test : data::Split::Val;
  b.device = train::resolve_device(a.device);
  b.validate();  // before any data is loaded
  at::set_num_threads(a.threads);
  const task::Task t = task::load_task(a.task, task_options(a));
  const std::int64_t steps = a.steps > 0 ? std::max<std::int64_t>(1, std::llround(static_cast<double>(a.steps) * t.step_scale)) : t.default_steps;
  b.log_every = std::max<std::int64_t>(1, steps / 10);
  std::cout << fmt::format("task {} [{}], model {}, {} steps, batch {}, seed {}, device {}", t.name, t.label(), task::model_preset_name(t.model),
                           steps, t.batch_size, a.seed, b.device)
            << "\n";
  std::cout << "genome " << g.formula() << "\n       " << g.hyperparameters() << std::endl;
  auto r = train::train_and_evaluate(g, t, a.seed, b, [](std::int64_t step, double loss, double smoothed) {
    std::cout << fmt::format("step {:>6}  loss {:.4f}  smoothed {:.4f}", step, loss, smoothed) << std::endl;
  });
  if (r.diverged) {
    std::cout << fmt::format("DIVERGED at step {} ({}); fitness -1", r.steps_done + 1, r.divergence_reason) << "\n";
  } else {
    if (t.kind == task::TaskKind::NextToken)
      std::cout << fmt::format("{} loss {:.4f} nats per token, perplexity {:.3f}, fitness exp(-loss) {:.4f}  [{}]", r.split, r.eval_loss,
                               std::exp(r.eval_loss), r.accuracy, r.task_label)
                << "\n";
    else if (t.kind == task::TaskKind::Reinforcement)
      std::cout << fmt::format("{} score {:.4f} (mean return / 500 over {} greedy episodes)  [{}]", r.split, r.accuracy, t.examples(b.eval_split),
                               r.task_label)
                << "\n";
    else
      std::cout << fmt::format("{} accuracy: {:.4f}  [{}]", r.split, r.accuracy, r.task_label) << "\n";
  }
  std::cout << fmt::format("wall time {:.2f} s, {:.1f} steps/s", r.seconds, static_cast<double>(r.steps_done) / std::max(r.seconds, 1e-9)) << "\n";
  if (!a.out.empty()) {
    nlohmann::json j = train::to_json(r);
    j["genome"] = g.to_json();
    j["model"] = task::model_preset_name(t.model);
    write_file_atomic(a.out, j.dump(2) + "\n");
    std::cout << "wrote " << a.out << "\n";
  }
  return 0;
}

int cmd_export(const std::string& what, const std::string& format, std::int64_t total_steps, const std::string& class_name, const std::string& out) {
  const exports::ExportSource src = exports::load_export_source(what);
  exports::ExportOptions o;
  o.total_steps = total_steps > 0 ? total_steps : src.steps;
  o.provenance = src.provenance;
  o.class_name = class_name;
  const std::string text = exports::export_genome(src.genome, exports::format_from_name(format), o);
  if (out.empty()) {
    std::cout << text;
  } else {
    write_file_atomic(out, text);
    std::cerr << "wrote " << out << "\n";
  }
  return 0;
}

int cmd_bench_train(const TrainArgs& a, const std::vector<std::string>& tasks, const std::vector<std::string>& models,
                    const std::vector<std::string>& layouts, const std::string& profile) {
  if (!profile.empty()) experiment::check_profile_prefix(profile);
  at::set_num_threads(1);
  set_blas_threads(1);
  const double peak = experiment::sgemm_gflops();
  std::cout << "BLAS: " << blas_identity() << "\n";
  std::cout << fmt::format("reference: single-core sgemm (torch::mm 256x256, 1 thread, this run): {:.1f} GFLOP/s", peak) << "\n";
  if (const char* core = std::getenv("OPENBLAS_CORETYPE"))
    std::cout << "  (OPENBLAS_CORETYPE=" << core << ": set by you, or by evoopt where OpenBLAS chose a weaker kernel than this CPU runs)\n";
  std::cout << fmt::format("{:<14} {:<6} {:<13} {:>6} {:>9} {:>10} {:>9} {:>9} {:>9}  {}", "task", "model", "layout", "batch", "ms/step",
                           "GFLOP/step", "GFLOP/s", "/ sgemm", "eval ms", "data")
            << "\n";
  std::vector<experiment::TrainBenchRow> done;
  experiment::bench_train(task_options(a), tasks, models, layouts, a.steps, profile, [&](const experiment::TrainBenchRow& r) {
    const double rate = r.gflop_per_step / (r.ms_per_step / 1000.0);
    std::cout << fmt::format("{:<14} {:<6} {:<13} {:>6} {:>9.2f} {:>10.4f} {:>9.2f} {:>8.2f}x {:>9.0f}  {}", r.task, r.model, r.layout, r.batch,
                             r.ms_per_step, r.gflop_per_step, rate, rate / peak, r.eval_ms, r.label)
              << std::endl;
    done.push_back(r);
    // Two layouts: after a task and model's second one, their step-time ratio.
    if (layouts.size() == 2 && done.size() % 2 == 0)
      std::cout << fmt::format("{:<14} {:<6} step time {} / {}: {:.2f}x", r.task, r.model, layouts[1], layouts[0],
                               r.ms_per_step / done[done.size() - 2].ms_per_step)
                << std::endl;
  });
  std::cout << "GFLOP/step = 3 x analytic forward FLOPs (conv + linear) x batch (forward + backward; the first layer needs no input\n"
               "gradient, so this slightly overstates the work). 'eval ms' = scoring the validation split after training.\n"
               "Convolutions run on oneDNN, which can beat the BLAS sgemm reference; '/ sgemm' > 1 means exactly that.\n";
  return 0;
}

int cmd_bench_workers(const experiment::ExperimentConfig& config, const std::vector<int>& counts, int genomes, int rounds) {
  std::cout << fmt::format("{} genomes x {} tasks = {} training runs of {} steps ({} model), timed {} per worker count, one after another{}", genomes,
                           config.tasks.size(), static_cast<std::size_t>(genomes) * config.tasks.size(), config.steps, config.model,
                           rounds == 1 ? std::string("once") : std::to_string(rounds) + " times", rounds == 1 ? "" : ", interleaved")
            << std::endl;
  std::cout << "BLAS: " << blas_identity() << "\n";
  const auto rows = experiment::bench_workers(config, counts, genomes, rounds);
  std::cout << fmt::format("{:<17} {:>7} {:>8} {:>8} {:>10} {:>8}  {}", "evaluator", "workers", "start s", "train s", "runs/hour", "speedup",
                           "results")
            << "\n";
  for (const auto& r : rows)
    std::cout << fmt::format("{:<17} {:>7} {:>8.1f} {:>8.1f} {:>10.0f} {:>7.2f}x  {}", r.kind, r.workers, r.startup_seconds, r.seconds,
                             r.runs_per_hour, r.speedup, r.identical ? "identical to the first row" : "DIFFERENT from the first row")
              << "\n";
  std::cout << "speedup = runs/hour relative to the first row. 1 worker trains in the evoopt process itself; more start that many\n"
               "worker processes (start-up: each loads its tasks); under mpirun a last row trains on the MPI ranks.\n";
  return 0;
}

int cmd_bench_optimizer(const TrainArgs& a) {
  const auto r = experiment::bench_optimizer(a.task, a.model, static_cast<int>(a.steps));
  std::cout << fmt::format("model {} ({} parameters), {} steps each, interleaved in {} rounds, 1 thread", a.model, r.parameters, r.steps, r.rounds)
            << "\n";
  std::cout << fmt::format("GenomeOptimizer(adam)  {:8.2f} us/step", r.genome_us) << "\n";
  std::cout << fmt::format("torch::optim::Adam     {:8.2f} us/step", r.torch_us) << "\n";
  std::cout << fmt::format("ratio                  {:8.3f}x (target <= 1.2x)", r.genome_us / r.torch_us) << "\n";
  std::cout << fmt::format("adam as a program      {:8.2f} us/step, {:.3f}x GenomeOptimizer(adam) (target <= 1.5x)", r.program_us,
                           r.program_us / r.genome_us)
            << "\n";
  return 0;
}

}  // namespace evoopt::cli
