// Launchers of the CUDA kernels behind CudaBackend (exec/backend/cuda/cuda_kernels*.cu). Plain C++
// signatures over device pointers, so cuda_backend.cpp (compiled by the host compiler under the
// project's -Werror) needs no CUDA syntax. All launches are asynchronous on `st`; every launcher
// checks the launch. Semantics are exactly those of the Backend ops of the same name
// (exec/backend/backend.h), backward kernels accumulate; index arrays are DEVICE pointers here.
//
// Determinism: every kernel but embedding_backward (fp32 atomics on repeated tokens) gives bitwise
// identical results run to run; reductions use fixed partitions summed in a fixed order.
// Thread-safety: stateless.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace eellm::exec::cuda {

struct AttnDims {
  int B, T, NH, G, HS;
};

void launch_add(float* dst, const float* src, size_t n, cudaStream_t st);
void launch_scale(float* p, float s, size_t n, cudaStream_t st);
void launch_add_bias(float* out, const float* bias, int N, int OC, cudaStream_t st);
// dst[j] += Σ_n src[n, j]; partial needs column_sum_partial_floats(N, OC) floats.
size_t column_sum_partial_floats(int N, int OC);
void launch_column_sum_add(float* dst, const float* src, int N, int OC, float* partial, cudaStream_t st);

void launch_norm_forward(bool layernorm, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int N, int C, float eps, cudaStream_t st);
// partial needs norm_partial_floats(N, C) floats.
size_t norm_partial_floats(int N, int C);
void launch_norm_backward(bool layernorm, float* dinp, float* dweight, float* dbias, const float* dout,
                          const float* inp, const float* weight, const float* mean, const float* rstd, int N, int C,
                          float* partial, cudaStream_t st);

void launch_embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                              int C, cudaStream_t st);
void launch_embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T, int C,
                               cudaStream_t st);

// inv_freq: HS/2 floats on the device. pos: null → row r is at t = r % T (training layout).
void launch_rope(float* qkv, const float* inv_freq, const int32_t* pos, int rows, int T, int NH, int G, int HS,
                 float sign, cudaStream_t st);

// Largest head size the attention kernels support.
inline constexpr int kMaxHeadSize = 256;
void launch_attention_forward(float* out, float* lse, const float* qkv, const AttnDims& d, cudaStream_t st);
// delta needs B·NH·T floats (scratch).
void launch_attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                               const AttnDims& d, float* delta, cudaStream_t st);

void launch_gelu_forward(float* out, const float* inp, size_t n, cudaStream_t st);
void launch_gelu_backward(float* dinp, const float* dout, const float* inp, size_t n, cudaStream_t st);
void launch_swiglu_forward(float* out, const float* inp, int N, int F, cudaStream_t st);
void launch_swiglu_backward(float* dinp, const float* dout, const float* inp, int N, int F, cudaStream_t st);

// Rows of logits (R, Vp) in place: losses[r] = lse_r − logit[r, target]; with grad, the row becomes
// grad_scale·(softmax − onehot) over the first V columns and 0 beyond.
void launch_cross_entropy_rows(float* logits, float* losses, const int32_t* targets, int R, int V, int Vp, bool grad,
                               float grad_scale, cudaStream_t st);

// Σ p² in double into *out_device (one double); partial needs kReducePartials doubles.
inline constexpr int kReducePartials = 1024;
void launch_sum_squares(const float* p, size_t n, double* partial, double* out_device, cudaStream_t st);
// *flag_device (int) is set to 1 if any of n values is not finite (caller zeroes it first).
void launch_any_nonfinite(const float* p, size_t n, int* flag_device, cudaStream_t st);

void launch_adamw(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, float bc1, float bc2, cudaStream_t st);

// Decode ops (exec/backend/backend.h); index arrays on the device.
void launch_embed_rows(float* dst, const int32_t* dst_row, const int32_t* tokens, const int32_t* pos, int R,
                       const float* wte, const float* wpe, int C, cudaStream_t st);
void launch_gather_rows(float* dst, const float* src, const int32_t* idx, int R, int C, cudaStream_t st);
void launch_scatter_rows(float* dst, const float* src, const int32_t* idx, int R, int C, cudaStream_t st);
void launch_kv_append(float* k, float* v, const float* qkv, const int32_t* seq, const int32_t* pos, int R, int max_T,
                      int NH, int G, int HS, cudaStream_t st);
// max_len: an upper bound of pos[r] + 1 over the rows (host-known).
void launch_attention_cached(float* out, const float* qkv, const float* k, const float* v, const int32_t* seq,
                             const int32_t* pos, int R, int max_T, int max_len, int NH, int G, int HS, cudaStream_t st);

}  // namespace eellm::exec::cuda
