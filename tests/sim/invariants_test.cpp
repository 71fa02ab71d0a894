// Invariants every schedule must satisfy, checked on every schedule kind over several sizes:
// sends matched by receives, each microbatch's forward before its backward on a rank, no
// deadlock, every full microbatch forwarded once per virtual stage, compute streams never
// overlapping, memory never below the static part and back to it at the end, and the in-flight
// microbatches of 1F1B (p − rank) and ZB-H1 (≤ p).
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <tuple>

#include "sim/engine.h"
#include "sim/graph.h"
#include "sim/memory.h"
#include "sim/schedule.h"

namespace eellm {
namespace {

struct Case {
  ScheduleKind kind;
  int pp, vp, m;
  std::vector<int> exit_stages;  // virtual stages with an exit
};

std::string name(const Case& c) {
  return std::string(to_string(c.kind)) + " pp" + std::to_string(c.pp) + " vp" + std::to_string(c.vp) + " m" +
         std::to_string(c.m) + " exits" + std::to_string(c.exit_stages.size());
}

std::vector<Case> all_cases() {
  std::vector<Case> cs;
  for (int pp : {1, 2, 3, 4, 8})
    for (int m : {1, 2, 4, 8, 12, 16}) {
      if (pp == 1) cs.push_back({ScheduleKind::kNoPipelining, 1, 1, m, {}});
      cs.push_back({ScheduleKind::kGPipe, pp, 1, m, {}});
      cs.push_back({ScheduleKind::k1F1B, pp, 1, m, {}});
      cs.push_back({ScheduleKind::kZBH1, pp, 1, m, {}});
      cs.push_back({ScheduleKind::kEE1F1B, pp, 1, m, {0}});
      if (pp > 1) cs.push_back({ScheduleKind::kEETuning, pp, 1, m, {0, pp - 1}});
      if (m >= pp + 3 && pp > 1) {
        cs.push_back({ScheduleKind::kEEFill, pp, 1, m, {pp / 2}});
        cs.push_back({ScheduleKind::kEEFill, pp, 1, m, {0, 1}});
      }
      for (int vp : {2, 3})
        if (m % pp == 0 && m >= pp && pp > 1) cs.push_back({ScheduleKind::kInterleaved1F1B, pp, vp, m, {1}});
    }
  return cs;
}

SimCosts costs_for(const Case& c) {
  SimCosts k = uniform_costs(c.pp, c.vp, 1000, 2000, c.kind == ScheduleKind::kZBH1 ? 900 : 0);
  for (size_t v = 0; v < k.chunks.size(); ++v) {
    k.chunks[v].p2p_bytes = 4096;
    k.chunks[v].fwd += 37 * static_cast<TimeNs>(v);  // uneven stages
  }
  for (int s : c.exit_stages) {
    k.chunks[static_cast<size_t>(s)].exit_fwd = 300;
    k.chunks[static_cast<size_t>(s)].exit_bwd_input = 600;
    k.chunks[static_cast<size_t>(s)].fwd_partial = 500;
    k.chunks[static_cast<size_t>(s)].bwd_input_partial = 1000;
  }
  for (auto& h : k.hops) {
    h.latency = 50;
    h.ns_per_byte = 0.01;
  }
  for (auto& r : k.ranks) {
    r.dp_allreduce = 700;
    r.embedding_allreduce = 200;
    r.optimizer = 400;
  }
  return k;
}

TEST(ScheduleInvariants, HoldForEverySchedule) {
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(name(c));
    ScheduleParams p;
    p.kind = c.kind;
    p.pp = c.pp;
    p.vp = c.vp;
    p.num_microbatches = c.m;
    p.stage_has_exit.assign(static_cast<size_t>(c.pp * c.vp), false);
    for (int s : c.exit_stages) p.stage_has_exit[static_cast<size_t>(s)] = true;
    p.dp_allreduce = true;
    p.overlap_grad_reduce = c.m % 2 == 0;
    if (c.pp > 1) p.embedding_group = {0, c.pp - 1};
    auto s = build_schedule(p);
    if (!s.is_ok() && c.kind == ScheduleKind::kEEFill) {  // a placement EE-LLM's released order cannot run
      p.fill_semantics = FillSemantics::kExitTruncated;
      s = build_schedule(p);
    }
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    ASSERT_TRUE(check_schedule(*s).is_ok()) << check_schedule(*s).to_string();
    ASSERT_TRUE(find_deadlock(*s).is_ok()) << find_deadlock(*s).to_string();

    // Sends and receives pair up one to one.
    auto mm = match_messages(*s);
    ASSERT_TRUE(mm.is_ok());
    size_t sends = 0, recvs = 0;
    for (const auto& list : s->ranks)
      for (const Instr& in : list) {
        sends += in.is_send();
        recvs += in.is_recv();
      }
    EXPECT_EQ(sends, mm->messages.size());
    EXPECT_EQ(recvs, mm->messages.size());

    // Every full microbatch runs forward exactly once on every virtual stage.
    std::map<std::pair<int, int>, int> fwd;
    for (size_t r = 0; r < s->ranks.size(); ++r)
      for (const Instr& in : s->ranks[r])
        if (in.kind == InstrKind::kForward && !in.has(kFill))
          ++fwd[{in.microbatch, s->virtual_stage(static_cast<int>(r), in.chunk)}];
    const int full = c.m - s->num_fill_warmup;
    EXPECT_EQ(static_cast<int>(fwd.size()), full * c.pp * c.vp);
    for (const auto& [key, n] : fwd) EXPECT_EQ(n, 1);

    const SimCosts k = costs_for(c);
    auto r = simulate_schedule(*s, k);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_GT(r->iteration_ns, 0);

    // A rank's compute events never overlap and the clock order is deterministic.
    std::vector<TimeNs> last_end(static_cast<size_t>(c.pp), 0);
    for (size_t i = 1; i < r->timeline.events.size(); ++i)
      EXPECT_LE(r->timeline.events[i - 1].t0, r->timeline.events[i].t0);
    for (const TimelineEvent& e : r->timeline.events) {
      if (e.stream != Stream::kCompute) continue;
      EXPECT_GE(e.t0, last_end[static_cast<size_t>(e.rank)]);
      last_end[static_cast<size_t>(e.rank)] = e.t1;
    }

    MemoryParams mp;
    mp.static_bytes.assign(static_cast<size_t>(c.pp), 1000);
    mp.chunks.assign(static_cast<size_t>(c.pp * c.vp), ChunkMemory{100, 40, 7});
    const MemoryTimeline mem = memory_timeline(*s, *r, mp);
    for (const MemorySample& m : mem.samples) EXPECT_GE(m.bytes, 1000);
    for (int rank = 0; rank < c.pp; ++rank) {
      int64_t last = -1;
      for (const MemorySample& m : mem.samples)
        if (m.rank == rank) last = m.bytes;
      EXPECT_EQ(last, 1000) << "rank " << rank << " ends with activations still held";
      const int in_flight = mem.ranks[static_cast<size_t>(rank)].max_in_flight;
      if (c.kind == ScheduleKind::k1F1B || c.kind == ScheduleKind::kEE1F1B) {
        EXPECT_EQ(in_flight, std::min(c.pp - rank, c.m)) << "rank " << rank;
      }
      if (c.kind == ScheduleKind::kZBH1) {
        EXPECT_LE(in_flight, c.pp) << "rank " << rank;
      }
      if (c.kind == ScheduleKind::kGPipe) {
        EXPECT_EQ(in_flight, c.m);
      }
    }
  }
}

TEST(ScheduleInvariants, BadParametersAreErrorsNamingTheValue) {
  ScheduleParams p;
  p.kind = ScheduleKind::kInterleaved1F1B;
  p.pp = 4;
  p.vp = 2;
  p.num_microbatches = 6;
  auto s = build_schedule(p);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("(6)"), std::string::npos) << s.status().message();
  p.kind = ScheduleKind::kEEFill;
  p.vp = 1;
  p.num_microbatches = 4;
  p.stage_has_exit = {true, false, false, false};
  s = build_schedule(p);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("num_fill_warmup_microbatches (2)"), std::string::npos) << s.status().message();
  p.kind = ScheduleKind::kNoPipelining;
  s = build_schedule(p);
  EXPECT_FALSE(s.is_ok());
}

}  // namespace
}  // namespace eellm
