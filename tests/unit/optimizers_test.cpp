// NAdamW, AdEMAMix, Schedule-Free AdamW and Muon against independent float64 references of
// the published algorithms (tests/unit/optim_reference.py, plain Python under
// /usr/bin/python3): every parameter after every one of 200 steps within 1e-9. Then what a
// user of the classes relies on: save and load mid-run, Schedule-Free's x for evaluation,
// Muon's split of a model's parameters, and one-line errors for bad options.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "evoopt/common/error.hpp"
#include "evoopt/common/files.hpp"
#include "evoopt/genome/genome.hpp"
#include "evoopt/optim/ademamix.hpp"
#include "evoopt/optim/algorithm.hpp"
#include "evoopt/optim/genome_optimizer.hpp"
#include "evoopt/optim/muon.hpp"
#include "evoopt/optim/nadamw.hpp"
#include "evoopt/optim/schedule.hpp"
#include "evoopt/optim/schedule_free_adamw.hpp"
#include "test_support.hpp"

using namespace evoopt;
using namespace evoopt::optim;

namespace {

constexpr int kSteps = 200;
const std::vector<std::vector<std::int64_t>> kShapes = {{3, 4}, {5, 3}, {2, 2, 2, 2}, {5}};  // as optim_reference.py's SHAPES

// The reference's problem: p0 = 0.5·sin(1.7·i + k); g = s·(p − cos(i + k)) + 0.3·sin(0.7·t + 1.3·i + 0.1·k).
std::vector<torch::Tensor> start() {
  std::vector<torch::Tensor> ps;
  for (std::size_t k = 0; k < kShapes.size(); ++k) {
    auto p = torch::empty(kShapes[k], torch::kFloat64);
    auto* d = p.data_ptr<double>();
    for (std::int64_t i = 0; i < p.numel(); ++i) d[i] = 0.5 * std::sin(1.7 * static_cast<double>(i) + static_cast<double>(k));
    ps.push_back(p.requires_grad_(true));
  }
  return ps;
}

void set_grads(std::vector<torch::Tensor>& ps, int t) {
  for (std::size_t k = 0; k < ps.size(); ++k) {
    auto g = torch::empty_like(ps[k]);
    const auto p = ps[k].detach().contiguous();
    const double* pd = p.data_ptr<double>();
    double* gd = g.data_ptr<double>();
    for (std::int64_t i = 0; i < g.numel(); ++i) {
      const auto di = static_cast<double>(i), dk = static_cast<double>(k);
      gd[i] = (0.5 + 0.5 * static_cast<double>(i % 5)) * (pd[i] - std::cos(di + dk)) + 0.3 * std::sin(0.7 * t + 1.3 * di + 0.1 * dk);
    }
    ps[k].mutable_grad() = g;
  }
}

std::vector<std::vector<double>> values(const std::vector<torch::Tensor>& ps) {
  std::vector<std::vector<double>> out;
  for (const auto& p : ps) {
    const auto c = p.detach().contiguous();
    out.emplace_back(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
  }
  return out;
}

nlohmann::json reference(const std::string& algorithm, const nlohmann::json& h) {
  test::TempDir tmp;
  const std::string cmd = "/usr/bin/python3 " + std::string(EVOOPT_TEST_SOURCE_DIR) + "/unit/optim_reference.py " + algorithm + " " +
                          std::to_string(kSteps) + " '" + h.dump() + "' > " + (tmp / "out").string() + " 2>&1";
  if (std::system(cmd.c_str()) != 0) throw Error("optim_reference.py failed: " + read_text_file(tmp / "out"));
  return nlohmann::json::parse(read_text_file(tmp / "out"));
}

// The largest |difference| between `got` and the reference's `key` at step index `step`.
double max_diff(const std::vector<std::vector<double>>& got, const nlohmann::json& want_step, const char* key) {
  double worst = 0;
  const auto& want = want_step.at(key);
  for (std::size_t k = 0; k < got.size(); ++k)
    for (std::size_t i = 0; i < got[k].size(); ++i) worst = std::max(worst, std::abs(got[k][i] - want.at(k).at(i).get<double>()));
  return worst;
}

// Runs `opt` on `ps` for kSteps, checking every step against `ref` (and `after_step`, when
// given, at each step).
void expect_matches(torch::optim::Optimizer& opt, std::vector<torch::Tensor>& ps, const nlohmann::json& ref,
                    const std::function<void(int)>& after_step = nullptr) {
  ASSERT_EQ(ref.size(), static_cast<std::size_t>(kSteps));
  double worst = 0;
  for (int t = 1; t <= kSteps; ++t) {
    set_grads(ps, t);
    opt.step();
    worst = std::max(worst, max_diff(values(ps), ref.at(static_cast<std::size_t>(t - 1)), "p"));
    if (after_step) after_step(t);
  }
  EXPECT_LE(worst, 1e-9);
  // The run moved the parameters (a reference that matches a frozen run would prove nothing).
  EXPECT_GT(max_diff(values(ps), ref.at(0), "p"), 1e-3);
}

const nlohmann::json kNAdamW = {{"lr", 0.01}, {"beta1", 0.9}, {"beta2", 0.99}, {"eps", 1e-8}, {"weight_decay", 0.1}};
const nlohmann::json kAdEMAMix = {{"lr", 0.01},   {"beta1", 0.9},  {"beta2", 0.99}, {"beta3", 0.999},
                                  {"alpha", 5.0}, {"warmup", 100}, {"eps", 1e-8},   {"weight_decay", 0.1}};
const nlohmann::json kScheduleFree = {{"lr", 0.02}, {"beta1", 0.9}, {"beta2", 0.99}, {"eps", 1e-8}, {"weight_decay", 0.05}, {"warmup_steps", 20}};

NAdamWOptions nadamw_options() { return NAdamWOptions(0.01).beta1(0.9).beta2(0.99).eps(1e-8).weight_decay(0.1); }
AdEMAMixOptions ademamix_options() {
  return AdEMAMixOptions(0.01).beta1(0.9).beta2(0.99).beta3(0.999).alpha(5).warmup(100).eps(1e-8).weight_decay(0.1);
}
ScheduleFreeAdamWOptions schedule_free_options() {
  return ScheduleFreeAdamWOptions(0.02).beta1(0.9).beta2(0.99).eps(1e-8).weight_decay(0.05).warmup_steps(20);
}

nlohmann::json muon_hyper(bool nesterov) {
  return {{"lr", 0.02},        {"momentum", 0.95},   {"nesterov", nesterov}, {"ns_steps", 5},      {"weight_decay", 0.1},
          {"adamw_lr", 0.003}, {"adamw_beta1", 0.9}, {"adamw_beta2", 0.95},  {"adamw_eps", 1e-10}, {"adamw_weight_decay", 0.1}};
}

// The reference's groups: every tensor of 2 or more dimensions on Muon, the vector on AdamW.
Muon make_muon(std::vector<torch::Tensor>& ps, bool nesterov) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{ps[0], ps[1], ps[2]},
                      std::make_unique<MuonOptions>(MuonOptions(0.02).momentum(0.95).nesterov(nesterov).ns_steps(5).weight_decay(0.1)));
  groups.emplace_back(std::vector<torch::Tensor>{ps[3]},
                      std::make_unique<MuonOptions>(MuonOptions::adamw(0.003).beta1(0.9).beta2(0.95).eps(1e-10).weight_decay(0.1)));
  return Muon(std::move(groups));
}

}  // namespace

TEST(Optimizers, NAdamWMatchesTheAlgoPerfAlgorithmInFloat64) {
  auto ps = start();
  NAdamW opt(ps, nadamw_options());
  expect_matches(opt, ps, reference("nadamw", kNAdamW));
}

// The nadamw genome preset (the NADAMW term, what the comparison's `nadamw` baseline trains
// with) is the same algorithm: GenomeOptimizer against the same reference.
TEST(Optimizers, TheNAdamWGenomeMatchesTheAlgoPerfAlgorithmInFloat64) {
  auto ps = start();
  genome::Genome g = genome::preset("nadamw");
  g.log10_lr = std::log10(0.01);
  g.beta2 = 0.99;
  g.log10_weight_decay = std::log10(0.1);
  GenomeOptimizer opt(ps, GenomeOptimizerOptions(g));
  expect_matches(opt, ps, reference("nadamw", kNAdamW));
}

TEST(Optimizers, AdEMAMixMatchesThePublishedAlgorithmWithItsWarmupsInFloat64) {
  auto ps = start();
  AdEMAMix opt(ps, ademamix_options());
  expect_matches(opt, ps, reference("ademamix", kAdEMAMix));
  // The schedules: α rises linearly, β3 goes from β1 to β3, both reach their values at T.
  const auto o = ademamix_options();
  EXPECT_DOUBLE_EQ(AdEMAMix::alpha_at(o, 50), 2.5);
  EXPECT_NEAR(AdEMAMix::beta3_at(o, 0), 0.9, 1e-6);  // the start of the half-life line (f(β) uses β + 1e-8)
  EXPECT_DOUBLE_EQ(AdEMAMix::beta3_at(o, 100), 0.999);
  EXPECT_LT(AdEMAMix::beta3_at(o, 50), 0.999);
  EXPECT_GT(AdEMAMix::beta3_at(o, 50), AdEMAMix::beta3_at(o, 49));
}

TEST(Optimizers, ScheduleFreeAdamWTrainsAtYAndEvaluatesAtXAsThePaperDefinesThem) {
  auto ps = start();
  ScheduleFreeAdamW opt(ps, schedule_free_options());
  const auto ref = reference("schedule_free", kScheduleFree);
  double worst_x = 0;
  expect_matches(opt, ps, ref, [&](int t) {
    if (t % 50 != 0) return;
    opt.eval_mode();
    worst_x = std::max(worst_x, max_diff(values(ps), ref.at(static_cast<std::size_t>(t - 1)), "x"));
    EXPECT_THROW(opt.step(), Error);  // no step at x
    opt.train_mode();
  });
  EXPECT_LE(worst_x, 1e-9);
  // x and y differ (else the test could not tell them apart).
  EXPECT_GT(max_diff(values(ps), ref.back(), "x"), 1e-4);
}

TEST(Optimizers, MuonMatchesThePublishedAlgorithmWithItsAdamWPartInFloat64) {
  for (bool nesterov : {true, false}) {
    auto ps = start();
    Muon opt = make_muon(ps, nesterov);
    expect_matches(opt, ps, reference("muon", muon_hyper(nesterov)));
  }
}

TEST(Optimizers, OrthogonalizeApproachesAnOrthogonalMatrixAndKeepsTheShape) {
  torch::manual_seed(0);
  for (const auto& shape : std::vector<std::vector<std::int64_t>>{{8, 5}, {5, 8}, {4, 3, 3, 3}}) {
    const auto x = torch::randn(shape, torch::kFloat64);
    const auto o = orthogonalize(x);
    EXPECT_EQ(o.sizes(), x.sizes());
    // The singular values of the result lie in Newton–Schulz's band around 1 (about 0.7–1.2).
    const auto s = torch::linalg::svdvals(o.reshape({shape[0], -1}), c10::nullopt);
    EXPECT_GT(s.min().item<double>(), 0.5) << s;
    EXPECT_LT(s.max().item<double>(), 1.3) << s;
  }
  const auto v = torch::tensor({1.0, -2.0, 3.0}, torch::kFloat64);
  EXPECT_TRUE(torch::equal(orthogonalize(v), v));  // 1-D: as it is
}

TEST(Optimizers, SavedMidRunEachOptimizerContinuesAsIfNeverStopped) {
  using Make = std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::Tensor>&)>;
  const std::vector<std::pair<std::string, Make>> makers = {
      {"NAdamW", [](std::vector<torch::Tensor>& ps) { return std::make_unique<NAdamW>(ps, nadamw_options()); }},
      {"AdEMAMix", [](std::vector<torch::Tensor>& ps) { return std::make_unique<AdEMAMix>(ps, ademamix_options()); }},
      {"ScheduleFreeAdamW", [](std::vector<torch::Tensor>& ps) { return std::make_unique<ScheduleFreeAdamW>(ps, schedule_free_options()); }},
      {"Muon", [](std::vector<torch::Tensor>& ps) { return std::make_unique<Muon>(make_muon(ps, true)); }}};
  for (const auto& [name, make] : makers) {
    auto straight = start();
    auto a = make(straight);
    for (int t = 1; t <= 60; ++t) set_grads(straight, t), a->step();
    auto resumed = start();
    auto b = make(resumed);
    for (int t = 1; t <= 30; ++t) set_grads(resumed, t), b->step();
    std::ostringstream saved;
    {
      torch::serialize::OutputArchive archive;
      b->save(archive);
      archive.save_to(saved);
    }
    std::vector<torch::Tensor> copy;
    for (const auto& p : resumed) copy.push_back(p.detach().clone().requires_grad_(true));
    auto c = make(copy);
    std::istringstream in(saved.str());
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    c->load(archive);
    for (int t = 31; t <= 60; ++t) set_grads(copy, t), c->step();
    for (std::size_t k = 0; k < copy.size(); ++k) EXPECT_TRUE(torch::equal(copy[k], straight[k])) << name << " tensor " << k;
  }
}

// Weights saved in eval mode hold x: the loaded optimizer knows, and train_mode() turns them
// back into y, so the run continues as if never stopped.
TEST(Optimizers, ScheduleFreeSavedInEvalModeResumesAtY) {
  auto straight = start();
  ScheduleFreeAdamW a(straight, schedule_free_options());
  for (int t = 1; t <= 40; ++t) set_grads(straight, t), a.step();
  auto resumed = start();
  ScheduleFreeAdamW b(resumed, schedule_free_options());
  for (int t = 1; t <= 20; ++t) set_grads(resumed, t), b.step();
  b.eval_mode();
  std::ostringstream saved;
  {
    torch::serialize::OutputArchive archive;
    b.save(archive);
    archive.save_to(saved);
  }
  std::vector<torch::Tensor> copy;
  for (const auto& p : resumed) copy.push_back(p.detach().clone().requires_grad_(true));  // x
  ScheduleFreeAdamW c(copy, schedule_free_options());
  std::istringstream in(saved.str());
  torch::serialize::InputArchive archive;
  archive.load_from(in);
  c.load(archive);
  EXPECT_FALSE(c.in_train_mode());
  c.train_mode();
  for (int t = 21; t <= 40; ++t) set_grads(copy, t), c.step();
  for (std::size_t k = 0; k < copy.size(); ++k) EXPECT_LE((copy[k] - straight[k]).abs().max().item<double>(), 1e-12) << k;
}

TEST(Optimizers, MuonSplitKeepsTheFirstLayerTheHeadAndVectorsOnAdamW) {
  torch::nn::Sequential model(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3)), torch::nn::BatchNorm2d(4),
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 8, 3)), torch::nn::Flatten(), torch::nn::Linear(8 * 4 * 4, 16),
                              torch::nn::Linear(16, 10));
  const auto named = model->named_parameters().pairs();
  const MuonSplit split = muon_split(named);
  std::vector<std::string> muon, adamw;
  for (const auto& np : split.muon) muon.push_back(np.first);
  for (const auto& np : split.adamw) adamw.push_back(np.first);
  EXPECT_EQ(muon, (std::vector<std::string>{"2.weight", "4.weight"}));
  EXPECT_EQ(adamw, (std::vector<std::string>{"0.weight", "0.bias", "1.weight", "1.bias", "2.bias", "4.bias", "5.weight", "5.bias"}));
  EXPECT_EQ(split.describe().rfind("Muon: 2.weight [8, 4, 3, 3], 4.weight [16, 128]; AdamW: 0.weight [4, 1, 3, 3], 0.bias [4]", 0), 0u)
      << split.describe();
  // The split's groups train the model; the optimizer takes both.
  Muon opt(split.groups(MuonOptions(0.02), MuonOptions::adamw(3e-4)));
  const auto x = torch::randn({2, 1, 8, 8});
  const auto before = model->parameters()[0].detach().clone();
  model->forward(x).sum().backward();
  opt.step();
  EXPECT_FALSE(torch::equal(before, model->parameters()[0]));
  // Chosen by name instead of the rule.
  const MuonSplit chosen = muon_split(named, {"5.weight"});
  ASSERT_EQ(chosen.muon.size(), 1u);
  EXPECT_EQ(chosen.muon[0].first, "5.weight");
  EXPECT_EQ(chosen.adamw.size(), named.size() - 1);
  // A model with two matrices has no hidden one: everything on AdamW.
  torch::nn::Sequential small(torch::nn::Linear(4, 8), torch::nn::Linear(8, 2));
  EXPECT_TRUE(muon_split(small->named_parameters().pairs()).muon.empty());
}

TEST(Optimizers, BadOptionsAndMisplacedParametersAreOneLineErrors) {
  auto ps = start();
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([&] { NAdamW(ps, NAdamWOptions(-1)); }), "NAdamW: lr must be >= 0, got -1.000000");
  EXPECT_EQ(message([&] { AdEMAMix(ps, AdEMAMixOptions().beta3(1.0)); }), "AdEMAMix: beta3 must be in [0, 1), got 1.000000");
  EXPECT_EQ(message([&] { ScheduleFreeAdamW(ps, ScheduleFreeAdamWOptions().beta1(0)); }), "ScheduleFreeAdamW: beta1 must be in (0, 1), got 0.000000");
  EXPECT_EQ(message([&] { Muon(std::vector<torch::optim::OptimizerParamGroup>{torch::optim::OptimizerParamGroup(ps)}); }),
            "Muon: a parameter of shape 5 is in a Muon group; parameters of fewer than 2 dimensions go to the AdamW group");
  EXPECT_EQ(message([&] { muon_split({{"w", ps[0]}}, {"v"}); }), "Muon: the model has no parameter named 'v'");
  EXPECT_EQ(message([&] {
              muon_split({{"b", ps[3]}}, {"b"});
            }),
            "Muon: parameter 'b' has shape 5; only parameters of 2 or more dimensions can step with Muon");
}

// A genome that names a hand-made algorithm trains with it, its schedule scaling every group's
// learning rate and its clipping over all parameters: AlgorithmOptimizer equals the optimizer
// driven by hand that way, bit for bit.
namespace {
std::vector<std::pair<std::string, torch::Tensor>> named(const std::vector<torch::Tensor>& ps) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (std::size_t k = 0; k < ps.size(); ++k) out.emplace_back("p" + std::to_string(k), ps[k]);
  return out;
}

// The global norm over the optimizer's parameters, group by group (the order the norms are summed in).
void clip_by_hand(torch::optim::Optimizer& opt, double c) {
  std::vector<torch::Tensor> norms;
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) norms.push_back(p.grad().norm(2));
  const double coef = c / (torch::stack(norms).norm(2).item<double>() + 1e-6);
  if (coef < 1.0)
    for (auto& group : opt.param_groups())
      for (auto& p : group.params()) p.grad().mul_(coef);
}
}  // namespace

TEST(Optimizers, AGenomeNamingAnAlgorithmTrainsWithItsScheduleAndClipping) {
  const int steps = 50;
  genome::Genome ademamix = genome::preset("ademamix");
  ademamix.log10_lr = -2.0;
  ademamix.beta3 = 0.999;
  ademamix.alpha = 4.0;
  ademamix.warmup_fraction = 0.1;
  ademamix.cosine_decay = true;
  ademamix.clip_norm = 0.5;
  genome::Genome muon = genome::preset("muon");
  muon.warmup_fraction = 0.2;
  muon.cosine_decay = true;
  muon.log10_weight_decay = -1.0;
  muon.clip_norm = 1.0;
  genome::Genome sf = genome::preset("schedule_free_adamw");
  sf.warmup_fraction = 0.2;
  sf.clip_norm = 0.5;
  for (const auto* g : {&ademamix, &muon, &sf}) {
    SCOPED_TRACE(genome::algorithm_name(g->algorithm));
    auto ps = start();
    optim::AlgorithmOptimizer opt(*g, named(ps), steps);
    auto qs = start();
    std::unique_ptr<torch::optim::Optimizer> by_hand;
    if (g == &ademamix)
      by_hand = std::make_unique<AdEMAMix>(qs, AdEMAMixOptions(g->lr()).beta3(0.999).alpha(4.0).warmup(steps).weight_decay(g->weight_decay()));
    else if (g == &sf)
      by_hand = std::make_unique<ScheduleFreeAdamW>(qs, ScheduleFreeAdamWOptions(g->lr()).warmup_steps(10));
    else
      by_hand = std::make_unique<Muon>(muon_split(named(qs)).groups(MuonOptions(g->lr()).momentum(0.95).weight_decay(g->weight_decay()),
                                                                    MuonOptions::adamw(g->aux_lr()).weight_decay(g->weight_decay())));
    std::vector<double> base;
    for (auto& group : by_hand->param_groups()) base.push_back(group.options().get_lr());
    for (int t = 1; t <= steps; ++t) {
      set_grads(ps, t);
      opt.step(t);
      set_grads(qs, t);
      clip_by_hand(*by_hand, *g->clip_norm);
      if (g != &sf)
        for (std::size_t i = 0; i < base.size(); ++i)
          by_hand->param_groups()[i].options().set_lr(base[i] * schedule_factor(g->warmup_fraction, true, t - 1, steps));
      by_hand->step();
    }
    for (std::size_t k = 0; k < ps.size(); ++k) EXPECT_TRUE(torch::equal(ps[k], qs[k])) << "tensor " << k;
    EXPECT_EQ(opt.split().empty(), g != &muon);
    // Schedule-Free evaluates at x: to_evaluation() is its eval_mode(), to_training() goes back.
    opt.to_evaluation();
    if (auto* s = dynamic_cast<ScheduleFreeAdamW*>(by_hand.get())) s->eval_mode();
    for (std::size_t k = 0; k < ps.size(); ++k) EXPECT_TRUE(torch::equal(ps[k], qs[k])) << "tensor " << k << " at evaluation";
    EXPECT_EQ(opt.evaluates_elsewhere(), g == &sf);
  }
}

// Stopped mid-run and loaded into a fresh optimizer, every algorithm continues bit for bit,
// also with a channels-last convolution kernel (load puts each state buffer back in its
// parameter's layout, so reductions over it sum in the same order).
TEST(Optimizers, AnAlgorithmOptimizerSavedMidRunContinuesBitForBit) {
  genome::Genome terms = genome::preset("adam");
  terms.terms = {{genome::Term::AdamTerm, 0.8}, {genome::Term::Lion, 0.3}};
  for (const auto& g : {terms, genome::preset("ademamix"), genome::preset("schedule_free_adamw"), genome::preset("muon")}) {
    SCOPED_TRACE(genome::algorithm_name(g.algorithm));
    const auto make = [] {
      auto ps = start();
      ps[2] = ps[2].detach().contiguous(at::MemoryFormat::ChannelsLast).requires_grad_(true);
      ps.push_back(ps[0].detach().clone().t().contiguous().mul(0.3).requires_grad_(true));  // a second matrix: Muon has a hidden one
      return ps;
    };
    const auto grads = [](std::vector<torch::Tensor>& ps, int t) {
      std::vector<torch::Tensor> first(ps.begin(), ps.begin() + 4);
      set_grads(first, t);
      ps[4].mutable_grad() = torch::sin(ps[4].detach() * t);
    };
    auto straight = make();
    optim::AlgorithmOptimizer a(g, named(straight), 40);
    for (int t = 1; t <= 40; ++t) grads(straight, t), a.step(t);
    auto resumed = make();
    optim::AlgorithmOptimizer b(g, named(resumed), 40);
    for (int t = 1; t <= 17; ++t) grads(resumed, t), b.step(t);
    std::ostringstream saved;
    {
      torch::serialize::OutputArchive archive;
      b.save(archive);
      archive.save_to(saved);
    }
    auto copy = make();
    {
      torch::NoGradGuard no_grad;
      for (std::size_t k = 0; k < copy.size(); ++k) copy[k].copy_(resumed[k]);
    }
    optim::AlgorithmOptimizer c(g, named(copy), 40);
    std::istringstream in(saved.str());
    torch::serialize::InputArchive archive;
    archive.load_from(in);
    c.load(archive);
    for (int t = 18; t <= 40; ++t) grads(copy, t), c.step(t);
    for (std::size_t k = 0; k < copy.size(); ++k) EXPECT_TRUE(torch::equal(copy[k], straight[k])) << "tensor " << k;
  }
}

TEST(Optimizers, HandMadeAlgorithmGenomesReadWriteHashAndRefuseWhatTheyCannotBe) {
  for (const char* name : {"ademamix", "schedule_free_adamw", "muon"}) {
    const genome::Genome g = genome::preset(name);
    EXPECT_EQ(genome::algorithm_name(g.algorithm), std::string(name));
    EXPECT_EQ(genome::Genome::from_json(g.to_json()), g);
    EXPECT_EQ(genome::Genome::from_json(nlohmann::json::parse(g.to_json().dump())).hash(), g.hash());
    EXPECT_NE(g.hash(), genome::preset("adam").hash());
    EXPECT_NE(g.formula().find(name == std::string("muon")       ? "Muon"
                               : name == std::string("ademamix") ? "AdEMAMix"
                                                                 : "Schedule-Free"),
              std::string::npos);
  }
  // A term genome's file and hash do not mention the algorithm fields.
  EXPECT_FALSE(genome::preset("adam").to_json().contains("algorithm"));
  genome::Genome adam = genome::preset("adam");
  adam.beta3 = 0.5;  // not read by a term genome: canonical, same hash
  EXPECT_EQ(adam.hash(), genome::preset("adam").hash());
  genome::Genome mix = genome::preset("ademamix");
  mix.beta3 = 0.999;
  EXPECT_NE(mix.hash(), genome::preset("ademamix").hash());
  genome::Genome muon = genome::preset("muon");
  muon.beta2 = 0.9;  // Muon's AdamW part keeps the authors' β2
  EXPECT_EQ(muon.hash(), genome::preset("muon").hash());
  muon.log10_aux_lr = -3;
  EXPECT_NE(muon.hash(), genome::preset("muon").hash());

  const auto refused = [](const nlohmann::json& j, const std::string& want) {
    try {
      genome::Genome::from_json(j);
      ADD_FAILURE() << "accepted " << j.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  refused({{"algorithm", "muon"}, {"terms", {"ADAM_TERM"}}}, "has no terms");
  refused({{"algorithm", "adafactor"}}, "is not one of terms, program, ademamix, schedule_free_adamw, muon");
  refused({{"algorithm", "schedule_free_adamw"}, {"cosine_decay", true}}, "cosine_decay is not allowed");
  refused({{"algorithm", "ademamix"}, {"weight_decay", 0.1}, {"decoupled_weight_decay", false}}, "decoupled");
  refused({{"algorithm", "ademamix"}, {"beta3", 1.0}}, "beta3");
  EXPECT_EQ(genome::Genome::from_json({{"algorithm", "muon"}, {"aux_lr", 1e-3}}).aux_lr(),
            genome::Genome::from_json({{"algorithm", "muon"}, {"log10_aux_lr", -3}}).aux_lr());
}

// The program presets (genome/program.hpp) train as the published algorithms they spell, in
// float64 over 200 steps against the same references as the hand-made optimizers: NAdam (its
// momentum schedule, L2 decay) as torch.optim.NAdam documents it, Muon as two programs
// (hidden matrices, and its AdamW part on the rest at η_aux), and Schedule-Free AdamW, trained
// at y and evaluated at x.
TEST(Optimizers, TheNAdamProgramMatchesTorchsNAdamInFloat64) {
  auto ps = start();
  genome::Genome g = genome::program_preset("nadam");
  g.log10_lr = -2.0;
  g.beta2 = 0.99;
  g.log10_weight_decay = -2.0;
  g.decoupled_weight_decay = false;
  GenomeOptimizer opt(ps, GenomeOptimizerOptions(g));
  expect_matches(opt, ps, reference("nadam", {{"lr", 0.01}, {"beta1", 0.9}, {"beta2", 0.99}, {"eps", 1e-8}, {"weight_decay", 0.01}}));
}

TEST(Optimizers, TheMuonProgramsMatchThePublishedMuonAndItsAdamWPartInFloat64) {
  auto ps = start();
  genome::Genome g = genome::program_preset("muon");
  ASSERT_TRUE(g.has_program_rest());
  g.log10_lr = std::log10(0.02);
  g.beta1 = 0.95;
  g.log10_aux_lr = std::log10(0.003);
  g.log10_weight_decay = -1.0;
  // The reference's split: every tensor of 2 or more dimensions on Muon.
  AlgorithmOptimizer opt(g, named(ps), kSteps, {"p0", "p1", "p2"});
  EXPECT_EQ(opt.split(), "program: p0 [3, 4], p1 [5, 3], p2 [2, 2, 2, 2]; program_rest: p3 [5]");
  expect_matches(opt.optimizer(), ps, reference("muon", muon_hyper(true)));
  // A genome with two programs needs the split: GenomeOptimizer alone refuses it.
  auto qs = start();
  EXPECT_THROW(GenomeOptimizer(qs, GenomeOptimizerOptions(g)), Error);
}

TEST(Optimizers, TheScheduleFreeProgramTrainsAtYAndEvaluatesAtXInFloat64) {
  auto ps = start();
  genome::Genome g = genome::program_preset("schedule_free_adamw");
  g.log10_lr = std::log10(0.02);
  g.beta1 = 0.9;
  g.beta2 = 0.99;
  g.log10_eps = -8.0;
  g.log10_weight_decay = std::log10(0.05);
  g.warmup_fraction = 20.0 / kSteps;
  GenomeOptimizer opt(ps, GenomeOptimizerOptions(g, kSteps));
  EXPECT_TRUE(opt.evaluates_elsewhere());
  const auto ref = reference("schedule_free", kScheduleFree);
  double worst_x = 0;
  expect_matches(opt, ps, ref, [&](int t) {
    if (t % 50 != 0) return;
    const auto y = values(ps);
    opt.to_evaluation();
    worst_x = std::max(worst_x, max_diff(values(ps), ref.at(static_cast<std::size_t>(t - 1)), "x"));
    EXPECT_THROW(opt.step(), Error);  // no step at x
    torch::serialize::OutputArchive archive;
    EXPECT_THROW(opt.save(archive), Error);  // nor a save
    opt.to_training();
    EXPECT_EQ(values(ps), y);  // the training weights come back bit for bit
  });
  EXPECT_LE(worst_x, 1e-9);
  EXPECT_GT(max_diff(values(ps), ref.back(), "x"), 1e-4);
}
