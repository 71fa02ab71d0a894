#include "gui/format.h"

#include <cmath>

namespace eellm::gui {

QString format_duration_ns(int64_t ns) {
  const double v = static_cast<double>(ns);
  const double a = std::fabs(v);
  if (a < 1e3) return QStringLiteral("%1 ns").arg(ns);
  if (a < 1e6) return QStringLiteral("%1 µs").arg(v * 1e-3, 0, 'f', 2);
  if (a < 1e9) return QStringLiteral("%1 ms").arg(v * 1e-6, 0, 'f', 3);
  return QStringLiteral("%1 s").arg(v * 1e-9, 0, 'f', 3);
}

QString format_seconds(double s) {
  return format_duration_ns(static_cast<int64_t>(std::llround(s * 1e9)));
}

QString format_bytes(double b) {
  const double a = std::fabs(b);
  if (a < 1024) return QStringLiteral("%1 B").arg(b, 0, 'f', 0);
  if (a < 1024.0 * 1024) return QStringLiteral("%1 KiB").arg(b / 1024, 0, 'f', 1);
  if (a < 1024.0 * 1024 * 1024) return QStringLiteral("%1 MiB").arg(b / (1024.0 * 1024), 0, 'f', 1);
  return QStringLiteral("%1 GiB").arg(b / (1024.0 * 1024 * 1024), 0, 'f', 2);
}

QString format_flops(double f) {
  const double a = std::fabs(f);
  if (a < 1e9) return QStringLiteral("%1 MFLOP").arg(f * 1e-6, 0, 'f', 2);
  if (a < 1e12) return QStringLiteral("%1 GFLOP").arg(f * 1e-9, 0, 'f', 2);
  return QStringLiteral("%1 TFLOP").arg(f * 1e-12, 0, 'f', 2);
}

QString format_percent(double fraction) {
  return QStringLiteral("%1%").arg(fraction * 100, 0, 'f', 1);
}

}  // namespace eellm::gui
