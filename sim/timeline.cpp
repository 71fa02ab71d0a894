// Timeline helpers: names, ordering, busy time and predicted-vs-measured comparison.
#include "sim/timeline.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>

namespace eellm {

TimeNs Timeline::end_time() const {
  TimeNs t = 0;
  for (const TimelineEvent& e : events) t = std::max(t, e.t1);
  return t;
}

void Timeline::sort_events() {
  std::stable_sort(events.begin(), events.end(), [](const TimelineEvent& a, const TimelineEvent& b) {
    return std::tie(a.t0, a.rank, a.stream, a.t1, a.op, a.microbatch) <
           std::tie(b.t0, b.rank, b.stream, b.t1, b.op, b.microbatch);
  });
  std::stable_sort(memory.begin(), memory.end(),
                   [](const MemorySample& a, const MemorySample& b) { return std::tie(a.rank, a.t) < std::tie(b.rank, b.t); });
}

std::string event_name(const TimelineEvent& e) {
  std::string s;
  switch (e.op) {
    case InstrKind::kForward: s = "F"; break;
    case InstrKind::kBackward: s = "B"; break;
    case InstrKind::kBackwardInput: s = "BI"; break;
    case InstrKind::kBackwardWeight: s = "W"; break;
    case InstrKind::kSendAct: s = "SEND-ACT"; break;
    case InstrKind::kRecvAct: s = "RECV-ACT"; break;
    case InstrKind::kSendGrad: s = "SEND-GRAD"; break;
    case InstrKind::kRecvGrad: s = "RECV-GRAD"; break;
    case InstrKind::kAllReduceDP: return "AR-DP";
    case InstrKind::kAllReduceEmbedding: return "AR-EMB";
    case InstrKind::kOptimizerStep: return "OPT";
  }
  if (e.exit_part) s = "EXIT-" + s;
  if (e.category == Category::kFill) s = "FILL-" + s;
  s += std::to_string(e.microbatch);
  if (e.chunk > 0) s += ".c" + std::to_string(e.chunk);
  return s;
}

const char* to_string(Stream s) {
  switch (s) {
    case Stream::kCompute: return "compute";
    case Stream::kSend: return "p2p";
    case Stream::kCollective: return "collective";
  }
  return "?";
}

const char* to_string(Category c) {
  switch (c) {
    case Category::kFwd: return "fwd";
    case Category::kBwd: return "bwd";
    case Category::kExit: return "exit";
    case Category::kComm: return "comm";
    case Category::kFill: return "fill";
    case Category::kOptimizer: return "optimizer";
  }
  return "?";
}

std::vector<TimeNs> busy_time(const Timeline& t, Stream stream) {
  std::vector<std::vector<std::pair<TimeNs, TimeNs>>> iv(static_cast<size_t>(std::max(t.num_ranks, 0)));
  for (const TimelineEvent& e : t.events) {
    if (e.stream != stream) continue;
    if (e.rank >= static_cast<int>(iv.size())) iv.resize(static_cast<size_t>(e.rank) + 1);
    iv[static_cast<size_t>(e.rank)].emplace_back(e.t0, e.t1);
  }
  std::vector<TimeNs> busy(iv.size(), 0);
  for (size_t r = 0; r < iv.size(); ++r) {
    auto& v = iv[r];
    std::sort(v.begin(), v.end());
    TimeNs cur0 = 0, cur1 = -1;
    for (const auto& [a, b] : v) {
      if (a > cur1) {
        if (cur1 > cur0) busy[r] += cur1 - cur0;
        cur0 = a;
        cur1 = b;
      } else {
        cur1 = std::max(cur1, b);
      }
    }
    if (cur1 > cur0) busy[r] += cur1 - cur0;
  }
  return busy;
}

TimelineComparison compare(const Timeline& predicted, const Timeline& measured) {
  TimelineComparison c;
  c.predicted_iteration_s = ns_to_seconds(predicted.end_time());
  c.measured_iteration_s = ns_to_seconds(measured.end_time());
  c.iteration_relative_error =
      c.measured_iteration_s > 0 ? (c.predicted_iteration_s - c.measured_iteration_s) / c.measured_iteration_s : 0;
  struct Acc {
    int np = 0, nm = 0;
    double sp = 0, sm = 0;
  };
  std::map<std::pair<int, bool>, Acc> acc;
  for (const TimelineEvent& e : predicted.events) {
    Acc& a = acc[{static_cast<int>(e.op), e.exit_part}];
    ++a.np;
    a.sp += ns_to_seconds(e.duration());
  }
  for (const TimelineEvent& e : measured.events) {
    Acc& a = acc[{static_cast<int>(e.op), e.exit_part}];
    ++a.nm;
    a.sm += ns_to_seconds(e.duration());
  }
  for (const auto& [key, a] : acc) {
    OpKindError o;
    o.op = static_cast<InstrKind>(key.first);
    o.exit_part = key.second;
    o.count_predicted = a.np;
    o.count_measured = a.nm;
    o.mean_predicted_s = a.np ? a.sp / a.np : 0;
    o.mean_measured_s = a.nm ? a.sm / a.nm : 0;
    o.relative_error = o.mean_measured_s > 0 ? (o.mean_predicted_s - o.mean_measured_s) / o.mean_measured_s : 0;
    c.per_op.push_back(o);
  }
  return c;
}

std::string TimelineComparison::to_string() const {
  std::string s;
  char buf[256];
  std::snprintf(buf, sizeof buf, "iteration: predicted %.6f s, measured %.6f s, error %+.1f%%\n", predicted_iteration_s,
                measured_iteration_s, 100 * iteration_relative_error);
  s += buf;
  for (const OpKindError& o : per_op) {
    const std::string name = std::string(o.exit_part ? "EXIT-" : "") + eellm::to_string(o.op);
    if (o.count_measured == 0 || o.count_predicted == 0)  // one side did not record it: never a 0 % error
      std::snprintf(buf, sizeof buf, "  %-20s n=%d/%d  %s\n", name.c_str(), o.count_predicted, o.count_measured,
                    o.count_measured == 0 ? "not measured" : "not predicted");
    else
      std::snprintf(buf, sizeof buf, "  %-20s n=%d/%d  predicted %.6f s  measured %.6f s  error %+.1f%%\n", name.c_str(),
                    o.count_predicted, o.count_measured, o.mean_predicted_s, o.mean_measured_s, 100 * o.relative_error);
    s += buf;
  }
  return s;
}

}  // namespace eellm
