#pragma once
// A reinforcement-learning workload: CartPole-v1 and a policy trained by REINFORCE.
//
// Env is Gymnasium's CartPole-v1 (gymnasium/envs/classic_control/cartpole.py, wrapped in
// TimeLimit with max_episode_steps=500): the same constants, equations of motion (explicit
// Euler), termination test, reward and time limit, in double precision, checked state by
// state against an independent plain-Python float64 implementation
// (tests/unit/cartpole_reference.py). What differs is the initial-state draw: Gymnasium draws
// it from numpy's PCG64, which evoopt does not reproduce; here the four values are
// U[−0.05, 0.05) from evoopt::Rng seeded explicitly, so every episode is a function of its seed.
//
// The policy is an MLP 4 → 64 → 64 → 2 (tanh) giving the logits of pushing left and right.
// reinforce_loss rolls out a batch of episodes and returns the REINFORCE surrogate loss whose
// gradient is the policy gradient estimate; evaluate_policy scores the greedy policy in [0, 1].
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <memory>

#include "evoopt/task/models.hpp"

namespace evoopt::task::cartpole {

// Gymnasium's CartPoleEnv.__init__ and CartPole-v1's registration (max_episode_steps=500).
inline constexpr double kGravity = 9.8;
inline constexpr double kMassCart = 1.0;
inline constexpr double kMassPole = 0.1;
inline constexpr double kTotalMass = kMassPole + kMassCart;
inline constexpr double kLength = 0.5;  // half the pole's length
inline constexpr double kPoleMassLength = kMassPole * kLength;
inline constexpr double kForceMag = 10.0;
inline constexpr double kTau = 0.02;                                                     // seconds between state updates
inline constexpr double kThetaThresholdRadians = 12 * 2 * 3.14159265358979323846 / 360;  // 12 degrees
inline constexpr double kXThreshold = 2.4;
inline constexpr int kMaxEpisodeSteps = 500;
inline constexpr double kResetBound = 0.05;  // each state value starts U[−0.05, 0.05)

// (cart position, cart velocity, pole angle, pole angular velocity), Gymnasium's order.
using State = std::array<double, 4>;

struct StepResult {
  double reward = 0;        // 1 on every step, the terminating one included
  bool terminated = false;  // the pole fell past ±12° or the cart left ±2.4
  bool truncated = false;   // the 500th step (TimeLimit; both flags may be set on it)
  bool done() const { return terminated || truncated; }
};

class Env {
 public:
  // Starts an episode at U[−0.05, 0.05)^4 drawn from evoopt::Rng(seed) (x, ẋ, θ, θ̇ in turn).
  void reset(std::uint64_t seed);
  // Starts an episode at a given state (tests, references).
  void reset_to(const State& state);
  // Action 0 pushes the cart left (force −10 N), 1 right (+10 N). Throws evoopt::Error on
  // another action, before the first reset or after the episode has ended (Gymnasium calls
  // stepping a finished episode undefined behaviour).
  StepResult step(int action);
  const State& state() const { return state_; }
  int steps() const { return steps_; }  // steps taken in this episode
  bool done() const { return done_; }

 private:
  State state_{};
  int steps_ = 0;
  bool started_ = false;
  bool done_ = false;
};

// The observation as the policy sees it: the state rounded to float32 (Gymnasium returns
// np.array(state, dtype=np.float32)).
std::array<float, 4> observation(const State& state);

// MLP 4 → 64 (tanh) → 64 (tanh) → 2 logits, initialised from a generator seeded by `seed`
// with PyTorch's default scheme (weights and biases U(−1/√fan_in, 1/√fan_in)), as
// task::build_model does. Input float32 (B, 4), output (B, 2). named_state() lists
// param/0.weight, param/0.bias, param/2.weight, ... in layer order.
std::unique_ptr<Model> make_policy(std::uint64_t seed);
// Multiply-adds ×2 of one observation's forward pass: 2·(4·64 + 64·64 + 64·2) = 8960.
double policy_forward_flops();

// The study's task `cartpole`: γ of its returns-to-go, and the episodes one evaluation scores
// (the task's batch size is its episodes per training step).
inline constexpr double kDiscount = 0.99;
inline constexpr int kEvalEpisodes = 20;

struct RolloutOptions {
  int episodes = 16;         // in [2, 4096]: the baseline is a mean over episodes
  double gamma = kDiscount;  // discount of the returns-to-go, in [0, 1]
  void validate() const;     // throws evoopt::Error naming the bad field
};

struct PolicyLoss {
  torch::Tensor loss;          // scalar with grad; NaN when any logits of the rollout were non-finite
  double mean_return = 0;      // mean undiscounted return (episode length) of the rollouts
  std::int64_t env_steps = 0;  // environment steps taken (= (observation, action) pairs)
};

// REINFORCE with a baseline (Williams 1992; Sutton & Barto, 2nd ed., §13.4), one batch.
//
// Rolls out `episodes` episodes in lock-step, one no-grad batched forward of the running
// episodes per time step, action a ~ softmax(logits). Everything random is a function of
// (seed, step, episode) alone: episode i starts from Env::reset(derive_seed(k, "reset", i))
// and draws its actions from Rng(derive_seed(k, "actions", i)), one uniform per time step,
// with k = derive_seed(seed, "cartpole/rollout", step). So a run can stop and continue at
// any step without saved random state, and every genome trained with the same seed sees the
// same initial states and uniforms (common random numbers).
//
// Then one forward with grad over every visited (s_t, a_t) and
//   loss = −(1/N) Σ_{i,t} log π(a_t|s_t) · Â_{i,t},   Â = A / (std(A) + 1e-8),
//   A_{i,t} = G_{i,t} − b_t,   G_{i,t} = Σ_{k≥t} γ^{k−t} r_{i,k}   (return-to-go),
// b_t = the mean of G_{·,t} over the episodes still running at time t (a time-dependent
// baseline), std the population standard deviation of A over the N visited pairs. The
// normalisation keeps the loss's scale the same from 10-step to 500-step episodes (the
// trainer's divergence threshold and an optimizer's learning rate mean the same all run
// long); PyTorch's examples/reinforcement_learning/reinforce.py standardises its returns
// the same way (there with their batch mean as the baseline). A truncated
// episode's returns end at step 500 (no bootstrapping: there is no value function). When
// every episode of the batch lasts equally long (all 500 steps once the task is solved),
// every A is 0 and so are the loss and its gradient.
//
// Divergence: if any logits are non-finite the actions of those rows are 0 (no draw from
// NaN probabilities) and `loss` is NaN, for the trainer to see.
PolicyLoss reinforce_loss(Model& policy, std::uint64_t seed, std::int64_t step, const RolloutOptions& options = {});

// Mean undiscounted return / 500 of the greedy policy (argmax of the logits, 0 on a tie or a
// NaN) over `episodes` episodes starting from Env::reset(derive_seed(seed,
// "cartpole/evaluate", i)): in [0, 1]. Pass different seeds for validation and test.
double evaluate_policy(Model& policy, std::uint64_t seed, int episodes);

}  // namespace evoopt::task::cartpole
