// Small helpers of the hand-written SVG charts (sweep_svg.cpp, plan_svg.cpp): XML escaping, number
// and coordinate formatting (round tick steps: sim/format.h). Pure functions.
#pragma once

#include <string>

namespace eellm::svg {

std::string esc(const std::string& s);  // &, <, >, " escaped
std::string num(double v);              // 4 significant digits (format_significant)
std::string px(double v);               // "%.1f"

}  // namespace eellm::svg
