// What-if cost of a training run: time to train, GPU-hours, money, energy, and the goodput that
// failures and checkpoints take (docs/cost.md). A pure function of a few figures per iteration
// (iteration time, busy and idle time per pipeline stage) and the scenario's cost inputs
// (cluster.cost, the device's power, training.train_tokens / train_iters); the simulator, the
// planner and the GUI fill the input (sim/cost_report.h), tests fill it by hand.
//
// Model (expected values, no rounding):
//   iterations  = ceil(train_tokens / tokens per iteration), or train_iters when train_tokens = 0
//   useful      = iterations × iteration time
//   δ           = checkpoint bytes / (checkpoint write bandwidth per node × nodes)
//   M           = node MTBF / nodes (the job fails when any of its nodes does)
//   τ           = sqrt(2 δ M) (Young/Daly), or useful (one checkpoint) without failures
//   checkpoints = useful / τ, each costing δ
//   wall        = useful + checkpoints·δ + N·(restart + τ/2), N = wall / M interruptions
//               = (useful + checkpoints·δ) / (1 − (restart + τ/2) / M)
//   goodput     = useful / wall; GPU-hours = GPUs × wall; cost = GPU-hours × price
//   energy      = PUE × [ (useful + lost)/useful × iterations × Σ_stage GPUs·(P_busy·busy + P_idle·idle)
//                 + GPUs·P_idle·(checkpoint writes + restarts) + nodes·P_node·wall ]
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

class CostModel;

// One pipeline stage's GPUs and the busy / idle seconds of each of them in one iteration.
struct StageLoad {
  int gpus = 1;
  double busy_s = 0;
  double idle_s = 0;
};

struct TrainingCostInput {
  double iteration_time_s = 0;
  double tokens_per_iteration = 0;  // backbone tokens (used with train_tokens)
  double train_tokens = 0;          // 0 → train_iters
  int64_t train_iters = 0;
  std::vector<StageLoad> stages;
  int gpus = 1;  // GPUs the job holds (billed)
  int nodes = 1;
  double checkpoint_bytes = 0;  // weights + optimizer state of the whole model
  double power_busy_W = 0, power_idle_W = 0;
  CostSpec cost;
};

struct TrainingCost {
  double iterations = 0;
  double useful_s = 0;  // iterations × iteration time
  double checkpoint_bytes = 0;
  double checkpoint_write_s = 0;     // δ
  double job_mtbf_s = 0;             // M; 0 when failures are not modelled
  double checkpoint_interval_s = 0;  // τ (Young/Daly)
  double checkpoints = 0;
  double checkpoint_overhead_s = 0;  // checkpoints × δ
  double interruptions = 0;          // N
  double lost_work_s = 0;            // N × τ/2
  double restart_total_s = 0;        // N × restart
  double wall_s = 0;
  double goodput = 1;  // useful / wall
  double gpu_hours = 0;
  double cost_usd = 0;
  double energy_kWh = 0;
  double energy_gpu_busy_kWh = 0, energy_gpu_idle_kWh = 0, energy_node_kWh = 0;  // before PUE
};

// Young/Daly optimal checkpoint interval sqrt(2 × write time × job MTBF), seconds.
double young_daly_interval_s(double checkpoint_write_s, double job_mtbf_s);

// The cost of the run. Fails (naming the figure) when the input is not usable: no iteration time,
// no budget, or a job MTBF shorter than restart + τ/2 (the job never progresses).
StatusOr<TrainingCost> training_cost(const TrainingCostInput& in);

// Bytes a checkpoint holds: model weights in the compute dtype plus the optimizer state (fp32
// master weights and Adam moments), over all stages and tensor-parallel shards, one replica.
double checkpoint_bytes(const CostModel& model);

// Inference cost per million generated tokens on `gpus` GPUs decoding at tokens_per_s.
struct InferenceCost {
  double usd_per_million_tokens = 0;
  double kWh_per_million_tokens = 0;
};
InferenceCost inference_cost(const ClusterSpec& cluster, int gpus, double tokens_per_s);

}  // namespace eellm
