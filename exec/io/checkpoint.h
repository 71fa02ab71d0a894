// Training checkpoints. A checkpoint directory holds one sub-directory per saved iteration and a
// `latest` file naming the newest complete one:
//   DIR/latest                      "iter_0000100\n"
//   DIR/iter_0000100/model.safetensors      weights under GptParams::named() names
//   DIR/iter_0000100/optimizer.safetensors  AdamW moments "m.<name>", "v.<name>"
//   DIR/iter_0000100/state.json             iteration, Adam step, data position, seed, the scenario
//                                            (YAML), the model fingerprint, each file's size and
//                                            FNV-1a checksum
// Saving writes DIR/.tmp_iter_N/ (every file fsynced), renames it to DIR/iter_N, fsyncs DIR, then
// replaces `latest` atomically; a crash at any point leaves `latest` naming a complete checkpoint.
// Loading (exec/io/dist_checkpoint.h reads both kinds) verifies sizes, checksums, tensor names and
// shapes, every field's type and range, and that the model matches. Thread-compatible.
#pragma once

#include <string>

#include "exec/gpt/gpt.h"
#include "exec/gpt/optimizer.h"
#include "exec/io/data.h"
#include "model/scenario.h"
#include "model/status.h"

namespace eellm::exec {

struct TrainProgress {
  int iteration = 0;  // iterations completed
  DataPosition data;
  uint64_t seed = 0;
};

// Keeps the newest `keep` checkpoints (older iter_* directories are removed after `latest` moves).
Status save_checkpoint(const std::string& dir, const Scenario& scenario, const GptConfig& cfg, const GptParams& params,
                       AdamW* opt, const TrainProgress& progress, int keep = 2);

// What loading accepts beyond a well-formed checkpoint. Loading (load_checkpoint,
// load_distributed_checkpoint in exec/io/dist_checkpoint.h) checks every JSON field's type and range,
// every listed file (present, regular, size, checksum, safetensors header) — also files the caller
// does not need, such as optimizer state for generation — shapes against the model, and that the
// pieces of each tensor tile it exactly once; weights and moments holding NaN or ±Inf are refused
// unless `allow_nonfinite`.
struct CheckpointReadOptions {
  bool allow_nonfinite = false;
};

// The directory of the checkpoint `latest` names (or dir itself when it holds state.json or,
// for a distributed checkpoint (exec/io/dist_checkpoint.h), manifest.json). `latest` must be a
// regular file naming a sub-directory (a plain name) that holds one of them: a symlink, a directory
// or a path is kCorruption/kInvalidArgument naming it.
StatusOr<std::string> resolve_checkpoint_dir(const std::string& dir);

// The model fingerprint stored in checkpoints (JSON text: architecture fields that must match)
// and its check: kFailedPrecondition listing every differing field, `source` naming the file.
std::string model_fingerprint(const GptConfig& cfg);
Status check_model_fingerprint(const std::string& stored_json, const GptConfig& cfg, const std::string& source);
// The last steps of every save, once `tmp` holds the complete checkpoint: fsync it, rename it to
// DIR/NAME, fsync DIR, replace DIR/latest, then keep only the newest `keep` (≥ 1) iter_* directories.
Status publish_checkpoint(const std::string& dir, const std::string& tmp, const std::string& name, int keep);
// "iter_0000100"
std::string checkpoint_iter_name(int iteration);

}  // namespace eellm::exec
