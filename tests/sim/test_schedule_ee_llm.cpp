// EE-LLM's early-exit schedules as its released code runs them (issue #18): the golden per-stage
// compute order at PP 4, m 6 without and with bubble filling, exits on stages 1–2 and 0–1, built by
// make_schedule (the one schedule both interpreters run) and played by the engine in that order.
// eellm's own fill variant stays available as parallel.fill_semantics: exit-truncated.
#include <gtest/gtest.h>

#include "model/layout.h"
#include "sim/schedule.h"
#include "sim/simulate.h"
#include "tests/sim/ee_llm_fill_golden.h"

namespace eellm {
namespace {

Schedule schedule_of(const Scenario& s) {
  auto L = derive_layout(s);
  EXPECT_TRUE(L.is_ok()) << L.status().to_string();
  auto sched = make_schedule(s, *L);
  EXPECT_TRUE(sched.is_ok()) << sched.status().to_string();
  EXPECT_TRUE(check_schedule(*sched).is_ok()) << check_schedule(*sched).to_string();
  return *sched;
}

struct GoldenCase {
  const char* name;
  std::vector<int> exits;
  bool fill;
  const std::vector<std::string>* expected;
};

class EELLMGolden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(EELLMGolden, ScheduleAndSimulationRunEELLMsOrder) {
  const GoldenCase& c = GetParam();
  const Scenario s = golden::scenario(c.exits, c.fill);
  const Schedule sched = schedule_of(s);
  if (c.fill) {
    EXPECT_EQ(sched.kind, ScheduleKind::kEEFill);
    EXPECT_EQ(sched.num_fill_warmup, 2);
    EXPECT_EQ(sched.num_fill_cooldown, 2);
  }
  EXPECT_EQ(golden::compute_order(sched), *c.expected);
  SimulateOptions o;
  o.compare_without_exits = false;
  auto sim = simulate(s, o);
  ASSERT_TRUE(sim.is_ok()) << sim.status().to_string();
  EXPECT_EQ(golden::compute_order(sim->engine.timeline, sim->schedule), *c.expected);
}

INSTANTIATE_TEST_SUITE_P(PP4M6, EELLMGolden,
                         ::testing::Values(GoldenCase{"no_fill_exits_12", {4, 6}, false, &golden::kNoFill},
                                           GoldenCase{"no_fill_exits_01", {2, 4}, false, &golden::kNoFill},
                                           GoldenCase{"fill_exits_12", {4, 6}, true, &golden::kFillExitsOnStages12},
                                           GoldenCase{"fill_exits_01", {2, 4}, true, &golden::kFillExitsOnStages01}),
                         [](const ::testing::TestParamInfo<GoldenCase>& param) {
                           return std::string(param.param.name);
                         });

// A fill forward runs the whole stage under EE-LLM's semantics (it is not truncated at the exit),
// so it costs as much as a full one; eellm's variant stops it at the exit.
TEST(EELLMFill, AFillForwardRunsTheWholeStageUnlessExitTruncated) {
  Scenario s = golden::scenario({4, 6}, true);
  const Schedule released = schedule_of(s);  // a named schedule: a range-for over a temporary's member dangles
  for (const Instr& in : released.ranks[1])
    if (in.kind == InstrKind::kForward) {
      EXPECT_FALSE(in.has(kTruncated)) << to_string(in);
    }
  s.parallel.fill_semantics = FillSemantics::kExitTruncated;
  int truncated = 0;
  const Schedule ours = schedule_of(s);
  for (const Instr& in : ours.ranks[1]) truncated += in.kind == InstrKind::kForward && in.has(kTruncated);
  EXPECT_GT(truncated, 0);
}

// Exits on stages 0 and 2 of 4: stage 0 sends a fill forward on to stage 1, which (no exit of its
// own) never sends its gradient back; the released code waits for it forever. Named, not hung.
TEST(EELLMFill, APlacementTheReleasedCodeCannotRunIsRefusedWithTheFix) {
  Scenario s = golden::scenario({2, 6}, true);
  auto L = derive_layout(s);
  ASSERT_TRUE(L.is_ok());
  auto sched = make_schedule(s, *L);
  ASSERT_FALSE(sched.is_ok());
  EXPECT_NE(sched.status().message().find("fill_semantics: exit-truncated"), std::string::npos)
      << sched.status().to_string();
  s.parallel.fill_semantics = FillSemantics::kExitTruncated;
  EXPECT_TRUE(make_schedule(s, *L).is_ok());
}

// EE-Tuning with --tune-exit-pipeline-parallel-size 1: only stage 0 runs (forward and its exit
// heads' backward); the others hold no instruction.
TEST(EETuningStages, OnlyTheLoadedStagesRun) {
  Scenario s = golden::scenario({2, 4}, false);
  s.parallel.schedule = ScheduleKind::kEETuning;
  s.parallel.tune_exit_pipeline_parallel_size = 1;
  const Schedule sched = schedule_of(s);
  EXPECT_EQ(golden::compute_order(sched)[0], "F0 EXIT-B0 F1 EXIT-B1 F2 EXIT-B2 F3 EXIT-B3 F4 EXIT-B4 F5 EXIT-B5");
  for (size_t r = 1; r < 4; ++r) EXPECT_TRUE(sched.ranks[r].empty()) << r;
  for (const Instr& in : sched.ranks[0]) EXPECT_NE(in.kind, InstrKind::kSendAct);
}

}  // namespace
}  // namespace eellm
