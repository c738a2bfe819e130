#pragma once
// Statistics for honest comparisons: mean ± sample standard deviation, and the
// paired difference of two methods evaluated on the same seeds with a 95%
// Student-t confidence interval.
#include <vector>

namespace evoopt::experiment {

struct Summary {
  double mean = 0, stddev = 0;  // sample standard deviation (n − 1)
  int n = 0;
};
Summary summarize(const std::vector<double>& values);

// Two-sided 95% quantile of Student's t with `df` degrees of freedom
// (exact table for df ≤ 30, Cornish-Fisher expansion beyond).
double t_quantile_975(int df);

struct PairedDifference {
  double mean = 0, stddev = 0, ci_low = 0, ci_high = 0;
  int n = 0;
  bool significant = false;  // the interval excludes 0
};
// Differences a[i] − b[i]; throws evoopt::Error if sizes differ or n < 2.
PairedDifference paired_difference(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace evoopt::experiment
