#pragma once
#include <cstdint>

namespace evoopt::optim {

// Learning-rate multiplier at 0-based step `step` of a run of `total_steps`:
// linear warmup over round(warmup_fraction·total) steps ((s+1)/W), then,
// with cosine decay, ½(1 + cos(π·p)) where p runs from 0 to 1 over the rest
// (Loshchilov & Hutter 2017, SGDR, without restarts). Constant 1 otherwise.
double schedule_factor(double warmup_fraction, bool cosine_decay, std::int64_t step, std::int64_t total_steps);

}  // namespace evoopt::optim
