// The discrete-event run loop and the deadlock report (see engine.h for the model).
#include "sim/engine.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace eellm {
namespace {

// The only event: "rank r may continue at time t" (its compute step ended, or the data or
// collective it waits for is there). Each rank has at most one pending event, so the queue is a
// tournament tree over the ranks rather than a binary heap of events. Why: perf on pp 64 showed
// ~40 % of the run in std::pop_heap/push_heap — a pop sifts a hole to the bottom (two compares per
// level) and re-inserts the last entry, then the rank's next event is pushed, with compares on
// the (t, seq) of 65 entries the branch predictor cannot learn. Here popping is reading the root
// and the rank that ran replays its path once (one compare per level, log2(pp) levels, all in L1).
// Order: earliest t, ties to the lower sequence number (the event scheduled first) — the heap's
// order exactly, since (t, seq) is unique, so every result is unchanged.
class RankQueue {
 public:
  explicit RankQueue(int ranks) {
    while (leaves_ < static_cast<size_t>(ranks)) leaves_ <<= 1;
    key_.assign(leaves_, Key{kNever, 0});
    node_.assign(2 * leaves_, 0);
    for (size_t i = 0; i < leaves_; ++i) node_[leaves_ + i] = static_cast<int32_t>(i);
    for (size_t i = leaves_ - 1; i >= 1; --i) node_[i] = node_[2 * i];
  }
  bool empty() const { return key_[static_cast<size_t>(node_[1])].t == kNever; }
  int top() const { return node_[1]; }
  TimeNs top_time() const { return key_[static_cast<size_t>(node_[1])].t; }
  // Sets rank r's pending event (it has none) without replaying its path; replay(r) must follow
  // before the next top(). Used for the rank being run, whose path is replayed once after it ran.
  void set_deferred(int r, TimeNs t, uint32_t seq) {
    assert(key_[static_cast<size_t>(r)].t == kNever && "a rank has at most one pending event");
    key_[static_cast<size_t>(r)] = Key{t, seq};
  }
  void set(int r, TimeNs t, uint32_t seq) {
    set_deferred(r, t, seq);
    replay(r);
  }
  // Removes rank r's event (deferred: replay(r) before the next top()).
  void clear_deferred(int r) { key_[static_cast<size_t>(r)].t = kNever; }
  // Recomputes the winners on r's path, the winner climbing in registers against each sibling
  // subtree's stored winner. Paths of other ranks replayed while r's was stale are repaired too:
  // the nodes they share with r's path are exactly the ones recomputed here. Keys are unique
  // (seq), so which side wins a tie of two empty leaves does not matter.
  void replay(int r) {
    int32_t w = r;
    TimeNs wt = key_[static_cast<size_t>(r)].t;
    uint32_t ws = key_[static_cast<size_t>(r)].seq;
    for (size_t i = leaves_ + static_cast<size_t>(r); i > 1; i >>= 1) {
      const int32_t o = node_[i ^ 1];
      const Key ko = key_[static_cast<size_t>(o)];
      if ((ko.t < wt) | ((ko.t == wt) & (ko.seq < ws))) w = o, wt = ko.t, ws = ko.seq;
      node_[i >> 1] = w;
    }
  }

 private:
  static constexpr TimeNs kNever = INT64_MAX;
  struct Key {
    TimeNs t;
    uint32_t seq;
  };
  size_t leaves_ = 1;
  std::vector<Key> key_;       // by rank (padded to a power of two with kNever)
  std::vector<int32_t> node_;  // node_[i]: winning rank of subtree i; leaves at [leaves_, 2·leaves_)
};

}  // namespace

TimeNs exit_duration(const Instr& in, const ChunkTimes& c) {
  switch (in.kind) {
    case InstrKind::kForward:
      return c.exit_fwd;
    case InstrKind::kBackward:
      return c.exit_bwd_input + c.exit_bwd_weight;
    case InstrKind::kBackwardInput:
      return c.exit_bwd_input;
    case InstrKind::kBackwardWeight:
      return c.exit_bwd_weight;
    case InstrKind::kSendAct:
    case InstrKind::kRecvAct:
    case InstrKind::kSendGrad:
    case InstrKind::kRecvGrad:
    case InstrKind::kAllReduceDP:
    case InstrKind::kAllReduceEmbedding:
    case InstrKind::kOptimizerStep:
      return 0;
  }
  return 0;
}

namespace {

double flops_of(const Instr& in, const ChunkTimes& c, bool exit) {
  switch (in.kind) {
    case InstrKind::kForward:
      return exit ? c.exit_fwd_flops : c.fwd_flops;
    case InstrKind::kBackward:
    case InstrKind::kBackwardInput:
    case InstrKind::kBackwardWeight: {
      const double total = exit ? c.exit_bwd_flops : c.bwd_flops;
      if (in.kind == InstrKind::kBackward) return total;
      return 0.5 * total;  // the B/W split of a linear layer's backward is even in FLOPs
    }
    case InstrKind::kSendAct:
    case InstrKind::kRecvAct:
    case InstrKind::kSendGrad:
    case InstrKind::kRecvGrad:
    case InstrKind::kAllReduceDP:
    case InstrKind::kAllReduceEmbedding:
    case InstrKind::kOptimizerStep:
      return 0;
  }
  return 0;
}

// One embedding-group all-reduce (the k-th on each member rank).
struct Collective {
  int posted = 0;
  TimeNs max_post = 0;
  TimeNs end = -1;  // -1 while members are missing
};

struct RankState {
  size_t pc = 0;
  bool waiting_msg = false;
  bool waiting_coll = false;
  TimeNs recv_reached = -1;  // when the rank reached the RECV it waits at (-1: not at a RECV)
  int emb_count = 0;         // embedding collectives posted so far
  TimeNs coll_free = 0;      // collective stream free from
  TimeNs coll_end = 0;       // end of the latest posted collective
};

std::string describe_block(const Schedule& s, const std::vector<RankState>& st, const MessageMap& mm, int r) {
  const auto& list = s.ranks[static_cast<size_t>(r)];
  const RankState& rs = st[static_cast<size_t>(r)];
  const Instr& in = list[rs.pc];
  std::string line =
      "rank " + std::to_string(r) + " blocked at instruction " + std::to_string(rs.pc) + " (" + to_string(in) + ")";
  if (in.is_recv()) {
    const auto& msg = mm.messages[static_cast<size_t>(mm.message_of[static_cast<size_t>(r)][rs.pc])];
    line += ", waiting for rank " + std::to_string(msg.src_rank) + " instruction " + std::to_string(msg.src_index) +
            " (" + to_string(s.ranks[static_cast<size_t>(msg.src_rank)][static_cast<size_t>(msg.src_index)]) + ")";
  } else if (rs.waiting_coll) {
    line += ", waiting for the other members of its embedding-group all-reduce";
  }
  return line;
}

Status deadlock_report(const Schedule& s, const std::vector<RankState>& st, const MessageMap& mm) {
  std::string report = "deadlock: the schedule cannot complete";
  int first = -1;
  for (size_t r = 0; r < st.size(); ++r) {
    if (st[r].pc >= s.ranks[r].size()) continue;
    if (first < 0) first = static_cast<int>(r);
    report += "\n  " + describe_block(s, st, mm, static_cast<int>(r));
  }
  // Follow "waits for" from the first blocked rank until a rank repeats: that is the cycle.
  std::vector<int> seen(st.size(), -1), chain;
  int r = first;
  while (r >= 0 && seen[static_cast<size_t>(r)] < 0) {
    seen[static_cast<size_t>(r)] = static_cast<int>(chain.size());
    chain.push_back(r);
    const RankState& rs = st[static_cast<size_t>(r)];
    if (rs.pc >= s.ranks[static_cast<size_t>(r)].size()) break;
    const Instr& in = s.ranks[static_cast<size_t>(r)][rs.pc];
    if (!in.is_recv()) break;
    r = mm.messages[static_cast<size_t>(mm.message_of[static_cast<size_t>(r)][rs.pc])].src_rank;
  }
  if (r >= 0 && seen[static_cast<size_t>(r)] >= 0) {
    report += "\n  cycle:";
    for (size_t i = static_cast<size_t>(seen[static_cast<size_t>(r)]); i < chain.size(); ++i) {
      const int cr = chain[i];
      report += " rank " + std::to_string(cr) + " (" +
                to_string(s.ranks[static_cast<size_t>(cr)][st[static_cast<size_t>(cr)].pc]) + ") →";
    }
    report += " rank " + std::to_string(r);
  }
  return Status::failed_precondition(report);
}

}  // namespace

TimeNs compute_duration(const Instr& in, const ChunkTimes& c, const RankTimes& rank) {
  const bool trunc = in.has(kTruncated);
  switch (in.kind) {
    case InstrKind::kForward:
      return (trunc ? c.fwd_partial : c.fwd) + c.exit_fwd;
    case InstrKind::kBackward:
      if (in.has(kExitOnly)) return c.exit_bwd_input + c.exit_bwd_weight;
      return (trunc ? c.bwd_input_partial + c.bwd_weight_partial + c.recompute_partial
                    : c.bwd_input + c.bwd_weight + c.recompute) +
             c.exit_bwd_input + c.exit_bwd_weight;
    case InstrKind::kBackwardInput:
      return (trunc ? c.bwd_input_partial + c.recompute_partial : c.bwd_input + c.recompute) + c.exit_bwd_input;
    case InstrKind::kBackwardWeight:
      return (trunc ? c.bwd_weight_partial : c.bwd_weight) + c.exit_bwd_weight;
    case InstrKind::kOptimizerStep:
      return rank.optimizer;
    case InstrKind::kSendAct:
    case InstrKind::kRecvAct:
    case InstrKind::kSendGrad:
    case InstrKind::kRecvGrad:
    case InstrKind::kAllReduceDP:
    case InstrKind::kAllReduceEmbedding:
      return 0;
  }
  return 0;
}

SimCosts uniform_costs(int pp, int vp, TimeNs f, TimeNs b, TimeNs w) {
  SimCosts c;
  ChunkTimes ct;
  ct.fwd = ct.fwd_partial = f;
  ct.bwd_input = ct.bwd_input_partial = b;
  ct.bwd_weight = ct.bwd_weight_partial = w;
  c.chunks.assign(static_cast<size_t>(pp * vp), ct);
  c.ranks.assign(static_cast<size_t>(pp), RankTimes{});
  c.hops.assign(static_cast<size_t>(pp), LinkTimes{});
  return c;
}

namespace {

// The engine of one run (ns-3's shape): state in flat members sized before the loop, one handler
// per instruction kind, and a short run loop. Each handler runs rank r's instruction at time t
// and returns whether the rank goes on to its next instruction now (false: it started a compute
// step, or blocks, and an event will wake it).
class Engine {
 public:
  Engine(const Schedule& s, const SimCosts& costs, const EngineOptions& opt, EngineResult& res)
      : s_(s),
        costs_(costs),
        opt_(opt),
        res_(res),
        mm_(*res.messages),
        st_(static_cast<size_t>(s.pp)),
        link_free_(static_cast<size_t>(2 * s.pp), 0),
        queue_(s.pp) {
    const int pp = s.pp;
    res_.msg_posted.assign(mm_.messages.size(), -1);
    res_.msg_arrival.assign(mm_.messages.size(), -1);
    res_.timing.resize(static_cast<size_t>(pp));
    for (int r = 0; r < pp; ++r) res_.timing[static_cast<size_t>(r)].assign(list(r).size(), InstrTiming{});
    // Embedding-group collectives: the k-th on every member is one collective.
    int emb_per_rank = 0;
    for (int r = 0; r < pp; ++r) {
      int n = 0;
      for (const Instr& in : list(r)) n += in.kind == InstrKind::kAllReduceEmbedding;
      if (n > 0) emb_members_.push_back(r);
      emb_per_rank = std::max(emb_per_rank, n);
    }
    emb_.resize(static_cast<size_t>(emb_per_rank));
    emb_post_.assign(static_cast<size_t>(pp), std::vector<MemberPost>(static_cast<size_t>(emb_per_rank)));
    for (int r : emb_members_) emb_duration_ = std::max(emb_duration_, rank_times(r).embedding_allreduce);
    res_.timeline.num_ranks = pp;
    if (opt_.record_timeline) res_.timeline.events.reserve(s.num_instructions() * 2);
  }

  // The run loop: pop the earliest event, advance the clock, run the rank until it waits.
  Status run() {
    const int pp = s_.pp;
    res_.rank_end.assign(static_cast<size_t>(pp), 0);
    for (int r = 0; r < pp; ++r) schedule_event(0, r);
    TimeNs now = 0;
    while (!queue_.empty()) {
      const int r = queue_.top();
      assert(queue_.top_time() >= now && "simulation clock went backwards");
      now = queue_.top_time();
      queue_.clear_deferred(r);
      running_ = r;
      ++res_.events_processed;
      advance(r, now);
      running_ = -1;
      queue_.replay(r);
      const RankState& rs = st_[static_cast<size_t>(r)];
      if (rs.pc >= list(r).size()) res_.rank_end[static_cast<size_t>(r)] = std::max(now, rs.coll_end);
    }
    for (int r = 0; r < pp; ++r)
      if (st_[static_cast<size_t>(r)].pc < list(r).size()) return deadlock_report(s_, st_, mm_);
    res_.iteration_ns = 0;
    for (TimeNs e : res_.rank_end) res_.iteration_ns = std::max(res_.iteration_ns, e);
    if (opt_.record_timeline) res_.timeline.sort_events();
    return Status::ok();
  }

 private:
  const std::vector<Instr>& list(int r) const { return s_.ranks[static_cast<size_t>(r)]; }
  const RankTimes& rank_times(int r) const { return costs_.ranks[static_cast<size_t>(r)]; }
  const ChunkTimes& chunk_times(int r, const Instr& in) const {
    return costs_.chunks[static_cast<size_t>(s_.virtual_stage(r, in.chunk))];
  }
  InstrTiming& timing(int r) { return res_.timing[static_cast<size_t>(r)][st_[static_cast<size_t>(r)].pc]; }
  int message(int r, size_t i) const { return mm_.message_of[static_cast<size_t>(r)][i]; }
  // Bytes of message `id`: the sending chunk's activation or gradient.
  int64_t message_bytes(int id) const {
    const MessageMap::Message& m = mm_.messages[static_cast<size_t>(id)];
    return chunk_times(m.src_rank, list(m.src_rank)[static_cast<size_t>(m.src_index)]).p2p_bytes;
  }

  // At most one pending event per rank: a rank is either computing, or blocked, or waiting for a
  // wake-up at a known time. The rank being run has its queue path replayed once afterwards.
  void schedule_event(TimeNs t, int rank) {
    assert(seq_ < UINT32_MAX);
    if (rank == running_)
      queue_.set_deferred(rank, t, seq_++);
    else
      queue_.set(rank, t, seq_++);
  }

  // Events are built only when the timeline is on (off: the planner's hot path).
  void record_comm(int rank, const Instr& in, TimeNs t0, TimeNs t1, int64_t bytes, int32_t idx) {
    if (!opt_.record_timeline) return;
    TimelineEvent e = instr_event(rank, in, idx, t0, t1);
    e.bytes = bytes;
    res_.timeline.events.push_back(e);
  }
  void record_compute(int r, const Instr& in, TimeNs t0, TimeNs d) {
    if (!opt_.record_timeline) return;
    const TimelineEvent whole = instr_event(r, in, static_cast<int32_t>(st_[static_cast<size_t>(r)].pc), t0, t0 + d);
    if (in.kind == InstrKind::kOptimizerStep) {
      res_.timeline.events.push_back(whole);
      return;
    }
    const ChunkTimes& c = chunk_times(r, in);
    append_compute_events(res_.timeline.events, whole, exit_duration(in, c),
                          in.has(kExitOnly) ? 0 : flops_of(in, c, false), flops_of(in, c, true));
  }

  // Runs rank r's list from time t until it starts a compute step or blocks.
  void advance(int r, TimeNs t) {
    RankState& rs = st_[static_cast<size_t>(r)];
    const auto& instrs = list(r);
    while (rs.pc < instrs.size()) {
      const Instr& in = instrs[rs.pc];
      bool go = false;
      switch (in.kind) {
        case InstrKind::kSendAct:
        case InstrKind::kSendGrad:
          go = on_send(r, in, t);
          break;
        case InstrKind::kRecvAct:
        case InstrKind::kRecvGrad:
          go = on_recv(r, in, t);
          break;
        case InstrKind::kAllReduceDP:
          go = on_allreduce_dp(r, in, t);
          break;
        case InstrKind::kAllReduceEmbedding:
          go = on_allreduce_embedding(r, t);
          break;
        case InstrKind::kOptimizerStep:
          go = on_optimizer(r, in, t);
          break;
        case InstrKind::kForward:
        case InstrKind::kBackward:
        case InstrKind::kBackwardInput:
        case InstrKind::kBackwardWeight:
          go = on_compute(r, in, t);
          break;
      }
      if (!go) return;
    }
  }

  bool on_send(int r, const Instr& in, TimeNs t) {
    RankState& rs = st_[static_cast<size_t>(r)];
    const int id = message(r, rs.pc);
    const int hop = in.kind == InstrKind::kSendAct ? r : in.peer;  // hop h joins h and h+1
    const size_t dir = static_cast<size_t>(2 * hop + (in.kind == InstrKind::kSendGrad));
    const LinkTimes& link = costs_.hops[static_cast<size_t>(hop)];
    const int64_t bytes = chunk_times(r, in).p2p_bytes;
    const TimeNs start = std::max(t, link_free_[dir]);
    const TimeNs xfer = static_cast<TimeNs>(static_cast<double>(bytes) * link.ns_per_byte + 0.5);
    link_free_[dir] = start + xfer;
    const TimeNs arrival = start + xfer + link.latency;
    res_.msg_posted[static_cast<size_t>(id)] = t;
    res_.msg_arrival[static_cast<size_t>(id)] = arrival;
    // Wake the receiver if it is already blocked on this message (no event otherwise: it will
    // find the arrival time when it gets there).
    RankState& ds = st_[static_cast<size_t>(in.peer)];
    if (ds.waiting_msg && message(in.peer, ds.pc) == id) {
      ds.waiting_msg = false;
      schedule_event(arrival, in.peer);
    }
    // The event contract's SEND: from posting to local completion, which the model puts at the
    // arrival (queueing for the link, transfer and latency).
    timing(r) = {t, arrival};
    record_comm(r, in, t, arrival, bytes, static_cast<int32_t>(rs.pc));
    ++rs.pc;
    return true;
  }

  // The event contract's RECV: the wait from reaching the instruction until the data is there
  // (zero length when it already was).
  bool on_recv(int r, const Instr& in, TimeNs t) {
    RankState& rs = st_[static_cast<size_t>(r)];
    if (rs.recv_reached < 0) rs.recv_reached = t;
    const int id = message(r, rs.pc);
    const TimeNs arrival = res_.msg_arrival[static_cast<size_t>(id)];
    if (arrival < 0) {  // not sent yet: the send wakes this rank
      rs.waiting_msg = true;
      return false;
    }
    if (arrival > t) {  // in flight: continue when it lands
      schedule_event(arrival, r);
      return false;
    }
    timing(r) = {rs.recv_reached, t};
    record_comm(r, in, rs.recv_reached, t, message_bytes(id), static_cast<int32_t>(rs.pc));
    rs.recv_reached = -1;
    ++rs.pc;
    return true;
  }

  bool on_allreduce_dp(int r, const Instr& in, TimeNs t) {
    RankState& rs = st_[static_cast<size_t>(r)];
    const RankTimes& rt = rank_times(r);
    const TimeNs start = std::max(t, rs.coll_free);
    rs.coll_free = rs.coll_end = std::max(rs.coll_end, start + rt.dp_allreduce);
    timing(r) = {start, start + rt.dp_allreduce};
    record_comm(r, in, start, start + rt.dp_allreduce, rt.dp_bytes, static_cast<int32_t>(rs.pc));
    ++rs.pc;
    return true;
  }

  // Each member's event runs from its own post (its collective stream free) to the collective's
  // end: the wait for the group's last member, then the all-reduce.
  bool on_allreduce_embedding(int r, TimeNs t) {
    RankState& rs = st_[static_cast<size_t>(r)];
    const size_t k = static_cast<size_t>(rs.emb_count++);
    Collective& c = emb_[k];
    ++c.posted;
    const TimeNs post = std::max(t, rs.coll_free);
    c.max_post = std::max(c.max_post, post);
    emb_post_[static_cast<size_t>(r)][k] = {post, static_cast<int32_t>(rs.pc)};
    timing(r) = {post, post};
    if (c.posted == static_cast<int>(emb_members_.size())) {
      c.end = c.max_post + emb_duration_;
      for (int m : emb_members_) {
        RankState& ms = st_[static_cast<size_t>(m)];
        ms.coll_free = ms.coll_end = std::max(ms.coll_end, c.end);
        const MemberPost mp = emb_post_[static_cast<size_t>(m)][k];
        record_comm(m, list(m)[static_cast<size_t>(mp.instr)], mp.t, c.end, rank_times(m).embedding_bytes, mp.instr);
        if (m != r && ms.waiting_coll) {
          ms.waiting_coll = false;
          schedule_event(t, m);
        }
      }
    }
    ++rs.pc;
    return true;
  }

  bool on_optimizer(int r, const Instr& in, TimeNs t) {
    RankState& rs = st_[static_cast<size_t>(r)];
    for (int k = 0; k < rs.emb_count; ++k)
      if (emb_[static_cast<size_t>(k)].end < 0) {
        rs.waiting_coll = true;
        return false;
      }
    const TimeNs start = std::max(t, rs.coll_end);
    const TimeNs d = rank_times(r).optimizer;
    timing(r) = {start, start + d};
    record_compute(r, in, start, d);
    ++rs.pc;
    schedule_event(start + d, r);
    return false;
  }

  bool on_compute(int r, const Instr& in, TimeNs t) {
    const TimeNs d = compute_duration(in, chunk_times(r, in), rank_times(r));
    timing(r) = {t, t + d};
    record_compute(r, in, t, d);
    ++st_[static_cast<size_t>(r)].pc;
    schedule_event(t + d, r);
    return false;
  }

  const Schedule& s_;
  const SimCosts& costs_;
  const EngineOptions& opt_;
  EngineResult& res_;
  const MessageMap& mm_;
  std::vector<RankState> st_;
  std::vector<TimeNs> link_free_;  // per hop and direction: when its bandwidth is free again
  std::vector<int> emb_members_;
  std::vector<Collective> emb_;
  struct MemberPost {
    TimeNs t = 0;        // the member's post
    int32_t instr = -1;  // its AR-EMB instruction
  };
  std::vector<std::vector<MemberPost>> emb_post_;  // [rank][k]: the rank's k-th embedding all-reduce
  TimeNs emb_duration_ = 0;
  RankQueue queue_;
  int running_ = -1;  // the rank being advanced
  uint32_t seq_ = 0;
};

}  // namespace

StatusOr<EngineResult> simulate_schedule(const Schedule& s, const SimCosts& costs, const EngineOptions& opt) {
  const int pp = s.pp;
  if (static_cast<int>(costs.chunks.size()) != s.num_virtual_stages() || static_cast<int>(costs.ranks.size()) != pp ||
      static_cast<int>(costs.hops.size()) != pp)
    return Status::invalid_argument("costs sized for " + std::to_string(costs.chunks.size()) + " chunks / " +
                                    std::to_string(costs.ranks.size()) + " ranks do not fit a schedule with pp " +
                                    std::to_string(pp) + " × vp " + std::to_string(s.vp));
  EngineResult res;
  if (opt.messages) {
    const MessageMap& given = *opt.messages;
    bool fits = given.message_of.size() == s.ranks.size();
    for (size_t r = 0; fits && r < s.ranks.size(); ++r) fits = given.message_of[r].size() == s.ranks[r].size();
    if (!fits)
      return Status::invalid_argument("EngineOptions::messages was matched for another schedule (shape differs)");
    res.messages = opt.messages;
  } else {
    EELLM_ASSIGN_OR_RETURN(MessageMap matched, match_messages(s));
    res.messages = std::make_shared<const MessageMap>(std::move(matched));
  }
  Engine engine(s, costs, opt, res);
  EELLM_RETURN_IF_ERROR(engine.run());
  return res;
}

}  // namespace eellm
