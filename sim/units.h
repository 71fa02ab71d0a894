// Time units of the simulator and traces: integer nanoseconds everywhere; seconds only at the
// edges (cost model in, summaries out).
#pragma once

#include <cmath>
#include <cstdint>

namespace eellm {

using TimeNs = int64_t;

// Seconds → nanoseconds, rounded to nearest (a cost of 0.4 ns becomes 0).
inline TimeNs seconds_to_ns(double s) {
  return static_cast<TimeNs>(std::llround(s * 1e9));
}
inline double ns_to_seconds(TimeNs ns) {
  return static_cast<double>(ns) * 1e-9;
}

}  // namespace eellm
