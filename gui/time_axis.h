// TimeAxis: the mapping between timeline time (integer nanoseconds) and horizontal pixels of a
// view, as a plain value type of pure functions so it is tested without a display (KDAB Hotspot's
// habit). The view shows [start, start + span) over `width` pixels; `total` is the length of the
// data. Invariants kept by every operation: span >= min_span, span <= max(total, min_span), and
// 0 <= start <= total - span (clamped at both edges; a view wider than the data starts at 0).
// Value type; thread-compatible.
#pragma once

#include <cstdint>

namespace eellm::gui {

struct TimeAxis {
  int64_t total = 1;     // data length (ns), > 0
  int64_t start = 0;     // first visible time (ns)
  int64_t span = 1;      // visible length (ns), > 0
  int width = 1;         // pixels, > 0
  int64_t min_span = 1;  // most zoomed-in view (ns)

  // Whole data visible.
  static TimeAxis fit(int64_t total, int width);

  double ns_per_px() const { return static_cast<double>(span) / width; }
  double to_px(int64_t t) const { return static_cast<double>(t - start) * width / static_cast<double>(span); }
  int64_t to_time(double px) const;
  int64_t end() const { return start + span; }
  bool visible(int64_t t0, int64_t t1) const { return t1 >= start && t0 <= end(); }

  // Zoom by `factor` (>1 zooms in) keeping the time under pixel `anchor_px` fixed, then clamp.
  TimeAxis zoomed(double factor, double anchor_px) const;
  // Pan by `dx_px` pixels (positive moves the view to later times), then clamp.
  TimeAxis panned(double dx_px) const;
  // Show [t0, t1] (a range selection), then clamp.
  TimeAxis showing(int64_t t0, int64_t t1) const;
  // Same view over a new pixel width (the time range is kept).
  TimeAxis resized(int new_width) const;
  // Same relative view over new data of length `new_total` (keeps fit when the old view was fit).
  TimeAxis retargeted(int64_t new_total) const;
  // Restores the invariants above.
  TimeAxis clamped() const;

  friend bool operator==(const TimeAxis&, const TimeAxis&) = default;
};

// A "nice" tick step (1, 2 or 5 × 10^k ns) so that ticks are at least `min_px` pixels apart.
int64_t tick_step(const TimeAxis& axis, double min_px);
// "12.5 ms", "830 µs", "1.20 s" for a time in ns, with precision suited to `step` ns.
const char* format_time_unit(int64_t step);  // "ns", "µs", "ms", "s"
double time_in_unit(int64_t t, int64_t step);

}  // namespace eellm::gui
