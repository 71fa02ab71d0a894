// CUDA kernels of CudaBackend except attention (cuda_attention.cu): elementwise ops, norms,
// embedding, rotary, cross-entropy rows, reductions, AdamW and the decode ops. fp32 throughout;
// exact libm functions (no --use_fast_math) so results track the CPU reference within 1e-4.
// Launch shapes: grid-stride loops for elementwise work; one warp per row for norms; one block per
// row for cross-entropy and cached attention.
#include <cfloat>
#include <cmath>

#include "exec/backend/cuda/cuda_check.h"
#include "exec/backend/cuda/cuda_kernels.h"

namespace eellm::exec::cuda {
namespace {

constexpr int kThreads = 256;
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

unsigned grid_for(size_t n, int threads = kThreads) {
  const size_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks == 0 ? 1 : blocks) : 65535 * 8);
}

#define GRID_STRIDE(i, n)                                                              \
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<size_t>(gridDim.x) * blockDim.x)

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__global__ void add_kernel(float* d, const float* s, size_t n) {
  GRID_STRIDE(i, n) d[i] += s[i];
}
__global__ void scale_kernel(float* p, float s, size_t n) {
  GRID_STRIDE(i, n) p[i] *= s;
}
__global__ void add_bias_kernel(float* out, const float* bias, int N, int OC) {
  GRID_STRIDE(i, static_cast<size_t>(N) * OC) out[i] += bias[i % OC];
}

// ---- column reductions (dbias, norm dweight/dbias): fixed row chunks, then chunks in order ----
int row_chunks(int N) {
  const int c = (N + 31) / 32;
  return c < 256 ? (c < 1 ? 1 : c) : 256;
}

// partial[chunk, c] = Σ_{n in chunk} src[n, c] (block 32×8: 32 columns, 8 row lanes).
__global__ void column_partial_kernel(const float* src, float* partial, int N, int OC, int rows_per_chunk) {
  __shared__ float s[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
  const int n0 = chunk * rows_per_chunk, n1 = min(N, n0 + rows_per_chunk);
  float acc = 0.0f;
  if (c < OC)
    for (int n = n0 + threadIdx.y; n < n1; n += 8) acc += src[static_cast<size_t>(n) * OC + c];
  s[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < OC) {
    float t = 0.0f;
    for (int y = 0; y < 8; ++y) t += s[y][threadIdx.x];
    partial[static_cast<size_t>(chunk) * OC + c] = t;
  }
}

__global__ void chunks_sum_add_kernel(float* dst, const float* partial, int chunks, int OC) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= OC) return;
  float t = 0.0f;
  for (int k = 0; k < chunks; ++k) t += partial[static_cast<size_t>(k) * OC + c];
  dst[c] += t;
}

// ---- norms: one warp per row ----
__global__ void norm_forward_kernel(bool ln, float* out, float* mean, float* rstd, const float* inp,
                                    const float* weight, const float* bias, int N, int C, float eps) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* x = inp + static_cast<size_t>(row) * C;
  float m = 0.0f;
  if (ln) {
    for (int i = lane; i < C; i += 32) m += x[i];
    m = warp_sum(m) / static_cast<float>(C);
  }
  float var = 0.0f;
  for (int i = lane; i < C; i += 32) var += (x[i] - m) * (x[i] - m);
  var = warp_sum(var) / static_cast<float>(C);
  const float s = 1.0f / sqrtf(var + eps);
  float* y = out + static_cast<size_t>(row) * C;
  for (int i = lane; i < C; i += 32) y[i] = (x[i] - m) * s * weight[i] + (bias ? bias[i] : 0.0f);
  if (lane == 0) {
    if (mean) mean[row] = m;
    rstd[row] = s;
  }
}

__global__ void norm_dx_kernel(bool ln, float* dinp, const float* dout, const float* inp, const float* weight,
                               const float* mean, const float* rstd, int N, int C) {
  const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* x = inp + static_cast<size_t>(row) * C;
  const float* dy = dout + static_cast<size_t>(row) * C;
  float* dx = dinp + static_cast<size_t>(row) * C;
  const float m = ln ? mean[row] : 0.0f, s = rstd[row];
  float dm = 0.0f, dnm = 0.0f;
  for (int i = lane; i < C; i += 32) {
    const float dn = weight[i] * dy[i];
    dm += dn;
    dnm += dn * (x[i] - m) * s;
  }
  dm = ln ? warp_sum(dm) / static_cast<float>(C) : 0.0f;  // RMSNorm does not subtract the mean
  dnm = warp_sum(dnm) / static_cast<float>(C);
  for (int i = lane; i < C; i += 32) {
    const float xhat = (x[i] - m) * s;
    dx[i] += (weight[i] * dy[i] - dm - xhat * dnm) * s;
  }
}

// partial[chunk, c] = Σ dy·xhat, partial[chunks + chunk, c] = Σ dy.
__global__ void norm_dw_partial_kernel(bool ln, float* partial, const float* dout, const float* inp, const float* mean,
                                       const float* rstd, int N, int C, int rows_per_chunk, int chunks) {
  __shared__ float sw[8][33], sb[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
  const int n0 = chunk * rows_per_chunk, n1 = min(N, n0 + rows_per_chunk);
  float aw = 0.0f, ab = 0.0f;
  if (c < C)
    for (int n = n0 + threadIdx.y; n < n1; n += 8) {
      const size_t k = static_cast<size_t>(n) * C + c;
      const float xhat = (inp[k] - (ln ? mean[n] : 0.0f)) * rstd[n];
      aw += dout[k] * xhat;
      ab += dout[k];
    }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float tw = 0.0f, tb = 0.0f;
    for (int y = 0; y < 8; ++y) tw += sw[y][threadIdx.x], tb += sb[y][threadIdx.x];
    partial[static_cast<size_t>(chunk) * C + c] = tw;
    partial[static_cast<size_t>(chunks + chunk) * C + c] = tb;
  }
}

// ---- embedding ----
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte, const float* wpe, int N,
                                         int T, int C) {
  GRID_STRIDE(i, static_cast<size_t>(N) * C) {
    const size_t bt = i / C, c = i % C;
    out[i] = wte[static_cast<size_t>(tokens[bt]) * C + c] + (wpe ? wpe[(bt % T) * C + c] : 0.0f);
  }
}
__global__ void embedding_backward_kernel(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int N,
                                          int T, int C) {
  GRID_STRIDE(i, static_cast<size_t>(N) * C) {
    const size_t bt = i / C, c = i % C;
    atomicAdd(dwte + static_cast<size_t>(tokens[bt]) * C + c, dout[i]);
    if (dwpe) atomicAdd(dwpe + (bt % T) * C + c, dout[i]);
  }
}

// ---- rotary: one thread per (row, head, pair) ----
__global__ void rope_kernel(float* qkv, const float* inv_freq, const int32_t* pos, int rows, int T, int heads, int HS,
                            int ld, float sign) {
  const int half = HS / 2;
  GRID_STRIDE(k, static_cast<size_t>(rows) * heads * half) {
    const int i = static_cast<int>(k % half);
    const size_t rh = k / half;
    const int h = static_cast<int>(rh % heads), r = static_cast<int>(rh / heads);
    const int t = pos ? pos[r] : r % T;
    const float ang = static_cast<float>(t) * inv_freq[i];
    const float c = cosf(ang), sn = sign * sinf(ang);
    float* x = qkv + static_cast<size_t>(r) * ld + h * HS;
    const float x1 = x[i], x2 = x[i + half];
    x[i] = x1 * c - x2 * sn;
    x[i + half] = x2 * c + x1 * sn;
  }
}

// ---- activations ----
__global__ void gelu_forward_kernel(float* out, const float* inp, size_t n) {
  GRID_STRIDE(i, n) out[i] = 0.5f * inp[i] * erfcf(-inp[i] * kInvSqrt2);
}
__global__ void gelu_backward_kernel(float* dinp, const float* dout, const float* inp, size_t n) {
  GRID_STRIDE(i, n) {
    const float x = inp[i];
    const float cdf = 0.5f * erfcf(-x * kInvSqrt2), pdf = expf(-0.5f * x * x) * kInvSqrt2Pi;
    dinp[i] += dout[i] * (cdf + x * pdf);
  }
}
__global__ void swiglu_forward_kernel(float* out, const float* inp, int N, int F) {
  GRID_STRIDE(k, static_cast<size_t>(N) * F) {
    const size_t n = k / F, i = k % F;
    const float a = inp[n * 2 * F + i], b = inp[n * 2 * F + F + i];
    out[k] = a / (1.0f + expf(-a)) * b;
  }
}
__global__ void swiglu_backward_kernel(float* dinp, const float* dout, const float* inp, int N, int F) {
  GRID_STRIDE(k, static_cast<size_t>(N) * F) {
    const size_t n = k / F, i = k % F;
    const float a = inp[n * 2 * F + i], b = inp[n * 2 * F + F + i], dy = dout[k];
    const float sig = 1.0f / (1.0f + expf(-a));
    dinp[n * 2 * F + i] += dy * b * sig * (1.0f + a * (1.0f - sig));
    dinp[n * 2 * F + F + i] += dy * a * sig;
  }
}

// ---- cross-entropy over rows of logits: one block per row ----
constexpr int kCeThreads = 512;
__global__ void cross_entropy_kernel(float* logits, float* losses, const int32_t* targets, int V, int Vp, bool grad,
                                     float scale) {
  __shared__ float sm[kCeThreads / 32], ss[kCeThreads / 32];
  __shared__ float s_lse;
  const int r = blockIdx.x, tid = threadIdx.x, lane = tid % 32, w = tid / 32;
  float* row = logits + static_cast<size_t>(r) * Vp;
  float m = -FLT_MAX, s = 0.0f;  // online max/sum per thread
  for (int j = tid; j < V; j += kCeThreads) {
    const float x = row[j];
    if (x > m)
      s = s * expf(m - x) + 1.0f, m = x;
    else
      s += expf(x - m);
  }
  // Warp, then block combination of (m, s) pairs.
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
    const float mm = fmaxf(m, m2);
    s = s * expf(m - mm) + s2 * expf(m2 - mm), m = mm;
  }
  if (lane == 0) sm[w] = m, ss[w] = s;
  __syncthreads();
  if (tid == 0) {
    float M = sm[0], S = ss[0];
    for (int k = 1; k < kCeThreads / 32; ++k) {
      const float mm = fmaxf(M, sm[k]);
      S = S * expf(M - mm) + ss[k] * expf(sm[k] - mm), M = mm;
    }
    s_lse = M + logf(S);
    losses[r] = s_lse - row[targets[r]];
  }
  __syncthreads();
  if (!grad) return;
  const float lse = s_lse;
  for (int j = tid; j < Vp; j += kCeThreads) row[j] = j < V ? expf(row[j] - lse) * scale : 0.0f;
  __syncthreads();
  if (tid == 0) row[targets[r]] -= scale;
}

// ---- reductions ----
__global__ void sum_squares_partial_kernel(const float* p, size_t n, double* partial) {
  __shared__ double s[kThreads];
  double acc = 0.0;
  GRID_STRIDE(i, n) acc += static_cast<double>(p[i]) * p[i];
  s[threadIdx.x] = acc;
  __syncthreads();
  for (int o = kThreads / 2; o > 0; o >>= 1) {
    if (static_cast<int>(threadIdx.x) < o) s[threadIdx.x] += s[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}
__global__ void sum_partials_kernel(const double* partial, int n, double* out) {
  __shared__ double s[kReducePartials];
  s[threadIdx.x] = static_cast<int>(threadIdx.x) < n ? partial[threadIdx.x] : 0.0;
  __syncthreads();
  for (int o = kReducePartials / 2; o > 0; o >>= 1) {
    if (static_cast<int>(threadIdx.x) < o) s[threadIdx.x] += s[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = s[0];
}
__global__ void nonfinite_kernel(const float* p, size_t n, int* flag) {
  GRID_STRIDE(i, n) if (!isfinite(p[i]))* flag = 1;
}

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1,
                             float beta2, float eps, float wd, float gs, float bc1, float bc2) {
  GRID_STRIDE(i, n) {
    const float g = grad[i] * gs;
    float p = param[i];
    p -= lr * wd * p;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g, vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi, v[i] = vi;
    p -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
    param[i] = p;
  }
}

// ---- decode ops ----
__global__ void embed_rows_kernel(float* dst, const int32_t* dst_row, const int32_t* tokens, const int32_t* pos, int R,
                                  const float* wte, const float* wpe, int C) {
  GRID_STRIDE(k, static_cast<size_t>(R) * C) {
    const size_t r = k / C, c = k % C;
    dst[static_cast<size_t>(dst_row[r]) * C + c] =
        wte[static_cast<size_t>(tokens[r]) * C + c] + (wpe ? wpe[static_cast<size_t>(pos[r]) * C + c] : 0.0f);
  }
}
__global__ void gather_rows_kernel(float* dst, const float* src, const int32_t* idx, int R, int C) {
  GRID_STRIDE(k, static_cast<size_t>(R) * C) {
    const size_t r = k / C, c = k % C;
    dst[k] = src[static_cast<size_t>(idx[r]) * C + c];
  }
}
__global__ void scatter_rows_kernel(float* dst, const float* src, const int32_t* idx, int R, int C) {
  GRID_STRIDE(k, static_cast<size_t>(R) * C) {
    const size_t r = k / C, c = k % C;
    dst[static_cast<size_t>(idx[r]) * C + c] = src[k];
  }
}
__global__ void kv_append_kernel(float* kc, float* vc, const float* qkv, const int32_t* seq, const int32_t* pos, int R,
                                 int max_T, int Q, int KV, int ld) {
  GRID_STRIDE(k, static_cast<size_t>(R) * KV) {
    const size_t r = k / KV, c = k % KV;
    const size_t dst = (static_cast<size_t>(seq[r]) * max_T + pos[r]) * KV + c;
    kc[dst] = qkv[r * ld + Q + c];
    vc[dst] = qkv[r * ld + Q + KV + c];
  }
}

// One block per (row, head): scores into shared memory, block max/sum, then out over head dims.
constexpr int kCachedThreads = 128;
__global__ void attention_cached_kernel(float* out, const float* qkv, const float* kc, const float* vc,
                                        const int32_t* seq, const int32_t* pos, int max_T, int NH, int G, int HS) {
  extern __shared__ float smem[];
  float* q = smem;       // HS
  float* red = q + HS;   // 32
  float* sc = red + 32;  // pos + 1
  const int r = blockIdx.x / NH, h = blockIdx.x % NH, g = h / (NH / G), p = pos[r], tid = threadIdx.x;
  const int KV = G * HS, ld = (NH + 2 * G) * HS;
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  for (int i = tid; i < HS; i += kCachedThreads) q[i] = qkv[static_cast<size_t>(r) * ld + h * HS + i];
  __syncthreads();
  const float* kb = kc + static_cast<size_t>(seq[r]) * max_T * KV + g * HS;
  const float* vb = vc + static_cast<size_t>(seq[r]) * max_T * KV + g * HS;
  float mx = -FLT_MAX;
  for (int u = tid; u <= p; u += kCachedThreads) {
    const float* ku = kb + static_cast<size_t>(u) * KV;
    float dot = 0.0f;
    for (int i = 0; i < HS; ++i) dot += q[i] * ku[i];
    sc[u] = dot * scale;
    mx = fmaxf(mx, sc[u]);
  }
  mx = warp_max(mx);
  if (tid % 32 == 0) red[tid / 32] = mx;
  __syncthreads();
  mx = red[0];
  for (int k = 1; k < kCachedThreads / 32; ++k) mx = fmaxf(mx, red[k]);
  __syncthreads();
  float sum = 0.0f;
  for (int u = tid; u <= p; u += kCachedThreads) sum += sc[u] = expf(sc[u] - mx);
  sum = warp_sum(sum);
  if (tid % 32 == 0) red[tid / 32] = sum;
  __syncthreads();
  sum = 0.0f;
  for (int k = 0; k < kCachedThreads / 32; ++k) sum += red[k];
  const float inv = 1.0f / sum;
  for (int i = tid; i < HS; i += kCachedThreads) {
    float acc = 0.0f;
    for (int u = 0; u <= p; ++u) acc += sc[u] * inv * vb[static_cast<size_t>(u) * KV + i];
    out[static_cast<size_t>(r) * NH * HS + h * HS + i] = acc;
  }
}

}  // namespace

void launch_add(float* dst, const float* src, size_t n, cudaStream_t st) {
  if (n == 0) return;
  add_kernel<<<grid_for(n), kThreads, 0, st>>>(dst, src, n);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_scale(float* p, float s, size_t n, cudaStream_t st) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kThreads, 0, st>>>(p, s, n);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_add_bias(float* out, const float* bias, int N, int OC, cudaStream_t st) {
  add_bias_kernel<<<grid_for(static_cast<size_t>(N) * OC), kThreads, 0, st>>>(out, bias, N, OC);
  EELLM_CUDA_LAUNCH_CHECK();
}
size_t column_sum_partial_floats(int N, int OC) {
  return static_cast<size_t>(row_chunks(N)) * OC;
}
void launch_column_sum_add(float* dst, const float* src, int N, int OC, float* partial, cudaStream_t st) {
  const int chunks = row_chunks(N), per = (N + chunks - 1) / chunks;
  column_partial_kernel<<<dim3((OC + 31) / 32, chunks), dim3(32, 8), 0, st>>>(src, partial, N, OC, per);
  EELLM_CUDA_LAUNCH_CHECK();
  chunks_sum_add_kernel<<<(OC + kThreads - 1) / kThreads, kThreads, 0, st>>>(dst, partial, chunks, OC);
  EELLM_CUDA_LAUNCH_CHECK();
}

void launch_norm_forward(bool layernorm, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int N, int C, float eps, cudaStream_t st) {
  const int rows_per_block = kThreads / 32;
  norm_forward_kernel<<<(N + rows_per_block - 1) / rows_per_block, kThreads, 0, st>>>(layernorm, out, mean, rstd, inp,
                                                                                      weight, bias, N, C, eps);
  EELLM_CUDA_LAUNCH_CHECK();
}
size_t norm_partial_floats(int N, int C) {
  return 2 * static_cast<size_t>(row_chunks(N)) * C;
}
void launch_norm_backward(bool layernorm, float* dinp, float* dweight, float* dbias, const float* dout,
                          const float* inp, const float* weight, const float* mean, const float* rstd, int N, int C,
                          float* partial, cudaStream_t st) {
  const int rows_per_block = kThreads / 32;
  norm_dx_kernel<<<(N + rows_per_block - 1) / rows_per_block, kThreads, 0, st>>>(layernorm, dinp, dout, inp, weight,
                                                                                 mean, rstd, N, C);
  EELLM_CUDA_LAUNCH_CHECK();
  const int chunks = row_chunks(N), per = (N + chunks - 1) / chunks;
  norm_dw_partial_kernel<<<dim3((C + 31) / 32, chunks), dim3(32, 8), 0, st>>>(layernorm, partial, dout, inp, mean, rstd,
                                                                              N, C, per, chunks);
  EELLM_CUDA_LAUNCH_CHECK();
  chunks_sum_add_kernel<<<(C + kThreads - 1) / kThreads, kThreads, 0, st>>>(dweight, partial, chunks, C);
  EELLM_CUDA_LAUNCH_CHECK();
  if (dbias) {
    chunks_sum_add_kernel<<<(C + kThreads - 1) / kThreads, kThreads, 0, st>>>(
        dbias, partial + static_cast<size_t>(chunks) * C, chunks, C);
    EELLM_CUDA_LAUNCH_CHECK();
  }
}

void launch_embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                              int C, cudaStream_t st) {
  const size_t n = static_cast<size_t>(B) * T * C;
  embedding_forward_kernel<<<grid_for(n), kThreads, 0, st>>>(out, tokens, wte, wpe, B * T, T, C);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T, int C,
                               cudaStream_t st) {
  const size_t n = static_cast<size_t>(B) * T * C;
  embedding_backward_kernel<<<grid_for(n), kThreads, 0, st>>>(dwte, dwpe, dout, tokens, B * T, T, C);
  EELLM_CUDA_LAUNCH_CHECK();
}

void launch_rope(float* qkv, const float* inv_freq, const int32_t* pos, int rows, int T, int NH, int G, int HS,
                 float sign, cudaStream_t st) {
  const size_t n = static_cast<size_t>(rows) * (NH + G) * (HS / 2);
  if (n == 0) return;
  rope_kernel<<<grid_for(n), kThreads, 0, st>>>(qkv, inv_freq, pos, rows, T, NH + G, HS, (NH + 2 * G) * HS, sign);
  EELLM_CUDA_LAUNCH_CHECK();
}

void launch_gelu_forward(float* out, const float* inp, size_t n, cudaStream_t st) {
  if (n == 0) return;
  gelu_forward_kernel<<<grid_for(n), kThreads, 0, st>>>(out, inp, n);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_gelu_backward(float* dinp, const float* dout, const float* inp, size_t n, cudaStream_t st) {
  if (n == 0) return;
  gelu_backward_kernel<<<grid_for(n), kThreads, 0, st>>>(dinp, dout, inp, n);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_swiglu_forward(float* out, const float* inp, int N, int F, cudaStream_t st) {
  swiglu_forward_kernel<<<grid_for(static_cast<size_t>(N) * F), kThreads, 0, st>>>(out, inp, N, F);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_swiglu_backward(float* dinp, const float* dout, const float* inp, int N, int F, cudaStream_t st) {
  swiglu_backward_kernel<<<grid_for(static_cast<size_t>(N) * F), kThreads, 0, st>>>(dinp, dout, inp, N, F);
  EELLM_CUDA_LAUNCH_CHECK();
}

void launch_cross_entropy_rows(float* logits, float* losses, const int32_t* targets, int R, int V, int Vp, bool grad,
                               float grad_scale, cudaStream_t st) {
  if (R == 0) return;
  cross_entropy_kernel<<<R, kCeThreads, 0, st>>>(logits, losses, targets, V, Vp, grad, grad_scale);
  EELLM_CUDA_LAUNCH_CHECK();
}

void launch_sum_squares(const float* p, size_t n, double* partial, double* out_device, cudaStream_t st) {
  sum_squares_partial_kernel<<<kReducePartials, kThreads, 0, st>>>(p, n, partial);
  EELLM_CUDA_LAUNCH_CHECK();
  sum_partials_kernel<<<1, kReducePartials, 0, st>>>(partial, kReducePartials, out_device);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_any_nonfinite(const float* p, size_t n, int* flag_device, cudaStream_t st) {
  if (n == 0) return;
  nonfinite_kernel<<<grid_for(n), kThreads, 0, st>>>(p, n, flag_device);
  EELLM_CUDA_LAUNCH_CHECK();
}

void launch_adamw(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, float bc1, float bc2, cudaStream_t st) {
  if (n == 0) return;
  adamw_kernel<<<grid_for(n), kThreads, 0, st>>>(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale,
                                                 bc1, bc2);
  EELLM_CUDA_LAUNCH_CHECK();
}

void launch_embed_rows(float* dst, const int32_t* dst_row, const int32_t* tokens, const int32_t* pos, int R,
                       const float* wte, const float* wpe, int C, cudaStream_t st) {
  if (R == 0) return;
  embed_rows_kernel<<<grid_for(static_cast<size_t>(R) * C), kThreads, 0, st>>>(dst, dst_row, tokens, pos, R, wte, wpe,
                                                                               C);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_gather_rows(float* dst, const float* src, const int32_t* idx, int R, int C, cudaStream_t st) {
  if (R == 0) return;
  gather_rows_kernel<<<grid_for(static_cast<size_t>(R) * C), kThreads, 0, st>>>(dst, src, idx, R, C);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_scatter_rows(float* dst, const float* src, const int32_t* idx, int R, int C, cudaStream_t st) {
  if (R == 0) return;
  scatter_rows_kernel<<<grid_for(static_cast<size_t>(R) * C), kThreads, 0, st>>>(dst, src, idx, R, C);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_kv_append(float* k, float* v, const float* qkv, const int32_t* seq, const int32_t* pos, int R, int max_T,
                      int NH, int G, int HS, cudaStream_t st) {
  if (R == 0) return;
  const int KV = G * HS;
  kv_append_kernel<<<grid_for(static_cast<size_t>(R) * KV), kThreads, 0, st>>>(k, v, qkv, seq, pos, R, max_T, NH * HS,
                                                                               KV, (NH + 2 * G) * HS);
  EELLM_CUDA_LAUNCH_CHECK();
}
void launch_attention_cached(float* out, const float* qkv, const float* k, const float* v, const int32_t* seq,
                             const int32_t* pos, int R, int max_T, int max_len, int NH, int G, int HS,
                             cudaStream_t st) {
  if (R == 0) return;
  const size_t smem = static_cast<size_t>(HS + 32 + max_len) * sizeof(float);
  if (smem > 48 * 1024)
    EELLM_CUDA_CHECK(cudaFuncSetAttribute(attention_cached_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
  attention_cached_kernel<<<R * NH, kCachedThreads, smem, st>>>(out, qkv, k, v, seq, pos, max_T, NH, G, HS);
  EELLM_CUDA_LAUNCH_CHECK();
}

}  // namespace eellm::exec::cuda
