// Per-op fidelity rows compare like for like (fidelity/fidelity.h compare_ops and
// executor_shaped_timeline): SEND_* rows are left out (the executor times only the posting), a
// RECV row is the receiver's wait on both sides, and an embedding all-reduce splits into the wait
// for the slowest member and the transfer, from each rank's own durations only.
#include <gtest/gtest.h>

#include <string>

#include "fidelity/fidelity.h"
#include "model/scenario_io.h"
#include "sim/engine.h"
#include "sim/schedule.h"
#include "sim/simulate.h"
#include "tests/exec/test_util.h"

namespace eellm::fidelity {
namespace {

const OpRow* find_row(const std::vector<OpRow>& rows, const std::string& name) {
  for (const OpRow& r : rows)
    if (r.name() == name) return &r;
  return nullptr;
}

constexpr TimeNs kMs = 1'000'000;

// Measured as the executor traces it; `offset` shifts rank 1's clock (ranks' clocks start at their
// own exit from the barrier, so they may disagree).
Timeline measured(TimeNs offset) {
  Timeline t;
  t.num_ranks = 2;
  t.events = {
      exec::testing::timeline_event(0, InstrKind::kForward, 0, 1 * kMs),
      exec::testing::timeline_event(0, InstrKind::kSendAct, 1 * kMs, 1 * kMs + 100'000),    // posting only
      exec::testing::timeline_event(1, InstrKind::kRecvAct, offset, offset + 3 * kMs),      // waited 3 ms
      exec::testing::timeline_event(0, InstrKind::kAllReduceEmbedding, 5 * kMs, 10 * kMs),  // waited 3 ms, then 2 ms
      exec::testing::timeline_event(1, InstrKind::kAllReduceEmbedding, offset + 8 * kMs, offset + 10 * kMs),
      exec::testing::timeline_event(0, InstrKind::kAllReduceEmbedding, 20 * kMs,
                                    21 * kMs),  // second one: 1 ms, no wait
      exec::testing::timeline_event(1, InstrKind::kAllReduceEmbedding, offset + 20 * kMs, offset + 21 * kMs)};
  return t;
}

TEST(FidelityOps, RowsCompareTheSameQuantities) {
  Timeline predicted;
  predicted.num_ranks = 2;
  predicted.events = {exec::testing::timeline_event(0, InstrKind::kForward, 0, 2 * kMs),
                      exec::testing::timeline_event(1, InstrKind::kRecvAct, 0, 2 * kMs),
                      exec::testing::timeline_event(0, InstrKind::kAllReduceEmbedding, 6 * kMs, 9 * kMs),
                      exec::testing::timeline_event(1, InstrKind::kAllReduceEmbedding, 7 * kMs, 9 * kMs)};
  for (TimeNs offset : {TimeNs{0}, 7 * kMs, -3 * kMs}) {
    const std::vector<OpRow> rows = compare_ops(predicted, measured(offset));
    ASSERT_EQ(rows.size(), 4u);  // FWD, RECV_ACT wait, AR-EMB transfer and wait; no SEND row
    EXPECT_EQ(find_row(rows, "SEND_ACT"), nullptr);
    const OpRow* fwd = find_row(rows, "FWD");
    ASSERT_NE(fwd, nullptr);
    EXPECT_NEAR(fwd->relative_error, 1.0, 1e-12);
    const OpRow* recv = find_row(rows, "RECV_ACT wait");
    ASSERT_NE(recv, nullptr);
    EXPECT_NEAR(recv->mean_measured_s, 3e-3, 1e-12);
    EXPECT_NEAR(recv->mean_predicted_s, 2e-3, 1e-12);
    EXPECT_NEAR(recv->relative_error, -1.0 / 3, 1e-12);
    // Measured: collective 1 takes 2 ms (rank 1, which came last) and rank 0 waited 3 ms for it;
    // collective 2 takes 1 ms, no one waits. Predicted: 2 ms and waits 1 ms / 0.
    const OpRow* xfer = find_row(rows, "ALLREDUCE_EMBEDDING transfer");
    ASSERT_NE(xfer, nullptr);
    EXPECT_EQ(xfer->count_measured, 2);
    EXPECT_EQ(xfer->count_predicted, 1);
    EXPECT_NEAR(xfer->mean_measured_s, 1.5e-3, 1e-12);
    EXPECT_NEAR(xfer->mean_predicted_s, 2e-3, 1e-12);
    const OpRow* wait = find_row(rows, "ALLREDUCE_EMBEDDING wait");
    ASSERT_NE(wait, nullptr);
    EXPECT_EQ(wait->count_measured, 4);
    EXPECT_NEAR(wait->mean_measured_s, 0.75e-3, 1e-12);  // (3 + 0 + 0 + 0) / 4
    EXPECT_NEAR(wait->mean_predicted_s, 0.5e-3, 1e-12);  // (1 + 0) / 2
  }
}

// PP 2, 1F1B, 2 microbatches, F 1 ms / B 2 ms, free links: rank 1 reaches its first RECV_ACT at
// 0 and the activation lands at 1 ms (rank 0's F0); rank 0 reaches RECV_GRAD0 after F0 F1 (2 ms)
// and the gradient lands when rank 1's B0 ends (F0 1–2 ms, B0 2–4 ms).
TEST(FidelityOps, ExecutorShapedTimelineHasTheReceiversWaits) {
  ScheduleParams p;
  p.kind = ScheduleKind::k1F1B;
  p.pp = 2;
  p.num_microbatches = 2;
  SimulationResult res;
  res.schedule = *build_schedule(p);
  res.costs = uniform_costs(2, 1, kMs, 2 * kMs);
  auto en = simulate_schedule(res.schedule, res.costs);
  ASSERT_TRUE(en.is_ok()) << en.status().to_string();
  res.engine = *en;
  const Timeline t = executor_shaped_timeline(res);
  int recvs = 0;
  for (const auto& list : res.schedule.ranks)
    for (const Instr& in : list) recvs += in.is_recv();
  int recv_events = 0;
  TimeNs first_recv_act_r1 = -1, first_recv_act_r1_end = -1, first_recv_grad_r0 = -1, first_recv_grad_r0_end = -1;
  for (const TimelineEvent& e : t.events) {
    EXPECT_FALSE(e.op == InstrKind::kSendAct || e.op == InstrKind::kSendGrad) << event_name(e);
    if (e.op != InstrKind::kRecvAct && e.op != InstrKind::kRecvGrad) continue;
    ++recv_events;
    EXPECT_GE(e.t1, e.t0);
    EXPECT_EQ(e.t1, res.engine.timing[static_cast<size_t>(e.rank)][static_cast<size_t>(e.instr)].end);
    if (e.rank == 1 && e.op == InstrKind::kRecvAct && first_recv_act_r1 < 0)
      first_recv_act_r1 = e.t0, first_recv_act_r1_end = e.t1;
    if (e.rank == 0 && e.op == InstrKind::kRecvGrad && first_recv_grad_r0 < 0)
      first_recv_grad_r0 = e.t0, first_recv_grad_r0_end = e.t1;
  }
  EXPECT_EQ(recv_events, recvs);
  EXPECT_EQ(first_recv_act_r1, 0);
  EXPECT_EQ(first_recv_act_r1_end, 1 * kMs);
  EXPECT_EQ(first_recv_grad_r0, 2 * kMs);
  EXPECT_EQ(first_recv_grad_r0_end, 4 * kMs);
}

// A simulated scenario with exits on a pipeline: each embedding all-reduce member's event runs
// from its own post to the collective's end, so the transfer row is the engine's all-reduce time.
TEST(FidelityOps, EmbeddingAllReduceSplitMatchesTheEngine) {
  auto sc = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/tiny-ee-pp4.yaml");
  ASSERT_TRUE(sc.is_ok()) << sc.status().to_string();
  auto r = simulate(*sc);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  TimeNs emb = 0;
  for (const RankTimes& rt : r->costs.ranks) emb = std::max(emb, rt.embedding_allreduce);
  const Timeline t = executor_shaped_timeline(*r);
  int members = 0;
  for (const auto& list : r->schedule.ranks)
    for (const Instr& in : list) members += in.kind == InstrKind::kAllReduceEmbedding;
  ASSERT_GT(emb, 0);  // tiny-ee-pp4 ties its exit heads to the embedding: stages 0, exits and last
  ASSERT_GT(members, 0);
  int emb_events = 0;
  for (const TimelineEvent& e : t.events) {
    if (e.op != InstrKind::kAllReduceEmbedding) continue;
    ++emb_events;
    EXPECT_EQ(e.t0, r->engine.timing[static_cast<size_t>(e.rank)][static_cast<size_t>(e.instr)].start);
  }
  EXPECT_EQ(emb_events, members);
  const std::vector<OpRow> rows = compare_ops(t, t);
  const OpRow* xfer = find_row(rows, "ALLREDUCE_EMBEDDING transfer");
  ASSERT_NE(xfer, nullptr);
  EXPECT_NEAR(xfer->mean_predicted_s, ns_to_seconds(emb), 1e-12);
  const OpRow* wait = find_row(rows, "ALLREDUCE_EMBEDDING wait");
  ASSERT_NE(wait, nullptr);
  EXPECT_GT(wait->mean_predicted_s, 0);  // the first stage posts long before the last one
}

}  // namespace
}  // namespace eellm::fidelity
