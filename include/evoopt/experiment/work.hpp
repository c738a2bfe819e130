#pragma once
// The unit in which a study's stages plan their cost and the tracker measures rates: training
// runs, training steps and evaluated images. A stage's plan and its run sit side by side
// (experiment/stages.hpp, compare.hpp), so the ETA sums what the stages will do.
#include <cstdint>

#include "evoopt/data/split.hpp"

namespace evoopt::experiment {

struct Work {
  std::int64_t runs = 0;
  std::int64_t steps = 0;   // training steps
  std::int64_t images = 0;  // evaluated images (validation or test)
  Work& operator+=(const Work& o) {
    runs += o.runs;
    steps += o.steps;
    images += o.images;
    return *this;
  }
  Work operator*(std::int64_t k) const { return {runs * k, steps * k, images * k}; }
};

// Images one run evaluates, averaged over the tasks: the validation split and the test split.
struct EvalSizes {
  std::int64_t val = 0, test = 0;
};

// Images a run evaluates: the test split, or the validation split (its first `eval_limit`
// images when > 0, a cheap rung).
std::int64_t evaluated_images(const EvalSizes& sizes, data::Split split, std::int64_t eval_limit);

}  // namespace evoopt::experiment
