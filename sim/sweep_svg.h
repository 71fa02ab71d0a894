// Small helpers of the hand-written SVG charts (sweep_svg.cpp, plan_svg.cpp): XML escaping, number
// and coordinate formatting, round tick steps. Pure functions.
#pragma once

#include <string>

namespace eellm::svg {

std::string esc(const std::string& s);          // &, <, >, " escaped
std::string num(double v);                      // "%.4g"
std::string px(double v);                       // "%.1f"
double nice_step(double lo, double hi, int n);  // 1, 2 or 5 × 10^k giving about n intervals over [lo, hi]

}  // namespace eellm::svg
