// Micro-benchmarks and fits of fidelity/calibrate.h. Why these cases: they are the kernels the cost
// model prices (model/cost_model.cpp chunk()): GEMMs at the shapes of small transformer layers,
// element-wise ops at activation sizes (which stay in cache on a CPU, hence a separate figure from
// the large-buffer memory bandwidth), the attention core, AdamW and the per-op dispatch floor.
#include "fidelity/calibrate.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "model/cost_model.h"
#include "model/layout.h"
#include "model/optimize.h"

namespace eellm::fidelity {
namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Median seconds of one call of `fn` (`batch` calls per repetition), after one warm-up call.
template <class F>
double time_case(F&& fn, double min_time_s, int batch = 1) {
  fn();
  std::vector<double> reps;
  const auto start = Clock::now();
  while (reps.size() < 3 || std::chrono::duration<double>(Clock::now() - start).count() < min_time_s) {
    const auto t0 = Clock::now();
    for (int i = 0; i < batch; ++i) fn();
    reps.push_back(std::chrono::duration<double>(Clock::now() - t0).count() / batch);
    if (reps.size() >= 10000) break;
  }
  return median(reps);
}

// Median seconds of `a` and of `b`, timed alternately (a, b, a, b, ...) so that the ratio of the
// two does not depend on which moment of a drifting or shared machine each was timed at.
template <class A, class B>
std::pair<double, double> time_pair(A&& a, B&& b, double min_time_s) {
  a(), b();
  std::vector<double> ra, rb;
  const auto start = Clock::now();
  while (ra.size() < 5 || std::chrono::duration<double>(Clock::now() - start).count() < 2 * min_time_s) {
    auto t0 = Clock::now();
    a();
    auto t1 = Clock::now();
    b();
    const auto t2 = Clock::now();
    ra.push_back(std::chrono::duration<double>(t1 - t0).count());
    rb.push_back(std::chrono::duration<double>(t2 - t1).count());
    if (ra.size() >= 10000) break;
  }
  return {median(ra), median(rb)};
}

std::vector<float> filled(size_t n, float scale) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>((i * 2654435761u) % 1000) / 1000.0f - 0.5f * scale;
  return v;
}

// The phases of calibrate_compute, each filling its fields of c.

// GEMM grid: rows (B·T tokens) × the (N, K) pairs of a small transformer's linears.
void calibrate_gemms(Backend& be, const CalibrationOptions& o, double tmin, ComputeCalibration& c) {
  const std::vector<int> rows = o.quick ? std::vector<int>{256, 2048} : std::vector<int>{64, 256, 1024, 2048, 4096};
  const std::vector<std::pair<int, int>> nk =
      o.quick ? std::vector<std::pair<int, int>>{{64, 64}, {768, 256}, {256, 1024}, {512, 512}}
              : std::vector<std::pair<int, int>>{{64, 64},    {256, 256}, {768, 256},  {1024, 256},
                                                 {256, 1024}, {512, 512}, {1536, 512}, {1024, 1024}};
  for (int m : rows)
    for (auto [n, k] : nk) {
      const std::vector<float> x = filled(static_cast<size_t>(m) * k, 1.0f),
                               w = filled(static_cast<size_t>(n) * k, 0.1f);
      std::vector<float> out(static_cast<size_t>(m) * n);
      GemmSample s{m, n, k, 0};
      s.seconds = time_case([&] { be.matmul_forward(out.data(), x.data(), w.data(), nullptr, m, k, n); }, tmin);
      c.gemm.push_back(s);
    }
}

// Memory bandwidth: dst += src over buffers far larger than the last-level cache.
void calibrate_memory(Backend& be, const CalibrationOptions& o, double tmin, ComputeCalibration& c) {
  const size_t n = o.quick ? (size_t{8} << 20) : (size_t{32} << 20);
  std::vector<float> a = filled(n, 1.0f), b = filled(n, 1.0f);
  const double t = time_case([&] { be.add_inplace(a.data(), b.data(), n); }, tmin);
  c.memory_bandwidth_GBps = 12.0 * static_cast<double>(n) / t * 1e-9;
}

// Element-wise ops at activation sizes (2048 tokens × 256 channels; GELU on the 4× MLP width).
void calibrate_elementwise(Backend& be, double tmin, ComputeCalibration& c) {
  const int N = 2048, C = 256;
  const size_t act = static_cast<size_t>(N) * C;
  std::vector<float> x = filled(4 * act, 1.0f), y(4 * act), w = filled(C, 1.0f), bias = filled(C, 0.1f);
  std::vector<float> mean(N), rstd(N);
  auto add = [&](double bytes, auto&& fn) { c.elementwise.push_back({bytes, time_case(fn, tmin)}); };
  add(8.0 * act, [&] {
    be.norm_forward(Normalization::kLayerNorm, y.data(), mean.data(), rstd.data(), x.data(), w.data(), bias.data(), N,
                    C, 1e-5f);
  });
  add(12.0 * act, [&] { be.add_inplace(y.data(), x.data(), act); });
  double bytes = 0, secs = 0;
  for (const SizeSample& s : c.elementwise) bytes += s.bytes, secs += s.seconds;
  c.elementwise_GBps = bytes / secs * 1e-9;
  // GELU (erf) is compute-bound on a CPU; the cost model prices it as memory traffic at the same
  // rate as the GEMMs' operands, so it is reported, not folded into elementwise_GBps (its extra
  // cost lands in the per-layer overhead `eellm fidelity` fits).
  const double gelu_fwd = time_case([&] { be.gelu_forward(y.data(), x.data(), 4 * act); }, tmin);
  c.gelu_GBps = 8.0 * 4 * act / gelu_fwd * 1e-9;
  // The backward kernels as the executor runs them (its layer backward: norm_backward,
  // gelu_backward): the cost model prices an element-wise backward at this ratio × its forward.
  // Each backward is timed alternately with its forward (time_pair).
  std::vector<float> dy = filled(4 * act, 0.1f), dx(4 * act), dw(C), db(C);
  const auto [ln_fwd, ln_bwd] = time_pair(
      [&] {
        be.norm_forward(Normalization::kLayerNorm, y.data(), mean.data(), rstd.data(), x.data(), w.data(), bias.data(),
                        N, C, 1e-5f);
      },
      [&] {
        be.norm_backward(Normalization::kLayerNorm, dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(),
                         mean.data(), rstd.data(), N, C);
      },
      tmin);
  const auto [gelu_f, gelu_bwd] =
      time_pair([&] { be.gelu_forward(y.data(), x.data(), 4 * act); },
                [&] {  // as the layer backward calls it: overwriting, Φ from the forward's output y
                  be.gelu_backward(dx.data(), dy.data(), x.data(), 4 * act, false, y.data());
                },
                tmin);
  c.elementwise_backward_ratio = (ln_bwd + gelu_bwd) / (ln_fwd + gelu_f);
}

// Attention core forward + backward (tiny-ee's shape; quick: 2 sequences): the forward's seconds and
// the backward's, timed alternately (time_pair: their ratio is a profile field).
std::pair<double, double> time_attention(Backend& be, const AttentionShape& s, double tmin) {
  const size_t tok = static_cast<size_t>(s.B) * s.T;
  std::vector<float> qkv = filled(tok * s.qkv_stride(), 1.0f), out(tok * s.out_stride()),
                     dout = filled(tok * s.out_stride(), 0.1f);
  std::vector<float> lse(static_cast<size_t>(s.B) * s.NH * s.T), dqkv(tok * s.qkv_stride());
  return time_pair([&] { be.attention_forward(out.data(), lse.data(), qkv.data(), s); },
                   [&] { be.attention_backward(dqkv.data(), dout.data(), out.data(), lse.data(), qkv.data(), s); },
                   tmin);
}
AttentionShape attention_shape(const CalibrationOptions& o) {
  return AttentionShape{o.quick ? 2 : 8, 256, 8, 8, 32};
}
void calibrate_attention(Backend& be, const CalibrationOptions& o, double tmin, ComputeCalibration& c) {
  const AttentionShape s = attention_shape(o);
  c.attention_shape = s;
  const auto [fwd, bwd] = time_attention(be, s, tmin);
  c.attention_fwd_s = fwd;
  c.attention_fwd_bwd_s = fwd + bwd;
  c.attention_core_flops = 2.0 * (2.0 * s.B * s.NH * double(s.T) * s.T * s.HS);
}

// AdamW per parameter.
void calibrate_adamw(Backend& be, const CalibrationOptions& o, double tmin, ComputeCalibration& c) {
  const size_t n = o.quick ? (size_t{256} << 10) : (size_t{1} << 20);
  std::vector<float> p = filled(n, 0.1f), g = filled(n, 0.01f), m(n, 0.0f), v(n, 0.0f);
  int t = 0;
  const double secs = time_case(
      [&] { be.adamw_step(p.data(), g.data(), m.data(), v.data(), n, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, ++t); },
      tmin);
  c.adamw_s_per_param = secs / static_cast<double>(n);
}

// Dispatch floor: a 16-element op still forks/joins the thread pool.
void calibrate_dispatch(Backend& be, double tmin, ComputeCalibration& c) {
  std::vector<float> a(16, 1.0f), b(16, 0.0f);
  c.dispatch_us = 1e6 * time_case([&] { be.add_inplace(a.data(), b.data(), 16); }, tmin, 200);
}

}  // namespace

void calibrate_bf16_math(Backend& be, const CalibrationOptions& o, ComputeCalibration& c) {
  ComputeCalibration b;
  calibrate_gemms(be, o, o.quick ? std::min(o.min_time_s, 0.02) : o.min_time_s, b);
  c.gemm_bf16 = std::move(b.gemm);
  const auto [fwd, bwd] = time_attention(be, attention_shape(o), o.quick ? std::min(o.min_time_s, 0.02) : o.min_time_s);
  c.attention_bf16_fwd_s = fwd;
  c.attention_bf16_fwd_bwd_s = fwd + bwd;
}

StatusOr<ComputeCalibration> calibrate_compute(Backend& be, const CalibrationOptions& o) {
  ComputeCalibration c;
  c.num_threads = be.num_threads();
  const double tmin = o.quick ? std::min(o.min_time_s, 0.02) : o.min_time_s;
  calibrate_gemms(be, o, tmin, c);
  calibrate_memory(be, o, tmin, c);
  calibrate_elementwise(be, tmin, c);
  calibrate_attention(be, o, tmin, c);
  calibrate_adamw(be, o, tmin, c);
  calibrate_dispatch(be, tmin, c);
  return c;
}

StatusOr<CommCalibration> calibrate_comm(Communicator& comm, const CalibrationOptions& o) {
  CommCalibration c;
  c.ranks = comm.size();
  if (comm.size() < 2) return c;
  const double timeout = 60;
  const int64_t max_bytes = o.quick ? (int64_t{4} << 20) : (int64_t{64} << 20);
  std::vector<float> buf(static_cast<size_t>(max_bytes / 4));
  for (int64_t bytes = 8; bytes <= max_bytes; bytes *= o.quick ? 8 : 4) {
    // Same repetition count on every rank (they must agree without talking).
    const int reps = bytes <= (64 << 10)  ? (o.quick ? 30 : 100)
                     : bytes <= (1 << 20) ? (o.quick ? 8 : 20)
                                          : (o.quick ? 3 : 6);
    std::vector<double> pp, ar;
    EELLM_RETURN_IF_ERROR(comm.barrier(timeout));
    for (int r = 0; r < reps + 1; ++r) {
      const auto t0 = Clock::now();
      if (comm.rank() == 0) {
        EELLM_RETURN_IF_ERROR(comm.send(buf.data(), static_cast<size_t>(bytes), 1, 7));
        EELLM_RETURN_IF_ERROR(comm.recv(buf.data(), static_cast<size_t>(bytes), 1, 8, timeout));
        EELLM_RETURN_IF_ERROR(comm.wait_sends(timeout));
      } else if (comm.rank() == 1) {
        EELLM_RETURN_IF_ERROR(comm.recv(buf.data(), static_cast<size_t>(bytes), 0, 7, timeout));
        EELLM_RETURN_IF_ERROR(comm.send(buf.data(), static_cast<size_t>(bytes), 0, 8));
        EELLM_RETURN_IF_ERROR(comm.wait_sends(timeout));
      }
      if (r > 0) pp.push_back(0.5 * std::chrono::duration<double>(Clock::now() - t0).count());
    }
    for (int r = 0; r < reps + 1; ++r) {
      EELLM_RETURN_IF_ERROR(comm.barrier(timeout));
      const auto t0 = Clock::now();
      EELLM_RETURN_IF_ERROR(
          comm.all_reduce_sum(buf.data(), static_cast<size_t>(std::max<int64_t>(1, bytes / 4)), timeout));
      if (r > 0) ar.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::fill(buf.begin(), buf.end(), 0.0f);  // keep the sums finite
    c.p2p.push_back({static_cast<double>(bytes), median(pp)});
    c.allreduce.push_back({static_cast<double>(bytes), median(ar)});
  }
  return c;
}

double model_gemm_time(const DeviceProfile& device, double m, double n, double k) {
  Scenario s;
  s.cluster.device = device;
  s.training.params_dtype = DType::kFP32;
  const Layout layout;
  return CostModel(s, layout).gemm_time(m, n, k);
}

namespace {
// CostModel::bf16_rounding_time of `device` (no layout): what the cost model adds for the passes.
double model_bf16_rounding_time(const DeviceProfile& device, double elements) {
  Scenario s;
  s.cluster.device = device;
  const Layout layout;
  return CostModel(s, layout).bf16_rounding_time(elements);
}
}  // namespace

double model_bf16_gemm_time(const DeviceProfile& device, double m, double n, double k) {
  Scenario s;
  s.cluster.device = device;
  s.training.params_dtype = DType::kFP32;
  s.execution.gemm_math = "bf16";
  const Layout layout;
  const CostModel cm(s, layout);
  return cm.gemm_time(m, n, k) + cm.bf16_rounding_time(m * k + n * k);
}

std::vector<bool> gemm_held_out(const std::vector<GemmSample>& samples) {
  std::vector<int> rows;
  std::vector<std::pair<int, int>> shapes;
  std::vector<bool> held(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const GemmSample& s = samples[i];
    auto r = std::find(rows.begin(), rows.end(), s.m);
    if (r == rows.end()) r = rows.insert(rows.end(), s.m);
    auto c = std::find(shapes.begin(), shapes.end(), std::pair{s.n, s.k});
    if (c == shapes.end()) c = shapes.insert(shapes.end(), {s.n, s.k});
    held[i] = ((r - rows.begin()) + (c - shapes.begin())) % 2 == 1;
  }
  return held;
}

namespace {

// The best GFLOP/s of `samples` (the fits' starting peak), or an error naming `what` when there are
// fewer than 2 samples or one has a size or time ≤ 0.
StatusOr<double> best_gemm_gflops(const std::vector<GemmSample>& samples, const std::string& what) {
  if (samples.size() < 2)
    return Status::invalid_argument(what + ": " + std::to_string(samples.size()) + " samples; need at least 2");
  double best = 0;
  for (const GemmSample& s : samples) {
    if (!(s.seconds > 0) || s.m <= 0 || s.n <= 0 || s.k <= 0)
      return Status::invalid_argument(what + ": sample " + std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                                      std::to_string(s.k) + " has time " + std::to_string(s.seconds) +
                                      " s; sizes and times must be > 0");
    best = std::max(best, s.gflops());
  }
  return best;
}

}  // namespace

StatusOr<GemmFit> fit_gemm_model(const std::vector<GemmSample>& samples, const DeviceProfile& device) {
  EELLM_ASSIGN_OR_RETURN(const double best_gflops, best_gemm_gflops(samples, "GEMM fit"));
  DeviceProfile d = device;
  d.gemm_max_efficiency = 1.0;
  // Coordinates: log of the peak (TFLOP/s) and log(1 + half-efficiency dim).
  auto apply = [&](const std::vector<double>& x) {
    d.peak_tflops_fp32 = std::exp(x[0]);
    d.gemm_half_efficiency_dim = std::expm1(std::clamp(x[1], 0.0, 12.0));
  };
  auto objective = [&](const std::vector<double>& x) {
    apply(x);
    double e = 0;
    for (const GemmSample& s : samples) {
      const double r = std::log(model_gemm_time(d, s.m, s.n, s.k) / s.seconds);
      e += r * r;
    }
    return e / static_cast<double>(samples.size());
  };
  GemmFit fit;
  std::vector<double> x{std::log(best_gflops * 1.2e-3), std::log1p(32.0)};
  for (int run = 0; run < 3; ++run) x = nelder_mead(objective, x, run == 0 ? 0.5 : 0.1, 600, &fit.evaluations);
  apply(x);
  fit.peak_tflops = d.peak_tflops_fp32;
  fit.half_efficiency_dim = d.gemm_half_efficiency_dim;
  for (const GemmSample& s : samples)
    fit.mape += absolute_percentage_error(model_gemm_time(d, s.m, s.n, s.k), s.seconds);
  fit.mape /= static_cast<double>(samples.size());
  return fit;
}

StatusOr<GemmFit> fit_bf16_gemm_peak(const std::vector<GemmSample>& samples, const DeviceProfile& device) {
  EELLM_ASSIGN_OR_RETURN(const double best_gflops, best_gemm_gflops(samples, "bf16 GEMM peak fit"));
  DeviceProfile d = device;
  const std::vector<bool> held = gemm_held_out(samples);
  auto model = [&](const GemmSample& s) { return model_bf16_gemm_time(d, s.m, s.n, s.k); };
  GemmFit fit;
  std::vector<double> x{std::log(best_gflops * 1.2e-3)};
  for (int run = 0; run < 2; ++run)
    x = nelder_mead(
        [&](const std::vector<double>& v) {
          d.peak_tflops_bf16 = std::exp(v[0]);
          double e = 0;
          int n = 0;
          for (size_t i = 0; i < samples.size(); ++i) {
            if (held[i]) continue;
            const double r = std::log(model(samples[i]) / samples[i].seconds);
            e += r * r, ++n;
          }
          return e / std::max(1, n);
        },
        x, run == 0 ? 0.5 : 0.1, 300, &fit.evaluations);
  d.peak_tflops_bf16 = std::exp(x[0]);
  fit.peak_tflops = d.peak_tflops_bf16;
  fit.half_efficiency_dim = d.gemm_half_efficiency_dim;
  double held_sum = 0;
  int n_held = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const double ape = absolute_percentage_error(model(samples[i]), samples[i].seconds);
    fit.mape += ape;
    if (held[i]) held_sum += ape, ++n_held;
  }
  fit.mape /= static_cast<double>(samples.size());
  fit.heldout_mape = n_held > 0 ? held_sum / n_held : -1;
  return fit;
}

namespace {

// Least squares of t ≈ ca·α + cb·(min(B, Bc)·γ1 + max(0, B − Bc)·γ2) on relative residuals
// (t is the measured time), Bc = 0: one rate (γ2 = γ1). α ≥ 0 (refit without it when negative).
struct LineSolve {
  bool ok = false;
  double alpha = 0, g1 = 0, g2 = 0;
  double msre = 0;  // mean squared relative error
};

// Solves the k×k system a·x = b (k ≤ 3) by Gaussian elimination with partial pivoting.
bool solve_small(std::vector<std::vector<double>> a, std::vector<double> b, std::vector<double>& x) {
  const size_t k = b.size();
  for (size_t c = 0; c < k; ++c) {
    size_t piv = c;
    for (size_t r = c + 1; r < k; ++r)
      if (std::fabs(a[r][c]) > std::fabs(a[piv][c])) piv = r;
    if (!(std::fabs(a[piv][c]) > 1e-300)) return false;
    std::swap(a[c], a[piv]);
    std::swap(b[c], b[piv]);
    for (size_t r = c + 1; r < k; ++r) {
      const double f = a[r][c] / a[c][c];
      for (size_t j = c; j < k; ++j) a[r][j] -= f * a[c][j];
      b[r] -= f * b[c];
    }
  }
  x.assign(k, 0.0);
  for (size_t c = k; c-- > 0;) {
    double v = b[c];
    for (size_t j = c + 1; j < k; ++j) v -= a[c][j] * x[j];
    x[c] = v / a[c][c];
  }
  return true;
}

LineSolve solve_line(const std::vector<SizeSample>& v, double ca, double cb, double limit) {
  const bool split = limit > 0;
  auto features = [&](const SizeSample& s, bool with_alpha) {
    std::vector<double> f;
    if (with_alpha) f.push_back(ca / s.seconds);
    const double lo = split ? std::min(s.bytes, limit) : s.bytes, hi = split ? std::max(0.0, s.bytes - limit) : 0;
    f.push_back(cb * lo / s.seconds);
    if (split) f.push_back(cb * hi / s.seconds);
    return f;
  };
  LineSolve out;
  for (const bool with_alpha : {true, false}) {
    const size_t k = (with_alpha ? 1 : 0) + (split ? 2 : 1);
    if (v.size() < k) return out;
    std::vector<std::vector<double>> a(k, std::vector<double>(k, 0.0));
    std::vector<double> b(k, 0.0), x;
    for (const SizeSample& s : v) {
      const std::vector<double> f = features(s, with_alpha);
      for (size_t i = 0; i < k; ++i) {
        b[i] += f[i];
        for (size_t j = 0; j < k; ++j) a[i][j] += f[i] * f[j];
      }
    }
    if (!solve_small(a, b, x)) return out;
    size_t i = 0;
    out.alpha = with_alpha ? x[i++] : 0.0;
    out.g1 = x[i++];
    out.g2 = split ? x[i] : out.g1;
    if (with_alpha && out.alpha < 0) continue;  // latency cannot be negative: refit without it
    if (!(out.g1 > 0) || !(out.g2 > 0)) return out;
    out.ok = true;
    out.msre = 0;
    for (const SizeSample& s : v) {
      double r = -1;
      const std::vector<double> f = features(s, true);
      r += out.alpha * f[0] + out.g1 * f[1] + (split ? out.g2 * f[2] : 0.0);
      out.msre += r * r;
    }
    out.msre /= static_cast<double>(v.size());
    return out;
  }
  return out;
}

LinkLine to_line(const LineSolve& s) {
  return LinkLine{s.alpha * 1e6, 1e-9 / s.g1, 1e-9 / s.g2};
}

// Model time of a LinkLine (ca, cb as in solve_line).
double line_time(const LinkLine& l, double limit, double ca, double cb, double bytes) {
  const double lo = limit > 0 ? std::min(bytes, limit) : bytes, hi = limit > 0 ? std::max(0.0, bytes - limit) : 0;
  return ca * l.latency_us * 1e-6 + cb * (lo / (l.bandwidth_GBps * 1e9) + hi / (l.large_bandwidth_GBps * 1e9));
}

}  // namespace

StatusOr<LinkFit> fit_link(const std::vector<SizeSample>& p2p, const std::vector<SizeSample>& allreduce, int ranks) {
  const bool have_ar = ranks >= 2 && !allreduce.empty();
  if (p2p.size() < 2 || (have_ar && allreduce.size() < 2))
    return Status::invalid_argument("link fit: need at least 2 p2p and 2 all-reduce samples, got " +
                                    std::to_string(p2p.size()) + " and " + std::to_string(allreduce.size()));
  for (const std::vector<SizeSample>* v : {&p2p, &allreduce})
    for (const SizeSample& s : *v)
      if (!(s.seconds > 0) || !(s.bytes > 0))
        return Status::invalid_argument("link fit: sample of " + std::to_string(s.bytes) + " bytes has time " +
                                        std::to_string(s.seconds) + " s; both must be > 0");
  const double n = std::max(2, ranks);
  const double ar_ca = 2 * (n - 1), ar_cb = 2 * (n - 1) / n;
  // Candidate thresholds: the sample sizes that leave at least two samples of each kind above.
  std::vector<double> sizes;
  for (const SizeSample& s : p2p) sizes.push_back(s.bytes);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  std::vector<double> limits{0};
  for (size_t i = 0; i + 2 < sizes.size(); ++i) limits.push_back(sizes[i]);
  auto above = [](const std::vector<SizeSample>& v, double lim) {
    return std::count_if(v.begin(), v.end(), [&](const SizeSample& s) { return s.bytes > lim; });
  };
  double best_score = 0, best_limit = -1;
  LineSolve best_p, best_a;
  for (const double lim : limits) {
    if (lim > 0 && (above(p2p, lim) < 2 || (have_ar && above(allreduce, lim) < 2))) continue;
    const LineSolve p = solve_line(p2p, 1, 1, lim);
    const LineSolve a = have_ar ? solve_line(allreduce, ar_ca, ar_cb, lim) : p;
    if (!p.ok || !a.ok) continue;
    const double score = p.msre + (have_ar ? a.msre : 0.0);
    // A threshold has to earn its two extra parameters: at least 10 % lower error than none, and
    // more than round-off (a mean squared relative error of 1e-10 is a 0.001 % fit).
    const bool better =
        best_limit < 0 ||
        (lim > 0 && best_limit == 0 ? score < 0.9 * best_score && best_score - score > 1e-10 : score < best_score);
    if (better) best_score = score, best_limit = lim, best_p = p, best_a = a;
  }
  if (best_limit < 0) return Status::invalid_argument("link fit: times do not grow with message size");
  LinkFit f;
  f.large_message_KiB = best_limit / 1024.0;
  f.p2p = to_line(best_p);
  f.allreduce = to_line(best_a);
  f.link.latency_us = f.p2p.latency_us;
  f.link.bandwidth_GBps = std::max(f.p2p.bandwidth_GBps, f.allreduce.bandwidth_GBps);
  auto mape = [&](const std::vector<SizeSample>& v, const LinkLine& l, double ca, double cb) {
    double e = 0;
    for (const SizeSample& s : v) e += absolute_percentage_error(line_time(l, best_limit, ca, cb, s.bytes), s.seconds);
    return v.empty() ? 0.0 : e / static_cast<double>(v.size());
  };
  f.p2p_mape = mape(p2p, f.p2p, 1, 1);
  f.allreduce_mape = have_ar ? mape(allreduce, f.allreduce, ar_ca, ar_cb) : 0;
  return f;
}

void apply_link_fit(const LinkFit& f, DeviceProfile& d) {
  d.nvlink_latency_us = f.link.latency_us;
  d.nvlink_bandwidth_GBps = f.link.bandwidth_GBps;
  d.p2p_efficiency = f.p2p.bandwidth_GBps / f.link.bandwidth_GBps;
  d.collective_efficiency = f.allreduce.bandwidth_GBps / f.link.bandwidth_GBps;
  // 0 would mean "the link's latency"; a measured zero is kept as a tiny positive figure.
  d.collective_latency_us = std::max(1e-6, f.allreduce.latency_us);
  d.large_message_KiB = f.large_message_KiB;
  d.large_message_p2p_efficiency = f.p2p.large_bandwidth_GBps / f.p2p.bandwidth_GBps;
  d.large_message_collective_efficiency = f.allreduce.large_bandwidth_GBps / f.allreduce.bandwidth_GBps;
}

StatusOr<DeviceProfile> device_profile_from_calibration(const ComputeCalibration& c, const std::string& name,
                                                        GemmFit* gemm_fit, GemmFit* bf16_fit) {
  DeviceProfile d;
  d.name = name;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  d.memory_GiB = pages > 0 && page > 0 ? std::round(double(pages) * double(page) / double(1 << 30)) : 0;
  // Activation-sized element-wise ops run from cache and can beat the large-buffer bandwidth; the
  // profile's bandwidth is the larger, so elementwise_efficiency stays a fraction (≤ 1).
  d.memory_bandwidth_GBps = std::max(c.memory_bandwidth_GBps, c.elementwise_GBps);
  d.elementwise_efficiency = c.elementwise_GBps / d.memory_bandwidth_GBps;
  d.kernel_launch_us = c.dispatch_us;
  d.gemm_tile_m = d.gemm_tile_n = 32;
  d.num_sms = std::max(1, c.num_threads);
  d.collective_efficiency = 1.0;
  EELLM_ASSIGN_OR_RETURN(GemmFit g, fit_gemm_model(c.gemm, d));
  d.peak_tflops_fp32 = d.peak_tflops_fp16 = d.peak_tflops_bf16 = g.peak_tflops;
  d.gemm_max_efficiency = 1.0;
  d.gemm_half_efficiency_dim = g.half_efficiency_dim;
  if (!c.gemm_bf16.empty()) {
    EELLM_ASSIGN_OR_RETURN(GemmFit b, fit_bf16_gemm_peak(c.gemm_bf16, d));
    d.peak_tflops_bf16 = b.peak_tflops;
    if (bf16_fit) *bf16_fit = b;
  }
  if (c.elementwise_backward_ratio > 0) d.elementwise_backward_ratio = c.elementwise_backward_ratio;
  if (c.attention_fwd_s > 0 && c.attention_fwd_bwd_s > c.attention_fwd_s) {
    const AttentionShape& s = c.attention_shape;
    // The cost model prices the forward as the core GEMMs at attention_efficiency plus the softmax
    // as element-wise traffic (2·B·NH·T²·e), and the backward as attention_backward_ratio × that.
    const double fwd = c.attention_fwd_s, bwd = c.attention_fwd_bwd_s - c.attention_fwd_s;
    // t less `work_s` of element-wise passes, at least a tenth of t.
    auto less = [](double t, double work_s) { return std::max(0.1 * t, t - work_s); };
    const double softmax_s =
        2.0 * s.B * s.NH * double(s.T) * s.T * 4.0 / (d.memory_bandwidth_GBps * 1e9 * d.elementwise_efficiency);
    // The core GEMMs' fraction of `peak_tflops`, from a forward's seconds without its softmax.
    auto efficiency = [&](double fwd_s, double peak_tflops) {
      return std::clamp(c.attention_core_flops / (less(fwd_s, softmax_s) * peak_tflops * 1e12), 1e-4, 1.0);
    };
    d.attention_efficiency = efficiency(fwd, g.peak_tflops);
    d.attention_backward_ratio = bwd / fwd;
    // bf16 math: the same pricing at the bf16 peak, after the rounding passes the cost model adds
    // apart (bf16_attention_rounding) are taken out of both times.
    if (!c.gemm_bf16.empty() && c.attention_bf16_fwd_s > 0 && c.attention_bf16_fwd_bwd_s > c.attention_bf16_fwd_s) {
      const Bf16AttentionRounding r =
          bf16_attention_rounding(double(s.B) * s.T, s.qkv_stride(), s.out_stride(), double(s.B) * s.NH, s.T);
      const double fwd16 = less(c.attention_bf16_fwd_s, model_bf16_rounding_time(d, r.fwd));
      const double bwd16 =
          less(c.attention_bf16_fwd_bwd_s - c.attention_bf16_fwd_s, model_bf16_rounding_time(d, r.bwd));
      d.attention_efficiency_bf16 = efficiency(fwd16, d.peak_tflops_bf16);
      d.attention_backward_ratio_bf16 = bwd16 / fwd16;
    }
  }
  d.optimizer_bytes_per_param = c.adamw_s_per_param * d.memory_bandwidth_GBps * 1e9 * d.elementwise_efficiency;
  d.per_layer_overhead_us = 0;
  d.per_iteration_overhead_us = 0;
  if (gemm_fit) *gemm_fit = g;
  return d;
}

std::string calibration_report(const ComputeCalibration& c, const GemmFit& g, const DeviceProfile& d,
                               const GemmFit* bf16_fit) {
  std::ostringstream os;
  char line[640];
  os << "compute (" << c.num_threads << " backend thread" << (c.num_threads == 1 ? "" : "s") << ")\n";
  // One table of GEMM samples against a model's times; with `mark_held_out`, the samples the fit
  // held out (gemm_held_out) are marked.
  auto gemm_table = [&](const char* title, const std::vector<GemmSample>& samples, auto model_time,
                        bool mark_held_out) {
    os << "  " << title << "measured GFLOP/s   model GFLOP/s\n";
    const std::vector<bool> held = gemm_held_out(samples);
    for (size_t i = 0; i < samples.size(); ++i) {
      const GemmSample& s = samples[i];
      const double model = 2.0 * s.m * s.n * s.k / model_time(s) * 1e-9;
      std::snprintf(line, sizeof line, "  %5d x %5d x %5d   %14.1f   %13.1f%s\n", s.m, s.n, s.k, s.gflops(), model,
                    mark_held_out && held[i] ? "  (held out)" : "");
      os << line;
    }
  };
  gemm_table(
      "GEMM (m x n x k)        ", c.gemm, [&](const GemmSample& s) { return model_gemm_time(d, s.m, s.n, s.k); },
      false);
  std::snprintf(line, sizeof line,
                "  fit: peak %.1f GFLOP/s, half-efficiency dim %.1f, MAPE %.1f %% over %zu shapes (%d evaluations)\n",
                g.peak_tflops * 1e3, g.half_efficiency_dim, g.mape, c.gemm.size(), g.evaluations);
  os << line;
  if (bf16_fit && !c.gemm_bf16.empty()) {
    DeviceProfile b = d;
    b.peak_tflops_bf16 = bf16_fit->peak_tflops;
    gemm_table(
        "GEMM in bf16 math       ", c.gemm_bf16,
        [&](const GemmSample& s) { return model_bf16_gemm_time(b, s.m, s.n, s.k); }, true);
    const std::vector<bool> held = gemm_held_out(c.gemm_bf16);
    const size_t n_held = static_cast<size_t>(std::count(held.begin(), held.end(), true));
    std::snprintf(line, sizeof line,
                  "  bf16 fit: peak %.1f GFLOP/s (%.2fx fp32) with the fp32 half-efficiency dim and the rounding "
                  "passes as element-wise work, fitted on %zu shapes; MAPE %.1f %% on the %zu held out, %.1f %% "
                  "over all\n",
                  bf16_fit->peak_tflops * 1e3, bf16_fit->peak_tflops / g.peak_tflops, c.gemm_bf16.size() - n_held,
                  bf16_fit->heldout_mape, n_held, bf16_fit->mape);
    os << line;
    if (c.attention_bf16_fwd_s > 0) {
      std::snprintf(line, sizeof line,
                    "  attention in bf16 math fwd %.2f ms, bwd %.2f ms -> efficiency %.3f of the bf16 GEMM peak, "
                    "bwd/fwd %.2f (rounding passes apart)\n",
                    c.attention_bf16_fwd_s * 1e3, (c.attention_bf16_fwd_bwd_s - c.attention_bf16_fwd_s) * 1e3,
                    d.attention_efficiency_bf16, d.attention_backward_ratio_bf16);
      os << line;
    }
  }
  std::snprintf(
      line, sizeof line,
      "  memory bandwidth %.1f GB/s (large buffers); element-wise at activation sizes %.1f GB/s (GELU %.2f GB/s)\n"
      "  element-wise backward / forward (LayerNorm + GELU) %.2f\n"
      "  attention %dx%dx%dx%d fwd %.2f ms, bwd %.2f ms -> efficiency %.3f of the GEMM peak, bwd/fwd %.2f\n"
      "  AdamW %.2f ns/param -> %.1f bytes/param; dispatch floor %.2f us/op\n",
      c.memory_bandwidth_GBps, c.elementwise_GBps, c.gelu_GBps, d.elementwise_backward_ratio, c.attention_shape.B,
      c.attention_shape.T, c.attention_shape.NH, c.attention_shape.HS, c.attention_fwd_s * 1e3,
      (c.attention_fwd_bwd_s - c.attention_fwd_s) * 1e3, d.attention_efficiency, d.attention_backward_ratio,
      c.adamw_s_per_param * 1e9, d.optimizer_bytes_per_param, c.dispatch_us);
  os << line;
  return os.str();
}

std::string comm_report(const CommCalibration& c, const LinkFit& f) {
  std::ostringstream os;
  char line[640];
  os << "communication (" << c.ranks << " ranks)\n  bytes        p2p us   all-reduce us\n";
  for (size_t i = 0; i < c.p2p.size(); ++i) {
    std::snprintf(line, sizeof line, "  %-10.0f %8.1f %15.1f\n", c.p2p[i].bytes, c.p2p[i].seconds * 1e6,
                  i < c.allreduce.size() ? c.allreduce[i].seconds * 1e6 : 0.0);
    os << line;
  }
  std::snprintf(line, sizeof line,
                "  fit p2p:        latency %.2f us, bandwidth %.2f GB/s (beyond %.0f KiB: %.2f GB/s); MAPE %.1f %%\n"
                "  fit all-reduce: latency %.2f us, bandwidth %.2f GB/s (beyond %.0f KiB: %.2f GB/s); MAPE %.1f %%\n",
                f.p2p.latency_us, f.p2p.bandwidth_GBps, f.large_message_KiB, f.p2p.large_bandwidth_GBps, f.p2p_mape,
                f.allreduce.latency_us, f.allreduce.bandwidth_GBps, f.large_message_KiB,
                f.allreduce.large_bandwidth_GBps, f.allreduce_mape);
  os << line;
  return os.str();
}

}  // namespace eellm::fidelity
