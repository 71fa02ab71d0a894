// Numbers for people: the one place that turns seconds, FLOP rates and plain figures into text for
// the CLI tables, the SVG charts and the GUI (gui/format.h wraps these for QString). Pure functions.
//
// Rules: a figure keeps about 4 significant digits (62.21 s, not 62.207020 s; 0.8, not 0.800000); a
// table column shows every row in one unit, chosen from the column's largest value (never "0 ns"
// beside "3.702 s"); chart ticks step by 1, 2 or 5 × 10^k.
#pragma once

#include <string>
#include <vector>

namespace eellm {

// A display unit for durations: its name and how many seconds one of it is.
struct TimeUnit {
  const char* name = "s";
  double seconds = 1;
};

TimeUnit time_unit_for(double largest_seconds);  // ns, µs, ms or s: the largest value reads ≥ 1 in it
// `seconds` in `unit` with `decimals` digits after the point and the unit name ("3.702 s").
std::string format_in_unit(double seconds, TimeUnit unit, int decimals);
// Decimals after the point that give `largest` `digits` significant digits (0.002345 → 6, 62.2 → 2).
int significant_decimals(double largest, int digits = 4);
// significant_decimals for a column in a unit chosen by time_unit_for: at most 3.
int column_decimals(double largest_in_unit);
std::string format_duration(double seconds);               // "830 ns", "12.35 µs", "1.234 ms", "62.21 s"
std::string format_significant(double v, int digits = 4);  // "0.8", "62.21", "1.234e+06" only beyond 10^9
std::string format_flop_rate(double flop_per_s);           // "431.2 TFLOP/s", "12.5 GFLOP/s", "830 MFLOP/s"

// A round tick step: 1, 2 or 5 × 10^k giving about n intervals over [lo, hi].
double nice_step(double lo, double hi, int n);
// Ticks from a multiple of the step at or below lo to one at or above hi.
struct NiceAxis {
  double lo = 0, hi = 1, step = 1;
  int intervals() const;
  int decimals() const;            // digits after the point that every tick label needs
  double tick(int i) const;        // lo + i × step
  std::string label(int i) const;  // tick i with decimals() digits ("0.25", "1500")
};
NiceAxis nice_axis(double lo, double hi, int n = 5);

// The parts of the pipeline bubble, named the same in the CLI, JSON keys aside, and the GUI:
// fill/drain (waiting on another stage), exposed comm, imbalance (stage work differs), exit work.
const std::vector<std::string>& bubble_part_names();
// An exit, named as `eellm generate --stats` and the serve API name it: "exit@9" (its layer).
std::string exit_label(int layer);

}  // namespace eellm
