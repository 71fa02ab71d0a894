// Human-readable numbers for labels and tooltips: durations, bytes, FLOPs, percentages.
// Pure functions; thread-safe.
#pragma once

#include <QString>
#include <cstdint>

namespace eellm::gui {

QString format_duration_ns(int64_t ns);   // "830 ns", "12.35 µs", "1.234 ms", "2.500 s"
QString format_seconds(double s);         // same, from seconds
QString format_bytes(double bytes);       // "512 B", "16.0 MiB", "1.25 GiB"
QString format_flops(double flops);       // "1.23 TFLOP"
QString format_percent(double fraction);  // "12.3%"

}  // namespace eellm::gui
