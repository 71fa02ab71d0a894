// Shared helpers of the CUDA tests: the skip-without-GPU rule, random host data, device tensors
// and the error measure the tolerances are stated in.
//
// Error measure: max_i |got_i − want_i| / max(max_i |want_i|, 1e-6) — the largest error relative to
// the output's scale (elementwise relative error is meaningless near zero crossings). Tolerances:
// fp32 ops 1e-4; GEMM-based ops with CUBLAS_COMPUTE_32F_FAST_16BF 2e-2 (bf16 products: 8-bit
// mantissa, fp32 accumulation).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "exec/backend/cuda/cuda_context.h"
#include "exec/backend/tensor.h"

namespace eellm::exec::testing {

inline constexpr double kFp32Tol = 1e-4;
inline constexpr double kBf16Tol = 2e-2;

// GTEST_SKIP()s the calling test (must be used in the test body or SetUp) without a GPU.
#define EELLM_SKIP_WITHOUT_GPU()                                                                       \
  do {                                                                                                 \
    std::string why_;                                                                                  \
    if (::eellm::exec::cuda::device_count(&why_) == 0) GTEST_SKIP() << "no CUDA GPU (" << why_ << ")"; \
  } while (0)

inline std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A backend-memory copy of host data (managed memory once the CUDA backend exists).
inline Tensor on_device(const std::vector<float>& h) {
  Tensor t({static_cast<int64_t>(h.size())});
  std::copy(h.begin(), h.end(), t.data.begin());
  return t;
}

inline double rel_error(const float* got, const std::vector<float>& want) {
  double scale = 1e-6, err = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, static_cast<double>(std::fabs(want[i])));
    const double e = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(e <= err)) err = std::isnan(e) ? INFINITY : e;
  }
  return err / scale;
}

}  // namespace eellm::exec::testing

#define EXPECT_CLOSE(what, got_tensor, want_vec, tol)                                      \
  do {                                                                                     \
    ASSERT_EQ((got_tensor).numel(), (want_vec).size()) << what;                            \
    const double err_ = ::eellm::exec::testing::rel_error((got_tensor).ptr(), (want_vec)); \
    EXPECT_LE(err_, (tol)) << what << ": max error relative to the output's scale";        \
  } while (0)
