// Calibration: micro-benchmarks of the machine at hand through the real backends (exec/backend/backend.h)
// and communicators (exec/comm/comm.h), and the fits that turn them into the DeviceProfile and link
// figures the simulator reads (model/scenario.h, model/cost_model.h).
//
// Compute (one process, `num_threads` backend threads — the threads one rank gets when the
// executor runs): GEMM throughput over a grid of shapes (matmul_forward), element-wise bandwidth
// (add_inplace over a large buffer = memory bandwidth; LayerNorm / add at activation sizes =
// element-wise efficiency), the attention core forward + backward, AdamW bytes per parameter and the
// dispatch overhead of a tiny op. The GEMM efficiency model of CostModel::gemm_time is fitted to the
// GEMM samples (free: asymptotic peak and gemm_half_efficiency_dim; gemm_max_efficiency = 1, so
// peak_tflops_fp32 IS the fitted asymptotic throughput) by Nelder–Mead on the mean squared log
// error, with the cost model itself as the predictor (no second copy of the formula). Where the CPU
// has oneDNN's bf16 GEMM, the same grid again with bf16 GEMM math (execution.gemm_math bf16) gives
// peak_tflops_bf16: its peak alone is fitted, on every other shape, keeping the fp32 curve's
// half-efficiency dim, and its error is reported on the shapes the fit did not see.
//
// Communication (all ranks of a communicator, rank 0 keeps the samples): ping-pong between ranks 0
// and 1 over message sizes, and all_reduce_sum over all ranks. p2p and all-reduce get separate
// latency/bandwidth pairs (one line for both over-predicted p2p sends by 270 % and under-predicted
// gradient all-reduces by 90 %), each piecewise in message size: bytes beyond a common threshold
// (chosen among the sample sizes, or none) move at their own rate — the caches overflow. The fit
// is written as the DeviceProfile's link fields the cost model reads (apply_link_fit).
//
// Timing: each case is repeated until `min_time_s` has passed (at least 3 repetitions); the
// median repetition is kept. Thread-safety: functions use the given backend/communicator, which
// are single-threaded objects; the fits are pure.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/comm/comm.h"
#include "model/scenario.h"
#include "model/status.h"

namespace eellm::fidelity {

using exec::AttentionShape;
using exec::Backend;
using exec::Communicator;

struct CalibrationOptions {
  bool quick = false;       // fewer shapes and sizes, shorter timing (the whole run < ~20 s)
  double min_time_s = 0.1;  // per case (quick: 0.02)
  int num_threads = 1;      // backend threads (the executor gives each rank cores / ranks)
};

struct GemmSample {
  int m = 0, n = 0, k = 0;  // (m×k)·(k×n)
  double seconds = 0;
  double gflops() const { return 2.0 * m * n * k / seconds * 1e-9; }
};

struct SizeSample {
  double bytes = 0;  // bytes moved (element-wise) or message size (communication)
  double seconds = 0;
};

struct ComputeCalibration {
  int num_threads = 1;
  std::vector<GemmSample> gemm;
  std::vector<GemmSample> gemm_bf16;    // the same grid in bf16 GEMM math; empty: not measured
  double memory_bandwidth_GBps = 0;     // add_inplace over a buffer far larger than the caches
  std::vector<SizeSample> elementwise;  // LayerNorm and add at activation sizes
  double elementwise_GBps = 0;          // bytes / seconds over `elementwise`
  double gelu_GBps = 0;                 // GELU (erf) at the MLP width: reported, not fitted
  // Backward / forward time of the element-wise kernels that have both (LayerNorm, GELU), summed.
  double elementwise_backward_ratio = 0;
  double attention_fwd_bwd_s = 0;  // one attention forward + backward of `attention_shape`
  double attention_fwd_s = 0;      // the forward alone (attention_fwd_bwd_s less it: backward)
  AttentionShape attention_shape;
  double attention_core_flops = 0;  // the cost model's forward count: 2·(2·B·NH·T²·HS)
  double attention_bf16_fwd_bwd_s = 0, attention_bf16_fwd_s = 0;  // the same in bf16 GEMM math; 0: not measured
  double adamw_s_per_param = 0;
  double dispatch_us = 0;  // a tiny op (fork/join of the thread pool)
};

struct CommCalibration {
  int ranks = 1;
  std::vector<SizeSample> p2p;        // one-way time (half a ping-pong round trip)
  std::vector<SizeSample> allreduce;  // all_reduce_sum of `bytes` (fp32) over all ranks
};

// Fit of the GEMM efficiency model: the fields it sets and its error on the samples.
struct GemmFit {
  double peak_tflops = 0;
  double half_efficiency_dim = 0;
  double mape = 0;  // percent, over the samples
  int evaluations = 0;
  double heldout_mape = -1;  // percent, over samples the fit did not see (-1: none held out)
};

// One kind of transfer: t = alpha_s + bytes_up_to_threshold / bw + bytes_beyond / large_bw (p2p),
// with the ring all-reduce's factors 2(n−1) on alpha and 2(n−1)/n on the byte terms.
struct LinkLine {
  double latency_us = 0;
  double bandwidth_GBps = 0;
  double large_bandwidth_GBps = 0;  // = bandwidth_GBps without a large-message regime
};

struct LinkFit {
  LinkLine p2p, allreduce;
  double large_message_KiB = 0;             // 0: one regime
  double p2p_mape = 0, allreduce_mape = 0;  // percent
  LinkSpec link;  // intra-node link written to the profile: p2p latency, max of both bandwidths
};

// The profile fields of `fit`: nvlink_* = fit.link, p2p/collective efficiencies (both ≤ 1),
// collective_latency_us, large_message_*.
void apply_link_fit(const LinkFit& fit, DeviceProfile& device);

// Benchmarks (see the file comment).
StatusOr<ComputeCalibration> calibrate_compute(Backend& backend, const CalibrationOptions& options);
// The GEMM grid and the attention core of calibrate_compute again, on a backend in bf16 GEMM math:
// fills gemm_bf16 and attention_bf16_* of `c` (calibrate_compute filled the rest).
void calibrate_bf16_math(Backend& backend, const CalibrationOptions& options, ComputeCalibration& c);
// Collective over `comm`: every rank calls it. Needs ≥ 2 ranks for p2p samples; with one rank
// both lists stay empty.
StatusOr<CommCalibration> calibrate_comm(Communicator& comm, const CalibrationOptions& options);

// CostModel::gemm_time of `device` (fp32) for one sample shape: the model the fit targets.
double model_gemm_time(const DeviceProfile& device, double m, double n, double k);
// A linear layer's forward in bf16 GEMM math on eellm's CPU executor, as the cost model prices it:
// the GEMM at device.peak_tflops_bf16 plus the passes rounding x (m×k) and W (n×k) to bf16
// (CostModel::bf16_rounding_time: element-wise work, 6 bytes an element).
double model_bf16_gemm_time(const DeviceProfile& device, double m, double n, double k);
// The samples a GEMM peak fit holds out: a checkerboard over the grid's rows (m) and shapes (n, k),
// each ranked by first appearance, so every row and every shape has fitted and held-out samples
// wherever the grid has two of each (index parity followed the grid's columns: the smallest shape
// was always fitted, the larger ones always held out).
std::vector<bool> gemm_held_out(const std::vector<GemmSample>& samples);
// Fits peak_tflops_fp32 and gemm_half_efficiency_dim of `device` (its memory figures, tiles and
// launch cost are kept) to `samples`; errors when there are fewer than 2 samples or a time ≤ 0.
StatusOr<GemmFit> fit_gemm_model(const std::vector<GemmSample>& samples, const DeviceProfile& device);
// Fits the bf16 peak alone (peak_tflops in the result; `device`'s gemm_half_efficiency_dim, memory
// figures and launch cost kept) to samples measured in bf16 GEMM math, through model_bf16_gemm_time,
// on the samples gemm_held_out leaves in; mape over all, heldout_mape over the held-out ones.
// Needs ≥ 2 samples.
StatusOr<GemmFit> fit_bf16_gemm_peak(const std::vector<GemmSample>& samples, const DeviceProfile& device);

// Fit of LinkFit: for each candidate threshold (none, or each sample size but the two largest),
// linear least squares on relative error per kind (latency ≥ 0, rates > 0); the threshold with the
// smallest summed mean squared relative error wins, none unless a threshold lowers it by 10 %.
// Needs ≥ 2 p2p samples and, with ranks ≥ 2, ≥ 2 all-reduce samples.
StatusOr<LinkFit> fit_link(const std::vector<SizeSample>& p2p, const std::vector<SizeSample>& allreduce, int ranks);

// The DeviceProfile the compute calibration implies (name `name`; peak_tflops_fp32 and _fp16 = the
// fitted fp32 GEMM peak, peak_tflops_bf16 = the bf16 grid's fitted peak, or the fp32 one without
// it), and the fits behind it.
StatusOr<DeviceProfile> device_profile_from_calibration(const ComputeCalibration& c, const std::string& name,
                                                        GemmFit* gemm_fit = nullptr, GemmFit* bf16_fit = nullptr);

// Human-readable table of the measurements and fits.
std::string calibration_report(const ComputeCalibration& c, const GemmFit& g, const DeviceProfile& d,
                               const GemmFit* bf16_fit = nullptr);
std::string comm_report(const CommCalibration& c, const LinkFit& f);

}  // namespace eellm::fidelity
