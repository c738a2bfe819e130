// The run directory's files read into the report's structs (parts.hpp). Every file the page
// shows is read and checked here before any of the page is made: a damaged file ends with
// one error naming it and the key (JsonView), and write_report writes nothing.
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/common/json_io.hpp"
#include "evoopt/common/run_dir.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/experiment/compare.hpp"
#include "evoopt/experiment/config.hpp"
#include "evoopt/experiment/progress.hpp"
#include "evoopt/experiment/study.hpp"
#include "evoopt/ga/genetic_algorithm.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/report/parts.hpp"
#include "evoopt/train/trainer.hpp"

namespace evoopt::report {
namespace fs = std::filesystem;

namespace {

// A number the writer leaves null when there is none (the mean of no values, the interval
// of one value): NaN.
double nullable_number(const JsonView& v) { return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>(); }

// A value per seed (null: none, shown as −1 like a diverged run).
std::vector<double> seed_values(const JsonView& array) {
  std::vector<double> out;
  for (const auto& x : array.elements()) out.push_back(x.is_null() ? -1.0 : x.get<double>());
  return out;
}

// best_genome.json.
Best read_best(const JsonView& j) {
  Best b;
  b.genome = j.at("genome").convert(genome::Genome::from_json).canonical();
  b.hash = j.get<std::string>("hash");
  b.id = j.get<std::uint64_t>("id");
  b.generation = j.get<int>("generation");
  b.validation_fitness = nullable_number(j.at("validation_fitness"));
  b.validation_per_task = j.get_or<std::map<std::string, double>>("validation_per_task", {});
  return b;
}

// summary.json.
Summary read_summary(const JsonView& j) {
  Summary s;
  const JsonView ft = j.at("final_test");
  if (const auto per_task = ft.find("per_task"); per_task && !per_task->is_null())
    for (const auto& [t, v] : per_task->members())
      s.final_test[t] = {seed_values(v.at("accuracy")), nullable_number(v.at("mean")), nullable_number(v.at("std"))};
  s.overall_mean = nullable_number(ft.at("overall_mean"));
  s.overall_std = nullable_number(ft.at("overall_std"));
  const JsonView c = j.at("cost");
  s.search_runs = c.get<std::int64_t>("search_training_runs");
  s.search_steps = c.get<std::int64_t>("search_training_steps");
  s.search_train_seconds = c.get<double>("search_train_seconds");
  s.other_runs = c.get<std::int64_t>("other_training_runs");
  s.other_steps = c.get<std::int64_t>("other_training_steps");
  s.wall_seconds = c.get<double>("wall_seconds_this_process");
  s.cpu_seconds = c.get<double>("cpu_seconds");
  if (const auto be = j.find("break_even"); be && !be->is_null()) {
    BreakEven b;
    b.baseline = be->get<std::string>("baseline");
    b.verdict = be->get<std::string>("verdict");
    b.baseline_val_fitness = nullable_number(be->at("baseline_val_fitness"));
    b.winner_val_fitness = nullable_number(be->at("winner_val_fitness"));
    for (const auto& m : be->at("measured").elements())
      b.measured.emplace_back(m.get<double>("steps_multiple"), nullable_number(m.at("baseline_val_fitness")));
    s.break_even = b;
  }
  return s;
}

// comparison.json.
Paired read_paired(const JsonView& j) {
  return {nullable_number(j.at("mean")), nullable_number(j.at("ci95_low")), nullable_number(j.at("ci95_high")), j.get<bool>("significant")};
}

Stats read_stats(const JsonView& j) {
  Stats s;
  s.mean = nullable_number(j.at("mean"));
  s.std = nullable_number(j.at("std"));
  s.values = seed_values(j.at("values"));
  if (const auto d = j.find("evolved_minus_this")) s.evolved_minus_this = read_paired(*d);
  if (const auto p = j.find("perplexity"); p && p->get<std::int64_t>("n") > 0) s.perplexity = nullable_number(p->at("mean"));
  return s;
}

std::vector<Horizon> read_horizons(const JsonView& j) {
  std::vector<Horizon> out;
  for (const auto& h : j.elements()) {
    Horizon hz;
    hz.steps = h.get<std::int64_t>("steps");
    for (const auto& m : h.at("methods").elements()) {
      Method x;
      x.name = m.get<std::string>("name");
      x.kind = m.at("kind").convert([](const nlohmann::json& k) { return experiment::method_kind_from_name(k.get<std::string>()); });
      x.hash = m.at("genome").convert(genome::Genome::from_json).hash_hex();
      x.val_fitness = nullable_number(m.at("val_fitness"));
      for (const auto& [t, v] : m.at("test").members()) x.test[t] = read_stats(v);
      x.overall = read_stats(m.at("overall"));
      hz.methods.push_back(std::move(x));
    }
    out.push_back(std::move(hz));
  }
  return out;
}

Comparison read_comparison(const JsonView& j) {
  Comparison c;
  c.protocol = j.at("protocol").convert([](const nlohmann::json& p) { return experiment::protocol_from_name(p.get<std::string>()); });
  const auto read_choice = [](const JsonView& b) {
    const JsonView ch = b.at("chosen");
    return Baseline{b.get<std::string>("name"),     ch.get<std::string>("regime_text"),    ch.get<double>("lr"),
                    ch.get<double>("weight_decay"), nullable_number(ch.at("val_fitness")), b.get<std::int64_t>("training_runs")};
  };
  for (const auto& b : j.at("baselines").elements()) c.baselines.push_back(read_choice(b));
  if (const auto e = j.find("evolved_tuning")) c.evolved_tuning = read_choice(*e);
  c.horizons = read_horizons(j.at("horizons"));
  if (const auto w = j.find("per_workload")) {
    c.workload_tasks = w->get<std::vector<std::string>>("tasks");
    nlohmann::json one = nlohmann::json::array({{{"steps", c.horizons.empty() ? 0 : c.horizons.front().steps}, {"methods", w->at("methods").raw()}}});
    c.per_workload = read_horizons(JsonView(one, w->where()));
  }
  if (const auto t = j.find("transfer")) {
    c.transfer_tasks = t->get<std::vector<std::string>>("tasks");
    c.transfer = read_horizons(t->at("horizons"));
  }
  if (const auto t = j.find("time_to_target")) {
    experiment::TimeToTarget tt;
    tt.workloads = t->get<std::vector<std::string>>("workloads");
    tt.target_method = t->get<std::string>("target_method");
    tt.steps = t->get<std::int64_t>("steps");
    tt.every = t->get<std::int64_t>("every");
    for (const auto& w : tt.workloads) tt.target[w] = nullable_number(t->at("target").at(w));
    for (const auto& m : t->at("methods").elements()) {
      const std::string name = m.get<std::string>("name");
      tt.methods.push_back(name);
      for (const auto& w : tt.workloads) {
        const JsonView s = m.at("steps_to_target").at(w);
        tt.reached[name][w] = s.raw().is_null() ? std::nullopt : std::optional<std::int64_t>(s.get<std::int64_t>());
      }
    }
    c.time_to_target = tt;
  }
  if (const auto a = j.find("attribution")) {
    c.attribution_baseline = a->get<std::string>("baseline");
    c.attribution_steps = a->get<std::int64_t>("steps");
    for (const auto& row : a->at("rows").elements())
      c.attribution.push_back({row.get<std::string>("part"), row.get<std::string>("difference"), read_paired(row.at("paired"))});
  }
  return c;
}

}  // namespace

Run read_run(const fs::path& dir) {
  Run r;
  r.dir = dir;
  r.status = experiment::read_run_status(dir);  // checks config.json and the journal
  r.ex = experiment::load_run_config(dir);
  const RunDirectory run_dir(dir);
  const JsonView config = run_dir.read(run_files::kConfig);
  r.tasks = r.ex.tasks;
  r.transfer_tasks = r.ex.transfer_tasks;
  const auto provenance = config.find("provenance");
  for (const auto& t : r.ex.all_tasks()) {
    std::string source, label;
    if (provenance && !provenance->is_null())
      if (const auto p = provenance->find(t)) {
        source = p->get_or<std::string>("source", "");
        label = p->get_or<std::string>("label", "");
      }
    r.data[t] = {source, label};
    r.labels[t] = experiment::display_label(t, label);
  }
  r.evoopt_version = config.get_or<std::string>("evoopt_version", "");
  if (auto h = run_dir.read_if_present(run_files::kHistory))
    for (const auto& g : h->at("generations").elements()) r.history.push_back(g.convert(ga::GenerationRecord::from_json));
  else if (auto ck = run_dir.read_if_present(run_files::kCheckpoint))
    for (const auto& g : ck->at("history").elements()) r.history.push_back(g.convert(ga::GenerationRecord::from_json));
  if (auto l = run_dir.read_if_present(run_files::kLineage))
    for (const auto& i : l->at("individuals").elements()) {
      r.lineage.push_back(i.convert(ga::Individual::from_json));
      i.get_in<int>("generation", 0, r.ex.ga.generations);  // the family tree's columns
    }
  if (auto b = run_dir.read_if_present(run_files::kBestGenome)) r.best = read_best(*b);
  if (auto s = run_dir.read_if_present(run_files::kSummary)) r.summary = read_summary(*s);
  if (auto c = run_dir.read_if_present(run_files::kComparison)) r.comparison = read_comparison(*c);
  if (r.comparison && r.best)
    for (const auto& e : experiment::journal_entries(run_dir / run_files::kJournal))
      r.journal.emplace_back(e.at("key").convert(eval::RunKey::from_json), e.at("result").convert(train::run_result_from_json));
  return r;
}

}  // namespace evoopt::report
