// evoopt CLI: parses flags, calls the library, prints. No logic of its own.
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

namespace {
namespace fs = std::filesystem;
using namespace evoopt;

using schema::integer_flag;
using schema::seed_value;

// An output path flag given as "" is an error, not "no output".
CLI::Validator non_empty() {
  return CLI::Validator([](std::string& value) -> std::string { return value.empty() ? "must not be empty" : std::string(); }, "PATH");
}

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

struct DataArgs {
  std::vector<std::string> names;
  std::vector<std::string> mirrors;
  std::vector<std::string> urls;
  std::string data_dir = data::default_data_dir().string();
  bool offline = false;
  bool force = false;
};

std::vector<std::string> names_or_all(const std::vector<std::string>& names) { return names.empty() ? data::dataset_names() : names; }

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
  std::string device = "auto";
  int threads = 1;
  std::string config_file;  // its [[task]] tables
};

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
  return 0;
}

// ------------------------------------------------------------ evolve / resume / compare

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) {
  g_interrupted = true;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C stops at once (journal and checkpoint stay consistent)
}

// Progress: one updating bar on a terminal, plain lines otherwise (about every quarter of a
// batch), each with throughput and ETAs; a line when a phase finishes.
class Progress {
 public:
  Progress() : tty_(::isatty(STDOUT_FILENO) != 0) {}
  void update(const experiment::ProgressReport& r) {
    if (r.total <= 0) return;
    const bool new_batch = r.stage != stage_ || r.generation != generation_ || r.done < done_;
    stage_ = r.stage;
    generation_ = r.generation;
    done_ = r.done;
    const bool search = r.stage == eval::RunStage::Search;
    const std::string what = search ? "training runs" : std::string(eval::run_stage_name(r.stage)) + " runs";
    std::string rates;
    if (r.runs_per_second > 0) rates += fmt::format("{:.2g} runs/s", r.runs_per_second);
    if (r.batch_eta_seconds)
      rates +=
          fmt::format("{}{} ETA {}", rates.empty() ? "" : ", ", search ? "generation" : "batch", experiment::format_duration(*r.batch_eta_seconds));
    if (r.study_eta_seconds) rates += fmt::format("{}study ETA {}", rates.empty() ? "" : ", ", experiment::format_duration(*r.study_eta_seconds));
    if (tty_) {
      const int width = 30, filled = width * std::min(r.done, r.total) / r.total;
      std::cout << fmt::format("\r  {} [{}{}] {}/{}  {}\x1b[K", what, std::string(static_cast<std::size_t>(filled), '#'),
                               std::string(static_cast<std::size_t>(width - filled), '.'), r.done, r.total, rates)
                << std::flush;
      if (r.done >= r.total) std::cout << "\n";
    } else {
      const int quarter = r.total >= 4 ? 4 * r.done / r.total : r.done;
      if (new_batch) last_plain_ = -1;
      if (quarter == last_plain_) return;
      std::cout << fmt::format("Evaluated {}/{} {}{}", r.done, r.total, what, rates.empty() ? "" : " (" + rates + ")") << std::endl;
      last_plain_ = quarter;
    }
  }
  void phase_finished(const experiment::PhaseReport& p) {
    std::string name = experiment::phase_name(p.phase);
    if (!name.empty()) name[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
    std::cout << fmt::format("{} finished: {} runs trained in {}", name, p.runs, experiment::format_duration(p.seconds)) << std::endl;
  }

 private:
  bool tty_;
  std::optional<eval::RunStage> stage_;
  int generation_ = -1, done_ = 0;
  int last_plain_ = -1;
};

std::string fmt_stat(const experiment::Summary& s) { return fmt::format("{:.4f} ± {:.4f}", s.mean, s.stddev); }

std::string fmt_diff(const experiment::PairedDifference& d) {
  return fmt::format("{:+.4f} [{:+.4f}, {:+.4f}]{}", d.mean, d.ci_low, d.ci_high, d.significant ? " *" : "");
}

void print_comparison(const experiment::Comparison& c) {
  const bool seed_protocol = c.protocol == experiment::Protocol::Seed;
  std::cout << "\nBaselines tuned on validation ("
            << (seed_protocol ? "SEED protocol: lr {1e-4, 1e-3, 1e-2} x weight decay {1e-5, 1e-4, 1e-3}, constant lr, no clipping"
                              : "strong protocol: lr x weight decay x {constant, the winner's schedule + clipping}, successive halving, "
                                "chosen at the full budget")
            << "):\n";
  for (const auto& b : c.baselines)
    std::cout << fmt::format("  {:<10} lr {:.3g}, weight decay {:g}, {} (val fitness {:.4f}; {} runs)", b.name, b.best().lr, b.best().wd,
                             b.best().regime.describe(), b.best().val_fitness, b.runs)
              << "\n";
  if (c.random_search)
    std::cout << fmt::format("  {} ({} runs): {} (val fitness {:.4f})", c.random_search->name, c.random_search_runs,
                             c.random_search->best().genome.hyperparameters(), c.random_search->best().val_fitness)
              << "\n";
  std::cout << "\nTest accuracy (test split, " << c.seeds.begin()->second.size()
            << " fresh seeds, same seeds for every method): mean ± std; (Δ) = evolved − method, paired per seed, * = 95% CI excludes 0\n";
  const std::string suffix = seed_protocol ? " [seed protocol]" : "";
  auto print_rows = [&](const std::vector<const experiment::MethodResult*>& methods, const experiment::MethodResult& ev,
                        const std::vector<std::string>& tasks) {
    std::string head = fmt::format("{:<36}", "method");
    for (const auto& t : tasks) head += fmt::format(" {:<30}", c.labels.at(t));
    head += fmt::format(" {:<30}", "overall");
    std::cout << head << "\n";
    for (const auto* m : methods) {
      std::string name = m->name + (m->kind == experiment::MethodKind::Baseline ? suffix : "");
      std::string row = fmt::format("{:<36}", name);
      auto cell = [&](const std::vector<double>& v, const std::vector<double>& e) {
        std::string s = fmt_stat(experiment::summarize(v));
        if (m != &ev) {
          const auto d = experiment::paired_difference(e, v);
          s += fmt::format(" ({:+.3f}{})", d.mean, d.significant ? "*" : "");
        }
        return fmt::format(" {:<30}", s);
      };
      for (const auto& t : tasks) row += cell(m->test.at(t), ev.test.at(t));
      row += cell(m->overall, ev.overall);
      std::cout << row << "\n";
    }
  };
  for (const auto& h : c.horizons) {
    std::cout << fmt::format("\n{} steps{}\n", h.steps, &h == &c.horizons.front() ? " (search horizon)" : " (longer horizon)");
    std::vector<const experiment::MethodResult*> ms;
    for (const auto& m : h.methods) ms.push_back(&m);
    print_rows(ms, h.methods.front(), c.tasks);
  }
  if (c.attribution) {
    const auto& a = *c.attribution;
    std::cout << fmt::format("\nGain attribution against the strongest tuned baseline B = {} ({} steps, test split, paired per seed):\n", a.baseline,
                             a.steps)
              << fmt::format("  A1 = the evolved rule in {}'s setting (schedule, clipping, weight decay), lr re-tuned on validation: lr {:.3g}\n",
                             a.baseline, a.rule_in_baseline_setting.best().lr)
              << fmt::format("  A2 = {}'s rule in the evolved setting, lr re-tuned on validation: lr {:.3g}\n", a.baseline,
                             a.baseline_in_evolved_setting.best().lr);
    print_rows({&a.a1, &a.a2}, c.horizons.front().methods.front(), c.tasks);
    for (const auto& r : c.attribution_rows()) std::cout << fmt::format("  {:<36} {:<28} {}", r.part, r.how, fmt_diff(r.diff)) << "\n";
  }
  if (!c.transfer.empty()) {
    std::cout << "\nTransfer: tasks the search never saw (every method with the hyperparameters chosen on the search tasks, none re-tuned; "
                 "test split, same fresh seeds; next-token tasks: fitness = exp(-loss) = 1/perplexity)\n";
    for (const auto& h : c.transfer) {
      std::cout << fmt::format("\n{} steps{}, held-out tasks\n", h.steps, &h == &c.transfer.front() ? " (search horizon)" : " (longer horizon)");
      std::vector<const experiment::MethodResult*> ms;
      for (const auto& m : h.methods) ms.push_back(&m);
      print_rows(ms, h.methods.front(), c.transfer_tasks);
      for (const auto& t : c.transfer_tasks) {
        if (!c.next_token_tasks.count(t)) continue;
        std::string line = "  perplexity on " + c.labels.at(t) + " (1/fitness, mean over seeds):";
        for (const auto& m : h.methods) {
          double sum = 0;
          int n = 0;
          for (double f : m.test.at(t))
            if (f > 0) sum += 1.0 / f, ++n;
          line += fmt::format(" {} {}", m.name, n > 0 ? fmt::format("{:.2f}", sum / n) : std::string("-"));
          if (&m != &h.methods.back()) line += ",";
        }
        std::cout << line << "\n";
      }
    }
  }
  if (seed_protocol)
    std::cout << "\nNote: the seed protocol gives baselines no schedule, no clipping and a coarse lr grid; use the default (strong) "
                 "protocol before claiming a gain.\n";
}

// The study flags that are not one config field each; the rest come from
// ExperimentConfig's schema (schema::add_flags).
struct EvolveArgs {
  std::string config_file;
  std::string preset;
  std::string out;
  bool no_transfer = false;
};

unsigned study_command(const CLI::App* cmd) { return cmd->get_name() == "compare" ? schema::kCompare : schema::kEvolve; }

experiment::ExperimentConfig build_config(const EvolveArgs& a, CLI::App* cmd) {
  experiment::ExperimentConfig c;
  if (!a.preset.empty()) c.apply_preset(a.preset);
  if (!a.config_file.empty()) {
    const std::string preset = c.preset;
    c.load_toml(a.config_file);
    if (!a.preset.empty() && c.preset != preset) c.apply_preset(a.preset);  // an explicit --preset wins over the file's
  }
  // A flag the user gave is applied as given (and validated below), even when it is 0.
  schema::apply_flags(c, *cmd, study_command(cmd));
  if (a.no_transfer) c.transfer_tasks.clear();
  if (const CLI::Option* o = cmd->get_option_no_throw("--racing-continue"); o != nullptr && o->count() > 0)
    c.ga.racing.enabled = true;  // --racing-continue implies --racing
  c.validate();
  return c;
}

int report_study(const experiment::StudyResult& r) {
  const auto& dir = r.run_dir.string();
  if (!r.completed) {
    std::cout << "\nInterrupted. Completed runs are in " << (RunDirectory(dir) / run_files::kJournal).string() << ".\nResume with: evoopt resume "
              << dir << std::endl;
    return 130;
  }
  const auto& best = r.ga.best;
  std::cout << "\nWinner (best validation fitness " << fmt::format("{:.4f}", best.fitness) << ", generation " << best.generation << "):\n  "
            << best.genome.formula() << "\n  " << best.genome.hyperparameters() << "\n";
  std::cout << "Final test of the winner (test split, touched once, " << r.final_test.per_task.begin()->second.seeds.size() << " fresh seeds):\n";
  for (const auto& [t, tt] : r.final_test.per_task) std::cout << fmt::format("  {:<26} {}", tt.label, fmt_stat(tt.summary)) << "\n";
  std::cout << fmt::format("  {:<26} {}", "overall", fmt_stat(r.final_test.overall)) << "\n";
  std::cout
      << fmt::format(
             "Cost: {} search training runs ({} steps, {:.0f} s of single-core training), {} further runs ({} steps); this process and its workers: "
             "{:.0f} s wall, {:.0f} s CPU",
             r.cost.search_runs, r.cost.search_steps, r.cost.search_train_seconds, r.cost.other_runs, r.cost.other_steps, r.cost.wall_seconds,
             r.cost.cpu_seconds)
      << "\n";
  if (r.break_even) std::cout << "Break-even: " << r.break_even->verdict << "\n";
  if (r.comparison) print_comparison(*r.comparison);
  std::cout << "\nOutputs in " << dir << ": config.json history.csv history.json lineage.json best_genome.json final_test.json summary.json"
            << (r.comparison ? " comparison.json comparison.csv" : "") << " report.html\n";
  return 0;
}

experiment::StudyEvents study_events(Progress& progress) {
  experiment::StudyEvents ev;
  ev.message = [](const std::string& m) { std::cout << m << std::endl; };
  ev.ga.generation_started = [](int g, int n) { std::cout << fmt::format("Generation {}/{}", g + 1, n) << std::endl; };
  ev.ga.generation_finished = [](const ga::GenerationRecord& rec, const ga::Individual& best) {
    std::string per;
    for (const auto& [t, v] : best.per_task) per += fmt::format("{}{} {:.2f}", per.empty() ? "" : ", ", t, v);
    const std::string saved = rec.steps_saved != 0 ? fmt::format(", racing saved {} steps", rec.steps_saved) : "";
    std::cout << fmt::format("Best fitness: {:.4f} (val_acc: {})  mean {:.4f}, distinct {:.2f}, gene distance {:.3f}, {} new runs{}, {:.1f} s",
                             rec.best, per, rec.mean, rec.diversity, rec.gene_distance, rec.evaluations, saved, rec.seconds)
              << std::endl;
  };
  ev.progress = [&progress](const experiment::ProgressReport& r) { progress.update(r); };
  ev.phase_finished = [&progress](const experiment::PhaseReport& p) { progress.phase_finished(p); };
  return ev;
}

int cmd_evolve(const EvolveArgs& a, CLI::App* cmd) {
  const experiment::ExperimentConfig c = build_config(a, cmd);
  const std::string out = a.out.empty() ? fmt::format("runs/evolve-seed{}", c.seed) : a.out;
  std::cout << fmt::format("evoopt evolve: preset {}, population {}, generations {}, seed {} -> {}", c.preset, c.ga.population, c.ga.generations,
                           c.seed, out)
            << std::endl;
  Progress progress;
  std::signal(SIGINT, on_sigint);
  auto r = experiment::run_study(c, out, /*resume=*/false, report::with_live_report(study_events(progress)), &g_interrupted);
  return report_study(r);
}

int cmd_resume(const std::string& dir, int workers) {
  Progress progress;
  std::cout << "evoopt resume " << dir << std::endl;
  std::signal(SIGINT, on_sigint);
  // The stored config is read by run_study itself; of this one only `workers` counts (-1: as recorded).
  experiment::ExperimentConfig c;
  c.workers = workers;
  auto r = experiment::run_study(c, dir, /*resume=*/true, report::with_live_report(study_events(progress)), &g_interrupted);
  return report_study(r);
}

int cmd_status(const std::string& dir) {
  const auto s = experiment::read_run_status(dir);
  std::cout << fmt::format("{}: {}{}", dir, experiment::run_state_name(s.state),
                           s.in_use                                    ? " (an evoopt process is working on it now)"
                           : s.state == experiment::RunState::Complete ? ""
                                                                       : " (no process is working on it: evoopt resume " + dir + " continues it)")
            << "\n";
  std::string tasks;
  for (const auto& t : s.tasks) tasks += (tasks.empty() ? "" : ", ") + t;
  std::cout << fmt::format("  preset {}, model {}, tasks {}", s.preset, s.model, tasks) << "\n";
  std::cout << fmt::format("  generations finished: {}/{}", s.generations_done, s.generations) << "\n";
  if (s.best_fitness)
    std::cout << fmt::format("  best validation fitness so far: {:.4f} (individual {}, generation {})", *s.best_fitness, s.best_id, s.best_generation)
              << "\n";
  if (s.final_test) std::cout << fmt::format("  winner's final test fitness: {:.4f}", *s.final_test) << "\n";
  std::int64_t runs = 0, steps = 0;
  std::string by;
  for (const auto& [stage, w] : s.done_by_stage) {
    runs += w.runs;
    steps += w.steps;
    by += fmt::format("{}{} {}", by.empty() ? "" : ", ", eval::run_stage_name(stage), w.runs);
  }
  std::cout << fmt::format("  runs done: {} ({} steps{}{})", runs, steps, by.empty() ? "" : "; ", by) << "\n";
  if (s.state != experiment::RunState::Complete) {
    std::cout << fmt::format("  runs left: about {} ({} steps; an estimate from the config and the generations so far)", s.left.runs, s.left.steps)
              << "\n";
    if (s.eta_seconds)
      std::cout << fmt::format("  ETA: about {} with {} worker{} (at the journal's mean seconds per step)",
                               experiment::format_duration(*s.eta_seconds), s.workers, s.workers == 1 ? "" : "s")
                << "\n";
  }
  if (s.seconds_since_last_run)
    std::cout << fmt::format("  last run recorded {} ago", experiment::format_duration(*s.seconds_since_last_run)) << "\n";
  return 0;
}

int cmd_report(const std::string& dir, const std::string& out) {
  if (out.empty()) {
    std::cout << "Wrote " << report::write_report(dir).string() << std::endl;
    return 0;
  }
  const std::string html = report::render_report(dir);
  write_file_atomic(out, html);
  std::cout << "Wrote " << out << std::endl;
  return 0;
}

int cmd_compare(const EvolveArgs& a, CLI::App* cmd, const std::string& genome_file, int test_seeds) {
  experiment::ExperimentConfig c = build_config(a, cmd);
  if (test_seeds > 0) c.compare.test_seeds = test_seeds;
  c.compare.validate();
  const genome::Genome g = genome::load_genome(genome_file);
  g.validate(genome::Bounds::kHardMaxTerms);
  const std::string out = a.out.empty() ? "runs/compare-" + g.hash_hex() : a.out;
  std::cout << fmt::format("evoopt compare: {} vs {} tuned baselines, {} steps, {} test seeds -> {}", g.formula(), c.compare.baselines.size(),
                           c.steps, c.compare.test_seeds, out)
            << std::endl;
  Progress progress;
  std::signal(SIGINT, on_sigint);
  const auto cmp = experiment::run_compare(c, g, out, study_events(progress), &g_interrupted);
  if (!cmp) {
    std::cout << "\nInterrupted; completed runs are in " << (RunDirectory(out) / run_files::kJournal).string() << "; the same command continues."
              << std::endl;
    return 130;
  }
  print_comparison(*cmp);
  std::cout << "\nOutputs in " << out << ": comparison.json comparison.csv" << std::endl;
  return 0;
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

int main(int argc, char** argv) {
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
  show->add_option("genome", genome_which, "Preset (sgd adam adamw rmsprop signum lion) or JSON file")->required();

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
    c->add_option("--batch-size", train_args.batch_size, "Minibatch size (0 = the task's default, 64)")
        ->transform(integer_flag(0, limits::kBatchSize));
    c->add_flag("--no-augment", train_args.no_augment, "Disable CIFAR-10 random crop + flip");
  };
  auto* train_cmd = app.add_subcommand("train", "Train one model with one genome and report accuracy");
  train_cmd->add_option("--genome", train_args.genome, "Preset or JSON file")->capture_default_str();
  train_cmd
      ->add_option("--task", train_args.task,
                   "DATASET[:MODEL]: mnist, fashion_mnist, cifar10, jargon (text); e.g. fashion_mnist:mlp; or a [[task]] of --config")
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
  auto* bench_opt = bench_cmd->add_subcommand("optimizer", "GenomeOptimizer(adam) step time vs torch::optim::Adam");
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
