#include "evoopt/optim/algorithm.hpp"

#include <cmath>

#include <torch/torch.h>

#include "evoopt/common/error.hpp"
#include "evoopt/genome/program.hpp"
#include "evoopt/optim/ademamix.hpp"
#include "evoopt/optim/genome_optimizer.hpp"
#include "evoopt/optim/muon.hpp"
#include "evoopt/optim/param_state.hpp"
#include "evoopt/optim/schedule.hpp"
#include "evoopt/optim/schedule_free_adamw.hpp"

namespace evoopt::optim {
using genome::Algorithm;

namespace {

std::vector<torch::Tensor> tensors_of(const std::vector<std::pair<std::string, torch::Tensor>>& named) {
  std::vector<torch::Tensor> out;
  out.reserve(named.size());
  for (const auto& [name, t] : named) out.push_back(t);
  return out;
}

std::unique_ptr<torch::optim::Optimizer> make_ademamix(const genome::Genome& g, const std::vector<torch::Tensor>& params, std::int64_t total_steps) {
  AdEMAMixOptions o(g.lr());
  o.beta1(g.beta1).beta2(g.beta2).beta3(g.beta3).alpha(g.alpha).warmup(total_steps).eps(g.eps()).weight_decay(g.weight_decay());
  o.check();
  return std::make_unique<AdEMAMix>(params, o);
}

std::unique_ptr<torch::optim::Optimizer> make_schedule_free(const genome::Genome& g, const std::vector<torch::Tensor>& params,
                                                            std::int64_t total_steps) {
  ScheduleFreeAdamWOptions o(g.lr());
  const auto warmup = static_cast<std::int64_t>(std::llround(g.warmup_fraction * static_cast<double>(total_steps)));
  o.beta1(g.beta1).beta2(g.beta2).eps(g.eps()).weight_decay(g.weight_decay()).warmup_steps(g.has_schedule() ? warmup : 0);
  o.check();
  return std::make_unique<ScheduleFreeAdamW>(params, o);
}

// A genome with two programs: the hidden matrices (Muon's split) step with its program, the rest
// with program_rest at η_aux, one GenomeOptimizer group each. Clipping is over all parameters
// (AlgorithmOptimizer::step), so neither part clips its group alone.
std::unique_ptr<torch::optim::Optimizer> make_two_programs(const genome::Genome& g, const std::vector<std::pair<std::string, torch::Tensor>>& named,
                                                           std::int64_t total_steps, const std::vector<std::string>& hidden_names,
                                                           std::string& split_text) {
  const MuonSplit split = muon_split(named, hidden_names);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (const auto part : {genome::Part::Hidden, genome::Part::Rest}) {
    genome::Genome one = genome::program_part(g, part);
    one.clip_norm.reset();
    const auto params = tensors_of(part == genome::Part::Hidden ? split.muon : split.adamw);
    if (!params.empty()) groups.emplace_back(params, std::make_unique<GenomeOptimizerOptions>(one, total_steps));
  }
  split_text = split.describe("program", "program_rest");
  return std::make_unique<GenomeOptimizer>(std::move(groups), GenomeOptimizerOptions(genome::program_part(g, genome::Part::Hidden), total_steps));
}

// Puts each tensor of a loaded state back in its parameter's memory layout.
template <typename State>
bool relayout(torch::optim::OptimizerParamState& base, at::MemoryFormat format, std::initializer_list<torch::Tensor& (State::*)()> fields) {
  auto* s = dynamic_cast<State*>(&base);
  if (s == nullptr) return false;
  for (auto field : fields) {
    torch::Tensor& t = (s->*field)();
    if (t.defined()) t = t.contiguous(format);
  }
  return true;
}

}  // namespace

AlgorithmOptimizer::AlgorithmOptimizer(const genome::Genome& genome, const std::vector<std::pair<std::string, torch::Tensor>>& named_parameters,
                                       std::int64_t total_steps, const std::vector<std::string>& muon_names)
    : genome_(genome), total_steps_(total_steps) {
  genome_.validate(genome::Bounds::kHardMaxTerms);
  if (total_steps < 1) throw Error("an optimizer's run needs at least one step, got " + std::to_string(total_steps));
  const auto params = tensors_of(named_parameters);
  switch (genome_.algorithm) {
    case Algorithm::Terms:
    case Algorithm::Program:
      if (genome_.has_program_rest()) {
        optimizer_ = make_two_programs(genome_, named_parameters, total_steps, muon_names, split_);
        break;
      }
      optimizer_ = std::make_unique<GenomeOptimizer>(params, GenomeOptimizerOptions(genome_, total_steps));
      break;
    case Algorithm::AdEMAMix:
      optimizer_ = make_ademamix(genome_, params, total_steps);
      break;
    case Algorithm::ScheduleFreeAdamW:
      optimizer_ = make_schedule_free(genome_, params, total_steps);
      break;
    case Algorithm::Muon: {
      const MuonSplit split = muon_split(named_parameters, muon_names);
      auto muon = MuonOptions(genome_.lr()).momentum(genome_.beta1).weight_decay(genome_.weight_decay());
      auto adamw = MuonOptions::adamw(genome_.aux_lr()).weight_decay(genome_.weight_decay());
      muon.check();
      adamw.check();
      optimizer_ = std::make_unique<Muon>(split.groups(muon, adamw), muon);
      split_ = split.describe();
      break;
    }
  }
  for (const auto& group : optimizer_->param_groups()) base_lrs_.push_back(group.options().get_lr());
}

void AlgorithmOptimizer::step(std::int64_t step) {
  if (genome_.has_rule() && !genome_.has_program_rest()) {  // the genome's schedule and clipping run inside GenomeOptimizer
    optimizer_->step();
    return;
  }
  if (genome_.clip_norm) {
    std::vector<torch::Tensor> all;
    for (const auto& group : optimizer_->param_groups())
      for (const auto& p : group.params()) all.push_back(p);
    clip_grad_norm(all, *genome_.clip_norm);
  }
  // Schedule-Free AdamW warms up by itself and has no decay (genome validation refuses cosine);
  // a GenomeOptimizer group follows its genome's schedule.
  if (genome_.algorithm != Algorithm::ScheduleFreeAdamW && !genome_.has_rule()) {
    const double factor = schedule_factor(genome_.warmup_fraction, genome_.cosine_decay, step - 1, total_steps_);
    auto& groups = optimizer_->param_groups();
    for (std::size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(base_lrs_[i] * factor);
  }
  optimizer_->step();
}

void AlgorithmOptimizer::to_evaluation() {
  if (auto* sf = dynamic_cast<ScheduleFreeAdamW*>(optimizer_.get())) sf->eval_mode();
  if (auto* go = dynamic_cast<GenomeOptimizer*>(optimizer_.get())) go->to_evaluation();
}

void AlgorithmOptimizer::to_training() {
  if (auto* sf = dynamic_cast<ScheduleFreeAdamW*>(optimizer_.get())) sf->train_mode();
  if (auto* go = dynamic_cast<GenomeOptimizer*>(optimizer_.get())) go->to_training();
}

void AlgorithmOptimizer::save(torch::serialize::OutputArchive& archive) const { optimizer_->save(archive); }

void AlgorithmOptimizer::load(torch::serialize::InputArchive& archive) {
  optimizer_->load(archive);
  for (auto& group : optimizer_->param_groups())
    for (auto& p : group.params()) {
      auto it = optimizer_->state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it == optimizer_->state().end()) continue;
      const auto format = p.suggest_memory_format();
      auto& s = *it->second;
      relayout<GenomeParamState>(s, format,
                                 {&GenomeParamState::exp_avg, &GenomeParamState::exp_avg_sq, &GenomeParamState::lion_exp_avg,
                                  &GenomeParamState::slot0, &GenomeParamState::slot1, &GenomeParamState::slot2}) ||
          relayout<AdEMAMixParamState>(s, format,
                                       {&AdEMAMixParamState::exp_avg_fast, &AdEMAMixParamState::exp_avg_slow, &AdEMAMixParamState::exp_avg_sq}) ||
          relayout<ScheduleFreeAdamWParamState>(s, format, {&ScheduleFreeAdamWParamState::z, &ScheduleFreeAdamWParamState::exp_avg_sq}) ||
          relayout<MuonParamState>(s, format, {&MuonParamState::momentum_buffer, &MuonParamState::exp_avg, &MuonParamState::exp_avg_sq});
    }
}

void clip_grad_norm(const std::vector<torch::Tensor>& params, double clip_norm) {
  std::vector<torch::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().norm(2));
  if (norms.empty()) return;
  if (!norms.front().device().is_cpu()) {
    // Off the CPU the coefficient stays on the device (no host read per step):
    // min(1, c/(‖g‖+1e-6)), as torch.nn.utils.clip_grad_norm_ computes it since 1.13.
    const torch::Tensor coef = (torch::stack(norms).norm(2).add_(1e-6)).reciprocal_().mul_(clip_norm).clamp_max_(1.0);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(coef);
    return;
  }
  const double coef = clip_norm / (torch::stack(norms).norm(2).item<double>() + 1e-6);
  if (coef < 1.0)
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(coef);
}

}  // namespace evoopt::optim
