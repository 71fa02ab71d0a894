// Analytical iteration-time estimate and the fit of a DeviceProfile's free parameters to measured
// Megatron iterations (the shared A100 calibration file).
//
// estimate_iteration() is a closed form over the cost model (no event simulation): the pipeline
// term of the slowest stage, exposed p2p, data-parallel and embedding-group synchronisation,
// optimizer step and a fixed per-iteration overhead. It is what the planner's analytical pre-filter
// calls, so it stays allocation-light; the simulator (sim/) is the precise model.
//
// fit_device_profile() minimises the mean squared log error of estimate vs measurement over the
// training rows with Nelder–Mead on transformed parameters (logit for efficiencies in (0, 1),
// log(v + unit) for non-negative sizes and times), deterministically (fixed start, fixed restarts).
// Rows are split 80/20 into train/validation by a hash of the row index (is_validation_row), so the
// split never depends on the file's order of appearance elsewhere. Thread-safety: pure functions;
// no shared state.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "model/cost_model.h"
#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

// Breakdown of one iteration's estimated wall time, seconds.
struct IterationEstimate {
  double pipeline_s = 0;  // forward/backward work incl. the pipeline bubble
  double bubble_s = 0;    // the part of pipeline_s the slowest stage spends idle
  double p2p_s = 0;       // exposed pipeline point-to-point transfers
  double dp_sync_s = 0;   // exposed data-parallel gradient synchronisation (slowest stage)
  double embedding_sync_s = 0;
  double optimizer_s = 0;
  double overhead_s = 0;  // DeviceProfile::per_iteration_overhead_us
  double total_s = 0;
};

// Closed-form iteration time of the scenario behind `cost` (every schedule kind; see fit.cpp for
// the formula of each).
IterationEstimate estimate_iteration(const CostModel& cost);

// One measured iteration of the calibration file.
struct CalibrationRow {
  int gpus = 0, global_batch = 0, micro_batch = 0, hidden = 0, heads = 0, layers = 0, seq = 0;
  int tp = 0, dp = 0, pp = 0;
  double time_ms = 0;
};

// Reads the vTrain/Megatron CSV (header line, 11 numeric columns); errors name the line and column.
StatusOr<std::vector<CalibrationRow>> read_calibration_csv(const std::string& path);

// The scenario a row describes, with the settings common to the file: GPT-2 style (LayerNorm,
// learned positions, GELU, biases, tied embeddings), vocabulary 50257, ffn 4h, fp16, full
// recompute, 1F1B, one node of 8 GPUs on `device`'s NVLink.
Scenario calibration_scenario(const CalibrationRow& row, const DeviceProfile& device);

// Deterministic 80/20 split: true for roughly one row in five, by a hash of the 0-based row index.
bool is_validation_row(size_t index);

// The free parameters of the fit.
enum class FitParam {
  kGemmMaxEfficiency,
  kGemmHalfEfficiencyDim,
  kElementwiseEfficiency,
  kAttentionEfficiency,
  kCollectiveEfficiency,
  kKernelLaunchUs,
  kPerLayerOverheadUs,
  kPerIterationOverheadUs,
  kNvlinkLatencyUs,  // intra-node alpha of the collectives (the file is single-node)
};
const char* to_string(FitParam p);  // the DeviceProfile field name
double get_fit_param(const DeviceProfile& d, FitParam p);
void set_fit_param(DeviceProfile& d, FitParam p, double v);
std::vector<FitParam> all_fit_params();

struct FitOptions {
  std::vector<FitParam> params = all_fit_params();
  int max_evaluations = 4000;  // per Nelder–Mead run
  int restarts = 3;            // re-runs from the best point with a fresh simplex
  // Start the fitted parameters from DeviceProfile{}'s defaults rather than the given profile's
  // values, so re-fitting a shipped (already fitted) profile reproduces its documented result.
  bool start_from_defaults = true;
  // The objective has several basins (launch-bound, per-layer-overhead-bound, compute-bound): one
  // start per (kernel_launch_us, per_layer_overhead_us) pair, for the fitted ones among the two;
  // the best training objective wins.
  std::vector<std::pair<double, double>> start_launch_and_layer_us = {{0, 0}, {80, 0}, {40, 400}};
};

struct FitResult {
  DeviceProfile profile;                       // start profile with the fitted parameters
  double train_mape = 0, validation_mape = 0;  // percent
  int train_rows = 0, validation_rows = 0;
  int evaluations = 0;
  std::vector<double> predicted_ms;  // per input row
  std::vector<bool> validation;      // per input row
};

// MAPE (percent) of `profile` on the rows selected by `which` (0 train, 1 validation, 2 all).
double calibration_mape(const std::vector<CalibrationRow>& rows, const DeviceProfile& profile,
                        int which, std::vector<double>* predicted_ms = nullptr);

// Fits `options.params` of `start` to `rows` (train part only) and reports both MAPEs.
StatusOr<FitResult> fit_device_profile(const std::vector<CalibrationRow>& rows,
                                       const DeviceProfile& start, const FitOptions& options = {});

// A device profile as YAML (every DeviceProfile field, scenarios/devices format), each line of
// `comment` written as a leading '# ' comment.
std::string device_profile_to_yaml(const DeviceProfile& d, const std::string& comment = "");

// Residuals of a fit grouped by a row attribute: "gpus", "tp", "pp", "dp", "micro_batch", "hidden",
// "layers". Each group: key value, rows, MAPE (percent), mean signed error (percent).
struct ResidualGroup {
  int value = 0;
  int rows = 0;
  double mape = 0, bias = 0;
};
std::vector<ResidualGroup> residuals_by(const std::vector<CalibrationRow>& rows,
                                        const std::vector<double>& predicted_ms,
                                        const std::string& attribute);

}  // namespace eellm
