// The per-op part of the fidelity harness: the like-for-like comparison of a simulated and a
// measured timeline (see fidelity.h, compare_ops, and docs/accuracy.md "What each per-op row
// compares"). Both sides follow sim/timeline.h's event contract, so the raw timelines are compared:
// rows are taken per instruction with its parts merged (whole_instructions), exit parts on rows of
// their own that the executor does not measure. A SEND_* row is the sender's time from posting to
// local completion, a RECV_* row ("wait") the receiver's time blocked until the data is there, and
// an ALLREDUCE_EMBEDDING event each member's time from its post to the collective's end, split
// below into the transfer and the wait for the group's last member. Thread-safety: pure functions.
#include <algorithm>
#include <map>
#include <tuple>

#include "fidelity/fidelity.h"

namespace eellm::fidelity {
namespace {

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

}  // namespace eellm::fidelity
