#include "evoopt/ga/genetic_algorithm.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/common/run_dir.hpp"
#include "evoopt/data/checksum.hpp"
#include "evoopt/eval/halving.hpp"

namespace evoopt::ga {
namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------- options

void RacingOptions::validate() const {
  if (!enabled) return;
  if (rungs.empty()) throw Error("racing needs at least one rung");
  double prev = 0;
  for (double r : rungs) {
    if (!(r > prev && r < 1)) throw Error(fmt::format("racing rungs must be ascending fractions in (0, 1), got {}", r));
    prev = r;
  }
  if (!(keep > 0 && keep < 1)) throw Error(fmt::format("racing keep must be in (0, 1), got {}", keep));
  if (rung_val_size < 0) throw Error("racing rung validation size must be >= 0 (0 = all), got " + std::to_string(rung_val_size));
}

void GaOptions::validate() const {
  racing.validate();
  if (async && racing.enabled) throw Error("racing and the asynchronous mode cannot be combined (racing needs generations)");
  if (population < 2) throw Error("population must be >= 2, got " + std::to_string(population));
  if (generations < 1) throw Error("generations must be >= 1, got " + std::to_string(generations));
  if (tournament < 1 || tournament > population)
    throw Error("tournament size " + std::to_string(tournament) + " is outside [1, population " + std::to_string(population) + "]");
  if (elites < 0 || elites >= population) throw Error("elites " + std::to_string(elites) + " must lie in [0, population)");
  if (!(crossover_rate >= 0 && crossover_rate <= 1)) throw Error("crossover rate must lie in [0, 1]");
  if (tasks.empty()) throw Error("no tasks given");
  if (search_seeds < 1) throw Error("search seeds per task must be >= 1, got " + std::to_string(search_seeds));
  space.validate();
  mutation.validate();
  for (const auto& p : seed_presets) {
    if (space.rules == RuleSpace::Programs) {
      genome::program_preset(p);  // throws, listing the program presets
      continue;
    }
    if (!genome::preset(p).is_terms())
      throw Error("seed preset '" + p + "' is a hand-made optimizer (a comparison baseline); the term search seeds its population with term genomes");
  }
  if (fill != "random" && fill != "mutants") throw Error("fill = \"" + fill + "\" is not one of random, mutants");
}

json GaOptions::to_json() const { return schema::to_json(*this); }

GaOptions GaOptions::from_json(const json& j) {
  GaOptions o;
  schema::from_json(o, j, "/");
  return o;
}

std::uint64_t search_seed(std::uint64_t run_seed, const std::string& task, int index) {
  return derive_seed(run_seed, "search/" + task, static_cast<std::uint64_t>(index));
}

// ---------------------------------------------------------------- records

json Individual::to_json() const {
  return {{"id", id},
          {"generation", generation},
          {"hash", genome.hash_hex()},
          {"genome", genome.to_json()},
          {"origin", origin},
          {"parents", parents},
          {"mutations", mutations},
          {"fitness", fitness},
          {"per_task", per_task},
          {"formula", genome.formula()},
          {"raced_out_at", raced_out_at}};
}

Individual Individual::from_json(const json& j) {
  Individual i;
  i.id = j.at("id");
  i.generation = j.at("generation");
  i.genome = genome::Genome::from_json(j.at("genome"));
  i.origin = j.at("origin");
  i.parents = j.at("parents").get<std::vector<std::uint64_t>>();
  i.mutations = j.at("mutations").get<std::vector<std::string>>();
  i.fitness = j.at("fitness");
  i.per_task = j.at("per_task").get<std::map<std::string, double>>();
  i.raced_out_at = j.value("raced_out_at", std::int64_t{0});
  return i;
}

json GenerationRecord::to_json() const {
  json j = {{"generation", generation},
            {"best", best},
            {"mean", mean},
            {"median", median},
            {"std", stddev},
            {"best_per_task", best_per_task},
            {"diversity", diversity},
            {"gene_distance", gene_distance},
            {"term_share", term_share},
            {"evaluations", evaluations},
            {"reused", reused},
            {"steps_saved", steps_saved},
            {"seconds", seconds},
            {"best_id", best_id}};
  if (rejected != 0) j["rejected"] = rejected;  // written where programs were searched only
  return j;
}

GenerationRecord GenerationRecord::from_json(const json& j) {
  GenerationRecord r;
  r.generation = j.at("generation");
  r.best = j.at("best");
  r.mean = j.at("mean");
  r.median = j.at("median");
  r.stddev = j.at("std");
  r.best_per_task = j.at("best_per_task").get<std::map<std::string, double>>();
  r.diversity = j.at("diversity");
  r.gene_distance = j.value("gene_distance", 0.0);  // absent in checkpoints written before it existed
  if (j.contains("term_share")) r.term_share = j.at("term_share").get<std::map<std::string, double>>();
  r.evaluations = j.at("evaluations");
  r.reused = j.at("reused");
  r.steps_saved = j.value("steps_saved", std::int64_t{0});
  r.rejected = j.value("rejected", 0);
  r.seconds = j.at("seconds");
  r.best_id = j.at("best_id");
  return r;
}

std::string history_csv(const std::vector<GenerationRecord>& history, const std::vector<std::string>& tasks) {
  std::string out = "generation,best,mean,median,std";
  for (const auto& t : tasks) out += ",best_" + t;
  out += ",diversity,gene_distance,evaluations,reused,steps_saved,seconds\n";
  for (const auto& r : history) {
    out += fmt::format("{},{:.6f},{:.6f},{:.6f},{:.6f}", r.generation, r.best, r.mean, r.median, r.stddev);
    for (const auto& t : tasks) out += fmt::format(",{:.6f}", r.best_per_task.count(t) ? r.best_per_task.at(t) : 0.0);
    out += fmt::format(",{:.4f},{:.4f},{},{},{},{:.2f}\n", r.diversity, r.gene_distance, r.evaluations, r.reused, r.steps_saved, r.seconds);
  }
  return out;
}

const Individual& best_of(const std::vector<Individual>& individuals) {
  if (individuals.empty()) throw Error("no individuals");
  bool any_full = false;
  for (const auto& i : individuals) any_full = any_full || i.raced_out_at == 0;
  const Individual* best = nullptr;
  for (const auto& i : individuals) {
    if (any_full && i.raced_out_at != 0) continue;
    if (best == nullptr || i.fitness > best->fitness || (i.fitness == best->fitness && i.id < best->id)) best = &i;
  }
  return *best;
}

void summarise_population(const std::vector<Individual>& population, const std::vector<std::string>& tasks, GenerationRecord& rec) {
  std::vector<double> f;
  for (const auto& i : population) f.push_back(i.fitness);
  std::vector<double> sorted = f;
  std::sort(sorted.begin(), sorted.end());
  const std::size_t n = sorted.size();
  rec.best = best_of(population).fitness;  // a genome raced out is never the best (best_of)
  rec.mean = 0;
  for (double v : f) rec.mean += v;
  rec.mean /= static_cast<double>(n);
  rec.median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  double var = 0;
  for (double v : f) var += (v - rec.mean) * (v - rec.mean);
  rec.stddev = std::sqrt(var / static_cast<double>(n));
  for (const auto& t : tasks) {
    double b = -1e9;
    for (const auto& i : population)
      if (i.raced_out_at == 0) b = std::max(b, i.per_task.at(t));
    rec.best_per_task[t] = b;
  }
  std::set<std::uint64_t> distinct;
  for (const auto& i : population) distinct.insert(i.genome.hash());
  rec.diversity = static_cast<double>(distinct.size()) / static_cast<double>(n);
  double distance_sum = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = i + 1; k < n; ++k) distance_sum += genome::genome_distance(population[i].genome, population[k].genome);
  rec.gene_distance = n > 1 ? distance_sum / (0.5 * static_cast<double>(n) * static_cast<double>(n - 1)) : 0.0;
  rec.best_id = best_of(population).id;
  rec.rejected = 0;
  for (const auto& i : population)
    for (const auto& m : i.mutations) rec.rejected += m.rfind("rejected:", 0) == 0 ? 1 : 0;
  rec.term_share.clear();
  for (const auto& i : population) {
    std::set<std::string> used;
    for (const auto& t : i.genome.terms) used.insert(std::string(genome::term_info(t.term).name));
    for (const auto& name : used) rec.term_share[name] += 1.0 / static_cast<double>(n);
  }
}

// ---------------------------------------------------------------- algorithm

GeneticAlgorithm::GeneticAlgorithm(GaOptions options, eval::Evaluator& evaluator, fs::path run_dir, eval::RunStore* store)
    : options_(std::move(options)), evaluator_(evaluator), run_dir_(std::move(run_dir)), store_(store) {
  if (store_ == nullptr) {
    own_store_ = std::make_unique<eval::RunStore>(RunDirectory(run_dir_) / run_files::kJournal);
    store_ = own_store_.get();
  }
  if (options_.seed_presets.empty()) options_.seed_presets = default_seed_presets(options_.space.vocabulary);
  options_.validate();
  strategy_ = std::make_unique<GeneticStrategy>(options_, evaluator_.default_steps());
}

eval::RunRequest GeneticAlgorithm::request(const Key& k, const genome::Genome& g) const {
  return {g, k.task, search_seed(options_.seed, k.task, k.seed_index), data::Split::Val, evaluator_.default_steps()};
}

std::vector<train::RunResult> GeneticAlgorithm::train_runs(const std::vector<eval::RunRequest>& requests, const GaEvents& events,
                                                           const std::atomic<bool>* cancel, GaOutcome& outcome) {
  int total = 0, done = 0;
  eval::StoreEvents store_events;
  store_events.planned = [&](std::size_t, std::size_t to_train) { total = static_cast<int>(to_train); };
  store_events.trained = [&](const train::RunResult& r) {
    ++outcome.runs_executed;
    outcome.steps_executed += r.steps_done - r.resumed_at;
    ++done;
    if (events.run_finished) events.run_finished(done, total, r);
  };
  return eval::run_with_store(*store_, evaluator_, eval::RunStage::Search, requests, store_events, cancel);
}

std::string GeneticAlgorithm::state_file(const eval::RunRequest& request) const {
  if (run_dir_.empty()) return {};  // no run directory: rungs retrain from step 0 (the same results)
  const std::string key = eval::run_key(evaluator_, request).str();
  return (run_dir_ / "states" / (data::sha256_hex(key.data(), key.size()).substr(0, 24) + ".pt")).string();
}

namespace {
void remove_state(const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  fs::remove(path, ec);  // best effort: a state left behind is only disk space
}
// What a run cost in steps it trained itself (a continued run: only those after its state).
std::int64_t own_steps(const train::RunResult& r) { return std::max<std::int64_t>(0, r.steps_planned - r.resumed_at); }

// The rungs: the configured fractions of the full budget that stop before it.
std::vector<std::int64_t> rung_stops(const std::vector<double>& rungs, const eval::Evaluator& evaluator) {
  const std::int64_t full = evaluator.default_steps();
  std::vector<std::int64_t> stops;
  for (double fraction : rungs) {
    if (rung_steps(fraction, evaluator.default_steps()) >= full) break;
    stops.push_back(rung_steps(fraction, evaluator.default_steps()));
  }
  return stops;
}

// A race's racers and what each carries from rung to rung: its runs' saved states from its
// last rung (continued by the next rung, then the full run; task, seed order), and its fitness
// at the last rung it ran.
struct RaceField {
  std::vector<const Individual*> racers;
  std::size_t runs_per_genome = 0;
  std::vector<std::vector<std::string>> states;
  std::vector<Individual> scored;
};

// Scores the racers `alive` at the rung that stopped at `stop` from their runs `found` (racer
// by racer, task, seed order): each racer's fitness there, its saved states replaced by `saves`
// (the ones this rung continued removed), and the rung's own steps added to `trained_steps`.
std::vector<double> score_rung(RaceField& field, const std::vector<std::size_t>& alive, std::int64_t stop, const std::vector<train::RunResult>& found,
                               const std::vector<std::string>& saves, std::int64_t& trained_steps) {
  const std::size_t runs_per_genome = field.runs_per_genome;
  std::vector<double> fitness;
  for (std::size_t a = 0; a < alive.size(); ++a) {
    const std::size_t k = alive[a];
    std::vector<train::RunResult> runs;
    for (std::size_t j = 0; j < runs_per_genome; ++j) {
      const train::RunResult& r = found[a * runs_per_genome + j];
      runs.push_back(r);
      trained_steps += own_steps(r);
      remove_state(field.states[k][j]);  // continued by this rung: not needed again
      field.states[k][j] = saves[a * runs_per_genome + j];
    }
    const auto f = train::aggregate_fitness(runs);
    field.scored[k] = *field.racers[k];
    field.scored[k].fitness = f.overall;
    field.scored[k].per_task = f.per_task;
    field.scored[k].raced_out_at = stop;
    fitness.push_back(f.overall);
  }
  return fitness;
}
}  // namespace

GeneticAlgorithm::Race GeneticAlgorithm::race(const std::vector<Individual>& population, const GaEvents& events, const std::atomic<bool>* cancel,
                                              GaOutcome& outcome) {
  // The racers: distinct genomes (in population order) whose full-budget runs are not all known.
  std::vector<const Individual*> racers;
  std::set<std::uint64_t> seen;
  for (const auto& ind : population) {
    if (!seen.insert(ind.genome.hash()).second) continue;
    bool known = true;
    for (const auto& task : options_.tasks)
      for (int s = 0; s < options_.search_seeds; ++s) known = known && results_.count({ind.genome.hash(), task, s}) > 0;
    if (!known) racers.push_back(&ind);
  }
  const auto runs_per_genome = static_cast<std::size_t>(options_.tasks.size()) * static_cast<std::size_t>(options_.search_seeds);
  Race out;
  out.started = static_cast<std::int64_t>(racers.size());
  const std::vector<std::int64_t> stops = rung_stops(options_.racing.rungs, evaluator_);
  RaceField field{racers, runs_per_genome, std::vector<std::vector<std::string>>(racers.size(), std::vector<std::string>(runs_per_genome)),
                  std::vector<Individual>(racers.size())};
  eval::Halving plan;
  plan.rungs = stops.size();
  plan.keep = [this](std::size_t, std::size_t alive) {
    return static_cast<std::size_t>(std::ceil(options_.racing.keep * static_cast<double>(alive)));
  };
  plan.stop_at_one = true;  // a race of one is no race
  plan.on_cut = [&](std::size_t, const std::vector<std::size_t>& cut) {
    for (std::size_t k : cut) {
      out.raced_out[racers[k]->genome.hash()] = field.scored[k];
      for (const auto& f : field.states[k]) remove_state(f);
    }
  };
  const auto score = [&](std::size_t rung, const std::vector<std::size_t>& alive) {
    const std::int64_t stop = stops[rung];
    std::vector<eval::RunRequest> requests;
    std::vector<std::string> saves;
    for (std::size_t k : alive) {
      std::size_t j = 0;
      for (const auto& task : options_.tasks)
        for (int s = 0; s < options_.search_seeds; ++s, ++j) {
          // Continuing: a rung is the first `stop` steps of the genome's full run (the schedule
          // spans the full budget); it continues the previous rung's run from its saved state
          // and saves its own for the next.
          eval::RunRequest r = request({racers[k]->genome.hash(), task, s}, racers[k]->genome);
          r.eval_limit = options_.racing.rung_val_size;
          if (options_.racing.continue_runs) {
            r.stop_at = stop;
            r.resume_state = field.states[k][j];
            r.save_state = state_file(r);
          } else {
            r.steps = stop;  // restart: a complete run of the rung's length
          }
          saves.push_back(r.save_state);
          requests.push_back(r);
        }
    }
    const auto found = train_runs(requests, events, cancel, outcome);
    return score_rung(field, alive, stop, found, saves, out.trained_steps);
  };
  for (std::size_t k : eval::successive_halving(racers.size(), plan, score)) out.resume[racers[k]->genome.hash()] = field.states[k];
  return out;
}

void GeneticAlgorithm::evaluate(std::vector<Individual>& population, GenerationRecord& record, const GaEvents& events,
                                const std::atomic<bool>* cancel, GaOutcome& outcome) {
  Race raced;
  if (options_.racing.enabled) raced = race(population, events, cancel, outcome);
  // Every (genome, task, seed) this generation needs at the full budget, de-duplicated by canonical hash.
  std::vector<Key> needed;
  std::vector<eval::RunRequest> requests;
  std::set<Key> seen;
  for (const auto& ind : population) {
    if (raced.raced_out.count(ind.genome.hash())) continue;
    const auto resume = raced.resume.find(ind.genome.hash());
    std::size_t j = 0;
    for (const auto& task : options_.tasks)
      for (int s = 0; s < options_.search_seeds; ++s, ++j) {
        Key k{ind.genome.hash(), task, s};
        if (!seen.insert(k).second || results_.count(k)) continue;
        needed.push_back(k);
        requests.push_back(request(k, ind.genome));
        if (resume != raced.resume.end()) requests.back().resume_state = resume->second[j];  // a survivor: continues its last rung
      }
  }
  const auto found = train_runs(requests, events, cancel, outcome);
  for (std::size_t i = 0; i < needed.size(); ++i) {
    results_[needed[i]] = found[i];
    if (raced.resume.count(needed[i].hash)) raced.trained_steps += own_steps(found[i]);
  }
  for (const auto& [hash, files] : raced.resume)
    for (const auto& f : files) remove_state(f);
  if (options_.racing.enabled) {
    // Steps racing saved: what full evaluation of every racer would train, less what the
    // rungs and the survivors' continued full runs trained.
    const std::int64_t full_cost =
        evaluator_.default_steps() * raced.started * static_cast<std::int64_t>(options_.tasks.size()) * options_.search_seeds;
    record.steps_saved = raced.started > 1 ? full_cost - raced.trained_steps : 0;
  }
  for (auto& ind : population) {
    if (const auto it = raced.raced_out.find(ind.genome.hash()); it != raced.raced_out.end()) {
      ind.fitness = it->second.fitness;
      ind.per_task = it->second.per_task;
      ind.raced_out_at = it->second.raced_out_at;
      continue;
    }
    score_full_runs(ind);
  }
  record.reused = static_cast<int>(population.size() * options_.tasks.size() * static_cast<std::size_t>(options_.search_seeds)) - record.evaluations;
}

void GeneticAlgorithm::recall_full_runs(const std::vector<Individual>& individuals, const GaEvents& events, const std::atomic<bool>* cancel,
                                        GaOutcome& outcome) {
  std::vector<Key> keys;
  std::vector<eval::RunRequest> requests;
  std::set<Key> seen;
  for (const auto& ind : individuals) {
    if (ind.raced_out_at != 0) continue;
    for (const auto& task : options_.tasks)
      for (int s = 0; s < options_.search_seeds; ++s) {
        const Key k{ind.genome.hash(), task, s};
        if (results_.count(k) || !seen.insert(k).second) continue;
        keys.push_back(k);
        requests.push_back(request(k, ind.genome));
      }
  }
  const auto found = train_runs(requests, events, cancel, outcome);
  for (std::size_t i = 0; i < keys.size(); ++i) results_[keys[i]] = found[i];
}

void GeneticAlgorithm::score_full_runs(Individual& ind) const {
  std::vector<train::RunResult> runs;
  for (const auto& task : options_.tasks)
    for (int s = 0; s < options_.search_seeds; ++s) runs.push_back(results_.at({ind.genome.hash(), task, s}));
  const auto f = train::aggregate_fitness(runs);
  ind.fitness = f.overall;
  ind.per_task = f.per_task;
  ind.raced_out_at = 0;
}

void GeneticAlgorithm::write_outputs(const std::vector<GenerationRecord>& history, const std::vector<Individual>& all) const {
  if (run_dir_.empty()) return;
  const RunDirectory dir(run_dir_);
  dir.write_text(run_files::kHistoryCsv, history_csv(history, options_.tasks));
  json records = json::array();
  for (const auto& r : history) records.push_back(r.to_json());
  dir.write_json(run_files::kHistory, json{{"generations", records}}, 1);
  json lineage = json::array();
  for (const auto& i : all) lineage.push_back(i.to_json());
  dir.write_json(run_files::kLineage, json{{"individuals", lineage}}, 1);
  const Individual& best = best_of(all);
  json b = {{"genome", best.genome.to_json()},
            {"formula", best.genome.formula()},
            {"hyperparameters", best.genome.hyperparameters()},
            {"hash", best.genome.hash_hex()},
            {"id", best.id},
            {"generation", best.generation},
            {"validation_fitness", best.fitness},
            {"validation_per_task", best.per_task}};
  dir.write_json(run_files::kBestGenome, b, 2);
}

void GeneticAlgorithm::save_checkpoint(int generation, const Rng& rng, const std::vector<Individual>& population,
                                       const std::vector<GenerationRecord>& history, const std::vector<Individual>& all) const {
  if (run_dir_.empty()) return;
  std::ostringstream rng_state;
  rng_state << const_cast<Rng&>(rng).engine();
  json pop = json::array(), everyone = json::array(), hist = json::array();
  for (const auto& i : population) pop.push_back(i.id);
  for (const auto& i : all) everyone.push_back(i.to_json());
  for (const auto& r : history) hist.push_back(r.to_json());
  json ck = {{"generation", generation}, {"next_id", strategy_->next_id}, {"rng", rng_state.str()},
             {"population", pop},        {"individuals", everyone},       {"history", hist}};
  RunDirectory(run_dir_).write_json(run_files::kCheckpoint, ck, -1);
}

// Restores a checkpoint: the RNG, the strategy's next id, every individual and the history;
// returns the last finished generation's population. Every error names the file and the key
// (JsonView), and comes before anything is written.
std::vector<Individual> GeneticAlgorithm::read_checkpoint(const JsonView& ck, Rng& rng, std::vector<Individual>& all,
                                                          std::vector<GenerationRecord>& history) {
  const int g = ck.get<int>("generation");
  if (g < -1 || g >= options_.generations)
    ck.at("generation")
        .fail(fmt::format("generation {} is outside -1..{} (the run has {} generations)", g, options_.generations - 1, options_.generations));
  strategy_->next_id = ck.get<std::uint64_t>("next_id");
  std::istringstream rs(ck.get<std::string>("rng"));
  rs >> rng.engine();
  if (rs.fail()) ck.at("rng").fail("the RNG state is not a valid mt19937_64 state");
  rs >> std::ws;
  if (!rs.eof()) ck.at("rng").fail("the RNG state has trailing data");
  for (const JsonView& j : ck.at("individuals").elements()) all.push_back(j.convert(Individual::from_json));
  for (const JsonView& j : ck.at("history").elements()) history.push_back(j.convert(GenerationRecord::from_json));
  if (static_cast<int>(history.size()) != g + 1)
    ck.at("history").fail(fmt::format("{} generation records for generation {} (expected {})", history.size(), g, g + 1));
  std::map<std::uint64_t, Individual> by_id;
  for (std::size_t k = 0; k < all.size(); ++k) {
    if (all[k].id >= strategy_->next_id)
      ck.at("individuals").at(k).fail(fmt::format("individual {} is not below next_id {}", all[k].id, strategy_->next_id));
    by_id[all[k].id] = all[k];
  }
  std::vector<Individual> last;
  for (const JsonView& id : ck.at("population").elements()) {
    const auto it = by_id.find(id.get<std::uint64_t>());
    if (it == by_id.end()) id.fail("population member " + id.raw().dump() + " is not among the individuals");
    last.push_back(it->second);
  }
  if (g >= 0 && static_cast<int>(last.size()) != options_.population)
    ck.at("population").fail(fmt::format("population has {} members, the run {}", last.size(), options_.population));
  return last;
}

// One generational run: the RNG, every individual so far, the population of the generation
// being evaluated and the history.
struct GeneticAlgorithm::GenerationalRun {
  GenerationalRun(GeneticAlgorithm& ga, const GaEvents& events, const std::atomic<bool>* cancel, GaOutcome& outcome);

  bool resume(const RunDirectory& dir);  // false: interrupted
  bool run_generation();                 // false: interrupted
  void keep_progress();

  GeneticAlgorithm& ga;
  const GaEvents& events;
  const std::atomic<bool>* cancel;
  GaOutcome& outcome;
  Rng rng;
  std::vector<Individual> all, population;
  std::vector<GenerationRecord> history;
  int generation = 0;
  // The state a checkpoint of "nothing completed yet" (generation −1) holds.
  Rng rng_at_start;
  std::uint64_t next_id_at_start;
  // Runs that earlier generations already needed (for the `evaluations` column,
  // which must not depend on where a previous process stopped).
  std::set<Key> known;
};

GeneticAlgorithm::GenerationalRun::GenerationalRun(GeneticAlgorithm& ga, const GaEvents& events, const std::atomic<bool>* cancel, GaOutcome& outcome)
    : ga(ga),
      events(events),
      cancel(cancel),
      outcome(outcome),
      rng(derive_seed(ga.options_.seed, "ga")),
      rng_at_start(rng),
      next_id_at_start(ga.strategy_->next_id) {}

// What finished, into the outcome of an interrupted run.
void GeneticAlgorithm::GenerationalRun::keep_progress() {
  outcome.history = history;
  if (!all.empty()) outcome.best = best_of(all);
}

// Continues from the checkpoint in `dir`: generation 0 asked again when it was the one
// interrupted, else the next generation bred from the last finished one.
bool GeneticAlgorithm::GenerationalRun::resume(const RunDirectory& dir) {
  const std::vector<Individual> last = ga.read_checkpoint(dir.read(run_files::kCheckpoint), rng, all, history);
  outcome.resumed = true;
  generation = static_cast<int>(history.size());
  // The full-budget runs of every individual so far, as an uninterrupted run holds them:
  // racing races only the genomes that have none (the store answers them, nothing trains).
  try {
    ga.recall_full_runs(all, events, cancel, outcome);
  } catch (const eval::Interrupted&) {
    keep_progress();
    return false;
  }
  if (generation == 0) {
    rng_at_start = rng;
    next_id_at_start = ga.strategy_->next_id;
    population = ga.strategy_->ask_initial(rng);  // interrupted during generation 0
  } else {
    ga.write_outputs(history, all);
    if (generation < ga.options_.generations) {
      ga.strategy_->tell(last);
      population = ga.strategy_->ask_generation(generation, rng);
    }
  }
  return true;
}

// Evaluates generation `generation`, records it (history, checkpoint, outputs, event) and
// breeds the next.
bool GeneticAlgorithm::GenerationalRun::run_generation() {
  const auto t0 = std::chrono::steady_clock::now();
  if (events.generation_started) events.generation_started(generation, ga.options_.generations);
  GenerationRecord rec;
  rec.generation = generation;
  std::set<Key> fresh;
  for (const auto& i : population)
    for (const auto& t : ga.options_.tasks)
      for (int s = 0; s < ga.options_.search_seeds; ++s)
        if (!known.count({i.genome.hash(), t, s})) fresh.insert({i.genome.hash(), t, s});
  rec.evaluations = static_cast<int>(fresh.size());
  try {
    ga.evaluate(population, rec, events, cancel, outcome);
  } catch (const eval::Interrupted&) {
    // Generations ≥ 1 already have the checkpoint of the one before; the
    // first gets one that says "start from the beginning".
    if (generation == 0 && !RunDirectory(ga.run_dir_).has(run_files::kCheckpoint) && !ga.run_dir_.empty()) {
      const std::uint64_t keep = ga.strategy_->next_id;
      ga.strategy_->next_id = next_id_at_start;
      ga.save_checkpoint(-1, rng_at_start, {}, {}, {});
      ga.strategy_->next_id = keep;
    }
    outcome.completed = false;
    keep_progress();
    return false;
  }
  known.insert(fresh.begin(), fresh.end());
  summarise_population(population, ga.options_.tasks, rec);
  rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  all.insert(all.end(), population.begin(), population.end());
  history.push_back(rec);
  ga.save_checkpoint(generation, rng, population, history, all);
  ga.write_outputs(history, all);
  if (events.generation_finished) events.generation_finished(rec, best_of(population));
  if (generation + 1 < ga.options_.generations) {
    ga.strategy_->tell(population);
    population = ga.strategy_->ask_generation(generation + 1, rng);
  }
  return true;
}

GaOutcome GeneticAlgorithm::run(const GaEvents& events, const std::atomic<bool>* cancel) {
  if (options_.async) return run_async(events, cancel);
  GaOutcome outcome;
  if (!run_dir_.empty()) fs::create_directories(run_dir_);
  results_.clear();

  GenerationalRun run(*this, events, cancel, outcome);
  if (const RunDirectory dir(run_dir_); dir.has(run_files::kCheckpoint)) {
    if (!run.resume(dir)) return outcome;
  } else {
    if (store_->size() > 0) outcome.resumed = true;
    run.population = strategy_->ask_initial(run.rng);
  }
  for (const auto& i : run.all)
    for (const auto& t : options_.tasks)
      for (int s = 0; s < options_.search_seeds; ++s) run.known.insert({i.genome.hash(), t, s});

  for (; run.generation < options_.generations; ++run.generation)
    if (!run.run_generation()) return outcome;
  outcome.completed = true;
  outcome.history = run.history;
  outcome.best = best_of(run.all);
  tally_search_runs(outcome);
  return outcome;
}

}  // namespace evoopt::ga
