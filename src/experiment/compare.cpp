#include "evoopt/experiment/compare.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include <fmt/format.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/run_dir.hpp"
#include "evoopt/data/sources.hpp"
#include "evoopt/eval/halving.hpp"
#include "evoopt/experiment/tuning.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"

namespace evoopt::experiment {
using nlohmann::json;

namespace {
constexpr std::pair<MethodKind, const char*> kMethodKindNames[] = {{MethodKind::Evolved, "evolved"},
                                                                   {MethodKind::Baseline, "baseline"},
                                                                   {MethodKind::RandomSearch, "random-search"},
                                                                   {MethodKind::Attribution, "attribution"}};
}  // namespace

const char* method_kind_name(MethodKind k) {
  for (const auto& [kind, name] : kMethodKindNames)
    if (kind == k) return name;
  throw Error("unknown method kind");
}

MethodKind method_kind_from_name(const std::string& name) {
  for (const auto& [kind, n] : kMethodKindNames)
    if (name == n) return kind;
  throw Error("method kind '" + name + "' is not one of evolved, baseline, random-search, attribution");
}

std::vector<train::RunResult> run_all(RunContext& ctx, eval::RunStage stage, const std::vector<eval::RunRequest>& requests) {
  const int total = static_cast<int>(requests.size());
  int done = 0;
  if (requests.empty()) return {};
  std::vector<eval::RunRequest> batch = requests;  // as trained: 0 steps are the evaluator's default
  for (auto& r : batch)
    if (r.steps < 1) r.steps = ctx.evaluator.default_steps();
  eval::StoreEvents events;
  events.planned = [&](std::size_t found, std::size_t) {
    done = static_cast<int>(found);
    if (ctx.progress) ctx.progress(stage, done, total, batch, nullptr);
  };
  events.trained = [&](const train::RunResult& r) {
    ++ctx.runs_executed;
    ++done;
    if (ctx.progress) ctx.progress(stage, std::min(done, total), total, batch, &r);
  };
  return eval::run_with_store(ctx.store, ctx.evaluator, stage, requests, events, ctx.cancel);
}

std::vector<std::uint64_t> test_seeds(std::uint64_t run_seed, const std::string& task, int count, int search_seeds) {
  std::set<std::uint64_t> search;
  for (int i = 0; i < search_seeds; ++i) search.insert(ga::search_seed(run_seed, task, i));
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = 0; static_cast<int>(out.size()) < count; ++i) {
    const std::uint64_t s = derive_seed(run_seed, "test/" + task, i);
    if (!search.count(s)) out.push_back(s);
  }
  return out;
}

std::vector<Regime> strong_regimes(const genome::Genome& winner) {
  Regime scheduled;
  scheduled.cosine_decay = true;
  scheduled.warmup_fraction = winner.has_schedule() ? winner.warmup_fraction : 0.05;
  scheduled.clip_norm = winner.clip_norm;
  return {Regime{}, scheduled};
}

double eta_for(const std::string& name, const genome::Genome& g, double lr) { return name == "sgd" ? lr / (1.0 - g.beta1) : lr; }

genome::Genome baseline_genome(const std::string& name, double lr, double wd, const Regime& regime) {
  genome::Genome g = genome::preset(name);
  g.log10_lr = std::log10(eta_for(name, g, lr));
  if (wd > 0) {
    g.log10_weight_decay = std::log10(wd);
    g.decoupled_weight_decay = !(name == "sgd" || name == "adam" || name == "rmsprop");
  } else {
    g.log10_weight_decay.reset();
  }
  apply_regime(g, regime);
  g.validate(genome::Bounds::kHardMaxTerms);
  return g;
}

std::vector<train::Fitness> validation_fitness(RunContext& ctx, eval::RunStage stage, const std::vector<genome::Genome>& genomes,
                                               const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds, std::int64_t steps,
                                               std::int64_t eval_limit) {
  std::vector<eval::RunRequest> requests;
  for (const auto& g : genomes)
    for (const auto& t : tasks)
      for (int s = 0; s < search_seeds; ++s) requests.push_back({g, t, ga::search_seed(run_seed, t, s), data::Split::Val, steps, eval_limit});
  const auto results = run_all(ctx, stage, requests);
  std::vector<train::Fitness> out;
  const std::size_t per = tasks.size() * static_cast<std::size_t>(search_seeds);
  for (std::size_t i = 0; i < genomes.size(); ++i)
    out.push_back(train::aggregate_fitness(std::vector<train::RunResult>(results.begin() + static_cast<std::ptrdiff_t>(i * per),
                                                                         results.begin() + static_cast<std::ptrdiff_t>((i + 1) * per))));
  return out;
}

std::vector<Rung> halving_rungs(std::size_t n, std::int64_t steps, const HalvingOptions& halving) {
  if (halving.enabled && n > 3 && steps >= 8) {
    const std::size_t second = std::max<std::size_t>(2, (n + 3) / 4);
    const std::size_t third = std::max<std::size_t>(1, (second + 2) / 3);
    return {{steps / 4, halving.rung_val_size, n}, {steps / 2, halving.rung_val_size, second}, {steps, 0, third}};
  }
  return {{steps, 0, n}};
}

void tune(RunContext& ctx, eval::RunStage stage, BaselineChoice& c, const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds,
          std::int64_t steps, const HalvingOptions& halving) {
  if (c.sweep.empty()) throw Error("nothing to tune for " + c.name);
  if (steps < 1) steps = ctx.evaluator.default_steps();
  const std::vector<Rung> rungs = halving_rungs(c.sweep.size(), steps, halving);
  eval::Halving plan;
  plan.rungs = rungs.size();
  // After a rung, as many go on as the next rung runs; the last rung keeps every candidate.
  plan.keep = [&rungs](std::size_t rung, std::size_t alive) { return rung + 1 < rungs.size() ? rungs[rung + 1].keep : alive; };
  const auto score = [&](std::size_t r, const std::vector<std::size_t>& alive) {
    const Rung& rung = rungs[r];
    std::vector<genome::Genome> genomes;
    for (std::size_t i : alive) genomes.push_back(c.sweep[i].genome);
    const auto fit = validation_fitness(ctx, stage, genomes, tasks, run_seed, search_seeds, rung.steps, rung.eval_limit);
    std::vector<double> overall;
    for (std::size_t k = 0; k < alive.size(); ++k) {
      SweepEntry& e = c.sweep[alive[k]];
      e.val_fitness = fit[k].overall;
      e.per_task = fit[k].per_task;
      e.rungs.emplace_back(rung.steps, fit[k].overall);
      overall.push_back(fit[k].overall);
    }
    c.runs += static_cast<std::int64_t>(alive.size() * tasks.size()) * search_seeds;
    c.steps += static_cast<std::int64_t>(alive.size() * tasks.size()) * search_seeds * rung.steps;
    return overall;
  };
  const std::vector<std::size_t> alive = eval::successive_halving(c.sweep.size(), plan, score);
  // The choice: the best at the full budget on the whole validation split (ties: grid order).
  std::size_t best = alive.front();
  for (std::size_t i : alive)
    if (c.sweep[i].val_fitness > c.sweep[best].val_fitness) best = i;
  c.chosen = best;
}

BaselineChoice sweep_baseline(RunContext& ctx, const std::string& name, const std::vector<double>& lr_grid, const std::vector<double>& wd_grid,
                              const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds, std::int64_t steps) {
  BaselineChoice c;
  c.name = name;
  c.protocol = Protocol::Seed;
  for (double lr : lr_grid)
    for (double wd : wd_grid) {
      SweepEntry e;
      e.lr = lr;
      e.wd = wd;
      e.genome = baseline_genome(name, lr, wd);
      c.sweep.push_back(e);
    }
  tune(ctx, eval::RunStage::Sweep, c, tasks, run_seed, search_seeds, steps, HalvingOptions{false, 0});
  return c;
}

BaselineChoice tune_baseline(RunContext& ctx, const std::string& name, const std::vector<double>& lr_grid, const std::vector<double>& wd_grid,
                             const std::vector<Regime>& regimes, const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds,
                             std::int64_t steps, const HalvingOptions& halving) {
  BaselineChoice c;
  c.name = name;
  c.protocol = Protocol::Strong;
  for (const Regime& r : regimes)
    for (double wd : wd_grid)
      for (double lr : lr_grid) {
        SweepEntry e;
        e.lr = lr;
        e.wd = wd;
        e.regime = r;
        e.genome = baseline_genome(name, lr, wd, r);
        c.sweep.push_back(e);
      }
  tune(ctx, eval::RunStage::Sweep, c, tasks, run_seed, search_seeds, steps, halving);
  return c;
}

namespace {

// `g` on the test split of `tasks`, each on its fresh seeds, at `steps`. Stage Test, or
// Transfer for held-out tasks.
MethodResult test_method(RunContext& ctx, const std::string& name, MethodKind kind, const genome::Genome& g, double val_fitness,
                         const std::vector<std::string>& tasks, const std::map<std::string, std::vector<std::uint64_t>>& seeds, std::int64_t steps,
                         eval::RunStage stage = eval::RunStage::Test) {
  MethodResult m;
  m.name = name;
  m.kind = kind;
  m.genome = g;
  m.val_fitness = val_fitness;
  std::vector<eval::RunRequest> requests;
  for (const auto& t : tasks)
    for (auto s : seeds.at(t)) requests.push_back({g, t, s, data::Split::Test, steps});
  const auto results = run_all(ctx, stage, requests);
  std::size_t k = 0;
  const std::size_t n = seeds.at(tasks.front()).size();
  m.overall.assign(n, 0.0);
  for (const auto& t : tasks)
    for (std::size_t i = 0; i < n; ++i) {
      const double f = results[k].fitness();
      if (!results[k++].parameter_split.empty()) m.parameter_split[t] = results[k - 1].parameter_split;
      m.test[t].push_back(f);
      m.overall[i] += f / static_cast<double>(tasks.size());
    }
  return m;
}

json stats_json(const std::vector<double>& v, const std::vector<double>* evolved) {
  const Summary s = summarize(v);
  json j = {{"mean", s.mean}, {"std", s.stddev}, {"n", s.n}, {"values", v}};
  if (evolved != nullptr) {
    const PairedDifference d = paired_difference(*evolved, v);
    j["evolved_minus_this"] = {{"mean", d.mean}, {"ci95_low", d.ci_low}, {"ci95_high", d.ci_high}, {"significant", d.significant}};
  }
  return j;
}

json diff_json(const PairedDifference& d) {
  return {{"mean", d.mean}, {"ci95_low", d.ci_low}, {"ci95_high", d.ci_high}, {"significant", d.significant}, {"n", d.n}};
}

// A genome's update rule (terms, β1, β2, ε, bias correction) with another genome's
// schedule, clipping and weight decay; the learning rate is set later.
genome::Genome rule_with_setting(const genome::Genome& rule, const genome::Genome& setting) {
  genome::Genome g = rule;
  apply_regime(g, regime_of(setting));
  g.log10_weight_decay = setting.log10_weight_decay;
  g.decoupled_weight_decay = setting.decoupled_weight_decay;
  if (!g.has_rule()) g.decoupled_weight_decay = true;  // a hand-made algorithm decays as published
  return g;
}

// An lr sweep of a fixed genome over the grid (full budget, whole validation split).
BaselineChoice lr_retuned(RunContext& ctx, const std::string& name, const std::string& rule_name, const genome::Genome& g,
                          const std::vector<double>& lr_grid, const CompareInputs& in) {
  BaselineChoice c;
  c.name = name;
  c.protocol = Protocol::LrRetuned;
  for (double lr : lr_grid) {
    SweepEntry e;
    e.lr = lr;
    e.wd = g.weight_decay();
    e.regime = regime_of(g);
    e.genome = g;
    e.genome.log10_lr = std::log10(eta_for(rule_name, g, lr));
    e.genome.validate(genome::Bounds::kHardMaxTerms);
    c.sweep.push_back(e);
  }
  tune(ctx, eval::RunStage::Attribution, c, in.tasks, in.run_seed, in.search_seeds, in.steps,
       HalvingOptions{in.options.halving, in.options.rung_val_size});
  return c;
}

}  // namespace

CompareInputs compare_inputs(const ExperimentConfig& config, const genome::Genome& evolved, double evolved_val_fitness,
                             const std::map<std::string, std::string>& labels, std::int64_t evolution_runs) {
  CompareInputs in;
  in.evolved = evolved;
  in.evolved_val_fitness = evolved_val_fitness;
  in.tasks = config.tasks;
  in.transfer_tasks = config.transfer_tasks;
  in.labels = labels;
  in.run_seed = config.seed;
  in.search_seeds = config.ga.search_seeds;
  in.steps = config.steps;
  in.evolution_runs = evolution_runs;
  in.options = config.compare;
  for (const auto& t : config.all_tasks())
    if (is_next_token_task(config, t)) in.next_token_tasks.insert(t);
  return in;
}

bool is_next_token_task(const ExperimentConfig& config, const std::string& task) {
  for (const auto& u : config.user_tasks)
    if (u.name == task) return u.kind == task::TaskKind::NextToken;
  const auto* d = data::dataset_of_task(task);
  return d != nullptr && d->format == data::Format::Text;  // unknown: synthetic evaluators' names
}

void write_comparison(const Comparison& c, const std::filesystem::path& dir) {
  const RunDirectory run(dir);
  run.write_json(run_files::kComparison, c.to_json(), 2);
  run.write_text(run_files::kComparisonCsv, c.to_csv());
}

namespace {

// Equal budget: a random search over every hyperparameter the baseline's genome has.
BaselineChoice random_search(RunContext& ctx, const std::string& name, const CompareInputs& in, std::int64_t& runs_out) {
  const std::int64_t budget = in.options.equal_budget_runs > 0 ? in.options.equal_budget_runs : in.evolution_runs;
  const std::int64_t per_config = static_cast<std::int64_t>(in.tasks.size()) * in.search_seeds;
  const std::int64_t configs = std::max<std::int64_t>(1, budget / per_config);
  Rng rng(derive_seed(in.run_seed, "equal-budget/" + name));
  BaselineChoice rs;
  rs.name = name + " (random search)";
  rs.protocol = Protocol::RandomSearch;
  for (std::int64_t i = 0; i < configs; ++i) {
    SweepEntry e;
    e.lr = std::pow(10.0, rng.uniform(-5.0, -1.0));
    e.wd = rng.bernoulli(0.25) ? 0.0 : std::pow(10.0, rng.uniform(-6.0, -2.0));
    if (rng.bernoulli(0.5)) {
      e.regime.cosine_decay = true;
      e.regime.warmup_fraction = rng.bernoulli(0.5) ? rng.uniform(0.0, 0.3) : 0.0;
    }
    if (rng.bernoulli(0.5)) e.regime.clip_norm = std::pow(10.0, rng.uniform(-1.0, 1.0));
    e.genome = baseline_genome(name, e.lr, e.wd, e.regime);
    // The rule's own hyperparameters, where the rule reads them.
    genome::Genome& g = e.genome;
    const double beta1 = 1.0 - std::pow(10.0, rng.uniform(-3.0, -0.5));
    const double beta2 = 1.0 - std::pow(10.0, rng.uniform(-4.0, -1.0));
    const double log10_eps = rng.uniform(-10.0, -6.0);
    if (g.needs_m() || g.needs_lion_m()) {
      g.beta1 = beta1;
      g.log10_lr = std::log10(eta_for(name, g, e.lr));  // sgd: torch's scale at the sampled β1
    }
    if (g.needs_v() || g.needs_lion_m()) g.beta2 = beta2;
    if (g.needs_v()) g.log10_eps = log10_eps;
    g.validate(genome::Bounds::kHardMaxTerms);
    rs.sweep.push_back(e);
  }
  tune(ctx, eval::RunStage::RandomSearch, rs, in.tasks, in.run_seed, in.search_seeds, in.steps, HalvingOptions{false, 0});
  runs_out = configs * per_config;
  return rs;
}

}  // namespace

std::vector<Phase> comparison_phases(const CompareOptions& o, bool has_transfer) {
  std::vector<Phase> p = {Phase::Tuning, Phase::Comparison};
  if (has_transfer) p.push_back(Phase::Transfer);
  if (o.attribution) p.push_back(Phase::Attribution);
  return p;
}

std::size_t Comparison::strongest() const {
  std::size_t s = 0;
  for (std::size_t i = 1; i < baselines.size(); ++i)
    if (baselines[i].best().val_fitness > baselines[s].best().val_fitness) s = i;
  return s;
}

namespace {

// The quasirandom protocol's tuning of one method: its trials at the full budget, chosen on the
// search tasks together (`chosen`) and on each workload alone (`chosen_for`): the search tasks'
// scores come with the joint tuning; each held-out task scores every trial on its own
// validation split.
BaselineChoice quasirandom_choice(RunContext& ctx, const SearchSpace& space, const CompareInputs& in) {
  BaselineChoice c;
  c.name = space.method;
  c.protocol = Protocol::Quasirandom;
  c.space_source = space.source;
  for (const auto& g : quasirandom_trials(space, static_cast<std::size_t>(in.options.trials), in.run_seed)) {
    SweepEntry e;
    e.genome = g;
    e.lr = space.method == "sgd" ? g.lr() * (1.0 - g.beta1) : g.lr();  // torch's scale, as the grids
    e.wd = g.weight_decay();
    e.regime = regime_of(g);
    c.sweep.push_back(e);
  }
  tune(ctx, eval::RunStage::Sweep, c, in.tasks, in.run_seed, in.search_seeds, in.steps, HalvingOptions{false, 0});
  std::vector<genome::Genome> genomes;
  for (const auto& e : c.sweep) genomes.push_back(e.genome);
  for (const auto& t : in.transfer_tasks) {
    const auto fit = validation_fitness(ctx, eval::RunStage::Sweep, genomes, {t}, in.run_seed, in.search_seeds, in.steps);
    for (std::size_t k = 0; k < c.sweep.size(); ++k) c.sweep[k].per_task[t] = fit[k].per_task.at(t);
    c.runs += static_cast<std::int64_t>(genomes.size()) * in.search_seeds;
    c.steps += static_cast<std::int64_t>(genomes.size()) * in.search_seeds * (in.steps > 0 ? in.steps : ctx.evaluator.default_steps());
  }
  for (const auto& tasks : {in.tasks, in.transfer_tasks})
    for (const auto& t : tasks) {
      std::size_t best = 0;
      for (std::size_t k = 1; k < c.sweep.size(); ++k)
        if (c.sweep[k].per_task.at(t) > c.sweep[best].per_task.at(t)) best = k;
      c.chosen_for[t] = best;
    }
  return c;
}

// Tuning: every baseline on validation, then the equal-budget random search over the
// strongest one's hyperparameters.
void run_tuning(RunContext& ctx, const CompareInputs& in, Comparison& c) {
  c.protocol = in.options.protocol;
  c.tasks = in.tasks;
  c.transfer_tasks = in.transfer_tasks;
  c.next_token_tasks = in.next_token_tasks;
  c.labels = in.labels;
  for (const auto& t : in.tasks) c.seeds[t] = test_seeds(in.run_seed, t, in.options.test_seeds, in.search_seeds);
  for (const auto& t : in.transfer_tasks) c.seeds[t] = test_seeds(in.run_seed, t, in.options.test_seeds, in.search_seeds);
  const HalvingOptions halving{in.options.halving, in.options.rung_val_size};
  if (in.options.protocol == Protocol::Quasirandom) {
    c.workload_tasks = in.tasks;
    c.workload_tasks.insert(c.workload_tasks.end(), in.transfer_tasks.begin(), in.transfer_tasks.end());
    for (const auto& b : in.options.baselines) c.baselines.push_back(quasirandom_choice(ctx, search_space(b, &in.evolved), in));
    c.evolved_tuning = quasirandom_choice(ctx, evolved_search_space(in.evolved), in);
    if (in.options.equal_budget) c.random_search = random_search(ctx, c.baselines[c.strongest()].name, in, c.random_search_runs);
    return;
  }
  for (const auto& b : in.options.baselines) {
    if (in.options.protocol == Protocol::Seed)
      c.baselines.push_back(
          sweep_baseline(ctx, b, CompareOptions::seed_lr_grid(), CompareOptions::seed_wd_grid(), in.tasks, in.run_seed, in.search_seeds, in.steps));
    else
      c.baselines.push_back(tune_baseline(ctx, b, in.options.lr_grid, in.options.wd_grid, strong_regimes(in.evolved), in.tasks, in.run_seed,
                                          in.search_seeds, in.steps, halving));
  }
  if (in.options.equal_budget) c.random_search = random_search(ctx, c.baselines[c.strongest()].name, in, c.random_search_runs);
}

// The steps of the test blocks: the search horizon and, with horizon_multiple, a longer one.
std::vector<std::int64_t> horizons_of(const CompareInputs& in) {
  std::vector<std::int64_t> horizons = {in.steps};
  if (in.options.horizon_multiple > 0)
    horizons.push_back(static_cast<std::int64_t>(std::llround(static_cast<double>(in.steps) * in.options.horizon_multiple)));
  return horizons;
}

// The test split of `tasks`, same fresh seeds for every method, at each horizon.
std::vector<HorizonResult> test_block(RunContext& ctx, const CompareInputs& in, const Comparison& c, const std::vector<std::string>& tasks,
                                      eval::RunStage stage) {
  const std::size_t strongest = c.strongest();
  std::vector<HorizonResult> out;
  for (std::int64_t steps : horizons_of(in)) {
    HorizonResult h;
    h.steps = steps;
    if (c.evolved_tuning)
      h.methods.push_back(test_method(ctx, "evolved (tuned)", MethodKind::Evolved, c.evolved_tuning->best().genome,
                                      c.evolved_tuning->best().val_fitness, tasks, c.seeds, steps, stage));
    else
      h.methods.push_back(test_method(ctx, "evolved", MethodKind::Evolved, in.evolved, in.evolved_val_fitness, tasks, c.seeds, steps, stage));
    // The longer horizon asks whether the gain over the strongest tuned baseline persists:
    // that baseline only (every baseline at the search horizon).
    for (std::size_t i = 0; i < c.baselines.size(); ++i) {
      if (steps != in.steps && i != strongest) continue;
      const auto& b = c.baselines[i];
      h.methods.push_back(
          test_method(ctx, b.name + " (tuned)", MethodKind::Baseline, b.best().genome, b.best().val_fitness, tasks, c.seeds, steps, stage));
    }
    if (c.random_search)
      h.methods.push_back(test_method(ctx, c.random_search->name, MethodKind::RandomSearch, c.random_search->best().genome,
                                      c.random_search->best().val_fitness, tasks, c.seeds, steps, stage));
    out.push_back(h);
  }
  return out;
}

// Where a workload's runs are accounted: Transfer for a held-out task, else Test.
eval::RunStage stage_of(const CompareInputs& in, const std::string& task) {
  const bool held_out = std::find(in.transfer_tasks.begin(), in.transfer_tasks.end(), task) != in.transfer_tasks.end();
  return held_out ? eval::RunStage::Transfer : eval::RunStage::Test;
}

// One method tuned per workload, each workload tested with its own choice on its fresh seeds
// at the search horizon (held-out tasks as transfer runs).
MethodResult workload_method(RunContext& ctx, const std::string& name, MethodKind kind, const BaselineChoice& choice, const CompareInputs& in,
                             const Comparison& c) {
  MethodResult m;
  m.name = name;
  m.kind = kind;
  m.genome = choice.best().genome;
  m.val_fitness = choice.best().val_fitness;
  m.overall.assign(c.seeds.at(c.workload_tasks.front()).size(), 0.0);
  for (const auto& t : c.workload_tasks) {
    const genome::Genome& g = choice.sweep.at(choice.chosen_for.at(t)).genome;
    m.task_genome[t] = g;
    const MethodResult one = test_method(ctx, name, kind, g, m.val_fitness, {t}, c.seeds, in.steps, stage_of(in, t));
    m.test[t] = one.test.at(t);
    for (std::size_t i = 0; i < m.overall.size(); ++i) m.overall[i] += m.test[t][i] / static_cast<double>(c.workload_tasks.size());
    if (one.parameter_split.count(t)) m.parameter_split[t] = one.parameter_split.at(t);
  }
  return m;
}

void test_per_workload(RunContext& ctx, const CompareInputs& in, Comparison& c) {
  c.per_workload.clear();
  c.per_workload.push_back(workload_method(ctx, "evolved (tuned)", MethodKind::Evolved, *c.evolved_tuning, in, c));
  for (const auto& b : c.baselines) c.per_workload.push_back(workload_method(ctx, b.name + " (tuned)", MethodKind::Baseline, b, in, c));
}

// The curve resolution of time to target: ten points over the run.
std::int64_t curve_every(std::int64_t steps) { return std::max<std::int64_t>(1, steps / 10); }

// Every method of the search horizon's table (each with its per-workload choice under the
// quasirandom protocol) on every workload's validation split, on the fresh seeds, with a curve.
void run_time_to_target(RunContext& ctx, const CompareInputs& in, Comparison& c) {
  TimeToTarget tt;
  tt.workloads = in.tasks;
  tt.workloads.insert(tt.workloads.end(), in.transfer_tasks.begin(), in.transfer_tasks.end());
  tt.steps = in.steps > 0 ? in.steps : ctx.evaluator.default_steps();
  tt.every = curve_every(tt.steps);
  const std::vector<MethodResult>& rows = c.per_workload.empty() ? c.horizons.front().methods : c.per_workload;
  for (const auto& m : rows) {
    tt.methods.push_back(m.name);
    for (const auto& w : tt.workloads) {
      const genome::Genome& g = m.task_genome.count(w) ? m.task_genome.at(w) : m.genome;
      std::vector<eval::RunRequest> requests;
      for (auto s : c.seeds.at(w)) {
        eval::RunRequest r{g, w, s, data::Split::Val, tt.steps};
        r.curve_every = tt.every;
        requests.push_back(r);
      }
      const auto results = run_all(ctx, stage_of(in, w), requests);
      // The mean over seeds at each point; a diverged seed (no curve to its end) counts −1.
      std::vector<std::pair<std::int64_t, double>> mean;
      for (const auto& p : results.front().val_curve) mean.emplace_back(p.first, 0.0);
      for (const auto& r : results)
        for (std::size_t i = 0; i < mean.size(); ++i)
          mean[i].second += (r.diverged || i >= r.val_curve.size() ? -1.0 : r.val_curve[i].second) / static_cast<double>(results.size());
      if (results.front().diverged) mean.clear();
      tt.curve[m.name][w] = mean;
    }
  }
  // The target: tuned AdamW's final validation score, else the strongest baseline's.
  tt.target_method = c.baselines[c.strongest()].name + " (tuned)";
  for (const auto& b : c.baselines)
    if (b.name == "adamw") tt.target_method = "adamw (tuned)";
  for (const auto& w : tt.workloads) {
    const auto& curve = tt.curve.at(tt.target_method).at(w);
    tt.target[w] = curve.empty() ? -1.0 : curve.back().second;
  }
  for (const auto& m : tt.methods)
    for (const auto& w : tt.workloads) tt.reached[m][w] = tt.target[w] > 0 ? steps_to_target(tt.curve[m][w], tt.target[w]) : std::nullopt;
  c.time_to_target = tt;
}

// Gain attribution against the strongest tuned baseline, at the search horizon.
void run_attribution(RunContext& ctx, const CompareInputs& in, Comparison& c) {
  const BaselineChoice& b = c.baselines[c.strongest()];
  Attribution a;
  a.baseline = b.name;
  a.steps = in.steps;
  const genome::Genome& W = c.evolved_tuning ? c.evolved_tuning->best().genome : in.evolved;
  const genome::Genome& B = b.best().genome;
  a.rule_in_baseline_setting = lr_retuned(ctx, "evolved rule, " + b.name + " setting", "evolved", rule_with_setting(W, B), in.options.lr_grid, in);
  a.baseline_in_evolved_setting = lr_retuned(ctx, b.name + " rule, evolved setting", b.name, rule_with_setting(B, W), in.options.lr_grid, in);
  a.a1 = test_method(ctx, a.rule_in_baseline_setting.name, MethodKind::Attribution, a.rule_in_baseline_setting.best().genome,
                     a.rule_in_baseline_setting.best().val_fitness, in.tasks, c.seeds, in.steps);
  a.a2 = test_method(ctx, a.baseline_in_evolved_setting.name, MethodKind::Attribution, a.baseline_in_evolved_setting.best().genome,
                     a.baseline_in_evolved_setting.best().val_fitness, in.tasks, c.seeds, in.steps);
  c.attribution = a;
}

}  // namespace

std::optional<std::int64_t> steps_to_target(const std::vector<std::pair<std::int64_t, double>>& curve, double target) {
  for (const auto& [step, score] : curve)
    if (score >= target) return step;
  return std::nullopt;
}

double TimeToTarget::profile(const std::string& method, double tau) const {
  if (workloads.empty()) return 0.0;
  int within = 0;
  for (const auto& w : workloads) {
    std::optional<std::int64_t> fastest;
    for (const auto& m : methods) {
      const auto& t = reached.at(m).at(w);
      if (t && (!fastest || *t < *fastest)) fastest = t;
    }
    const auto& mine = reached.at(method).at(w);
    if (mine && fastest && static_cast<double>(*mine) <= tau * static_cast<double>(*fastest)) ++within;
  }
  return static_cast<double>(within) / static_cast<double>(workloads.size());
}

void run_comparison_phase(Phase phase, RunContext& ctx, const CompareInputs& in, Comparison& c) {
  in.options.validate();
  switch (phase) {
    case Phase::Tuning:
      return run_tuning(ctx, in, c);
    case Phase::Comparison:
      c.horizons = test_block(ctx, in, c, in.tasks, eval::RunStage::Test);
      if (c.evolved_tuning) test_per_workload(ctx, in, c);
      if (in.options.time_to_target && in.transfer_tasks.empty()) run_time_to_target(ctx, in, c);
      return;
    case Phase::Transfer:
      c.transfer = test_block(ctx, in, c, in.transfer_tasks, eval::RunStage::Transfer);
      if (in.options.time_to_target) run_time_to_target(ctx, in, c);  // every workload's, once the held-out ones can run
      return;
    case Phase::Attribution:
      return run_attribution(ctx, in, c);
    default:
      throw std::logic_error(std::string("not a phase of the comparison: ") + phase_name(phase));
  }
}

Comparison run_comparison(RunContext& ctx, const CompareInputs& in) {
  Comparison c;
  for (Phase p : comparison_phases(in.options, !in.transfer_tasks.empty())) run_comparison_phase(p, ctx, in, c);
  return c;
}

std::vector<Comparison::AttributionRow> Comparison::attribution_rows() const {
  std::vector<AttributionRow> rows;
  if (!attribution || horizons.empty()) return rows;
  const HorizonResult& h = horizons.front();
  const MethodResult& W = h.methods.front();
  const MethodResult* B = nullptr;
  for (const auto& m : h.methods)
    if (m.kind == MethodKind::Baseline && m.name == attribution->baseline + " (tuned)") B = &m;
  if (B == nullptr) return rows;
  const auto& A1 = attribution->a1.overall;
  const auto& A2 = attribution->a2.overall;
  rows.push_back({"total gain", "W − B", paired_difference(W.overall, B->overall)});
  rows.push_back({"update rule", "A1 − B (in B's setting)", paired_difference(A1, B->overall)});
  rows.push_back({"update rule", "W − A2 (in W's setting)", paired_difference(W.overall, A2)});
  rows.push_back({"schedule/clipping/hyperparameters", "W − A1 (with W's rule)", paired_difference(W.overall, A1)});
  rows.push_back({"schedule/clipping/hyperparameters", "A2 − B (with B's rule)", paired_difference(A2, B->overall)});
  return rows;
}

namespace {

// A tuned baseline: its chosen setting, its genome and its whole sweep.
json choice_json(const BaselineChoice& b) {
  json sweep = json::array();
  for (const auto& e : b.sweep) {
    json rungs = json::array();
    for (const auto& [steps, f] : e.rungs) rungs.push_back({{"steps", steps}, {"val_fitness", f}});
    sweep.push_back({{"lr", e.lr},
                     {"weight_decay", e.wd},
                     {"regime", e.regime.to_json()},
                     {"val_fitness", e.val_fitness},
                     {"val_per_task", e.per_task},
                     {"rungs", rungs}});
    if (b.protocol == Protocol::Quasirandom) sweep.back()["genome"] = e.genome.to_json();  // a trial sets more than lr and decay
  }
  json j = {{"name", b.name},
            {"protocol", protocol_name(b.protocol)},
            {"chosen",
             {{"lr", b.best().lr},
              {"weight_decay", b.best().wd},
              {"regime", b.best().regime.to_json()},
              {"regime_text", b.best().regime.describe()},
              {"val_fitness", b.best().val_fitness}}},
            {"genome", b.best().genome.to_json()},
            {"training_runs", b.runs},
            {"training_steps", b.steps},
            {"sweep", sweep}};
  if (b.protocol == Protocol::Quasirandom) {
    j["search_space"] = b.space_source;
    j["chosen_per_workload"] = b.chosen_for;  // task → index into sweep
  }
  return j;
}

// A method's test results per task and overall, paired with the evolved optimizer's (`ev`;
// nullptr for the evolved optimizer itself); next-token tasks add loss and perplexity.
json method_json(const MethodResult& m, const MethodResult* ev, const std::set<std::string>& next_token_tasks) {
  json per_task;
  for (const auto& [t, v] : m.test) {
    per_task[t] = stats_json(v, ev == nullptr ? nullptr : &ev->test.at(t));
    if (next_token_tasks.count(t)) {
      // fitness = exp(−loss): loss and perplexity per seed (a diverged seed, −1, has neither).
      std::vector<double> loss, ppl;
      for (double f : v)
        if (f > 0) {
          loss.push_back(-std::log(f));
          ppl.push_back(1.0 / f);
        }
      per_task[t]["loss_nats"] = stats_json(loss, nullptr);
      per_task[t]["perplexity"] = stats_json(ppl, nullptr);
    }
  }
  json j = {{"name", m.name},
            {"kind", method_kind_name(m.kind)},
            {"val_fitness", m.val_fitness},
            {"formula", m.genome.formula()},
            {"hyperparameters", m.genome.hyperparameters()},
            {"genome", m.genome.to_json()},
            {"test", per_task},
            {"overall", stats_json(m.overall, ev == nullptr ? nullptr : &ev->overall)}};
  if (!m.parameter_split.empty()) j["parameter_split"] = m.parameter_split;
  return j;
}

// Each horizon's methods, the first (the evolved optimizer) paired with none, the others with it.
json horizons_json(const std::vector<HorizonResult>& hs, const std::set<std::string>& next_token_tasks) {
  json out = json::array();
  for (const auto& h : hs) {
    json methods = json::array();
    const MethodResult& ev = h.methods.front();
    for (const auto& m : h.methods) methods.push_back(method_json(m, &m == &ev ? nullptr : &ev, next_token_tasks));
    out.push_back({{"steps", h.steps}, {"methods", methods}});
  }
  return out;
}

}  // namespace

json Comparison::to_json() const {
  json j = {{"protocol", protocol_name(protocol)}, {"tasks", tasks}, {"labels", labels}};
  j.update(RunDirectory::header(run_files::kComparison));
  json seeds_json;
  for (const auto& [t, s] : seeds) seeds_json[t] = s;
  j["test_seeds"] = seeds_json;
  j["baselines"] = json::array();
  for (const auto& b : baselines) j["baselines"].push_back(choice_json(b));
  if (random_search) {
    j["equal_budget_random_search"] = choice_json(*random_search);
    j["equal_budget_random_search"]["training_runs"] = random_search_runs;
  }
  j["horizons"] = horizons_json(horizons, next_token_tasks);
  if (evolved_tuning) j["evolved_tuning"] = choice_json(*evolved_tuning);
  if (time_to_target) {
    const TimeToTarget& tt = *time_to_target;
    const std::vector<double> taus = {1.0, 1.5, 2.0, 4.0};
    json methods = json::array();
    for (const auto& m : tt.methods) {
      json reached, curves, profile = json::array();
      for (const auto& w : tt.workloads) {
        const auto& t = tt.reached.at(m).at(w);
        reached[w] = t ? json(*t) : json(nullptr);
        curves[w] = tt.curve.at(m).at(w);
      }
      for (double tau : taus) profile.push_back(tt.profile(m, tau));
      methods.push_back({{"name", m}, {"steps_to_target", reached}, {"val_curve", curves}, {"profile", profile}});
    }
    j["time_to_target"] = {{"target_method", tt.target_method},
                           {"steps", tt.steps},
                           {"every", tt.every},
                           {"workloads", tt.workloads},
                           {"target", tt.target},
                           {"profile_taus", taus},
                           {"methods", methods},
                           {"protocol",
                            "validation split, the fresh test seeds' training runs, mean over seeds every `every` steps; the target is "
                            "target_method's score at the full budget; null: not reached"}};
  }
  if (!per_workload.empty()) {
    json methods = json::array();
    for (const auto& m : per_workload) {
      json mj = method_json(m, &m == &per_workload.front() ? nullptr : &per_workload.front(), next_token_tasks);
      for (const auto& [t, g] : m.task_genome) mj["per_task_genome"][t] = {{"hyperparameters", g.hyperparameters()}, {"genome", g.to_json()}};
      methods.push_back(mj);
    }
    j["per_workload"] = {{"tasks", workload_tasks},
                         {"protocol",
                          "every method's trials chosen on each workload's own validation split (search and held-out tasks); test split, the "
                          "same fresh seeds for every method, at the search horizon"},
                         {"methods", methods}};
  }
  if (!transfer_tasks.empty())
    j["transfer"] = {{"tasks", transfer_tasks},
                     {"protocol",
                      "held-out tasks the search never saw; every method with the hyperparameters chosen on the search tasks (none re-tuned "
                      "here); test split, the same fresh seeds for every method"},
                     {"horizons", horizons_json(transfer, next_token_tasks)}};
  if (attribution) {
    json rows = json::array();
    for (const auto& r : attribution_rows()) rows.push_back({{"part", r.part}, {"difference", r.how}, {"paired", diff_json(r.diff)}});
    const MethodResult& ev = horizons.front().methods.front();
    j["attribution"] = {{"baseline", attribution->baseline},
                        {"steps", attribution->steps},
                        {"A1", method_json(attribution->a1, &ev, next_token_tasks)},
                        {"A2", method_json(attribution->a2, &ev, next_token_tasks)},
                        {"A1_lr_sweep", choice_json(attribution->rule_in_baseline_setting)},
                        {"A2_lr_sweep", choice_json(attribution->baseline_in_evolved_setting)},
                        {"rows", rows}};
  }
  return j;
}

std::string Comparison::to_csv() const {
  std::string out = "steps,method,kind,task,label,mean,std,n,diff_vs_evolved,ci95_low,ci95_high,significant,val_fitness,protocol,block\n";
  std::string block = "search";
  const std::vector<std::string>* block_tasks = &tasks;
  auto rows_for = [&](std::int64_t steps, const MethodResult& m, const MethodResult& ev) {
    const bool is_evolved = &m == &ev;
    auto row = [&](const std::string& task, const std::string& label, const std::vector<double>& v, const std::vector<double>& e) {
      const Summary s = summarize(v);
      out += fmt::format("{},\"{}\",{},{},\"{}\",{:.6f},{:.6f},{}", steps, m.name, method_kind_name(m.kind), task, label, s.mean, s.stddev, s.n);
      if (is_evolved) {
        out += ",,,,";
      } else {
        const PairedDifference d = paired_difference(e, v);
        out += fmt::format(",{:.6f},{:.6f},{:.6f},{}", d.mean, d.ci_low, d.ci_high, d.significant ? "yes" : "no");
      }
      out += fmt::format(",{:.6f},{},{}\n", m.val_fitness, protocol_name(protocol), block);
    };
    for (const auto& t : *block_tasks) row(t, labels.count(t) ? labels.at(t) : t, m.test.at(t), ev.test.at(t));
    row("overall", "mean over tasks", m.overall, ev.overall);
  };
  for (const auto& h : horizons)
    for (const auto& m : h.methods) rows_for(h.steps, m, h.methods.front());
  if (attribution) {
    rows_for(attribution->steps, attribution->a1, horizons.front().methods.front());
    rows_for(attribution->steps, attribution->a2, horizons.front().methods.front());
  }
  block = "transfer";
  block_tasks = &transfer_tasks;
  for (const auto& h : transfer)
    for (const auto& m : h.methods) rows_for(h.steps, m, h.methods.front());
  block = "per-workload";
  block_tasks = &workload_tasks;
  const std::int64_t search_horizon = horizons.empty() ? 0 : horizons.front().steps;
  for (const auto& m : per_workload) rows_for(search_horizon, m, per_workload.front());
  return out;
}

// ------------------------------------------------------------------ plan

std::int64_t runs_per_genome(const ExperimentConfig& c) { return static_cast<std::int64_t>(c.tasks.size()) * c.ga.search_seeds; }

namespace {
// The work of tuning `n` candidates at `steps` with `halving` (validation runs).
Work tuning(const ExperimentConfig& c, const EvalSizes& sizes, std::size_t n, std::int64_t steps, const HalvingOptions& halving) {
  Work w;
  for (const Rung& r : halving_rungs(n, steps, halving))
    w += Work{1, r.steps, evaluated_images(sizes, data::Split::Val, r.eval_limit)} * (static_cast<std::int64_t>(r.keep) * runs_per_genome(c));
  return w;
}

// Time to target: each method of the search horizon's table on every workload's validation
// split, on the fresh seeds, scored at every curve point and at the end.
Work time_to_target_work(const ExperimentConfig& c, const EvalSizes& sizes, const TaskCosts& costs) {
  const CompareOptions& o = c.compare;
  const std::int64_t methods = 1 + static_cast<std::int64_t>(o.baselines.size()) + (o.equal_budget && o.protocol != Protocol::Quasirandom ? 1 : 0);
  const std::int64_t points = 1 + curve_points(c.steps, curve_every(c.steps));
  Work w = Work{1, c.steps, sizes.val * points} * (methods * o.test_seeds * static_cast<std::int64_t>(c.tasks.size()));
  for (const auto& t : c.transfer_tasks) w += costs.scaled(t, Work{1, c.steps, sizes.val * points} * (methods * o.test_seeds));
  return w;
}

// `methods_seeds` test runs per task.
Work test_runs(const ExperimentConfig& c, const EvalSizes& sizes, std::int64_t methods_seeds, std::int64_t steps) {
  return Work{1, steps, sizes.test} * (methods_seeds * static_cast<std::int64_t>(c.tasks.size()));
}
}  // namespace

Work plan_comparison_phase(Phase phase, const ExperimentConfig& c, const EvalSizes& sizes, const genome::Genome* evolved, std::int64_t evolution_runs,
                           bool after_final_test, const TaskCosts& costs) {
  const CompareOptions& o = c.compare;
  Work w;
  if (!o.enabled) return w;
  const HalvingOptions halving{o.halving, o.rung_val_size};
  const std::int64_t rs = o.equal_budget ? 1 : 0;
  const std::int64_t longer = static_cast<std::int64_t>(std::llround(static_cast<double>(c.steps) * o.horizon_multiple));
  switch (phase) {
    case Phase::Tuning: {
      // `evoopt compare` scores the genome on validation first; a study knows it from the search.
      if (!after_final_test) w += Work{1, c.steps, sizes.val} * runs_per_genome(c);
      const std::size_t regimes = evolved != nullptr ? strong_regimes(*evolved).size() : 2;
      if (o.protocol == Protocol::Quasirandom) {
        // Every method's trials (the evolved genome's too) on the search tasks, then on each held-out task.
        const auto methods = static_cast<std::int64_t>(o.baselines.size()) + 1;
        w += tuning(c, sizes, static_cast<std::size_t>(o.trials), c.steps, HalvingOptions{false, 0}) * methods;
        for (const auto& t : c.transfer_tasks) w += costs.scaled(t, Work{1, c.steps, sizes.val} * (methods * o.trials * c.ga.search_seeds));
      }
      for (std::size_t b = 0; b < o.baselines.size() && o.protocol != Protocol::Quasirandom; ++b) {
        if (o.protocol == Protocol::Seed)
          w += tuning(c, sizes, CompareOptions::seed_lr_grid().size() * CompareOptions::seed_wd_grid().size(), c.steps, HalvingOptions{false, 0});
        else
          w += tuning(c, sizes, regimes * o.wd_grid.size() * o.lr_grid.size(), c.steps, halving);
      }
      if (o.equal_budget) {
        const std::int64_t budget = o.equal_budget_runs > 0 ? o.equal_budget_runs : evolution_runs;
        w += tuning(c, sizes, static_cast<std::size_t>(std::max<std::int64_t>(1, budget / runs_per_genome(c))), c.steps, HalvingOptions{false, 0});
      }
      return w;
    }
    case Phase::Comparison: {
      // The evolved genome's test runs on the final test's seeds are in the store already.
      const std::int64_t evolved_seeds = std::max(0, o.test_seeds - (after_final_test ? c.final_test_seeds : 0));
      w += test_runs(c, sizes, evolved_seeds + (static_cast<std::int64_t>(o.baselines.size()) + rs) * o.test_seeds, c.steps);
      if (o.horizon_multiple > 0) w += test_runs(c, sizes, (2 + rs) * o.test_seeds, longer);
      if (o.time_to_target && c.transfer_tasks.empty()) w += time_to_target_work(c, sizes, costs);
      if (o.protocol == Protocol::Quasirandom) {
        // Tuned per workload: every method on each workload with its own choice (found in the
        // store where it is the joint choice; counted in full).
        const auto methods = static_cast<std::int64_t>(o.baselines.size()) + 1;
        w += test_runs(c, sizes, methods * o.test_seeds, c.steps);
        for (const auto& t : c.transfer_tasks) w += costs.scaled(t, Work{1, c.steps, sizes.test} * (methods * o.test_seeds));
      }
      return w;
    }
    case Phase::Transfer:
      // The same methods on the held-out tasks' test splits, each at its own cost.
      for (const auto& t : c.transfer_tasks) {
        w += costs.scaled(t, Work{1, c.steps, sizes.test} * ((1 + static_cast<std::int64_t>(o.baselines.size()) + rs) * o.test_seeds));
        if (o.horizon_multiple > 0) w += costs.scaled(t, Work{1, longer, sizes.test} * ((2 + rs) * o.test_seeds));
      }
      if (o.time_to_target) w += time_to_target_work(c, sizes, costs);
      return w;
    case Phase::Attribution:
      w += tuning(c, sizes, o.lr_grid.size(), c.steps, halving) * 2;
      w += test_runs(c, sizes, 2 * static_cast<std::int64_t>(o.test_seeds), c.steps);
      return w;
    default:
      throw std::logic_error(std::string("not a phase of the comparison: ") + phase_name(phase));
  }
}

Work plan_comparison(const ExperimentConfig& c, const EvalSizes& sizes, const genome::Genome* evolved, std::int64_t evolution_runs,
                     bool after_final_test, const TaskCosts& costs) {
  Work w;
  if (!c.compare.enabled) return w;
  for (Phase p : comparison_phases(c.compare, !c.transfer_tasks.empty()))
    w += plan_comparison_phase(p, c, sizes, evolved, evolution_runs, after_final_test, costs);
  return w;
}

}  // namespace evoopt::experiment
