#include "evoopt/task/cartpole.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "evoopt/common/error.hpp"
#include "evoopt/common/rng.hpp"

namespace evoopt::task::cartpole {

void Env::reset(std::uint64_t seed) {
  Rng rng(seed);
  State s;
  for (double& v : s) v = rng.uniform(-kResetBound, kResetBound);
  reset_to(s);
}

void Env::reset_to(const State& state) {
  state_ = state;
  steps_ = 0;
  started_ = true;
  done_ = false;
}

// CartPoleEnv.step and TimeLimit.step of Gymnasium
// (https://github.com/Farama-Foundation/Gymnasium/blob/main/gymnasium/envs/classic_control/cartpole.py),
// the equations of motion from Florian, "Correct equations for the dynamics of the cart-pole
// system" (2007, https://coneural.org/florian/papers/05_cart_pole.pdf) without friction. Each
// expression is grouped as the Python source evaluates it, so the doubles agree bit for bit.
StepResult Env::step(int action) {
  if (action != 0 && action != 1) throw Error(fmt::format("cartpole: action {} is not 0 (push left) or 1 (push right)", action));
  if (!started_) throw Error("cartpole: step before the first reset");
  if (done_) throw Error("cartpole: step after the episode ended (terminated or truncated); reset it first");
  const auto [x, x_dot, theta, theta_dot] = state_;
  const double force = action == 1 ? kForceMag : -kForceMag;
  const double costheta = std::cos(theta), sintheta = std::sin(theta);
  const double temp = (force + kPoleMassLength * (theta_dot * theta_dot) * sintheta) / kTotalMass;
  const double thetaacc = (kGravity * sintheta - costheta * temp) / (kLength * (4.0 / 3.0 - kMassPole * (costheta * costheta) / kTotalMass));
  const double xacc = temp - kPoleMassLength * thetaacc * costheta / kTotalMass;
  // kinematics_integrator == "euler": every update reads the state before the step.
  state_ = {x + kTau * x_dot, x_dot + kTau * xacc, theta + kTau * theta_dot, theta_dot + kTau * thetaacc};
  ++steps_;
  StepResult r;
  const double nx = state_[0], ntheta = state_[2];
  r.terminated = nx < -kXThreshold || nx > kXThreshold || ntheta < -kThetaThresholdRadians || ntheta > kThetaThresholdRadians;
  r.reward = 1.0;                            // "including the termination step"
  r.truncated = steps_ >= kMaxEpisodeSteps;  // TimeLimit: elapsed_steps >= max_episode_steps
  done_ = r.done();
  return r;
}

std::array<float, 4> observation(const State& s) {
  return {static_cast<float>(s[0]), static_cast<float>(s[1]), static_cast<float>(s[2]), static_cast<float>(s[3])};
}

namespace {

namespace nn = torch::nn;
constexpr std::int64_t kHidden = 64;

class Policy : public Model {
 public:
  explicit Policy(std::uint64_t seed) {
    net_->push_back(nn::Linear(4, kHidden));
    net_->push_back(nn::Tanh());
    net_->push_back(nn::Linear(kHidden, kHidden));
    net_->push_back(nn::Tanh());
    net_->push_back(nn::Linear(kHidden, 2));
    // PyTorch's default initialisation (nn.Linear.reset_parameters: U(±1/√fan_in) for the
    // weight and the bias), from this policy's own generator, layer by layer.
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    torch::NoGradGuard no_grad;
    for (auto& module : net_->modules(/*include_self=*/false))
      if (auto* l = module->as<nn::Linear>()) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(l->weight.size(1)));
        l->weight.uniform_(-bound, bound, gen);
        l->bias.uniform_(-bound, bound, gen);
      }
  }
  torch::Tensor forward(const torch::Tensor& x) override { return net_->forward(x); }
  std::vector<torch::Tensor> parameters() override { return net_->parameters(); }
  void train(bool on) override { net_->train(on); }
  void to(const torch::Device& device) override { net_->to(device); }
  std::vector<std::pair<std::string, torch::Tensor>> named_state() override {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : net_->named_parameters()) out.emplace_back("param/" + p.key(), p.value());
    return out;
  }

 private:
  nn::Sequential net_;
};

using Observation = std::array<float, 4>;

torch::Device device_of(Model& policy) {
  const auto params = policy.parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

// Rows of observations as a float32 (n, 4) tensor on `device`.
torch::Tensor batch_of(const std::vector<Observation>& rows, const torch::Device& device) {
  torch::Tensor t = torch::empty({static_cast<std::int64_t>(rows.size()), 4}, torch::kFloat32);
  static_assert(sizeof(Observation) == 4 * sizeof(float), "rows are copied as packed floats");
  std::memcpy(t.data_ptr<float>(), rows.data(), rows.size() * sizeof(Observation));
  return device.is_cpu() ? t : t.to(device);
}

// The policy's logits for `rows` without grad, as float32 on the CPU, row-major (n, 2).
torch::Tensor logits_of(Model& policy, const std::vector<Observation>& rows, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  return policy.forward(batch_of(rows, device)).to(torch::kCPU, torch::kFloat32).contiguous();
}

// Steps `envs` in lock-step until every episode has ended: one batched no-grad forward of the
// running episodes' observations per time step; act(i, observation, l0, l1) returns episode
// i's action from its logits.
template <typename Act>
void run_lockstep(Model& policy, std::vector<Env>& envs, Act&& act) {
  const torch::Device device = device_of(policy);
  std::vector<std::size_t> running(envs.size());
  for (std::size_t i = 0; i < envs.size(); ++i) running[i] = i;
  std::vector<Observation> rows;
  while (!running.empty()) {
    rows.clear();
    for (std::size_t i : running) rows.push_back(observation(envs[i].state()));
    const torch::Tensor logits = logits_of(policy, rows, device);
    const float* l = logits.data_ptr<float>();
    std::vector<std::size_t> still;
    for (std::size_t r = 0; r < running.size(); ++r) {
      const std::size_t i = running[r];
      if (!envs[i].step(act(i, rows[r], l[2 * r], l[2 * r + 1])).done()) still.push_back(i);
    }
    running.swap(still);
  }
}

// What a batch of lock-step episodes visited, episode by episode.
struct Rollouts {
  std::vector<std::vector<Observation>> observations;
  std::vector<std::vector<std::int64_t>> actions;
  bool nonfinite_logits = false;
};

Rollouts roll_out(Model& policy, std::uint64_t seed, std::int64_t step, int episodes) {
  const std::uint64_t key = derive_seed(seed, "cartpole/rollout", static_cast<std::uint64_t>(step));
  const auto n = static_cast<std::size_t>(episodes);
  std::vector<Env> envs(n);
  std::vector<Rng> draws;
  Rollouts out;
  out.observations.resize(n);
  out.actions.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    envs[i].reset(derive_seed(key, "reset", i));
    draws.emplace_back(derive_seed(key, "actions", i));
  }
  run_lockstep(policy, envs, [&](std::size_t i, const Observation& row, double l0, double l1) {
    const double u = draws[i].uniform();  // drawn on every step, so episode i's uniforms never depend on the others
    // softmax([l0, l1])[1] = 1 / (1 + e^(l0 − l1)); P(u < p1) = p1. Non-finite logits: action 0.
    const bool finite = std::isfinite(l0) && std::isfinite(l1);
    out.nonfinite_logits |= !finite;
    const std::int64_t a = finite && u < 1.0 / (1.0 + std::exp(l0 - l1)) ? 1 : 0;
    out.observations[i].push_back(row);
    out.actions[i].push_back(a);
    return static_cast<int>(a);
  });
  return out;
}

// Â_{i,t} of every visited pair, episode-major (the order of Rollouts flattened): returns-to-go
// minus the mean return-to-go of the episodes running at t, divided by their standard deviation.
std::vector<double> normalised_advantages(const Rollouts& r, double gamma) {
  const std::size_t n = r.actions.size();
  std::vector<std::vector<double>> g(n);
  std::size_t longest = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t len = r.actions[i].size();
    g[i].resize(len);
    double acc = 0;
    for (std::size_t t = len; t-- > 0;) g[i][t] = acc = 1.0 + gamma * acc;  // every reward is 1
    longest = std::max(longest, len);
  }
  std::vector<double> sum(longest, 0.0), count(longest, 0.0);
  for (const auto& gi : g)
    for (std::size_t t = 0; t < gi.size(); ++t) sum[t] += gi[t], count[t] += 1;
  std::vector<double> adv;
  for (const auto& gi : g)
    for (std::size_t t = 0; t < gi.size(); ++t) adv.push_back(gi[t] - sum[t] / count[t]);
  double mean = 0, var = 0;
  for (double a : adv) mean += a;
  mean /= static_cast<double>(adv.size());
  for (double a : adv) var += (a - mean) * (a - mean);
  const double scale = 1.0 / (std::sqrt(var / static_cast<double>(adv.size())) + 1e-8);
  for (double& a : adv) a *= scale;
  return adv;
}

}  // namespace

std::unique_ptr<Model> make_policy(std::uint64_t seed) { return std::make_unique<Policy>(seed); }

double policy_forward_flops() { return 2.0 * (4.0 * kHidden + static_cast<double>(kHidden * kHidden) + kHidden * 2.0); }

void RolloutOptions::validate() const {
  if (episodes < 2 || episodes > 4096)
    throw Error(fmt::format("cartpole: episodes = {} is outside [2, 4096] (the baseline is a mean over episodes)", episodes));
  if (!(gamma >= 0.0 && gamma <= 1.0)) throw Error(fmt::format("cartpole: gamma = {} is outside [0, 1]", gamma));
}

PolicyLoss reinforce_loss(Model& policy, std::uint64_t seed, std::int64_t step, const RolloutOptions& options) {
  options.validate();
  const Rollouts r = roll_out(policy, seed, step, options.episodes);
  std::vector<Observation> rows;
  std::vector<std::int64_t> actions;
  for (std::size_t i = 0; i < r.actions.size(); ++i) {
    rows.insert(rows.end(), r.observations[i].begin(), r.observations[i].end());
    actions.insert(actions.end(), r.actions[i].begin(), r.actions[i].end());
  }
  const std::vector<double> adv = normalised_advantages(r, options.gamma);
  const torch::Device device = device_of(policy);
  const auto count = static_cast<std::int64_t>(actions.size());
  const torch::Tensor a = torch::tensor(actions, torch::kInt64).to(device);
  const torch::Tensor weight = torch::tensor(adv, torch::kFloat64).to(device, torch::kFloat32);
  const torch::Tensor log_pi = torch::log_softmax(policy.forward(batch_of(rows, device)), /*dim=*/1).gather(1, a.view({count, 1})).view({count});
  PolicyLoss out;
  out.loss = -(log_pi * weight).mean();
  // Non-finite logits during the rollout: the loss says so even if the rows with grad happen
  // to round to finite values.
  if (r.nonfinite_logits) out.loss = out.loss + std::numeric_limits<double>::quiet_NaN();
  out.env_steps = count;
  out.mean_return = static_cast<double>(count) / static_cast<double>(options.episodes);
  return out;
}

double evaluate_policy(Model& policy, std::uint64_t seed, int episodes) {
  if (episodes < 1 || episodes > 100000) throw Error(fmt::format("cartpole: evaluation episodes = {} is outside [1, 100000]", episodes));
  const auto n = static_cast<std::size_t>(episodes);
  std::vector<Env> envs(n);
  for (std::size_t i = 0; i < n; ++i) envs[i].reset(derive_seed(seed, "cartpole/evaluate", i));
  run_lockstep(policy, envs, [](std::size_t, const Observation&, double l0, double l1) { return l1 > l0 ? 1 : 0; });  // greedy; 0 on a tie or NaN
  std::int64_t total = 0;
  for (const auto& e : envs) total += e.steps();
  return static_cast<double>(total) / (static_cast<double>(n) * kMaxEpisodeSteps);
}

}  // namespace evoopt::task::cartpole
