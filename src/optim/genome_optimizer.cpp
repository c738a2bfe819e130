#include "evoopt/optim/genome_optimizer.hpp"

#include <torch/torch.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/json_io.hpp"
#include "evoopt/genome/program.hpp"
#include "evoopt/optim/param_state.hpp"
#include "evoopt/optim/schedule.hpp"

namespace evoopt::optim {

GenomeOptimizerOptions::GenomeOptimizerOptions(genome::Genome genome, std::int64_t total_steps)
    : lr_(genome.lr()), total_steps_(total_steps), genome_(genome.canonical()) {
  genome.validate(genome::Bounds::kHardMaxTerms);
  if (total_steps < 0) throw Error("total_steps must be >= 0, got " + std::to_string(total_steps));
  if (genome.has_schedule() && total_steps == 0)
    throw Error("genome has a learning-rate schedule (warmup/cosine): set GenomeOptimizerOptions total_steps to the run length");
}

GenomeOptimizerOptions::GenomeOptimizerOptions(double lr) : GenomeOptimizerOptions(genome::preset("adam")) { lr_ = lr; }

void GenomeOptimizerOptions::serialize(torch::serialize::OutputArchive& archive) const {
  archive.write("lr", c10::IValue(lr()));
  archive.write("total_steps", c10::IValue(total_steps()));
  archive.write("genome_json", c10::IValue(genome_.to_json().dump()));
}

void GenomeOptimizerOptions::serialize(torch::serialize::InputArchive& archive) {
  c10::IValue v;
  archive.read("lr", v);
  lr_ = v.toDouble();
  archive.read("total_steps", v);
  total_steps_ = v.toInt();
  archive.read("genome_json", v);
  genome_ = genome::Genome::from_json(parse_json(v.toStringRef(), "optimizer state: genome_json")).canonical();
}

void GenomeParamState::serialize(torch::serialize::OutputArchive& archive) const {
  archive.write("step", c10::IValue(step()));
  if (exp_avg().defined()) archive.write("exp_avg", exp_avg(), /*is_buffer=*/true);
  if (exp_avg_sq().defined()) archive.write("exp_avg_sq", exp_avg_sq(), /*is_buffer=*/true);
  if (lion_exp_avg().defined()) archive.write("lion_exp_avg", lion_exp_avg(), /*is_buffer=*/true);
  archive.write("mu_product", c10::IValue(mu_product()));
  if (slot0().defined()) archive.write("slot0", slot0(), /*is_buffer=*/true);
  if (slot1().defined()) archive.write("slot1", slot1(), /*is_buffer=*/true);
  if (slot2().defined()) archive.write("slot2", slot2(), /*is_buffer=*/true);
  if (weight_sum() > 0) {
    archive.write("lr_max", c10::IValue(lr_max()));
    archive.write("weight_sum", c10::IValue(weight_sum()));
  }
}

void GenomeParamState::serialize(torch::serialize::InputArchive& archive) {
  c10::IValue v;
  archive.read("step", v);
  step_ = v.toInt();
  torch::Tensor t;
  if (archive.try_read("exp_avg", t, /*is_buffer=*/true)) exp_avg_ = t;
  torch::Tensor u;
  if (archive.try_read("exp_avg_sq", u, /*is_buffer=*/true)) exp_avg_sq_ = u;
  torch::Tensor c;
  if (archive.try_read("lion_exp_avg", c, /*is_buffer=*/true)) lion_exp_avg_ = c;
  if (archive.try_read("mu_product", v)) mu_product_ = v.toDouble();
  torch::Tensor s;
  if (archive.try_read("slot0", s, /*is_buffer=*/true)) slot0_ = s;
  torch::Tensor s1;
  if (archive.try_read("slot1", s1, /*is_buffer=*/true)) slot1_ = s1;
  torch::Tensor s2;
  if (archive.try_read("slot2", s2, /*is_buffer=*/true)) slot2_ = s2;
  if (archive.try_read("lr_max", v)) lr_max_ = v.toDouble();
  if (archive.try_read("weight_sum", v)) weight_sum_ = v.toDouble();
}

GenomeOptimizer::GenomeOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups, GenomeOptimizerOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<GenomeOptimizerOptions>(defaults)) {
  for (const auto& group : param_groups_)
    if (static_cast<const GenomeOptimizerOptions&>(group.options()).genome().has_program_rest())
      throw Error(
          "GenomeOptimizer: a genome with program_rest steps two kinds of parameters: give each part its own group "
          "(genome::program_part) or use AlgorithmOptimizer, which splits the model");
}

torch::Tensor GenomeOptimizer::step(LossClosure closure) {
  if (at_evaluation_) throw Error("GenomeOptimizer: step() at the evaluation point; call to_training() first");
  torch::NoGradGuard no_grad;
  torch::Tensor loss = closure ? call_closure(closure) : torch::Tensor{};
  for (auto& group : param_groups_) {
    auto& options = static_cast<GenomeOptimizerOptions&>(group.options());
    const genome::Genome& g = options.genome();
    const genome::rule::Rule rule = genome::rule::update_rule(g);
    if (g.clip_norm) clip_grad_norm(group.params(), *g.clip_norm);
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      TORCH_CHECK(!p.grad().is_sparse(), "GenomeOptimizer does not support sparse gradients");
      step_parameter(p, rule, options);
    }
  }
  return loss;
}

void GenomeOptimizer::step_parameter(torch::Tensor& p, const genome::rule::Rule& rule, const GenomeOptimizerOptions& options) {
  using genome::rule::Var;
  const genome::Genome& g = options.genome();
  auto& state = param_state<GenomeParamState>(state_, p, [&rule, &g](GenomeParamState& s, const torch::Tensor& q) {
    // A slot the evaluation point reads exists even where no step writes it (it stays zero).
    const genome::rule::Rule at_x = g.is_program() ? genome::evaluation_rule(g) : genome::rule::Rule{};
    const auto needs = [&](Var v) { return rule.reads(v) || at_x.reads(v); };
    if (rule.reads(Var::M)) s.exp_avg(torch::zeros_like(q, torch::MemoryFormat::Preserve));
    if (rule.reads(Var::V)) s.exp_avg_sq(torch::zeros_like(q, torch::MemoryFormat::Preserve));
    if (rule.reads(Var::C)) s.lion_exp_avg(torch::zeros_like(q, torch::MemoryFormat::Preserve));
    if (needs(Var::S0)) s.slot0(torch::zeros_like(q, torch::MemoryFormat::Preserve));
    if (needs(Var::S1)) s.slot1(torch::zeros_like(q, torch::MemoryFormat::Preserve));
    if (needs(Var::S2)) s.slot2(torch::zeros_like(q, torch::MemoryFormat::Preserve));
  });
  state.step(state.step() + 1);
  const auto t = state.step();

  genome::rule::Env env;
  auto tensor = [&env](Var v) -> torch::Tensor& { return env.tensor[static_cast<std::size_t>(v)]; };
  tensor(Var::Param) = p;
  tensor(Var::Grad) = p.grad();
  tensor(Var::M) = state.exp_avg();
  tensor(Var::V) = state.exp_avg_sq();
  tensor(Var::C) = state.lion_exp_avg();
  tensor(Var::S0) = state.slot0();
  tensor(Var::S1) = state.slot1();
  tensor(Var::S2) = state.slot2();
  genome::rule::set_step_scalars(env, g, t, options.lr() * schedule_factor(g.warmup_fraction, g.cosine_decay, t - 1, options.total_steps()));
  env.mu_product = state.mu_product();
  env.lr_max = state.lr_max();
  env.weight_sum = state.weight_sum();
  genome::rule::run(rule, env);
  state.mu_product(env.mu_product);
  state.lr_max(env.lr_max);
  state.weight_sum(env.weight_sum);
}

bool GenomeOptimizer::evaluates_elsewhere() const {
  for (const auto& group : param_groups_)
    if (static_cast<const GenomeOptimizerOptions&>(group.options()).genome().evaluates_elsewhere()) return true;
  return false;
}

void GenomeOptimizer::to_evaluation() {
  using genome::rule::Var;
  if (at_evaluation_) return;
  torch::NoGradGuard no_grad;
  training_weights_.clear();
  for (auto& group : param_groups_) {
    const auto& options = static_cast<const GenomeOptimizerOptions&>(group.options());
    const genome::rule::Rule at_x = genome::evaluation_rule(options.genome());
    for (auto& p : group.params()) {
      const auto it = state_.find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (at_x.stmts.empty() || it == state_.end()) continue;  // a parameter that has not stepped is at x
      const auto& state = static_cast<const GenomeParamState&>(*it->second);
      genome::rule::Env env;
      env.tensor[static_cast<std::size_t>(Var::Param)] = p;
      env.tensor[static_cast<std::size_t>(Var::S0)] = state.slot0();
      env.tensor[static_cast<std::size_t>(Var::S1)] = state.slot1();
      env.tensor[static_cast<std::size_t>(Var::S2)] = state.slot2();
      genome::rule::set_step_scalars(env, options.genome(), state.step(), options.lr());
      genome::rule::run(at_x, env);
      training_weights_.push_back(p.detach().clone());
      p.copy_(env.tensor[static_cast<std::size_t>(Var::X)]);
    }
  }
  at_evaluation_ = true;
}

void GenomeOptimizer::to_training() {
  if (!at_evaluation_) return;
  torch::NoGradGuard no_grad;
  std::size_t k = 0;
  for (auto& group : param_groups_) {
    const genome::rule::Rule at_x = genome::evaluation_rule(static_cast<const GenomeOptimizerOptions&>(group.options()).genome());
    for (auto& p : group.params())
      if (!at_x.stmts.empty() && state_.count(c10::guts::to_string(p.unsafeGetTensorImpl())) != 0) p.copy_(training_weights_.at(k++));
  }
  training_weights_.clear();
  at_evaluation_ = false;
}

void GenomeOptimizer::save(torch::serialize::OutputArchive& archive) const {
  if (at_evaluation_) throw Error("GenomeOptimizer: save() at the evaluation point; call to_training() first");
  torch::optim::serialize<GenomeParamState, GenomeOptimizerOptions>(archive, *this);
}

void GenomeOptimizer::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<GenomeParamState, GenomeOptimizerOptions>(archive, *this);
}

}  // namespace evoopt::optim
