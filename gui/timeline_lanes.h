// Lanes of a timeline view and the look-ups painting and hit-testing need, kept apart from the
// widget so they are tested without a display.
//
// One lane per (rank, stream that has events): the compute stream first, then point-to-point and
// collective sub-lanes, ranks in pipeline-stage order. Each lane keeps the indices of its events
// sorted by start time plus the running maximum of their end times, so the first event that can
// reach a time is found by binary search (culling) even on streams whose events overlap. Built
// once per timeline; painting allocates nothing.
//
// Also here: the colour class of an event (what the legend shows) and the dependency / critical
// path look-ups of a simulated iteration. Not thread-safe to mutate; const use from one thread.
#pragma once

#include <QColor>
#include <cstdint>
#include <utility>
#include <vector>

#include "sim/simulate.h"
#include "sim/timeline.h"

namespace eellm::gui {

// What a block is drawn as; the legend lists these in order.
enum class OpClass : uint8_t { kFwd, kBwd, kBwdWeight, kExitFwd, kExitBwd, kFill, kComm, kOptimizer, kIdle };
inline constexpr int kNumOpClasses = 9;

OpClass op_class(const TimelineEvent& e);
QColor op_color(OpClass c);
const char* op_class_name(OpClass c);  // "forward", "backward", ...

struct Lane {
  int rank = 0;
  Stream stream = Stream::kCompute;
  int y = 0;  // top, in content coordinates (below the ruler)
  int height = 0;
  std::vector<int32_t> events;  // indices into Timeline::events, sorted by (t0, t1)
  std::vector<TimeNs> t0;       // t0[i] = start of events[i] (non-decreasing)
  std::vector<TimeNs> max_t1;   // max_t1[i] = max end of events[0..i] (non-decreasing)
};

struct LaneGeometry {
  int compute_height = 26;
  int comm_height = 12;
  int stage_gap = 6;            // between ranks
  std::vector<bool> collapsed;  // per rank: show only the compute lane (its transfers are hidden)
};

class TimelineLanes {
 public:
  void build(const Timeline& timeline, const LaneGeometry& geometry = {});
  void clear();

  const std::vector<Lane>& lanes() const { return lanes_; }
  int total_height() const { return total_height_; }
  // Lane index at content y, or -1.
  int lane_at(int y) const;
  // Lane of (rank, stream), or -1.
  int lane_of(int rank, Stream stream) const;
  // [first, last) positions in lane.events of the events that overlap [t0, t1].
  std::pair<size_t, size_t> visible(const Lane& lane, TimeNs t0, TimeNs t1) const;
  // Index into Timeline::events of the event at time t in the lane (within `slack` ns), or -1.
  int32_t event_at(const Timeline& timeline, const Lane& lane, TimeNs t, TimeNs slack) const;
  // Lanes whose [y, y+height) meets [y0, y1): [first, last).
  std::pair<size_t, size_t> lanes_between(int y0, int y1) const;

 private:
  std::vector<Lane> lanes_;
  std::vector<int> lane_index_;  // [rank * kNumStreams + stream] → lane, or -1
  int total_height_ = 0;
};

// Event indices (into result.engine.timeline.events) of what the event `index` waited for: the
// previous step on its rank, and for receives the matching send and the compute step that
// produced the data. Empty when the event carries no instruction index.
std::vector<int32_t> dependency_events(const SimulationResult& result, int32_t index);
// Event indices on the critical path of the iteration (sim/graph.h critical_path).
std::vector<int32_t> critical_path_events(const SimulationResult& result);

// Counts of events per lane and colour class, e.g. to check a rendering.
int count_events(const Timeline& timeline, int rank, Stream stream, OpClass cls);

}  // namespace eellm::gui
