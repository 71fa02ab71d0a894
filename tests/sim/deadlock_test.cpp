// A deliberately broken schedule must fail with a deadlock report naming the ranks and the
// instructions involved, both statically (find_deadlock) and when played (simulate_schedule).
#include <gtest/gtest.h>

#include "sim/engine.h"
#include "sim/graph.h"
#include "sim/schedule.h"

namespace eellm {
namespace {

// Rank 0 waits for microbatch 0's gradient before it sends microbatch 1's activation; rank 1
// (GPipe order) sends that gradient only after it has received microbatch 1: a cycle.
Schedule broken() {
  ScheduleParams p;
  p.kind = ScheduleKind::kGPipe;
  p.pp = 2;
  p.num_microbatches = 2;
  Schedule s = *build_schedule(p);
  // Rank 0 in "one microbatch at a time" order: F0 SEND-ACT0 RECV-GRAD0 B0 F1 SEND-ACT1 RECV-GRAD1 B1.
  std::vector<Instr> r0;
  for (int mb = 0; mb < 2; ++mb) {
    r0.push_back({InstrKind::kForward, 0, 0, mb, -1});
    r0.push_back({InstrKind::kSendAct, 0, 0, mb, 1});
    r0.push_back({InstrKind::kRecvGrad, 0, 0, mb, 1});
    r0.push_back({InstrKind::kBackward, 0, 0, mb, -1});
  }
  r0.push_back({InstrKind::kOptimizerStep, 0, 0, -1, -1});
  s.ranks[0] = r0;
  return s;
}

TEST(Deadlock, StaticCheckNamesTheCycle) {
  const Schedule s = broken();
  ASSERT_TRUE(check_schedule(s).is_ok());  // well-formed, yet it cannot run
  const Status st = find_deadlock(s);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  const std::string& msg = st.message();
  EXPECT_NE(msg.find("rank 0 instruction 2 (RECV-GRAD0←1)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rank 1 instruction"), std::string::npos) << msg;
  EXPECT_NE(msg.find("SEND-ACT1→1"), std::string::npos) << msg;
}

TEST(Deadlock, EngineReportsBlockedRanksInsteadOfHanging) {
  const Schedule s = broken();
  auto r = simulate_schedule(s, uniform_costs(2, 1, 1000, 2000));
  ASSERT_FALSE(r.is_ok());
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("rank 0 blocked at instruction 2 (RECV-GRAD0←1), waiting for rank 1 instruction"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("rank 1 blocked at instruction 2 (RECV-ACT1←0), waiting for rank 0 instruction 5 (SEND-ACT1→1)"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("cycle: rank 0 (RECV-GRAD0←1) → rank 1 (RECV-ACT1←0) → rank 0"), std::string::npos) << msg;
}

TEST(Deadlock, UnmatchedSendIsAnError) {
  Schedule s = broken();
  s.ranks[0].insert(s.ranks[0].begin() + 1, Instr{InstrKind::kSendAct, 0, 0, 7, 1});
  const Status st = check_schedule(s);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("SEND-ACT7→1"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace eellm
