// Pipeline-based early-exit generation (EE-LLM's method) over MPI ranks: pipeline stage s holds
// backbone layers [first[s], first[s+1]) and the exits placed on it (model/layout.h), each with its
// own KV cache. Per decode step (one new token per unfinished sequence):
//   stage 0 embeds the tokens, runs its layers and exits, and sends the rows on; every later stage
//   runs its layers, evaluates its exits only for rows no earlier exit has decided, and forwards;
//   a stage whose exit fires (or the last stage, with the final head) sends the decision (sequence,
//   head, logits row) straight to stage 0, which picks the token (its RNG, so sampling matches the
//   single-process generator) and starts the next step at once; the later stages finish the
//   decided token only to fill their KV caches, skipping their heads.
// So every token's K/V exists in every layer (no recomputation is needed), and the tokens equal
// the single-process KV-recomputation method with an unbounded pending cap (max_pending ≥ max_T):
// both compute the same exit decisions from the same K/V.
//
// Messages (pipeline group; tag 1 stage s→s+1, tag 2 stage s→0):
//   rows:     int32 header [kind, R, then B × (seq, pos, decided)] (fixed size 2 + 3B), then R·C
//             floats (the residual rows at the stage boundary) when R > 0;
//   decision: int32 [n, then B × (seq, head)] (fixed size 1 + 2B), then n·Vp floats of logits.
// Stage s ≥ 1 sends exactly one decision message for each step in which a row reached it
// undecided; stage 0 receives them from stages 1, 2, ... in order until every row is decided.
// Thread-safety: one call per rank, from the thread that owns the communicator.
#pragma once

#include <vector>

#include "exec/comm/comm.h"
#include "exec/generate/generate.h"
#include "model/layout.h"

namespace eellm::exec {

// Which layers and exits each pipeline stage holds.
struct PipelineStages {
  std::vector<int> first_layer;  // pp + 1 entries: stage s holds [first_layer[s], first_layer[s+1])
  std::vector<int> exit_stage;   // per exit (model order): the stage evaluating it
  int pp() const { return static_cast<int>(first_layer.size()) - 1; }
};

// From a derived layout (vp must be 1: generation runs no interleaved schedule). Errors name the
// field. The layout's exits must be the config's.
StatusOr<PipelineStages> pipeline_stages(const Layout& layout, const GptConfig& cfg);
// Layers split as evenly as derive_layout would (earlier stages take the remainder); exits on the
// stage that holds their layer (a pre_exit at depth d sits on the stage whose first layer is d).
StatusOr<PipelineStages> even_pipeline_stages(const GptConfig& cfg, int pp);

// Frees the parameters of layers and exits that stage `stage` does not hold, so a rank keeps only
// its stage (the word embedding stays on stages that use it: stage 0, the last stage with a tied
// final head, stages with tied exits).
void keep_stage_params(const GptConfig& cfg, const PipelineStages& st, int stage, GptParams& params);

// Runs one batch on every rank of `pipeline` (group rank = stage; size = st.pp()). Every rank passes
// the same prompts and options. Stage 0 returns the result; other stages return an empty result.
// Blocking receives fail after `timeout_s` (≤ 0 → wait forever) with an error naming the peer.
// Stats: layers_per_token = L (every token traverses every layer), decode time on stage 0.
StatusOr<GenerateResult> generate_pipeline(const GptConfig& cfg, const GptParams& params, Backend& be,
                                           const PipelineStages& st, const std::vector<std::vector<int32_t>>& prompts,
                                           const GenerateOptions& o, Communicator& pipeline, double timeout_s);

// The whole job of `mpirun -np P eellm generate CKPT --method pipeline`: initialises MPI (world =
// pp stages; tp = dp = 1), takes the stage split from the checkpoint's scenario when its
// pipeline_model_parallel_size equals P (honouring layer_partition), else splits evenly; each rank
// keeps only its stage's parameters and runs generate_pipeline with `threads` backend threads
// (≤ 0 → cores / ranks on the node). `*rank` gets the world rank; rank 0 holds the result. Errors
// without MPI (a build without it, or not started by a launcher) say how to run it.
StatusOr<GenerateResult> generate_pipeline_mpi(GenerationModel& model, const std::vector<std::vector<int32_t>>& prompts,
                                               const GenerateOptions& o, int threads, double timeout_s, int* rank);

}  // namespace eellm::exec
