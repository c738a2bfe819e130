#include "evoopt/optim/genome_optimizer.hpp"

#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/json_io.hpp"
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
}

GenomeOptimizer::GenomeOptimizer(std::vector<torch::optim::OptimizerParamGroup> param_groups, GenomeOptimizerOptions defaults)
    : Optimizer(std::move(param_groups), std::make_unique<GenomeOptimizerOptions>(defaults)) {}

torch::Tensor GenomeOptimizer::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = {};
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    auto& options = static_cast<GenomeOptimizerOptions&>(group.options());
    const genome::Genome& g = options.genome();
    const bool need_m = g.needs_m(), need_v = g.needs_v(), need_lion = g.needs_lion_m();
    const bool has_nesterov = std::any_of(g.terms.begin(), g.terms.end(), [](const genome::TermGene& t) { return t.term == genome::Term::Nesterov; });
    const double beta1 = g.beta1, beta2 = g.beta2, eps = g.eps(), wd = g.weight_decay();

    // Gradient clipping by the group's global norm (in place, like
    // torch::nn::utils::clip_grad_norm_).
    if (g.clip_norm) {
      std::vector<torch::Tensor> norms;
      for (auto& p : group.params())
        if (p.grad().defined()) norms.push_back(p.grad().norm(2));
      if (!norms.empty() && !norms.front().device().is_cpu()) {
        // Off the CPU the coefficient stays on the device (no host read per step):
        // min(1, c/(‖g‖+1e-6)), as torch.nn.utils.clip_grad_norm_ computes it since 1.13.
        const torch::Tensor coef = (torch::stack(norms).norm(2).add_(1e-6)).reciprocal_().mul_(*g.clip_norm).clamp_max_(1.0);
        for (auto& p : group.params())
          if (p.grad().defined()) p.grad().mul_(coef);
      } else if (!norms.empty()) {
        const double total = torch::stack(norms).norm(2).item<double>();
        const double coef = *g.clip_norm / (total + 1e-6);
        if (coef < 1.0)
          for (auto& p : group.params())
            if (p.grad().defined()) p.grad().mul_(coef);
      }
    }

    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      // L2 weight decay enters the gradient (torch's Adam/SGD/RMSprop weight_decay).
      const torch::Tensor grad = (wd != 0.0 && !g.decoupled_weight_decay) ? p.grad().add(p, wd) : p.grad();
      TORCH_CHECK(!grad.is_sparse(), "GenomeOptimizer does not support sparse gradients");
      auto key = c10::guts::to_string(p.unsafeGetTensorImpl());
      auto it = state_.find(key);
      if (it == state_.end()) {
        auto s = std::make_unique<GenomeParamState>();
        if (need_m) s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        if (need_v) s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        if (need_lion) s->lion_exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state_.emplace(key, std::move(s)).first;
      }
      auto& state = static_cast<GenomeParamState&>(*it->second);
      state.step(state.step() + 1);
      const auto t = state.step();
      const double lr_t = options.lr() * schedule_factor(g.warmup_fraction, g.cosine_decay, t - 1, options.total_steps());

      torch::Tensor& m = state.exp_avg();
      torch::Tensor& v = state.exp_avg_sq();
      if (need_m) m.mul_(beta1).add_(grad, 1 - beta1);
      if (need_v) v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      const double bc1 = g.bias_correction ? 1 - std::pow(beta1, static_cast<double>(t)) : 1.0;
      const double bc2 = g.bias_correction ? 1 - std::pow(beta2, static_cast<double>(t)) : 1.0;

      // Decoupled weight decay on θ before the update: θ(1−ηλ) − ηΣ = θ − ηΣ − ηλθ.
      if (wd != 0.0 && g.decoupled_weight_decay) p.mul_(1 - lr_t * wd);

      // √v̂ + ε, computed as torch::optim::Adam does: √v/√bc2 + ε.
      torch::Tensor denom;
      if (need_v) denom = (v.sqrt() / std::sqrt(bc2)).add_(eps);
      torch::Tensor m_hat;  // made only when a term outside the fused paths reads m̂
      genome::NesterovCoefficients nesterov{0.0, 0.0};
      if (has_nesterov) {
        double mu_product = state.mu_product();
        nesterov = genome::nesterov_coefficients(beta1, g.bias_correction, t, mu_product);
        state.mu_product(mu_product);
      }
      torch::Tensor& lion_m = state.lion_exp_avg();
      for (const auto& gene : g.terms) {
        const double scale = -lr_t * gene.weight;
        switch (gene.term) {
          // Fused forms of the registry's pure functions (same formula, no temporary):
          case genome::Term::AdamTerm:  // m̂/(√v̂+ε) with m̂ = m/bc1
            p.addcdiv_(m, denom, scale / bc1);
            break;
          case genome::Term::RmsNorm:  // g/(√v̂+ε)
            p.addcdiv_(grad, denom, scale);
            break;
          case genome::Term::Grad:  // g
            p.add_(grad, scale);
            break;
          case genome::Term::Momentum:  // m̂
            p.add_(m, scale / bc1);
            break;
          default: {
            if (need_m && !m_hat.defined()) m_hat = bc1 == 1.0 ? m : m / bc1;
            const genome::TermInputs in{grad, m_hat, denom, beta1, m, lion_m, nesterov.g, nesterov.m};
            p.add_(genome::term_info(gene.term).fn(in), scale);
          }
        }
      }
      // Lion's momentum moves after the step reads c_{t−1} (Chen et al. 2023, Algorithm 2).
      if (need_lion) lion_m.mul_(beta2).add_(grad, 1 - beta2);
    }
  }
  return loss;
}

void GenomeOptimizer::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<GenomeParamState, GenomeOptimizerOptions>(archive, *this);
}

void GenomeOptimizer::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<GenomeParamState, GenomeOptimizerOptions>(archive, *this);
}

}  // namespace evoopt::optim
