// KvCache: the keys and values of every attention layer for a batch of sequences, for incremental
// (token-by-token) decoding of the early-exit GPT.
//
// Slots: slot l < num_layers is backbone layer l; slot num_layers + e is the transformer block of
// exit head e (use_exit_block), which attends over its own keys like any layer.
// Storage per slot and sequence: K and V, each (max_T, KV) row-major, KV = G·HS.
// length(slot, b) = number of positions [0, length) whose K/V are present.
//
// Invariant (checked by monotone()): for each sequence, backbone lengths never increase with depth —
// a position present in layer l+1 is present in layer l, because a token reaches deeper layers only
// through the shallower ones. Early exit makes deeper lengths SMALLER (the exited token's K/V is
// missing there until KV recomputation fills it); speculative decoding truncates to drop the K/V of
// rejected draft tokens. Appends must be contiguous (position == length).
// Thread-safety: none; one decoder owns one cache.
#pragma once

#include <cstddef>
#include <vector>

#include "exec/backend/tensor.h"

namespace eellm::exec {

class KvCache {
 public:
  KvCache() = default;
  KvCache(int num_layers, int num_exit_slots, int batch, int max_T, int kv_dim);

  int num_layers() const { return num_layers_; }
  int num_slots() const { return num_slots_; }
  int batch() const { return batch_; }
  int max_T() const { return max_T_; }
  int kv_dim() const { return kv_; }

  float* k(int slot, int b, int pos) { return k_.data() + offset(slot, b, pos); }
  float* v(int slot, int b, int pos) { return v_.data() + offset(slot, b, pos); }
  const float* k(int slot, int b, int pos) const { return k_.data() + offset(slot, b, pos); }
  const float* v(int slot, int b, int pos) const { return v_.data() + offset(slot, b, pos); }

  int length(int slot, int b) const { return len_[static_cast<size_t>(slot) * batch_ + b]; }
  // Marks position `pos` present. Precondition: pos ≤ length (contiguous; rewriting a present
  // position is allowed — verification passes rewrite drafted rows with the same values).
  void mark(int slot, int b, int pos);
  // Drops positions ≥ len in every slot of sequence b (rejected speculative tokens).
  void truncate(int b, int len);
  void reset(int b) { truncate(b, 0); }
  // True if backbone lengths of sequence b are non-increasing with depth.
  bool monotone(int b) const;
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

 private:
  size_t offset(int slot, int b, int pos) const {
    return ((static_cast<size_t>(slot) * batch_ + b) * max_T_ + pos) * kv_;
  }
  int num_layers_ = 0, num_slots_ = 0, batch_ = 0, max_T_ = 0, kv_ = 0;
  TensorData k_, v_;  // backend memory (host, or CUDA managed memory under the CUDA backend)
  std::vector<int> len_;
};

}  // namespace eellm::exec
