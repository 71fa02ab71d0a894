// ee-fill accounting: EE-LLM's bubble filling (released code, schedules.py) takes its fill
// microbatches out of the iteration's m and truncates the cool-down backward of the last ones, so
// fewer than m microbatches train the whole backbone. These tests pin that down and check that
// sim/simulate counts throughput on the backbone microbatches only, that ee-fill without exits is
// exactly 1F1B, and that the exit overhead of ee-fill (per backbone token) is not negative.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/scenario_io.h"
#include "sim/engine.h"
#include "sim/schedule.h"
#include "sim/simulate.h"

namespace eellm {
namespace {

Schedule build(ScheduleKind kind, int pp, int m, const std::vector<bool>& exits) {
  ScheduleParams p;
  p.kind = kind;
  p.pp = pp;
  p.num_microbatches = m;
  p.stage_has_exit = exits;
  p.bwd_fwd_ratio = 2.0;
  auto s = build_schedule(p);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_TRUE(check_schedule(*s).is_ok());
  return *s;
}

TEST(EEFillAccounting, WithoutExitsTheScheduleIs1F1B) {
  for (int m : {4, 6, 8}) {
    SCOPED_TRACE(m);
    const Schedule fill = build(ScheduleKind::kEEFill, 4, m, {false, false, false, false});
    const Schedule base = build(ScheduleKind::k1F1B, 4, m, {false, false, false, false});
    EXPECT_EQ(fill.num_fill_warmup, 0);
    EXPECT_EQ(fill.num_fill_cooldown, 0);
    EXPECT_EQ(fill.ranks, base.ranks);
    EXPECT_EQ(num_backbone_microbatches(fill), m);
    // Figure 3's costs (F 2u, B 4u): (m + p − 1) · 6u for both.
    const SimCosts c = uniform_costs(4, 1, 2000, 4000);
    auto a = simulate_schedule(fill, c), b = simulate_schedule(base, c);
    ASSERT_TRUE(a.is_ok() && b.is_ok());
    EXPECT_EQ(a->iteration_ns, b->iteration_ns);
    EXPECT_EQ(a->iteration_ns, (m + 3) * 6000);
  }
}

TEST(EEFillAccounting, BackboneMicrobatchesOfFigure3) {
  // pp 4, m 6, ratio 2: f_w = f_c = int(2·3/3) = 2, so microbatches 0..3 are full and 4, 5 fills.
  // Partial-backward counts per rank: min(2, int(2r/3)) = 0, 0, 1, 2, so rank r back-propagates
  // 4 − 2 + that = 2, 2, 3, 4 full microbatches: only 0 and 1 reach rank 0.
  const Schedule s = build(ScheduleKind::kEEFill, 4, 6, {false, true, false, false});
  ASSERT_EQ(s.num_fill_warmup, 2);
  ASSERT_EQ(s.num_fill_cooldown, 2);
  const int expected_bwd[4] = {2, 2, 3, 4};
  for (size_t r = 0; r < 4; ++r) {
    int full_bwd = 0;
    for (const Instr& in : s.ranks[r]) full_bwd += in.kind == InstrKind::kBackward && !in.has(kFill);
    EXPECT_EQ(full_bwd, expected_bwd[r]) << "rank " << r;
  }
  EXPECT_EQ(num_backbone_microbatches(s), 2);
  // With f_c = 0 every full microbatch reaches rank 0: m − f_w.
  ScheduleParams p;
  p.kind = ScheduleKind::kEEFill;
  p.pp = 4;
  p.num_microbatches = 6;
  p.stage_has_exit = {false, true, false, false};
  p.num_fill_cooldown = 0;
  auto w = build_schedule(p);
  ASSERT_TRUE(w.is_ok()) << w.status().to_string();
  EXPECT_EQ(num_backbone_microbatches(*w), 4);
  EXPECT_EQ(num_backbone_microbatches(build(ScheduleKind::kEE1F1B, 4, 6, {false, true, false, false})), 6);
}

Scenario load(const std::string& name) {
  auto s = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/" + name + ".yaml");
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return s.is_ok() ? *s : Scenario{};
}

TEST(EEFillAccounting, ThroughputCountsBackboneTokensAndOverheadIsNotNegative) {
  for (const char* name : {"tiny-ee-pp4", "ee-llm-7b"}) {
    SCOPED_TRACE(name);
    Scenario sc = load(name);
    sc.parallel.schedule = ScheduleKind::kEEFill;
    auto r = simulate(sc);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    const SimulationSummary& s = r->summary;
    ASSERT_GT(s.num_fill_warmup, 0);
    EXPECT_EQ(s.num_backbone_microbatches, num_backbone_microbatches(r->schedule));
    EXPECT_LT(s.num_backbone_microbatches, s.num_microbatches);
    const double tokens_per_mb = static_cast<double>(sc.training.micro_batch_size) * sc.model.seq_length * s.dp;
    EXPECT_NEAR(s.tokens_per_s * s.iteration_time_s, s.num_backbone_microbatches * tokens_per_mb,
                1e-6 * s.num_microbatches * tokens_per_mb);
    EXPECT_NEAR(s.fill_tokens_per_s * s.iteration_time_s,
                (s.num_microbatches - s.num_backbone_microbatches) * tokens_per_mb,
                1e-6 * s.num_microbatches * tokens_per_mb);
    const auto j = nlohmann::json::parse(summary_to_json(s));
    EXPECT_EQ(j["num_backbone_microbatches"].get<int>(), s.num_backbone_microbatches);
    EXPECT_DOUBLE_EQ(j["fill_tokens_per_s"].get<double>(), s.fill_tokens_per_s);
    EXPECT_NE(summary_to_text(s).find("fill throughput"), std::string::npos);
    // Per backbone token ee-fill is not cheaper than the same model without exits under 1F1B.
    ASSERT_GT(s.iteration_time_no_exits_s, 0);
    EXPECT_GE(s.exit_overhead_fraction, 0);
    EXPECT_NEAR(s.exit_overhead_fraction,
                s.iteration_time_s * s.num_microbatches / s.num_backbone_microbatches / s.iteration_time_no_exits_s - 1,
                1e-9);

    // The same scenario without exits: ee-fill runs exactly 1F1B.
    Scenario bare = sc;
    bare.exits = ExitSpec{};
    auto f = simulate(bare);
    ASSERT_TRUE(f.is_ok()) << f.status().to_string();
    bare.parallel.schedule = ScheduleKind::k1F1B;
    auto b = simulate(bare);
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    EXPECT_EQ(f->summary.num_fill_warmup, 0);
    EXPECT_EQ(f->summary.num_backbone_microbatches, f->summary.num_microbatches);
    EXPECT_EQ(f->engine.iteration_ns, b->engine.iteration_ns);
    EXPECT_DOUBLE_EQ(f->summary.tokens_per_s, b->summary.tokens_per_s);
    EXPECT_EQ(f->summary.fill_tokens_per_s, 0);
  }
}

}  // namespace
}  // namespace eellm
