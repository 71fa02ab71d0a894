// pareto_front: the planner's front over (ranking time, peak memory, GPUs), on hand-made plans.
#include <gtest/gtest.h>

#include <vector>

#include "sim/plan.h"

namespace eellm {
namespace {

// A simulated plan of `gpus` GPUs taking `time_s` per backbone batch with `mem_GiB` peak memory;
// `index` names it.
PlanEntry point(int64_t index, double time_s, double mem_GiB, int gpus, double backbone_fraction = 1.0) {
  PlanEntry e;
  e.candidate.index = index;
  e.candidate.world_size = gpus;
  e.metrics.simulated = true;
  e.metrics.iteration_time_s = time_s * backbone_fraction;
  e.metrics.backbone_fraction = backbone_fraction;
  e.metrics.peak_memory_GiB = mem_GiB;
  return e;
}

std::vector<int64_t> indices(const std::vector<PlanEntry>& plans) {
  std::vector<int64_t> out;
  for (const PlanEntry& e : plans) out.push_back(e.candidate.index);
  return out;
}

TEST(ParetoFront, KeepsTheTradeOffsAndDropsDominatedPlansInInputOrder) {
  const std::vector<PlanEntry> plans = {
      point(0, 2.0, 40, 16),  // fastest at 16 GPUs, but the most memory
      point(1, 3.0, 20, 16),  // slower, half the memory: a trade-off
      point(2, 3.5, 25, 16),  // dominated by 1 (slower and more memory)
      point(3, 4.0, 30, 8),   // slowest, but on fewer GPUs: a trade-off
      point(4, 4.5, 30, 8),   // dominated by 3 (equal memory and GPUs, slower)
      point(5, 1.5, 15, 32),  // faster and smaller on more GPUs: kept
  };
  EXPECT_EQ(indices(pareto_front(plans)), (std::vector<int64_t>{0, 1, 3, 5}));
}

TEST(ParetoFront, EqualPlansAllStayAndOneBetterAxisSuffices) {
  // 0 and 1 tie on every axis: neither is better in one, so both stay. 2 equals them but uses one
  // more GPU, so each of them dominates it.
  const std::vector<PlanEntry> plans = {point(0, 2.0, 10, 8), point(1, 2.0, 10, 8), point(2, 2.0, 10, 9)};
  EXPECT_EQ(indices(pareto_front(plans)), (std::vector<int64_t>{0, 1}));
}

TEST(ParetoFront, RanksByTimePerBackboneBatch) {
  // Plan 0 (ee-fill) takes 1.8 s per iteration but trains the backbone on 60 % of the batch: 3 s per
  // backbone batch, slower than plan 1 at the same memory and GPUs, so it is dominated.
  const std::vector<PlanEntry> plans = {point(0, 3.0, 20, 8, 0.6), point(1, 2.5, 20, 8)};
  ASSERT_DOUBLE_EQ(plans[0].metrics.iteration_time_s, 1.8);
  EXPECT_EQ(indices(pareto_front(plans)), (std::vector<int64_t>{1}));
}

TEST(ParetoFront, SinglePlanAndEmptyInput) {
  EXPECT_EQ(indices(pareto_front({point(7, 1.0, 1, 1)})), (std::vector<int64_t>{7}));
  EXPECT_TRUE(pareto_front({}).empty());
}

}  // namespace
}  // namespace eellm
