// Every named term, and the signum and lion presets, against an independent
// reference in float64 (issue 9): torch::optim where one exists (SGD, SGD with
// Nesterov momentum, RMSprop, Adam), otherwise the published pseudo-code written
// here as plain scalar loops (no torch ops), each citing its source.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <vector>

#include "evoopt/common/rng.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/optim/genome_optimizer.hpp"

using namespace evoopt;
using namespace evoopt::genome;
using evoopt::optim::GenomeOptimizer;
using evoopt::optim::GenomeOptimizerOptions;
using Vec = std::vector<double>;

namespace {

constexpr int kN = 6;
constexpr int kSteps = 120;

// A noisy quadratic: g_t(θ) = s ⊙ (θ − 1) + noise_t, the same noise table for every optimizer.
struct Problem {
  Vec scale, theta0;
  std::vector<Vec> noise;
  Problem() {
    Rng rng(2023);
    for (int i = 0; i < kN; ++i) {
      scale.push_back(rng.uniform(0.5, 3.0));
      theta0.push_back(rng.uniform(-2.0, 2.0));
    }
    noise.resize(kSteps);
    for (auto& row : noise)
      for (int i = 0; i < kN; ++i) row.push_back(rng.normal(0.0, 0.3));
  }
  Vec grad(const Vec& theta, int t) const {
    Vec g(kN);
    for (int i = 0; i < kN; ++i) g[static_cast<std::size_t>(i)] = scale[i] * (theta[i] - 1.0) + noise[static_cast<std::size_t>(t)][i];
    return g;
  }
};

const Problem& problem() {
  static const Problem p;
  return p;
}

Vec to_vec(const torch::Tensor& t) {
  auto c = t.detach().contiguous();
  return Vec(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

// Runs a torch optimizer (GenomeOptimizer or a torch::optim reference) on the problem.
Vec run_torch(const std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor>)>& make) {
  auto p = torch::tensor(problem().theta0, torch::kFloat64).requires_grad_(true);
  auto opt = make({p});
  for (int t = 0; t < kSteps; ++t) {
    p.mutable_grad() = torch::tensor(problem().grad(to_vec(p), t), torch::kFloat64);
    opt->step();
  }
  return to_vec(p);
}

Vec run_genome(const Genome& g) {
  return run_torch([&](std::vector<torch::Tensor> ps) { return std::make_unique<GenomeOptimizer>(std::move(ps), GenomeOptimizerOptions(g)); });
}

// A scalar reference: update(θ, g, t) changes θ in place, t is 1-based.
Vec run_scalar(const std::function<void(Vec& theta, const Vec& g, int t)>& update) {
  Vec theta = problem().theta0;
  for (int t = 0; t < kSteps; ++t) update(theta, problem().grad(theta, t), t + 1);
  return theta;
}

double sgn(double x) { return static_cast<double>((x > 0) - (x < 0)); }

void expect_same(const Vec& got, const Vec& want, const std::string& what) {
  double worst = 0, moved = 0;
  for (int i = 0; i < kN; ++i) {
    worst = std::max(worst, std::abs(got[i] - want[i]) / std::max(1.0, std::abs(want[i])));
    moved = std::max(moved, std::abs(want[i] - problem().theta0[i]));
  }
  EXPECT_GT(moved, 1e-2) << what << ": the reference did not move";
  EXPECT_LE(worst, 1e-9) << what;
}

Genome single(Term term, double lr, bool bias_correction) {
  Genome g;
  g.terms = {{term, 1.0}};
  g.log10_lr = std::log10(lr);
  g.beta1 = 0.9;
  g.beta2 = 0.99;
  g.bias_correction = bias_correction;
  return g;
}

}  // namespace

TEST(TermReference, GradIsTorchSgd) {
  const Vec want = run_torch([](auto ps) { return std::make_unique<torch::optim::SGD>(ps, torch::optim::SGDOptions(0.05)); });
  expect_same(run_genome(single(Term::Grad, 0.05, false)), want, "GRAD");
}

TEST(TermReference, MomentumIsTorchSgdMomentumAndBiasCorrectedEma) {
  // Without bias correction: torch SGD(momentum β, dampening 0) at lr η·(1−β).
  const Vec want = run_torch([](auto ps) { return std::make_unique<torch::optim::SGD>(ps, torch::optim::SGDOptions(0.05 * 0.1).momentum(0.9)); });
  expect_same(run_genome(single(Term::Momentum, 0.05, false)), want, "MOMENTUM");
  // With it: m̂_t = m_t/(1−β1^t) (Kingma & Ba 2015, Algorithm 1, the numerator alone).
  Vec m(kN, 0.0);
  const Vec want_bc = run_scalar([&](Vec& th, const Vec& g, int t) {
    for (int i = 0; i < kN; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      th[i] -= 0.05 * m[i] / (1 - std::pow(0.9, t));
    }
  });
  expect_same(run_genome(single(Term::Momentum, 0.05, true)), want_bc, "MOMENTUM with bias correction");
}

TEST(TermReference, RmsNormIsTorchRmsprop) {
  const Vec want =
      run_torch([](auto ps) { return std::make_unique<torch::optim::RMSprop>(ps, torch::optim::RMSpropOptions(0.01).alpha(0.99).eps(1e-8)); });
  expect_same(run_genome(single(Term::RmsNorm, 0.01, false)), want, "RMS_NORM");
}

TEST(TermReference, AdamTermIsTorchAdam) {
  const Vec want =
      run_torch([](auto ps) { return std::make_unique<torch::optim::Adam>(ps, torch::optim::AdamOptions(0.01).betas(std::make_tuple(0.9, 0.99))); });
  expect_same(run_genome(single(Term::AdamTerm, 0.01, true)), want, "ADAM_TERM");
}

TEST(TermReference, SignGradIsSignSgd) {
  // signSGD (Bernstein et al. 2018, Algorithm 1): θ ← θ − η·sign(g).
  const Vec want = run_scalar([](Vec& th, const Vec& g, int) {
    for (int i = 0; i < kN; ++i) th[i] -= 0.01 * sgn(g[i]);
  });
  expect_same(run_genome(single(Term::SignGrad, 0.01, false)), want, "SIGN_GRAD");
}

TEST(TermReference, NesterovIsTorchNesterovSgdWithoutBiasCorrectionAndNadamWithIt) {
  // Without bias correction: torch SGD(momentum β, nesterov) at lr η·(1−β).
  const Vec want =
      run_torch([](auto ps) { return std::make_unique<torch::optim::SGD>(ps, torch::optim::SGDOptions(0.05 * 0.1).momentum(0.9).nesterov(true)); });
  expect_same(run_genome(single(Term::Nesterov, 0.05, false)), want, "NESTEROV");
  // With it: NAdam's numerator (torch.optim.NAdam's documented algorithm, ψ = 0.004):
  // μ_t = β1(1 − ½·0.96^{tψ}); θ ← θ − η·[(1−μ_t)·g/(1−Π_{i≤t}μ_i) + μ_{t+1}·m/(1−Π_{i≤t+1}μ_i)].
  Vec m(kN, 0.0);
  double prod = 1.0;
  const Vec want_bc = run_scalar([&](Vec& th, const Vec& g, int t) {
    const double mu = 0.9 * (1 - 0.5 * std::pow(0.96, t * 0.004)), mu_next = 0.9 * (1 - 0.5 * std::pow(0.96, (t + 1) * 0.004));
    prod *= mu;
    for (int i = 0; i < kN; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      th[i] -= 0.05 * ((1 - mu) * g[i] / (1 - prod) + mu_next * m[i] / (1 - prod * mu_next));
    }
  });
  expect_same(run_genome(single(Term::Nesterov, 0.05, true)), want_bc, "NESTEROV with bias correction");
}

TEST(TermReference, SignMomentumAndTheSignumPresetAreSignum) {
  // Signum (Bernstein et al. 2018, Algorithm 3): m ← βm + (1−β)g; θ ← θ − η·sign(m).
  const Genome g = preset("signum");
  Vec m(kN, 0.0);
  const Vec want = run_scalar([&](Vec& th, const Vec& grad, int) {
    for (int i = 0; i < kN; ++i) {
      m[i] = g.beta1 * m[i] + (1 - g.beta1) * grad[i];
      th[i] -= g.lr() * sgn(m[i]);
    }
  });
  Genome faster = g;  // the preset's η = 1e-4 barely moves in 120 steps
  faster.log10_lr = -2;
  Vec m2(kN, 0.0);
  const Vec want_fast = run_scalar([&](Vec& th, const Vec& grad, int) {
    for (int i = 0; i < kN; ++i) {
      m2[i] = g.beta1 * m2[i] + (1 - g.beta1) * grad[i];
      th[i] -= 0.01 * sgn(m2[i]);
    }
  });
  expect_same(run_genome(faster), want_fast, "signum (η = 1e-2)");
  const Vec got = run_genome(g);
  for (int i = 0; i < kN; ++i) EXPECT_LE(std::abs(got[i] - want[i]), 1e-12) << "signum preset";
  // Bias correction does not change sign(m̂) = sign(m).
  Genome bc = faster;
  bc.bias_correction = true;
  expect_same(run_genome(bc), want_fast, "SIGN_MOMENTUM with bias correction");
}

TEST(TermReference, LionAndTheLionPresetAreLionAsPublished) {
  // Lion (Chen et al. 2023, Algorithm 2): c = β1·m + (1−β1)·g; θ ← θ − η·(sign(c) + λθ);
  // m ← β2·m + (1−β2)·g. The preset: β1 = 0.9, β2 = 0.99 (the paper's defaults), λ = 0.01.
  Genome g = preset("lion");
  EXPECT_EQ(g.beta1, 0.9);
  EXPECT_EQ(g.beta2, 0.99);
  g.log10_lr = -2;  // large enough to move in 120 steps
  const double eta = 0.01, lambda = g.weight_decay();
  Vec m(kN, 0.0);
  const Vec want = run_scalar([&](Vec& th, const Vec& grad, int) {
    for (int i = 0; i < kN; ++i) {
      const double c = 0.9 * m[i] + 0.1 * grad[i];
      th[i] -= eta * (sgn(c) + lambda * th[i]);
      m[i] = 0.99 * m[i] + 0.01 * grad[i];
    }
  });
  expect_same(run_genome(g), want, "lion preset");
  // No bias correction on Lion's momentum: the flag changes nothing.
  Genome bc = g;
  bc.bias_correction = true;
  expect_same(run_genome(bc), want, "LION with bias correction on");
  EXPECT_EQ(bc.hash(), g.hash());
  // Lion's (0.9, 0.99) and the format-v1 term's (β1², β1) = (0.81, 0.9) differ.
  Genome v1 = g;
  v1.terms = {{Term::LionV1, 1.0}};
  const Vec old = run_genome(v1);
  double diff = 0;
  for (int i = 0; i < kN; ++i) diff = std::max(diff, std::abs(old[i] - want[i]));
  EXPECT_GT(diff, 1e-4);
}

TEST(TermReference, AddSignAndPowerSignAreBelloEtAl) {
  // Bello et al. 2017: AddSign (α + sign(g)·sign(m))·g with α = 1; PowerSign α^{sign(g)·sign(m)}·g
  // with α = e; m an EMA of g with β1 (their β = 0.9).
  for (Term term : {Term::AddSign, Term::PowerSign}) {
    Vec m(kN, 0.0);
    const Vec want = run_scalar([&](Vec& th, const Vec& g, int) {
      for (int i = 0; i < kN; ++i) {
        m[i] = 0.9 * m[i] + 0.1 * g[i];
        const double agree = sgn(g[i]) * sgn(m[i]);
        th[i] -= 0.02 * (term == Term::AddSign ? (1.0 + agree) : std::exp(agree)) * g[i];
      }
    });
    expect_same(run_genome(single(term, 0.02, false)), want, std::string(term_info(term).name));
    expect_same(run_genome(single(term, 0.02, true)), want, std::string(term_info(term).name) + " with bias correction on");
  }
}
