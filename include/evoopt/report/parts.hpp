#pragma once
// The parts report.html is made of (report.hpp has the page itself), each usable and
// testable on its own:
//   - text: esc, and latex_to_mathml (declared in report.hpp)        src/report/mathml.cpp
//   - SVG charts from plain series and bars                          src/report/charts.cpp
//   - the run directory's files read into the structs below         src/report/run.cpp
//   - the page's HTML sections, made from a Run alone                src/report/sections.cpp
// Every chart is an <svg class="chart" data-chart="ID" data-points="N"> holding N marks of
// class "pt" (report.hpp); a chart without a finite point is a note saying "no data yet".
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "evoopt/eval/run_store.hpp"
#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/experiment/progress.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/report/report.hpp"
#include "evoopt/train/trainer.hpp"

namespace evoopt::report {

// ------------------------------------------------------------------ text

// Text for HTML and MathML content and attributes: < > & " escaped.
std::string esc(const std::string& t);

// ------------------------------------------------------------------ charts

// The colour of series (or method, or origin) number i, cycling through a fixed palette.
std::string color(std::size_t i);

// About five round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi);

// A tick value as the axes write it ("{:g}", with -0 and rounding noise shown as 0).
std::string tick_label(double v);

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
  bool dashed = false;
  bool marks = true;  // a mark per point (class "pt"); false: the line only (dense curves)
};

// A shaded band between two curves (e.g. mean ± std).
struct Band {
  std::string name;
  std::vector<double> x, lo, hi;
};

// Lines over a shared x axis, with the bands behind them and a legend. Non-finite y values
// are left out. `yrange` fixes the y axis (values outside are drawn at its edge); without it
// the axis covers the data with 5% padding. `integer_x` labels whole x ticks only.
std::string line_chart(const std::string& id, const std::string& title, const std::string& xlabel, const std::string& ylabel,
                       const std::vector<Series>& series, const std::vector<Band>& bands = {}, std::optional<std::pair<double, double>> yrange = {},
                       bool integer_x = false);

// Grouped bars with error bars: value ± half-width per (group, method).
struct BarValue {
  double value = 0, half = 0;
  bool present = false;
};

// One group of bars per `groups` entry, one bar per `methods` entry within it; v[group][method]
// (absent values draw no bar). The y axis stays within [0, 1].
std::string bar_chart(const std::string& id, const std::string& title, const std::string& ylabel, const std::vector<std::string>& groups,
                      const std::vector<std::string>& methods, const std::vector<std::vector<BarValue>>& v);

// ------------------------------------------------------------------ the run, as read

// best_genome.json.
struct Best {
  genome::Genome genome;  // canonical
  std::string hash;
  std::uint64_t id = 0;
  int generation = 0;
  double validation_fitness = 0;
  std::map<std::string, double> validation_per_task;
};

// summary.json.
struct FinalTestTask {
  std::vector<double> accuracy;
  double mean = 0, std = 0;
};
struct BreakEven {
  std::string baseline, verdict;
  double baseline_val_fitness = 0, winner_val_fitness = 0;
  std::vector<std::pair<double, double>> measured;  // steps multiple, the baseline's validation fitness
};
struct Summary {
  std::map<std::string, FinalTestTask> final_test;
  double overall_mean = 0, overall_std = 0;
  std::int64_t search_runs = 0, search_steps = 0, other_runs = 0, other_steps = 0;
  double search_train_seconds = 0, wall_seconds = 0, cpu_seconds = 0;
  std::optional<BreakEven> break_even;
};

// comparison.json.
struct Paired {  // evolved − this, per test seed
  double mean = 0, ci_low = 0, ci_high = 0;
  bool significant = false;
};
struct Stats {
  double mean = 0, std = 0;
  std::vector<double> values;
  std::optional<Paired> evolved_minus_this;
  std::optional<double> perplexity;  // next-token tasks with a seed that did not diverge: the mean
};
struct Method {
  std::string name, hash;
  experiment::MethodKind kind = experiment::MethodKind::Evolved;
  double val_fitness = 0;
  std::map<std::string, Stats> test;  // per task
  Stats overall;
};
struct Horizon {
  std::int64_t steps = 0;
  std::vector<Method> methods;  // the evolved genome first
};
struct Baseline {
  std::string name, regime_text;
  double lr = 0, weight_decay = 0, val_fitness = 0;
  std::int64_t training_runs = 0;
};
struct AttributionRow {
  std::string part, difference;
  Paired paired;
};
struct Comparison {
  experiment::Protocol protocol = experiment::Protocol::Strong;
  std::vector<Baseline> baselines;
  std::vector<Horizon> horizons;
  std::optional<std::vector<std::string>> transfer_tasks;
  std::vector<Horizon> transfer;
  std::optional<std::string> attribution_baseline;
  std::int64_t attribution_steps = 0;
  std::vector<AttributionRow> attribution;
  // Quasirandom protocol: the evolved genome's own tuning, and every method tuned per workload.
  std::optional<Baseline> evolved_tuning;
  std::optional<std::vector<std::string>> workload_tasks;
  std::vector<Horizon> per_workload;                       // one horizon: the search's
  std::optional<experiment::TimeToTarget> time_to_target;  // without the mean curves
};

// Everything the page shows. A number the writer leaves null (the mean of no values, the
// interval of one value) is NaN; a per-seed value that is null is −1, like a diverged run.
struct Run {
  std::filesystem::path dir;
  std::vector<std::string> tasks;
  std::vector<std::string> transfer_tasks;                          // held-out (the comparison's transfer block)
  std::map<std::string, std::string> labels;                        // task → display label (with the lossy mirror named)
  std::map<std::string, std::pair<std::string, std::string>> data;  // task → (source, label) from config.json's provenance
  std::string evoopt_version;
  std::vector<ga::GenerationRecord> history;
  std::vector<ga::Individual> lineage;
  std::optional<Best> best;
  std::optional<Summary> summary;
  std::optional<Comparison> comparison;
  std::vector<std::pair<eval::RunKey, train::RunResult>> journal;  // read when the comparison's loss curves need it
  experiment::RunStatus status;
  experiment::ExperimentConfig ex;  // config.json as the study reads it
};

// Every file the page shows, read and checked before any of the page is made: a damaged
// file ends with one evoopt::Error naming it and the key, and files a run has not written
// yet are left empty in the Run.
Run read_run(const std::filesystem::path& dir);

// ------------------------------------------------------------------ sections
//
// Each returns a piece of the page's HTML made from `r` alone; one whose data the run has
// not written yet is a note or nothing. `steps` is the training steps per run.

std::string section_search(const Run& r);                      // fitness, per-task, term and diversity charts; the table
std::string section_winner(const Run& r, std::int64_t steps);  // formula, hyperparameters, schedule
std::string section_tree(const Run& r);                        // the winner's ancestors
std::string section_final(const Run& r);                       // final test, cost, break-even
std::string section_comparison(const Run& r, std::int64_t steps);
std::string section_provenance(const Run& r);  // the data of every task

}  // namespace evoopt::report
