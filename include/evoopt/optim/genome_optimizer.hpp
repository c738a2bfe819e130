#pragma once
// GenomeOptimizer: a genome as a real libtorch optimizer, in the shape of
// torch/optim/adam.h (Options, ParamState, step() under NoGradGuard, state
// created on first use and only for what the genome needs). Drop it in
// wherever torch::optim::Adam goes:
//
//   evoopt::optim::GenomeOptimizer opt(model->parameters(),
//       evoopt::optim::GenomeOptimizerOptions(evoopt::genome::preset("adam")));
#include <torch/optim/optimizer.h>
#include <torch/optim/serialize.h>

#include "evoopt/genome/genome.hpp"

namespace evoopt::optim {

struct GenomeOptimizerOptions : public torch::optim::OptimizerCloneableOptions<GenomeOptimizerOptions> {
  // `total_steps` is the run length the schedule spans; required (> 0) when the
  // genome has warmup or cosine decay.
  explicit GenomeOptimizerOptions(genome::Genome genome = genome::preset("adam"), std::int64_t total_steps = 0);
  // The adam genome with base learning rate `lr`; libtorch's serialize()
  // helpers construct options this way before reading them back.
  explicit GenomeOptimizerOptions(double lr);
  // Base learning rate, initialised from the genome; exposed so libtorch LR
  // schedulers (which call set_lr) work on top of the genome's own schedule.
  TORCH_ARG(double, lr);
  TORCH_ARG(std::int64_t, total_steps);

 public:  // TORCH_ARG leaves the section private
  const genome::Genome& genome() const { return genome_; }

  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }

 private:
  genome::Genome genome_;
};

struct GenomeParamState : public torch::optim::OptimizerCloneableParamState<GenomeParamState> {
  TORCH_ARG(std::int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);       // m, only when a term needs it
  TORCH_ARG(torch::Tensor, exp_avg_sq);    // v, only when a term needs it
  TORCH_ARG(torch::Tensor, lion_exp_avg);  // LION's momentum c (EMA with β2), only when LION is used
  TORCH_ARG(double, mu_product) = 1.0;     // NAdam's Π μ_i, for NESTEROV with bias correction
  TORCH_ARG(torch::Tensor, slot0);         // a program's state slots s0, s1, s2, only those it reads
  TORCH_ARG(torch::Tensor, slot1);
  TORCH_ARG(torch::Tensor, slot2);
  TORCH_ARG(double, lr_max) = 0.0;      // a program reading avg_weight: the largest η_t so far
  TORCH_ARG(double, weight_sum) = 0.0;  // ... and Σ w_i (rule.hpp's average_weight)

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class GenomeOptimizer : public torch::optim::Optimizer {
 public:
  explicit GenomeOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups, GenomeOptimizerOptions defaults = GenomeOptimizerOptions());
  explicit GenomeOptimizer(std::vector<torch::Tensor> params, GenomeOptimizerOptions defaults = GenomeOptimizerOptions())
      : GenomeOptimizer({torch::optim::OptimizerParamGroup(std::move(params))}, std::move(defaults)) {}

  torch::Tensor step(LossClosure closure = nullptr) override;
  // save() and step() refuse to run at the evaluation point: call to_training() first.
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  // A program with an evaluation point (genome/program.hpp: `x = ...`, as Schedule-Free AdamW
  // evaluates at x): to_evaluation() moves each parameter that has stepped to its x, keeping
  // the training weights, which to_training() puts back bit for bit. No-ops otherwise.
  bool evaluates_elsewhere() const;
  void to_evaluation();
  void to_training();

 private:
  std::vector<torch::Tensor> training_weights_;  // while at the evaluation point
  bool at_evaluation_ = false;

  // One parameter's step: its state, t and η_t around the genome's update rule.
  void step_parameter(torch::Tensor& p, const genome::rule::Rule& rule, const GenomeOptimizerOptions& options);
};

}  // namespace evoopt::optim
