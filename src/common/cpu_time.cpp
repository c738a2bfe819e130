#include "evoopt/common/cpu_time.hpp"

#include <sys/resource.h>

namespace evoopt {

namespace {
double seconds(int who) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}
}  // namespace

double process_cpu_seconds(bool reaped_children) { return seconds(RUSAGE_SELF) + (reaped_children ? seconds(RUSAGE_CHILDREN) : 0.0); }

}  // namespace evoopt
