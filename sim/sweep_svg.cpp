// SVG chart of a sweep, written by hand (no plotting dependency): a line chart of the metric over
// the values of one axis (categorical x positions, linear y with rounded ticks), or a heatmap for two
// axes (first axis → rows, second → columns, value printed in each cell). Failed points are gaps
// (line) or hatched grey cells (heatmap).
#include "sim/sweep_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "sim/format.h"
#include "sim/sweep.h"

namespace eellm {
namespace svg {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&')
      o += "&amp;";
    else if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '"')
      o += "&quot;";
    else
      o += c;
  }
  return o;
}

std::string num(double v) {
  return format_significant(v);
}

std::string px(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

}  // namespace svg

namespace {

using svg::esc;
using svg::num;
using svg::px;

// Viridis-like ramp from a handful of stops, t in [0, 1].
std::string ramp(double t) {
  static const double stops[][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  const int i = std::min(3, static_cast<int>(t));
  const double f = t - i;
  char b[16];
  std::snprintf(b, sizeof b, "#%02x%02x%02x", static_cast<int>(stops[i][0] + f * (stops[i + 1][0] - stops[i][0])),
                static_cast<int>(stops[i][1] + f * (stops[i + 1][1] - stops[i][1])),
                static_cast<int>(stops[i][2] + f * (stops[i + 1][2] - stops[i][2])));
  return b;
}

// Chart area: the SVG's size and the plot's margins.
constexpr double W = 760, H = 460, left = 90, right = 30, top = 50, bottom = 80;
constexpr double pw = W - left - right, ph = H - top - bottom;

// One axis: the metric over its values as a line (gaps at failed points, "n/a" marks), y range
// [lo, hi] padded and snapped to ticks.
void line_chart(std::ostringstream& os, const SweepResult& r, double lo, double hi) {
  double span = hi - lo;
  if (span <= 0) span = std::abs(hi) > 0 ? std::abs(hi) * 0.1 : 1;
  const NiceAxis ax = nice_axis(lo - 0.05 * span, hi + 0.05 * span);
  const double y0 = ax.lo, y1 = ax.hi;
  auto Y = [&](double v) { return top + ph * (1 - (v - y0) / (y1 - y0)); };
  const size_t n = r.points.size();
  auto X = [&](size_t i) { return left + (n > 1 ? pw * static_cast<double>(i) / static_cast<double>(n - 1) : pw / 2); };
  for (int i = 0; i <= ax.intervals(); ++i) {
    const double t = ax.tick(i);
    os << "<line x1=\"" << left << "\" x2=\"" << left + pw << "\" y1=\"" << px(Y(t)) << "\" y2=\"" << px(Y(t))
       << "\" stroke=\"#e5e5e5\"/>\n<text x=\"" << left - 8 << "\" y=\"" << px(Y(t) + 4) << "\" text-anchor=\"end\">"
       << ax.label(i) << "</text>\n";
  }
  os << "<rect x=\"" << left << "\" y=\"" << top << "\" width=\"" << pw << "\" height=\"" << ph
     << "\" fill=\"none\" stroke=\"#444\"/>\n";
  std::string path;
  bool pen = false;
  for (size_t i = 0; i < n; ++i) {
    const double v = r.metric_of(r.points[i]);
    os << "<text x=\"" << px(X(i)) << "\" y=\"" << top + ph + 18 << "\" text-anchor=\"middle\">"
       << esc(r.points[i].values[0]) << "</text>\n";
    if (std::isnan(v)) {
      pen = false;
      continue;
    }
    path += pen ? " L" : " M";
    path += px(X(i));
    path += ',';
    path += px(Y(v));
    pen = true;
  }
  if (!path.empty()) os << "<path d=\"" << path << "\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n";
  for (size_t i = 0; i < n; ++i) {
    const double v = r.metric_of(r.points[i]);
    if (std::isnan(v)) {
      os << "<text x=\"" << px(X(i)) << "\" y=\"" << px(top + ph - 6)
         << "\" text-anchor=\"middle\" fill=\"#c00\">n/a</text>\n";
      continue;
    }
    const SweepPoint& p = r.points[i];
    os << "<circle cx=\"" << px(X(i)) << "\" cy=\"" << px(Y(v)) << "\" r=\"" << (p.memory_note.empty() ? 4 : 6)
       << "\" fill=\"" << (p.memory_note.empty() ? "#1f77b4" : "white") << "\" stroke=\""
       << (p.memory_note.empty() ? "none" : "#c00") << "\" stroke-width=\"2\"><title>" << esc(p.values[0]) << ": "
       << num(v) << (p.memory_note.empty() ? "" : "; " + esc(p.memory_note)) << "</title></circle>\n";
    if (!p.memory_note.empty())
      os << "<text x=\"" << px(X(i)) << "\" y=\"" << px(Y(v) - 10) << "\" text-anchor=\"middle\" fill=\"#c00\">"
         << "over memory +" << num(p.memory_excess_GiB) << " GiB</text>\n";
  }
  os << "<text x=\"" << left + pw / 2 << "\" y=\"" << H - 30 << "\" text-anchor=\"middle\">" << esc(r.axes[0].key)
     << "</text>\n";
  os << "<text transform=\"translate(20," << top + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">" << esc(r.metric)
     << "</text>\n";
}

// Two axes: a heatmap (first axis → rows, second → columns) coloured over [lo, hi], with a legend.
void heatmap(std::ostringstream& os, const SweepResult& r, double lo, double hi) {
  const size_t rows = r.axes[0].values.size(), cols = r.axes[1].values.size();
  const double cw = (pw - 70) / static_cast<double>(cols), ch = ph / static_cast<double>(rows);
  os << "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\"><path d=\"M0,6 L6,0\" "
        "stroke=\"#999\"/></pattern></defs>\n";
  for (size_t i = 0; i < rows; ++i) {
    for (size_t j = 0; j < cols; ++j) {
      const SweepPoint& p = r.points[i * cols + j];
      const double v = r.metric_of(p);
      const double x = left + cw * static_cast<double>(j), y = top + ch * static_cast<double>(i);
      const double t = hi > lo ? (v - lo) / (hi - lo) : 0.5;
      os << "<rect x=\"" << px(x) << "\" y=\"" << px(y) << "\" width=\"" << px(cw) << "\" height=\"" << px(ch)
         << "\" fill=\"" << (std::isnan(v) ? "url(#hatch)" : ramp(t)) << "\" stroke=\"white\"><title>"
         << esc(p.values[0]) << ", " << esc(p.values[1]) << ": " << (std::isnan(v) ? esc(p.error) : num(v))
         << "</title></rect>\n";
      os << "<text x=\"" << px(x + cw / 2) << "\" y=\"" << px(y + ch / 2 + 4) << "\" text-anchor=\"middle\" fill=\""
         << (std::isnan(v) || t > 0.6 ? "black" : "white") << "\">" << (std::isnan(v) ? "n/a" : num(v))
         << (p.memory_note.empty() ? "" : " ✗mem") << "</text>\n";
      if (!p.memory_note.empty())
        os << "<rect x=\"" << px(x + 2) << "\" y=\"" << px(y + 2) << "\" width=\"" << px(cw - 4) << "\" height=\""
           << px(ch - 4) << "\" fill=\"none\" stroke=\"#c00\" stroke-width=\"3\"><title>" << esc(p.memory_note)
           << "</title></rect>\n";
    }
    os << "<text x=\"" << left - 8 << "\" y=\"" << px(top + ch * (static_cast<double>(i) + 0.5) + 4)
       << "\" text-anchor=\"end\">" << esc(r.axes[0].values[i]) << "</text>\n";
  }
  for (size_t j = 0; j < cols; ++j)
    os << "<text x=\"" << px(left + cw * (static_cast<double>(j) + 0.5)) << "\" y=\"" << top + ph + 18
       << "\" text-anchor=\"middle\">" << esc(r.axes[1].values[j]) << "</text>\n";
  os << "<text x=\"" << left + (pw - 70) / 2 << "\" y=\"" << H - 30 << "\" text-anchor=\"middle\">"
     << esc(r.axes[1].key) << "</text>\n";
  os << "<text transform=\"translate(20," << top + ph / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
     << esc(r.axes[0].key) << "</text>\n";
  // Colour legend.
  const double lx = left + pw - 40;
  for (int k = 0; k < 50; ++k)
    os << "<rect x=\"" << lx << "\" y=\"" << px(top + ph * k / 50.0) << "\" width=\"16\" height=\""
       << px(ph / 50.0 + 0.5) << "\" fill=\"" << ramp(1 - k / 49.0) << "\"/>\n";
  os << "<text x=\"" << lx + 20 << "\" y=\"" << top + 10 << "\">" << num(hi) << "</text>\n<text x=\"" << lx + 20
     << "\" y=\"" << top + ph << "\">" << num(lo) << "</text>\n";
  os << "<text x=\"" << lx + 8 << "\" y=\"" << top - 8 << "\" text-anchor=\"middle\">" << esc(r.metric) << "</text>\n";
}

}  // namespace

std::string sweep_to_svg(const SweepResult& r) {
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W
     << " " << H
     << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  std::string title = r.scenario + ": " + r.metric + " vs " + r.axes[0].key;
  if (r.axes.size() > 1) {
    title += " × ";
    title += r.axes[1].key;
  }
  os << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" << esc(title) << "</text>\n";
  if (std::any_of(r.points.begin(), r.points.end(), [](const SweepPoint& p) { return !p.memory_note.empty(); }))
    os << "<text x=\"" << W / 2
       << "\" y=\"40\" text-anchor=\"middle\" fill=\"#c00\">red: does not fit in GPU memory "
          "(times assume it ran)</text>\n";
  double lo = INFINITY, hi = -INFINITY;
  for (const SweepPoint& p : r.points) {
    const double v = r.metric_of(p);
    if (std::isnan(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (lo > hi) lo = 0, hi = 1;  // no point succeeded
  if (r.axes.size() == 1)
    line_chart(os, r, lo, hi);
  else
    heatmap(os, r, lo, hi);
  os << "</svg>\n";
  return os.str();
}

}  // namespace eellm
