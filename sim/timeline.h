// Timeline: what happened (or is predicted to happen) in one training iteration, event by event.
// The SAME type for a simulated iteration (sim/engine) and a measured one (exec/runtime), so
// traces, the GUI and compare() treat both alike (DESIGN.md). Times are integer nanoseconds from
// the iteration start. Events are kept in a deterministic order (by t0, then rank, stream, and
// insertion); sort_events() restores it after merging. Value type; not thread-safe to mutate.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/status.h"
#include "sim/schedule.h"
#include "sim/units.h"

namespace eellm {

// The event contract. Both interpreters — sim/engine.cpp (predicted) and exec/train/runtime.cpp
// (measured) — build every event with instr_event() / append_compute_events() below, so stream,
// category and naming cannot drift apart:
//  - One event per instruction, on stream_of(kind): FWD/BWD/BWD_INPUT/BWD_WEIGHT, RECV_* and OPT on
//    the compute stream, SEND_* on the send stream, ALLREDUCE_* on the collective stream; `instr`
//    is the index in the rank's list (-1 for a collective drawn once per member, e.g. the
//    simulator's embedding all-reduce). Category: category_of().
//  - Exit parts: a compute instruction whose exit-head time is known is recorded as two
//    consecutive events of the same instruction, the backbone part and the exit part
//    (exit_part; a FWD runs the backbone first, a backward starts at the exit losses). The
//    simulator knows it (modelled); the executor does not time the heads apart and records the
//    whole instruction as one backbone event. compare() therefore sums the parts of an
//    instruction before comparing, and an EXIT-* row that only one side has is "not measured".
//  - SEND_* (send stream): the sender's time from posting the non-blocking send to its local
//    completion. The executor takes the completion from its communicator (found by polling, at
//    the latest when the rank next blocks or ends the iteration); the simulator puts it at the
//    modelled arrival (queueing for the link, transfer, latency). RECV_* (compute stream): the
//    receiver's time blocked waiting for the data, from reaching the instruction to the data
//    being there; zero length when it already was. Every receive has its event on both sides.
//  - ALLREDUCE_* (collective stream): each member's time in the collective, from its post to the
//    collective's end (for AR-EMB: the wait for the group's last member, then the all-reduce).
//    The executor records an overlapped AR-DP in two parts of its instruction (the posting, and the
//    reduction run after the last backward), which compare() sums like exit parts.
// So compare() and fidelity compare the raw timelines of both sides, with no reshaping.
// Streams of one rank (trace: one thread per stream).
enum class Stream : uint8_t { kCompute = 0, kSend = 1, kCollective = 2 };
inline constexpr int kNumStreams = 3;

// What kind of work an event is (trace "cat"); bubble attribution and colours key on it.
enum class Category : uint8_t { kFwd, kBwd, kExit, kComm, kFill, kOptimizer };
inline constexpr int kNumCategories = 6;

struct TimelineEvent {
  int32_t rank = 0;  // pipeline rank (trace pid)
  Stream stream = Stream::kCompute;
  InstrKind op = InstrKind::kForward;
  Category category = Category::kFwd;
  bool exit_part = false;  // the exit-head part of a FWD/BWD (named EXIT-F3 / EXIT-B3)
  int16_t chunk = 0;
  int32_t microbatch = -1;
  TimeNs t0 = 0, t1 = 0;
  int64_t bytes = 0;   // transferred bytes (comm events)
  double flops = 0;    // per GPU
  int32_t instr = -1;  // index into the rank's instruction list; -1 if unknown
  int32_t peer = -1;   // comm: other rank

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

  TimeNs end_time() const;  // max t1 (0 when empty)
  void sort_events();       // deterministic order: t0, rank, stream, t1, op, microbatch
};

// Event constructors (the contract above). stream_of: the stream an instruction kind runs on.
Stream stream_of(InstrKind kind);
// kFill for fill microbatches' compute, kExit for exit parts, kFwd/kBwd, kOptimizer, kComm.
Category category_of(const Instr& in, bool exit_part);
// The event of instruction `index` of `rank`'s list, [t0, t1), exit_part false, bytes/flops 0.
TimelineEvent instr_event(int rank, const Instr& in, int32_t index, TimeNs t0, TimeNs t1);
// Appends a compute instruction's events: `whole` (instr_event of it) split into the backbone and
// the exit part of `exit_ns` (clamped to its duration; 0 → one event), FWD backbone first,
// backwards exit first; zero-length parts are dropped unless the step is all zero. flops per part.
void append_compute_events(std::vector<TimelineEvent>& out, const TimelineEvent& whole, TimeNs exit_ns,
                           double backbone_flops, double exit_flops);
// Flat int64 encoding of events (the executor gathers its ranks' events over a communicator).
inline constexpr size_t kPackedEventFields = 13;
void pack_events(const std::vector<TimelineEvent>& events, std::vector<int64_t>& out);
// Decodes `count` events; fails (naming the event and field) on a value out of range.
Status unpack_events(const int64_t* data, size_t count, std::vector<TimelineEvent>& out);

// "F3", "B3", "BI3", "W3", "EXIT-F3", "EXIT-B3", "FILL-F3", "SEND-ACT3", "RECV-GRAD3", "AR-DP",
// "AR-EMB", "OPT"; chunk > 0 appends ".c1".
std::string event_name(const TimelineEvent& e);
const char* to_string(Stream s);
const char* to_string(Category c);

// Busy time per rank on a stream (sum of event durations; overlapping events counted once).
std::vector<TimeNs> busy_time(const Timeline& t, Stream stream);

// The timeline with the parts of each instruction (same rank, instr and op) merged into one event
// of their summed duration, from the first part's start; exit_part false. What compare() and
// fidelity's per-op rows compare, so a split and an unsplit recording of one step are like for like.
Timeline whole_instructions(const Timeline& t);

// compare(predicted, measured): iteration-time error and the error per op kind (mean duration per
// instruction: the parts of one instruction summed), relative to the measured value. EXIT-* rows:
// the exit parts alone, where a side records them.
struct OpKindError {
  InstrKind op = InstrKind::kForward;
  bool exit_part = false;
  int count_predicted = 0, count_measured = 0;
  double mean_predicted_s = 0, mean_measured_s = 0;
  double relative_error = 0;  // (predicted − measured) / measured; 0 and meaningless unless comparable()
  // Both sides recorded the op kind; otherwise to_string() says "not measured" / "not predicted".
  bool comparable() const { return count_predicted > 0 && count_measured > 0; }
};
struct TimelineComparison {
  double predicted_iteration_s = 0, measured_iteration_s = 0;
  double iteration_relative_error = 0;
  std::vector<OpKindError> per_op;  // op kinds present in either timeline
  std::string to_string() const;
};
TimelineComparison compare(const Timeline& predicted, const Timeline& measured);

}  // namespace eellm
