// The schedule as a dependency graph (Boost.Graph): vertices are instructions, edges are program
// order on a rank, send → receive, and embedding all-reduce → every member's optimizer step.
// Used for static deadlock detection (a cycle, named rank by rank and instruction by instruction),
// and, together with an EngineResult, for the critical path and the bubble attribution.
// Free functions; thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "model/status.h"
#include "sim/engine.h"
#include "sim/schedule.h"

namespace eellm {

// Ok when the instruction lists can all complete; otherwise failed_precondition with the cycle,
// e.g. "deadlock: rank 0 instr 3 (RECV-GRAD0←1) → rank 1 instr 5 (SEND-GRAD0→0) → … → rank 0 …".
// Unmatched sends/receives are reported as invalid_argument (match_messages).
Status find_deadlock(const Schedule& schedule);

// One step of the critical path: a compute step, or the transfer that made a rank wait.
struct CriticalStep {
  enum class Kind { kCompute, kTransfer, kCollective };
  Kind kind = Kind::kCompute;
  int rank = 0;
  int instr = 0;  // on `rank` (the SEND for a transfer)
  TimeNs t0 = 0, t1 = 0;
};

// The chain of steps that determines the iteration time, earliest first: walks back from the last
// step to finish, at each step to whatever made it start when it did (its rank's previous step, or
// the latest message/collective it waited for).
std::vector<CriticalStep> critical_path(const Schedule& schedule, const EngineResult& result);
// "F0@0 ~> F0@1 ~> ... B0@0 → F4@0": step@rank; "→" follows the same rank, "~>" a transfer
// the next step waited for, "=collective=>" a wait for a collective.
std::string format_critical_path(const Schedule& schedule, const std::vector<CriticalStep>& path);

// Idle time of a rank's compute stream over the iteration, split by cause. `dependency` is
// pipeline fill/drain (waiting for a stage that is itself busy), `exposed_comm` the part of waits
// spent in transfers and collectives, `imbalance` the excess work of the busiest stage's backbone,
// `exit` the excess due to exit heads on other stages. The last two are carved out of the waits
// by work differences (an attribution, exact only for uniform pipelines).
struct BubbleAttribution {
  TimeNs idle = 0;
  TimeNs dependency = 0, exposed_comm = 0, imbalance = 0, exit = 0;
  TimeNs busy = 0, exit_busy = 0;
};
std::vector<BubbleAttribution> attribute_bubbles(const Schedule& schedule, const EngineResult& result,
                                                 const SimCosts& costs);

}  // namespace eellm
