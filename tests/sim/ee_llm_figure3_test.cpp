// EE-LLM's Figure 3 set-up (Chen et al. 2023, arXiv 2312.04916): 4 stages, 6 microbatches,
// backbone forward : exit forward = 2 : 1 and forward : backward = 1 : 2, i.e. in units u
// (1 u = 1000 ns): backbone stage F = 2u, B = 4u; an exit head adds 1u forward and 2u backward
// to its stage. Communication is free, so every number below is hand-computed.
#include <gtest/gtest.h>

#include "sim/engine.h"
#include "sim/graph.h"
#include "sim/schedule.h"

namespace eellm {
namespace {

constexpr TimeNs u = 1000;
constexpr int kPP = 4, kM = 6;

// An exit sits in the middle of its stage: a truncated fill step runs half the backbone
// (F 1u, B 2u) plus the exit head (F 1u, B 2u).
SimCosts costs_with_exits(const std::vector<int>& exit_stages) {
  SimCosts c = uniform_costs(kPP, 1, 2 * u, 4 * u);
  for (int s : exit_stages) {
    ChunkTimes& t = c.chunks[static_cast<size_t>(s)];
    t.exit_fwd = 1 * u;
    t.exit_bwd_input = 2 * u;
    t.fwd_partial = 1 * u;
    t.bwd_input_partial = 2 * u;
  }
  return c;
}

Schedule schedule(ScheduleKind kind, const std::vector<int>& exit_stages, int fill_w = -1, int fill_c = -1) {
  ScheduleParams p;
  p.kind = kind;
  p.pp = kPP;
  p.num_microbatches = kM;
  p.stage_has_exit.assign(kPP, false);
  for (int s : exit_stages) p.stage_has_exit[static_cast<size_t>(s)] = true;
  p.num_fill_warmup = fill_w;
  p.num_fill_cooldown = fill_c;
  p.bwd_fwd_ratio = 2.0;
  // The paper's Figure 3 draws eellm's exit-truncated filling; EE-LLM's released order is pinned
  // by tests/sim/test_schedule_ee_llm.cpp.
  p.fill_semantics = FillSemantics::kExitTruncated;
  auto s = build_schedule(p);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_TRUE(check_schedule(*s).is_ok());
  return *s;
}

EngineResult run(const Schedule& s, const SimCosts& c) {
  auto r = simulate_schedule(s, c);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return *r;
}

TEST(EELLMFigure3, NoExits) {
  // 1F1B: (m + p − 1)(F + B) = 9 · 6u.
  const EngineResult r = run(schedule(ScheduleKind::k1F1B, {}), costs_with_exits({}));
  EXPECT_EQ(r.iteration_ns, 54 * u);
}

TEST(EELLMFigure3, ExitOnLastStage) {
  // Stage 3 (F' = 3u, B' = 6u) is the bottleneck and, once F0 reaches it at (p−1)·F = 6u, never
  // idles: it ends at 6u + m(F' + B') = 60u; the last gradient then walks back through three
  // stages of B = 4u: T = 6 + 54 + 12 = 72u.
  const std::vector<int> exits{3};
  const Schedule s = schedule(ScheduleKind::kEE1F1B, exits);
  const EngineResult r = run(s, costs_with_exits(exits));
  EXPECT_EQ(r.iteration_ns, 72 * u);
  EXPECT_EQ(format_critical_path(s, critical_path(s, r)),
            "F0@0 ~> F0@1 ~> F0@2 ~> F0@3 → B0@3 → F1@3 → B1@3 → F2@3 → B2@3 → F3@3 → B3@3 → F4@3 → B4@3 → F5@3 → "
            "B5@3 ~> B5@2 ~> B5@1 ~> B5@0");
}

TEST(EELLMFigure3, ExitOnFirstStage) {
  // Stage 0 (F' = 3u, B' = 6u): F0 leaves it at 3u, reaches stage 3 at 3 + 2·2 = 7u, and its
  // gradient returns at 7 + 2 + 3·4 = 21u (stage 0 idles 12u..21u after its four warm-up
  // forwards). From then on stage 0 is the bottleneck and never waits: B0..B5 (6 · 6u) and F4, F5
  // (2 · 3u) take 42u, so T = 21 + 42 = 63u.
  const std::vector<int> exits{0};
  const Schedule s = schedule(ScheduleKind::kEE1F1B, exits);
  const EngineResult r = run(s, costs_with_exits(exits));
  EXPECT_EQ(r.iteration_ns, 63 * u);
  EXPECT_EQ(format_critical_path(s, critical_path(s, r)),
            "F0@0 ~> F0@1 ~> F0@2 ~> F0@3 → B0@3 ~> B0@2 ~> B0@1 ~> B0@0 → F4@0 → B1@0 → F5@0 → B2@0 → B3@0 → B4@0 → "
            "B5@0");
}

TEST(EELLMFigure3, ExitOnSecondStage) {
  // Stage 1 (F' = 3u, B' = 6u): F0 leaves stage 0 at 2u, stage 1 at 5u, stage 3 at 9u; B0 leaves stage 3 at 13u, stage
  // 2 at 17u and stage 1 at 23u. Stage 1 is then saturated with F3..F5 (3 · 3u) and B1..B5 (5 · 6u) until 62u, and B5
  // on stage 0 ends at 66u.
  const std::vector<int> exits{1};
  const Schedule s = schedule(ScheduleKind::kEE1F1B, exits);
  const EngineResult r = run(s, costs_with_exits(exits));
  EXPECT_EQ(r.iteration_ns, 66 * u);
  EXPECT_EQ(format_critical_path(s, critical_path(s, r)),
            "F0@0 ~> F0@1 ~> F0@2 ~> F0@3 → B0@3 ~> B0@2 ~> B0@1 → F3@1 → B1@1 → F4@1 → B2@1 → F5@1 → B3@1 → B4@1 → "
            "B5@1 ~> B5@0");
}

// Bubble filling with EE-LLM's default counts for p = 4, bwd/fwd = 2: int(2·3/3) = 2 warm-up
// fill microbatches (taken from the 6, leaving 4 full ones) and 2 cool-down ones. Per rank,
// partial forwards = min(2, int((2(p−r−1) − r)/3)) = 2, 1, 0, 0 and partial backwards
// = min(2, int(2r/3)) = 0, 0, 1, 2, so ranks 0 and 1 back-propagate full microbatches 0–1,
// rank 2 0–2 and rank 3 all four (EE-LLM's truncated cool-down backward).
TEST(EELLMFigure3, FillWithExitOnSecondStage) {
  // Fill 4 reaches rank 1 (its exit) and is truncated there; fill 5 would only reach rank 0, which
  // has no exit, so it is not run. Rank 1: F0 2–5, F1 5–8, F2 8–11, FILL-F4* 11–13 (1u + 1u),
  // FILL-B4* 13–17, B0 17–23 (gradient there at 17u), F3 23–26, B1 26–32; rank 0 gets B1's
  // gradient at 32u and ends at 36u. Rank 0 runs FILL-F4 8–10 and FILL-B4 17–21 in its bubble.
  const std::vector<int> exits{1};
  const Schedule s = schedule(ScheduleKind::kEEFill, exits);
  EXPECT_EQ(s.num_fill_warmup, 2);
  EXPECT_EQ(s.num_fill_cooldown, 2);
  const EngineResult r = run(s, costs_with_exits(exits));
  EXPECT_EQ(r.iteration_ns, 36 * u);
  EXPECT_EQ(format_critical_path(s, critical_path(s, r)),
            "F0@0 ~> F0@1 → F1@1 → F2@1 → FILL-F4*@1 → FILL-B4*@1 → B0@1 → F3@1 → B1@1 ~> B1@0");
}

TEST(EELLMFigure3, FillWithExitOnFirstStage) {
  // Both fill microbatches stop at rank 0's exit (2u forward, 4u backward each) and fit in its
  // warm-up bubble; rank 0 is saturated: F0–F3 (4 · 3u), two fills (2 · 6u), B0, B1 (2 · 6u) = 36u.
  const std::vector<int> exits{0};
  const Schedule s = schedule(ScheduleKind::kEEFill, exits);
  const EngineResult r = run(s, costs_with_exits(exits));
  EXPECT_EQ(r.iteration_ns, 36 * u);
  EXPECT_EQ(format_critical_path(s, critical_path(s, r)),
            "F0@0 → F1@0 → F2@0 → F3@0 → FILL-F4*@0 → FILL-F5*@0 → FILL-B5*@0 → FILL-B4*@0 → B0@0 → B1@0");
}

TEST(EELLMFigure3, FillWarmupOnlyKeepsEveryFullMicrobatch) {
  // num_fill_cooldown = 0: every rank back-propagates all m − 1 = 5 full microbatches, and one fill
  // microbatch trains rank 0's exit inside the warm-up bubble (rank 0: F0–F3 0–12u; F0's gradient
  // is back at 21u, the fill takes 12–14u and 14–18u). Rank 0 is the bottleneck from 21u:
  // B0..B4 (5 · 6u) + F4 (3u) = 33u → 54u.
  const std::vector<int> exits{0};
  const Schedule s = schedule(ScheduleKind::kEEFill, exits, 1, 0);
  const EngineResult r = run(s, costs_with_exits(exits));
  EXPECT_EQ(r.iteration_ns, 54 * u);
  int backwards = 0;
  for (const auto& list : s.ranks)
    for (const Instr& in : list) backwards += in.kind == InstrKind::kBackward && !in.has(kFill);
  EXPECT_EQ(backwards, 4 * 5);
}

}  // namespace
}  // namespace eellm
