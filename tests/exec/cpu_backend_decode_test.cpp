// The CPU backend's decode fast paths against double-precision references: the skinny-M matmul
// (M ≤ 16 rows, used by every decode step), the vectorised cached attention and the vectorised
// GELU/SwiGLU. Also the property the self-speculative mode relies on: a row's matmul result does
// not depend on the other rows of the call (bitwise), so verifying k drafted tokens at once gives
// the same logits as decoding them one at a time.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "exec/backend/backend.h"
#include "test_util.h"

namespace eellm::exec {
namespace {

// out (M, OC) = x · wᵀ + bias in double.
std::vector<double> matmul_ref(const std::vector<float>& x, const std::vector<float>& w, const float* bias, int M,
                               int C, int OC) {
  std::vector<double> out(static_cast<size_t>(M) * OC);
  for (int m = 0; m < M; ++m)
    for (int o = 0; o < OC; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int c = 0; c < C; ++c)
        acc += static_cast<double>(x[static_cast<size_t>(m) * C + c]) * w[static_cast<size_t>(o) * C + c];
      out[static_cast<size_t>(m) * OC + o] = acc;
    }
  return out;
}

TEST(CpuBackendDecode, SkinnyMatmulMatchesReferenceForEveryRowCountAndOddShapes) {
  std::mt19937 rng(7);
  for (int threads : {1, 2}) {
    auto be = make_cpu_backend(threads);
    // C not a multiple of the vector width, OC not a multiple of the 4-row weight tile; M across
    // the skinny range (1..16) and just past it (Eigen).
    for (auto [C, OC] : {std::pair{37, 13}, std::pair{256, 768}, std::pair{64, 5}}) {
      const auto w = testing::randn(static_cast<size_t>(OC) * C, rng, 0.1f);
      const auto bias = testing::randn(static_cast<size_t>(OC), rng);
      for (int M : {1, 2, 3, 4, 5, 7, 8, 16, 17}) {
        const auto x = testing::randn(static_cast<size_t>(M) * C, rng);
        for (const float* b : {static_cast<const float*>(nullptr), bias.data()}) {
          std::vector<float> out(static_cast<size_t>(M) * OC, -1.0f);
          be->matmul_forward(out.data(), x.data(), w.data(), b, M, C, OC);
          const auto ref = matmul_ref(x, w, b, M, C, OC);
          for (size_t i = 0; i < out.size(); ++i)
            ASSERT_NEAR(out[i], ref[i], 1e-5 * (1.0 + std::fabs(ref[i])))
                << "C " << C << " OC " << OC << " M " << M << " i " << i << " threads " << threads;
        }
      }
    }
  }
}

TEST(CpuBackendDecode, SkinnyMatmulRowsAreIndependentOfTheirNeighbours) {
  std::mt19937 rng(11);
  auto be = make_cpu_backend(1);
  const int C = 256, OC = 1024;
  const auto w = testing::randn(static_cast<size_t>(OC) * C, rng, 0.05f);
  const auto bias = testing::randn(static_cast<size_t>(OC), rng);
  for (int M : {2, 5, 9, 16}) {
    const auto x = testing::randn(static_cast<size_t>(M) * C, rng);
    std::vector<float> all(static_cast<size_t>(M) * OC), one(static_cast<size_t>(OC));
    be->matmul_forward(all.data(), x.data(), w.data(), bias.data(), M, C, OC);
    for (int m = 0; m < M; ++m) {
      be->matmul_forward(one.data(), x.data() + static_cast<size_t>(m) * C, w.data(), bias.data(), 1, C, OC);
      for (int o = 0; o < OC; ++o)
        ASSERT_EQ(all[static_cast<size_t>(m) * OC + o], one[static_cast<size_t>(o)]) << "M " << M << " row " << m;
    }
  }
}

TEST(CpuBackendDecode, CachedAttentionMatchesReference) {
  std::mt19937 rng(3);
  for (int HS : {32, 12}) {  // vector path and scalar fallback
    auto be = make_cpu_backend(2);
    const AttentionShape s{0, 0, 4, 2, HS};
    const int B = 2, max_T = 20, KV = s.G * HS, R = 3;
    const auto k = testing::randn(static_cast<size_t>(B) * max_T * KV, rng);
    const auto v = testing::randn(static_cast<size_t>(B) * max_T * KV, rng);
    const auto qkv = testing::randn(static_cast<size_t>(R) * s.qkv_stride(), rng);
    const int32_t seq[R] = {0, 1, 1}, pos[R] = {0, 6, 19};
    std::vector<float> out(static_cast<size_t>(R) * s.out_stride());
    be->attention_cached(out.data(), qkv.data(), k.data(), v.data(), seq, pos, R, max_T, s);
    for (int r = 0; r < R; ++r)
      for (int h = 0; h < s.NH; ++h) {
        const int g = h / (s.NH / s.G);
        const float* q = qkv.data() + static_cast<size_t>(r) * s.qkv_stride() + h * HS;
        std::vector<double> p(static_cast<size_t>(pos[r]) + 1);
        double mx = -1e300, sum = 0;
        for (int u = 0; u <= pos[r]; ++u) {
          const float* ku = k.data() + (static_cast<size_t>(seq[r]) * max_T + u) * KV + g * HS;
          double dot = 0;
          for (int i = 0; i < HS; ++i) dot += static_cast<double>(q[i]) * ku[i];
          p[static_cast<size_t>(u)] = dot / std::sqrt(static_cast<double>(HS));
          mx = std::max(mx, p[static_cast<size_t>(u)]);
        }
        for (double& x : p) sum += x = std::exp(x - mx);
        for (int i = 0; i < HS; ++i) {
          double o = 0;
          for (int u = 0; u <= pos[r]; ++u)
            o += p[static_cast<size_t>(u)] / sum * v[(static_cast<size_t>(seq[r]) * max_T + u) * KV + g * HS + i];
          EXPECT_NEAR(out[static_cast<size_t>(r) * s.out_stride() + h * HS + i], o, 2e-5)
              << "HS " << HS << " row " << r << " head " << h << " i " << i;
        }
      }
  }
}

TEST(CpuBackendDecode, VectorisedGeluAndSwigluMatchLibm) {
  auto be = make_cpu_backend(2);
  const size_t n = 2 * 1024 + 13;  // several thread blocks and a partial vector
  std::vector<float> x(n), y(n), dx(n, 0.5f), dy(n, 1.0f);
  for (size_t i = 0; i < n; ++i) x[i] = -8.0f + 16.0f * static_cast<float>(i) / static_cast<float>(n);
  be->gelu_forward(y.data(), x.data(), n);
  be->gelu_backward(dx.data(), dy.data(), x.data(), n);
  for (size_t i = 0; i < n; ++i) {
    const double xi = x[i];
    const double cdf = 0.5 * std::erfc(-xi / std::sqrt(2.0));
    EXPECT_NEAR(y[i], xi * cdf, 2e-5 * (1 + std::fabs(xi))) << xi;
    const double grad = cdf + xi * std::exp(-0.5 * xi * xi) / std::sqrt(2.0 * M_PI);
    EXPECT_NEAR(dx[i], 0.5 + grad, 2e-5) << xi;
  }
  const int N = 3, F = 21;
  std::vector<float> ab(static_cast<size_t>(N) * 2 * F), o(static_cast<size_t>(N) * F);
  for (size_t i = 0; i < ab.size(); ++i) ab[i] = -4.0f + 8.0f * static_cast<float>(i) / static_cast<float>(ab.size());
  be->swiglu_forward(o.data(), ab.data(), N, F);
  for (int r = 0; r < N; ++r)
    for (int i = 0; i < F; ++i) {
      const double a = ab[static_cast<size_t>(r) * 2 * F + i], b = ab[static_cast<size_t>(r) * 2 * F + F + i];
      EXPECT_NEAR(o[static_cast<size_t>(r) * F + i], a / (1 + std::exp(-a)) * b, 1e-5 * (1 + std::fabs(a * b)));
    }
}

}  // namespace
}  // namespace eellm::exec
