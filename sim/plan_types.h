// The planner's value types: one candidate of the search space, its metrics, the options of a
// search and its result (sim/plan.h runs the search; sim/plan_space.h enumerates the space). Plain
// value types, safe to copy across threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

// One point of the search space (what apply_candidate writes into a scenario).
struct PlanCandidate {
  int world_size = 1, tp = 1, pp = 1, dp = 1, vp = 1;
  int micro_batch_size = 1;
  ScheduleKind schedule = ScheduleKind::k1F1B;
  RecomputeGranularity recompute = RecomputeGranularity::kNone;
  bool sequence_parallel = false;
  bool distributed_optimizer = false;
  std::vector<int> layer_partition;  // empty → even split
  bool balanced_partition = false;   // layer_partition came from the cost-balanced split
  std::vector<int> exit_layer_nums;  // as in the scenario unless exits were moved
  bool pre_exit = false;
  bool exits_moved = false;
  int64_t index = 0;  // enumeration order (tie-breaker)
};

// A one-line label: "tp2 pp4 dp8 vp1 mbs2 ee-1f1b sel sp dopt part=[7,8,9,8] exits=pre[9,17]".
std::string to_string(const PlanCandidate& c);

// The base scenario with the candidate's layout (cluster resized to world_size GPUs, fill counts
// reset to their defaults). The result is what --emit writes.
Scenario apply_candidate(const Scenario& base, const PlanCandidate& c);

struct PlanMetrics {
  double estimated_time_s = 0;  // closed form (pre-filter)
  double iteration_time_s = 0;  // event simulator (0 when not simulated)
  double tokens_per_s = 0;
  double mfu = 0;
  double bubble_fraction = 0;
  double exit_overhead_fraction = 0;     // vs the same layout without exits (0 when not computed)
  double peak_memory_GiB = 0;            // max over stages (analytical, or simulated when simulated)
  std::vector<double> stage_memory_GiB;  // analytical peak per pipeline stage
  bool simulated = false;
  // Share of the m microbatches that train the whole backbone (sim num_backbone_microbatches / m):
  // < 1 only for ee-fill, whose fills are taken out of the batch as in EE-LLM's code.
  double backbone_fraction = 1.0;
  double time_s() const { return simulated ? iteration_time_s : estimated_time_s; }
  // Simulated time per backbone-equivalent batch: how plans are ranked, so that ee-fill is not
  // favoured for training the backbone on fewer samples (= iteration_time_s for other schedules).
  double ranking_time_s() const { return time_s() / backbone_fraction; }
};

struct PlanEntry {
  PlanCandidate candidate;
  PlanMetrics metrics;
};

// The one key plans are ranked by (CLI table, JSON, CSV and the GUI), named in their headers.
inline constexpr const char* kRankingKey =
    "simulated time per backbone batch (rank_s = iter_s / share of microbatches training the whole backbone; "
    "= iter_s except for ee-fill)";

// Systems that launch a plan: eellm's own executor (every schedule), EE-LLM (eellm convert
// --to-megatron: 1F1B/EE-1F1B, interleaved, EE bubble filling; even layer splits only) and Megatron-LM
// (as EE-LLM, without early exits or bubble filling).
enum class LaunchTarget { kEellm, kEELLM, kMegatron };
const char* to_string(LaunchTarget t);
StatusOr<LaunchTarget> parse_launch_target(const std::string& name);  // "eellm", "ee-llm", "megatron"
inline constexpr LaunchTarget kLaunchTargets[] = {LaunchTarget::kEellm, LaunchTarget::kEELLM, LaunchTarget::kMegatron};
// Why `t` cannot run a plan with this schedule, layer split and exits; "" when it can.
std::string launch_problem(LaunchTarget t, ScheduleKind schedule, bool uneven_partition, bool has_exits);
std::string launch_problem(LaunchTarget t, const PlanCandidate& c);

struct PruneCount {
  std::string reason;  // short key, e.g. "memory", "training.global_batch_size", "tp > gpus_per_node"
  int64_t count = 0;
  std::string example;  // the full message of the first candidate pruned for it
};

struct PlanOptions {
  int gpus = 0;      // the budget (required)
  int min_gpus = 0;  // also try budget/2, /4, … down to this (0 → only the budget)
  int top_k = 10;
  bool movable_exits = false;
  double memory_margin = 0.1;  // fraction of device memory kept free
  int simulate_top = 128;      // candidates the event simulator plays; < 0 → all survivors
  bool exit_overhead = true;   // simulate the ranked plans without exits too
  int threads = 0;             // 0 → hardware concurrency
  // The axes; empty → the defaults below (what the CLI searches).
  std::vector<int> tp_values;              // default: powers of two ≤ gpus_per_node
  std::vector<int> pp_values;              // default: 1..num_layers dividing world/tp
  std::vector<int> vp_values = {2, 4, 8};  // virtual stages of the interleaved schedule
  std::vector<int> micro_batch_values = {1, 2, 4, 8, 16};
  std::vector<ScheduleKind> schedules = {ScheduleKind::k1F1B, ScheduleKind::kInterleaved1F1B, ScheduleKind::kZBH1,
                                         ScheduleKind::kEEFill};
  std::vector<RecomputeGranularity> recompute = {RecomputeGranularity::kNone, RecomputeGranularity::kSelective,
                                                 RecomputeGranularity::kFull};
  bool search_sequence_parallel = true;
  bool search_distributed_optimizer = true;
  bool search_partition = true;          // add the balanced partition next to the even one
  bool partition_neighbourhood = false;  // also every split one layer away from the balanced one
  // Only plans these systems can all launch (empty → any); see launch_problem.
  std::vector<LaunchTarget> launchable_with;
  // A cancelled search returns the best plans found so far (PlanResult::interrupted set) instead of
  // the cancelled status: simulated ones when any ran, else the best closed-form estimates.
  bool partial_on_cancel = false;
  // Progress of a phase ("enumerate", "screen", "simulate"): done of total. Called from the calling thread.
  std::function<void(const char* phase, int64_t done, int64_t total)> progress;
  // Stop hook: polled while the space is enumerated (before each (world, tp, pp) step and each
  // balanced partition), by every planner thread before each block of screened candidates and
  // before each simulation; once it returns true plan() stops within one partition / one block / one
  // simulation per thread and returns the cancelled status (Status::is_cancelled). Must be
  // thread-safe and cheap (e.g. an atomic load).
  std::function<bool()> cancelled;
};

// A cancelled search returns StatusCode::kCancelled (message: the phase and how far it got, e.g.
// "the search was stopped by the caller during simulation (3 of 40 done)"); callers test the code,
// never the text.

struct PlanResult {
  int64_t candidates = 0;  // enumerated = screened
  int64_t estimated = 0;   // passed every constraint, timed by the closed form
  int64_t simulated = 0;   // played by the event simulator
  // The closed-form estimate's relative error |estimate / simulated − 1| over the simulated plans.
  double estimate_error_mean = 0, estimate_error_max = 0;
  // The spaces whose best candidates were simulated on their own, so that widening the search never
  // returns a worse plan than a narrower search (e.g. "fixed exits", "64 GPUs"); the full space last.
  std::vector<std::string> spaces;
  // Non-empty when the caller stopped the search (partial_on_cancel): where it stopped; `ranked`
  // holds the best found so far (estimates only when nothing was simulated yet).
  std::string interrupted;
  std::vector<PruneCount> pruned;             // by count, descending
  std::vector<PlanEntry> ranked;              // top_k by kRankingKey
  std::vector<PlanEntry> pareto;              // simulated plans not dominated in (ranking time, peak memory, GPUs)
  std::vector<PlanEntry> feasible;            // every simulated plan that fits (for the Pareto plot)
  std::vector<LaunchTarget> launchable_with;  // the filter the search ran with
  double screen_seconds = 0, simulate_seconds = 0;
  double memory_budget_GiB = 0;  // device memory × (1 − margin)
  std::string device;
};

}  // namespace eellm
