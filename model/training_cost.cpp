// The training cost model of training_cost.h (formulas there and in docs/cost.md).
#include "model/training_cost.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "model/cost_model.h"

namespace eellm {
namespace {

constexpr double kJoulesPerKWh = 3.6e6;

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Iterations of the budget: train_tokens over the tokens of one iteration, else train_iters.
StatusOr<double> budget_iterations(const TrainingCostInput& in) {
  if (in.train_tokens > 0) {
    if (!(in.tokens_per_iteration > 0))
      return Status::invalid_argument("training cost: tokens per iteration (" + num(in.tokens_per_iteration) +
                                      ") must be positive to turn training.train_tokens into iterations");
    return std::ceil(in.train_tokens / in.tokens_per_iteration);
  }
  if (in.train_iters <= 0)
    return Status::invalid_argument("training cost: no budget: training.train_tokens and training.train_iters are 0");
  return static_cast<double>(in.train_iters);
}

// Checkpoint interval, checkpoints, interruptions, lost work, restarts and the wall time.
Status add_failures(const TrainingCostInput& in, TrainingCost& c) {
  const CostSpec& k = in.cost;
  const double write_GBps = k.checkpoint_write_GBps_per_node * in.nodes;
  c.checkpoint_write_s = write_GBps > 0 ? c.checkpoint_bytes / (write_GBps * 1e9) : 0;
  c.job_mtbf_s = k.node_mtbf_hours > 0 ? k.node_mtbf_hours * 3600.0 / in.nodes : 0;
  if (c.job_mtbf_s > 0 && c.checkpoint_write_s > 0) {
    c.checkpoint_interval_s = young_daly_interval_s(c.checkpoint_write_s, c.job_mtbf_s);
  } else if (c.checkpoint_write_s > 0) {
    c.checkpoint_interval_s = c.useful_s;  // no failures: one checkpoint at the end
  } else if (c.job_mtbf_s > 0) {
    return Status::invalid_argument(
        "training cost: cluster.cost.node_mtbf_hours is set but checkpoint_write_GBps_per_node is 0: "
        "without checkpoints a failure loses the whole run");
  }
  c.checkpoints = c.checkpoint_interval_s > 0 ? c.useful_s / c.checkpoint_interval_s : 0;
  c.checkpoint_overhead_s = c.checkpoints * c.checkpoint_write_s;
  const double per_failure_s = k.restart_s + c.checkpoint_interval_s / 2;
  double denom = 1;
  if (c.job_mtbf_s > 0) {
    denom = 1 - per_failure_s / c.job_mtbf_s;
    if (!(denom > 0))
      return Status::invalid_argument("training cost: the job's MTBF (" + num(c.job_mtbf_s) +
                                      " s = cluster.cost.node_mtbf_hours / " + std::to_string(in.nodes) +
                                      " nodes) is shorter than restart + half a checkpoint interval (" +
                                      num(per_failure_s) + " s): the job never progresses");
  }
  c.wall_s = (c.useful_s + c.checkpoint_overhead_s) / denom;
  c.interruptions = c.job_mtbf_s > 0 ? c.wall_s / c.job_mtbf_s : 0;
  c.lost_work_s = c.interruptions * c.checkpoint_interval_s / 2;
  c.restart_total_s = c.interruptions * k.restart_s;
  return Status::ok();
}

void add_energy(const TrainingCostInput& in, TrainingCost& c) {
  double busy_J = 0, idle_J = 0;  // one iteration, all GPUs
  for (const StageLoad& s : in.stages) {
    busy_J += s.gpus * in.power_busy_W * s.busy_s;
    idle_J += s.gpus * in.power_idle_W * s.idle_s;
  }
  // Lost work is re-run at the same busy/idle mix; checkpoint writes and restarts leave GPUs idle.
  const double rerun = c.useful_s > 0 ? (c.useful_s + c.lost_work_s) / c.useful_s : 1;
  c.energy_gpu_busy_kWh = busy_J * c.iterations * rerun / kJoulesPerKWh;
  c.energy_gpu_idle_kWh =
      (idle_J * c.iterations * rerun + in.gpus * in.power_idle_W * (c.checkpoint_overhead_s + c.restart_total_s)) /
      kJoulesPerKWh;
  c.energy_node_kWh = in.nodes * in.cost.node_overhead_W * c.wall_s / kJoulesPerKWh;
  c.energy_kWh = in.cost.pue * (c.energy_gpu_busy_kWh + c.energy_gpu_idle_kWh + c.energy_node_kWh);
}

}  // namespace

double young_daly_interval_s(double checkpoint_write_s, double job_mtbf_s) {
  return std::sqrt(2.0 * checkpoint_write_s * job_mtbf_s);
}

StatusOr<TrainingCost> training_cost(const TrainingCostInput& in) {
  if (!(in.iteration_time_s > 0))
    return Status::invalid_argument("training cost: iteration time (" + num(in.iteration_time_s) +
                                    " s) must be positive");
  if (in.gpus <= 0 || in.nodes <= 0)
    return Status::invalid_argument("training cost: GPUs (" + std::to_string(in.gpus) + ") and nodes (" +
                                    std::to_string(in.nodes) + ") must be positive");
  TrainingCost c;
  EELLM_ASSIGN_OR_RETURN(c.iterations, budget_iterations(in));
  c.useful_s = c.iterations * in.iteration_time_s;
  c.checkpoint_bytes = in.checkpoint_bytes;
  EELLM_RETURN_IF_ERROR(add_failures(in, c));
  c.goodput = c.useful_s / c.wall_s;
  c.gpu_hours = in.gpus * c.wall_s / 3600.0;
  c.cost_usd = c.gpu_hours * in.cost.price_per_gpu_hour_usd;
  add_energy(in, c);
  return c;
}

double checkpoint_bytes(const CostModel& model) {
  const Layout& L = model.layout();
  const bool dist = model.scenario().parallel.use_distributed_optimizer;
  double bytes = 0;
  for (int stage = 0; stage < L.pp; ++stage) {
    const StageMemory m = model.stage_memory(stage);
    const double optimizer = static_cast<double>(m.optimizer_bytes) * (dist ? L.dp : 1);
    bytes += (static_cast<double>(m.weights_bytes) + optimizer) * L.tp;
  }
  return bytes;
}

InferenceCost inference_cost(const ClusterSpec& cluster, int gpus, double tokens_per_s) {
  InferenceCost c;
  if (!(tokens_per_s > 0)) return c;
  const double seconds = 1e6 / tokens_per_s;
  const CostSpec& k = cluster.cost;
  c.usd_per_million_tokens = gpus * k.price_per_gpu_hour_usd * seconds / 3600.0;
  // Decoding keeps the GPUs busy; the node overhead is shared by the GPUs of a node.
  const double node_share = cluster.gpus_per_node > 0 ? static_cast<double>(gpus) / cluster.gpus_per_node : 1;
  const double watts = gpus * cluster.device.power_busy_W + node_share * k.node_overhead_W;
  c.kWh_per_million_tokens = k.pue * watts * seconds / kJoulesPerKWh;
  return c;
}

}  // namespace eellm
