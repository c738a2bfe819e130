#pragma once
// The optimizer a genome trains with, as a training loop drives it: a term genome's
// GenomeOptimizer, or the hand-made optimizer a genome names (genome::Algorithm) with the
// genome's hyperparameters mapped onto it:
//   AdEMAMix             lr, β1, β2, β3, α, ε, λ; the α and β3 warmup spans the run (the
//                        authors' T_α = T_β3 = the run's length)
//   Schedule-Free AdamW  lr, β1, β2, ε, λ, warmup (its own warmup; it has no decay)
//   Muon                 lr and momentum (β1) for the hidden matrices, aux_lr for its AdamW part
//                        (the authors' β's (0.9, 0.95) and ε 1e-10), λ for both
// The genome's warmup/cosine schedule scales every group's learning rate of AdEMAMix and Muon
// step by step (schedule_factor), and clip_norm clips the gradients by their global norm over
// all parameters before each step, as a term genome's GenomeOptimizer does for its group.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include "evoopt/genome/genome.hpp"

namespace evoopt::optim {

class AlgorithmOptimizer {
 public:
  // `named_parameters`: the model's trainable parameters by name, in the model's order (Muon's
  // split reads the order: the first and last matrices are the input layer and the head).
  // `muon_names`, when given, names the parameters Muon steps (the rest go to its AdamW part).
  AlgorithmOptimizer(const genome::Genome& genome, const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters,
                     std::int64_t total_steps, const std::vector<std::string>& muon_names = {});

  // Step `step` (1-based) of the run, with the gradients the parameters hold.
  void step(std::int64_t step);
  torch::optim::Optimizer& optimizer() { return *optimizer_; }
  const torch::optim::Optimizer& optimizer() const { return *optimizer_; }
  // The weights a model is evaluated with: Schedule-Free AdamW moves the parameters from y
  // (where gradients are taken) to x and back; every other algorithm evaluates where it trains.
  void to_evaluation();
  void to_training();
  // Whether to_evaluation() changes the parameters (then batch-norm statistics gathered during
  // training belong to other weights and are recomputed before evaluating).
  bool evaluates_elsewhere() const { return genome_.evaluates_elsewhere(); }
  // The optimizer's whole state; load() puts every state buffer back in its parameter's
  // memory layout, as the uninterrupted run keeps it (so a continued run is bit-identical).
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);
  // Muon, or a genome with program_rest: which parameters step with which rule (one line);
  // empty otherwise.
  const std::string& split() const { return split_; }

 private:
  genome::Genome genome_;
  std::int64_t total_steps_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::vector<double> base_lrs_;  // each group's learning rate before the schedule
  std::string split_;
};

}  // namespace evoopt::optim
