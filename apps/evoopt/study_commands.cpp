// evoopt evolve, resume, status, report and compare: each calls the library and prints.
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
#include <set>

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

unsigned study_command(const CLI::App* cmd) { return cmd->get_name() == "compare" ? schema::kCompare : schema::kEvolve; }

// ------------------------------------------------------------ evolve / resume / compare

namespace {

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

// Steps to the target per method and workload, and the performance profile.
void print_time_to_target(const experiment::Comparison& c) {
  const experiment::TimeToTarget& tt = *c.time_to_target;
  std::cout << fmt::format(
      "\nTime to target ({} steps, validation score every {} steps, mean over the fresh seeds; target = {}'s score at the full budget; "
      "- = not reached), and the performance profile: share of workloads reached within tau x the fastest method's steps\n",
      tt.steps, tt.every, tt.target_method);
  std::string head = fmt::format("{:<36}", "method");
  for (const auto& w : tt.workloads) head += fmt::format(" {:>14.14}", c.labels.count(w) ? c.labels.at(w) : w);
  std::cout << head << "   tau=1  tau=1.5 tau=2  tau=4\n";
  std::string target = fmt::format("{:<36}", "target (validation score)");
  for (const auto& w : tt.workloads) target += fmt::format(" {:>14.4f}", tt.target.at(w));
  std::cout << target << "\n";
  for (const auto& m : tt.methods) {
    std::string row = fmt::format("{:<36}", m);
    for (const auto& w : tt.workloads) {
      const auto& t = tt.reached.at(m).at(w);
      row += t ? fmt::format(" {:>14}", *t) : fmt::format(" {:>14}", "-");
    }
    for (double tau : {1.0, 1.5, 2.0, 4.0}) row += fmt::format("  {:.2f}", tt.profile(m, tau));
    std::cout << row << "\n";
  }
}

// Once per method and task: which parameters an optimizer that splits them (Muon) put where.
void print_parameter_splits(const experiment::Comparison& c) {
  std::set<std::string> printed;
  for (const auto* hs : {&c.horizons, &c.transfer}) {
    if (hs->empty()) continue;
    for (const auto& m : hs->front().methods)
      for (const auto& [task, split] : m.parameter_split)
        if (printed.insert(m.name + "/" + task).second)
          std::cout << fmt::format("  {} on {}: {}", m.name, c.labels.count(task) ? c.labels.at(task) : task, split) << "\n";
  }
}

void print_comparison(const experiment::Comparison& c) {
  const bool seed_protocol = c.protocol == experiment::Protocol::Seed;
  const bool quasirandom = c.protocol == experiment::Protocol::Quasirandom;
  std::cout << "\nBaselines tuned on validation ("
            << (seed_protocol ? "SEED protocol: lr {1e-4, 1e-3, 1e-2} x weight decay {1e-5, 1e-4, 1e-3}, constant lr, no clipping"
                : quasirandom ? fmt::format("quasirandom protocol: {} quasi-random trials from each method's search space, the evolved genome's too, "
                                            "each at the full budget, chosen on the search tasks' validation",
                                            c.evolved_tuning ? c.evolved_tuning->sweep.size() : 0)
                              : "strong protocol: lr x weight decay x {constant, the winner's schedule + clipping}, successive halving, "
                                "chosen at the full budget")
            << "):\n";
  if (c.evolved_tuning)
    std::cout << fmt::format("  {:<10} {} (val fitness {:.4f}; {} runs)", "evolved", c.evolved_tuning->best().genome.hyperparameters(),
                             c.evolved_tuning->best().val_fitness, c.evolved_tuning->runs)
              << "\n";
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
  print_parameter_splits(c);
  if (!c.per_workload.empty()) {
    std::cout << fmt::format(
        "\nTuned per workload ({} steps): every method's trials chosen on each workload's own validation split, held-out "
        "tasks included; test split, same fresh seeds\n",
        c.horizons.front().steps);
    std::vector<const experiment::MethodResult*> ms;
    for (const auto& m : c.per_workload) ms.push_back(&m);
    print_rows(ms, c.per_workload.front(), c.workload_tasks);
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
  if (c.time_to_target) print_time_to_target(c);
  if (seed_protocol)
    std::cout << "\nNote: the seed protocol gives baselines no schedule, no clipping and a coarse lr grid; use the default (strong) "
                 "protocol before claiming a gain.\n";
}

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
    std::string saved = rec.steps_saved != 0 ? fmt::format(", racing saved {} steps", rec.steps_saved) : "";
    if (rec.rejected != 0) saved += fmt::format(", {} programs rejected before training", rec.rejected);
    std::cout << fmt::format("Best fitness: {:.4f} (val_acc: {})  mean {:.4f}, distinct {:.2f}, gene distance {:.3f}, {} new runs{}, {:.1f} s",
                             rec.best, per, rec.mean, rec.diversity, rec.gene_distance, rec.evaluations, saved, rec.seconds)
              << std::endl;
  };
  ev.progress = [&progress](const experiment::ProgressReport& r) { progress.update(r); };
  ev.phase_finished = [&progress](const experiment::PhaseReport& p) { progress.phase_finished(p); };
  return ev;
}

}  // namespace

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

}  // namespace evoopt::cli
