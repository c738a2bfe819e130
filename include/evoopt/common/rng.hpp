#pragma once
// Deterministic seeds and random numbers. Every random choice in evoopt flows
// from an explicit seed; sub-seeds are derived by hashing (base seed, tag,
// index) so that they never depend on scheduling order. Distributions are
// written out here (not std::uniform_*_distribution, whose output differs
// between standard libraries) so results match across platforms.
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace evoopt {

// SplitMix64 finaliser: a bijective 64-bit mixer.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// FNV-1a over bytes; stable across runs and machines.
constexpr std::uint64_t fnv1a64(std::string_view text, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (char c : text) {
    h ^= static_cast<std::uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

// Seed for (base, tag, index): e.g. derive_seed(run_seed, "eval/mnist", 2).
constexpr std::uint64_t derive_seed(std::uint64_t base, std::string_view tag, std::uint64_t index = 0) {
  return mix64(mix64(base ^ fnv1a64(tag)) + index);
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}
  std::uint64_t next_u64() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n), unbiased (rejection sampling).
  std::uint64_t below(std::uint64_t n);
  bool bernoulli(double p) { return uniform() < p; }
  // Standard normal by Box-Muller (deterministic, no cached second value).
  double normal();
  double normal(double mean, double stddev) { return mean + stddev * normal(); }
  std::mt19937_64& engine() { return engine_; }
  // The engine's whole state as text (the standard's stream form), and back: a run that
  // continues from a saved state draws what the uninterrupted run would have.
  std::string state() const;
  void set_state(const std::string& text);  // throws evoopt::Error on malformed text

 private:
  std::mt19937_64 engine_;
};

// Fisher-Yates permutation of 0..n-1 driven by Rng (platform-independent).
std::vector<std::int64_t> permutation(std::int64_t n, Rng& rng);

}  // namespace evoopt
