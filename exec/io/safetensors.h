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
// One tensor of a checked header: its shape and [begin, end) in the data section.
struct SafetensorsEntry {
  std::string name;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;
};
struct SafetensorsIndex {
  std::vector<SafetensorsEntry> tensors;  // in data order
  std::map<std::string, std::string> metadata;
  size_t data_start = 0;  // offset of the data section in the file
};
// Checks the header of safetensors bytes without copying data: the header length within the file
// (and ≤ 100 MB), a JSON object nested at most 8 deep, each tensor an object with dtype "F32", a
// shape (json_shape) and data_offsets [begin, end] of non-negative integers with begin ≤ end ≤ data
// size and end − begin = 4 × elements (no overflow), no two tensors overlapping, __metadata__ an
// object of strings. kCorruption naming `source`, the tensor and the field.
StatusOr<SafetensorsIndex> index_safetensors(const std::string& bytes, const std::string& source);
// Parses safetensors bytes (index_safetensors, then the data); `source` names the file in messages.
// NaN or ±Inf values are kCorruption naming the tensor and element unless `allow_nonfinite`.
StatusOr<SafetensorsFile> parse_safetensors(const std::string& bytes, const std::string& source,
                                            bool allow_nonfinite = false);
// The check parse_safetensors makes, without keeping the tensors.
Status check_safetensors(const std::string& bytes, const std::string& source, bool allow_nonfinite = false);
StatusOr<SafetensorsFile> read_safetensors(const std::string& path);

// Writes `bytes` to path atomically: path.tmp, fsync, rename over path, fsync the directory.
Status write_file_atomic(const std::string& path, const std::string& bytes);
// The bytes of a regular file: directories, FIFOs, devices and sockets are refused by type before
// reading (kInvalidArgument naming the path), so is a symbolic link unless `follow_symlinks`; a
// missing file is kNotFound, a symlink loop or unreadable file kIOError.
StatusOr<std::string> read_file(const std::string& path, bool follow_symlinks = true);
Status fsync_dir(const std::string& dir);

// Destinations checked before work starts (so that hours of training are not lost to a bad path):
// `dir` is a directory, created if missing, in which a file can be created (a probe file is made
// and removed); `path` is a file that can be written (its directory exists, it is not a directory
// or special file; a probe file is made in its place when it does not exist, then removed).
// kInvalidArgument/kIOError naming `option` (e.g. "--save"), the path and the reason.
Status check_writable_dir(const std::string& dir, const std::string& option);
Status check_writable_file(const std::string& path, const std::string& option);

// FNV-1a 64-bit, as 16 hex digits: the checksum recorded for checkpoint files.
std::string fnv1a64_hex(const std::string& bytes);

}  // namespace eellm::exec
