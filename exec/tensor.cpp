// Tensor memory spaces (see tensor.h): the host default, the process-wide selection, and the block
// header that remembers which memory allocated a block.
#include "exec/tensor.h"

#include <atomic>
#include <cstdlib>

namespace eellm::exec {
namespace {

void* host_alloc(size_t bytes) {
  const size_t rounded = (bytes + 255) / 256 * 256;
  return std::aligned_alloc(256, rounded == 0 ? 256 : rounded);
}
void host_release(void* p) { std::free(p); }

const TensorMemory kHost{"host", &host_alloc, &host_release, nullptr};
std::atomic<const TensorMemory*> g_memory{&kHost};

const TensorMemory*& owner_of(void* payload) {
  return *reinterpret_cast<const TensorMemory**>(static_cast<char*>(payload) - detail::kTensorHeader);
}

}  // namespace

const TensorMemory& host_tensor_memory() { return kHost; }
const TensorMemory& tensor_memory() { return *g_memory.load(std::memory_order_acquire); }
void set_tensor_memory(const TensorMemory& m) { g_memory.store(&m, std::memory_order_release); }

namespace detail {

void* tensor_block_alloc(size_t bytes) {
  const TensorMemory& m = tensor_memory();
  void* base = m.alloc(bytes + kTensorHeader);
  if (base == nullptr) throw std::bad_alloc();
  void* payload = static_cast<char*>(base) + kTensorHeader;
  owner_of(payload) = &m;
  return payload;
}

void tensor_block_free(void* payload) {
  if (payload == nullptr) return;
  const TensorMemory* m = owner_of(payload);
  m->release(static_cast<char*>(payload) - kTensorHeader);
}

void tensor_block_zero(void* payload, size_t bytes) {
  const TensorMemory* m = owner_of(payload);
  if (m->fill_zero != nullptr)
    m->fill_zero(payload, bytes);
  else
    std::memset(payload, 0, bytes);
}

}  // namespace detail
}  // namespace eellm::exec
