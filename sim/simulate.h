// simulate(scenario): the one entry point the CLI, the planner and the GUI use to predict a
// training iteration. Derives the layout, builds the schedule, fills the engine's costs from the
// CostModel, plays the schedule, and summarises: iteration time, throughput, MFU, bubble with its
// attribution, per-stage busy time and peak memory, the critical path, and the overhead of the
// exits (the same scenario without exits, simulated in the same call).
// Thread-safety: pure function of its arguments; safe to call concurrently.
#pragma once

#include <string>
#include <vector>

#include "model/cost_model.h"
#include "model/layout.h"
#include "model/scenario.h"
#include "model/status.h"
#include "sim/engine.h"
#include "sim/graph.h"
#include "sim/memory.h"
#include "sim/schedule.h"
#include "sim/sim_costs.h"
#include "sim/timeline.h"

namespace eellm {

struct StageSummary {
  int stage = 0;
  double busy_s = 0;       // compute stream busy
  double exit_busy_s = 0;  // of which exit heads
  double idle_s = 0;
  double bubble_dependency_s = 0, bubble_exposed_comm_s = 0, bubble_imbalance_s = 0, bubble_exit_s = 0;
  double peak_memory_GiB = 0;
  double peak_memory_time_s = 0;
  double static_memory_GiB = 0;
  int max_microbatches_in_flight = 0;
};

struct SimulationSummary {
  std::string scenario;
  std::string schedule;
  int tp = 1, pp = 1, dp = 1, vp = 1, world_size = 1, num_microbatches = 1;
  int num_fill_warmup = 0, num_fill_cooldown = 0;
  int num_backbone_microbatches = 1;  // per replica, trained through every stage (num_backbone_microbatches())
  double iteration_time_s = 0;
  // Backbone tokens/s: num_backbone_microbatches · micro_batch_size · seq_length · dp / time, so
  // schedules that train the backbone on fewer samples (ee-fill) compare fairly with 1F1B.
  double tokens_per_s = 0;
  // Tokens/s of the rest of the m microbatches (ee-fill: warm-up fills and truncated cool-down
  // microbatches, which train only the exits and/or later stages); 0 for the other schedules.
  double fill_tokens_per_s = 0;
  // Model FLOPs of the work the schedule runs (backbone and exits, no recompute; fill steps and
  // EE-Tuning's exit-only backward counted as run) / time / GPUs.
  double model_tflops_per_gpu = 0;
  double mfu = 0;              // model_tflops_per_gpu / device peak
  double bubble_fraction = 0;  // idle compute time / (pp · iteration time)
  // Shares of the bubble (fractions of pp · iteration time; they sum to bubble_fraction).
  double bubble_dependency_fraction = 0, bubble_exposed_comm_fraction = 0, bubble_imbalance_fraction = 0,
         bubble_exit_fraction = 0;
  double iteration_time_no_exits_s = 0;  // same scenario without exits (0 when not applicable)
  // Time per backbone token / that of the run without exits − 1 (= time / time without exits − 1
  // when both train the backbone on all m microbatches).
  double exit_overhead_fraction = 0;
  double peak_memory_GiB = 0;    // max over stages
  double device_memory_GiB = 0;  // of one GPU (cluster.device.memory_GiB): a stage above it does not fit
  std::vector<StageSummary> stages;
  std::string critical_path;
  int64_t engine_events = 0;
};

struct SimulationResult {
  Scenario scenario;
  Layout layout;
  Schedule schedule;
  SimCosts costs;
  EngineResult engine;  // engine.timeline includes memory samples
  MemoryTimeline memory;
  std::vector<BubbleAttribution> bubbles;
  SimulationSummary summary;
};

struct SimulateOptions {
  bool record_timeline = true;  // false: times and summary only (planner sweeps)
  bool compare_without_exits = true;
};

StatusOr<SimulationResult> simulate(const Scenario& scenario, const SimulateOptions& options = {});

// The baseline an exit overhead is measured against: the same scenario without exits, EE schedules
// replaced by 1F1B and no fill bubbles (the planner and simulate() compare against it).
Scenario scenario_without_exits(const Scenario& scenario);

// The memory parameters of a scenario, from the cost model (the engine's costs: sim/sim_costs.h).
MemoryParams memory_params_from_model(const CostModel& model);

// "" when every stage's peak fits the device memory, else e.g. "does not fit: stage 0 needs 135.1 GiB,
// 60.6 GiB more than the 74.5 GiB of a GPU (stage 1 too)". What simulate, sweep, compare and the
// GUI show for a plan over memory.
std::string memory_overflow(const SimulationSummary& s);
// The worst stage's excess over the device memory in GiB (≤ 0 when it fits).
double memory_excess_GiB(const SimulationSummary& s);

// Renderings of the summary: human text table, JSON (keys with units), CSV (one header + one row
// per stage, iteration-level columns repeated).
std::string summary_to_text(const SimulationSummary& s);
std::string summary_to_json(const SimulationSummary& s);
std::string summary_to_csv(const SimulationSummary& s);

}  // namespace eellm
