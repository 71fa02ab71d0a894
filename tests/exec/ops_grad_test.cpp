// Finite-difference gradient checks of every backend op: the analytic backward (with dout = r for
// a random r) against central differences of L = Σ r·forward(x), at sampled coordinates.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/backend/fast_math.h"
#include "test_util.h"

namespace eellm::exec {
namespace {

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// Compares `analytic` (dL/dx) with central differences of loss() at up to `samples` coordinates.
void check(const char* what, std::vector<float>& x, const std::vector<float>& analytic,
           const std::function<double()>& loss, int samples = 40, float h = 1e-3f) {
  std::mt19937 rng(99);
  double worst = 0;
  for (int s = 0; s < samples; ++s) {
    const size_t i = rng() % x.size();
    const float keep = x[i];
    x[i] = keep + h;
    const double lp = loss();
    x[i] = keep - h;
    const double lm = loss();
    x[i] = keep;
    const double fd = (lp - lm) / (2.0 * h);
    const double err = std::fabs(fd - analytic[i]);
    EXPECT_LE(err, 2e-2 * std::fabs(analytic[i]) + 2e-3)
        << what << " coordinate " << i << ": analytic " << analytic[i] << " vs finite difference " << fd;
    worst = std::max(worst, err);
  }
}

class OpsGrad : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_cpu_backend(2);
  std::mt19937 rng{1};
};

TEST_F(OpsGrad, Matmul) {
  const int N = 6, C = 5, OC = 7;
  auto x = testing::randn(N * C, rng), w = testing::randn(OC * C, rng), b = testing::randn(OC, rng),
       r = testing::randn(N * OC, rng);
  std::vector<float> out(N * OC), dx(N * C, 0), dw(OC * C, 0), db(OC, 0);
  auto loss = [&] {
    be->matmul_forward(out.data(), x.data(), w.data(), b.data(), N, C, OC);
    return dot(out, r);
  };
  be->matmul_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), N, C, OC);
  check("matmul dx", x, dx, loss);
  check("matmul dw", w, dw, loss);
  check("matmul db", b, db, loss);
}

TEST_F(OpsGrad, Norms) {
  for (Normalization kind : {Normalization::kLayerNorm, Normalization::kRMSNorm}) {
    const int N = 5, C = 16;
    const bool ln = kind == Normalization::kLayerNorm;
    auto x = testing::randn(N * C, rng), w = testing::randn(C, rng), b = testing::randn(C, rng),
         r = testing::randn(N * C, rng);
    std::vector<float> out(N * C), mean(N), rstd(N), dx(N * C, 0), dw(C, 0), db(C, 0);
    auto loss = [&] {
      be->norm_forward(kind, out.data(), mean.data(), rstd.data(), x.data(), w.data(), ln ? b.data() : nullptr, N, C,
                       1e-5f);
      return dot(out, r);
    };
    loss();
    be->norm_backward(kind, dx.data(), dw.data(), ln ? db.data() : nullptr, r.data(), x.data(), w.data(), mean.data(),
                      rstd.data(), N, C);
    check(ln ? "layernorm dx" : "rmsnorm dx", x, dx, loss);
    check(ln ? "layernorm dw" : "rmsnorm dw", w, dw, loss);
    if (ln) check("layernorm db", b, db, loss);
  }
}

TEST_F(OpsGrad, Embedding) {
  const int B = 2, T = 4, C = 3, V = 5;
  std::vector<int32_t> tok = {0, 3, 3, 1, 4, 0, 2, 3};
  auto wte = testing::randn(V * C, rng), wpe = testing::randn(T * C, rng), r = testing::randn(B * T * C, rng);
  std::vector<float> out(B * T * C), dwte(V * C, 0), dwpe(T * C, 0);
  auto loss = [&] {
    be->embedding_forward(out.data(), tok.data(), wte.data(), wpe.data(), B, T, C);
    return dot(out, r);
  };
  be->embedding_backward(dwte.data(), dwpe.data(), r.data(), tok.data(), B, T, C);
  check("embedding dwte", wte, dwte, loss);
  check("embedding dwpe", wpe, dwpe, loss);
}

TEST_F(OpsGrad, RopeAndAttentionWithGqa) {
  const AttentionShape s{2, 7, 4, 2, 6};
  const size_t nqkv = static_cast<size_t>(s.B) * s.T * s.qkv_stride(),
               nout = static_cast<size_t>(s.B) * s.T * s.out_stride();
  auto qkv = testing::randn(nqkv, rng), r = testing::randn(nout, rng);
  std::vector<float> tmp(nqkv), out(nout), lse(static_cast<size_t>(s.B) * s.NH * s.T), dqkv(nqkv, 0);
  auto loss = [&] {
    tmp = qkv;
    be->rope_forward(tmp.data(), s, 10000.0f);
    be->attention_forward(out.data(), lse.data(), tmp.data(), s);
    return dot(out, r);
  };
  loss();
  be->attention_backward(dqkv.data(), r.data(), out.data(), lse.data(), tmp.data(), s);
  be->rope_backward(dqkv.data(), s, 10000.0f);
  check("rope+attention dqkv", qkv, dqkv, loss, 80);
}

TEST_F(OpsGrad, AttentionAcrossCausalBlocks) {
  // T = 150: the backend's causal blocks of query rows (64) end with a partial one, and every
  // block but the first meets keys of earlier blocks.
  const AttentionShape s{1, 150, 4, 2, 8};
  const size_t nqkv = static_cast<size_t>(s.T) * s.qkv_stride(), nout = static_cast<size_t>(s.T) * s.out_stride();
  auto qkv = testing::randn(nqkv, rng), r = testing::randn(nout, rng);
  std::vector<float> out(nout), lse(static_cast<size_t>(s.NH) * s.T), dqkv(nqkv, 0);
  auto loss = [&] {
    be->attention_forward(out.data(), lse.data(), qkv.data(), s);
    return dot(out, r);
  };
  loss();
  be->attention_backward(dqkv.data(), r.data(), out.data(), lse.data(), qkv.data(), s);
  check("attention dqkv (T = 150)", qkv, dqkv, loss, 120);
  // The forward against the definition, row by row: softmax over the keys up to the row.
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.HS));
  for (int h = 0; h < s.NH; ++h) {
    const int g = h / (s.NH / s.G);
    for (int t : {0, 63, 64, 100, 127, 128, 149}) {
      std::vector<double> p(static_cast<size_t>(t) + 1);
      double mx = -1e30, sum = 0;
      for (int u = 0; u <= t; ++u) {
        double d = 0;
        for (int i = 0; i < s.HS; ++i)
          d += static_cast<double>(qkv[static_cast<size_t>(t) * s.qkv_stride() + h * s.HS + i]) *
               qkv[static_cast<size_t>(u) * s.qkv_stride() + (s.NH + g) * s.HS + i];
        p[static_cast<size_t>(u)] = d * scale;
        mx = std::max(mx, p[static_cast<size_t>(u)]);
      }
      for (double& x : p) sum += x = std::exp(x - mx);
      EXPECT_NEAR(lse[static_cast<size_t>(h) * s.T + t], mx + std::log(sum), 1e-4) << "head " << h << " row " << t;
      for (int i = 0; i < s.HS; ++i) {
        double o = 0;
        for (int u = 0; u <= t; ++u)
          o += p[static_cast<size_t>(u)] / sum *
               qkv[static_cast<size_t>(u) * s.qkv_stride() + (s.NH + s.G + g) * s.HS + i];
        EXPECT_NEAR(out[static_cast<size_t>(t) * s.out_stride() + h * s.HS + i], o, 1e-4)
            << "head " << h << " row " << t;
      }
    }
  }
}

TEST_F(OpsGrad, AttentionIsCausal) {
  // Changing the last token's k/v must not change any earlier output.
  const AttentionShape s{1, 5, 2, 2, 4};
  const size_t nqkv = static_cast<size_t>(s.T) * s.qkv_stride(), nout = static_cast<size_t>(s.T) * s.out_stride();
  auto qkv = testing::randn(nqkv, rng);
  std::vector<float> out1(nout), out2(nout), lse(static_cast<size_t>(s.NH) * s.T);
  be->attention_forward(out1.data(), lse.data(), qkv.data(), s);
  for (int i = s.NH * s.HS; i < s.qkv_stride(); ++i) qkv[static_cast<size_t>((s.T - 1) * s.qkv_stride() + i)] += 1.0f;
  be->attention_forward(out2.data(), lse.data(), qkv.data(), s);
  for (size_t i = 0; i < static_cast<size_t>((s.T - 1) * s.out_stride()); ++i) EXPECT_EQ(out1[i], out2[i]) << i;
}

TEST_F(OpsGrad, Activations) {
  const int N = 4, F = 6;
  auto x = testing::randn(N * 2 * F, rng), r = testing::randn(N * 2 * F, rng), r2 = testing::randn(N * F, rng);
  std::vector<float> out(N * 2 * F), dx(N * 2 * F, 0);
  auto gelu = [&] {
    be->gelu_forward(out.data(), x.data(), x.size());
    return dot(out, r);
  };
  be->gelu_backward(dx.data(), r.data(), x.data(), x.size());
  check("gelu", x, dx, gelu);
  // Φ from the forward's output (out = x·Φ(x)) instead of erfc: the same gradient.
  gelu();
  std::vector<float> dx_out(N * 2 * F, 0);
  be->gelu_backward(dx_out.data(), r.data(), x.data(), x.size(), true, out.data());
  check("gelu from the forward's output", x, dx_out, gelu);
  std::vector<float> out2(N * F), dx2(N * 2 * F, 0);
  auto swiglu = [&] {
    be->swiglu_forward(out2.data(), x.data(), N, F);
    return dot(out2, r2);
  };
  be->swiglu_backward(dx2.data(), r2.data(), x.data(), N, F);
  check("swiglu", x, dx2, swiglu);
}

// gelu'(x) from the forward's output agrees with the recomputed one across [-12, 12], through the
// switch to the series near 0 (|x| < 1e-3) and at 0, with the padded last vector (n not a multiple
// of the vector width).
TEST_F(OpsGrad, GeluBackwardFromForwardOutputMatchesRecomputation) {
  std::vector<float> x;
  for (float v = -12.0f; v <= 12.0f; v += 0.0137f) x.push_back(v);
  const size_t zero_at = x.size();
  for (float v : {0.0f, 1e-3f, -1e-3f, 0.99e-3f, -1.01e-3f, 1e-6f, -1e-30f, 5e-4f, 2e-3f}) x.push_back(v);
  const size_t n = x.size();
  ASSERT_NE(n % 16, 0u);  // a partial last vector (8 or 16 lanes) goes through the padded path
  std::vector<float> out(n), ones(n, 1.0f), g_erfc(n), g_out(n);
  be->gelu_forward(out.data(), x.data(), n);
  be->gelu_backward(g_erfc.data(), ones.data(), x.data(), n, false);
  be->gelu_backward(g_out.data(), ones.data(), x.data(), n, false, out.data());
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    // gelu' lies in about [-0.17, 1.13]; compare absolutely, on the scale of its values.
    worst = std::max(worst, static_cast<double>(std::fabs(g_out[i] - g_erfc[i])));
    EXPECT_TRUE(std::isfinite(g_out[i])) << x[i];
  }
  EXPECT_LT(worst, 2e-6);
  EXPECT_NEAR(g_out[zero_at], 0.5f, 1e-7f);  // x = 0: Φ(0) = 1/2
}

TEST_F(OpsGrad, FusedClassifierWithPaddedVocab) {
  const int N = 5, C = 8, V = 11, Vp = 16;
  auto x = testing::randn(N * C, rng), w = testing::randn(Vp * C, rng, 0.5f);
  std::vector<int32_t> tgt = {0, 10, 3, 7, 3};
  std::vector<float> losses(N), dx(N * C, 0), dw(Vp * C, 0);
  const float scale = 0.7f;
  auto loss = [&] {
    be->classifier_fused(losses.data(), nullptr, nullptr, nullptr, x.data(), w.data(), tgt.data(), N, C, V, Vp, 0);
    double s = 0;
    for (float l : losses) s += scale * l;
    return s;
  };
  be->classifier_fused(losses.data(), dx.data(), dw.data(), nullptr, x.data(), w.data(), tgt.data(), N, C, V, Vp,
                       scale);
  check("classifier dx", x, dx, loss);
  check("classifier dw", w, dw, loss);
  for (int j = V; j < Vp; ++j)
    for (int c = 0; c < C; ++c) EXPECT_EQ(dw[static_cast<size_t>(j * C + c)], 0.0f) << "padded row " << j;
  // Loss of uniform logits is log V (padding excluded).
  std::vector<float> zero_w(Vp * C, 0.0f);
  be->classifier_fused(losses.data(), nullptr, nullptr, nullptr, x.data(), zero_w.data(), tgt.data(), N, C, V, Vp, 0);
  EXPECT_NEAR(losses[0], std::log(static_cast<float>(V)), 1e-6);
}

TEST(FastMath, ExpAndErfcAccuracy) {
  double worst_exp = 0, worst_erfc = 0;
  for (double x = -80.0; x <= 80.0; x += 1e-3) {
    const float xf = static_cast<float>(x);
    const double ref = std::exp(static_cast<double>(xf));
    worst_exp = std::max(worst_exp, std::fabs(fast_expf(xf) - ref) / ref);
  }
  for (double x = -6.0; x <= 6.0; x += 1e-4) {
    const float xf = static_cast<float>(x);
    const double ref = std::erfc(static_cast<double>(xf));
    worst_erfc = std::max(worst_erfc, std::fabs(fast_erfcf(xf) - ref) / ref);
  }
  EXPECT_LT(worst_exp, 3e-7);
  EXPECT_LT(worst_erfc, 2e-5);
  EXPECT_EQ(fast_expf(-1000.0f) < 1e-37f, true);
  EXPECT_TRUE(std::isnan(fast_expf(std::nanf(""))));
}

TEST_F(OpsGrad, DeterministicForFixedThreads) {
  const AttentionShape s{2, 33, 4, 4, 8};
  const size_t nqkv = static_cast<size_t>(s.B) * s.T * s.qkv_stride(),
               nout = static_cast<size_t>(s.B) * s.T * s.out_stride();
  auto qkv = testing::randn(nqkv, rng), r = testing::randn(nout, rng);
  std::vector<float> out(nout), lse(static_cast<size_t>(s.B) * s.NH * s.T), d1(nqkv, 0), d2(nqkv, 0);
  be->attention_forward(out.data(), lse.data(), qkv.data(), s);
  be->attention_backward(d1.data(), r.data(), out.data(), lse.data(), qkv.data(), s);
  be->attention_backward(d2.data(), r.data(), out.data(), lse.data(), qkv.data(), s);
  EXPECT_EQ(d1, d2);
}

}  // namespace
}  // namespace eellm::exec
