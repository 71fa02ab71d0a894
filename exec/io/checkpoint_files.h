// What single-process (checkpoint.h) and distributed (dist_checkpoint.h) checkpoints share when they
// are read: their JSON files and the records of their data files, checked before anything is used.
// Internal to exec/io. Thread-compatible.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "exec/io/checkpoint.h"
#include "model/status.h"

namespace eellm::exec {

// A checkpoint's JSON file (state.json, manifest.json): a regular file (a symlink or directory is
// refused), JSON nested at most 16 deep, an object whose `format` is `format`. kCorruption naming it.
StatusOr<nlohmann::json> read_checkpoint_json(const std::string& path, const std::string& format);

// Progress fields: iteration in [0, 2^31 − 1], data.epoch, data.index and seed non-negative integers;
// `adam_step` (when present, else the iteration) in [0, 2^31 − 1].
struct CheckpointProgress {
  TrainProgress progress;
  int adam_step = 0;
};
StatusOr<CheckpointProgress> read_checkpoint_progress(const nlohmann::json& j, const std::string& source);

// `files`: an object of plain file names (no '/', not "." or "..") each {bytes: integer ≥ 0,
// fnv1a64: 16 hex digits}.
Status check_checkpoint_files(const nlohmann::json& files, const std::string& source);

// The bytes of data file `file` of checkpoint directory `sub`, listed in `files` (checked by
// check_checkpoint_files): present, a regular file, its size and checksum as recorded.
StatusOr<std::string> read_listed_file(const std::string& sub, const nlohmann::json& files, const std::string& file,
                                       const std::string& source);

}  // namespace eellm::exec
