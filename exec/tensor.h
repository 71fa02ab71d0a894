// Tensor: a named, shaped, contiguous fp32 buffer (row-major) owned by value. The CPU backend's
// memory; parameters, gradients, optimizer state and activations are all Tensors. Invariant:
// data.size() == product(shape). Not thread-safe to mutate concurrently; ops split work by index.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace eellm::exec {

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;

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
  void zero() { std::fill(data.begin(), data.end(), 0.0f); }
  // Grows (never shrinks) the buffer; used for scratch space reused across calls.
  void ensure(size_t n) {
    if (data.size() < n) data.resize(n);
    shape = {static_cast<int64_t>(data.size())};
  }
};

inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + ")";
}

}  // namespace eellm::exec
