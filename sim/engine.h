// Discrete-event engine: plays a Schedule on modelled devices and links and returns the Timeline.
//
// Model. One pipeline rank stands for its whole tensor-parallel group and every data-parallel
// replica: those execute the same list with the same costs, so simulating one replica is exact
// (their collectives are timed analytically by the cost model, which knows the group size and the
// links it crosses). Per rank: a compute stream running the list in order, a send stream for
// point-to-point transfers and a collective stream; both communication streams overlap compute.
// Each pipeline hop is an alpha-beta link per direction; transfers that cross it at the same time
// queue for its bandwidth (FIFO, so the last of k concurrent flows finishes when k fair-shared
// flows would) while the latency of consecutive transfers overlaps.
//
// Determinism: time is integer nanoseconds; simultaneous events run in the order they were
// scheduled (sequence number), so a run is reproducible and golden traces are byte-stable. The
// clock never goes backwards (asserted). No allocation per event: state lives in flat vectors
// sized before the run loop.
//
// Costs are plain data (SimCosts) so tests can set exact times; simulate.h fills them from the
// CostModel. Thread-safety: simulate_schedule is a pure function; call it from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/status.h"
#include "sim/schedule.h"
#include "sim/sim_costs.h"
#include "sim/timeline.h"
#include "sim/units.h"

namespace eellm {

// Equal stages, free communication: each chunk takes `f` forward, `b` backward-input and `w`
// backward-weight nanoseconds (tests and closed-form checks).
SimCosts uniform_costs(int pp, int vp, TimeNs f, TimeNs b, TimeNs w = 0);

struct EngineOptions {
  bool record_timeline = true;  // off: only times (what a planner needs)
  // match_messages(schedule) of this very schedule, computed once by a caller that plays the same
  // schedule many times (benchmarks, sweeps over costs only): matching is ~18 % of a run. Null →
  // matched here. A map of another schedule is a caller bug (checked by shape, not by content).
  std::shared_ptr<const MessageMap> messages;
};

// Start and end of every instruction on its rank: a RECV from the rank reaching it to its data being
// there, a SEND from its posting to the arrival (the timeline's events, sim/timeline.h).
struct InstrTiming {
  TimeNs start = 0, end = 0;
};

struct EngineResult {
  TimeNs iteration_ns = 0;
  std::vector<TimeNs> rank_end;                  // when each rank finished its list
  std::vector<std::vector<InstrTiming>> timing;  // [rank][instr]
  std::shared_ptr<const MessageMap> messages;    // never null in a result; shared with the options'
  std::vector<TimeNs> msg_posted, msg_arrival;   // [message]: send posted, data arrived
  Timeline timeline;
  int64_t events_processed = 0;
};

// Runs the schedule. A schedule whose lists cannot complete returns failed_precondition with the
// deadlock report: every blocked rank, the instruction it waits at and the cycle of waits.
StatusOr<EngineResult> simulate_schedule(const Schedule& schedule, const SimCosts& costs,
                                         const EngineOptions& options = {});

// The exit heads' share of a compute instruction's duration (0 for other kinds).
TimeNs exit_duration(const Instr& instr, const ChunkTimes& chunk);

// Duration of one compute instruction on `costs` (what the engine charges).
TimeNs compute_duration(const Instr& instr, const ChunkTimes& chunk, const RankTimes& rank);

}  // namespace eellm
