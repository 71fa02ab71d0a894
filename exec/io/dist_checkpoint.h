// Distributed checkpoints (issue [exec-dist] 6): per-rank shard files plus a manifest, written by
// all ranks together and atomically, and readable by ANY parallel layout (and by the single-process
// trainer), because everything is stored per named tensor of the full model:
//
//   DIR/latest                               "iter_0000004\n" (replaced atomically, last)
//   DIR/iter_0000004/manifest.json           written last, by world rank 0
//   DIR/iter_0000004/rank_00003.safetensors  one per rank that holds something nobody else wrote
//
// manifest.json: {"format": "eellm-dist-checkpoint-1", "iteration", "data": {"epoch","index"},
//   "seed", "scenario_name", "scenario_yaml", "model" (checkpoint.h fingerprint), "layout": {"tp",
//   "pp","dp","vp","world","distributed_optimizer"}, "files": {FILE: {"bytes","fnv1a64"}},
//   "tensors": {NAME: {"shape": full shape,
//       "params":  [{"file","key","dim","ranges","local_shape"}],            TP slices (tp_shard.h)
//       "moments": [{"file","m","v","dim","ranges","local_shape","begin","end"}]}}}
//   A param piece is the TP shard (dim, ranges of the FULL tensor; dim −1 = whole) stored under
//   `key`; a moment piece is elements [begin, end) of the flattened TP shard (ZeRO-1 shards), AdamW
//   m and v stored under their keys as 1-D tensors. Pieces tile each tensor exactly once (checked
//   at save). The training RNG is the data order alone (no dropout): seed + data position.
// Saving: rank 0 creates DIR/.tmp_iter_N; every rank sends rank 0 a description of what it holds;
// rank 0 assigns each piece to the first rank (world order) holding it; those ranks write and
// fsync their files; rank 0 writes the manifest, fsyncs, renames .tmp_iter_N → iter_N, then
// replaces `latest`. A crash at any point leaves `latest` naming a complete checkpoint, and a
// directory without manifest.json is never loaded ("incomplete save"). Every phase ends with an
// agreement over the world, so all ranks return the same success or failure.
// Loading: each rank reads the manifest, checks the format and the model, assembles the FULL
// tensors it needs from the pieces (any layout) and cuts out its own shard. Files are verified
// (size, checksum) before use; errors name the file and the tensor/field.
// Thread-compatible; the save is collective over `world`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "exec/comm/comm.h"
#include "exec/gpt/gpt.h"
#include "exec/gpt/tp_shard.h"
#include "exec/io/checkpoint.h"
#include "model/scenario.h"
#include "model/status.h"

namespace eellm::exec {

// One named tensor (or its TP shard) this rank holds.
struct CkptParam {
  std::string name;                 // GptParams::named() name
  std::vector<int64_t> full_shape;  // of the full model
  ShardSpec spec;                   // which part of the full tensor `local` is
  Tensor* local = nullptr;          // read at save, written at load
};
// AdamW moments of elements [begin, end) of one (TP-local, flattened) tensor.
struct CkptMoments {
  std::string name;
  std::vector<int64_t> full_shape;
  ShardSpec spec;
  std::vector<int64_t> local_shape;
  size_t begin = 0, end = 0;
  float* m = nullptr;  // end − begin floats each
  float* v = nullptr;
};
struct CkptLayout {
  int tp = 1, pp = 1, dp = 1, vp = 1;
  bool distributed_optimizer = false;
};

// Collective over `world`. `params`/`moments`: what this rank holds (duplicates across ranks are
// written once). `keep`: newest iter_* directories kept.
Status save_distributed_checkpoint(const std::string& dir, Communicator& world, const Scenario& scenario,
                                   const GptConfig& full_cfg, const CkptLayout& layout,
                                   const std::vector<CkptParam>& params, const std::vector<CkptMoments>& moments,
                                   const TrainProgress& progress, double timeout_s, int keep = 2);

// The pieces of a save, decided by rank 0. describe_checkpoint_holdings: one rank's params and
// moments as JSON text (what rank 0 gathers). assign_checkpoint_pieces (pure): each piece goes to the
// first rank in world order that holds it; `params[r]`/`moments[r]` index rank r's own lists;
// `tensors_json` is the manifest's "tensors" section. kInternal when the pieces do not tile a
// tensor (or a TP shard's moments) exactly once, naming the tensor and the covered count.
struct PieceAssignment {
  std::vector<std::vector<size_t>> params, moments;
  std::string tensors_json;
};
std::string describe_checkpoint_holdings(const std::vector<CkptParam>& params, const std::vector<CkptMoments>& moments);
StatusOr<PieceAssignment> assign_checkpoint_pieces(const std::vector<std::string>& descriptions);

// Not collective. Reads the checkpoint `latest` names (or `dir` itself) — a distributed one, or a
// single-process one from exec/io/checkpoint.h — and fills every listed param and moment slice.
// `progress` may be null.
Status load_distributed_checkpoint(const std::string& dir, const GptConfig& full_cfg,
                                   const std::vector<CkptParam>& params, const std::vector<CkptMoments>& moments,
                                   TrainProgress* progress, const CheckpointReadOptions& opts = {});

// Any checkpoint into a single process's full model: a single-process one (checkpoint.h) or a
// distributed one (its pieces assembled into the full tensors). Both are checked as
// CheckpointReadOptions (checkpoint.h) describes before anything is copied; errors name the file and field. `opt` may
// be null (weights only), `progress` too.
Status load_checkpoint(const std::string& dir, const GptConfig& cfg, GptParams& params, AdamW* opt,
                       TrainProgress* progress, const CheckpointReadOptions& opts = {});

// The scenario stored in a checkpoint (for `eellm eval`/`generate CHECKPOINT`); for a distributed
// checkpoint its parallel section is reset to one process (the weights load into any layout).
StatusOr<Scenario> checkpoint_scenario(const std::string& dir);

// The layout recorded in a distributed checkpoint's manifest.
StatusOr<CkptLayout> distributed_checkpoint_layout(const std::string& dir);

// Collective over `world`: every rank returns ok only if all ranks passed ok; otherwise every rank
// returns the Status of the lowest failing world rank, its message prefixed with "rank N: ".
Status agree_on_status(Communicator& world, const Status& st, double timeout_s);

// Helpers for a TP rank's tensors: full shape of tensor `name` (largest range end over the tp
// ranks along the split dim) and the ShardSpec, from tp_shard.h.
StatusOr<std::vector<int64_t>> full_shape_of(const GptConfig& full_cfg, const std::string& name,
                                             const std::vector<int64_t>& local_shape, int tp);

}  // namespace eellm::exec
