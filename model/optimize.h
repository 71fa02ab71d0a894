// Small numerical tools shared by every fit in eellm (the A100 profile fit in model/fit.cpp, the
// GEMM and link fits of fidelity/calibrate.cpp, the residual fit of fidelity/fidelity.cpp), so
// there is one minimiser and one definition of "percent error":
// - nelder_mead(): derivative-free simplex minimiser (standard coefficients: reflection 1,
//   expansion 2, contraction ½, shrink ½). Deterministic: the same f, start and step give the same
//   point. Non-finite objective values count as 1e300 (a failed evaluation is a very bad point).
// - absolute_percentage_error(): |predicted − measured| / measured in percent, the unit of every
//   MAPE eellm reports.
// Thread-safety: pure functions (f is called on the calling thread only).
#pragma once

#include <functional>
#include <vector>

namespace eellm {

// Minimises f from x0; the initial simplex is x0 plus `step` along each coordinate. Stops after
// `max_evaluations` evaluations of f in this call, or when the simplex's values agree to 1e-12
// relative (|f_worst − f_best| < 1e-12·(1 + |f_best|)). Adds the evaluations it made to
// *evaluations when given. Returns the best vertex.
std::vector<double> nelder_mead(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x0,
                                double step, int max_evaluations, int* evaluations = nullptr);

// 100·|predicted − measured| / measured (measured > 0; the caller checks).
double absolute_percentage_error(double predicted, double measured);

}  // namespace eellm
