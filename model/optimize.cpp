// Nelder–Mead and the percent error of model/optimize.h.
#include "model/optimize.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace eellm {

std::vector<double> nelder_mead(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x0,
                                double step, int max_evaluations, int* evaluations) {
  const size_t n = x0.size();
  int evals = 0;
  auto eval = [&](const std::vector<double>& x) {
    ++evals;
    const double v = f(x);
    return std::isfinite(v) ? v : 1e300;
  };
  std::vector<std::vector<double>> pts(n + 1, x0);
  for (size_t i = 0; i < n; ++i) pts[i + 1][i] += step;
  std::vector<double> val(n + 1);
  for (size_t i = 0; i <= n; ++i) val[i] = eval(pts[i]);
  // Point c + t·(w − c) on the line from the centroid c through w.
  auto combine = [&](const std::vector<double>& c, const std::vector<double>& w, double t) {
    std::vector<double> r(n);
    for (size_t j = 0; j < n; ++j) r[j] = c[j] + t * (w[j] - c[j]);
    return r;
  };
  std::vector<size_t> order(n + 1);
  while (evals < max_evaluations) {
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return val[a] < val[b]; });
    const size_t best = order[0], worst = order[n], second = order[n - 1];
    if (std::abs(val[worst] - val[best]) < 1e-12 * (1 + std::abs(val[best]))) break;
    std::vector<double> c(n, 0.0);
    for (size_t i = 0; i <= n; ++i)
      if (i != worst)
        for (size_t j = 0; j < n; ++j) c[j] += pts[i][j] / static_cast<double>(n);
    const std::vector<double> xr = combine(c, pts[worst], -1.0);
    const double fr = eval(xr);
    if (fr < val[best]) {
      const std::vector<double> xe = combine(c, pts[worst], -2.0);
      const double fe = eval(xe);
      if (fe < fr)
        pts[worst] = xe, val[worst] = fe;
      else
        pts[worst] = xr, val[worst] = fr;
    } else if (fr < val[second]) {
      pts[worst] = xr, val[worst] = fr;
    } else {
      // Contract outside (towards the reflection) when it beat the worst point, else inside.
      const std::vector<double> xc = combine(c, fr < val[worst] ? xr : pts[worst], 0.5);
      const double fc = eval(xc);
      if (fc < std::min(fr, val[worst])) {
        pts[worst] = xc, val[worst] = fc;
      } else {  // shrink towards the best point
        for (size_t i = 0; i <= n; ++i) {
          if (i == best) continue;
          pts[i] = combine(pts[best], pts[i], 0.5);
          val[i] = eval(pts[i]);
        }
      }
    }
  }
  if (evaluations) *evaluations += evals;
  size_t best = 0;
  for (size_t i = 1; i <= n; ++i)
    if (val[i] < val[best]) best = i;
  return pts[best];
}

double absolute_percentage_error(double predicted, double measured) {
  return 100.0 * std::abs(predicted - measured) / measured;
}

}  // namespace eellm
