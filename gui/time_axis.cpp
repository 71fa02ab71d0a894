#include "gui/time_axis.h"

#include <algorithm>
#include <cmath>

namespace eellm::gui {

TimeAxis TimeAxis::fit(int64_t total, int width) {
  TimeAxis a;
  a.total = std::max<int64_t>(1, total);
  a.width = std::max(1, width);
  a.span = a.total;
  a.start = 0;
  return a.clamped();
}

int64_t TimeAxis::to_time(double px) const {
  return start + static_cast<int64_t>(std::llround(px * static_cast<double>(span) / width));
}

TimeAxis TimeAxis::clamped() const {
  TimeAxis a = *this;
  a.total = std::max<int64_t>(1, a.total);
  a.width = std::max(1, a.width);
  a.min_span = std::max<int64_t>(1, a.min_span);
  const int64_t max_span = std::max(a.total, a.min_span);
  a.span = std::clamp(a.span, a.min_span, max_span);
  a.start = std::clamp<int64_t>(a.start, 0, std::max<int64_t>(0, a.total - a.span));
  return a;
}

TimeAxis TimeAxis::zoomed(double factor, double anchor_px) const {
  if (!(factor > 0)) return *this;
  TimeAxis a = *this;
  const double anchor_t = static_cast<double>(start) + anchor_px * static_cast<double>(span) / width;
  const int64_t max_span = std::max(total, min_span);
  a.span =
      std::clamp<int64_t>(static_cast<int64_t>(std::llround(static_cast<double>(span) / factor)), min_span, max_span);
  // Keep anchor_t under anchor_px with the new span.
  a.start = static_cast<int64_t>(std::llround(anchor_t - anchor_px * static_cast<double>(a.span) / width));
  return a.clamped();
}

TimeAxis TimeAxis::panned(double dx_px) const {
  TimeAxis a = *this;
  a.start = start + static_cast<int64_t>(std::llround(dx_px * ns_per_px()));
  return a.clamped();
}

TimeAxis TimeAxis::showing(int64_t t0, int64_t t1) const {
  TimeAxis a = *this;
  if (t1 < t0) std::swap(t0, t1);
  a.span = std::max<int64_t>(1, t1 - t0);
  a.start = t0;
  a = a.clamped();
  // If the span was raised to min_span, centre it on the request.
  if (a.span > t1 - t0) {
    a.start = (t0 + t1) / 2 - a.span / 2;
    a = a.clamped();
  }
  return a;
}

TimeAxis TimeAxis::resized(int new_width) const {
  TimeAxis a = *this;
  a.width = std::max(1, new_width);
  return a.clamped();
}

TimeAxis TimeAxis::retargeted(int64_t new_total) const {
  const bool was_fit = start == 0 && span >= total;
  TimeAxis a = *this;
  a.total = std::max<int64_t>(1, new_total);
  if (was_fit) {
    a.start = 0;
    a.span = a.total;
  }
  return a.clamped();
}

int64_t tick_step(const TimeAxis& axis, double min_px) {
  const double min_ns = std::max(1.0, min_px * axis.ns_per_px());
  int64_t step = 1;
  while (true) {
    for (int m : {1, 2, 5}) {
      if (static_cast<double>(step * m) >= min_ns) return step * m;
    }
    if (step > INT64_MAX / 100) return step;
    step *= 10;
  }
}

const char* format_time_unit(int64_t step) {
  if (step >= 100'000'000) return "s";
  if (step >= 100'000) return "ms";
  if (step >= 100) return "µs";
  return "ns";
}

double time_in_unit(int64_t t, int64_t step) {
  const double v = static_cast<double>(t);
  if (step >= 100'000'000) return v * 1e-9;
  if (step >= 100'000) return v * 1e-6;
  if (step >= 100) return v * 1e-3;
  return v;
}

}  // namespace eellm::gui
