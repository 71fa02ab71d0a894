#include "gui/timeline_lanes.h"

#include <algorithm>
#include <array>
#include <set>

#include "sim/graph.h"

namespace eellm::gui {

OpClass op_class(const TimelineEvent& e) {
  if (e.stream != Stream::kCompute) return OpClass::kComm;
  if (e.category == Category::kComm) return OpClass::kComm;
  if (e.category == Category::kOptimizer || e.op == InstrKind::kOptimizerStep) return OpClass::kOptimizer;
  if (e.category == Category::kFill) return OpClass::kFill;
  if (e.exit_part || e.category == Category::kExit) {
    return e.op == InstrKind::kForward ? OpClass::kExitFwd : OpClass::kExitBwd;
  }
  switch (e.op) {
    case InstrKind::kForward:
      return OpClass::kFwd;
    case InstrKind::kBackward:
    case InstrKind::kBackwardInput:
      return OpClass::kBwd;
    case InstrKind::kBackwardWeight:
      return OpClass::kBwdWeight;
    default:
      return OpClass::kComm;
  }
}

QColor op_color(OpClass c) {
  switch (c) {
    case OpClass::kFwd:
      return QColor(0x3b, 0x82, 0xd6);  // blue
    case OpClass::kBwd:
      return QColor(0x2e, 0xa0, 0x5a);  // green
    case OpClass::kBwdWeight:
      return QColor(0x9a, 0xd0, 0x6b);  // light green
    case OpClass::kExitFwd:
      return QColor(0xe6, 0x8a, 0x1e);  // orange
    case OpClass::kExitBwd:
      return QColor(0xc0, 0x4b, 0x1c);  // rust
    case OpClass::kFill:
      return QColor(0x8e, 0x5c, 0xc8);  // purple
    case OpClass::kComm:
      return QColor(0x7a, 0x86, 0x94);  // slate
    case OpClass::kOptimizer:
      return QColor(0xd9, 0x4c, 0x8c);  // magenta
    case OpClass::kIdle:
      return QColor(0xee, 0xee, 0xee);  // lane background
  }
  return Qt::black;
}

const char* op_class_name(OpClass c) {
  switch (c) {
    case OpClass::kFwd:
      return "forward";
    case OpClass::kBwd:
      return "backward";
    case OpClass::kBwdWeight:
      return "backward-weight";
    case OpClass::kExitFwd:
      return "exit forward";
    case OpClass::kExitBwd:
      return "exit backward";
    case OpClass::kFill:
      return "fill";
    case OpClass::kComm:
      return "communication";
    case OpClass::kOptimizer:
      return "optimizer";
    case OpClass::kIdle:
      return "idle";
  }
  return "?";
}

void TimelineLanes::clear() {
  lanes_.clear();
  lane_index_.clear();
  total_height_ = 0;
}

void TimelineLanes::build(const Timeline& timeline, const LaneGeometry& g) {
  clear();
  int num_ranks = timeline.num_ranks;
  for (const TimelineEvent& e : timeline.events) num_ranks = std::max(num_ranks, e.rank + 1);
  // Which streams each rank uses: the compute lane always exists, communication lanes only when
  // used.
  std::vector<std::array<int32_t, kNumStreams>> count(static_cast<size_t>(num_ranks), {0, 0, 0});
  for (const TimelineEvent& e : timeline.events) {
    if (e.rank >= 0) ++count[static_cast<size_t>(e.rank)][static_cast<size_t>(e.stream)];
  }
  std::vector<int>& lane_index = lane_index_;
  lane_index.assign(static_cast<size_t>(num_ranks) * kNumStreams, -1);
  int y = 0;
  for (int r = 0; r < num_ranks; ++r) {
    for (int s = 0; s < kNumStreams; ++s) {
      const bool collapsed = static_cast<size_t>(r) < g.collapsed.size() && g.collapsed[static_cast<size_t>(r)];
      if (s != 0 && (collapsed || count[static_cast<size_t>(r)][static_cast<size_t>(s)] == 0)) continue;
      Lane lane;
      lane.rank = r;
      lane.stream = static_cast<Stream>(s);
      lane.y = y;
      lane.height = s == 0 ? g.compute_height : g.comm_height;
      lane.events.reserve(static_cast<size_t>(count[static_cast<size_t>(r)][static_cast<size_t>(s)]));
      y += lane.height + 1;
      lane_index[static_cast<size_t>(r) * kNumStreams + static_cast<size_t>(s)] = static_cast<int>(lanes_.size());
      lanes_.push_back(std::move(lane));
    }
    y += g.stage_gap;
  }
  total_height_ = y;
  for (size_t i = 0; i < timeline.events.size(); ++i) {
    const TimelineEvent& e = timeline.events[i];
    if (e.rank < 0) continue;
    const int li = lane_index[static_cast<size_t>(e.rank) * kNumStreams + static_cast<size_t>(e.stream)];
    if (li >= 0) lanes_[static_cast<size_t>(li)].events.push_back(static_cast<int32_t>(i));
  }
  for (Lane& lane : lanes_) {
    std::stable_sort(lane.events.begin(), lane.events.end(), [&](int32_t a, int32_t b) {
      const TimelineEvent& x = timeline.events[static_cast<size_t>(a)];
      const TimelineEvent& z = timeline.events[static_cast<size_t>(b)];
      return x.t0 != z.t0 ? x.t0 < z.t0 : x.t1 < z.t1;
    });
    lane.max_t1.resize(lane.events.size());
    lane.t0.resize(lane.events.size());
    TimeNs m = INT64_MIN;
    for (size_t i = 0; i < lane.events.size(); ++i) {
      m = std::max(m, timeline.events[static_cast<size_t>(lane.events[i])].t1);
      lane.max_t1[i] = m;
      lane.t0[i] = timeline.events[static_cast<size_t>(lane.events[i])].t0;
    }
  }
}

int TimelineLanes::lane_at(int y) const {
  auto it = std::upper_bound(lanes_.begin(), lanes_.end(), y, [](int v, const Lane& l) { return v < l.y; });
  if (it == lanes_.begin()) return -1;
  --it;
  if (y >= it->y + it->height) return -1;
  return static_cast<int>(it - lanes_.begin());
}

int TimelineLanes::lane_of(int rank, Stream stream) const {
  const size_t i = static_cast<size_t>(rank) * kNumStreams + static_cast<size_t>(stream);
  return rank < 0 || i >= lane_index_.size() ? -1 : lane_index_[i];
}

std::pair<size_t, size_t> TimelineLanes::visible(const Lane& lane, TimeNs t0, TimeNs t1) const {
  // First event whose running max end reaches t0 (max_t1 is non-decreasing).
  const size_t first =
      static_cast<size_t>(std::lower_bound(lane.max_t1.begin(), lane.max_t1.end(), t0) - lane.max_t1.begin());
  // Events are sorted by start: the first one starting after t1 ends the range.
  const size_t last = static_cast<size_t>(
      std::upper_bound(lane.t0.begin() + static_cast<std::ptrdiff_t>(first), lane.t0.end(), t1) - lane.t0.begin());
  return {first, std::max(first, last)};
}

int32_t TimelineLanes::event_at(const Timeline& timeline, const Lane& lane, TimeNs t, TimeNs slack) const {
  auto [first, last] = visible(lane, t - slack, t + slack);
  int32_t best = -1;
  TimeNs best_dist = INT64_MAX;
  for (size_t i = first; i < last; ++i) {
    const TimelineEvent& e = timeline.events[static_cast<size_t>(lane.events[i])];
    if (e.t0 > t + slack) break;
    const TimeNs d = t < e.t0 ? e.t0 - t : t > e.t1 ? t - e.t1 : 0;
    if (d <= slack && d < best_dist) {
      best = lane.events[i];
      best_dist = d;
    }
  }
  return best;
}

std::pair<size_t, size_t> TimelineLanes::lanes_between(int y0, int y1) const {
  auto first =
      std::lower_bound(lanes_.begin(), lanes_.end(), y0, [](const Lane& l, int v) { return l.y + l.height <= v; });
  auto last = std::lower_bound(first, lanes_.end(), y1, [](const Lane& l, int v) { return l.y < v; });
  return {static_cast<size_t>(first - lanes_.begin()), static_cast<size_t>(last - lanes_.begin())};
}

std::vector<int32_t> dependency_events(const SimulationResult& result, int32_t index) {
  const Timeline& tl = result.engine.timeline;
  if (index < 0 || static_cast<size_t>(index) >= tl.events.size()) return {};
  const TimelineEvent& e = tl.events[static_cast<size_t>(index)];
  if (e.instr < 0 || e.rank < 0 || static_cast<size_t>(e.rank) >= result.schedule.ranks.size()) return {};
  const auto& lists = result.schedule.ranks;
  // A result read from a trace file has no message map: then only same-rank dependencies.
  static const MessageMap kNoMessages;
  const MessageMap& mm = result.engine.messages ? *result.engine.messages : kNoMessages;
  const auto& msg_of = mm.message_of;
  // (rank, instr) pairs this step waited on.
  std::set<std::pair<int, int>> want;
  auto add_producer = [&](int rank, int instr) {
    // Walk back over receives to the previous compute step on the rank; a receive pulls in its
    // send and the compute step before that send (what produced the data).
    for (int i = instr; i >= 0; --i) {
      const Instr& in = lists[static_cast<size_t>(rank)][static_cast<size_t>(i)];
      want.insert({rank, i});
      if (in.is_recv() && static_cast<size_t>(rank) < msg_of.size()) {
        const int32_t m = msg_of[static_cast<size_t>(rank)][static_cast<size_t>(i)];
        if (m >= 0) {
          const auto& msg = mm.messages[static_cast<size_t>(m)];
          want.insert({msg.src_rank, msg.src_index});
          for (int j = msg.src_index - 1; j >= 0; --j) {
            const Instr& p = lists[static_cast<size_t>(msg.src_rank)][static_cast<size_t>(j)];
            if (p.is_compute()) {
              want.insert({msg.src_rank, j});
              break;
            }
          }
        }
        continue;
      }
      if (in.is_compute()) break;
    }
  };
  if (e.instr > 0) add_producer(e.rank, e.instr - 1);
  const Instr& self = lists[static_cast<size_t>(e.rank)][static_cast<size_t>(e.instr)];
  if (self.is_recv()) add_producer(e.rank, e.instr);
  want.erase({e.rank, e.instr});
  std::vector<int32_t> out;
  for (size_t i = 0; i < tl.events.size(); ++i) {
    const TimelineEvent& x = tl.events[i];
    if (x.instr >= 0 && want.count({x.rank, x.instr})) out.push_back(static_cast<int32_t>(i));
  }
  return out;
}

std::vector<int32_t> critical_path_events(const SimulationResult& result) {
  const Timeline& tl = result.engine.timeline;
  std::set<std::pair<int, int>> on_path;
  for (const CriticalStep& s : critical_path(result.schedule, result.engine)) on_path.insert({s.rank, s.instr});
  std::vector<int32_t> out;
  for (size_t i = 0; i < tl.events.size(); ++i) {
    const TimelineEvent& x = tl.events[i];
    if (x.instr >= 0 && on_path.count({x.rank, x.instr})) out.push_back(static_cast<int32_t>(i));
  }
  return out;
}

int count_events(const Timeline& timeline, int rank, Stream stream, OpClass cls) {
  int n = 0;
  for (const TimelineEvent& e : timeline.events) n += e.rank == rank && e.stream == stream && op_class(e) == cls;
  return n;
}

}  // namespace eellm::gui
