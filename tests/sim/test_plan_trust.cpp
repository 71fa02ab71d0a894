// Planner results that never mislead: a wider search is never worse than a narrower one it
// contains, the Pareto front spans GPU counts, launchability filters and marks, and a stopped search
// returns the best plans found so far.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "model/megatron.h"
#include "model/scenario_io.h"
#include "sim/plan.h"
#include "tests/sim/plan_test_util.h"

namespace eellm {
namespace {

using plan_testing::small_1p3b;

// A space big enough that only part of it is simulated (simulate_top 6 of dozens).
PlanOptions narrow_budget(int gpus) {
  PlanOptions o = plan_testing::small_space(gpus);
  o.simulate_top = 6;
  o.top_k = 3;
  return o;
}

double best_of(const Scenario& base, const PlanOptions& o) {
  auto r = plan(base, o);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? r->ranked.front().metrics.ranking_time_s() : 1e30;
}

TEST(PlanTrust, AWiderSearchIsNeverWorse) {
  const Scenario base = small_1p3b();
  const PlanOptions plain = narrow_budget(16);
  PlanOptions movable = plain, neighbourhood = plain, both = plain;
  movable.movable_exits = true;
  neighbourhood.partition_neighbourhood = true;
  both.movable_exits = both.partition_neighbourhood = true;
  const double t_plain = best_of(base, plain), t_movable = best_of(base, movable);
  const double t_neigh = best_of(base, neighbourhood), t_both = best_of(base, both);
  EXPECT_LE(t_movable, t_plain);
  EXPECT_LE(t_neigh, t_plain);
  EXPECT_LE(t_both, t_movable);
  EXPECT_LE(t_both, t_neigh);
  auto r = plan(base, both);
  ASSERT_TRUE(r.is_ok());
  // fixed exits ×{no neighbourhood, neighbourhood}, movable without neighbourhood, then the full space.
  EXPECT_EQ(r->spaces.size(), 4u);
  EXPECT_EQ(r->spaces.back(), "the full space");
  EXPECT_GE(r->simulated, 6);  // at least the full space's top 6; more when a narrower space's best differ
  EXPECT_GT(r->estimate_error_max, 0.0);
  EXPECT_LE(r->estimate_error_mean, r->estimate_error_max);
}

TEST(PlanTrust, AWiderGpuRangeIsNeverWorseAtAnyGpuCountAndTheFrontSpansThem) {
  const Scenario base = small_1p3b();
  PlanOptions range = narrow_budget(16);
  range.min_gpus = 4;
  auto r = plan(base, range);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  for (int gpus : {4, 8, 16}) {
    double best_in_range = 1e30;
    for (const PlanEntry& e : r->feasible)
      if (e.candidate.world_size == gpus) best_in_range = std::min(best_in_range, e.metrics.ranking_time_s());
    EXPECT_LE(best_in_range, best_of(base, narrow_budget(gpus))) << gpus << " GPUs";
  }
  std::set<int> front_gpus;
  for (const PlanEntry& e : r->pareto) front_gpus.insert(e.candidate.world_size);
  EXPECT_EQ(front_gpus, (std::set<int>{4, 8, 16}));  // fewer GPUs are slower but a trade-off
  const std::string svg = plan_pareto_svg(*r, base.name);
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find(">16</text>"), std::string::npos);
  EXPECT_NE(svg.find(">4</text>"), std::string::npos);
}

TEST(PlanTrust, LaunchProblemsFollowTheConverter) {
  EXPECT_EQ(launch_problem(LaunchTarget::kEellm, ScheduleKind::kZBH1, true, true), "");
  EXPECT_EQ(launch_problem(LaunchTarget::kEELLM, ScheduleKind::kEE1F1B, false, true), "");
  EXPECT_EQ(launch_problem(LaunchTarget::kEELLM, ScheduleKind::kEEFill, false, true), "");
  EXPECT_EQ(launch_problem(LaunchTarget::kEELLM, ScheduleKind::kZBH1, false, true), "no zb-h1 schedule");
  EXPECT_NE(launch_problem(LaunchTarget::kEELLM, ScheduleKind::kInterleaved1F1B, false, true), "");
  EXPECT_EQ(launch_problem(LaunchTarget::kEELLM, ScheduleKind::kInterleaved1F1B, false, false), "");
  EXPECT_NE(launch_problem(LaunchTarget::kEELLM, ScheduleKind::kEE1F1B, true, true), "");
  EXPECT_EQ(launch_problem(LaunchTarget::kMegatron, ScheduleKind::k1F1B, false, true),
            "Megatron-LM has no early exits");
  EXPECT_EQ(launch_problem(LaunchTarget::kMegatron, ScheduleKind::k1F1B, false, false), "");
  // What the converter warns about for a ZB-H1 plan is what launch_problem refuses.
  Scenario zb = small_1p3b();
  zb.parallel.schedule = ScheduleKind::kZBH1;
  bool warned = false;
  for (const std::string& w : scenario_to_megatron(zb).warnings) warned |= w.find("zb-h1") != std::string::npos;
  EXPECT_TRUE(warned);
  EXPECT_FALSE(parse_launch_target("deepspeed").is_ok());
  EXPECT_EQ(*parse_launch_target("ee-llm"), LaunchTarget::kEELLM);
}

TEST(PlanTrust, LaunchableWithKeepsOnlyPlansTheTargetRuns) {
  const Scenario base = small_1p3b();
  PlanOptions o = narrow_budget(16);
  o.launchable_with = {LaunchTarget::kEELLM};
  auto r = plan(base, o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  for (const std::vector<PlanEntry>* set : {&r->ranked, &r->pareto, &r->feasible})
    for (const PlanEntry& e : *set)
      EXPECT_EQ(launch_problem(LaunchTarget::kEELLM, e.candidate), "") << to_string(e.candidate);
  bool pruned = false;
  for (const PruneCount& p : r->pruned) pruned |= p.reason == "not launchable with ee-llm" && p.count > 0;
  EXPECT_TRUE(pruned);
  EXPECT_NE(plan_to_text(*r).find("only plans launchable with ee-llm"), std::string::npos);
}

TEST(PlanTrust, ASearchStoppedDuringSimulationReturnsTheBestSoFar) {
  const Scenario base = small_1p3b();
  PlanOptions o = narrow_budget(16);
  o.threads = 1;
  o.partial_on_cancel = true;
  std::atomic<int> sims{0};
  o.progress = [&](const char* phase, int64_t done, int64_t) {
    if (std::string(phase) == "simulate" && done > 0) sims = 1;
  };
  o.cancelled = [&] { return sims.load() > 0; };
  auto r = plan(base, o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_NE(r->interrupted.find("simulation"), std::string::npos) << r->interrupted;
  ASSERT_FALSE(r->ranked.empty());
  EXPECT_TRUE(r->ranked.front().metrics.simulated);
  EXPECT_NE(plan_to_text(*r).find("INTERRUPTED"), std::string::npos);
  // Without partial_on_cancel the same stop is the cancelled status.
  sims = 0;
  o.partial_on_cancel = false;
  auto c = plan(base, o);
  ASSERT_FALSE(c.is_ok());
  EXPECT_TRUE(c.status().is_cancelled());
}

TEST(PlanTrust, TheRankingKeyIsNamedAndSortsEveryRow) {
  auto r = plan(small_1p3b(), narrow_budget(16));
  ASSERT_TRUE(r.is_ok());
  for (size_t i = 1; i < r->ranked.size(); ++i)
    EXPECT_LE(r->ranked[i - 1].metrics.ranking_time_s(), r->ranked[i].metrics.ranking_time_s());
  const std::string text = plan_to_text(*r);
  EXPECT_NE(text.find(std::string("ranked by ") + kRankingKey), std::string::npos);
  EXPECT_NE(plan_to_json(*r).find("\"ranking_time_s\""), std::string::npos);
  EXPECT_NE(plan_to_csv(*r).find("rank,world_size,tp,pp,dp,vp,micro_batch_size,schedule"), std::string::npos);
}

}  // namespace
}  // namespace eellm
