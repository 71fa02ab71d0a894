// The engine's cost inputs (SimCosts: per chunk, rank and pipeline hop) and their derivation from
// the cost model. Kept apart from the engine and from simulate() because make_schedule needs them
// too: EE-LLM's fill counts follow from the backward/forward ratio of the scenario's own costs, so
// the schedule stays a function of the scenario alone. Plain value types.
#pragma once

#include <cstdint>
#include <vector>

#include "model/cost_model.h"
#include "model/layout.h"
#include "sim/units.h"

namespace eellm {

// Per virtual stage (model chunk), per microbatch, per GPU.
struct ChunkTimes {
  TimeNs fwd = 0, bwd_input = 0, bwd_weight = 0;  // backbone (layers + embedding / final head)
  // Backbone up to (and including) the chunk's deepest exit: what a truncated fill step runs.
  TimeNs fwd_partial = 0, bwd_input_partial = 0, bwd_weight_partial = 0;
  TimeNs exit_fwd = 0, exit_bwd_input = 0, exit_bwd_weight = 0;  // all exit heads of the chunk
  TimeNs recompute = 0;  // forward recomputed inside backward (activation recompute)
  TimeNs recompute_partial = 0;
  double fwd_flops = 0, bwd_flops = 0, exit_fwd_flops = 0, exit_bwd_flops = 0;
  int64_t p2p_bytes = 0;  // activation (= its gradient) sent to the neighbour
};

// Per pipeline rank.
struct RankTimes {
  TimeNs dp_allreduce = 0;  // gradient reduction over the DP group (0 if dp == 1)
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

// The engine's costs of a scenario, from the cost model.
SimCosts sim_costs_from_model(const CostModel& model);

// Backward/forward time ratio of the pipeline (EE-LLM's fill counts use it); 2 when unknown.
double backward_forward_ratio(const SimCosts& costs);

// Backbone layers of chunk `v` up to (and including) its deepest exit; all layers if it has none.
int layers_to_deepest_exit(const Layout& layout, int v);

}  // namespace eellm
