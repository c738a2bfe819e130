#include "evoopt/experiment/compare.hpp"

#include <cmath>
#include <set>

#include <fmt/format.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"

namespace evoopt::experiment {
using nlohmann::json;

std::vector<train::RunResult> run_all(RunContext& ctx, const std::string& stage, const std::vector<eval::RunRequest>& requests) {
  const int total = static_cast<int>(requests.size());
  int done = 0;
  for (const auto& r : requests) done += ctx.store.find(eval::run_key(ctx.evaluator, r)) ? 1 : 0;
  if (ctx.progress) ctx.progress(stage, done, total);
  const auto results = eval::run_with_store(
      ctx.store, ctx.evaluator, stage, requests,
      [&](std::size_t, const train::RunResult&) {
        ++ctx.runs_executed;
        ++done;
        if (ctx.progress) ctx.progress(stage, std::min(done, total), total);
      },
      ctx.cancel);
  std::vector<train::RunResult> out;
  for (const auto& r : results) {
    if (!r) throw Interrupted();
    out.push_back(*r);
  }
  return out;
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

genome::Genome baseline_genome(const std::string& name, double lr, double wd) {
  genome::Genome g = genome::preset(name);
  const double eta = name == "sgd" ? lr / (1.0 - g.beta1) : lr;
  g.log10_lr = std::log10(eta);
  if (wd > 0) {
    g.log10_weight_decay = std::log10(wd);
    g.decoupled_weight_decay = !(name == "sgd" || name == "adam" || name == "rmsprop");
  } else {
    g.log10_weight_decay.reset();
  }
  g.validate(genome::Bounds::kHardMaxTerms);
  return g;
}

std::vector<train::Fitness> validation_fitness(RunContext& ctx, const std::string& stage, const std::vector<genome::Genome>& genomes,
                                               const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds) {
  std::vector<eval::RunRequest> requests;
  for (const auto& g : genomes)
    for (const auto& t : tasks)
      for (int s = 0; s < search_seeds; ++s) requests.push_back({g, t, ga::search_seed(run_seed, t, s), data::Split::Val, 0});
  const auto results = run_all(ctx, stage, requests);
  std::vector<train::Fitness> out;
  const std::size_t per = tasks.size() * static_cast<std::size_t>(search_seeds);
  for (std::size_t i = 0; i < genomes.size(); ++i)
    out.push_back(train::aggregate_fitness(std::vector<train::RunResult>(results.begin() + static_cast<std::ptrdiff_t>(i * per),
                                                                         results.begin() + static_cast<std::ptrdiff_t>((i + 1) * per))));
  return out;
}

namespace {
std::size_t argmax(const std::vector<SweepEntry>& sweep) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < sweep.size(); ++i)
    if (sweep[i].val_fitness > sweep[best].val_fitness) best = i;
  return best;
}
}  // namespace

BaselineChoice sweep_baseline(RunContext& ctx, const std::string& name, const std::vector<double>& lr_grid, const std::vector<double>& wd_grid,
                              const std::vector<std::string>& tasks, std::uint64_t run_seed, int search_seeds) {
  BaselineChoice c;
  c.name = name;
  std::vector<genome::Genome> genomes;
  for (double lr : lr_grid)
    for (double wd : wd_grid) {
      SweepEntry e;
      e.lr = lr;
      e.wd = wd;
      e.genome = baseline_genome(name, lr, wd);
      genomes.push_back(e.genome);
      c.sweep.push_back(e);
    }
  const auto fit = validation_fitness(ctx, "sweep", genomes, tasks, run_seed, search_seeds);
  for (std::size_t i = 0; i < c.sweep.size(); ++i) {
    c.sweep[i].val_fitness = fit[i].overall;
    c.sweep[i].per_task = fit[i].per_task;
  }
  c.chosen = argmax(c.sweep);
  return c;
}

namespace {

MethodResult test_method(RunContext& ctx, const std::string& name, const std::string& kind, const genome::Genome& g, double val_fitness,
                         const CompareInputs& in, const std::map<std::string, std::vector<std::uint64_t>>& seeds, std::int64_t steps) {
  MethodResult m;
  m.name = name;
  m.kind = kind;
  m.genome = g;
  m.val_fitness = val_fitness;
  std::vector<eval::RunRequest> requests;
  for (const auto& t : in.tasks)
    for (auto s : seeds.at(t)) requests.push_back({g, t, s, data::Split::Test, steps});
  const auto results = run_all(ctx, "test", requests);
  std::size_t k = 0;
  const std::size_t n = seeds.at(in.tasks.front()).size();
  m.overall.assign(n, 0.0);
  for (const auto& t : in.tasks)
    for (std::size_t i = 0; i < n; ++i) {
      const double f = results[k++].fitness();
      m.test[t].push_back(f);
      m.overall[i] += f / static_cast<double>(in.tasks.size());
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

}  // namespace

CompareInputs compare_inputs(const ExperimentConfig& config, const genome::Genome& evolved, double evolved_val_fitness,
                             const std::map<std::string, std::string>& labels, std::int64_t evolution_runs) {
  CompareInputs in;
  in.evolved = evolved;
  in.evolved_val_fitness = evolved_val_fitness;
  in.tasks = config.tasks;
  in.labels = labels;
  in.run_seed = config.seed;
  in.search_seeds = config.ga.search_seeds;
  in.steps = config.steps;
  in.evolution_runs = evolution_runs;
  in.options = config.compare;
  return in;
}

void write_comparison(const Comparison& c, const std::filesystem::path& dir) {
  write_file_atomic(dir / "comparison.json", c.to_json().dump(2) + "\n");
  write_file_atomic(dir / "comparison.csv", c.to_csv());
}

Comparison run_comparison(RunContext& ctx, const CompareInputs& in) {
  in.options.validate();
  Comparison c;
  c.tasks = in.tasks;
  c.labels = in.labels;
  for (const auto& t : in.tasks) c.seeds[t] = test_seeds(in.run_seed, t, in.options.test_seeds, in.search_seeds);

  // 1. Tune every baseline on validation.
  for (const auto& b : in.options.baselines)
    c.baselines.push_back(sweep_baseline(ctx, b, in.options.lr_grid, in.options.wd_grid, in.tasks, in.run_seed, in.search_seeds));

  // 2. Equal budget: random search over the strongest baseline's hyperparameters.
  if (in.options.equal_budget) {
    std::size_t strongest = 0;
    for (std::size_t i = 1; i < c.baselines.size(); ++i)
      if (c.baselines[i].best().val_fitness > c.baselines[strongest].best().val_fitness) strongest = i;
    const std::string name = c.baselines[strongest].name;
    const std::int64_t budget = in.options.equal_budget_runs > 0 ? in.options.equal_budget_runs : in.evolution_runs;
    const std::int64_t per_config = static_cast<std::int64_t>(in.tasks.size()) * in.search_seeds;
    const std::int64_t configs = std::max<std::int64_t>(1, budget / per_config);
    Rng rng(derive_seed(in.run_seed, "equal-budget/" + name));
    BaselineChoice rs;
    rs.name = name + " (random search)";
    std::vector<genome::Genome> genomes;
    for (std::int64_t i = 0; i < configs; ++i) {
      SweepEntry e;
      e.lr = std::pow(10.0, rng.uniform(-5.0, -1.0));
      e.wd = rng.bernoulli(0.25) ? 0.0 : std::pow(10.0, rng.uniform(-6.0, -2.0));
      e.genome = baseline_genome(name, e.lr, e.wd);
      genomes.push_back(e.genome);
      rs.sweep.push_back(e);
    }
    const auto fit = validation_fitness(ctx, "random-search", genomes, in.tasks, in.run_seed, in.search_seeds);
    for (std::size_t i = 0; i < rs.sweep.size(); ++i) {
      rs.sweep[i].val_fitness = fit[i].overall;
      rs.sweep[i].per_task = fit[i].per_task;
    }
    rs.chosen = argmax(rs.sweep);
    c.random_search = rs;
    c.random_search_runs = configs * per_config;
  }

  // 3. Test split, same fresh seeds for everyone, at each horizon.
  std::vector<std::int64_t> horizons = {in.steps};
  if (in.options.horizon_multiple > 0)
    horizons.push_back(static_cast<std::int64_t>(std::llround(static_cast<double>(in.steps) * in.options.horizon_multiple)));
  for (std::int64_t steps : horizons) {
    HorizonResult h;
    h.steps = steps;
    h.methods.push_back(test_method(ctx, "evolved", "evolved", in.evolved, in.evolved_val_fitness, in, c.seeds, steps));
    for (const auto& b : c.baselines)
      h.methods.push_back(test_method(ctx, b.name + " (tuned)", "baseline", b.best().genome, b.best().val_fitness, in, c.seeds, steps));
    if (c.random_search)
      h.methods.push_back(test_method(ctx, c.random_search->name, "random-search", c.random_search->best().genome,
                                      c.random_search->best().val_fitness, in, c.seeds, steps));
    c.horizons.push_back(h);
  }
  return c;
}

json Comparison::to_json() const {
  json j = {{"format", "evoopt.comparison"}, {"version", 1}, {"tasks", tasks}, {"labels", labels}};
  json seeds_json;
  for (const auto& [t, s] : seeds) seeds_json[t] = s;
  j["test_seeds"] = seeds_json;
  auto choice_json = [](const BaselineChoice& b) {
    json sweep = json::array();
    for (const auto& e : b.sweep)
      sweep.push_back({{"lr", e.lr}, {"weight_decay", e.wd}, {"val_fitness", e.val_fitness}, {"val_per_task", e.per_task}});
    return json{{"name", b.name},
                {"chosen", {{"lr", b.best().lr}, {"weight_decay", b.best().wd}, {"val_fitness", b.best().val_fitness}}},
                {"genome", b.best().genome.to_json()},
                {"sweep", sweep}};
  };
  j["baselines"] = json::array();
  for (const auto& b : baselines) j["baselines"].push_back(choice_json(b));
  if (random_search) {
    j["equal_budget_random_search"] = choice_json(*random_search);
    j["equal_budget_random_search"]["training_runs"] = random_search_runs;
  }
  j["horizons"] = json::array();
  for (const auto& h : horizons) {
    json methods = json::array();
    const MethodResult& ev = h.methods.front();
    for (const auto& m : h.methods) {
      const bool is_evolved = &m == &ev;
      json per_task;
      for (const auto& t : tasks) per_task[t] = stats_json(m.test.at(t), is_evolved ? nullptr : &ev.test.at(t));
      methods.push_back({{"name", m.name},
                         {"kind", m.kind},
                         {"val_fitness", m.val_fitness},
                         {"formula", m.genome.formula()},
                         {"hyperparameters", m.genome.hyperparameters()},
                         {"test", per_task},
                         {"overall", stats_json(m.overall, is_evolved ? nullptr : &ev.overall)}});
    }
    j["horizons"].push_back({{"steps", h.steps}, {"methods", methods}});
  }
  return j;
}

std::string Comparison::to_csv() const {
  std::string out = "steps,method,kind,task,label,mean,std,n,diff_vs_evolved,ci95_low,ci95_high,significant,val_fitness\n";
  for (const auto& h : horizons) {
    const MethodResult& ev = h.methods.front();
    for (const auto& m : h.methods) {
      const bool is_evolved = &m == &ev;
      auto row = [&](const std::string& task, const std::string& label, const std::vector<double>& v, const std::vector<double>& e) {
        const Summary s = summarize(v);
        out += fmt::format("{},\"{}\",{},{},\"{}\",{:.6f},{:.6f},{}", h.steps, m.name, m.kind, task, label, s.mean, s.stddev, s.n);
        if (is_evolved) {
          out += ",,,,";
        } else {
          const PairedDifference d = paired_difference(e, v);
          out += fmt::format(",{:.6f},{:.6f},{:.6f},{}", d.mean, d.ci_low, d.ci_high, d.significant ? "yes" : "no");
        }
        out += fmt::format(",{:.6f}\n", m.val_fitness);
      };
      for (const auto& t : tasks) row(t, labels.count(t) ? labels.at(t) : t, m.test.at(t), ev.test.at(t));
      row("overall", "mean over tasks", m.overall, ev.overall);
    }
  }
  return out;
}

}  // namespace evoopt::experiment
