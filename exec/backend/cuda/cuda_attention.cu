// Fused causal attention for CudaBackend (flash-attention style, fp32 SIMT): forward with online
// softmax saving only lse (B, NH, T); backward recomputes the probabilities tile by tile from q, k
// and lse. No T×T matrix ever exists. Grouped-query attention: head h reads kv group h / (NH/G).
//
// Work split: 4 threads per row (a query row in forward/dq, a key row in dk/dv), each owning head
// dims i·4 + sub (i < D), so a dot product is D FMAs plus two shuffles; tiles of 32 rows are staged
// in shared memory. Backward is two kernels — dq over query tiles, dk/dv over key tiles looping
// over the heads of the group — so no atomics are needed and results are deterministic.
// Limits: HS ≤ kMaxHeadSize (256). Tensor-core (mma) tiles are not used yet; see cuda_backend.h.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "exec/backend/cuda/cuda_check.h"
#include "exec/backend/cuda/cuda_kernels.h"

namespace eellm::exec::cuda {
namespace {

constexpr int kTpr = 4;    // threads per row
constexpr int kRows = 32;  // rows per block (query rows in fwd/dq, key rows in dk/dv)
constexpr int kBlock = kTpr * kRows;

__device__ __forceinline__ float group_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}

// Loads rows [r0, r0 + n) of one head's slice (column offset col, row stride ld, HS wide) of a
// (B·T, ld) matrix into tile[n][HS]; rows ≥ T are zero.
__device__ __forceinline__ void load_tile(float* tile, const float* base, int r0, int n, int T, int ld, int col,
                                          int HS) {
  for (int k = threadIdx.x; k < n * HS; k += kBlock) {
    const int j = k / HS, i = k % HS, r = r0 + j;
    tile[k] = r < T ? base[static_cast<size_t>(r) * ld + col + i] : 0.0f;
  }
}

template <int D, int BK>
__global__ void __launch_bounds__(kBlock)
    attn_fwd_kernel(float* out, float* lse, const float* qkv, int T, int NH, int G, int HS) {
  extern __shared__ float smem[];
  float* Ks = smem;          // [BK][HS]
  float* Vs = Ks + BK * HS;  // [BK][HS]
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH, g = h / (NH / G);
  const int ld = (NH + 2 * G) * HS, lo = NH * HS;
  const int q0 = blockIdx.x * kRows, t = q0 + threadIdx.x / kTpr, sub = threadIdx.x % kTpr;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  const float* base = qkv + static_cast<size_t>(b) * T * ld;
  float q[D], acc[D];
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const int d = i * kTpr + sub;
    q[i] = (t < T && d < HS) ? base[static_cast<size_t>(t) * ld + h * HS + d] : 0.0f;
    acc[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int kend = min(T, q0 + kRows);
  for (int k0 = 0; k0 < kend; k0 += BK) {
    __syncthreads();
    load_tile(Ks, base, k0, BK, T, ld, (NH + g) * HS, HS);
    load_tile(Vs, base, k0, BK, T, ld, (NH + G + g) * HS, HS);
    __syncthreads();
    float sc[BK];
    float tmax = -INFINITY;
#pragma unroll
    for (int j = 0; j < BK; ++j) {
      float dot = 0.0f;
#pragma unroll
      for (int i = 0; i < D; ++i) {
        const int d = i * kTpr + sub;
        if (d < HS) dot += q[i] * Ks[j * HS + d];
      }
      dot = group_sum(dot);
      const int u = k0 + j;
      sc[j] = (t < T && u <= t) ? dot * scale : -INFINITY;
      tmax = fmaxf(tmax, sc[j]);
    }
    if (tmax == -INFINITY) continue;  // the whole tile is in this row's future (or t ≥ T)
    const float mnew = fmaxf(m, tmax), corr = expf(m - mnew);
    l *= corr;
#pragma unroll
    for (int i = 0; i < D; ++i) acc[i] *= corr;
#pragma unroll
    for (int j = 0; j < BK; ++j) {
      const float p = expf(sc[j] - mnew);
      l += p;
#pragma unroll
      for (int i = 0; i < D; ++i) {
        const int d = i * kTpr + sub;
        if (d < HS) acc[i] += p * Vs[j * HS + d];
      }
    }
    m = mnew;
  }
  if (t >= T) return;
  const float inv = 1.0f / l;
  float* o = out + (static_cast<size_t>(b) * T + t) * lo + h * HS;
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const int d = i * kTpr + sub;
    if (d < HS) o[d] = acc[i] * inv;
  }
  if (sub == 0) lse[static_cast<size_t>(bh) * T + t] = m + logf(l);
}

// delta[b, h, t] = Σ_d dout·out (the softmax backward's row term).
__global__ void attn_delta_kernel(float* delta, const float* dout, const float* out, int B, int T, int NH, int HS) {
  const size_t n = static_cast<size_t>(B) * NH * T;
  for (size_t k = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const int t = static_cast<int>(k % T);
    const size_t bh = k / T;
    const int h = static_cast<int>(bh % NH), b = static_cast<int>(bh / NH);
    const size_t off = (static_cast<size_t>(b) * T + t) * NH * HS + static_cast<size_t>(h) * HS;
    float s = 0.0f;
    for (int d = 0; d < HS; ++d) s += dout[off + d] * out[off + d];
    delta[k] = s;
  }
}

template <int D, int BK>
__global__ void __launch_bounds__(kBlock)
    attn_dq_kernel(float* dqkv, const float* dout, const float* lse, const float* delta, const float* qkv, int T,
                   int NH, int G, int HS) {
  extern __shared__ float smem[];
  float* Ks = smem;
  float* Vs = Ks + BK * HS;
  const int bh = blockIdx.y, b = bh / NH, h = bh % NH, g = h / (NH / G);
  const int ld = (NH + 2 * G) * HS, lo = NH * HS;
  const int q0 = blockIdx.x * kRows, t = q0 + threadIdx.x / kTpr, sub = threadIdx.x % kTpr;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  const float* base = qkv + static_cast<size_t>(b) * T * ld;
  const float* dob = dout + static_cast<size_t>(b) * T * lo;
  float q[D], dO[D], dq[D];
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const int d = i * kTpr + sub;
    const bool ok = t < T && d < HS;
    q[i] = ok ? base[static_cast<size_t>(t) * ld + h * HS + d] : 0.0f;
    dO[i] = ok ? dob[static_cast<size_t>(t) * lo + h * HS + d] : 0.0f;
    dq[i] = 0.0f;
  }
  const float lt = t < T ? lse[static_cast<size_t>(bh) * T + t] : 0.0f;
  const float Dt = t < T ? delta[static_cast<size_t>(bh) * T + t] : 0.0f;
  const int kend = min(T, q0 + kRows);
  for (int k0 = 0; k0 < kend; k0 += BK) {
    __syncthreads();
    load_tile(Ks, base, k0, BK, T, ld, (NH + g) * HS, HS);
    load_tile(Vs, base, k0, BK, T, ld, (NH + G + g) * HS, HS);
    __syncthreads();
#pragma unroll 4
    for (int j = 0; j < BK; ++j) {
      float s = 0.0f, dp = 0.0f;
#pragma unroll
      for (int i = 0; i < D; ++i) {
        const int d = i * kTpr + sub;
        if (d < HS) s += q[i] * Ks[j * HS + d], dp += dO[i] * Vs[j * HS + d];
      }
      s = group_sum(s);
      dp = group_sum(dp);
      const int u = k0 + j;
      const float p = (t < T && u <= t) ? expf(s * scale - lt) : 0.0f;
      const float ds = p * (dp - Dt) * scale;
#pragma unroll
      for (int i = 0; i < D; ++i) {
        const int d = i * kTpr + sub;
        if (d < HS) dq[i] += ds * Ks[j * HS + d];
      }
    }
  }
  if (t >= T) return;
  float* dqr = dqkv + (static_cast<size_t>(b) * T + t) * ld + h * HS;
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const int d = i * kTpr + sub;
    if (d < HS) dqr[d] += dq[i];
  }
}

template <int D, int BQ>
__global__ void __launch_bounds__(kBlock)
    attn_dkdv_kernel(float* dqkv, const float* dout, const float* lse, const float* delta, const float* qkv, int T,
                     int NH, int G, int HS) {
  extern __shared__ float smem[];
  float* Qs = smem;          // [BQ][HS]
  float* Os = Qs + BQ * HS;  // [BQ][HS] (dout)
  float* Ls = Os + BQ * HS;  // [BQ] lse
  float* Ds = Ls + BQ;       // [BQ] delta
  const int bg = blockIdx.y, b = bg / G, g = bg % G, per_group = NH / G;
  const int ld = (NH + 2 * G) * HS, lo = NH * HS;
  const int u0 = blockIdx.x * kRows, u = u0 + threadIdx.x / kTpr, sub = threadIdx.x % kTpr;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  const float* base = qkv + static_cast<size_t>(b) * T * ld;
  const float* dob = dout + static_cast<size_t>(b) * T * lo;
  float k[D], v[D], dk[D], dv[D];
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const int d = i * kTpr + sub;
    const bool ok = u < T && d < HS;
    k[i] = ok ? base[static_cast<size_t>(u) * ld + (NH + g) * HS + d] : 0.0f;
    v[i] = ok ? base[static_cast<size_t>(u) * ld + (NH + G + g) * HS + d] : 0.0f;
    dk[i] = 0.0f, dv[i] = 0.0f;
  }
  for (int h = g * per_group; h < (g + 1) * per_group; ++h) {
    const size_t bh = static_cast<size_t>(b) * NH + h;
    for (int t0 = (u0 / BQ) * BQ; t0 < T; t0 += BQ) {
      __syncthreads();
      load_tile(Qs, base, t0, BQ, T, ld, h * HS, HS);
      load_tile(Os, dob, t0, BQ, T, lo, h * HS, HS);
      for (int j = threadIdx.x; j < BQ; j += kBlock) {
        const int t = t0 + j;
        Ls[j] = t < T ? lse[bh * T + t] : 0.0f;
        Ds[j] = t < T ? delta[bh * T + t] : 0.0f;
      }
      __syncthreads();
#pragma unroll 4
      for (int j = 0; j < BQ; ++j) {
        float s = 0.0f, dp = 0.0f;
#pragma unroll
        for (int i = 0; i < D; ++i) {
          const int d = i * kTpr + sub;
          if (d < HS) s += k[i] * Qs[j * HS + d], dp += v[i] * Os[j * HS + d];
        }
        s = group_sum(s);
        dp = group_sum(dp);
        const int t = t0 + j;
        const float p = (u < T && t < T && t >= u) ? expf(s * scale - Ls[j]) : 0.0f;
        const float ds = p * (dp - Ds[j]) * scale;
#pragma unroll
        for (int i = 0; i < D; ++i) {
          const int d = i * kTpr + sub;
          if (d < HS) dv[i] += p * Os[j * HS + d], dk[i] += ds * Qs[j * HS + d];
        }
      }
    }
  }
  if (u >= T) return;
  float* row = dqkv + (static_cast<size_t>(b) * T + u) * ld;
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const int d = i * kTpr + sub;
    if (d < HS) row[(NH + g) * HS + d] += dk[i], row[(NH + G + g) * HS + d] += dv[i];
  }
}

template <int D, int BK>
void fwd(float* out, float* lse, const float* qkv, const AttnDims& a, cudaStream_t st) {
  const size_t smem = 2 * static_cast<size_t>(BK) * a.HS * sizeof(float);
  const dim3 grid((a.T + kRows - 1) / kRows, a.B * a.NH);
  attn_fwd_kernel<D, BK><<<grid, kBlock, smem, st>>>(out, lse, qkv, a.T, a.NH, a.G, a.HS);
  EELLM_CUDA_LAUNCH_CHECK();
}

template <int D, int BK>
void bwd(float* dqkv, const float* dout, const float* lse, const float* delta, const float* qkv, const AttnDims& a,
         cudaStream_t st) {
  const size_t smem_dq = 2 * static_cast<size_t>(BK) * a.HS * sizeof(float);
  attn_dq_kernel<D, BK><<<dim3((a.T + kRows - 1) / kRows, a.B * a.NH), kBlock, smem_dq, st>>>(
      dqkv, dout, lse, delta, qkv, a.T, a.NH, a.G, a.HS);
  EELLM_CUDA_LAUNCH_CHECK();
  const size_t smem_kv = (2 * static_cast<size_t>(BK) * a.HS + 2 * BK) * sizeof(float);
  attn_dkdv_kernel<D, BK><<<dim3((a.T + kRows - 1) / kRows, a.B * a.G), kBlock, smem_kv, st>>>(
      dqkv, dout, lse, delta, qkv, a.T, a.NH, a.G, a.HS);
  EELLM_CUDA_LAUNCH_CHECK();
}

}  // namespace

// Per-thread dims D = ceil(HS/4), rounded up to 8, 16, 32 or 64; tiles of 32 rows (16 for HS > 128,
// keeping shared memory at or under 32 KiB without an opt-in).
void launch_attention_forward(float* out, float* lse, const float* qkv, const AttnDims& a, cudaStream_t st) {
  if (a.B * a.T == 0) return;
  if (a.HS <= 32)
    fwd<8, 32>(out, lse, qkv, a, st);
  else if (a.HS <= 64)
    fwd<16, 32>(out, lse, qkv, a, st);
  else if (a.HS <= 128)
    fwd<32, 32>(out, lse, qkv, a, st);
  else
    fwd<64, 16>(out, lse, qkv, a, st);
}

void launch_attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                               const AttnDims& a, float* delta, cudaStream_t st) {
  if (a.B * a.T == 0) return;
  const size_t n = static_cast<size_t>(a.B) * a.NH * a.T;
  attn_delta_kernel<<<static_cast<unsigned>(std::min<size_t>((n + 255) / 256, 65535)), 256, 0, st>>>(
      delta, dout, out, a.B, a.T, a.NH, a.HS);
  EELLM_CUDA_LAUNCH_CHECK();
  if (a.HS <= 32)
    bwd<8, 32>(dqkv, dout, lse, delta, qkv, a, st);
  else if (a.HS <= 64)
    bwd<16, 32>(dqkv, dout, lse, delta, qkv, a, st);
  else if (a.HS <= 128)
    bwd<32, 32>(dqkv, dout, lse, delta, qkv, a, st);
  else
    bwd<64, 16>(dqkv, dout, lse, delta, qkv, a, st);
}

}  // namespace eellm::exec::cuda
