// Human-readable numbers for labels, tables and charts: durations, bytes, FLOPs, percentages. The
// rules and the arithmetic live in sim/format.h (shared with the CLI and the SVG charts); these wrap
// them for QString and Qt's chart axes. Pure functions; thread-safe.
#pragma once

#include <QString>
#include <cstdint>

#include "sim/format.h"
#include "sim/units.h"

class QValueAxis;

namespace eellm::gui {

QString format_duration_ns(int64_t ns);       // "830 ns", "12.35 µs", "1.234 ms", "2.500 s"
QString format_seconds(double s);             // same, from seconds
QString format_bytes(double bytes);           // "512 B", "16.0 MiB", "1.25 GiB"
QString format_flops(double flops);           // "1.23 TFLOP"
QString format_flop_rate(double flop_per_s);  // "431.2 TFLOP/s", "12.5 GFLOP/s"
QString format_percent(double fraction);      // "12.3%"

// One unit for a whole table column of durations, chosen from its largest value.
struct ColumnUnit {
  TimeUnit unit;
  int decimals = 3;
  static ColumnUnit for_largest(double largest_seconds);
  QString format(double seconds) const;  // "0.000 s" beside "3.702 s", never "0 ns"
};

// A value axis from lo to hi with round 1-2-5 ticks and labels of as many decimals as the step needs;
// `integer` keeps the step at 1 or more (steps, microbatches: no 0.75).
void set_nice_range(QValueAxis* axis, double lo, double hi, bool integer = false);

}  // namespace eellm::gui
