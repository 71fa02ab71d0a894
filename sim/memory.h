// Per-rank memory timeline of one simulated (or executed) iteration: static memory (parameters,
// gradients, optimizer state) plus the activations and exit logits of the microbatches in flight,
// following the instruction timings of the schedule. A forward allocates its activations when it
// starts; a backward (fused B, or W in a B/W split) frees them when it ends; exit logits are freed
// with the backward's input gradient. Truncated fill steps hold their partial share. Microbatches a
// rank never back-propagates (EE cool-down truncation, EE-Tuning's frozen backbone) are released
// at the rank's end. Pure function; thread-compatible.
#pragma once

#include <cstdint>
#include <vector>

#include "sim/engine.h"
#include "sim/schedule.h"
#include "sim/timeline.h"

namespace eellm {

struct ChunkMemory {                     // per virtual stage, per microbatch, one GPU
  int64_t activation_bytes = 0;          // stored for the backward (with recompute: what recompute keeps)
  int64_t activation_partial_bytes = 0;  // a truncated fill step (layers up to the deepest exit)
  int64_t exit_logits_bytes = 0;         // logits of the chunk's exit heads (and the final head)
};

struct MemoryParams {
  std::vector<int64_t> static_bytes;  // per rank: weights + grads + optimizer state
  std::vector<ChunkMemory> chunks;    // per virtual stage
};

struct RankMemory {
  int64_t static_bytes = 0;
  int64_t peak_bytes = 0;
  TimeNs peak_time = 0;
  int max_in_flight = 0;  // microbatch-chunks whose activations are held at once
};

struct MemoryTimeline {
  std::vector<RankMemory> ranks;
  std::vector<MemorySample> samples;  // per rank in time order; bytes never negative
};

MemoryTimeline memory_timeline(const Schedule& schedule, const EngineResult& result, const MemoryParams& params);

}  // namespace eellm
