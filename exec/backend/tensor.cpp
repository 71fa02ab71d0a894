// Tensor memory spaces (see tensor.h): the host default, the process-wide selection, and the block
// header that remembers which memory allocated a block.
#include "exec/backend/tensor.h"

#include <malloc.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace eellm::exec {
namespace {

void* host_alloc(size_t bytes) {
  const size_t rounded = (bytes + 255) / 256 * 256;
  return std::aligned_alloc(256, rounded == 0 ? 256 : rounded);
}
void host_release(void* p) {
  std::free(p);
}

const TensorMemory kHost{"host", &host_alloc, &host_release, nullptr};
std::atomic<const TensorMemory*> g_memory{&kHost};

}  // namespace

void retain_freed_host_memory() {
  static std::once_flag once;
  std::call_once(once, [] {
    ::mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest: 32 MiB (64-bit)
    ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  });
}

const TensorMemory& host_tensor_memory() {
  return kHost;
}
const TensorMemory& tensor_memory() {
  return *g_memory.load(std::memory_order_acquire);
}
void set_tensor_memory(const TensorMemory& m) {
  g_memory.store(&m, std::memory_order_release);
}

namespace detail {

// Header (first 32 of the kTensorHeader bytes): owner, magic, payload bytes. A guard of kGuard bytes
// follows the payload. Both are checked on free, so a write past a tensor's end (or before its
// start) is reported at once with the tensor's size instead of corrupting the heap silently.
namespace {
constexpr uint64_t kMagic = 0x7e45'0c0d'e1a7'7e45ull;
constexpr size_t kGuard = 64;
constexpr unsigned char kGuardByte = 0xa5;
struct Header {
  const TensorMemory* owner;
  uint64_t magic;
  size_t bytes;
};
Header& header_of(void* payload) {
  return *reinterpret_cast<Header*>(static_cast<char*>(payload) - kTensorHeader);
}
[[noreturn]] void corrupted(const char* what, void* payload, size_t bytes) {
  std::fprintf(stderr,
               "eellm: tensor memory corrupted: %s (block at %p, %zu bytes); a write out of a tensor's "
               "bounds happened earlier\n",
               what, payload, bytes);
  std::abort();
}
}  // namespace

void* tensor_block_alloc(size_t bytes) {
  const TensorMemory& m = tensor_memory();
  void* base = m.alloc(bytes + kTensorHeader + kGuard);
  if (base == nullptr) throw std::bad_alloc();
  void* payload = static_cast<char*>(base) + kTensorHeader;
  header_of(payload) = Header{&m, kMagic, bytes};
  std::memset(static_cast<char*>(payload) + bytes, kGuardByte, kGuard);
  return payload;
}

void tensor_block_free(void* payload) {
  if (payload == nullptr) return;
  const Header h = header_of(payload);
  if (h.magic != kMagic) corrupted("header overwritten", payload, h.bytes);
  const unsigned char* g = static_cast<const unsigned char*>(payload) + h.bytes;
  for (size_t i = 0; i < kGuard; ++i)
    if (g[i] != kGuardByte) corrupted("write past the end", payload, h.bytes);
  h.owner->release(static_cast<char*>(payload) - kTensorHeader);
}

void tensor_block_zero(void* payload, size_t bytes) {
  const TensorMemory* m = header_of(payload).owner;
  if (m->fill_zero != nullptr)
    m->fill_zero(payload, bytes);
  else
    std::memset(payload, 0, bytes);
}

}  // namespace detail
}  // namespace eellm::exec
