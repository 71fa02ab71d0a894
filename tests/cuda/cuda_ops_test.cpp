// Every CudaBackend op, forward and backward, against the CPU reference on random inputs (shapes
// chosen off the kernels' tile sizes: odd row counts, C not a multiple of 32, T not a multiple of
// the attention tile, grouped-query heads). Backward ops start from random gradients, so the
// accumulate (+=) contract is checked too. Tolerances (cuda_test_util.h): fp32 1e-4 relative to the
// output's scale; fast-bf16 GEMMs 2e-2. Skipped (reported as skipped) without a GPU.
#include <gtest/gtest.h>

#include <limits>
#include <memory>

#include "exec/backend/backend.h"
#include "exec/backend/cuda/cuda_backend.h"
#include "tests/cuda/cuda_test_util.h"

namespace eellm::exec::testing {
namespace {

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    EELLM_SKIP_WITHOUT_GPU();
    CudaOptions o;
    o.gemm = math();
    auto b = make_cuda_backend(o);
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    gpu = std::move(b).value();
    cpu = make_cpu_backend(2);
  }
  virtual GemmMath math() const { return GemmMath::kFp32; }

  std::unique_ptr<Backend> cpu, gpu;
  std::mt19937 rng{1234};
};

TEST_F(CudaOps, MemoryHelpers) {
  auto a = randn(1001, rng), b = randn(1001, rng);
  Tensor A = on_device(a), B = on_device(b);
  gpu->add_inplace(A.ptr(), B.ptr(), a.size());
  gpu->scale_inplace(A.ptr(), 0.5f, a.size());
  gpu->synchronize();
  std::vector<float> want(a.size());
  for (size_t i = 0; i < a.size(); ++i) want[i] = (a[i] + b[i]) * 0.5f;
  EXPECT_CLOSE("add_inplace + scale_inplace", A, want, 1e-6);
  gpu->copy(A.ptr(), B.ptr(), 500);
  gpu->zero(A.ptr() + 500, 501);
  gpu->synchronize();
  for (size_t i = 0; i < a.size(); ++i) want[i] = i < 500 ? b[i] : 0.0f;
  EXPECT_CLOSE("copy + zero", A, want, 0.0);
  std::vector<float> host(a.size());
  gpu->upload(A.ptr(), a.data(), a.size());
  gpu->download(host.data(), A.ptr(), a.size());
  EXPECT_EQ(host, a);
  B.zero();  // Tensor::zero goes through the managed memory's stream memset
  gpu->synchronize();
  EXPECT_CLOSE("Tensor::zero", B, std::vector<float>(b.size(), 0.0f), 0.0);
}

TEST_F(CudaOps, Matmul) {
  const int N = 70, C = 96, OC = 130;
  auto x = randn(N * C, rng), w = randn(OC * C, rng, 0.1f), bias = randn(OC, rng), dy = randn(N * OC, rng);
  std::vector<float> out(N * OC);
  cpu->matmul_forward(out.data(), x.data(), w.data(), bias.data(), N, C, OC);
  Tensor X = on_device(x), W = on_device(w), Bi = on_device(bias), O({N * OC});
  gpu->matmul_forward(O.ptr(), X.ptr(), W.ptr(), Bi.ptr(), N, C, OC);
  gpu->synchronize();
  EXPECT_CLOSE("matmul_forward", O, out, kFp32Tol);

  auto dx = randn(N * C, rng), dw = randn(OC * C, rng), db = randn(OC, rng);
  Tensor DX = on_device(dx), DW = on_device(dw), DB = on_device(db), DY = on_device(dy);
  cpu->matmul_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), N, C, OC);
  gpu->matmul_backward(DX.ptr(), DW.ptr(), DB.ptr(), DY.ptr(), X.ptr(), W.ptr(), N, C, OC);
  gpu->synchronize();
  EXPECT_CLOSE("matmul_backward dinp", DX, dx, kFp32Tol);
  EXPECT_CLOSE("matmul_backward dweight", DW, dw, kFp32Tol);
  EXPECT_CLOSE("matmul_backward dbias", DB, db, kFp32Tol);

  // No bias, no input gradient.
  cpu->matmul_forward(out.data(), x.data(), w.data(), nullptr, N, C, OC);
  gpu->matmul_forward(O.ptr(), X.ptr(), W.ptr(), nullptr, N, C, OC);
  cpu->matmul_backward(nullptr, dw.data(), nullptr, dy.data(), x.data(), w.data(), N, C, OC);
  gpu->matmul_backward(nullptr, DW.ptr(), nullptr, DY.ptr(), X.ptr(), W.ptr(), N, C, OC);
  gpu->synchronize();
  EXPECT_CLOSE("matmul_forward (no bias)", O, out, kFp32Tol);
  EXPECT_CLOSE("matmul_backward dweight (no dinp)", DW, dw, kFp32Tol);
  // Input gradient only (the zero-bubble split's BWD_INPUT).
  cpu->matmul_backward(dx.data(), nullptr, nullptr, dy.data(), x.data(), w.data(), N, C, OC);
  gpu->matmul_backward(DX.ptr(), nullptr, nullptr, DY.ptr(), X.ptr(), W.ptr(), N, C, OC);
  gpu->synchronize();
  EXPECT_CLOSE("matmul_backward dinp only", DX, dx, kFp32Tol);
}

TEST_F(CudaOps, Norms) {
  const int N = 50, C = 200;
  for (Normalization kind : {Normalization::kLayerNorm, Normalization::kRMSNorm}) {
    const bool ln = kind == Normalization::kLayerNorm;
    SCOPED_TRACE(ln ? "LayerNorm" : "RMSNorm");
    auto x = randn(N * C, rng, 2.0f), w = randn(C, rng), b = randn(C, rng), dy = randn(N * C, rng);
    std::vector<float> out(N * C), mean(N), rstd(N);
    cpu->norm_forward(kind, out.data(), ln ? mean.data() : nullptr, rstd.data(), x.data(), w.data(),
                      ln ? b.data() : nullptr, N, C, 1e-5f);
    Tensor X = on_device(x), W = on_device(w), Bi = on_device(b), O({N * C}), M({N}), R({N});
    gpu->norm_forward(kind, O.ptr(), ln ? M.ptr() : nullptr, R.ptr(), X.ptr(), W.ptr(), ln ? Bi.ptr() : nullptr, N, C,
                      1e-5f);
    gpu->synchronize();
    EXPECT_CLOSE("norm_forward out", O, out, kFp32Tol);
    EXPECT_CLOSE("norm_forward rstd", R, rstd, kFp32Tol);
    if (ln) EXPECT_CLOSE("norm_forward mean", M, mean, kFp32Tol);

    auto dx = randn(N * C, rng), dw = randn(C, rng), db = randn(C, rng);
    Tensor DX = on_device(dx), DW = on_device(dw), DB = on_device(db), DY = on_device(dy);
    cpu->norm_backward(kind, dx.data(), dw.data(), ln ? db.data() : nullptr, dy.data(), x.data(), w.data(),
                       ln ? mean.data() : nullptr, rstd.data(), N, C);
    gpu->norm_backward(kind, DX.ptr(), DW.ptr(), ln ? DB.ptr() : nullptr, DY.ptr(), X.ptr(), W.ptr(),
                       ln ? M.ptr() : nullptr, R.ptr(), N, C);
    gpu->synchronize();
    EXPECT_CLOSE("norm_backward dinp", DX, dx, kFp32Tol);
    EXPECT_CLOSE("norm_backward dweight", DW, dw, kFp32Tol);
    if (ln) EXPECT_CLOSE("norm_backward dbias", DB, db, kFp32Tol);
  }
}

TEST_F(CudaOps, Embedding) {
  const int B = 2, T = 9, C = 40, V = 50;
  std::vector<int32_t> tok(B * T);
  for (int i = 0; i < B * T; ++i) tok[static_cast<size_t>(i)] = (i * 7) % 11;  // repeated tokens
  auto wte = randn(V * C, rng), wpe = randn(T * C, rng), dy = randn(B * T * C, rng);
  for (bool learned : {true, false}) {
    SCOPED_TRACE(learned ? "learned positions" : "no wpe");
    std::vector<float> out(B * T * C);
    cpu->embedding_forward(out.data(), tok.data(), wte.data(), learned ? wpe.data() : nullptr, B, T, C);
    Tensor WTE = on_device(wte), WPE = on_device(wpe), O({B * T * C});
    gpu->embedding_forward(O.ptr(), tok.data(), WTE.ptr(), learned ? WPE.ptr() : nullptr, B, T, C);
    gpu->synchronize();
    EXPECT_CLOSE("embedding_forward", O, out, kFp32Tol);
    auto dwte = randn(V * C, rng), dwpe = randn(T * C, rng);
    Tensor DWTE = on_device(dwte), DWPE = on_device(dwpe), DY = on_device(dy);
    cpu->embedding_backward(dwte.data(), learned ? dwpe.data() : nullptr, dy.data(), tok.data(), B, T, C);
    gpu->embedding_backward(DWTE.ptr(), learned ? DWPE.ptr() : nullptr, DY.ptr(), tok.data(), B, T, C);
    gpu->synchronize();
    EXPECT_CLOSE("embedding_backward dwte", DWTE, dwte, kFp32Tol);
    EXPECT_CLOSE("embedding_backward dwpe", DWPE, dwpe, kFp32Tol);
  }
}

TEST_F(CudaOps, Rope) {
  const AttentionShape s{2, 11, 4, 2, 16};
  const size_t n = static_cast<size_t>(s.B) * s.T * s.qkv_stride();
  auto q = randn(n, rng);
  Tensor Q = on_device(q);
  cpu->rope_forward(q.data(), s, 10000.0f);
  gpu->rope_forward(Q.ptr(), s, 10000.0f);
  gpu->synchronize();
  EXPECT_CLOSE("rope_forward", Q, q, kFp32Tol);
  cpu->rope_backward(q.data(), s, 10000.0f);
  gpu->rope_backward(Q.ptr(), s, 10000.0f);
  gpu->synchronize();
  EXPECT_CLOSE("rope_backward", Q, q, kFp32Tol);
}

TEST_F(CudaOps, Attention) {
  // (B, T, NH, G, HS): odd T and HS, grouped queries, each head-size kernel instance.
  for (const AttentionShape s : {AttentionShape{2, 70, 4, 2, 24}, AttentionShape{1, 64, 2, 2, 64},
                                 AttentionShape{1, 33, 4, 1, 128}, AttentionShape{1, 20, 2, 1, 160}}) {
    SCOPED_TRACE("B " + std::to_string(s.B) + " T " + std::to_string(s.T) + " NH " + std::to_string(s.NH) + " G " +
                 std::to_string(s.G) + " HS " + std::to_string(s.HS));
    const size_t nqkv = static_cast<size_t>(s.B) * s.T * s.qkv_stride(),
                 nout = static_cast<size_t>(s.B) * s.T * s.out_stride();
    const size_t nlse = static_cast<size_t>(s.B) * s.NH * s.T;
    auto qkv = randn(nqkv, rng), dout = randn(nout, rng), dqkv = randn(nqkv, rng);
    std::vector<float> out(nout), lse(nlse);
    cpu->attention_forward(out.data(), lse.data(), qkv.data(), s);
    Tensor QKV = on_device(qkv), O({static_cast<int64_t>(nout)}), L({static_cast<int64_t>(nlse)});
    gpu->attention_forward(O.ptr(), L.ptr(), QKV.ptr(), s);
    gpu->synchronize();
    EXPECT_CLOSE("attention_forward out", O, out, kFp32Tol);
    EXPECT_CLOSE("attention_forward lse", L, lse, kFp32Tol);
    Tensor DQKV = on_device(dqkv), DOUT = on_device(dout);
    cpu->attention_backward(dqkv.data(), dout.data(), out.data(), lse.data(), qkv.data(), s);
    gpu->attention_backward(DQKV.ptr(), DOUT.ptr(), O.ptr(), L.ptr(), QKV.ptr(), s);
    gpu->synchronize();
    EXPECT_CLOSE("attention_backward dqkv", DQKV, dqkv, kFp32Tol);
  }
}

TEST_F(CudaOps, Activations) {
  const int N = 37, F = 53;
  const size_t n = static_cast<size_t>(N) * F;
  auto x = randn(n, rng, 2.0f), dy = randn(n, rng), dx = randn(n, rng);
  std::vector<float> out(n);
  cpu->gelu_forward(out.data(), x.data(), n);
  Tensor X = on_device(x), O({static_cast<int64_t>(n)}), DY = on_device(dy), DX = on_device(dx);
  gpu->gelu_forward(O.ptr(), X.ptr(), n);
  cpu->gelu_backward(dx.data(), dy.data(), x.data(), n);
  gpu->gelu_backward(DX.ptr(), DY.ptr(), X.ptr(), n);
  gpu->synchronize();
  EXPECT_CLOSE("gelu_forward", O, out, kFp32Tol);
  EXPECT_CLOSE("gelu_backward", DX, dx, kFp32Tol);

  auto ab = randn(2 * n, rng, 2.0f), dab = randn(2 * n, rng);
  Tensor AB = on_device(ab), DAB = on_device(dab);
  cpu->swiglu_forward(out.data(), ab.data(), N, F);
  gpu->swiglu_forward(O.ptr(), AB.ptr(), N, F);
  cpu->swiglu_backward(dab.data(), dy.data(), ab.data(), N, F);
  gpu->swiglu_backward(DAB.ptr(), DY.ptr(), AB.ptr(), N, F);
  gpu->synchronize();
  EXPECT_CLOSE("swiglu_forward", O, out, kFp32Tol);
  EXPECT_CLOSE("swiglu_backward", DAB, dab, kFp32Tol);
}

TEST_F(CudaOps, ClassifierFused) {
  const int N = 37, C = 64, V = 1000, Vp = 1024;
  auto x = randn(N * C, rng), w = randn(Vp * C, rng, 0.2f), dx = randn(N * C, rng), dw = randn(Vp * C, rng);
  std::vector<int32_t> tgt(N);
  for (int i = 0; i < N; ++i) tgt[static_cast<size_t>(i)] = (i * 131) % V;
  std::vector<float> losses(N), logits(static_cast<size_t>(N) * Vp);
  cpu->classifier_fused(losses.data(), dx.data(), dw.data(), logits.data(), x.data(), w.data(), tgt.data(), N, C, V, Vp,
                        1.0f / N);
  Tensor X = on_device(x), W = on_device(w), DX = on_device(dx), DW = on_device(dw), Lo({N}),
         LG({static_cast<int64_t>(logits.size())});
  gpu->classifier_fused(Lo.ptr(), DX.ptr(), DW.ptr(), LG.ptr(), X.ptr(), W.ptr(), tgt.data(), N, C, V, Vp, 1.0f / N);
  gpu->synchronize();
  EXPECT_CLOSE("classifier losses", Lo, losses, kFp32Tol);
  EXPECT_CLOSE("classifier logits", LG, logits, kFp32Tol);
  EXPECT_CLOSE("classifier dx", DX, dx, kFp32Tol);
  EXPECT_CLOSE("classifier dweight", DW, dw, kFp32Tol);
  // Loss only.
  cpu->classifier_fused(losses.data(), nullptr, nullptr, nullptr, x.data(), w.data(), tgt.data(), N, C, V, Vp, 1.0f);
  gpu->classifier_fused(Lo.ptr(), nullptr, nullptr, nullptr, X.ptr(), W.ptr(), tgt.data(), N, C, V, Vp, 1.0f);
  gpu->synchronize();
  EXPECT_CLOSE("classifier losses (no grad)", Lo, losses, kFp32Tol);
}

TEST_F(CudaOps, ReductionsAndAdamW) {
  auto p = randn(100003, rng);
  Tensor P = on_device(p);
  const double want = cpu->sum_squares(p.data(), p.size()), got = gpu->sum_squares(P.ptr(), p.size());
  EXPECT_NEAR(got, want, 1e-9 * want);
  EXPECT_TRUE(gpu->all_finite(P.ptr(), p.size()));
  P.data[77777] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(gpu->all_finite(P.ptr(), p.size()));
  P.data[77777] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(gpu->all_finite(P.ptr(), p.size()));
  EXPECT_TRUE(gpu->all_finite(P.ptr(), 77777));

  const size_t n = 5000;
  auto w = randn(n, rng), g = randn(n, rng), m = randn(n, rng, 0.1f), v = randn(n, rng, 0.1f);
  for (float& x : v) x = std::fabs(x);
  Tensor W = on_device(w), G = on_device(g), M = on_device(m), Vt = on_device(v);
  for (int t = 1; t <= 3; ++t) {
    cpu->adamw_step(w.data(), g.data(), m.data(), v.data(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t);
    gpu->adamw_step(W.ptr(), G.ptr(), M.ptr(), Vt.ptr(), n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, t);
  }
  gpu->synchronize();
  EXPECT_CLOSE("adamw param", W, w, kFp32Tol);
  EXPECT_CLOSE("adamw m", M, m, kFp32Tol);
  EXPECT_CLOSE("adamw v", Vt, v, kFp32Tol);
}

TEST_F(CudaOps, DecodeOps) {
  const AttentionShape s{0, 0, 4, 2, 16};
  const int C = 40, Vv = 30, max_T = 24, B = 3, R = 4, KV = s.G * s.HS;
  const std::vector<int32_t> rows = {5, 1, 30, 12}, tokens = {3, 29, 0, 3}, pos = {5, 1, 6, 12}, seq = {0, 0, 1, 2};
  auto wte = randn(Vv * C, rng), wpe = randn(max_T * C, rng), store = randn(B * max_T * C, rng);
  Tensor WTE = on_device(wte), WPE = on_device(wpe), S = on_device(store);
  cpu->embed_rows(store.data(), rows.data(), tokens.data(), pos.data(), R, wte.data(), wpe.data(), C);
  gpu->embed_rows(S.ptr(), rows.data(), tokens.data(), pos.data(), R, WTE.ptr(), WPE.ptr(), C);
  cpu->embed_rows(store.data(), rows.data(), tokens.data(), pos.data(), 2, wte.data(), nullptr, C);
  gpu->embed_rows(S.ptr(), rows.data(), tokens.data(), pos.data(), 2, WTE.ptr(), nullptr, C);
  gpu->synchronize();
  EXPECT_CLOSE("embed_rows", S, store, 0.0);

  std::vector<float> batch(R * C);
  Tensor BT({R * C});
  cpu->gather_rows(batch.data(), store.data(), rows.data(), R, C);
  gpu->gather_rows(BT.ptr(), S.ptr(), rows.data(), R, C);
  gpu->synchronize();
  EXPECT_CLOSE("gather_rows", BT, batch, 0.0);
  auto upd = randn(R * C, rng);
  Tensor U = on_device(upd);
  cpu->scatter_rows(store.data(), upd.data(), rows.data(), R, C);
  gpu->scatter_rows(S.ptr(), U.ptr(), rows.data(), R, C);
  gpu->synchronize();
  EXPECT_CLOSE("scatter_rows", S, store, 0.0);

  auto qkv = randn(R * s.qkv_stride(), rng);
  Tensor QKV = on_device(qkv);
  cpu->rope_rows(qkv.data(), pos.data(), R, s, 10000.0f);
  gpu->rope_rows(QKV.ptr(), pos.data(), R, s, 10000.0f);
  gpu->synchronize();
  EXPECT_CLOSE("rope_rows", QKV, qkv, kFp32Tol);

  auto k = randn(B * max_T * KV, rng), v = randn(B * max_T * KV, rng);
  Tensor K = on_device(k), Vc = on_device(v);
  cpu->kv_append(k.data(), v.data(), qkv.data(), seq.data(), pos.data(), R, max_T, s);
  gpu->kv_append(K.ptr(), Vc.ptr(), QKV.ptr(), seq.data(), pos.data(), R, max_T, s);
  gpu->synchronize();
  EXPECT_CLOSE("kv_append k", K, k, kFp32Tol);
  EXPECT_CLOSE("kv_append v", Vc, v, kFp32Tol);

  std::vector<float> out(R * s.out_stride());
  Tensor O({R * s.out_stride()});
  cpu->attention_cached(out.data(), qkv.data(), k.data(), v.data(), seq.data(), pos.data(), R, max_T, s);
  gpu->attention_cached(O.ptr(), QKV.ptr(), K.ptr(), Vc.ptr(), seq.data(), pos.data(), R, max_T, s);
  gpu->synchronize();
  EXPECT_CLOSE("attention_cached", O, out, kFp32Tol);
}

// The training default: bf16 tensor-core products with fp32 accumulation.
class CudaOpsBf16 : public CudaOps {
 protected:
  GemmMath math() const override { return GemmMath::kBf16; }
};

TEST_F(CudaOpsBf16, MatmulAndClassifier) {
  const int N = 64, C = 256, OC = 192;
  auto x = randn(N * C, rng), w = randn(OC * C, rng, 0.1f);
  std::vector<float> out(N * OC);
  cpu->matmul_forward(out.data(), x.data(), w.data(), nullptr, N, C, OC);
  Tensor X = on_device(x), W = on_device(w), O({N * OC});
  gpu->matmul_forward(O.ptr(), X.ptr(), W.ptr(), nullptr, N, C, OC);
  gpu->synchronize();
  EXPECT_CLOSE("bf16 matmul_forward", O, out, kBf16Tol);
  EXPECT_GT(rel_error(O.ptr(), out), 0.0) << "bf16 math should differ from fp32 at all";

  const int V = 500, Vp = 512;
  auto wc = randn(Vp * C, rng, 0.05f);
  std::vector<int32_t> tgt(N);
  for (int i = 0; i < N; ++i) tgt[static_cast<size_t>(i)] = (i * 37) % V;
  std::vector<float> losses(N);
  cpu->classifier_fused(losses.data(), nullptr, nullptr, nullptr, x.data(), wc.data(), tgt.data(), N, C, V, Vp, 1.0f);
  Tensor WC = on_device(wc), Lo({N});
  gpu->classifier_fused(Lo.ptr(), nullptr, nullptr, nullptr, X.ptr(), WC.ptr(), tgt.data(), N, C, V, Vp, 1.0f);
  gpu->synchronize();
  EXPECT_CLOSE("bf16 classifier losses", Lo, losses, kBf16Tol);
}

TEST(CudaBackend, SelectionErrorsAreClear) {
  std::string why;
  if (cuda::device_count(&why) > 0) GTEST_SKIP() << "a GPU is present; the no-GPU error path is not reachable";
  auto b = make_cuda_backend();
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.status().to_string().find("no CUDA GPU"), std::string::npos) << b.status().to_string();
}

}  // namespace
}  // namespace eellm::exec::testing
