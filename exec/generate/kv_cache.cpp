#include "exec/generate/kv_cache.h"

#include <algorithm>
#include <cassert>

namespace eellm::exec {

KvCache::KvCache(int num_layers, int num_exit_slots, int batch, int max_T, int kv_dim)
    : num_layers_(num_layers), num_slots_(num_layers + num_exit_slots), batch_(batch), max_T_(max_T), kv_(kv_dim) {
  const size_t n = static_cast<size_t>(num_slots_) * batch_ * max_T_ * kv_;
  k_.assign(n, 0.0f);
  v_.assign(n, 0.0f);
  len_.assign(static_cast<size_t>(num_slots_) * batch_, 0);
}

void KvCache::mark(int slot, int b, int pos) {
  int& l = len_[static_cast<size_t>(slot) * batch_ + b];
  assert(pos <= l && pos < max_T_);
  l = std::max(l, pos + 1);
}

void KvCache::truncate(int b, int len) {
  for (int s = 0; s < num_slots_; ++s) {
    int& l = len_[static_cast<size_t>(s) * batch_ + b];
    l = std::min(l, std::max(len, 0));
  }
}

bool KvCache::monotone(int b) const {
  for (int l = 1; l < num_layers_; ++l)
    if (length(l, b) > length(l - 1, b)) return false;
  return true;
}

}  // namespace eellm::exec
