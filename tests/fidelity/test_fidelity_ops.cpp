// Per-op fidelity rows compare like for like (fidelity/fidelity.h compare_ops) on the raw
// timelines of both sides (sim/timeline.h's event contract, no reshaping): a SEND row is the
// sender's posting to completion, a RECV row the receiver's wait, and an embedding all-reduce
// splits into the wait for the slowest member and the transfer, from each rank's own durations only.
#include <gtest/gtest.h>

#include <map>
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
      exec::testing::timeline_event(0, InstrKind::kSendAct, 1 * kMs, 1 * kMs + 100'000),    // posted → complete
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
                      exec::testing::timeline_event(0, InstrKind::kSendAct, 2 * kMs, 2 * kMs + 50'000),
                      exec::testing::timeline_event(1, InstrKind::kRecvAct, 0, 2 * kMs),
                      exec::testing::timeline_event(0, InstrKind::kAllReduceEmbedding, 6 * kMs, 9 * kMs),
                      exec::testing::timeline_event(1, InstrKind::kAllReduceEmbedding, 7 * kMs, 9 * kMs)};
  for (TimeNs offset : {TimeNs{0}, 7 * kMs, -3 * kMs}) {
    const std::vector<OpRow> rows = compare_ops(predicted, measured(offset));
    ASSERT_EQ(rows.size(), 5u);  // FWD, SEND_ACT, RECV_ACT wait, AR-EMB transfer and wait
    const OpRow* send = find_row(rows, "SEND_ACT");
    ASSERT_NE(send, nullptr);
    EXPECT_EQ(send->count_measured, 1);
    EXPECT_EQ(send->count_predicted, 1);
    EXPECT_NEAR(send->relative_error, -0.5, 1e-12);  // 50 µs predicted, 100 µs measured
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

// The prediction fidelity compares is the engine's own timeline: every SEND and RECV instruction
// has its row on the predicted side, as on the measured one.
TEST(FidelityOps, ThePredictionHasARowForEverySendAndReceive) {
  auto sc = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/tiny-ee-pp4.yaml");
  ASSERT_TRUE(sc.is_ok()) << sc.status().to_string();
  Timeline t;
  ASSERT_TRUE(predict(*sc, &t).is_ok());
  auto r = simulate(*sc);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  std::map<InstrKind, int> instrs;
  for (const auto& list : r->schedule.ranks)
    for (const Instr& in : list) ++instrs[in.kind];
  const std::vector<OpRow> rows = compare_ops(t, t);
  for (const char* name : {"SEND_ACT", "SEND_GRAD", "RECV_ACT wait", "RECV_GRAD wait"}) {
    const OpRow* row = find_row(rows, name);
    ASSERT_NE(row, nullptr) << name;
    EXPECT_EQ(row->count_predicted, instrs[row->op]) << name;
    EXPECT_GT(instrs[row->op], 0) << name;
    EXPECT_TRUE(row->comparable()) << name;
  }
  EXPECT_GT(find_row(rows, "SEND_ACT")->mean_predicted_s, 0);  // a modelled transfer
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
  const Timeline& t = r->engine.timeline;
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
