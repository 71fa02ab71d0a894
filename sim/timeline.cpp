// Timeline helpers: names, ordering, busy time and predicted-vs-measured comparison.
#include "sim/timeline.h"

#include <algorithm>
#include <bit>
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
  std::stable_sort(memory.begin(), memory.end(), [](const MemorySample& a, const MemorySample& b) {
    return std::tie(a.rank, a.t) < std::tie(b.rank, b.t);
  });
}

Stream stream_of(InstrKind kind) {
  switch (kind) {
    case InstrKind::kForward:
    case InstrKind::kBackward:
    case InstrKind::kBackwardInput:
    case InstrKind::kBackwardWeight:
    case InstrKind::kRecvAct:
    case InstrKind::kRecvGrad:
    case InstrKind::kOptimizerStep:
      return Stream::kCompute;
    case InstrKind::kSendAct:
    case InstrKind::kSendGrad:
      return Stream::kSend;
    case InstrKind::kAllReduceDP:
    case InstrKind::kAllReduceEmbedding:
      return Stream::kCollective;
  }
  return Stream::kCompute;
}

Category category_of(const Instr& in, bool exit_part) {
  switch (in.kind) {
    case InstrKind::kForward:
    case InstrKind::kBackward:
    case InstrKind::kBackwardInput:
    case InstrKind::kBackwardWeight:
      if (in.has(kFill)) return Category::kFill;
      if (exit_part) return Category::kExit;
      return in.kind == InstrKind::kForward ? Category::kFwd : Category::kBwd;
    case InstrKind::kOptimizerStep:
      return Category::kOptimizer;
    case InstrKind::kSendAct:
    case InstrKind::kRecvAct:
    case InstrKind::kSendGrad:
    case InstrKind::kRecvGrad:
    case InstrKind::kAllReduceDP:
    case InstrKind::kAllReduceEmbedding:
      return Category::kComm;
  }
  return Category::kComm;
}

TimelineEvent instr_event(int rank, const Instr& in, int32_t index, TimeNs t0, TimeNs t1) {
  TimelineEvent e;
  e.rank = rank;
  e.stream = stream_of(in.kind);
  e.op = in.kind;
  e.category = category_of(in, false);
  e.chunk = in.chunk;
  e.microbatch = in.microbatch;
  e.t0 = t0;
  e.t1 = t1;
  e.instr = index;
  e.peer = in.peer;
  return e;
}

void append_compute_events(std::vector<TimelineEvent>& out, const TimelineEvent& whole, TimeNs exit_ns,
                           double backbone_flops, double exit_flops) {
  const TimeNs d = whole.duration();
  const TimeNs ex = std::min(d, exit_ns);
  TimeNs t = whole.t0;
  auto part = [&](bool is_exit, TimeNs len) {
    if (len <= 0 && (is_exit || ex > 0)) return;  // keep one event even for a zero-cost step
    TimelineEvent p = whole;
    p.exit_part = is_exit;
    if (is_exit && p.category != Category::kFill) p.category = Category::kExit;
    p.t0 = t;
    p.t1 = t + len;
    p.flops = is_exit ? exit_flops : backbone_flops;
    t += len;
    out.push_back(p);
  };
  if (whole.op != InstrKind::kForward) {  // a backward starts at the exit losses
    part(true, ex);
    part(false, d - ex);
  } else {
    part(false, d - ex);
    part(true, ex);
  }
}

void pack_events(const std::vector<TimelineEvent>& events, std::vector<int64_t>& out) {
  for (const TimelineEvent& e : events)
    out.insert(out.end(), {e.rank, static_cast<int64_t>(e.stream), static_cast<int64_t>(e.op),
                           static_cast<int64_t>(e.category), e.exit_part, e.chunk, e.microbatch, e.t0, e.t1, e.bytes,
                           std::bit_cast<int64_t>(e.flops), e.instr, e.peer});
}

Status unpack_events(const int64_t* data, size_t count, std::vector<TimelineEvent>& out) {
  for (size_t k = 0; k < count; ++k) {
    const int64_t* f = data + k * kPackedEventFields;
    auto bad = [&](const char* field) {
      return Status::invalid_argument("packed timeline event " + std::to_string(k) + ": " + field + " out of range");
    };
    if (f[1] < 0 || f[1] >= kNumStreams) return bad("stream");
    if (f[2] < 0 || f[2] >= kNumInstrKinds) return bad("op");
    if (f[3] < 0 || f[3] >= kNumCategories) return bad("category");
    TimelineEvent e;
    e.rank = static_cast<int32_t>(f[0]);
    e.stream = static_cast<Stream>(f[1]);
    e.op = static_cast<InstrKind>(f[2]);
    e.category = static_cast<Category>(f[3]);
    e.exit_part = f[4] != 0;
    e.chunk = static_cast<int16_t>(f[5]);
    e.microbatch = static_cast<int32_t>(f[6]);
    e.t0 = f[7], e.t1 = f[8], e.bytes = f[9];
    e.flops = std::bit_cast<double>(f[10]);
    e.instr = static_cast<int32_t>(f[11]);
    e.peer = static_cast<int32_t>(f[12]);
    out.push_back(e);
  }
  return Status::ok();
}

std::string event_name(const TimelineEvent& e) {
  std::string s;
  switch (e.op) {
    case InstrKind::kForward:
      s = "F";
      break;
    case InstrKind::kBackward:
      s = "B";
      break;
    case InstrKind::kBackwardInput:
      s = "BI";
      break;
    case InstrKind::kBackwardWeight:
      s = "W";
      break;
    case InstrKind::kSendAct:
      s = "SEND-ACT";
      break;
    case InstrKind::kRecvAct:
      s = "RECV-ACT";
      break;
    case InstrKind::kSendGrad:
      s = "SEND-GRAD";
      break;
    case InstrKind::kRecvGrad:
      s = "RECV-GRAD";
      break;
    case InstrKind::kAllReduceDP:
      return "AR-DP";
    case InstrKind::kAllReduceEmbedding:
      return "AR-EMB";
    case InstrKind::kOptimizerStep:
      return "OPT";
  }
  if (e.exit_part) s = "EXIT-" + s;
  if (e.category == Category::kFill) s = "FILL-" + s;
  s += std::to_string(e.microbatch);
  if (e.chunk > 0) s += ".c" + std::to_string(e.chunk);
  return s;
}

const char* to_string(Stream s) {
  switch (s) {
    case Stream::kCompute:
      return "compute";
    case Stream::kSend:
      return "p2p";
    case Stream::kCollective:
      return "collective";
  }
  return "?";
}

const char* to_string(Category c) {
  switch (c) {
    case Category::kFwd:
      return "fwd";
    case Category::kBwd:
      return "bwd";
    case Category::kExit:
      return "exit";
    case Category::kComm:
      return "comm";
    case Category::kFill:
      return "fill";
    case Category::kOptimizer:
      return "optimizer";
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

Timeline whole_instructions(const Timeline& t) {
  Timeline out;
  out.num_ranks = t.num_ranks;
  out.memory = t.memory;
  std::map<std::tuple<int32_t, int32_t, int>, size_t> at;  // (rank, instr, op) → index in out.events
  for (const TimelineEvent& e : t.events) {
    if (e.instr >= 0) {
      const auto [it, fresh] = at.try_emplace({e.rank, e.instr, static_cast<int>(e.op)}, out.events.size());
      if (!fresh) {  // a further part of the same instruction: parts are consecutive, add its time
        TimelineEvent& w = out.events[it->second];  // t (sorted by t0): the first part is the earliest
        w.t1 += e.duration();
        w.flops += e.flops;
        if (!e.exit_part) w.category = e.category;  // the backbone part's category
        continue;
      }
    }
    out.events.push_back(e);
    out.events.back().exit_part = false;
  }
  out.sort_events();
  return out;
}

namespace {

struct OpAcc {
  int np = 0, nm = 0;
  double sp = 0, sm = 0;
  void add(bool predicted, TimeNs d) {
    (predicted ? np : nm) += 1;
    (predicted ? sp : sm) += ns_to_seconds(d);
  }
};
using OpKey = std::pair<int, bool>;  // op, exit_part

// Samples of one timeline: per instruction (parts merged) under (op, false); per exit part (op, true).
void add_samples(const Timeline& t, bool predicted, std::map<OpKey, OpAcc>& acc) {
  for (const TimelineEvent& e : t.events)
    if (e.exit_part) acc[{static_cast<int>(e.op), true}].add(predicted, e.duration());
  for (const TimelineEvent& e : whole_instructions(t).events)
    acc[{static_cast<int>(e.op), false}].add(predicted, e.duration());
}

}  // namespace

TimelineComparison compare(const Timeline& predicted, const Timeline& measured) {
  TimelineComparison c;
  c.predicted_iteration_s = ns_to_seconds(predicted.end_time());
  c.measured_iteration_s = ns_to_seconds(measured.end_time());
  c.iteration_relative_error =
      c.measured_iteration_s > 0 ? (c.predicted_iteration_s - c.measured_iteration_s) / c.measured_iteration_s : 0;
  std::map<OpKey, OpAcc> acc;
  add_samples(predicted, true, acc);
  add_samples(measured, false, acc);
  for (const auto& [key, a] : acc) {
    OpKindError o;
    o.op = static_cast<InstrKind>(key.first);
    o.exit_part = key.second;
    o.count_predicted = a.np;
    o.count_measured = a.nm;
    o.mean_predicted_s = a.np ? a.sp / a.np : 0;
    o.mean_measured_s = a.nm ? a.sm / a.nm : 0;
    o.relative_error =
        o.comparable() && o.mean_measured_s > 0 ? (o.mean_predicted_s - o.mean_measured_s) / o.mean_measured_s : 0;
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
    if (o.comparable()) {
      std::snprintf(buf, sizeof buf, "  %-20s n=%d/%d  predicted %.6f s  measured %.6f s  error %+.1f%%\n",
                    name.c_str(), o.count_predicted, o.count_measured, o.mean_predicted_s, o.mean_measured_s,
                    100 * o.relative_error);
    } else if (o.count_measured == 0) {
      std::snprintf(buf, sizeof buf, "  %-20s n=%d/0  predicted %.6f s  not measured\n", name.c_str(),
                    o.count_predicted, o.mean_predicted_s);
    } else {
      std::snprintf(buf, sizeof buf, "  %-20s n=0/%d  not predicted  measured %.6f s\n", name.c_str(), o.count_measured,
                    o.mean_measured_s);
    }
    s += buf;
  }
  return s;
}

}  // namespace eellm
