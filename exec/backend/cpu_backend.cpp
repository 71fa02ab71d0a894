// The CPU reference backend: GEMMs through Eigen or OpenBLAS (gemm.h: chosen by measuring both;
// decode steps of ≤ 16 rows through skinny_matmul), everything else as loops over explicit vectors
// (fast_math.h) where it matters.
//
// Threads: one CpuPool (cpu_pool.h) per backend, no OpenMP team: every op is one job of items
// (row slices, blocks of elements, heads) that the threads take dynamically, so a core taken by
// another process delays one item instead of a fixed share, and waiting threads sleep after a short
// spin. Items are fixed by the shape and the thread count, never by which thread runs them, so
// results are bitwise reproducible run to run; reductions over rows sum per-item partials in item
// order.
//
// GEMM: Eigen compiled with -march=native, or OpenBLAS loaded with the right core type, both called
// single-threaded on row slices of the output (one thread pool; Eigen's own OpenMP GEMM spins on
// flags between its threads). Neither splits the reduction dimension. Bias additions run in the
// slice that computed the rows, while they are in cache.
//
// bf16 GEMM math (GemmMath::kBf16, gemm.h): gemm_rows rounds both operands to bf16 once per call
// and the same slices run oneDNN's bf16 GEMM (fp32 accumulation, fp32 outputs); the fused
// classifier rounds its weight once and each slice its rows; the attention rounds q, k, v (and dout)
// once per call and its probabilities (and their gradients) once per block, so its per-head
// products are bf16 too. Scores, softmax, decode steps (skinny_matmul, attention_cached) and
// everything else stay fp32.
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/backend/cpu_pool.h"
#include "exec/backend/fast_math.h"
#include "exec/backend/gemm.h"
#include "exec/backend/tensor.h"

namespace eellm::exec {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Map = Eigen::Map<RowMat>;
using CMap = Eigen::Map<const RowMat>;
using SMap = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;
using CSMap = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;

class CpuBackend final : public Backend {
  // Per-thread buffers of the attention ops (kept between calls: no allocation per step).
  struct Scratch {
    RowMat S, dP;
    std::vector<float> D, sc;
    std::vector<uint16_t> rows16;  // bf16 math: classifier_fused's slice, the attention's probabilities
  };

 public:
  CpuBackend(int threads, CpuGemm gemm, GemmMath math)
      : threads_(threads > 0 ? threads : omp_get_num_procs()),  // the CPUs this process may run on
        gemm_(cpu_gemm_info(gemm).available ? gemm : CpuGemm::kEigen),
        blas_(gemm_ != CpuGemm::kEigen),
        bf16_(math == GemmMath::kBf16),
        pool_(threads_),
        scratch_(static_cast<size_t>(threads_)) {
    Eigen::setNbThreads(1);  // Eigen runs inside the pool's items, single-threaded
  }
  std::string name() const override { return "cpu"; }
  std::string gemm_name() const override {
    return bf16_ ? "onednn bf16 (" + bf16_gemm_info().kernel + "), fp32 decode " + cpu_gemm_label(gemm_)
                 : cpu_gemm_label(gemm_);
  }
  int num_threads() const override { return threads_; }

  // Split over the pool like the elementwise ops: a layer's backward zeroes ~28 MB of gradient
  // buffers (tiny-ee), which on the calling thread alone left the other threads idle.
  void zero(float* p, size_t n) override {
    for_blocks(n, [&](size_t i0, size_t len) { std::memset(p + i0, 0, len * sizeof(float)); });
  }
  void copy(float* dst, const float* src, size_t n) override { std::copy(src, src + n, dst); }
  void add_inplace(float* dst, const float* src, size_t n) override {
    for_blocks(n, [&](size_t i0, size_t len) {
#pragma omp simd
      for (size_t i = i0; i < i0 + len; ++i) dst[i] += src[i];
    });
  }
  void scale_inplace(float* p, float s, size_t n) override {
    for_blocks(n, [&](size_t i0, size_t len) {
#pragma omp simd
      for (size_t i = i0; i < i0 + len; ++i) p[i] *= s;
    });
  }

  void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                      int OC) override {
    if (N <= kSkinnyRows) {
      skinny_matmul(out, inp, weight, bias, N, C, OC);
      return;
    }
    gemm_rows(false, true, N, OC, C, inp, C, weight, C, 0.0f, out, OC, bias);
  }

  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const float* weight, int N, int C, int OC, bool accumulate_dinp = true) override {
    if (bf16_ && (dinp || dweight)) {  // dy rounded to bf16 once for both products
      to_bf16_rows(dout, OC, N, OC, a16_);
      if (dinp) {
        to_bf16_rows(weight, C, OC, C, b16_);
        sliced_gemm(false, false, N, C, OC, a16_.data(), OC, b16_.data(), C, accumulate_dinp ? 1.0f : 0.0f, dinp, C,
                    nullptr);
      }
      if (dweight) {
        to_bf16_rows(inp, C, N, C, b16_);
        sliced_gemm(true, false, OC, C, N, a16_.data(), OC, b16_.data(), C, 1.0f, dweight, C, nullptr);
      }
      if (dbias) column_sums_add(dbias, dout, N, OC);
      return;
    }
    if (dinp) gemm_rows(false, false, N, C, OC, dout, OC, weight, C, accumulate_dinp ? 1.0f : 0.0f, dinp, C);
    if (dweight) gemm_rows(true, false, OC, C, N, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) column_sums_add(dbias, dout, N, OC);
  }

  void norm_forward(Normalization kind, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                    const float* bias, int N, int C, float eps) override {
    for_rows(N, kRowGrain, [&](int n0, int n1, int) {
      for (int n = n0; n < n1; ++n) norm_row(kind, out, mean, rstd, inp, weight, bias, n, C, eps);
    });
  }

  static void norm_row(Normalization kind, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int n, int C, float eps) {
    const float* x = inp + static_cast<size_t>(n) * C;
    float* y = out + static_cast<size_t>(n) * C;
    float m = 0.0f;
    if (kind == Normalization::kLayerNorm) {
#pragma omp simd reduction(+ : m)
      for (int i = 0; i < C; ++i) m += x[i];
      m /= static_cast<float>(C);
    }
    float var = 0.0f;
#pragma omp simd reduction(+ : var)
    for (int i = 0; i < C; ++i) var += (x[i] - m) * (x[i] - m);
    var /= static_cast<float>(C);
    const float s = 1.0f / std::sqrt(var + eps);
    if (bias) {
#pragma omp simd
      for (int i = 0; i < C; ++i) y[i] = (x[i] - m) * s * weight[i] + bias[i];
    } else {
#pragma omp simd
      for (int i = 0; i < C; ++i) y[i] = (x[i] - m) * s * weight[i];
    }
    if (mean) mean[n] = m;
    rstd[n] = s;
  }

  void norm_backward(Normalization kind, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const float* mean, const float* rstd, int N, int C) override {
    const bool ln = kind == Normalization::kLayerNorm;
    // Weight and bias gradients: one partial per item of kRowGrain rows, summed in item order.
    const int items = (N + kRowGrain - 1) / kRowGrain;
    partial_.assign(static_cast<size_t>(items) * 2 * C, 0.0f);
    for_rows(N, kRowGrain, [&](int n0, int n1, int) {
      float* pw = partial_.data() + static_cast<size_t>(n0 / kRowGrain) * 2 * C;
      float* pb = pw + C;
      // A local copy of the captured pointer: through the closure GCC 12 gathered weight[i] lane by
      // lane (vgatherqps) in the reduction below, three quarters of this op's time.
      const float* w = weight;
      for (int n = n0; n < n1; ++n) {
        const float* x = inp + static_cast<size_t>(n) * C;
        const float* dy = dout + static_cast<size_t>(n) * C;
        float* dx = dinp + static_cast<size_t>(n) * C;
        const float m = ln ? mean[n] : 0.0f, s = rstd[n];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
#pragma omp simd reduction(+ : dnorm_mean, dnorm_norm_mean)
        for (int i = 0; i < C; ++i) {
          const float xhat = (x[i] - m) * s;
          const float dn = w[i] * dy[i];
          dnorm_mean += dn;
          dnorm_norm_mean += dn * xhat;
        }
        dnorm_mean /= static_cast<float>(C);
        dnorm_norm_mean /= static_cast<float>(C);
        if (!ln) dnorm_mean = 0.0f;  // RMSNorm does not subtract the mean
#pragma omp simd
        for (int i = 0; i < C; ++i) {
          const float xhat = (x[i] - m) * s;
          const float dn = w[i] * dy[i];
          dx[i] += (dn - dnorm_mean - xhat * dnorm_norm_mean) * s;
          pw[i] += dy[i] * xhat;
          pb[i] += dy[i];
        }
      }
    });
    for (int t = 0; t < items; ++t) {
      const float* pw = partial_.data() + static_cast<size_t>(t) * 2 * C;
      for (int i = 0; i < C; ++i) dweight[i] += pw[i];
      if (dbias)
        for (int i = 0; i < C; ++i) dbias[i] += pw[C + i];
    }
  }

  void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                         int C) override {
    for_rows(B * T, kRowGrain, [&](int r0, int r1, int) {
      for (int bt = r0; bt < r1; ++bt) {
        const float* e = wte + static_cast<size_t>(tokens[bt]) * C;
        const float* p = wpe ? wpe + static_cast<size_t>(bt % T) * C : nullptr;
        float* o = out + static_cast<size_t>(bt) * C;
        for (int i = 0; i < C; ++i) o[i] = e[i] + (p ? p[i] : 0.0f);
      }
    });
  }

  void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                          int C) override {
    // Split by blocks of 16 channels (one cache line of each row) so every thread owns distinct
    // columns of dwte/dwpe: no races, and each element sums its rows in order (bt ascending).
    constexpr int kCols = 16;
    const int blocks = (C + kCols - 1) / kCols;
    pool_.run(blocks, [&](long cb, int) {
      const int i0 = static_cast<int>(cb) * kCols, i1 = std::min(C, i0 + kCols);
      for (int bt = 0; bt < B * T; ++bt) {
        const float* g = dout + static_cast<size_t>(bt) * C;
        float* e = dwte + static_cast<size_t>(tokens[bt]) * C;
        float* p = dwpe ? dwpe + static_cast<size_t>(bt % T) * C : nullptr;
#pragma omp simd
        for (int i = i0; i < i1; ++i) e[i] += g[i];
        if (p) {
#pragma omp simd
          for (int i = i0; i < i1; ++i) p[i] += g[i];
        }
      }
    });
  }

  void rope_forward(float* qkv, const AttentionShape& s, float base) override {
    rope(qkv, s, base, 1.0f);
  }
  void rope_backward(float* dqkv, const AttentionShape& s, float base) override {
    rope(dqkv, s, base, -1.0f);
  }

  // Causal attention in blocks of kAttRows query rows: block [t0, t1) only meets keys [0, t1), so
  // the products above the diagonal's blocks are never computed (5/8 of the full T×T work at T = 256).
  // bf16 math: q, k and v rounded to bf16 once per call, the probabilities once per block (as a
  // flash attention kernel feeds its P·V product); scores, softmax and outputs stay fp32.
  void attention_forward(float* out, float* lse, const float* qkv, const AttentionShape& s) override {
    if (!bf16_) return attention_forward_t(out, lse, qkv, s);
    to_bf16_rows(qkv, s.qkv_stride(), s.B * s.T, s.qkv_stride(), a16_);
    attention_forward_t(out, lse, static_cast<const uint16_t*>(a16_.data()), s);
  }
  // T: float (fp32 products) or uint16_t (bf16 bit patterns; qkv is then the rounded copy).
  template <class T>
  void attention_forward_t(float* out, float* lse, const T* qkv, const AttentionShape& s) {
    const int Tn = s.T, HS = s.HS, per_group = s.NH / s.G;
    const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
    const int ld = s.qkv_stride(), lo = s.out_stride();
    // One item per (batch, head); its result does not depend on the thread.
    pool_.run(s.B * s.NH, [&](long item, int thread) {
      Scratch& sc = scratch(thread);
      RowMat& S = sc.S;
      S.resize(std::min(Tn, kAttRows), Tn);
      const int bh = static_cast<int>(item), b = bh / s.NH, h = bh % s.NH, g = h / per_group;
      const T* base = qkv + static_cast<size_t>(b) * Tn * ld;
      const T *q = base + h * HS, *k = base + (s.NH + g) * HS, *v = base + (s.NH + s.G + g) * HS;
      float* o = out + static_cast<size_t>(b) * Tn * lo + h * HS;
      float* l = lse + static_cast<size_t>(bh) * Tn;
      for (int t0 = 0; t0 < Tn; t0 += kAttRows) {
        const int rows = std::min(kAttRows, Tn - t0), keys = t0 + rows;
        small_gemm(false, true, rows, keys, HS, q + static_cast<size_t>(t0) * ld, ld, k, ld, 0.0f, S.data(), Tn);
        float inv_sum[kAttRows];
        for (int r = 0; r < rows; ++r)
          l[t0 + r] = softmax_causal_row(S.data() + static_cast<size_t>(r) * Tn, t0 + r, keys, scale, &inv_sum[r]);
        float* ob = o + static_cast<size_t>(t0) * lo;
        small_gemm(false, false, rows, HS, keys, operand<T>(S.data(), rows, keys, Tn, sc.rows16), Tn, v, ld, 0.0f, ob,
                   lo);
        for (int r = 0; r < rows; ++r) {  // normalised here: HS outputs per row instead of `keys` weights
          float* orow = ob + static_cast<size_t>(r) * lo;
          const float inv = inv_sum[r];
#pragma omp simd
          for (int i = 0; i < HS; ++i) orow[i] *= inv;
        }
      }
    });
  }
  // X (rows × cols of leading dimension ld) as a GEMM operand of type T: X itself (float), or X
  // rounded to bf16 into buf with the same leading dimension (uint16_t).
  template <class T>
  static const T* operand(const float* X, int rows, int cols, int ld, std::vector<uint16_t>& buf) {
    if constexpr (std::is_same_v<T, float>) {
      return X;
    } else {
      const size_t n = static_cast<size_t>(rows) * ld;
      if (buf.size() < n) buf.resize(n);
      for (int r = 0; r < rows; ++r)
        to_bf16(X + static_cast<size_t>(r) * ld, buf.data() + static_cast<size_t>(r) * ld, static_cast<size_t>(cols));
      return buf.data();
    }
  }

  // row[0..keys) = exp(scale·row[0..t] − max) with zeros after t (the causal mask), unnormalised:
  // *inv_sum = 1 / their sum (the caller scales the product with v instead). Returns the log-sum-exp
  // of the scaled scores. One vector pass for the maximum, one for the exponentials and their sum
  // (fast_math.h's vector fast_expf; GCC leaves the scalar one in a reduction unvectorised).
  static float softmax_causal_row(float* row, int t, int keys, float scale, float* inv_sum) {
    const int n = t + 1;
    const float mx = vec_max(row, n) * scale;  // scale > 0: the maximum of the scaled scores
    vfloat acc = {};
    int i = 0;
    for (; i + kVecLanes <= n; i += kVecLanes) {
      const vfloat e = fast_expf(vload(row + i) * scale - mx);
      vstore(row + i, e);
      acc += e;
    }
    float sum = vsum(acc);
    for (; i < n; ++i) sum += row[i] = fast_expf(row[i] * scale - mx);
    std::fill(row + n, row + keys, 0.0f);
    *inv_sum = 1.0f / sum;
    return mx + std::log(sum);
  }
  static float vec_max(const float* p, int n) {
    vfloat m = vsplat(-std::numeric_limits<float>::infinity());
    int i = 0;
    for (; i + kVecLanes <= n; i += kVecLanes) {
      const vfloat x = vload(p + i);
      m = vselect(x > m, x, m);
    }
    float r = -std::numeric_limits<float>::infinity();
    for (int l = 0; l < kVecLanes; ++l) r = std::max(r, m[l]);
    for (; i < n; ++i) r = std::max(r, p[i]);
    return r;
  }

  void embed_rows(float* dst, const int32_t* dst_row, const int32_t* tokens, const int32_t* pos, int R,
                  const float* wte, const float* wpe, int C) override {
    for_rows(R, kRowGrain, [&](int r0, int r1, int) {
      for (int r = r0; r < r1; ++r) {
        float* o = dst + static_cast<size_t>(dst_row[r]) * C;
        const float* w = wte + static_cast<size_t>(tokens[r]) * C;
        if (wpe) {
          const float* p = wpe + static_cast<size_t>(pos[r]) * C;
          for (int c = 0; c < C; ++c) o[c] = w[c] + p[c];
        } else {
          std::copy_n(w, C, o);
        }
      }
    });
  }
  void gather_rows(float* dst, const float* src, const int32_t* idx, int R, int C) override {
    for (int r = 0; r < R; ++r) std::copy_n(src + static_cast<size_t>(idx[r]) * C, C, dst + static_cast<size_t>(r) * C);
  }
  void scatter_rows(float* dst, const float* src, const int32_t* idx, int R, int C) override {
    for (int r = 0; r < R; ++r) std::copy_n(src + static_cast<size_t>(r) * C, C, dst + static_cast<size_t>(idx[r]) * C);
  }
  void rope_rows(float* qkv, const int32_t* pos, int R, const AttentionShape& s, float base) override {
    rope(qkv, s, base, 1.0f, pos, R);
  }
  void kv_append(float* k, float* v, const float* qkv, const int32_t* seq, const int32_t* pos, int R, int max_T,
                 const AttentionShape& s) override {
    const int KV = s.G * s.HS, Q = s.NH * s.HS, ld = s.qkv_stride();
    for (int r = 0; r < R; ++r) {
      const float* src = qkv + static_cast<size_t>(r) * ld + Q;
      const size_t dst = (static_cast<size_t>(seq[r]) * max_T + pos[r]) * KV;
      std::copy_n(src, KV, k + dst);
      std::copy_n(src + KV, KV, v + dst);
    }
  }
  void attention_cached(float* out, const float* qkv, const float* k, const float* v, const int32_t* seq,
                        const int32_t* pos, int R, int max_T, const AttentionShape& s) override {
    const int HS = s.HS, NH = s.NH, per_group = s.NH / s.G, ld = s.qkv_stride(), lo = s.out_stride();
    const int KV = s.G * HS;
    int max_len = 0;
    for (int r = 0; r < R; ++r) max_len = std::max(max_len, pos[r] + 1);
    const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
    // Vector path over the head dimension when it is a multiple of the vector width (every shipped
    // model): per key one vector dot product, the exponentials through the vector fast_expf, and
    // the weighted sum of values accumulated in registers.
    const bool vec = HS % kVecLanes == 0 && HS <= kMaxVecHead;
    pool_.run(static_cast<long>(R) * NH, [&](long item, int thread) {
      std::vector<float>& sc = scratch(thread).sc;
      sc.resize(std::max(sc.size(), static_cast<size_t>(max_len) + kVecLanes));
      {
        const int rh = static_cast<int>(item), r = rh / NH, h = rh % NH, g = h / per_group, p = pos[r];
        const float* q = qkv + static_cast<size_t>(r) * ld + h * HS;
        const float* kb = k + static_cast<size_t>(seq[r]) * max_T * KV + g * HS;
        const float* vb = v + static_cast<size_t>(seq[r]) * max_T * KV + g * HS;
        float* o = out + static_cast<size_t>(r) * lo + h * HS;
        float mx = -std::numeric_limits<float>::infinity();
        if (vec) {
          const int nv = HS / kVecLanes;
          vfloat qv[kMaxVecHead / kVecLanes];
          for (int i = 0; i < nv; ++i) qv[i] = vload(q + i * kVecLanes) * scale;
          for (int u = 0; u <= p; ++u) {
            const float* ku = kb + static_cast<size_t>(u) * KV;
            vfloat acc = qv[0] * vload(ku);
            for (int i = 1; i < nv; ++i) acc += qv[i] * vload(ku + i * kVecLanes);
            const float dot = vsum(acc);
            sc[static_cast<size_t>(u)] = dot;
            mx = std::max(mx, dot);
          }
          vec_map(sc.data(), sc.data(), static_cast<size_t>(p) + 1, [mx](vfloat x) { return fast_expf(x - mx); });
          vfloat ov[kMaxVecHead / kVecLanes] = {};
          float sum = 0.0f;
          for (int u = 0; u <= p; ++u) {
            const float w = sc[static_cast<size_t>(u)];
            sum += w;
            const float* vu = vb + static_cast<size_t>(u) * KV;
            for (int i = 0; i < nv; ++i) ov[i] += w * vload(vu + i * kVecLanes);
          }
          const float inv = 1.0f / sum;
          for (int i = 0; i < nv; ++i) vstore(o + i * kVecLanes, ov[i] * inv);
          return;
        }
        for (int u = 0; u <= p; ++u) {
          const float* ku = kb + static_cast<size_t>(u) * KV;
          float dot = 0.0f;
          for (int i = 0; i < HS; ++i) dot += q[i] * ku[i];
          sc[static_cast<size_t>(u)] = dot * scale;
          mx = std::max(mx, sc[static_cast<size_t>(u)]);
        }
        float sum = 0.0f;
        for (int u = 0; u <= p; ++u) sum += sc[static_cast<size_t>(u)] = fast_expf(sc[static_cast<size_t>(u)] - mx);
        const float inv = 1.0f / sum;
        std::fill(o, o + HS, 0.0f);
        for (int u = 0; u <= p; ++u) {
          const float w = sc[static_cast<size_t>(u)] * inv;
          const float* vu = vb + static_cast<size_t>(u) * KV;
          for (int i = 0; i < HS; ++i) o[i] += w * vu[i];
        }
      }
    });
  }

  void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                          const AttentionShape& s) override {
    if (!bf16_) return attention_backward_t(dqkv, dout, out, lse, qkv, dout, s);
    const int lo = s.out_stride();
    to_bf16_rows(qkv, s.qkv_stride(), s.B * s.T, s.qkv_stride(), a16_);
    to_bf16_rows(dout, lo, s.B * s.T, lo, b16_);
    attention_backward_t(dqkv, dout, out, lse, static_cast<const uint16_t*>(a16_.data()),
                         static_cast<const uint16_t*>(b16_.data()), s);
  }
  // qkv_t and dout_t: qkv and dout as GEMM operands of type T (themselves, or rounded to bf16).
  template <class T>
  void attention_backward_t(float* dqkv, const float* dout, const float* out, const float* lse, const T* qkv_t,
                            const T* dout_t, const AttentionShape& s) {
    // One work item per (batch, kv group): the heads of a group share dk/dv, so they run in order
    // on one thread.
    pool_.run(s.B * s.G, [&](long item, int thread) {
      const int bg = static_cast<int>(item);
      for (int h = bg % s.G * (s.NH / s.G); h < (bg % s.G + 1) * (s.NH / s.G); ++h)
        attention_backward_head(scratch(thread), dqkv, dout, out, lse, qkv_t, dout_t, s, bg / s.G, h);
    });
  }
  // One head h of batch b, in the forward's causal blocks of query rows: recompute the block's
  // probabilities from q, k and lse, then dv, dq and dk of the keys the block meets.
  template <class T>
  void attention_backward_head(Scratch& sc, float* dqkv, const float* dout, const float* out, const float* lse,
                               const T* qkv_t, const T* dout_t, const AttentionShape& s, int b, int h) const {
    const int Tn = s.T, HS = s.HS, g = h / (s.NH / s.G), ld = s.qkv_stride(), lo = s.out_stride();
    const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
    const T* base = qkv_t + static_cast<size_t>(b) * Tn * ld;
    float* dbase = dqkv + static_cast<size_t>(b) * Tn * ld;
    const T *k = base + (s.NH + g) * HS, *v = base + (s.NH + s.G + g) * HS, *q = base + h * HS;
    float *dk = dbase + (s.NH + g) * HS, *dv = dbase + (s.NH + s.G + g) * HS, *dq = dbase + h * HS;
    const float* o = out + static_cast<size_t>(b) * Tn * lo + h * HS;
    const float* dO = dout + static_cast<size_t>(b) * Tn * lo + h * HS;
    const T* dO_t = dout_t + static_cast<size_t>(b) * Tn * lo + h * HS;
    const float* l = lse + (static_cast<size_t>(b) * s.NH + h) * Tn;
    const int R = std::min(Tn, kAttRows);
    sc.S.resize(R, Tn), sc.dP.resize(R, Tn), sc.D.resize(static_cast<size_t>(R));
    for (int t0 = 0; t0 < Tn; t0 += kAttRows) {
      const int rows = std::min(kAttRows, Tn - t0), keys = t0 + rows;
      float *P = sc.S.data(), *dP = sc.dP.data();  // rows × keys blocks, leading dimension Tn
      const T *qb = q + static_cast<size_t>(t0) * ld, *dOb = dO_t + static_cast<size_t>(t0) * lo;
      small_gemm(false, true, rows, keys, HS, qb, ld, k, ld, 0.0f, P, Tn);
      for (int r = 0; r < rows; ++r) {
        float* row = sc.S.data() + static_cast<size_t>(r) * Tn;
        const int t = t0 + r;
        const float lt = l[t];
        vec_map(row, row, static_cast<size_t>(t + 1), [=](vfloat x) { return fast_expf(x * scale - lt); });
        for (int u = t + 1; u < keys; ++u) row[u] = 0.0f;
        float d = 0.0f;
        const float *dOt = dO + static_cast<size_t>(t) * lo, *ot = o + static_cast<size_t>(t) * lo;
#pragma omp simd reduction(+ : d)
        for (int i = 0; i < HS; ++i) d += dOt[i] * ot[i];
        sc.D[static_cast<size_t>(r)] = d;
      }
      small_gemm(true, false, keys, HS, rows, operand<T>(P, rows, keys, Tn, sc.rows16), Tn, dOb, lo, 1.0f, dv, ld);
      small_gemm(false, true, rows, keys, HS, dOb, lo, v, ld, 0.0f, dP, Tn);
      for (int r = 0; r < rows; ++r) {
        float* pr = sc.S.data() + static_cast<size_t>(r) * Tn;
        const float* dpr = sc.dP.data() + static_cast<size_t>(r) * Tn;
        const float dt = sc.D[static_cast<size_t>(r)];
#pragma omp simd
        for (int u = 0; u <= t0 + r; ++u) pr[u] = pr[u] * (dpr[u] - dt) * scale;
      }  // P now holds dS (already scaled), zero above the diagonal
      const T* dS = operand<T>(P, rows, keys, Tn, sc.rows16);
      small_gemm(false, false, rows, HS, keys, dS, Tn, k, ld, 1.0f, dq + static_cast<size_t>(t0) * ld, ld);
      small_gemm(true, false, keys, HS, rows, dS, Tn, qb, ld, 1.0f, dk, ld);
    }
  }

  // Elementwise ops run in vector blocks (fast_math.h: vec_map), split over threads in whole
  // blocks so an element's result does not depend on the thread count.
  void gelu_forward(float* out, const float* inp, size_t n) override {
    for_blocks(n, [&](size_t i0, size_t len) {
      vec_map(out + i0, inp + i0, len, [](vfloat x) { return 0.5f * x * fast_erfcf(-x * kInvSqrt2); });
    });
  }
  // gelu'(x) = Φ(x) + x·φ(x). With the forward's output (out = x·Φ(x)), Φ = out / x, except near 0
  // where the quotient loses digits: there Φ = 1/2 + x·φ(0) (error below x³/15 ≤ 1e-10 for |x| ≤ 1e-3).
  // That saves erfc's exponential and polynomial: about half of this op's time.
  void gelu_backward(float* dinp, const float* dout, const float* inp, size_t n, bool accumulate = true,
                     const float* out = nullptr) override {
    for_blocks(n, [&](size_t i0, size_t len) {
      size_t i = i0;
      const size_t end = i0 + len;
      auto pdf = [](vfloat x) { return fast_expf(-0.5f * x * x) * kInvSqrt2Pi; };
      auto grad = [&](vfloat x) { return 0.5f * fast_erfcf(-x * kInvSqrt2) + x * pdf(x); };
      auto grad_from_out = [&](vfloat x, vfloat y) {
        const vint small = (x < 1e-3f) & (x > -1e-3f);
        return vselect(small, 0.5f + x * kInvSqrt2Pi, y / x) + x * pdf(x);
      };
      for (; i + kVecLanes <= end; i += kVecLanes) {
        const vfloat x = vload(inp + i);
        const vfloat d = vload(dout + i) * (out ? grad_from_out(x, vload(out + i)) : grad(x));
        vstore(dinp + i, accumulate ? vload(dinp + i) + d : d);
      }
      if (i < end) {  // the last partial vector, zero-padded (as vec_map): the same code per element
        const size_t r = end - i;
        float x1[kVecLanes] = {}, o1[kVecLanes] = {};
        std::memcpy(x1, inp + i, r * sizeof(float));
        if (out) std::memcpy(o1, out + i, r * sizeof(float));
        const vfloat g = out ? grad_from_out(vload(x1), vload(o1)) : grad(vload(x1));
        for (size_t l = 0; l < r; ++l) {
          const float d = dout[i + l] * g[l];
          dinp[i + l] = accumulate ? dinp[i + l] + d : d;
        }
      }
    });
  }
  void swiglu_forward(float* out, const float* inp, int N, int F) override {
    for_rows(N, kRowGrain, [&](int n0, int n1, int) {
      for (int n = n0; n < n1; ++n) {
        const float* a = inp + static_cast<size_t>(n) * 2 * F;
        const float* b = a + F;
        float* o = out + static_cast<size_t>(n) * F;
        vec_map(o, a, static_cast<size_t>(F), [](vfloat x) { return x / (1.0f + fast_expf(-x)); });
        int i = 0;
        for (; i + kVecLanes <= F; i += kVecLanes) vstore(o + i, vload(o + i) * vload(b + i));
        for (; i < F; ++i) o[i] *= b[i];
      }
    });
  }
  void swiglu_backward(float* dinp, const float* dout, const float* inp, int N, int F) override {
    for_rows(N, kRowGrain, [&](int n0, int n1, int) {
      for (int n = n0; n < n1; ++n) {
        const float* a = inp + static_cast<size_t>(n) * 2 * F;
        const float* b = a + F;
        float* da = dinp + static_cast<size_t>(n) * 2 * F;
        float* db = da + F;
        const float* dy = dout + static_cast<size_t>(n) * F;
#pragma omp simd
        for (int i = 0; i < F; ++i) {
          const float sig = 1.0f / (1.0f + fast_expf(-a[i]));
          const float silu = a[i] * sig;
          da[i] += dy[i] * b[i] * sig * (1.0f + a[i] * (1.0f - sig));
          db[i] += dy[i] * silu;
        }
      }
    });
  }

  void classifier_fused(float* losses, float* dx, float* dweight, float* logits_out, const float* x,
                        const float* weight, const int32_t* targets, int N, int C, int V, int Vp,
                        float grad_scale) override {
    // Rows per block: keep the logits block near 4 MiB whatever the vocabulary. One job per block:
    // each slice of rows computes its logits, its losses and softmax gradient, and its rows of dx
    // while they are in cache; dweight (a sum over all rows) is a second job.
    const int rows = std::max(1, std::min(N, (1 << 20) / std::max(Vp, 1)));
    if (bf16_) to_bf16_rows(weight, C, Vp, C, w16_);  // once per call, shared by the slices
    for (int r0 = 0; r0 < N; r0 += rows) {
      const int R = std::min(rows, N - r0);
      const float* xb = x + static_cast<size_t>(r0) * C;
      logits_.resize(static_cast<size_t>(R) * Vp);
      float* lg = logits_.data();
      const int step = slice_rows(R);
      pool_.run((R + step - 1) / step, [&](long item, int thread) {
        const int m0 = static_cast<int>(item) * step, m1 = std::min(R, m0 + step);
        std::vector<uint16_t>& rows16 = scratch(thread).rows16;
        if (bf16_) {  // the slice's rows rounded on the thread that multiplies them (still in cache)
          rows16.resize(static_cast<size_t>(m1 - m0) * std::max(C, Vp));
          to_bf16(xb + static_cast<size_t>(m0) * C, rows16.data(), static_cast<size_t>(m1 - m0) * C);
          bf16_sgemm(false, true, m1 - m0, Vp, C, 1.0f, rows16.data(), C, w16_.data(), C, 0.0f,
                     lg + static_cast<size_t>(m0) * Vp, Vp);
        } else {
          gemm_slice(false, true, m0, m1, Vp, C, xb, C, weight, C, 0.0f, lg, Vp);
        }
        if (logits_out)
          std::copy(lg + static_cast<size_t>(m0) * Vp, lg + static_cast<size_t>(m1) * Vp,
                    logits_out + static_cast<size_t>(r0 + m0) * Vp);
        for (int r = m0; r < m1; ++r)
          losses[r0 + r] =
              softmax_ce_row(lg + static_cast<size_t>(r) * Vp, targets[r0 + r], V, Vp, dx != nullptr, grad_scale);
        if (dx && bf16_) {
          to_bf16(lg + static_cast<size_t>(m0) * Vp, rows16.data(), static_cast<size_t>(m1 - m0) * Vp);
          bf16_sgemm(false, false, m1 - m0, C, Vp, 1.0f, rows16.data(), Vp, w16_.data(), C, 1.0f,
                     dx + static_cast<size_t>(r0 + m0) * C, C);
        } else if (dx) {
          gemm_slice(false, false, m0, m1, C, Vp, lg, Vp, weight, C, 1.0f, dx + static_cast<size_t>(r0) * C, C);
        }
      });
      if (dx) gemm_rows(true, false, Vp, C, R, lg, Vp, xb, C, 1.0f, dweight, C);
    }
  }

  // Cross-entropy of one row of logits (V real, Vp padded): returns the loss; with grad, the row
  // becomes grad_scale·(softmax − onehot(tgt)) and its padding 0. One pass for the maximum, one for
  // the exponentials (kept) and their sum, one to scale them. The exponentials in explicit vectors
  // (GCC leaves the scalar fast_expf unvectorised even under omp simd, fast_math.h), the last partial
  // vector zero-padded like vec_map so every logit goes through the same code.
  static float softmax_ce_row(float* row, int tgt, int V, int Vp, bool grad, float grad_scale) {
    const float mx = vec_max(row, V);
    const float target_logit = row[tgt];
    vfloat acc = {};
    int j = 0;
    for (; j + kVecLanes <= V; j += kVecLanes) {
      const vfloat e = fast_expf(vload(row + j) - mx);
      if (grad) vstore(row + j, e);
      acc += e;
    }
    float sum = vsum(acc);
    if (j < V) {
      float buf[kVecLanes] = {};
      std::memcpy(buf, row + j, static_cast<size_t>(V - j) * sizeof(float));
      vstore(buf, fast_expf(vload(buf) - mx));
      for (int l = 0; l < V - j; ++l) sum += buf[l];
      if (grad) std::memcpy(row + j, buf, static_cast<size_t>(V - j) * sizeof(float));
    }
    if (grad) {
      const float k = grad_scale / sum;
#pragma omp simd
      for (int i = 0; i < V; ++i) row[i] *= k;
      row[tgt] -= grad_scale;
      for (int i = V; i < Vp; ++i) row[i] = 0.0f;
    }
    return mx + std::log(sum) - target_logit;
  }

  double sum_squares(const float* p, size_t n) override {
    // One double partial per block, summed in block order.
    const size_t blocks = (n + kBlock - 1) / kBlock;
    std::vector<double>& partial = dpartial_;
    partial.assign(blocks, 0.0);
    // Eight double lanes per block (a fixed order: lane l sums the elements ≡ l mod 8, then the lanes
    // in order), so the sum vectorises; the scalar double chain could not (no reassociation).
    using vdouble = double __attribute__((vector_size(64)));
    using vfloat8 = float __attribute__((vector_size(32)));
    for_blocks(n, [&](size_t i0, size_t len) {
      vdouble acc = {};
      size_t i = i0;
      for (; i + 8 <= i0 + len; i += 8) {
        vfloat8 f;
        std::memcpy(&f, p + i, sizeof f);
        const vdouble d = __builtin_convertvector(f, vdouble);
        acc += d * d;
      }
      double total = 0.0;
      for (int l = 0; l < 8; ++l) total += acc[l];
      for (; i < i0 + len; ++i) total += static_cast<double>(p[i]) * p[i];
      partial[i0 / kBlock] = total;
    });
    double total = 0.0;
    for (double v : partial) total += v;
    return total;
  }
  // Vectorised and split over the pool (the trainer checks every parameter after each update): x·0
  // is ±0 for a finite x and NaN for ±inf or NaN, so a block is finite iff the sum of x·0 is 0.
  bool all_finite(const float* p, size_t n) override {
    std::atomic<bool> finite{true};
    for_blocks(n, [&](size_t i0, size_t len) {
      if (!finite.load(std::memory_order_relaxed)) return;
      vfloat acc = {};
      size_t i = i0;
      for (; i + kVecLanes <= i0 + len; i += kVecLanes) acc += vload(p + i) * 0.0f;
      float tail = vsum(acc);
      for (; i < i0 + len; ++i) tail += p[i] * 0.0f;
      if (!(tail == 0.0f)) finite.store(false, std::memory_order_relaxed);
    });
    return finite.load();
  }

  void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, int t) override {
    const float bc1 = 1.0f - std::pow(beta1, static_cast<float>(t));
    const float bc2 = 1.0f - std::pow(beta2, static_cast<float>(t));
    for_blocks(n, [&](size_t i0, size_t len) {
#pragma omp simd
      for (size_t i = i0; i < i0 + len; ++i) {
        const float g = grad[i] * grad_scale;
        param[i] -= lr * weight_decay * param[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        const float mhat = m[i] / bc1, vhat = v[i] / bc2;
        param[i] -= lr * mhat / (std::sqrt(vhat) + eps);
      }
    });
  }

 private:
  static constexpr float kInvSqrt2 = 0.70710678118654752f;
  static constexpr float kInvSqrt2Pi = 0.39894228040143268f;

  // Matmuls with at most this many rows (decode steps: one token per sequence, a few pending or
  // drafted tokens) take skinny_matmul instead of Eigen's GEMM.
  static constexpr int kSkinnyRows = 16;
  static constexpr int kMaxVecHead = 256;  // attention_cached's vector path: head sizes up to this

  // Elements per item of the elementwise ops (a multiple of the vector width), rows per item of
  // the row-wise ops. Items are fixed by the sizes alone, so results do not depend on the threads.
  static constexpr size_t kBlock = 8192;
  static constexpr int kRowGrain = 32;
  static constexpr int kAttRows = 64;  // query rows per causal block of the attention ops

  // Calls f(begin, length) on contiguous ranges of [0, n) that start at multiples of kBlock
  // elements, one pool item each.
  template <class F>
  void for_blocks(size_t n, F f) {
    pool_.run(static_cast<long>((n + kBlock - 1) / kBlock), [&](long b, int) {
      const size_t i0 = static_cast<size_t>(b) * kBlock;
      f(i0, std::min(kBlock, n - i0));
    });
  }
  // Calls f(row begin, row end, thread) on ranges of `grain` rows of [0, n), one pool item each.
  template <class F>
  void for_rows(int n, int grain, F f) {
    pool_.run((n + grain - 1) / grain, [&](long item, int thread) {
      const int r0 = static_cast<int>(item) * grain;
      f(r0, std::min(n, r0 + grain), thread);
    });
  }

  Scratch& scratch(int thread) {
    return scratch_[static_cast<size_t>(thread)];
  }

  // out (M, OC) = x (M, C) · wᵀ + bias for M ≤ kSkinnyRows. Batch-1 decoding is bound by reading
  // the weights (tiny-ee: 19 MB per token, from L3), and Eigen's GEMM packs the whole weight matrix
  // even for one row; here each tile of NO weight rows is read from memory once and multiplied
  // into all M input rows (later row tiles find it in L1), so M rows cost little more than one.
  // Every output (m, o) is the same sequence of vector FMAs over C and the same horizontal sum,
  // whatever M and the tiling: a row's result does not depend on the other rows of the call (so,
  // while a decode step has ≤ kSkinnyRows rows, verifying k drafted tokens gives bitwise the logits
  // of decoding them one at a time; larger steps go through Eigen and agree to fp32 rounding).
  template <int NM, int NO>
  static void skinny_tile(float* out, const float* x, const float* w, const float* bias, int C, int OC, int m0,
                          int o0) {
    const int Cv = C / kVecLanes * kVecLanes;
    vfloat acc[NM][NO] = {};
    const float* xr[NM];
    const float* wr[NO];
    for (int i = 0; i < NM; ++i) xr[i] = x + static_cast<size_t>(m0 + i) * C;
    for (int j = 0; j < NO; ++j) wr[j] = w + static_cast<size_t>(o0 + j) * C;
    for (int c = 0; c < Cv; c += kVecLanes) {
      vfloat wv[NO];
      for (int j = 0; j < NO; ++j) wv[j] = vload(wr[j] + c);
      for (int i = 0; i < NM; ++i) {
        const vfloat xv = vload(xr[i] + c);
        for (int j = 0; j < NO; ++j) acc[i][j] += xv * wv[j];
      }
    }
    for (int i = 0; i < NM; ++i)
      for (int j = 0; j < NO; ++j) {
        float r = vsum(acc[i][j]);
        for (int c = Cv; c < C; ++c) r += xr[i][c] * wr[j][c];
        if (bias) r += bias[o0 + j];
        out[static_cast<size_t>(m0 + i) * OC + o0 + j] = r;
      }
  }
  template <int NO>
  static void skinny_column(float* out, const float* x, const float* w, const float* bias, int M, int C, int OC,
                            int o0) {
    int m0 = 0;
    for (; m0 + 4 <= M; m0 += 4) skinny_tile<4, NO>(out, x, w, bias, C, OC, m0, o0);
    switch (M - m0) {
      case 3:
        skinny_tile<3, NO>(out, x, w, bias, C, OC, m0, o0);
        break;
      case 2:
        skinny_tile<2, NO>(out, x, w, bias, C, OC, m0, o0);
        break;
      case 1:
        skinny_tile<1, NO>(out, x, w, bias, C, OC, m0, o0);
        break;
      default:
        break;
    }
  }
  void skinny_matmul(float* out, const float* x, const float* w, const float* bias, int M, int C, int OC) {
    constexpr int NO = 4;
    const int tiles = OC / NO;
    constexpr int kTilesPerItem = 8;
    const bool par = threads_ > 1 && static_cast<long>(OC) * C >= (1L << 16);
    const int items = par ? (tiles + kTilesPerItem - 1) / kTilesPerItem : 1;
    const int per = par ? kTilesPerItem : tiles;
    pool_.run(items, [&](long item, int) {
      const int t0 = static_cast<int>(item) * per, t1 = std::min(tiles, t0 + per);
      for (int t = t0; t < t1; ++t) skinny_column<NO>(out, x, w, bias, M, C, OC, t * NO);
    });
    for (int o = tiles * NO; o < OC; ++o) skinny_column<1>(out, x, w, bias, M, C, OC, o);
  }

  // Rows per slice of the fused classifier's row blocks: multiples of 16, at least kGemmRows, at most
  // 4 slices per thread (a shared core delays one slice, not a fixed half of the block). Small slices
  // are cheap there: each repacks only the head's weight (Vp × C), not a token-long operand, unlike
  // gemm_rows' products.
  int slice_rows(int M) const {
    constexpr int kGemmRows = 64;
    const int slices = std::clamp(M / kGemmRows, 1, 4 * threads_);
    return std::max(16, (M / slices + 15) / 16 * 16);
  }
  // C (M×N) = op(A)·op(B) + beta·C (beta 0 or 1) with op(X) = X or Xᵀ, row-major, in one slice per
  // thread of C's rows — or of its columns when C is wider than tall — taken by the pool; bias (N,
  // nullable) starts each slice's entries before the product. Each slice packs the operand it shares
  // with the others again (a whole pass over it: for dw = dyᵀ·x at tiny-ee's 256 rows, 64-row
  // slices spent more time packing x than multiplying), so there are as few slices as threads.
  void gemm_rows(bool ta, bool tb, int M, int N, int K, const float* A, int lda, const float* B, int ldb, float beta,
                 float* Cm, int ldc, const float* bias = nullptr) {
    if (!bf16_) {
      sliced_gemm(ta, tb, M, N, K, A, lda, B, ldb, beta, Cm, ldc, bias);
      return;
    }
    // bf16 math: each operand rounded to bf16 once per call (a pass split over the pool, not once
    // per slice), then the same slices through oneDNN's bf16 GEMM.
    const int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    to_bf16_rows(A, lda, ar, ac, a16_);
    to_bf16_rows(B, ldb, br, bc, b16_);
    sliced_gemm(ta, tb, M, N, K, a16_.data(), ac, b16_.data(), bc, beta, Cm, ldc, bias);
  }
  // out (rows × cols, packed) = X (rows × cols, leading dimension ld) rounded to bf16, in row ranges
  // of about kBlock elements over the pool.
  void to_bf16_rows(const float* X, int ld, int rows, int cols, std::vector<uint16_t>& out) {
    const size_t n = static_cast<size_t>(rows) * cols;
    if (out.size() < n) out.resize(n);
    uint16_t* o = out.data();
    const int grain = std::max(1, static_cast<int>(kBlock) / std::max(1, cols));
    for_rows(rows, grain, [&](int r0, int r1, int) {
      for (int r = r0; r < r1; ++r)
        to_bf16(X + static_cast<size_t>(r) * ld, o + static_cast<size_t>(r) * cols, static_cast<size_t>(cols));
    });
  }
  template <class T>
  void sliced_gemm(bool ta, bool tb, int M, int N, int K, const T* A, int lda, const T* B, int ldb, float beta,
                   float* Cm, int ldc, const float* bias) {
    const bool by_rows = M >= N;
    const int D = by_rows ? M : N;
    const int slices = std::clamp(threads_, 1, std::max(1, D / 16));
    const int step = (D + slices - 1) / slices;
    pool_.run((D + step - 1) / step, [&](long item, int) {
      const int d0 = static_cast<int>(item) * step, d1 = std::min(D, d0 + step);
      const int m0 = by_rows ? d0 : 0, m1 = by_rows ? d1 : M, n0 = by_rows ? 0 : d0, n1 = by_rows ? N : d1;
      // Each row starts as the bias (beta 0) or gets it added (beta 1), then C += product: one pass
      // over C instead of the library's zeroing pass and a bias pass after it.
      for (int m = m0; bias && m < m1; ++m) {
        float* row = Cm + static_cast<size_t>(m) * ldc;
        if (beta == 0.0f)
          std::copy(bias + n0, bias + n1, row + n0);
        else
#pragma omp simd
          for (int j = n0; j < n1; ++j) row[j] += bias[j];
      }
      const float b = bias ? 1.0f : beta;
      if (by_rows) {
        gemm_slice(ta, tb, d0, d1, N, K, A, lda, B, ldb, b, Cm, ldc);
      } else {  // columns [d0, d1) of op(B) and of C
        const T* bc = tb ? B + static_cast<size_t>(d0) * ldb : B + d0;
        gemm_slice(ta, tb, 0, M, d1 - d0, K, A, lda, bc, ldb, b, Cm + d0, ldc);
      }
    });
  }
  // gemm_slice on bf16 operands (oneDNN, fp32 accumulation into C).
  void gemm_slice(bool ta, bool tb, int m0, int m1, int N, int K, const uint16_t* A, int lda, const uint16_t* B,
                  int ldb, float beta, float* Cm, int ldc) const {
    const uint16_t* a = ta ? A + m0 : A + static_cast<size_t>(m0) * lda;
    bf16_sgemm(ta, tb, m1 - m0, N, K, 1.0f, a, lda, B, ldb, beta, Cm + static_cast<size_t>(m0) * ldc, ldc);
  }

  // C (M×N) = op(A)·op(B) + beta·C on the calling thread: the attention's per-head products, through
  // the backend's GEMM library like the matmuls (OpenBLAS's small-matrix kernels beat Eigen's packing
  // at these shapes: 64 query rows, ≤ T keys, head size 32 for tiny-ee).
  template <class T>
  void small_gemm(bool ta, bool tb, int M, int N, int K, const T* A, int lda, const T* B, int ldb, float beta,
                  float* Cm, int ldc) const {
    gemm_slice(ta, tb, 0, M, N, K, A, lda, B, ldb, beta, Cm, ldc);
  }
  // Rows [m0, m1) of gemm_rows' product, single-threaded (a BLAS library of gemm.h, or Eigen).
  void gemm_slice(bool ta, bool tb, int m0, int m1, int N, int K, const float* A, int lda, const float* B, int ldb,
                  float beta, float* Cm, int ldc) const {
    const int M = m1 - m0;
    const float* a = ta ? A + m0 : A + static_cast<size_t>(m0) * lda;
    float* c = Cm + static_cast<size_t>(m0) * ldc;
    if (blas_) {
      blas_sgemm(gemm_, ta, tb, M, N, K, 1.0f, a, lda, B, ldb, beta, c, ldc);
      return;
    }
    SMap cm(c, M, N, Eigen::OuterStride<>(ldc));
    auto product = [&](const auto& x, const auto& y) {
      if (beta == 0.0f)
        cm.noalias() = x * y;
      else
        cm.noalias() += x * y;
    };
    const CSMap am = ta ? CSMap(a, K, M, Eigen::OuterStride<>(lda)) : CSMap(a, M, K, Eigen::OuterStride<>(lda));
    const CSMap bm = tb ? CSMap(B, N, K, Eigen::OuterStride<>(ldb)) : CSMap(B, K, N, Eigen::OuterStride<>(ldb));
    if (ta && tb)
      product(am.transpose(), bm.transpose());
    else if (ta)
      product(am.transpose(), bm);
    else if (tb)
      product(am, bm.transpose());
    else
      product(am, bm);
  }

  // dst[j] += Σ_n src[n][j] in column blocks, one per thread (multiples of 16 columns, at most
  // kMaxCols); every column still sums its rows in order (n ascending), so the result is that of
  // the one-column loop, bitwise, whatever the threads. Wide blocks read long runs of each row: with
  // one cache line per row (16 columns) every row of a 4 KiB-wide matrix was a new page, a TLB miss
  // per 64 bytes, about 3× slower.
  void column_sums_add(float* dst, const float* src, int N, int OC) {
    constexpr int kMaxCols = 256;
    const int cols = std::min(kMaxCols, ((OC + threads_ - 1) / threads_ + 15) / 16 * 16);
    const int blocks = (OC + cols - 1) / cols;
    pool_.run(blocks, [&](long b, int) {
      const int j0 = static_cast<int>(b) * cols, w = std::min(cols, OC - j0);
      float acc[kMaxCols] = {};
      for (int n = 0; n < N; ++n) {
        const float* row = src + static_cast<size_t>(n) * OC + j0;
#pragma omp simd
        for (int j = 0; j < w; ++j) acc[j] += row[j];
      }
      for (int j = 0; j < w; ++j) dst[j0 + j] += acc[j];
    });
  }

  // sign = +1 rotates by +angle (forward), −1 by −angle (gradient of the forward rotation).
  // pos (nullable): per-row positions of `rows` rows (decode); null → row bt is at t = bt % T.
  void rope(float* qkv, const AttentionShape& s, float base, float sign, const int32_t* pos = nullptr, int rows = 0) {
    const int HS = s.HS, half = HS / 2;
    std::vector<float> inv_freq(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i)
      inv_freq[static_cast<size_t>(i)] = static_cast<float>(1.0 / std::pow(static_cast<double>(base), 2.0 * i / HS));
    const int n = pos ? rows : s.B * s.T;
    for_rows(n, kRowGrain, [&](int r0, int r1, int) {
      for (int bt = r0; bt < r1; ++bt) rope_row(qkv, s, inv_freq.data(), sign, pos ? pos[bt] : bt % s.T, bt);
    });
  }
  static void rope_row(float* qkv, const AttentionShape& s, const float* inv_freq, float sign, int t, int bt) {
    const int HS = s.HS, half = HS / 2, ld = s.qkv_stride(), heads = s.NH + s.G;
    float* row = qkv + static_cast<size_t>(bt) * ld;
    for (int i = 0; i < half; ++i) {
      const float ang = static_cast<float>(t) * inv_freq[i];
      const float c = std::cos(ang), sn = sign * std::sin(ang);
      for (int h = 0; h < heads; ++h) {  // q heads then k groups: they are contiguous
        float* x = row + h * HS;
        const float x1 = x[i], x2 = x[i + half];
        x[i] = x1 * c - x2 * sn;
        x[i + half] = x2 * c + x1 * sn;
      }
    }
  }

  int threads_ = 1;
  CpuGemm gemm_ = CpuGemm::kEigen;  // GEMM library (gemm.h)
  bool blas_ = false;               // GEMMs through a BLAS library (else Eigen)
  bool bf16_ = false;               // GemmMath::kBf16: gemm_rows' products in bf16 (oneDNN)
  CpuPool pool_;
  std::vector<uint16_t> a16_, b16_;      // gemm_rows' operands in bf16
  std::vector<uint16_t> w16_;            // classifier_fused's weight in bf16
  std::vector<Scratch> scratch_;         // per thread
  std::vector<float> partial_, logits_;  // norm_backward's partials, classifier_fused's logits block
  std::vector<double> dpartial_;         // sum_squares' partials
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int num_threads, CpuGemm gemm, GemmMath math) {
  if (math == GemmMath::kBf16 && !bf16_gemm_info().available) {
    std::fprintf(stderr, "eellm: make_cpu_backend: bf16 GEMM math requested but %s\n", bf16_gemm_info().error.c_str());
    std::abort();  // a caller's bug: make_backend checks bf16_gemm_info() and returns a Status
  }
  if (math == GemmMath::kTf32) math = GemmMath::kFp32;  // no TF32 on CPUs: callers reject it first
  retain_freed_host_memory();  // activations freed per microbatch are reused, not faulted in again
  return std::make_unique<CpuBackend>(num_threads, gemm, math);
}

}  // namespace eellm::exec
