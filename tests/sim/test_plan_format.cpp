// [plan-trust] item 12: the one place numbers are formatted (sim/format.h) — significant digits, one
// unit per column, 1-2-5 ticks — and the tables that use it (simulate's per-stage table, the plan
// table, the plan --emit name).
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "sim/format.h"
#include "sim/plan.h"
#include "sim/simulate.h"
#include "tests/sim/plan_test_util.h"

namespace eellm {
namespace {

TEST(Format, DurationsKeepFourSignificantDigits) {
  EXPECT_EQ(format_duration(62.207020), "62.21 s");
  EXPECT_EQ(format_duration(3.702), "3.702 s");
  EXPECT_EQ(format_duration(0.0155518), "15.55 ms");
  EXPECT_EQ(format_duration(12.345e-6), "12.35 µs");
  EXPECT_EQ(format_duration(830e-9), "830 ns");
  EXPECT_EQ(format_duration(0.99996), "1.000 s");  // rounding carries into the larger unit
  EXPECT_EQ(format_duration(0), "0 s");
}

TEST(Format, SignificantDropsTrailingZeros) {
  EXPECT_EQ(format_significant(0.8), "0.8");
  EXPECT_EQ(format_significant(62.207020), "62.21");
  EXPECT_EQ(format_significant(2.0), "2");
  EXPECT_EQ(format_significant(-0.0123456), "-0.01235");
  EXPECT_EQ(format_significant(174014.2), "174014");
  EXPECT_EQ(format_significant(0), "0");
}

TEST(Format, ColumnUnitFromTheLargestValue) {
  const TimeUnit u = time_unit_for(3.702);
  EXPECT_STREQ(u.name, "s");
  const int d = column_decimals(3.702 / u.seconds);
  EXPECT_EQ(d, 3);
  EXPECT_EQ(format_in_unit(0, u, d), "0.000 s");  // never "0 ns" beside "3.702 s"
  EXPECT_EQ(format_in_unit(0.0123, u, d), "0.012 s");
  EXPECT_STREQ(time_unit_for(0.0155).name, "ms");
  EXPECT_STREQ(time_unit_for(2e-5).name, "µs");
  EXPECT_EQ(significant_decimals(0.002345), 6);
  EXPECT_EQ(significant_decimals(62.2), 2);
  EXPECT_EQ(significant_decimals(1500), 0);
}

TEST(Format, FlopRateNeverReadsZero) {
  EXPECT_EQ(format_flop_rate(47.84e9), "47.84 GFLOP/s");  // not "0.0 TFLOP/s" beside an MFU of 43 %
  EXPECT_EQ(format_flop_rate(159.2e12), "159.2 TFLOP/s");
  EXPECT_EQ(format_flop_rate(830e6), "830 MFLOP/s");
}

TEST(Format, TicksStepByOneTwoOrFive) {
  for (const auto& [lo, hi] : std::vector<std::pair<double, double>>{
           {0, 15551.8}, {0, 3}, {0.9, 1.37}, {0, 79.3 * 1.05}, {1e-4, 7e-4}, {-3, 11}}) {
    const NiceAxis a = nice_axis(lo, hi);
    double m = a.step;
    while (m >= 10) m /= 10;
    while (m < 1) m *= 10;
    EXPECT_TRUE(std::abs(m - 1) < 1e-9 || std::abs(m - 2) < 1e-9 || std::abs(m - 5) < 1e-9)
        << lo << ".." << hi << ": step " << a.step;
    EXPECT_LE(a.lo, lo);
    EXPECT_GE(a.hi, hi);
    EXPECT_GE(a.intervals(), 2);
    EXPECT_LE(a.intervals(), 10);
  }
  const NiceAxis a = nice_axis(0, 15551.8);  // the memory chart's end used to be a tick: 15551.8 ms
  EXPECT_EQ(a.step, 2000);
  EXPECT_EQ(a.hi, 16000);
  EXPECT_EQ(a.label(1), "2000");
  const NiceAxis b = nice_axis(0.9, 1.37);
  EXPECT_EQ(b.label(0), "0.9");
  EXPECT_EQ(b.label(1), "1.0");
}

TEST(Format, BubblePartsAndExitsNamedOnce) {
  ASSERT_EQ(bubble_part_names().size(), 4u);
  EXPECT_EQ(bubble_part_names()[0], "fill/drain");
  EXPECT_EQ(exit_label(9), "exit@9");
}

// simulate's per-stage table: each time column in one unit; no six-decimal seconds anywhere.
TEST(Format, SimulateTextHasOneUnitPerColumn) {
  const Scenario sc = plan_testing::load("ee-llm-7b");
  SimulateOptions so;
  so.record_timeline = false;
  auto r = simulate(sc, so);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const std::string text = summary_to_text(r->summary);
  EXPECT_FALSE(std::regex_search(text, std::regex("[0-9]\\.[0-9]{6}"))) << text;
  EXPECT_NE(text.find("fill/drain"), std::string::npos) << text;
  EXPECT_NE(text.find("TFLOP/s per GPU"), std::string::npos) << text;
  // Stage rows: "0  68.09 s  0.000 s  4.675 s ...": the exit-work column of stage 0 reads in seconds
  // like its stages 1 and 2 (3.661 s), not "0 ns".
  EXPECT_TRUE(std::regex_search(text, std::regex("\\n +0 +[0-9.]+ s +0\\.000 s +[0-9.]+ s"))) << text;
  EXPECT_EQ(text.find(" ns"), std::string::npos) << text;
}

TEST(Format, PlanNamesTheEmittedScenarioAfterThePlan) {
  PlanCandidate c;
  c.world_size = 64, c.tp = 2, c.pp = 4, c.dp = 8, c.vp = 1, c.micro_batch_size = 2;
  c.schedule = ScheduleKind::kZBH1;
  c.recompute = RecomputeGranularity::kSelective;
  EXPECT_EQ(plan_scenario_name("ee-llm-7b", c), "ee-llm-7b-64gpus-tp2-pp4-dp8-mbs2-zb-h1-selective");
  c.vp = 2;
  EXPECT_EQ(plan_scenario_name("x", c), "x-64gpus-tp2-pp4-dp8-vp2-mbs2-zb-h1-selective");
}

TEST(Format, PlanTableTimesInSecondsToFourDigits) {
  auto sc = plan_testing::load("tiny-ee");
  PlanOptions po;
  po.gpus = 2;
  po.top_k = 3;
  auto r = plan(sc, po);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const std::string text = plan_to_text(*r);
  EXPECT_TRUE(std::regex_search(text, std::regex("\\n +1 +2 .* [0-9]\\.[0-9]{3} +[0-9]\\.[0-9]{3} +[0-9]\\.[0-9]{3} ")))
      << text;
  EXPECT_NE(text.find("GiB per stage: the peak"), std::string::npos) << text;  // the columns explained
}

}  // namespace
}  // namespace eellm
