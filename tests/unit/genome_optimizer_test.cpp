// GenomeOptimizer against torch::optim in float64, term paths, schedule,
// convergence of every preset, state handling (issue 3).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "evoopt/common/error.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/optim/genome_optimizer.hpp"
#include "evoopt/optim/schedule.hpp"

using namespace evoopt;
using namespace evoopt::genome;
using evoopt::optim::GenomeOptimizer;
using evoopt::optim::GenomeOptimizerOptions;

namespace {

// A small float64 network and fixed data; two copies start from identical weights.
struct Net : torch::nn::Module {
  Net() {
    fc1 = register_module("fc1", torch::nn::Linear(6, 16));
    fc2 = register_module("fc2", torch::nn::Linear(16, 3));
  }
  torch::Tensor forward(torch::Tensor x) { return fc2->forward(torch::tanh(fc1->forward(x))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

std::shared_ptr<Net> make_net() {
  torch::manual_seed(123);
  auto net = std::make_shared<Net>();
  net->to(torch::kFloat64);
  return net;
}

// Trains `steps` steps (fresh minibatch each step, same for every optimizer).
void train(Net& net, torch::optim::Optimizer& opt, int steps) {
  torch::manual_seed(7);
  auto x = torch::randn({64, 6}, torch::kFloat64);
  auto y = torch::randint(0, 3, {64}, torch::kInt64);
  for (int s = 0; s < steps; ++s) {
    auto idx = torch::randint(0, 64, {16}, torch::kInt64);
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(net.forward(x.index_select(0, idx)), y.index_select(0, idx));
    loss.backward();
    opt.step();
  }
}

double max_relative_error(Net& a, Net& b) {
  double worst = 0;
  auto pa = a.parameters(), pb = b.parameters();
  for (std::size_t i = 0; i < pa.size(); ++i) {
    const double rel = ((pa[i] - pb[i]).abs() / (pb[i].abs() + 1e-12)).max().item<double>();
    worst = std::max(worst, rel);
  }
  return worst;
}

void expect_moved(Net& a) {
  auto fresh = make_net();
  EXPECT_GT(max_relative_error(a, *fresh), 1e-3) << "parameters did not move";
}

constexpr int kSteps = 150;

}  // namespace

TEST(Equivalence, AdamGenomeEqualsTorchAdam) {
  auto a = make_net(), b = make_net();
  GenomeOptimizer g(a->parameters(), GenomeOptimizerOptions(preset("adam")));
  torch::optim::Adam ref(b->parameters(), torch::optim::AdamOptions(1e-3));
  train(*a, g, kSteps);
  train(*b, ref, kSteps);
  expect_moved(*a);
  EXPECT_LE(max_relative_error(*a, *b), 1e-9);
}

TEST(Equivalence, AdamWGenomeEqualsTorchAdamW) {
  auto a = make_net(), b = make_net();
  GenomeOptimizer g(a->parameters(), GenomeOptimizerOptions(preset("adamw")));
  torch::optim::AdamW ref(b->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(1e-2));
  train(*a, g, kSteps);
  train(*b, ref, kSteps);
  expect_moved(*a);
  EXPECT_LE(max_relative_error(*a, *b), 1e-9);
}

TEST(Equivalence, L2WeightDecayEqualsTorchAdamAndSgdWeightDecay) {
  {
    auto a = make_net(), b = make_net();
    Genome adam = preset("adam");
    adam.log10_weight_decay = -2.0;
    adam.decoupled_weight_decay = false;
    GenomeOptimizer g(a->parameters(), GenomeOptimizerOptions(adam));
    torch::optim::Adam ref(b->parameters(), torch::optim::AdamOptions(1e-3).weight_decay(1e-2));
    train(*a, g, kSteps);
    train(*b, ref, kSteps);
    expect_moved(*a);
    EXPECT_LE(max_relative_error(*a, *b), 1e-9);
  }
  {
    auto a = make_net(), b = make_net();
    Genome sgd = preset("sgd");
    sgd.log10_weight_decay = -3.0;
    sgd.decoupled_weight_decay = false;
    GenomeOptimizer g(a->parameters(), GenomeOptimizerOptions(sgd));
    torch::optim::SGD ref(b->parameters(), torch::optim::SGDOptions(sgd.lr() * 0.1).momentum(0.9).weight_decay(1e-3));
    train(*a, g, kSteps);
    train(*b, ref, kSteps);
    EXPECT_LE(max_relative_error(*a, *b), 1e-9);
  }
}

TEST(Equivalence, RmspropGenomeEqualsTorchRmsprop) {
  auto a = make_net(), b = make_net();
  GenomeOptimizer g(a->parameters(), GenomeOptimizerOptions(preset("rmsprop")));
  torch::optim::RMSprop ref(b->parameters(), torch::optim::RMSpropOptions(1e-3).alpha(0.99).eps(1e-8));
  train(*a, g, kSteps);
  train(*b, ref, kSteps);
  expect_moved(*a);
  EXPECT_LE(max_relative_error(*a, *b), 1e-9);
}

TEST(Equivalence, SgdGenomeEqualsTorchSgdWithScaledLearningRate) {
  // MOMENTUM (EMA, no bias correction) at η equals SGD(momentum β, dampening 0) at η·(1−β).
  for (double beta : {0.9, 0.5}) {
    auto a = make_net(), b = make_net();
    Genome sgd = preset("sgd");
    sgd.beta1 = beta;
    GenomeOptimizer g(a->parameters(), GenomeOptimizerOptions(sgd));
    torch::optim::SGD ref(b->parameters(), torch::optim::SGDOptions(sgd.lr() * (1 - beta)).momentum(beta).dampening(0));
    train(*a, g, kSteps);
    train(*b, ref, kSteps);
    expect_moved(*a);
    EXPECT_LE(max_relative_error(*a, *b), 1e-9) << "beta " << beta;
  }
}

TEST(GenomeOptimizer, EveryTermPathMatchesAnIndependentReferenceUpdate) {
  // A multi-term genome with bias correction, weight decay, warmup+cosine and
  // every term; the reference recomputes the update from the formulas.
  Genome g = preset("adam");
  g.terms = {};
  for (const auto& info : term_registry()) g.terms.push_back({info.id, 0.1 + 0.05 * static_cast<int>(info.id)});
  g.validate(Bounds::kHardMaxTerms);
  g.log10_weight_decay = -3.0;
  g.warmup_fraction = 0.2;
  g.cosine_decay = true;
  g.beta1 = 0.8;
  g.beta2 = 0.95;
  const int steps = 20;
  torch::manual_seed(3);
  auto p = torch::randn({5}, torch::kFloat64).requires_grad_(true);
  auto ref = p.detach().clone();
  GenomeOptimizer opt({p}, GenomeOptimizerOptions(g, steps));
  auto m = torch::zeros_like(ref), v = torch::zeros_like(ref), c = torch::zeros_like(ref);
  double mu_product = 1.0;
  for (int t = 1; t <= steps; ++t) {
    auto grad = torch::randn({5}, torch::kFloat64);
    p.mutable_grad() = grad.clone();
    opt.step();
    m = 0.8 * m + 0.2 * grad;
    v = 0.95 * v + 0.05 * grad * grad;
    auto mh = m / (1 - std::pow(0.8, t));
    auto vh = v / (1 - std::pow(0.95, t));
    auto denom = vh.sqrt() + 1e-8;
    const double lr = 1e-3 * optim::schedule_factor(0.2, true, t - 1, steps);
    auto sg = grad.sign(), sm = mh.sign();
    // NAdam's numerator (torch.optim.NAdam, ψ = 0.004).
    auto mu = [](double step) { return 0.8 * (1 - 0.5 * std::pow(0.96, step * 0.004)); };
    mu_product *= mu(t);
    const double a_g = (1 - mu(t)) / (1 - mu_product), a_m = mu(t + 1) / (1 - mu_product * mu(t + 1));
    std::vector<torch::Tensor> T = {grad,
                                    mh,
                                    grad / denom,
                                    mh / denom,
                                    sg,
                                    a_g * grad + a_m * m,
                                    sm,
                                    (0.8 * c + 0.2 * grad).sign(),  // Lion: its own momentum, β2 = 0.95
                                    (1 + sg * sm) * grad,
                                    (sg * sm).exp() * grad,
                                    (0.8 * mh + 0.2 * grad).sign(),                             // LION_V1
                                    0.8 * mh + 0.2 * grad,                                      // NESTEROV_V1
                                    (0.8 * mh + 0.2 * grad / (1 - std::pow(0.8, t))) / denom};  // NADAMW
    ASSERT_EQ(T.size(), term_registry().size());
    c = 0.95 * c + 0.05 * grad;
    auto update = torch::zeros_like(ref);
    for (std::size_t k = 0; k < T.size(); ++k) update += (0.1 + 0.05 * static_cast<double>(k)) * T[k];
    ref = ref - lr * update - lr * 1e-3 * ref;
    EXPECT_LE(((p.detach() - ref).abs() / (ref.abs() + 1e-12)).max().item<double>(), 1e-9) << "step " << t;
  }
}

TEST(GenomeOptimizer, StateOnlyForWhatTheGenomeNeeds) {
  auto make_state = [](const std::string& name) {
    auto p = torch::ones({3}, torch::kFloat64).requires_grad_(true);
    GenomeOptimizer opt({p}, GenomeOptimizerOptions(preset(name)));
    p.mutable_grad() = torch::ones({3}, torch::kFloat64);
    opt.step();
    auto& s = static_cast<optim::GenomeParamState&>(*opt.state().begin()->second);
    return std::make_pair(s.exp_avg().defined(), s.exp_avg_sq().defined());
  };
  EXPECT_EQ(make_state("adam"), std::make_pair(true, true));
  EXPECT_EQ(make_state("sgd"), std::make_pair(true, false));
  EXPECT_EQ(make_state("rmsprop"), std::make_pair(false, true));
  Genome sign = preset("adam");
  sign.terms = {{Term::SignGrad, 1.0}};
  auto p = torch::ones({3}, torch::kFloat64).requires_grad_(true);
  GenomeOptimizer opt({p}, GenomeOptimizerOptions(sign));
  EXPECT_TRUE(opt.state().empty());  // nothing before the first step
  p.mutable_grad() = torch::ones({3}, torch::kFloat64);
  opt.step();
  auto& s = static_cast<optim::GenomeParamState&>(*opt.state().begin()->second);
  EXPECT_FALSE(s.exp_avg().defined() || s.exp_avg_sq().defined());
  EXPECT_EQ(s.step(), 1);
}

TEST(GenomeOptimizer, ScheduleNeedsTotalStepsAndFollowsWarmupCosine) {
  Genome g = preset("adam");
  g.cosine_decay = true;
  auto p = torch::ones({1}).requires_grad_(true);
  EXPECT_THROW(GenomeOptimizer({p}, GenomeOptimizerOptions(g)), Error);
  EXPECT_NO_THROW(GenomeOptimizer({p}, GenomeOptimizerOptions(g, 100)));
  EXPECT_DOUBLE_EQ(optim::schedule_factor(0.1, false, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(optim::schedule_factor(0.1, false, 9, 100), 1.0);
  EXPECT_DOUBLE_EQ(optim::schedule_factor(0.1, true, 10, 100), 1.0);
  EXPECT_NEAR(optim::schedule_factor(0.1, true, 55, 100), 0.5, 1e-12);
  EXPECT_NEAR(optim::schedule_factor(0.0, true, 100, 100), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(optim::schedule_factor(0.0, false, 5, 0), 1.0);
  Genome bad = preset("adam");
  bad.beta1 = 2;
  EXPECT_THROW(GenomeOptimizerOptions{bad}, Error);
}

TEST(GenomeOptimizer, ClipsGradientsByGlobalNorm) {
  Genome g = preset("sgd");
  g.terms = {{Term::Grad, 1.0}};
  g.log10_lr = 0.0;
  g.clip_norm = 1.0;
  auto a = torch::zeros({2}, torch::kFloat64).requires_grad_(true);
  auto b = torch::zeros({1}, torch::kFloat64).requires_grad_(true);
  GenomeOptimizer opt({a, b}, GenomeOptimizerOptions(g));
  a.mutable_grad() = torch::tensor({3.0, 0.0}, torch::kFloat64);
  b.mutable_grad() = torch::tensor({4.0}, torch::kFloat64);  // global norm 5 → scaled by 1/5
  opt.step();
  EXPECT_NEAR(a[0].item<double>(), -0.6, 1e-6);
  EXPECT_NEAR(b[0].item<double>(), -0.8, 1e-6);
}

TEST(GenomeOptimizer, SaveAndLoadContinueIdentically) {
  auto a = make_net(), b = make_net();
  GenomeOptimizer ga(a->parameters(), GenomeOptimizerOptions(preset("adam")));
  train(*a, ga, 30);
  std::stringstream buffer;
  {
    torch::serialize::OutputArchive out;
    ga.save(out);
    out.save_to(buffer);
  }
  // b gets a's parameters and the saved optimizer state.
  {
    torch::NoGradGuard ng;
    for (std::size_t i = 0; i < a->parameters().size(); ++i) b->parameters()[i].copy_(a->parameters()[i]);
  }
  GenomeOptimizer gb(b->parameters(), GenomeOptimizerOptions(preset("adam")));
  torch::serialize::InputArchive in;
  in.load_from(buffer);
  gb.load(in);
  train(*a, ga, 20);
  train(*b, gb, 20);
  EXPECT_LE(max_relative_error(*a, *b), 1e-12);
}

namespace {
// Runs a preset-shaped genome on f from x0 for `steps`; returns the final point.
torch::Tensor minimise(Genome g, const std::function<torch::Tensor(const torch::Tensor&)>& f, torch::Tensor x0, int steps) {
  auto x = x0.clone().requires_grad_(true);
  GenomeOptimizer opt({x}, GenomeOptimizerOptions(g, steps));
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    f(x).backward();
    opt.step();
  }
  return x.detach();
}
}  // namespace

TEST(Convergence, EveryPresetSolvesAQuadraticAndRosenbrock) {
  // Each preset keeps its own update rule; only the learning rate (and, for the
  // sign-based ones, a cosine decay that lets them settle) is set for the problem.
  struct Setup {
    std::string name;
    double quad_lr, rosen_lr;
    bool cosine;
  };
  const std::vector<Setup> setups = {{"sgd", 0.1, 0.002, false},     {"adam", 0.05, 0.02, true},   {"adamw", 0.05, 0.02, true},
                                     {"rmsprop", 0.01, 0.002, true}, {"signum", 0.02, 0.01, true}, {"lion", 0.02, 0.01, true}};
  const auto scales = torch::tensor({1.0, 2.0, 4.0, 0.5, 3.0}, torch::kFloat64);
  auto quadratic = [&](const torch::Tensor& x) { return (scales * (x - 1.0).pow(2)).sum(); };
  auto rosenbrock = [](const torch::Tensor& x) { return (1 - x[0]).pow(2) + 100 * (x[1] - x[0].pow(2)).pow(2); };
  for (const auto& s : setups) {
    Genome g = preset(s.name);
    g.cosine_decay = s.cosine;
    g.log10_weight_decay.reset();  // weight decay pulls toward 0, not the optimum
    g.log10_lr = std::log10(s.quad_lr);
    auto xq = minimise(g, quadratic, torch::zeros({5}, torch::kFloat64), 3000);
    EXPECT_LT(quadratic(xq).item<double>(), 1e-3) << s.name << " quadratic";
    g.log10_lr = std::log10(s.rosen_lr);
    auto xr = minimise(g, rosenbrock, torch::tensor({-1.5, 2.0}, torch::kFloat64), 20000);
    EXPECT_LT((xr - 1.0).abs().max().item<double>(), 0.05) << s.name << " rosenbrock ends at " << xr;
  }
}
