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
#include "sim/timeline.h"
#include "sim/units.h"

namespace eellm {

// Per virtual stage (model chunk), per microbatch, per GPU.
struct ChunkTimes {
  TimeNs fwd = 0, bwd_input = 0, bwd_weight = 0;  // backbone (layers + embedding / final head)
  // Backbone up to (and including) the chunk's deepest exit: what a truncated fill step runs.
  TimeNs fwd_partial = 0, bwd_input_partial = 0, bwd_weight_partial = 0;
  TimeNs exit_fwd = 0, exit_bwd_input = 0, exit_bwd_weight = 0;  // all exit heads of the chunk
  TimeNs recompute = 0;          // forward recomputed inside backward (activation recompute)
  TimeNs recompute_partial = 0;
  double fwd_flops = 0, bwd_flops = 0, exit_fwd_flops = 0, exit_bwd_flops = 0;
  int64_t p2p_bytes = 0;         // activation (= its gradient) sent to the neighbour
};

// Per pipeline rank.
struct RankTimes {
  TimeNs dp_allreduce = 0;       // gradient reduction over the DP group (0 if dp == 1)
  TimeNs embedding_allreduce = 0;
  TimeNs optimizer = 0;
  int64_t dp_bytes = 0, embedding_bytes = 0;
};

// Alpha-beta link of the hop between rank r and rank (r+1) mod pp, used in both directions.
struct LinkTimes {
  TimeNs latency = 0;
  double ns_per_byte = 0;
};

struct SimCosts {
  std::vector<ChunkTimes> chunks;  // by virtual stage, pp·vp entries
  std::vector<RankTimes> ranks;    // pp entries
  std::vector<LinkTimes> hops;     // pp entries (hop r: r ↔ r+1 mod pp)
};

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

// Start and end of every instruction on its rank (a RECV "ends" when its data is there).
struct InstrTiming {
  TimeNs start = 0, end = 0;
};

struct EngineResult {
  TimeNs iteration_ns = 0;
  std::vector<TimeNs> rank_end;                   // when each rank finished its list
  std::vector<std::vector<InstrTiming>> timing;   // [rank][instr]
  std::shared_ptr<const MessageMap> messages;   // never null in a result; shared with the options'
  std::vector<TimeNs> msg_posted, msg_arrival;    // [message]: send posted, data arrived
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
