#pragma once
// CPU time (user + system) from getrusage, in seconds: the one conversion of rusage.

namespace evoopt {

// This process; with `reaped_children`, also its children that have been waited for.
double process_cpu_seconds(bool reaped_children = false);

}  // namespace evoopt
