// Timeline: what happened (or is predicted to happen) in one training iteration, event by event.
// The SAME type for a simulated iteration (sim/engine) and a measured one (exec/runtime), so
// traces, the GUI and compare() treat both alike (DESIGN.md). Times are integer nanoseconds from
// the iteration start. Events are kept in a deterministic order (by t0, then rank, stream, and
// insertion); sort_events() restores it after merging. Value type; not thread-safe to mutate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/schedule.h"
#include "sim/units.h"

namespace eellm {

// Streams of one rank (trace: one thread per stream).
enum class Stream : uint8_t { kCompute = 0, kSend = 1, kCollective = 2 };
inline constexpr int kNumStreams = 3;

// What kind of work an event is (trace "cat"); bubble attribution and colours key on it.
enum class Category : uint8_t { kFwd, kBwd, kExit, kComm, kFill, kOptimizer };
inline constexpr int kNumCategories = 6;

struct TimelineEvent {
  int32_t rank = 0;              // pipeline rank (trace pid)
  Stream stream = Stream::kCompute;
  InstrKind op = InstrKind::kForward;
  Category category = Category::kFwd;
  bool exit_part = false;        // the exit-head part of a FWD/BWD (named EXIT-F3 / EXIT-B3)
  int16_t chunk = 0;
  int32_t microbatch = -1;
  TimeNs t0 = 0, t1 = 0;
  int64_t bytes = 0;             // transferred bytes (comm events)
  double flops = 0;              // per GPU
  int32_t instr = -1;            // index into the rank's instruction list; -1 if unknown
  int32_t peer = -1;             // comm: other rank

  TimeNs duration() const { return t1 - t0; }
};

// A memory counter sample: bytes in use on a rank from time t on (trace ph:"C").
struct MemorySample {
  int32_t rank = 0;
  TimeNs t = 0;
  int64_t bytes = 0;
};

struct Timeline {
  int num_ranks = 0;
  std::vector<TimelineEvent> events;
  std::vector<MemorySample> memory;  // optional; per rank in time order

  TimeNs end_time() const;           // max t1 (0 when empty)
  void sort_events();                // deterministic order: t0, rank, stream, t1, op, microbatch
};

// "F3", "B3", "BI3", "W3", "EXIT-F3", "EXIT-B3", "FILL-F3", "SEND-ACT3", "RECV-GRAD3", "AR-DP",
// "AR-EMB", "OPT"; chunk > 0 appends ".c1".
std::string event_name(const TimelineEvent& e);
const char* to_string(Stream s);
const char* to_string(Category c);

// Busy time per rank on a stream (sum of event durations; overlapping events counted once).
std::vector<TimeNs> busy_time(const Timeline& t, Stream stream);

// compare(predicted, measured): iteration-time error and the error per op kind (mean duration
// over matching events), relative to the measured value.
struct OpKindError {
  InstrKind op = InstrKind::kForward;
  bool exit_part = false;
  int count_predicted = 0, count_measured = 0;
  double mean_predicted_s = 0, mean_measured_s = 0;
  double relative_error = 0;  // (predicted − measured) / measured
};
struct TimelineComparison {
  double predicted_iteration_s = 0, measured_iteration_s = 0;
  double iteration_relative_error = 0;
  std::vector<OpKindError> per_op;  // op kinds present in either timeline
  std::string to_string() const;
};
TimelineComparison compare(const Timeline& predicted, const Timeline& measured);

}  // namespace eellm
