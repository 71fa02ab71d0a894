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
double calibration_mape(const std::vector<CalibrationRow>& rows, const DeviceProfile& profile, int which,
                        std::vector<double>* predicted_ms = nullptr);

// Fits `options.params` of `start` to `rows` (train part only) and reports both MAPEs.
StatusOr<FitResult> fit_device_profile(const std::vector<CalibrationRow>& rows, const DeviceProfile& start,
                                       const FitOptions& options = {});

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
                                        const std::vector<double>& predicted_ms, const std::string& attribute);

// ---------------------------------------------------------------------------------------------
// The multi-node set (data/calibration/megatron_a100_multi_node.csv: Megatron-LM on Selene).

struct MultiNodeRow {
  std::string source;
  double params_billion = 0;
  int heads = 0, hidden = 0, layers = 0, seq = 0, vocab = 0, tp = 0, pp = 0, dp = 0, gpus = 0;
  int global_batch = 0;
  int micro_batch = 0;  // 0: the table does not give it (a free choice of the run)
  double achieved_tflops = 0, time_s = 0;
};

// Reads the multi-node CSV (header line, 15 columns; micro batch may be empty); errors name the
// line and the column.
StatusOr<std::vector<MultiNodeRow>> read_multi_node_csv(const std::string& path);

// Settings a row leaves open: micro batch (where not given) and interleaving (virtual stages).
struct RunChoice {
  int micro_batch = 1;
  int vp = 1;  // 1: Megatron's 1F1B; > 1: interleaved 1F1B with vp chunks per stage
};

// The scenario of a row on `cluster` (its num_nodes set to gpus / gpus_per_node): GPT-3 style
// (LayerNorm, learned positions, GELU, biases, tied embeddings, ffn 4h), fp16 without fp32 grad
// accumulation, full recompute, no sequence parallelism, no distributed optimizer (the 2021 code).
Scenario multi_node_scenario(const MultiNodeRow& row, const ClusterSpec& cluster, RunChoice choice);

// The prediction of a row: the fastest estimate over the open settings (micro batch 1, 2, 4, 8
// where not given; vp 1 or any divisor ≥ 2 of the layers per stage that Megatron accepts) among
// the layouts whose every stage fits device memory — the run as a user would tune it, i.e. the
// planner's choice. time_s < 0 when no choice fits.
struct MultiNodePrediction {
  double time_s = -1;
  RunChoice choice;
};
MultiNodePrediction predict_multi_node(const MultiNodeRow& row, const ClusterSpec& cluster);

// The joint fit of one A100 device + cluster profile on both sets. Stage 1 fits the device's
// parameters (FitOptions::params) on the single-node training rows alone (fit_device_profile, its
// fixed starts); stage 2 starts there and fits the device's and the cluster's parameters
// (multi_node_params) together on both sets: the mean squared log error of the single-node
// training rows plus that of the multi-node rows. Held-out errors: the single-node held-back rows
// (in neither stage), and leave-one-out over the multi-node rows (stage 2 re-fitted without each
// row in turn, from the joint optimum).
enum class NetworkFitParam { kInterNodeEfficiency, kInterNodeLatencyUs };
const char* to_string(NetworkFitParam p);

struct JointFitOptions {
  FitOptions device;   // the device's parameters and stage 1's options
  bool stage1 = true;  // false: stage 2 starts from the start device as given
  // None by default: the NICs run at their line rate × the device's collective_efficiency (the
  // spec sheet's 8 × 200 Gb/s). Fitted, inter_node_efficiency falls to ~0.33 of line rate: the
  // fit then uses slow pipeline transfers to stand in for what the model lacks, which would mislead
  // on runs that lean on the NICs for other reasons (docs/accuracy.md).
  std::vector<NetworkFitParam> multi_node_params = {};
  double single_node_weight = 1;  // of the single-node set's mean in stage 2's objective
  int joint_evaluations = 1500;   // per Nelder–Mead round of stage 2 (two rounds)
  int loo_evaluations = 400;      // per leave-one-out re-fit (one round)
  bool leave_one_out = true;
};

struct ScaleBucket {
  std::string label;  // "<= 8", "9-64", "65-512", "> 512" GPUs
  int rows = 0;
  double mape = 0, bias = 0;  // percent, over held-out predictions
};

struct JointFitResult {
  FitResult single;                           // stage 1 (its MAPEs: single-node train / held-back rows)
  ClusterSpec cluster;                        // fitted cluster, its device = the fitted device
  std::vector<MultiNodePrediction> fitted;    // per multi-node row, all rows fitted on
  std::vector<MultiNodePrediction> held_out;  // per row, from the fit without that row
  double multi_fit_mape = 0, multi_loo_mape = 0, multi_loo_bias = 0;
  std::vector<ScaleBucket> buckets;  // held-out errors of both sets by GPU count
};

StatusOr<JointFitResult> fit_joint(const std::vector<CalibrationRow>& single, const std::vector<MultiNodeRow>& multi,
                                   const ClusterSpec& start, const JointFitOptions& options = {});

// A cluster profile as YAML (scenarios/clusters format, the device by name), comment lines first.
std::string cluster_profile_to_yaml(const ClusterSpec& c, const std::string& comment = "");

}  // namespace eellm
