// Derived sizes of a scenario, computed in one place: data-parallel size, number of microbatches,
// layers per (virtual) stage, and on which stage/chunk each exit lands. Pure function of the
// Scenario; call derive_layout() again after changing a scenario (the planner does).
#pragma once

#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

// One exit head as placed on the pipeline.
struct ExitPlacement {
  int index = 0;          // position in exits.exit_layer_nums
  int layer = 0;          // the 1-based layer number from the scenario
  int depth = 0;          // backbone layers before the head: layer-1 with pre_exit, else layer
  int stage = 0;          // pipeline rank holding it
  int chunk = 0;          // model chunk (virtual stage index on that rank)
  int virtual_stage = 0;  // chunk·pp + stage: position along the model
};

// A model chunk: a contiguous range of backbone layers held by one pipeline rank.
struct ChunkLayout {
  int stage = 0;          // pipeline rank
  int chunk = 0;          // chunk index on that rank (0..vp-1)
  int virtual_stage = 0;  // chunk·pp + stage
  int first_layer = 0;    // 0-based index of the first backbone layer
  int num_layers = 0;
  bool has_embedding = false;   // virtual stage 0: word (and position) embedding
  bool has_final_head = false;  // last virtual stage: final norm + output projection + loss
  std::vector<int> exits;       // indices into Layout::exits, in model order
};

struct Layout {
  int tp = 1, pp = 1, dp = 1, vp = 1;
  int world_size = 1;
  int num_microbatches = 1;                     // global_batch / (micro_batch · dp)
  int padded_vocab_size = 0;                    // vocab padded to a multiple of make_vocab_size_divisible_by · tp
  int ffn_hidden_size = 0;                      // resolved default
  int kv_channels = 0;                          // resolved default
  int num_query_groups = 0;                     // resolved default
  std::vector<ChunkLayout> chunks;              // indexed by virtual_stage (pp·vp entries)
  std::vector<ExitPlacement> exits;             // in exit_layer_nums order
  ScheduleKind schedule = ScheduleKind::k1F1B;  // resolved (fill_explicit_bubbles → kEEFill)

  const ChunkLayout& chunk(int stage, int chunk_index) const { return chunks[chunk_index * pp + stage]; }
  int num_virtual_stages() const { return pp * vp; }
};

// Exit loss weight of exit `exit_index` at a training iteration (0-based): warms up from
// exit_layer_weight_init to exit_layer_weight over exit_layer_weight_warmup_iters (linear or cosine).
double exit_loss_weight_at(const ExitSpec& spec, int exit_index, int iteration);

// Computes the layout; fails with a Status naming the field when sizes do not divide or exits fall
// outside the model. Does not check memory (see validate.h).
StatusOr<Layout> derive_layout(const Scenario& scenario);

// Megatron's SwiGLU default ffn size when ffn_hidden_size is 0; 4h for GELU.
int default_ffn_hidden_size(const ModelSpec& model);

}  // namespace eellm
