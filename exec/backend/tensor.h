// Tensor: a named, shaped, contiguous fp32 buffer (row-major) owned by value. Parameters, gradients,
// optimizer state and activations are all Tensors. Invariant: data.size() == product(shape).
// Not thread-safe to mutate concurrently; ops split work by index.
//
// Memory space. `data` is a std::vector<float> with TensorAllocator, which takes its blocks from the
// process-wide TensorMemory selected at run time: host memory by default, CUDA managed memory
// (cudaMallocManaged) once the CUDA backend is chosen (exec/backend/device.h make_backend). The same pointer
// then works in kernels and on the host, so host code that reads a loss keeps working — AFTER
// Backend::synchronize(), since kernels run asynchronously. Every block records the TensorMemory that
// allocated it (in a 256-byte header), so a tensor allocated before a switch is still freed by its
// own allocator; tensors a device backend reads must be allocated after the switch.
// Tensor::zero() goes through the memory's fill_zero (for CUDA a memset on the backend's stream that
// waits for the queued kernels and completes before returning, so host and device both see zeros).
// Thread-safety: set_tensor_memory is meant for start-up; the current memory is an atomic pointer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace eellm::exec {

// One memory space. alloc returns storage aligned to 256 bytes or null; release frees it.
// fill_zero (nullable → host memset) zeroes `bytes` bytes at p and returns when they are zero.
struct TensorMemory {
  const char* name;
  void* (*alloc)(size_t bytes);
  void (*release)(void* p);
  void (*fill_zero)(void* p, size_t bytes);
};

const TensorMemory& host_tensor_memory();
// The memory new tensor blocks come from (host_tensor_memory() until set).
const TensorMemory& tensor_memory();
// `m` must outlive every tensor allocated from it (use a static object).
void set_tensor_memory(const TensorMemory& m);

// Keeps freed host memory in the process (glibc: blocks up to 32 MiB from the heap, not mmap, and
// the heap never trimmed below 1 GiB of free top) so the activations a pipeline allocates per
// microbatch and frees after its backward are reused, not returned to the kernel and faulted in
// again. Without it a 2-rank CPU pipeline spent half its time in page faults (zeroing fresh pages,
// in a VM each fault an exit): 580 → 290 ms per iteration. Idempotent; called by the CPU backend.
void retain_freed_host_memory();

namespace detail {
inline constexpr size_t kTensorHeader = 256;  // keeps the payload 256-byte aligned (cuBLAS, float4)
void* tensor_block_alloc(size_t bytes);       // header + payload; throws std::bad_alloc
void tensor_block_free(void* payload);
void tensor_block_zero(void* payload, size_t bytes);
}  // namespace detail

// Stateless: every allocator compares equal, moves and swaps are pointer exchanges.
template <class T>
struct TensorAllocator {
  using value_type = T;
  using is_always_equal = std::true_type;
  TensorAllocator() noexcept = default;
  template <class U>
  TensorAllocator(const TensorAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(detail::tensor_block_alloc(n * sizeof(T))); }
  void deallocate(T* p, size_t) noexcept { detail::tensor_block_free(p); }
  template <class U>
  bool operator==(const TensorAllocator<U>&) const noexcept {
    return true;
  }
};

using TensorData = std::vector<float, TensorAllocator<float>>;

struct Tensor {
  std::vector<int64_t> shape;
  TensorData data;

  Tensor() = default;
  explicit Tensor(std::vector<int64_t> s) : shape(std::move(s)), data(numel_of(shape), 0.0f) {}

  static size_t numel_of(const std::vector<int64_t>& s) {
    size_t n = 1;
    for (int64_t d : s) n *= static_cast<size_t>(d);
    return s.empty() ? 0 : n;
  }
  size_t numel() const { return data.size(); }
  bool empty() const { return data.empty(); }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
  void zero() {
    if (!data.empty()) detail::tensor_block_zero(data.data(), data.size() * sizeof(float));
  }
  // Grows (never shrinks) the buffer; used for scratch space reused across calls.
  void ensure(size_t n) {
    if (data.size() < n) data.resize(n);
    shape = {static_cast<int64_t>(data.size())};
  }
};

// Gives `t` the shape, reallocating (zero-filled) only when the element count changes: scratch and
// activation buffers reused across microbatches.
inline void resize(Tensor& t, std::vector<int64_t> shape) {
  const size_t n = Tensor::numel_of(shape);
  if (t.data.size() != n) t.data.assign(n, 0.0f);
  t.shape = std::move(shape);
}
// Null for an unallocated (optional) tensor: biases, learned positions, untied heads.
inline const float* opt(const Tensor& t) {
  return t.empty() ? nullptr : t.ptr();
}
inline float* opt(Tensor& t) {
  return t.empty() ? nullptr : t.ptr();
}

inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

}  // namespace eellm::exec
