// Internal to the planner (sim/plan.cpp, sim/plan_space.cpp): the compact candidate form and the
// enumeration of the search space — TP/PP/DP/VP/micro-batch/schedule/recompute/SP/distributed
// optimizer, even and cost-balanced layer partitions (plus their neighbourhood), and exit placements
// snapped to stage boundaries. Not a public API; see plan.h. Thread-safety: enumerate() is a pure
// function; Tables is filled by it and only read afterwards.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"
#include "sim/plan_types.h"

namespace eellm::plan_detail {

// Compact form of a candidate: partitions and exit placements live in shared tables, so a space of
// millions of candidates costs a few dozen bytes each.
struct Cand {
  int32_t world = 1;
  int32_t tp = 1, pp = 1, vp = 1, mbs = 1;  // 32-bit: PP reaches 2^20 (int16 wrapped to 0: SIGFPE)
  ScheduleKind schedule = ScheduleKind::k1F1B;
  RecomputeGranularity recompute = RecomputeGranularity::kNone;
  bool sp = false, dopt = false;
  bool neighbour = false;  // the partition is one of the balanced split's neighbourhood (not even/balanced)
  int32_t partition = 0;   // index into Tables::partitions (0 = even)
  int32_t exits = 0;       // index into Tables::exits (0 = as given)
};

struct ExitConfig {
  std::vector<int> nums;
  bool pre = false;
};

struct Tables {
  std::vector<std::vector<int>> partitions{{}};  // [0] = even split
  std::vector<ExitConfig> exits;                 // [0] = the scenario's
  std::map<std::vector<int>, int32_t> partition_ids;
  std::map<std::pair<std::vector<int>, bool>, int32_t> exit_ids;
  int32_t partition_id(const std::vector<int>& p) {
    auto [it, added] = partition_ids.emplace(p, static_cast<int32_t>(partitions.size()));
    if (added) partitions.push_back(p);
    return it->second;
  }
  int32_t exit_id(const ExitConfig& e) {
    auto [it, added] = exit_ids.emplace(std::make_pair(e.nums, e.pre), static_cast<int32_t>(exits.size()));
    if (added) exits.push_back(e);
    return it->second;
  }
};

// Enumerates the space in a fixed order, resolving partitions and exit variants into `tables`.
// Fails on an impossible budget (gpus ≤ 0, or several nodes but not whole ones). Reports progress
// ("enumerate": (world, tp, pp) steps done of all) and polls o.cancelled before each step and each
// balanced partition: a cancel returns the cancelled status within one partition.
StatusOr<std::vector<Cand>> enumerate(const Scenario& base, const PlanOptions& o, Tables& tables);
// The status of a search the caller stopped: "the search was stopped by the caller during <phase>
// (<done> of <total> done)".
Status cancelled_status(const char* phase, int64_t done, int64_t total);
PlanCandidate materialize(const Cand& c, const Tables& t, int64_t index);
// Writes a candidate into a scenario in place (the screening loop reuses one scenario per thread).
void write_candidate(Scenario& s, const Cand& c, const Tables& t, int gpus_per_node);

}  // namespace eellm::plan_detail
