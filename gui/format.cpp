#include "gui/format.h"

#include <QValueAxis>
#include <algorithm>
#include <cmath>

namespace eellm::gui {

QString format_duration_ns(int64_t ns) {
  return format_seconds(ns_to_seconds(ns));
}

QString format_seconds(double s) {
  return QString::fromStdString(format_duration(s));
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

QString format_flop_rate(double flop_per_s) {
  return QString::fromStdString(eellm::format_flop_rate(flop_per_s));
}

QString format_percent(double fraction) {
  return QStringLiteral("%1%").arg(fraction * 100, 0, 'f', 1);
}

ColumnUnit ColumnUnit::for_largest(double largest_seconds) {
  ColumnUnit c;
  c.unit = time_unit_for(largest_seconds);
  c.decimals = column_decimals(largest_seconds / c.unit.seconds);
  return c;
}

QString ColumnUnit::format(double seconds) const {
  return QString::fromStdString(format_in_unit(seconds, unit, decimals));
}

void set_nice_range(QValueAxis* axis, double lo, double hi, bool integer) {
  NiceAxis a = nice_axis(lo, hi, 5);
  if (integer && a.step < 1) {  // a few steps: one tick per step
    a.step = 1;
    a.lo = std::floor(lo);
    a.hi = std::max(std::ceil(hi), a.lo + 1);
  }
  axis->setRange(a.lo, a.hi);
  axis->setTickType(QValueAxis::TicksFixed);
  axis->setTickCount(a.intervals() + 1);
  axis->setLabelFormat(QStringLiteral("%.%1f").arg(integer ? 0 : a.decimals()));
}

}  // namespace eellm::gui
