#include "evoopt/optim/schedule.hpp"

#include <algorithm>
#include <cmath>

namespace evoopt::optim {

double schedule_factor(double warmup_fraction, bool cosine_decay, std::int64_t step, std::int64_t total_steps) {
  if (total_steps <= 0) return 1.0;
  const auto warmup = static_cast<std::int64_t>(std::llround(warmup_fraction * static_cast<double>(total_steps)));
  if (step < warmup) return static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (!cosine_decay) return 1.0;
  const double span = static_cast<double>(std::max<std::int64_t>(1, total_steps - warmup));
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  return 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace evoopt::optim
