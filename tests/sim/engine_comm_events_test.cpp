// The engine's communication events follow the event contract (sim/timeline.h), the one the
// executor measures: one RECV per received activation or gradient, as long as the receiver waits
// for it (0 when it was already there); SEND from posting to the modelled arrival (the transfer
// when the link is free); each embedding all-reduce member from its own post to the collective's
// end. Times below are derived by hand from the schedule and the costs.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <tuple>

#include "sim/engine.h"
#include "sim/schedule.h"

namespace eellm {
namespace {

constexpr TimeNs kMs = 1'000'000;
constexpr TimeNs kXfer = 4'000, kLatency = 1'000;  // 8000 bytes at 0.5 ns per byte, 1 µs latency

// PP 2, 1F1B, 2 microbatches; F 1 ms, B 2 ms; activations and gradients of 8000 bytes; an
// embedding all-reduce of 0.3 ms between the two stages.
struct Played {
  Schedule schedule;
  EngineResult result;
};
Played run_pp2() {
  ScheduleParams p;
  p.kind = ScheduleKind::k1F1B;
  p.pp = 2;
  p.num_microbatches = 2;
  p.embedding_group = {0, 1};
  Played r;
  r.schedule = build_schedule(p).value();
  SimCosts c = uniform_costs(2, 1, kMs, 2 * kMs);
  for (ChunkTimes& ct : c.chunks) ct.p2p_bytes = 8000;
  for (LinkTimes& h : c.hops) h = {kLatency, 0.5};
  for (RankTimes& rt : c.ranks) rt.embedding_allreduce = 300'000;
  r.result = simulate_schedule(r.schedule, c).value();
  return r;
}

// (rank, op, microbatch) → [t0, t1) of the event, for the kinds with one event per microbatch.
using Key = std::tuple<int, InstrKind, int>;
std::map<Key, std::pair<TimeNs, TimeNs>> by_key(const Timeline& t) {
  std::map<Key, std::pair<TimeNs, TimeNs>> out;
  for (const TimelineEvent& e : t.events) out[{e.rank, e.op, e.microbatch}] = {e.t0, e.t1};
  return out;
}

TEST(EngineCommEvents, OneRecvPerMessageLastingTheWait) {
  const Played r = run_pp2();
  const auto ev = by_key(r.result.timeline);
  using P = std::pair<TimeNs, TimeNs>;
  const TimeNs a = kXfer + kLatency;  // one hop, free link
  // Rank 1 waits from 0 for activation 0 (rank 0's F0 ends at 1 ms); activation 1 (sent at 2 ms)
  // is there long before rank 1 reaches it after B0: a zero-length wait at 4 ms + a.
  EXPECT_EQ(ev.at({1, InstrKind::kRecvAct, 0}), (P{0, kMs + a}));
  EXPECT_EQ(ev.at({1, InstrKind::kRecvAct, 1}), (P{4 * kMs + a, 4 * kMs + a}));
  // Rank 0 reaches RECV_GRAD0 after F0 F1 (2 ms); rank 1's B0 ends at 4 ms + a, its gradient lands
  // one hop later. RECV_GRAD1: reached after B0 (6 ms + 2a), lands after rank 1's B1 (7 ms + a) + a.
  EXPECT_EQ(ev.at({0, InstrKind::kRecvGrad, 0}), (P{2 * kMs, 4 * kMs + 2 * a}));
  EXPECT_EQ(ev.at({0, InstrKind::kRecvGrad, 1}), (P{6 * kMs + 2 * a, 7 * kMs + 2 * a}));
  int recvs = 0, recv_events = 0;
  for (const auto& list : r.schedule.ranks)
    for (const Instr& in : list) recvs += in.is_recv();
  for (const TimelineEvent& e : r.result.timeline.events)
    if (e.op == InstrKind::kRecvAct || e.op == InstrKind::kRecvGrad) {
      ++recv_events;
      EXPECT_EQ(e.stream, Stream::kCompute) << event_name(e);
      EXPECT_EQ(e.category, Category::kComm) << event_name(e);
      EXPECT_EQ(e.bytes, 8000) << event_name(e);
      EXPECT_GE(e.instr, 0) << event_name(e);
    }
  EXPECT_EQ(recvs, 4);
  EXPECT_EQ(recv_events, recvs);
  // Every instruction has its event (no exit parts here): the contract's one event per instruction.
  EXPECT_EQ(r.result.timeline.events.size(), r.schedule.num_instructions());
}

TEST(EngineCommEvents, SendLastsTheModelledTransferFromItsPosting) {
  const Played r = run_pp2();
  const auto ev = by_key(r.result.timeline);
  using P = std::pair<TimeNs, TimeNs>;
  const TimeNs a = kXfer + kLatency;
  EXPECT_EQ(ev.at({0, InstrKind::kSendAct, 0}), (P{kMs, kMs + a}));  // posted when F0 ends
  EXPECT_EQ(ev.at({0, InstrKind::kSendAct, 1}), (P{2 * kMs, 2 * kMs + a}));
  EXPECT_EQ(ev.at({1, InstrKind::kSendGrad, 0}), (P{4 * kMs + a, 4 * kMs + 2 * a}));
  EXPECT_EQ(ev.at({1, InstrKind::kSendGrad, 1}), (P{7 * kMs + a, 7 * kMs + 2 * a}));
  for (const TimelineEvent& e : r.result.timeline.events)
    if (e.op == InstrKind::kSendAct || e.op == InstrKind::kSendGrad) {
      EXPECT_EQ(e.stream, Stream::kSend);
      EXPECT_EQ(e.duration(), a) << event_name(e);
      EXPECT_EQ(e.bytes, 8000);
    }
}

// Two sends posted at once on one link: the second queues behind the first's transfer, so its
// SEND (posting to arrival) lasts the queueing plus its own transfer.
TEST(EngineCommEvents, AQueuedSendIncludesItsWaitForTheLink) {
  ScheduleParams p;
  p.kind = ScheduleKind::kGPipe;
  p.pp = 2;
  p.num_microbatches = 2;
  const Schedule s = build_schedule(p).value();
  SimCosts c = uniform_costs(2, 1, 0, kMs);  // free forwards: both activations are sent at time 0
  for (ChunkTimes& ct : c.chunks) ct.p2p_bytes = 8000;
  for (LinkTimes& h : c.hops) h = {kLatency, 0.5};
  const EngineResult res = simulate_schedule(s, c).value();
  const auto ev = by_key(res.timeline);
  using P = std::pair<TimeNs, TimeNs>;
  EXPECT_EQ(ev.at({0, InstrKind::kSendAct, 0}), (P{0, kXfer + kLatency}));
  EXPECT_EQ(ev.at({0, InstrKind::kSendAct, 1}), (P{0, 2 * kXfer + kLatency}));
}

TEST(EngineCommEvents, EachEmbeddingAllReduceMemberFromItsOwnPost) {
  const Played r = run_pp2();
  const TimeNs a = kXfer + kLatency;
  // Rank 1 posts after its last send (7 ms + a), rank 0 after B1 (9 ms + 2a); the all-reduce
  // starts when the last member posts and takes 0.3 ms.
  const TimeNs end = 9 * kMs + 2 * a + 300'000;
  std::map<int, TimelineEvent> emb;
  for (const TimelineEvent& e : r.result.timeline.events)
    if (e.op == InstrKind::kAllReduceEmbedding) emb[e.rank] = e;
  ASSERT_EQ(emb.size(), 2u);
  EXPECT_EQ(emb[1].t0, 7 * kMs + a);
  EXPECT_EQ(emb[0].t0, 9 * kMs + 2 * a);
  for (auto& [rank, e] : emb) {
    EXPECT_EQ(e.t1, end);
    EXPECT_EQ(e.stream, Stream::kCollective);
    ASSERT_GE(e.instr, 0);
    EXPECT_EQ(r.schedule.ranks[static_cast<size_t>(rank)][static_cast<size_t>(e.instr)].kind,
              InstrKind::kAllReduceEmbedding);
  }
}

}  // namespace
}  // namespace eellm
