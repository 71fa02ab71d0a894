// Exact closed forms of pipeline bubbles at zero communication cost: the engine must reproduce
// them to the nanosecond (uniform stages, integer times).
#include <gtest/gtest.h>

#include "sim/engine.h"
#include "sim/schedule.h"

namespace eellm {
namespace {

Schedule build(ScheduleKind kind, int pp, int m, int vp = 1) {
  ScheduleParams p;
  p.kind = kind;
  p.pp = pp;
  p.vp = vp;
  p.num_microbatches = m;
  auto s = build_schedule(p);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_TRUE(check_schedule(*s).is_ok()) << check_schedule(*s).to_string();
  return *s;
}

TimeNs run(const Schedule& s, const SimCosts& c) {
  auto r = simulate_schedule(s, c);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r->iteration_ns;
}

// bubble fraction = idle / (p · T) with equal stages.
double bubble(TimeNs T, int pp, TimeNs busy_per_rank) {
  return static_cast<double>(pp * T - pp * busy_per_rank) / static_cast<double>(pp * T);
}

class PipelineClosedForm : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(PipelineClosedForm, GPipeAnd1F1BBubbleIsPMinus1OverMPlusPMinus1) {
  const auto [pp, m] = GetParam();
  const TimeNs F = 1000, B = 2000;
  for (ScheduleKind k : {ScheduleKind::kGPipe, ScheduleKind::k1F1B, ScheduleKind::kEE1F1B}) {
    const TimeNs T = run(build(k, pp, m), uniform_costs(pp, 1, F, B));
    EXPECT_EQ(T, (m + pp - 1) * (F + B)) << to_string(k);
    EXPECT_DOUBLE_EQ(bubble(T, pp, m * (F + B)), static_cast<double>(pp - 1) / (m + pp - 1));
  }
}

TEST_P(PipelineClosedForm, InterleavedBubbleIsPMinus1OverVMPlusPMinus1) {
  const auto [pp, m0] = GetParam();
  const int m = m0 * pp;  // interleaving needs m divisible by pp
  for (int vp : {2, 3}) {
    const TimeNs f = 600, b = 1200;  // per chunk
    const TimeNs T = run(build(ScheduleKind::kInterleaved1F1B, pp, m, vp), uniform_costs(pp, vp, f, b));
    EXPECT_EQ(T, (vp * m + pp - 1) * (f + b)) << "pp " << pp << " vp " << vp << " m " << m;
    EXPECT_DOUBLE_EQ(bubble(T, pp, vp * m * (f + b)), static_cast<double>(pp - 1) / (vp * m + pp - 1));
  }
}

TEST_P(PipelineClosedForm, ZBH1BubbleIsPMinus1TimesFPlusBMinusW) {
  const auto [pp, m] = GetParam();
  if (m < pp) GTEST_SKIP() << "ZB-H1's closed form assumes m ≥ p";
  const TimeNs F = 1000, Bi = 1000, W = 1000;
  const TimeNs T = run(build(ScheduleKind::kZBH1, pp, m), uniform_costs(pp, 1, F, Bi, W));
  EXPECT_EQ(T - m * (F + Bi + W), (pp - 1) * (F + Bi - W)) << "pp " << pp << " m " << m;
}

INSTANTIATE_TEST_SUITE_P(Sizes, PipelineClosedForm,
                         ::testing::Values(std::make_tuple(2, 4), std::make_tuple(4, 4), std::make_tuple(4, 8),
                                           std::make_tuple(4, 6), std::make_tuple(8, 16), std::make_tuple(3, 7)));

}  // namespace
}  // namespace eellm
