// Fidelity harness (`eellm fidelity`): runs small scenario plans with the real executor under
// mpirun (exec/train/runtime.h, one process per rank), simulates the same plans with a calibrated
// DeviceProfile (sim/simulate.h), and reports iteration-time error per plan and the mean absolute
// percentage error (MAPE), plus the error per op kind (sim/timeline.h compare()).
//
// Fitting vs judging: every plan is marked `for_fit` or not. The residual free parameters the
// micro-benchmarks cannot see — per_layer_overhead_us (framework work per layer and microbatch),
// per_exit_overhead_us (the same per exit head), the share of the calibrated throughput a rank
// really gets (compute_share) and, when ranks × threads exceed the cores (4 ranks on a 2-core
// machine time-share them), oversubscribed_efficiency — are DeviceProfile fields, fitted on the
// fitting plans only; the MAPE that counts is the one over the judged plans, which never enter the
// fit. Predictions read nothing but the profile, so `eellm simulate` with the fitted profile
// (--fitted-out) predicts what validate predicts.
//
// EE fill counts follow from the backward/forward time ratio of the scenario's cost model
// (make_schedule): validate runs every plan with the given profile applied (with_device), so the
// executor builds the lists the simulator plays on that profile.
//
// Measured iteration time: the median over the iterations after the first (warm-up) of world
// rank 0's wall time per iteration (the executor's metrics file), excluding the last, traced
// iteration. Thread-safety: free functions; run_plan spawns processes and writes under `workdir`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"
#include "sim/timeline.h"

namespace eellm::fidelity {

struct FidelityPlan {
  std::string name;
  bool for_fit = false;  // used to fit the residual parameters; never judged
  Scenario scenario;
  int np() const { return scenario.parallel.world_size; }
};

// The default set, built from scenarios/tiny-ee.yaml shrunk to 128 tokens × 4 sequences per
// microbatch (fitting plans: 1), for the requested rank counts (2 and/or 4): PP 2/4, DP 2, PP2×DP2; schedules 1F1B,
// GPipe, EE-1F1B, EE-fill, ZB-H1, no-pipelining; with and without exits. Fitting plans: 1F1B and
// no-pipelining/PP2×DP2 (see the .cpp); the rest are judged.
StatusOr<std::vector<FidelityPlan>> default_fidelity_plans(const std::vector<int>& nps);
// Every *.yaml of `dir`; files whose name starts with "fit-" are fitting plans.
StatusOr<std::vector<FidelityPlan>> load_fidelity_plans(const std::string& dir, const std::vector<int>& nps);

// One plan's outcome.
struct PlanMeasurement {
  std::string name;
  int np = 1;
  bool for_fit = false;
  double measured_s = 0, predicted_s = 0;
  Timeline measured, predicted;  // for per-op errors (may be empty)
};

// Runs `plan` with `mpirun -np N <exe> fidelity --worker ...` for `steps` iterations in `workdir`,
// filling name/np/for_fit/measured_s/measured. `mpirun` is the launcher command with its flags.
StatusOr<PlanMeasurement> run_plan(const FidelityPlan& plan, const std::string& exe, const std::string& mpirun,
                                   int steps, const std::string& workdir);
// The measurement run_plan left in `workdir` (metrics.jsonl, measured.json), read back without
// running (re-fit or re-predict an earlier run: `eellm fidelity --reuse`).
StatusOr<PlanMeasurement> load_plan_measurement(const FidelityPlan& plan, const std::string& workdir);
// Reads world rank 0's per-iteration seconds from the executor's metrics file (JSON lines).
StatusOr<std::vector<double>> read_iteration_seconds(const std::string& metrics_path);
// The measured iteration time from per-iteration seconds: median of [1, n−1) (n ≥ 3), else the
// last value.
double measured_iteration_seconds(const std::vector<double>& seconds);

// Residual parameters fitted on the fitting plans (the DeviceProfile fields of the same names).
struct ResidualFit {
  double per_layer_overhead_us = 0;
  double per_exit_overhead_us = 0;
  double compute_share = 1;
  double oversubscribed_efficiency = 1;
  double fit_mape = 0;              // percent, over the fitting plans
  std::vector<std::string> fitted;  // names of the parameters the fitting plans could identify
};
// `device` with the residual fields set from `fit`.
DeviceProfile apply_residuals(const DeviceProfile& device, const ResidualFit& fit);
// The plan's scenario on `device` (cluster intra_node link = the device's nvlink_* figures).
Scenario with_device(const Scenario& scenario, const DeviceProfile& device);
// Simulated iteration seconds, and when `timeline` is non-null the engine's timeline of the
// iteration (the event contract of sim/timeline.h, as the executor traces it), for the per-op comparison.
StatusOr<double> predict(const Scenario& scenario, Timeline* timeline = nullptr);
// Fits ResidualFit on the measurements marked for_fit (others ignored), minimising the mean
// squared log error with Nelder–Mead. Parameters the fitting plans cannot identify (no plan with
// exits, none oversubscribed) keep `device`'s values.
StatusOr<ResidualFit> fit_residuals(const std::vector<FidelityPlan>& plans,
                                    const std::vector<PlanMeasurement>& measured, const DeviceProfile& device);

// Per-op comparison, like for like (docs/accuracy.md, "What each per-op row compares"), of two raw
// timelines: both interpreters record the same events (sim/timeline.h's contract). Rows:
//  - compute kinds, ALLREDUCE_DP, OPTIMIZER_STEP: mean duration per op (as sim/timeline.h compare());
//  - SEND_ACT / SEND_GRAD: the sender's time from posting the send to its local completion;
//  - RECV_ACT / RECV_GRAD, part "wait": how long the receiving rank blocks until the data is there;
//  - ALLREDUCE_EMBEDDING, part "transfer": per collective (the k-th on each member rank), the
//    shortest member's time in the call — the last member to arrive waits for no one — and part
//    "wait": each member's time in the call beyond that (waiting for the group's slowest rank).
//    Built from each rank's own durations only, so clock offsets between ranks do not enter.
struct OpRow {
  InstrKind op = InstrKind::kForward;
  bool exit_part = false;
  std::string part;  // "", "wait" or "transfer"
  int count_predicted = 0, count_measured = 0;
  double mean_predicted_s = 0, mean_measured_s = 0;
  double relative_error = 0;  // (predicted − measured) / measured; 0 and meaningless unless comparable()
  std::string name() const;   // "FWD", "EXIT-BWD", "RECV_ACT wait", "ALLREDUCE_EMBEDDING transfer"
  // Both sides recorded the row (the executor does not time exit heads apart: EXIT-* rows are
  // predicted only and reported as not measured, never as 0 %).
  bool comparable() const { return count_predicted > 0 && count_measured > 0; }
};
// Rows for the op kinds present in either timeline, in (op, exit_part, part) order.
std::vector<OpRow> compare_ops(const Timeline& predicted, const Timeline& measured);

// Error summary.
struct OpKindFidelity {
  InstrKind op = InstrKind::kForward;
  bool exit_part = false;
  std::string part;  // OpRow::part
  int plans = 0;
  double mape = 0;         // mean over plans of |mean predicted − mean measured| / measured, percent
  double mean_signed = 0;  // percent; > 0: the simulator over-predicts
};
struct FidelityReport {
  std::vector<PlanMeasurement> plans;
  double fit_mape = 0, judged_mape = 0;  // percent
  std::map<int, double> judged_mape_by_np;
  std::vector<OpKindFidelity> per_op;     // over the judged plans
  std::vector<std::string> not_measured;  // rows predicted but never measured (OpRow::comparable)
  std::vector<std::string> not_executed;  // op kinds predicted but ~0 when measured (ZB-H1's W)
  std::string to_text() const;
};
FidelityReport summarize_fidelity(const std::vector<PlanMeasurement>& plans);

}  // namespace eellm::fidelity
