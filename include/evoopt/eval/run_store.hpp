#pragma once
// The one store of completed training runs (DIR/journal.jsonl), used by every
// stage of a study: search, final test, break-even, sweeps, comparison. Each line
// is one run under a key that holds everything that changes its result: the
// genome's canonical hash, task, split, the actual step count (and where a racing rung
// stopped), the seed, and the
// evaluator's fingerprint of that task (model, batch size, training subset,
// validation size, split seed, augmentation, dataset checksums, training
// semantics version, evaluation settings). A request whose key is in the store is
// never trained again; a request that differs in any of these is never answered
// from it. Lines are appended durably as runs complete, so a crash loses nothing.
#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/eval/evaluator.hpp"

namespace evoopt::eval {

// The study stage that first needed a run: the journal's "stage" (provenance and cost
// accounting), spelled by run_stage_name in the journal and the CLI.
enum class RunStage { Search, Test, BreakEven, Sweep, RandomSearch, Attribution, Transfer };
const char* run_stage_name(RunStage s);                 // "search", "test", "break-even", "sweep", "random-search", "attribution", "transfer"
RunStage run_stage_from_name(const std::string& name);  // throws evoopt::Error naming the value

struct RunKey {
  std::string genome;  // canonical hash, hex
  std::string task;
  std::string split;  // "val" | "test"
  std::int64_t steps = 0;
  std::uint64_t seed = 0;
  std::string fingerprint;  // Evaluator::fingerprint(task)
  std::int64_t stop = 0;    // > 0: the run stopped and was scored after this many of its steps (racing)
  std::string str() const;
  nlohmann::json to_json() const;
  static RunKey from_json(const nlohmann::json& j);
};

// The key of a request under an evaluator (steps 0 resolves to the evaluator's budget).
RunKey run_key(const Evaluator& evaluator, const RunRequest& request);

class RunStore {
 public:
  // Empty path: in memory only. Throws evoopt::Error naming the file and line of a
  // malformed entry (a torn last line, from a crash mid-append, is cut off instead).
  explicit RunStore(std::filesystem::path path = {});
  std::optional<train::RunResult> find(const RunKey& key) const;
  // `stage` is provenance (which stage first needed the run), not part of the key.
  void append(const RunKey& key, RunStage stage, const train::RunResult& result);
  std::size_t size() const;

  struct Entry {
    RunKey key;
    RunStage stage = RunStage::Search;
    train::RunResult result;
  };
  std::vector<Entry> entries() const;  // in the order they were stored
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;
  std::map<std::string, std::size_t> index_;
};

// What run_with_store reports, serialised: `planned` once, before any training, with
// how many requests the store answers and how many runs must be trained (requests
// with equal keys count once); `trained` for each run this call trains.
struct StoreEvents {
  std::function<void(std::size_t found, std::size_t to_train)> planned;
  std::function<void(const train::RunResult& result)> trained;
};

// Thrown when `cancel` (Ctrl-C) stops runs: the one way a stopped batch leaves the search
// and the study's stages. The runs that finished are in the store; whoever catches it
// writes what it has (a checkpoint) and returns.
struct Interrupted : std::exception {
  const char* what() const noexcept override { return "interrupted"; }
};

// Runs every request through the store: stored results are reused, the rest go to
// the evaluator and are stored the moment each completes. Results come back in
// request order; throws Interrupted when `cancel` stopped a run before it finished.
// Requests with equal keys are trained once.
std::vector<train::RunResult> run_with_store(RunStore& store, Evaluator& evaluator, RunStage stage, const std::vector<RunRequest>& requests,
                                             const StoreEvents& events, const std::atomic<bool>* cancel);

// run_with_store's streaming form (the asynchronous GA): submit() answers a request from
// the store when it holds the key (next_done() returns those first, in submission order) or
// hands it to the evaluator, training equal keys once; next_done() stores each trained run
// the moment it arrives and returns it, in completion order. Empty when nothing is
// outstanding; throws Interrupted on cancel.
class StoreStream {
 public:
  StoreStream(RunStore& store, Evaluator& evaluator, RunStage stage);
  std::uint64_t submit(const RunRequest& request);
  std::optional<Completion> next_done(const std::atomic<bool>* cancel);
  std::size_t outstanding() const { return ready_.size() + waiting_.size(); }
  std::function<void(const train::RunResult&)> on_trained;  // each run this stream trains

 private:
  RunStore& store_;
  Evaluator& evaluator_;
  RunStage stage_;
  std::uint64_t next_ticket_ = 0;
  std::deque<Completion> ready_;  // answered, not yet returned
  struct Waiting {
    RunKey key;
    std::vector<std::uint64_t> tickets;  // this stream's tickets with this key
  };
  std::map<std::uint64_t, Waiting> waiting_;               // by the evaluator's ticket
  std::map<std::string, std::uint64_t> evaluator_ticket_;  // key → the evaluator's ticket
};

}  // namespace evoopt::eval
