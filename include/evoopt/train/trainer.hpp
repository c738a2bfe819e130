#pragma once
// One genome evaluation: train a fresh model for N steps with GenomeOptimizer,
// then measure accuracy on the validation split (the test split only when
// explicitly asked). Common random numbers: the model's initial weights and
// the minibatch sequence depend only on (task, seed), so genomes evaluated
// with the same seed differ by their optimizer alone.
#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/data/split.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/task/task.hpp"

namespace evoopt::train {

// The version of what a training run computes (model initialisation, batch sampling,
// augmentation, optimizer semantics, evaluation). Bumped whenever a change makes the
// same request give another result, so run stores never mix the two. 2: genome
// format 2 (LION as published, NESTEROV with bias correction = NAdam). 3: channels-last
// models and batches, normalisation folded into one scale and shift (float rounding).
inline constexpr int kTrainingSemanticsVersion = 3;

struct Budget {
  std::int64_t steps = 0;         // 0: the task's default
  std::int64_t log_every = 10;    // loss curve resolution
  double divergence_loss = 50.0;  // a training loss above this counts as divergence
  std::int64_t eval_batch = 250;  // no-grad batches; activations stay below the allocator's mmap threshold
  int threads = 1;                // intra-op threads for this run
  data::Split eval_split = data::Split::Val;
  std::int64_t eval_limit = 0;  // > 0: score on the split's first N images only
  // Layout of convolution weights and image batches. Channels-last is the fast path on
  // oneDNN; Contiguous (NCHW) is the straightforward layout, kept for benchmarks and tests.
  at::MemoryFormat memory_format = at::MemoryFormat::ChannelsLast;
  // Where the model, the data and the optimizer state live: "cpu", "cuda" or "cuda:N" (resolve
  // "auto" with resolve_device first). Results differ between devices (the run store's
  // fingerprint names a non-CPU device).
  std::string device = "cpu";
  // Steps between host reads of the training loss (divergence, loss curve): 0 = every step on
  // the CPU, every `log_every` steps elsewhere (a GPU then never waits for the host in between).
  // Does not change results: the losses of the steps in between are kept on the device and
  // checked in order, so a run stops with the same step, loss and reason either way.
  std::int64_t sync_every = 0;
  const std::atomic<bool>* cancel = nullptr;  // checked every step; a cancelled run is marked and not scored
  // Continuing a run (racing's rungs). `stop_at` > 0: train the first `stop_at` of the `steps`
  // the run is planned for (the schedule spans all `steps`) and score the model there.
  // `save_state`: write the run's whole state at that point (model, optimizer, samplers,
  // counters, loss curve) to this file. `resume_state`: start from a state that an earlier
  // stop of the same run wrote; a missing file, or one of another run, is ignored (the run
  // trains from step 0). Steps 1..n are the same with or without stops, states and resumes:
  // a continued run's result equals the uninterrupted run's (tested), so none of these
  // three is part of a run's key beyond `stop_at` itself.
  std::int64_t stop_at = 0;
  // > 0: score the evaluation split every this many steps while training, into
  // RunResult::val_curve (the run trains exactly as without: the scoring changes no weight,
  // buffer, counter or batch of the run).
  std::int64_t curve_every = 0;
  std::string save_state = {};
  std::string resume_state = {};
  void validate() const;  // throws evoopt::Error naming the bad field
};
// "channels_last" | "contiguous": the layout's name in JSON, fingerprints and the CLI.
const char* layout_name(at::MemoryFormat format);
at::MemoryFormat layout_from_name(const std::string& name);  // throws evoopt::Error

// "auto" -> "cuda" when libtorch sees a CUDA device, else "cpu"; "cpu" and "cuda[:N]" are
// checked (throws evoopt::Error, e.g. "--device cuda: no CUDA device is available ...").
std::string resolve_device(const std::string& requested);
// The one check of a device name's form, without asking for the device: cpu, cuda, cuda:N,
// and `auto` where `allow_auto`. Throws evoopt::Error naming the allowed forms.
void check_device_name(const std::string& name, bool allow_auto);

// The one field list of Budget (all but the per-run `cancel`, `stop_at`, `curve_every`,
// `save_state` and `resume_state`, which requests carry), for worker processes.
nlohmann::json to_json(const Budget& b);
Budget budget_from_json(const nlohmann::json& j);

struct LossPoint {
  std::int64_t step;
  double loss;
  double smoothed;
};

struct RunResult {
  std::string task;
  std::string task_label;  // provenance, e.g. "cifar10 (JPEG mirror, lossy)"
  std::uint64_t seed = 0;
  std::string split;  // "val" or "test"
  // The task's score in [0, 1]: accuracy (classification), or exp(−eval_loss) = 1/perplexity
  // (next-token tasks).
  double accuracy = 0.0;
  double eval_loss = std::numeric_limits<double>::quiet_NaN();  // mean cross-entropy (nats) per prediction on the evaluated split; NaN: not measured
  double final_loss = 0.0;
  double smoothed_loss = 0.0;
  std::vector<LossPoint> loss_curve;
  bool diverged = false;
  std::string divergence_reason;
  bool cancelled = false;  // stopped by Budget::cancel: not a result, never journaled
  std::int64_t steps_done = 0;
  std::int64_t steps_planned = 0;
  // > 0: the run continued from a state saved at this step (Budget::resume_state); it trained
  // steps resumed_at+1 .. steps_done itself. Its results are those of the uninterrupted run.
  std::int64_t resumed_at = 0;
  // How the optimizer split the model's parameters (Muon: which step with Muon, which with its
  // AdamW part; optim::MuonSplit::describe); empty for an optimizer that treats all alike.
  std::string parameter_split;
  // Budget::curve_every > 0: (step, score on the evaluation split) every curve_every steps and
  // at the last step trained (the run's own score).
  std::vector<std::pair<std::int64_t, double>> val_curve;
  double seconds = 0.0;        // the whole run: set-up, training, evaluation
  double train_seconds = 0.0;  // the training steps alone
  // Fitness contribution: the score, or −1 when diverged.
  double fitness() const { return diverged ? -1.0 : accuracy; }
};

nlohmann::json to_json(const RunResult& r);
RunResult run_result_from_json(const nlohmann::json& j);

// Called every `log_every` steps with (step, loss, smoothed loss).
using ProgressFn = std::function<void(std::int64_t, double, double)>;

RunResult train_and_evaluate(const genome::Genome& genome, const task::Task& task, std::uint64_t seed, const Budget& budget,
                             const ProgressFn& progress = {});

struct Evaluation {
  double accuracy = 0;  // share of correct predictions (images, or next bytes)
  double loss = 0;      // mean cross-entropy per prediction, nats
  double score = 0;     // the task's fitness: accuracy, or exp(−loss) for next-token tasks
};
// A model on a split, in no-grad batches of `batch` examples (Task::examples). `limit` > 0:
// the split's first `limit` examples only.
Evaluation evaluate(task::Model& model, const task::Task& task, data::Split split, std::int64_t batch, std::int64_t limit = 0,
                    at::MemoryFormat format = at::MemoryFormat::ChannelsLast);

struct Fitness {
  double overall = 0.0;                    // mean over tasks of the per-task value
  std::map<std::string, double> per_task;  // mean over seeds, diverged = −1
};
// Per task the mean over seeds, overall the mean over tasks.
Fitness aggregate_fitness(const std::vector<RunResult>& runs);

}  // namespace evoopt::train
