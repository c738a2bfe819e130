#pragma once
// The genetic algorithm: tournament selection, single-point/uniform crossover,
// mutation, elites; evaluation through an Evaluator; and a run directory that
// makes the search resumable and reproducible:
//   journal.jsonl    the run store (eval/run_store.hpp): one line per completed training run
//   checkpoint.json  population, RNG state, generation, typed log (atomic)
//   history.csv      per generation: best/mean/median/std, per-task best, diversity, gene distance, evaluations, seconds
//   lineage.json     every genome: parents, operators, fitness
//   best_genome.json the best genome by validation fitness, with its formula
//   completions.jsonl (asynchronous mode) the order in which individuals finished
// A run killed at any moment continues from its checkpoint and journal with no
// completed run repeated and identical outputs (timing fields aside).
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/common/json_io.hpp"
#include "evoopt/eval/evaluator.hpp"
#include "evoopt/eval/run_store.hpp"
#include "evoopt/ga/operators.hpp"

namespace evoopt::ga {

// Racing: successive halving over training steps inside each generation. Every new genome
// first trains a short run of `rungs[0]` of the steps (scored on the first `rung_val_size`
// validation images); only the best `keep` fraction goes on to the next rung, and the
// survivors of the last rung train the full budget. Two ways to run a rung:
// - restart (default): each rung is a complete run of its own length (its schedule spans the
//   rung), trained from step 0;
// - `continue_runs`: each rung is the first k steps of the genome's full run (the schedule
//   spans the full budget), saved at the stop (RUN/states/, removed once used); the next
//   rung and the survivor's full run continue from that state, so a survivor trains each
//   step once and its full-budget result is the same as a run that never stopped (the same
//   key in the run store). Cheaper, but a rung then scores a run whose schedule has not
//   annealed yet.
// A genome raced out keeps the fitness of its last rung (marked in lineage.json) and can be
// selected as a parent, ranked below every genome that went further, but never be the winner.
struct RacingOptions {
  bool enabled = false;
  // Fractions of the steps, ascending, each in (0, 1). An eighth, then a half: over six seeds
  // of the default study the winner's test fitness stayed within 0.01 of full evaluation's
  // (docs/results.md) with 59% fewer search steps ({0.25, 0.5} before: 46%).
  std::vector<double> rungs = {0.125, 0.5};
  double keep = 1.0 / 3.0;            // fraction of a rung's genomes that go on (at least one)
  std::int64_t rung_val_size = 1000;  // validation images scoring a rung (0 = all)
  bool continue_runs = false;         // rungs are prefixes of the full run, continued from saved states
  void validate() const;
  // The schema (common/schema.hpp): TOML [ga.racing], config.json "racing".
  template <typename Self, typename Visit>
  static void fields(Self& r, Visit&& visit) {
    using schema::help;
    visit("enabled", r.enabled,
          help("Successive halving over steps in each generation: new genomes train the rungs' fractions of the steps, the best `keep` go on")
              .flag(schema::kEvolve, "--racing"));
    visit("rungs", r.rungs, help("Fractions of the steps, ascending, each in (0, 1)").above(0).below(1));
    visit("keep", r.keep, help("Fraction of a rung's genomes that go on (at least one)").above(0).below(1));
    visit("rung_val_size", r.rung_val_size, help("Validation images scoring a rung (0 = all)").at_least(0).limit(limits::kExamples));
    visit("continue", r.continue_runs,
          help("Rungs are the first steps of the full run, continued from saved states (cheaper; the flag implies --racing)")
              .flag(schema::kEvolve, "--racing-continue")
              .since("false", /*omit=*/true));
  }
};

struct GaOptions {
  int population = 20;
  int generations = 15;
  int tournament = 3;
  int elites = 2;
  double crossover_rate = 0.7;
  MutationOptions mutation;
  bool anneal = false;  // mutation strength falls linearly from 1 to 0.3 over the generations
  SearchSpace space;
  std::uint64_t seed = 0;
  std::vector<std::string> tasks;         // fitness = mean over these of the mean over seeds
  int search_seeds = 1;                   // training seeds per task per genome
  std::vector<std::string> seed_presets;  // empty: default_seed_presets(space.vocabulary)
  // What fills the first generation after the seeds: "random" genomes, or "mutants" of the
  // seeds (each a mutation of the seeds in turn, so the population holds nothing the seeds
  // do not lead to: a search from SGD alone).
  std::string fill = "random";  // validate() refuses any other
  RacingOptions racing;
  // Asynchronous steady state (regularized evolution, Real et al. 2019): no generation
  // barrier. Each individual that finishes joins the population, the oldest member leaves
  // once there are `population`, and a child (tournament, crossover, mutation) takes its
  // place on the workers, which stay busy. population × generations individuals in all;
  // `elites` is not used (aging replaces it; the winner is the best ever seen). Reproducible
  // from the seed and RUN_DIR/completions.jsonl, the order in which individuals finished.
  bool async = false;
  void validate() const;
  nlohmann::json to_json() const;
  static GaOptions from_json(const nlohmann::json& j);  // errors: "/KEY: problem"
  // The schema (common/schema.hpp): TOML [ga], config.json "ga". The search space's
  // vocabulary and term limit are keys of this table.
  template <typename Self, typename Visit>
  static void fields(Self& o, Visit&& visit) {
    using schema::help;
    const unsigned both = schema::kEvolve | schema::kCompare;
    visit("population", o.population, help("Individuals per generation").at_least(2).limit(limits::kPopulation).flag(both));
    visit("generations", o.generations, help("Generations of the search").at_least(1).limit(limits::kGenerations).flag(both));
    visit("tournament", o.tournament, help("Tournament size (at most the population)").at_least(1));
    visit("elites", o.elites, help("Best individuals copied unchanged into the next generation (fewer than the population)").at_least(0));
    visit("crossover_rate", o.crossover_rate, help("Probability that a child is bred by crossover").at_least(0).at_most(1));
    visit("anneal", o.anneal, help("Mutation strength falls linearly from 1 to 0.3 over the generations").flag(both));
    visit("vocabulary", o.space.vocabulary, help("Term vocabulary").one_of("seed (GRAD MOMENTUM RMS_NORM ADAM_TERM SIGN_GRAD), extended").flag(both));
    visit("max_terms", o.space.max_terms, help("Maximum terms per genome").at_least(1).limit(limits::kGenomeTerms).flag(both));
    visit("space", o.space.rules,
          help("What the search evolves: terms (weighted sums of update terms) or programs (statements over primitive operations, seeded "
               "with the presets compiled to programs)")
              .one_of("terms, programs")
              .flag(both, "--space")
              .since("\"terms\"", /*omit=*/true));
    visit("max_statements", o.space.max_statements,
          help("Maximum statements of a program (space = programs)").at_least(1).at_most(32).since("20", /*omit=*/true));
    visit("seed", o.seed, help("The run seed (the study's `seed`)").set_by_program());
    visit("tasks", o.tasks, help("The search tasks (the study's `tasks`)").set_by_program());
    visit("search_seeds", o.search_seeds,
          help("Training seeds per task per genome during the search")
              .at_least(1)
              .limit(limits::kSeeds)
              .flag(schema::kEvolve, "--seeds")
              .flag(schema::kCompare, "--val-seeds"));
    visit("seed_presets", o.seed_presets,
          help("Presets seeding the first generation ([] = sgd, adam, rmsprop, adamw, and signum, lion with the extended vocabulary; with "
               "space = programs also nadam, muon, schedule_free_adamw as programs)")
              .flag(schema::kEvolve, "--seed-presets"));
    visit("fill", o.fill,
          help("What fills the first generation after the seed presets: random genomes, or mutants of the seeds")
              .one_of("random, mutants")
              .flag(schema::kEvolve, "--fill")
              .since("\"random\"", /*omit=*/true));
    visit("mutation", o.mutation, help("Mutation rates and strengths"));
    visit("racing", o.racing, help("Racing (successive halving inside each generation)").since(""));
    visit("async", o.async,
          help("Steady state, no generation barrier: each finished genome joins the population (the oldest leaves) and a child takes its place on "
               "the workers")
              .flag(schema::kEvolve)
              .since("false", /*omit=*/true));
  }
  // Old TOML spellings (before [ga.mutation] and [ga.racing]).
  static std::vector<schema::Rename> renamed() {
    return {{"mutation_rate", "mutation.gene_rate"},
            {"structural_rate", "mutation.structural_rate"},
            {"flip_rate", "mutation.flip_rate"},
            {"racing", "racing.enabled"},
            {"racing_rungs", "racing.rungs"},
            {"racing_keep", "racing.keep"},
            {"racing_rung_val_size", "racing.rung_val_size"},
            {"racing_continue", "racing.continue"}};
  }
};

// The seed of search run `index` on `task`: a function of (run seed, task, index) only.
std::uint64_t search_seed(std::uint64_t run_seed, const std::string& task, int index);

struct Individual {
  std::uint64_t id = 0;
  int generation = 0;
  genome::Genome genome;
  std::string origin;  // "seed:adam", "random", "elite", "crossover", "mutation"
  std::vector<std::uint64_t> parents;
  std::vector<std::string> mutations;
  double fitness = 0.0;
  std::map<std::string, double> per_task;
  std::int64_t raced_out_at = 0;  // racing: the steps of the rung it stopped at (its fitness is from there); 0: full budget
  nlohmann::json to_json() const;
  static Individual from_json(const nlohmann::json& j);
};

// Typed log: one record per generation; printing and plotting read these.
struct GenerationRecord {
  int generation = 0;
  double best = 0, mean = 0, median = 0, stddev = 0;
  std::map<std::string, double> best_per_task;  // the best per-task value in the population
  double diversity = 0;                         // distinct canonical genomes / population
  double gene_distance = 0;                     // mean pairwise genome_distance over the population
  std::map<std::string, double> term_share;     // term name → share of the population whose genome uses it
  int evaluations = 0;                          // training runs this generation needed (not known from earlier ones)
  int reused = 0;                               // runs reused from earlier generations
  std::int64_t steps_saved = 0;                 // racing: training steps not spent compared with training every new run fully
  int rejected = 0;                             // programs: children drawn again before training (not finite or blind to g on the probe)
  double seconds = 0;
  std::uint64_t best_id = 0;
  nlohmann::json to_json() const;
  static GenerationRecord from_json(const nlohmann::json& j);
};

struct GaEvents {
  std::function<void(int generation, int generations)> generation_started;
  std::function<void(int done, int total, const train::RunResult& run)> run_finished;  // after each run trained
  std::function<void(const GenerationRecord&, const Individual& best)> generation_finished;
};

struct GaOutcome {
  bool completed = false;  // false: interrupted (checkpoint written)
  bool resumed = false;
  Individual best;
  std::vector<GenerationRecord> history;
  std::int64_t runs_executed = 0;  // training runs done by this process
  std::int64_t steps_executed = 0;
  std::int64_t runs_total = 0;  // all runs in the journal (this and earlier processes)
  std::int64_t steps_total = 0;
  double train_seconds_total = 0;  // sum of per-run wall seconds in the journal
};

// The search algorithm alone, as ask/tell: a strategy proposes individuals and is told the
// scored population they joined; the drivers around it (GeneticAlgorithm::run, generational;
// run_async, steady-state regularized evolution) evaluate what it asks for, keep the
// journal, checkpoint and report. All randomness comes from the caller's RNG, and the
// strategy's only other state, the next individual id, is checkpointed by the driver.
class Strategy {
 public:
  virtual ~Strategy() = default;
  // Generation 0.
  virtual std::vector<Individual> ask_initial(Rng& rng) = 0;
  // The scored population that later asks breed from (a finished generation, or the
  // steady-state population as it is now).
  virtual void tell(std::vector<Individual> scored) = 0;
  // A whole generation (`generation` >= 1) bred from the population last told.
  virtual std::vector<Individual> ask_generation(int generation, Rng& rng) = 0;
  // One child of the population last told (steady state; `generation` anneals mutation).
  virtual Individual ask_child(int generation, Rng& rng) = 0;
  std::uint64_t next_id = 0;
};

// This project's genetic algorithm: seed presets (default_seed_presets when none are given)
// then random genomes; tournament selection,
// crossover, mutation annealed over the generations, elites. Selection compares fitness at
// the same budget only (racing): `full_steps` is the full budget that rungs are fractions of.
class GeneticStrategy final : public Strategy {
 public:
  GeneticStrategy(GaOptions options, std::int64_t full_steps);
  std::vector<Individual> ask_initial(Rng& rng) override;
  void tell(std::vector<Individual> scored) override;
  std::vector<Individual> ask_generation(int generation, Rng& rng) override;
  Individual ask_child(int generation, Rng& rng) override;

 private:
  double selection_score(const Individual& i) const;
  GaOptions options_;
  std::int64_t full_steps_;
  std::vector<Individual> parents_;
  std::vector<double> score_;  // selection_score of each parent
};

// The presets a first generation starts from when GaOptions::seed_presets is empty: sgd,
// adam, rmsprop, adamw, and signum and lion with the extended vocabulary.
std::vector<std::string> default_seed_presets(genome::Vocabulary vocabulary);

// A racing rung's step count: `fraction` of `full_steps`, at least 1.
std::int64_t rung_steps(double fraction, std::int64_t full_steps);

class GeneticAlgorithm {
 public:
  // `run_dir` empty: nothing is persisted. `store`: the run store to use (a study
  // shares one with its later stages); null: RUN_DIR/journal.jsonl (or memory).
  GeneticAlgorithm(GaOptions options, eval::Evaluator& evaluator, std::filesystem::path run_dir = {}, eval::RunStore* store = nullptr);
  GaOutcome run(const GaEvents& events = {}, const std::atomic<bool>* cancel = nullptr);

 private:
  struct Key {
    std::uint64_t hash;
    std::string task;
    int seed_index;
    bool operator<(const Key& o) const { return std::tie(hash, task, seed_index) < std::tie(o.hash, o.task, o.seed_index); }
  };
  eval::RunRequest request(const Key& k, const genome::Genome& g) const;
  GaOutcome run_async(const GaEvents& events, const std::atomic<bool>* cancel);  // options_.async (src/ga/async.cpp)
  // The state of one run() (src/ga/genetic_algorithm.cpp) and of one run_async()
  // (src/ga/async.cpp), with the steps that drive them.
  struct GenerationalRun;
  struct AsyncRun;
  // runs_total, steps_total, train_seconds_total of the search from the store.
  void tally_search_runs(GaOutcome& outcome) const;
  // Puts the full-budget runs of `individuals` (those not raced out) into results_, from the
  // store (a resume). Throws eval::Interrupted.
  void recall_full_runs(const std::vector<Individual>& individuals, const GaEvents& events, const std::atomic<bool>* cancel, GaOutcome& outcome);
  // An individual's fitness and per-task values from its full-budget runs in results_.
  void score_full_runs(Individual& ind) const;
  void evaluate(std::vector<Individual>& population, GenerationRecord& record, const GaEvents& events, const std::atomic<bool>* cancel,
                GaOutcome& outcome);  // throws eval::Interrupted
  // Racing: trains the rungs for the population's new genomes.
  struct Race {
    std::map<std::uint64_t, Individual> raced_out;             // hash → the individual with its last rung's fitness
    std::map<std::uint64_t, std::vector<std::string>> resume;  // survivors: hash → each run's saved state (task, seed order)
    std::int64_t started = 0;                                  // genomes that entered the race
    std::int64_t trained_steps = 0;                            // steps the rungs trained (the survivors' full runs are added by evaluate)
  };
  Race race(const std::vector<Individual>& population, const GaEvents& events, const std::atomic<bool>* cancel, GaOutcome& outcome);
  // Where a rung run's state is saved: RUN/states/<hash of the run's key>.pt ("" without a run directory).
  std::string state_file(const eval::RunRequest& request) const;
  // Trains (or finds in the store) `requests`, counting them in `outcome`; throws
  // eval::Interrupted when `cancel` stops them (run() and run_async() catch it).
  std::vector<train::RunResult> train_runs(const std::vector<eval::RunRequest>& requests, const GaEvents& events, const std::atomic<bool>* cancel,
                                           GaOutcome& outcome);
  std::vector<Individual> read_checkpoint(const JsonView& checkpoint, Rng& rng, std::vector<Individual>& all, std::vector<GenerationRecord>& history);
  void write_outputs(const std::vector<GenerationRecord>& history, const std::vector<Individual>& all) const;
  void save_checkpoint(int generation, const Rng& rng, const std::vector<Individual>& population, const std::vector<GenerationRecord>& history,
                       const std::vector<Individual>& all) const;

  GaOptions options_;
  eval::Evaluator& evaluator_;
  std::filesystem::path run_dir_;
  std::unique_ptr<Strategy> strategy_;
  std::unique_ptr<eval::RunStore> own_store_;
  eval::RunStore* store_ = nullptr;
  std::map<Key, train::RunResult> results_;  // the full-budget runs of every individual evaluated so far
};

// history.csv text for a log (deterministic formatting).
std::string history_csv(const std::vector<GenerationRecord>& history, const std::vector<std::string>& tasks);

// Fills a record's population statistics (best, mean, median, std, per-task best, diversity,
// gene distance, best id) from `population`.
void summarise_population(const std::vector<Individual>& population, const std::vector<std::string>& tasks, GenerationRecord& rec);

// Best individual by fitness (ties: lowest id) among those trained at the full budget
// (all of them when none was).
const Individual& best_of(const std::vector<Individual>& individuals);

}  // namespace evoopt::ga
