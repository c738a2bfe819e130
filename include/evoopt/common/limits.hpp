#pragma once
// Every size evoopt accepts has a limit, here and nowhere else. Each is chosen from what
// one machine can hold or do in a run's lifetime, so that a value beyond it is refused at
// the boundary (flags, TOML, JSON, data files) with one line naming the limit, before
// anything is written, instead of wrapping, saturating, allocating until bad_alloc or
// running for years. A check's message reads "NAME = VALUE exceeds the limit of MAX (WHAT)".
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>

#include "evoopt/common/error.hpp"

namespace evoopt::limits {

struct Limit {
  std::int64_t max;
  const char* what;  // what is counted, for messages: "training steps per run"
};

// Training steps of one run (flags, config, [[task]] steps, worker requests, and a run's
// steps after a user task's step scale). The fastest step measured here (a tiny MNIST
// model, one core) takes about 1 ms, so 10^9 steps are eleven days of training for one
// run; and 10^9 × every horizon multiple and step scale stays far inside int64 and is
// exact in a double (2^53), which step arithmetic and schedules rely on.
inline constexpr Limit kSteps{1'000'000'000, "training steps per run"};

// Individuals per generation. Every individual is kept in memory (genome, fitness, parents)
// and written to checkpoint.json and lineage.json; 10^5 of them are ~0.1 GB of JSON, and a
// generation of them is already 10^5 × tasks × seeds training runs.
inline constexpr Limit kPopulation{100'000, "individuals per generation"};

// Generations of one search, and individuals over all of them (population × generations):
// lineage.json holds each individual (a few hundred bytes of JSON), so 10^6 individuals
// stay inside what a run-directory JSON file may hold (kJsonFileBytes).
inline constexpr Limit kGenerations{1'000'000, "generations per search"};
inline constexpr Limit kIndividuals{1'000'000, "individuals per search (population x generations)"};

// Training seeds per genome and task (search, final test, comparison): each seed is one
// more training run of every genome; 10^4 puts a 95% interval's width far below any
// difference between optimizers and keeps a study's run count countable.
inline constexpr Limit kSeeds{10'000, "seeds per genome and task"};
inline constexpr Limit kTrials{10'000, "tuning trials per method"};

// Worker processes of one evaluator (0 = one per core resolves to at most this). The parent
// keeps one socket per worker, and 512 stay below the common soft limit of 1024 open files
// with room for the run directory's; each worker holds its own copy of every task's data
// (about 180 MB for CIFAR-10), so 512 workers already need ~90 GB of memory.
inline constexpr Limit kWorkers{512, "worker processes"};

// Intra-op threads of one in-process run (`evoopt train --threads`): at most this
// machine's hardware threads, since more only time-slice the same cores (and each is an OS
// thread libtorch starts and keeps). A function, not a constant: it is the machine's.
inline Limit threads() {
  const unsigned n = std::thread::hardware_concurrency();
  return {n == 0 ? 1 : static_cast<std::int64_t>(n), "intra-op threads: this machine's hardware threads"};
}

// Examples per minibatch. Larger than any training set evoopt's built-in tasks hold
// (60,000 images), and a CIFAR-10 batch of 65,536 is already ~0.8 GB of float input before
// the activations (a multiple of it).
inline constexpr Limit kBatchSize{65'536, "examples per minibatch"};

// Examples counted in a split (validation sizes, training subsets, evaluation limits):
// libtorch indexes a split with int64 but evoopt's data are uint8 tensors in memory, and
// 2^31 images of even 28×28 bytes are 1.6 TB.
inline constexpr Limit kExamples{2'147'483'647, "examples in a split"};

// Training runs a study may be asked for outright (compare's equal_budget_runs): the run
// store holds one journal line per run (about 1 KB), so 10^7 runs are ~10 GB of journal.
inline constexpr Limit kRuns{10'000'000, "training runs"};

// Genome terms: the registry has 16 terms, and canonical genomes merge repeats.
inline constexpr Limit kGenomeTerms{16, "terms per genome"};

// Classes of a classification task and token values of a next-token task (labels in user
// data are 0 … classes − 1): the classes' names and the model's logits grow with it. 2^20 is
// above ImageNet-21k's 21,841 classes and the largest tokenizer vocabularies in use (~256k).
inline constexpr Limit kClasses{1 << 20, "classes or token values"};

// Values of one image (channels × height × width) of a user task's input: 2^24 bytes (a
// 2048×2048 RGB image is 12.6 M) per uint8 image, times a batch, times the model's width.
inline constexpr Limit kImageValues{1 << 24, "values per image (channels x height x width)"};

// Tokens per training sequence of a next-token task (the LSTM is unrolled over it).
inline constexpr Limit kSequenceLength{65'536, "tokens per training sequence"};

// Bytes of files read whole. A genome file is under 2 KB, a config file a few KB. Run-directory JSON is parsed
// into nlohmann's tree, which takes about ten times the text's bytes. Data files (datasets,
// a user's tensors, TorchScript models, gzip streams once decompressed) are held in memory
// by each worker process. A journal is read whole once when a study starts or resumes.
inline constexpr Limit kGenomeFileBytes{1 << 20, "bytes of a genome file"};
inline constexpr Limit kConfigFileBytes{16 << 20, "bytes of a config file"};
inline constexpr Limit kJsonFileBytes{std::int64_t{1} << 30, "bytes of a JSON file"};
inline constexpr Limit kDataFileBytes{std::int64_t{8} << 30, "bytes of a data file"};
// One encoded image of an image folder (stb_image takes its size as an int).
inline constexpr Limit kImageFileBytes{256 << 20, "bytes of an image file"};
inline constexpr Limit kJournalBytes{std::int64_t{16} << 30, "bytes of a run journal"};

// "VALUE exceeds the limit of MAX (WHAT)", and "NAME = " before it.
inline std::string exceeds(const std::string& value, const Limit& limit) {
  return value + " exceeds the limit of " + std::to_string(limit.max) + " (" + limit.what + ")";
}
inline std::string exceeds(const std::string& name, const std::string& value, const Limit& limit) { return name + " = " + exceeds(value, limit); }

// Throws evoopt::Error when `value` > limit.max.
inline void check(const std::string& name, std::int64_t value, const Limit& limit) {
  if (value > limit.max) throw Error(exceeds(name, std::to_string(value), limit));
}
inline void check(const std::string& name, std::uint64_t value, const Limit& limit) {
  if (value > static_cast<std::uint64_t>(limit.max)) throw Error(exceeds(name, std::to_string(value), limit));
}

}  // namespace evoopt::limits
