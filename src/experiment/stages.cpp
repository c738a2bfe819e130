#include "evoopt/experiment/stages.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "evoopt/common/json_io.hpp"
#include "evoopt/common/run_dir.hpp"

namespace evoopt::experiment {
namespace {

// The work of `requests`: one run each, its steps, the images its split evaluates.
Work work_of(const std::vector<eval::RunRequest>& requests, const EvalSizes& sizes) {
  Work w;
  for (const auto& r : requests) w += request_work(sizes, r);
  return w;
}

// ------------------------------------------------------------------ final test

// The winner, once per search task and fresh test seed, on the test split.
std::vector<eval::RunRequest> final_test_requests(const ExperimentConfig& c, const genome::Genome& winner) {
  std::vector<eval::RunRequest> req;
  for (const auto& t : c.tasks)
    for (auto s : test_seeds(c.seed, t, c.final_test_seeds, c.ga.search_seeds)) req.push_back({winner, t, s, data::Split::Test, c.steps});
  return req;
}

class FinalTestStage : public Stage {
 public:
  Phase phase() const override { return Phase::FinalTest; }
  Work plan(const ExperimentConfig& c, const PlanInputs& in) const override { return work_of(final_test_requests(c, genome::Genome{}), in.sizes); }
  void run(RunContext& ctx, StageState& st) const override {
    const ExperimentConfig& c = st.config;
    const auto runs = run_all(ctx, eval::RunStage::Test, final_test_requests(c, st.search.best.genome));
    std::vector<double> overall(static_cast<std::size_t>(c.final_test_seeds), 0.0);
    std::size_t k = 0;
    for (const auto& t : c.tasks) {
      TaskTest tt;
      tt.label = st.labels[t];
      for (int i = 0; i < c.final_test_seeds; ++i, ++k) {
        tt.seeds.push_back(runs[k].seed);
        tt.accuracy.push_back(runs[k].fitness());
        overall[static_cast<std::size_t>(i)] += runs[k].fitness() / static_cast<double>(c.tasks.size());
      }
      tt.summary = summarize(tt.accuracy);
      st.final_test.per_task[t] = tt;
    }
    st.final_test.overall = summarize(overall);
  }
};

// ------------------------------------------------------------------ break-even

// `g` on the search's tasks and validation seeds with `multiple` times the steps.
std::vector<eval::RunRequest> break_even_requests(const ExperimentConfig& c, const genome::Genome& g, double multiple) {
  std::vector<eval::RunRequest> r;
  const auto steps = static_cast<std::int64_t>(std::llround(static_cast<double>(c.steps) * multiple));
  for (const auto& t : c.tasks)
    for (int s = 0; s < c.ga.search_seeds; ++s) r.push_back({g, t, ga::search_seed(c.seed, t, s), data::Split::Val, steps});
  return r;
}

// How many steps the best seed optimizer of generation 0 needs to match the winner on
// validation (at most the last multiple; it stops at the first that matches).
class BreakEvenStage : public Stage {
 public:
  Phase phase() const override { return Phase::BreakEven; }
  Work plan(const ExperimentConfig& c, const PlanInputs& in) const override {
    Work w;
    for (double m : kBreakEvenMultiples) w += work_of(break_even_requests(c, genome::Genome{}, m), in.sizes);
    return w;
  }
  void run(RunContext& ctx, StageState& st) const override {
    const ExperimentConfig& c = st.config;
    std::vector<ga::Individual> gen0;
    for (const JsonView& j : RunDirectory(st.run_dir).read(run_files::kLineage).at("individuals").elements())
      if (j.get<int>("generation") == 0 && j.get<std::string>("origin").rfind("seed:", 0) == 0) gen0.push_back(j.convert(ga::Individual::from_json));
    if (gen0.empty()) return;
    const ga::Individual& base = ga::best_of(gen0);
    BreakEven be;
    be.baseline = base.origin.substr(5);
    be.baseline_val_fitness = base.fitness;
    be.winner_val_fitness = st.search.best.fitness;
    be.improvement = be.winner_val_fitness - be.baseline_val_fitness;
    const double search_steps = static_cast<double>(st.search.steps_total);
    if (be.improvement <= 0) {
      be.verdict = "the winner is no better than " + be.baseline + " on validation: the search does not pay back";
      st.break_even = be;
      return;
    }
    for (double mult : kBreakEvenMultiples) {
      const double f = train::aggregate_fitness(run_all(ctx, eval::RunStage::BreakEven, break_even_requests(c, base.genome, mult))).overall;
      be.measured.emplace_back(mult, f);
      if (f >= be.winner_val_fitness) {
        be.multiple_needed = mult;
        break;
      }
    }
    const double per_task_runs = static_cast<double>(c.tasks.size());
    if (be.multiple_needed) {
      const double saved = (*be.multiple_needed - 1.0) * static_cast<double>(c.steps);
      const double runs_needed = std::ceil(search_steps / saved);
      be.verdict = fmt::format(
          "{} needs {:.1f}x the steps to match the winner; each future run saves {:.0f} steps, so the search ({:.0f} steps) "
          "pays back after {:.0f} training runs ({:.0f} per task)",
          be.baseline, *be.multiple_needed, saved, search_steps, runs_needed, std::ceil(runs_needed / per_task_runs));
    } else {
      constexpr double kLargest = kBreakEvenMultiples[std::size(kBreakEvenMultiples) - 1];
      const double saved = (kLargest - 1.0) * static_cast<double>(c.steps);
      be.verdict = fmt::format(
          "{} does not match the winner even with {:.0f}x the steps; each future run saves more than {:.0f} steps, so the search "
          "pays back within {:.0f} training runs",
          be.baseline, kLargest, saved, std::ceil(search_steps / saved));
    }
    st.break_even = be;
  }
};

// ------------------------------------------------------------------ comparison

// One phase of the comparison with tuned baselines (Tuning first; its choices are read by
// the others). The last one writes comparison.json and comparison.csv.
class ComparisonStage : public Stage {
 public:
  ComparisonStage(Phase phase, bool last) : phase_(phase), last_(last) {}
  Phase phase() const override { return phase_; }
  Work plan(const ExperimentConfig& c, const PlanInputs& in) const override {
    return plan_comparison_phase(phase_, c, in.sizes, in.winner, in.search_runs, /*after_final_test=*/true, in.costs);
  }
  void run(RunContext& ctx, StageState& st) const override {
    run_comparison_phase(phase_, ctx, compare_inputs(st.config, st.search.best.genome, st.search.best.fitness, st.labels, st.search.runs_total),
                         st.comparison_so_far);
    if (!last_) return;
    write_comparison(st.comparison_so_far, st.run_dir);
    st.comparison = st.comparison_so_far;
  }

 private:
  Phase phase_;
  bool last_;
};

// ------------------------------------------------------------------ search

class SearchStage : public Stage {
 public:
  explicit SearchStage(ga::GaEvents events) : events_(std::move(events)) {}
  Phase phase() const override { return Phase::Search; }
  Work plan(const ExperimentConfig& c, const PlanInputs& in) const override { return plan_search_left(c, in.sizes, {}); }
  void run(RunContext& ctx, StageState& st) const override {
    ga::GaOptions gopt = st.config.ga;
    gopt.seed = st.config.seed;
    gopt.tasks = st.config.tasks;
    ga::GeneticAlgorithm algorithm(gopt, ctx.evaluator, st.run_dir, &ctx.store);
    st.search = algorithm.run(events_, ctx.cancel);
    if (!st.search.completed) throw eval::Interrupted();
  }

 private:
  ga::GaEvents events_;
};

}  // namespace

std::unique_ptr<Stage> search_stage(ga::GaEvents events) { return std::make_unique<SearchStage>(std::move(events)); }

std::vector<std::unique_ptr<Stage>> study_stages(const ExperimentConfig& c, ga::GaEvents search_events) {
  std::vector<std::unique_ptr<Stage>> s;
  s.push_back(search_stage(std::move(search_events)));
  for (auto& stage : stages_after_search(c)) s.push_back(std::move(stage));
  return s;
}

std::vector<std::unique_ptr<Stage>> stages_after_search(const ExperimentConfig& c) {
  std::vector<std::unique_ptr<Stage>> s;
  s.push_back(std::make_unique<FinalTestStage>());
  if (c.break_even) s.push_back(std::make_unique<BreakEvenStage>());
  if (c.compare.enabled) {
    const auto phases = comparison_phases(c.compare, !c.transfer_tasks.empty());
    for (std::size_t i = 0; i < phases.size(); ++i) s.push_back(std::make_unique<ComparisonStage>(phases[i], i + 1 == phases.size()));
  }
  return s;
}

Work plan_after_search(const ExperimentConfig& c, const PlanInputs& in) {
  Work w;
  for (const auto& s : stages_after_search(c)) w += s->plan(c, in);
  return w;
}

Work plan_search_left(const ExperimentConfig& c, const EvalSizes& sizes, const std::vector<ga::GenerationRecord>& done, bool one_running) {
  const int left = std::max(0, c.ga.generations - static_cast<int>(done.size()) - (one_running ? 1 : 0));
  Work w;
  if (left == 0) return w;
  int later = left;
  if (done.empty() && !one_running) {
    w += Work{1, c.steps, sizes.val} * (static_cast<std::int64_t>(c.ga.population) * runs_per_genome(c));
    --later;
  }
  // Measured: the finished generations after the first (new runs, steps racing saved).
  double runs = 0, saved = 0;
  int n = 0;
  for (std::size_t i = 1; i < done.size(); ++i, ++n) {
    runs += done[i].evaluations;
    saved += static_cast<double>(done[i].steps_saved);
  }
  if (n > 0) {
    const auto r = static_cast<std::int64_t>(std::llround(runs / n * later));
    w += Work{r, r * c.steps - static_cast<std::int64_t>(std::llround(saved / n * later)), r * sizes.val};
  } else {
    w += Work{1, c.steps, sizes.val} * (static_cast<std::int64_t>(std::max(1, c.ga.population - c.ga.elites)) * runs_per_genome(c) * later);
  }
  return w;
}

}  // namespace evoopt::experiment
