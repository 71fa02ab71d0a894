// Megatron tensor-parallel sharding of the early-exit GPT's parameters: which part of each FULL
// tensor (by its ParamRole, exec/gpt/gpt.h; full-model shapes) one tensor-parallel rank holds,
// the local model config whose GptParams::allocate() gives exactly those shard shapes, and the
// copy between a full tensor and a shard. Used by exec/runtime (init, TP execution), the sharded
// checkpoints and the tests; the one place where the sharding rules live.
//
// Rules (tp ranks r = 0..tp-1; every split is into tp equal contiguous blocks):
//  - column-parallel weights/biases split their output rows (dim 0):
//      qkv_w/qkv_b rows are [q: NH·HS | k: G·HS | v: G·HS] → three ranges (local heads, local kv
//      groups: rank r holds heads [r·NH/tp, (r+1)·NH/tp) and groups [r·G/tp, (r+1)·G/tp));
//      fc_w/fc_b and exit mlp_fc_w/mlp_fc_b: [r·F/tp, ...) — with SwiGLU rows are [a | b] → two ranges;
//  - row-parallel weights split their input columns (dim 1): proj_w (Q), fcproj_w and exit
//    mlp_fcproj_w (F); their biases (proj_b, fcproj_b, mlp_fcproj_b) are replicated;
//  - vocabulary-parallel: wte, lm_head, exits.*.out_w rows [r·Vp/tp, (r+1)·Vp/tp) (Vp is padded
//    to a multiple of tp by derive_layout);
//  - replicated: norms, wpe, row-parallel biases.
// A shard is the concatenation, along `dim`, of the listed ranges in order. The shards of all tp
// ranks tile the full tensor exactly once for split tensors (tests/exec/tp_shard_test.cpp).
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "exec/backend/tensor.h"
#include "exec/gpt/gpt.h"
#include "model/status.h"

namespace eellm::exec {

// Which part of a full tensor one tp rank holds. dim < 0: the whole tensor (replicated).
struct ShardSpec {
  int dim = -1;
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [begin, end) along dim of the FULL tensor
  bool replicated() const { return dim < 0; }
  int64_t local_extent() const;  // Σ (end − begin)
};

// The model config of one tp rank: NH/tp heads, G/tp kv groups, F/tp ffn, Vp/tp vocabulary rows;
// `tp` records the degree. V stays the FULL real vocabulary size (a rank's columns j are global
// vocabulary ids rank·Vp_local + j; ids ≥ V are padding). tp = 1 returns `full` unchanged.
// Fails (naming the field) when NH, G, F or Vp is not divisible by tp.
StatusOr<GptConfig> local_config(const GptConfig& full, int tp);

// The part of a tensor with role `role` (GptParams::params(); FULL config) that rank `tp_rank` holds:
// the rules above, keyed by the role's split and part.
StatusOr<ShardSpec> shard_spec(const GptConfig& full, const ParamRole& role, int tp, int tp_rank);
// The same for a serialized name (a checkpoint key; param_role_of). Unknown names are an error.
StatusOr<ShardSpec> shard_spec(const GptConfig& full, const std::string& name, int tp, int tp_rank);

// Shape of the shard of a full tensor of shape `full_shape`.
std::vector<int64_t> shard_shape(const std::vector<int64_t>& full_shape, const ShardSpec& spec);

// Copies the shard out of a full tensor / back into it (insert overwrites that part only).
Tensor extract_shard(const Tensor& full, const ShardSpec& spec);
void insert_shard(Tensor& full, const Tensor& shard, const ShardSpec& spec);

// True for tensors whose every tp rank holds an identical full copy (the gradient norm counts
// them once; their gradients are equal on every tp rank).
bool is_tp_replicated(const ParamRole& role);
bool is_tp_replicated(const std::string& name);  // by param_role_of; unknown names count as replicated

}  // namespace eellm::exec
