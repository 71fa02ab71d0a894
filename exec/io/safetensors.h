// safetensors reading and writing, by hand (the format is 8 bytes little-endian header length, a
// JSON header {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
// "__metadata__": {string: string}}, then the raw little-endian data). F32 only, which is all the
// CPU backend stores. Also atomic file helpers used by checkpoints. Thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "exec/backend/tensor.h"
#include "model/status.h"

namespace eellm::exec {

// Serialises tensors (in the given order) and metadata to safetensors bytes.
std::string safetensors_bytes(const std::vector<std::pair<std::string, const Tensor*>>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};
// Parses safetensors bytes; `source` names the file in messages.
StatusOr<SafetensorsFile> parse_safetensors(const std::string& bytes, const std::string& source);
StatusOr<SafetensorsFile> read_safetensors(const std::string& path);

// Writes `bytes` to path atomically: path.tmp, fsync, rename over path, fsync the directory.
Status write_file_atomic(const std::string& path, const std::string& bytes);
StatusOr<std::string> read_file(const std::string& path);
Status fsync_dir(const std::string& dir);

// FNV-1a 64-bit, as 16 hex digits: the checksum recorded for checkpoint files.
std::string fnv1a64_hex(const std::string& bytes);

}  // namespace eellm::exec
