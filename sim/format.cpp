#include "sim/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace eellm {

TimeUnit time_unit_for(double largest_seconds) {
  const double a = std::fabs(largest_seconds);
  if (a >= 1 || a == 0 || !std::isfinite(a)) return {"s", 1};
  if (a >= 1e-3) return {"ms", 1e-3};
  if (a >= 1e-6) return {"µs", 1e-6};
  return {"ns", 1e-9};
}

std::string format_in_unit(double seconds, TimeUnit unit, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f %s", std::clamp(decimals, 0, 9), seconds / unit.seconds, unit.name);
  return b;
}

int significant_decimals(double largest, int digits) {
  const double a = std::fabs(largest);
  if (a == 0 || !std::isfinite(a)) return 0;
  return std::clamp(digits - 1 - static_cast<int>(std::floor(std::log10(a))), 0, 12);
}

int column_decimals(double largest_in_unit) {
  return std::min(3, significant_decimals(largest_in_unit));
}

std::string format_duration(double seconds) {
  TimeUnit u = time_unit_for(seconds);
  // Rounding may carry into the next unit (999.96 ms reads 1000 ms): show it in the larger one.
  if (u.seconds < 1 && std::fabs(seconds / u.seconds) >= 999.95) u = time_unit_for(seconds * 1.0001);
  return format_in_unit(seconds, u, u.seconds == 1e-9 ? 0 : column_decimals(seconds / u.seconds));
}

std::string format_significant(double v, int digits) {
  char b[64];
  if (!std::isfinite(v)) return v != v ? "nan" : v > 0 ? "inf" : "-inf";
  if (v == 0) return "0";
  const double a = std::fabs(v);
  if (a >= 1e9 || a < 1e-4) {
    std::snprintf(b, sizeof b, "%.*g", digits, v);
    return b;
  }
  const int before = static_cast<int>(std::floor(std::log10(a))) + 1;
  std::snprintf(b, sizeof b, "%.*f", std::max(0, digits - before), v);
  std::string s = b;
  if (s.find('.') != std::string::npos) {  // 0.800 → 0.8, 2.000 → 2
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
  }
  return s;
}

std::string format_flop_rate(double flop_per_s) {
  static const struct {
    double scale;
    const char* name;
  } units[] = {{1e15, "PFLOP/s"}, {1e12, "TFLOP/s"}, {1e9, "GFLOP/s"}, {1e6, "MFLOP/s"}, {1e3, "kFLOP/s"}};
  const double a = std::fabs(flop_per_s);
  for (const auto& u : units)
    if (a >= u.scale || u.scale == 1e3) return format_significant(flop_per_s / u.scale) + " " + u.name;
  return "0 FLOP/s";
}

double nice_step(double lo, double hi, int n) {
  const double raw = (hi - lo) / std::max(1, n);
  if (!(raw > 0) || !std::isfinite(raw)) return 1;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

int NiceAxis::intervals() const {
  return std::max(1, static_cast<int>(std::lround((hi - lo) / step)));
}

int NiceAxis::decimals() const {
  return std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9)));
}

double NiceAxis::tick(int i) const {
  return lo + i * step;
}

std::string NiceAxis::label(int i) const {
  char b[64];
  const double t = tick(i);
  std::snprintf(b, sizeof b, "%.*f", decimals(), std::fabs(t) < step * 1e-6 ? 0.0 : t);
  return b;
}

NiceAxis nice_axis(double lo, double hi, int n) {
  NiceAxis a;
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) hi = lo + (lo != 0 ? std::fabs(lo) * 0.1 : 1);
  a.step = nice_step(lo, hi, n);
  a.lo = std::floor(lo / a.step + 1e-9) * a.step;
  a.hi = std::ceil(hi / a.step - 1e-9) * a.step;
  if (a.hi <= a.lo) a.hi = a.lo + a.step;
  return a;
}

const std::vector<std::string>& bubble_part_names() {
  static const std::vector<std::string> names = {"fill/drain", "exposed comm", "imbalance", "exit work"};
  return names;
}

std::string exit_label(int layer) {
  return "exit@" + std::to_string(layer);
}

}  // namespace eellm
