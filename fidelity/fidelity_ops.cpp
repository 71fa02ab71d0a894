// The per-op part of the fidelity harness: the simulation reshaped into what the executor traces,
// and the like-for-like comparison of both (see fidelity.h, compare_ops, and
// docs/accuracy.md "What each per-op row compares"). Rows are taken per instruction with its
// parts merged (sim/timeline.h whole_instructions, the event contract), exit parts on rows of
// their own that the executor does not measure.
//
// What the executor's trace records (exec/train/runtime.cpp, run_iteration): one event per instruction,
// from the rank reaching it to the rank leaving it, on the rank's own clock (origin: leaving the
// barrier before the iteration). So a SEND_* event is the posting of a non-blocking send (its
// completion is not traced; wait_sends runs after the loop), a RECV_* event the time the rank
// blocks until the data is there, and an ALLREDUCE_EMBEDDING event a blocking all-reduce: the
// wait for the group's last member plus the transfer. The engine models SEND_* as the transfer
// and records no RECV_* event, so executor_shaped_timeline still reshapes the prediction for
// these (the SEND/RECV half of the event contract is not unified yet). Thread-safety: pure functions.
#include <algorithm>
#include <map>
#include <tuple>

#include "fidelity/fidelity.h"
#include "sim/simulate.h"

namespace eellm::fidelity {
namespace {

bool is_send(InstrKind k) {
  return k == InstrKind::kSendAct || k == InstrKind::kSendGrad;
}
bool is_recv(InstrKind k) {
  return k == InstrKind::kRecvAct || k == InstrKind::kRecvGrad;
}

// Samples (seconds) of each row of one timeline.
using RowKey = std::tuple<int, bool, std::string>;  // op, exit_part, part
std::map<RowKey, std::vector<double>> samples(const Timeline& timeline) {
  std::map<RowKey, std::vector<double>> out;
  // Exit parts on their own rows; every other row per instruction, its parts merged (timeline.h).
  for (const TimelineEvent& e : timeline.events)
    if (e.exit_part) out[{static_cast<int>(e.op), true, ""}].push_back(ns_to_seconds(e.duration()));
  const Timeline t = whole_instructions(timeline);
  // ALLREDUCE_EMBEDDING: the k-th on each member rank is one collective.
  std::map<int32_t, std::vector<const TimelineEvent*>> emb_by_rank;
  for (const TimelineEvent& e : t.events) {
    if (is_send(e.op)) continue;  // posting vs transfer: not comparable (see the header)
    if (e.op == InstrKind::kAllReduceEmbedding) {
      emb_by_rank[e.rank].push_back(&e);
      continue;
    }
    out[{static_cast<int>(e.op), e.exit_part, is_recv(e.op) ? "wait" : ""}].push_back(ns_to_seconds(e.duration()));
  }
  size_t collectives = 0;
  for (auto& [rank, evs] : emb_by_rank) {
    std::sort(evs.begin(), evs.end(), [](const TimelineEvent* a, const TimelineEvent* b) { return a->t0 < b->t0; });
    collectives = std::max(collectives, evs.size());
  }
  const int emb = static_cast<int>(InstrKind::kAllReduceEmbedding);
  for (size_t k = 0; k < collectives; ++k) {
    std::vector<TimeNs> in_call;
    for (const auto& [rank, evs] : emb_by_rank)
      if (k < evs.size()) in_call.push_back(evs[k]->duration());
    const TimeNs transfer = *std::min_element(in_call.begin(), in_call.end());
    out[{emb, false, "transfer"}].push_back(ns_to_seconds(transfer));
    for (TimeNs d : in_call) out[{emb, false, "wait"}].push_back(ns_to_seconds(d - transfer));
  }
  return out;
}

}  // namespace

std::string OpRow::name() const {
  std::string n = std::string(exit_part ? "EXIT-" : "") + to_string(op);
  if (!part.empty()) n += " " + part;
  return n;
}

std::vector<OpRow> compare_ops(const Timeline& predicted, const Timeline& measured) {
  const auto p = samples(predicted), m = samples(measured);
  std::map<RowKey, OpRow> rows;
  auto add = [&](const std::map<RowKey, std::vector<double>>& from, bool is_predicted) {
    for (const auto& [key, v] : from) {
      OpRow& r = rows[key];
      r.op = static_cast<InstrKind>(std::get<0>(key));
      r.exit_part = std::get<1>(key);
      r.part = std::get<2>(key);
      double sum = 0;
      for (double x : v) sum += x;
      (is_predicted ? r.count_predicted : r.count_measured) = static_cast<int>(v.size());
      (is_predicted ? r.mean_predicted_s : r.mean_measured_s) = v.empty() ? 0 : sum / static_cast<double>(v.size());
    }
  };
  add(p, true);
  add(m, false);
  std::vector<OpRow> out;
  for (auto& [key, r] : rows) {
    r.relative_error =
        r.comparable() && r.mean_measured_s > 0 ? (r.mean_predicted_s - r.mean_measured_s) / r.mean_measured_s : 0;
    out.push_back(r);
  }
  return out;
}

Timeline executor_shaped_timeline(const SimulationResult& result) {
  const Schedule& s = result.schedule;
  const EngineResult& en = result.engine;
  Timeline t;
  t.num_ranks = en.timeline.num_ranks;
  t.memory = en.timeline.memory;
  // The engine's collective events of each rank's embedding all-reduces, in order (drawn from the
  // last member's post to the end; absent when the all-reduce costs nothing).
  std::map<int32_t, std::vector<const TimelineEvent*>> emb_events;
  for (const TimelineEvent& e : en.timeline.events) {
    if (e.op == InstrKind::kAllReduceEmbedding) {
      emb_events[e.rank].push_back(&e);
      continue;
    }
    if (is_send(e.op)) continue;  // the executor traces the posting, which takes no modelled time
    t.events.push_back(e);
  }
  for (auto& [rank, evs] : emb_events)
    std::sort(evs.begin(), evs.end(), [](const TimelineEvent* a, const TimelineEvent* b) { return a->t0 < b->t0; });
  for (size_t r = 0; r < s.ranks.size(); ++r) {
    const auto& list = s.ranks[r];
    const auto& timing = en.timing[r];
    const auto& emb = emb_events[static_cast<int32_t>(r)];
    size_t emb_k = 0;
    // The rank's own clock: compute steps and receives advance it; posting a send or a collective
    // does not (they run on the other streams), so those leave it where it was.
    TimeNs clock = 0;
    for (size_t i = 0; i < list.size(); ++i) {
      const Instr& in = list[i];
      const InstrTiming ti = timing[i];
      TimelineEvent e;
      e.rank = static_cast<int32_t>(r);
      e.op = in.kind;
      e.chunk = in.chunk;
      e.microbatch = in.microbatch;
      e.instr = static_cast<int32_t>(i);
      e.peer = in.peer;
      e.category = Category::kComm;
      if (in.is_recv()) {
        e.stream = Stream::kCompute;
        e.t0 = clock;   // reached the receive
        e.t1 = ti.end;  // the data is there (= clock when it already was)
        clock = ti.end;
        t.events.push_back(e);
      } else if (in.kind == InstrKind::kAllReduceEmbedding) {
        if (emb_k < emb.size()) {
          e.stream = Stream::kCollective;
          e.t0 = ti.start;        // this member's post
          e.t1 = emb[emb_k]->t1;  // the collective's end, as a blocking call returns
          e.bytes = emb[emb_k]->bytes;
          t.events.push_back(e);
        }
        ++emb_k;
      } else if (in.is_compute()) {
        clock = ti.end;
      }
    }
  }
  t.sort_events();
  return t;
}

}  // namespace eellm::fidelity
