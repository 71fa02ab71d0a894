// The planner's Pareto plot (see plan.h): every simulated plan that fits, as a grey dot at (GPUs,
// rank_s); the Pareto front in colour, its best plan per GPU count joined by a line ("how many GPUs
// for X s per iteration"), each front point's tooltip naming the layout and its peak memory.
// Hand-written SVG like the sweep charts (sim/sweep_svg.h helpers).
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include "sim/format.h"
#include "sim/plan.h"
#include "sim/sweep_svg.h"

namespace eellm {
namespace {

using svg::esc;
using svg::num;
using svg::px;

constexpr double W = 760, H = 460, left = 90, right = 30, top = 50, bottom = 80;
constexpr double pw = W - left - right, ph = H - top - bottom;

struct Frame {
  std::vector<int> gpus;  // distinct GPU counts, ascending: evenly spaced x positions
  double y0 = 0, y1 = 1;
  NiceAxis axis;  // the y ticks
  double X(int g) const {
    const size_t i = static_cast<size_t>(std::lower_bound(gpus.begin(), gpus.end(), g) - gpus.begin());
    return left + (gpus.size() > 1 ? pw * static_cast<double>(i) / static_cast<double>(gpus.size() - 1) : pw / 2);
  }
  double Y(double v) const { return top + ph * (1 - (v - y0) / (y1 - y0)); }
};

Frame frame_of(const PlanResult& r) {
  Frame f;
  double lo = INFINITY, hi = -INFINITY;
  for (const std::vector<PlanEntry>* set : {&r.feasible, &r.pareto})
    for (const PlanEntry& e : *set) {
      f.gpus.push_back(e.candidate.world_size);
      lo = std::min(lo, e.metrics.ranking_time_s());
      hi = std::max(hi, e.metrics.ranking_time_s());
    }
  std::sort(f.gpus.begin(), f.gpus.end());
  f.gpus.erase(std::unique(f.gpus.begin(), f.gpus.end()), f.gpus.end());
  if (lo > hi) lo = 0, hi = 1;
  const double span = hi > lo ? hi - lo : std::max(std::abs(hi) * 0.1, 1e-3);
  const NiceAxis ax = nice_axis(lo - 0.05 * span, hi + 0.05 * span);
  f.axis = ax;
  f.y0 = ax.lo;
  f.y1 = ax.hi;
  return f;
}

void axes(std::ostringstream& os, const Frame& f) {
  for (int i = 0; i <= f.axis.intervals(); ++i) {
    const double t = f.axis.tick(i);
    os << "<line x1=\"" << left << "\" x2=\"" << left + pw << "\" y1=\"" << px(f.Y(t)) << "\" y2=\"" << px(f.Y(t))
       << "\" stroke=\"#e5e5e5\"/>\n<text x=\"" << left - 8 << "\" y=\"" << px(f.Y(t) + 4) << "\" text-anchor=\"end\">"
       << f.axis.label(i) << "</text>\n";
  }
  for (int g : f.gpus)
    os << "<text x=\"" << px(f.X(g)) << "\" y=\"" << top + ph + 18 << "\" text-anchor=\"middle\">" << g << "</text>\n";
  os << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
     << "\" fill=\"none\" stroke=\"#444\"/>\n";
  os << "<text x=\"" << left + pw / 2 << "\" y=\"" << H - 40 << "\" text-anchor=\"middle\">GPUs</text>\n";
  os << "<text transform=\"translate(20," << top + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">rank_s (s per "
     << "backbone batch)</text>\n";
  os << "<circle cx=\"" << left + 10 << "\" cy=\"" << H - 16 << "\" r=\"3\" fill=\"#bbb\"/><text x=\"" << left + 18
     << "\" y=\"" << H - 12 << "\">simulated plan that fits</text>\n<circle cx=\"" << left + 200 << "\" cy=\"" << H - 16
     << "\" r=\"5\" fill=\"#d62728\"/><text x=\"" << left + 210 << "\" y=\"" << H - 12
     << "\">Pareto front (time, memory, GPUs); line: fastest per GPU count</text>\n";
}

}  // namespace

std::string plan_pareto_svg(const PlanResult& r, const std::string& scenario) {
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
     << " " << H
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" << esc(scenario)
     << ": plans by GPUs and time (" << r.pareto.size() << " on the Pareto front)</text>\n";
  const Frame f = frame_of(r);
  axes(os, f);
  for (const PlanEntry& e : r.feasible)
    os << "<circle cx=\"" << px(f.X(e.candidate.world_size)) << "\" cy=\"" << px(f.Y(e.metrics.ranking_time_s()))
       << "\" r=\"3\" fill=\"#bbb\"/>\n";
  std::map<int, double> best;  // fastest front plan per GPU count
  for (const PlanEntry& e : r.pareto) {
    auto [it, added] = best.emplace(e.candidate.world_size, e.metrics.ranking_time_s());
    if (!added) it->second = std::min(it->second, e.metrics.ranking_time_s());
  }
  std::string path;
  for (const auto& [g, t] : best) path += (path.empty() ? "M" : " L") + px(f.X(g)) + "," + px(f.Y(t));
  if (!path.empty()) os << "<path d=\"" << path << "\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"1.5\"/>\n";
  for (const PlanEntry& e : r.pareto)
    os << "<circle cx=\"" << px(f.X(e.candidate.world_size)) << "\" cy=\"" << px(f.Y(e.metrics.ranking_time_s()))
       << "\" r=\"5\" fill=\"#d62728\"><title>" << esc(to_string(e.candidate)) << ": "
       << num(e.metrics.ranking_time_s()) << " s, peak " << num(e.metrics.peak_memory_GiB) << " GiB</title></circle>\n";
  os << "</svg>\n";
  return os.str();
}

}  // namespace eellm
