// CudaBackend (see cuda_backend.h): cuBLAS GEMMs in row-major form, kernel launches, scratch
// buffers, and host-array staging. Row-major (N, C) matrices are column-major (C, N) to cuBLAS, so
// out = inp·Wᵀ is the column-major product Wᵀᵀ·inpᵀ: gemm(T, N, m = OC, n = N, k = C).
#include "exec/backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "exec/backend/cuda/cuda_check.h"
#include "exec/backend/cuda/cuda_context.h"
#include "exec/backend/cuda/cuda_kernels.h"

namespace eellm::exec {
namespace {

using cuda::DeviceBuffer;

class CublasHandle {
 public:
  CublasHandle() { EELLM_CUBLAS_CHECK(cublasCreate(&h_)); }
  ~CublasHandle() {
    if (h_) cublasDestroy(h_);
  }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  cublasHandle_t get() const { return h_; }

 private:
  cublasHandle_t h_ = nullptr;
};

cublasComputeType_t compute_type(GemmMath m) {
  switch (m) {
    case GemmMath::kFp32:
      return CUBLAS_COMPUTE_32F;
    case GemmMath::kTf32:
      return CUBLAS_COMPUTE_32F_FAST_TF32;
    case GemmMath::kBf16:
      return CUBLAS_COMPUTE_32F_FAST_16BF;
  }
  return CUBLAS_COMPUTE_32F;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, GemmMath math) : device_(device), math_(math), st_(cuda::process_stream()) {
    cudaDeviceProp prop{};
    EELLM_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    gpu_name_ = prop.name;
    EELLM_CUBLAS_CHECK(cublasSetStream(blas_.get(), st_));
    // Hopper cuBLAS wants a user workspace for its best kernels; 32 MiB is NVIDIA's recommendation.
    constexpr size_t kWorkspace = 32u << 20;
    EELLM_CUBLAS_CHECK(cublasSetWorkspace(blas_.get(), workspace_.ensure(kWorkspace), kWorkspace));
    EELLM_CUBLAS_CHECK(cublasSetPointerMode(blas_.get(), CUBLAS_POINTER_MODE_HOST));
  }
  ~CudaBackend() override {
    if (cudaStreamSynchronize(st_) != cudaSuccess) cudaGetLastError();
  }

  std::string name() const override {
    return "cuda:" + std::to_string(device_) + " (" + gpu_name_ + ", gemm " + to_string(math_) + ")";
  }
  int num_threads() const override { return 1; }
  void synchronize() override { EELLM_CUDA_CHECK(cudaStreamSynchronize(st_)); }

  void zero(float* p, size_t n) override {
    if (n) EELLM_CUDA_CHECK(cudaMemsetAsync(p, 0, n * sizeof(float), st_));
  }
  void copy(float* dst, const float* src, size_t n) override {
    if (n && dst != src) EELLM_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDefault, st_));
  }
  void add_inplace(float* dst, const float* src, size_t n) override { cuda::launch_add(dst, src, n, st_); }
  void scale_inplace(float* p, float s, size_t n) override { cuda::launch_scale(p, s, n, st_); }
  void download(float* host_dst, const float* src, size_t n) override {
    copy(host_dst, src, n);
    synchronize();
  }
  void upload(float* dst, const float* host_src, size_t n) override { copy(dst, host_src, n); }

  void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                      int OC) override {
    if (N == 0 || OC == 0) return;
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, weight, C, inp, C, 0.0f, out, OC);
    if (bias) cuda::launch_add_bias(out, bias, N, OC, st_);
  }
  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const float* weight, int N, int C, int OC, bool accumulate_dinp = true) override {
    if (N == 0) return;
    if (dinp) gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, weight, C, dout, OC, accumulate_dinp ? 1.0f : 0.0f, dinp, C);
    if (dweight) gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, inp, C, dout, OC, 1.0f, dweight, C);
    if (dbias) {
      float* partial = floats(partial_, cuda::column_sum_partial_floats(N, OC));
      cuda::launch_column_sum_add(dbias, dout, N, OC, partial, st_);
    }
  }

  void norm_forward(Normalization kind, float* out, float* mean, float* rstd, const float* inp, const float* weight,
                    const float* bias, int N, int C, float eps) override {
    if (N == 0) return;
    cuda::launch_norm_forward(kind == Normalization::kLayerNorm, out, mean, rstd, inp, weight, bias, N, C, eps, st_);
  }
  void norm_backward(Normalization kind, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const float* mean, const float* rstd, int N, int C) override {
    if (N == 0) return;
    float* partial = floats(partial_, cuda::norm_partial_floats(N, C));
    cuda::launch_norm_backward(kind == Normalization::kLayerNorm, dinp, dweight, dbias, dout, inp, weight, mean, rstd,
                               N, C, partial, st_);
  }

  void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                         int C) override {
    const int32_t* tok = stage(0, tokens, static_cast<size_t>(B) * T);
    cuda::launch_embedding_forward(out, tok, wte, wpe, B, T, C, st_);
  }
  void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                          int C) override {
    const int32_t* tok = stage(0, tokens, static_cast<size_t>(B) * T);
    cuda::launch_embedding_backward(dwte, dwpe, dout, tok, B, T, C, st_);
  }

  void rope_forward(float* qkv, const AttentionShape& s, float base) override {
    cuda::launch_rope(qkv, inv_freq(s.HS, base), nullptr, s.B * s.T, s.T, s.NH, s.G, s.HS, 1.0f, st_);
  }
  void rope_backward(float* dqkv, const AttentionShape& s, float base) override {
    cuda::launch_rope(dqkv, inv_freq(s.HS, base), nullptr, s.B * s.T, s.T, s.NH, s.G, s.HS, -1.0f, st_);
  }

  void attention_forward(float* out, float* lse, const float* qkv, const AttentionShape& s) override {
    check_attention(s);
    cuda::launch_attention_forward(out, lse, qkv, {s.B, s.T, s.NH, s.G, s.HS}, st_);
  }
  void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                          const AttentionShape& s) override {
    check_attention(s);
    float* delta = floats(delta_, static_cast<size_t>(s.B) * s.NH * s.T);
    cuda::launch_attention_backward(dqkv, dout, out, lse, qkv, {s.B, s.T, s.NH, s.G, s.HS}, delta, st_);
  }

  void gelu_forward(float* out, const float* inp, size_t n) override { cuda::launch_gelu_forward(out, inp, n, st_); }
  void gelu_backward(float* dinp, const float* dout, const float* inp, size_t n, bool accumulate = true,
                     const float* /*out: the kernel recomputes Φ, cheap on a GPU*/ = nullptr) override {
    if (!accumulate) zero(dinp, n);  // the kernel accumulates
    cuda::launch_gelu_backward(dinp, dout, inp, n, st_);
  }
  void swiglu_forward(float* out, const float* inp, int N, int F) override {
    if (N > 0 && F > 0) cuda::launch_swiglu_forward(out, inp, N, F, st_);
  }
  void swiglu_backward(float* dinp, const float* dout, const float* inp, int N, int F) override {
    if (N > 0 && F > 0) cuda::launch_swiglu_backward(dinp, dout, inp, N, F, st_);
  }

  void classifier_fused(float* losses, float* dx, float* dweight, float* logits_out, const float* x,
                        const float* weight, const int32_t* targets, int N, int C, int V, int Vp,
                        float grad_scale) override {
    if (N == 0) return;
    // Rows per block: keep the logits block near 256 MiB whatever the vocabulary.
    const int rows = std::max(1, std::min(N, static_cast<int>((size_t{64} << 20) / static_cast<size_t>(Vp))));
    float* L = floats(logits_, static_cast<size_t>(rows) * Vp);
    const int32_t* tgt = stage(1, targets, static_cast<size_t>(N));
    const bool grad = dx != nullptr;
    for (int r0 = 0; r0 < N; r0 += rows) {
      const int R = std::min(rows, N - r0);
      const float* xb = x + static_cast<size_t>(r0) * C;
      gemm(CUBLAS_OP_T, CUBLAS_OP_N, Vp, R, C, weight, C, xb, C, 0.0f, L, Vp);
      if (logits_out)
        EELLM_CUDA_CHECK(cudaMemcpyAsync(logits_out + static_cast<size_t>(r0) * Vp, L,
                                         static_cast<size_t>(R) * Vp * sizeof(float), cudaMemcpyDefault, st_));
      cuda::launch_cross_entropy_rows(L, losses + r0, tgt + r0, R, V, Vp, grad, grad_scale, st_);
      if (grad) {  // L now holds dlogits
        gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, R, Vp, weight, C, L, Vp, 1.0f, dx + static_cast<size_t>(r0) * C, C);
        gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, Vp, R, xb, C, L, Vp, 1.0f, dweight, C);
      }
    }
  }

  double sum_squares(const float* p, size_t n) override {
    if (n == 0) return 0.0;
    auto* partial = static_cast<double*>(reduce_.ensure((cuda::kReducePartials + 1) * sizeof(double)));
    cuda::launch_sum_squares(p, n, partial, partial + cuda::kReducePartials, st_);
    double out = 0.0;
    EELLM_CUDA_CHECK(
        cudaMemcpyAsync(&out, partial + cuda::kReducePartials, sizeof(double), cudaMemcpyDeviceToHost, st_));
    synchronize();
    return out;
  }
  bool all_finite(const float* p, size_t n) override {
    if (n == 0) return true;
    auto* flag = static_cast<int*>(flag_.ensure(sizeof(int)));
    EELLM_CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(int), st_));
    cuda::launch_any_nonfinite(p, n, flag, st_);
    int bad = 0;
    EELLM_CUDA_CHECK(cudaMemcpyAsync(&bad, flag, sizeof(int), cudaMemcpyDeviceToHost, st_));
    synchronize();
    return bad == 0;
  }

  void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float grad_scale, int t) override {
    // Same float bias corrections as the CPU reference.
    const float bc1 = 1.0f - std::pow(beta1, static_cast<float>(t));
    const float bc2 = 1.0f - std::pow(beta2, static_cast<float>(t));
    cuda::launch_adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weight_decay, grad_scale, bc1, bc2, st_);
  }

  // ---- decode ops (index arrays are host memory: staged) ----
  void embed_rows(float* dst, const int32_t* dst_row, const int32_t* tokens, const int32_t* pos, int R,
                  const float* wte, const float* wpe, int C) override {
    if (R == 0) return;
    const size_t n = static_cast<size_t>(R);
    cuda::launch_embed_rows(dst, stage(2, dst_row, n), stage(3, tokens, n), pos ? stage(4, pos, n) : nullptr, R, wte,
                            wpe, C, st_);
  }
  void gather_rows(float* dst, const float* src, const int32_t* idx, int R, int C) override {
    if (R) cuda::launch_gather_rows(dst, src, stage(2, idx, static_cast<size_t>(R)), R, C, st_);
  }
  void scatter_rows(float* dst, const float* src, const int32_t* idx, int R, int C) override {
    if (R) cuda::launch_scatter_rows(dst, src, stage(2, idx, static_cast<size_t>(R)), R, C, st_);
  }
  void rope_rows(float* qkv, const int32_t* pos, int R, const AttentionShape& s, float base) override {
    if (R == 0) return;
    cuda::launch_rope(qkv, inv_freq(s.HS, base), stage(4, pos, static_cast<size_t>(R)), R, 1, s.NH, s.G, s.HS, 1.0f,
                      st_);
  }
  void kv_append(float* k, float* v, const float* qkv, const int32_t* seq, const int32_t* pos, int R, int max_T,
                 const AttentionShape& s) override {
    if (R == 0) return;
    const size_t n = static_cast<size_t>(R);
    cuda::launch_kv_append(k, v, qkv, stage(5, seq, n), stage(4, pos, n), R, max_T, s.NH, s.G, s.HS, st_);
  }
  void attention_cached(float* out, const float* qkv, const float* k, const float* v, const int32_t* seq,
                        const int32_t* pos, int R, int max_T, const AttentionShape& s) override {
    if (R == 0) return;
    int max_len = 0;
    for (int r = 0; r < R; ++r) max_len = std::max(max_len, pos[r] + 1);  // pos is host memory
    const size_t n = static_cast<size_t>(R);
    cuda::launch_attention_cached(out, qkv, k, v, stage(5, seq, n), stage(4, pos, n), R, max_T, max_len, s.NH, s.G,
                                  s.HS, st_);
  }

 private:
  void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* A, int lda, const float* B,
            int ldb, float beta, float* Cm, int ldc) {
    const float alpha = 1.0f;
    EELLM_CUBLAS_CHECK(cublasGemmEx(blas_.get(), ta, tb, m, n, k, &alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &beta,
                                    Cm, CUDA_R_32F, ldc, compute_type(math_), CUBLAS_GEMM_DEFAULT));
  }

  float* floats(DeviceBuffer& b, size_t n) { return static_cast<float*>(b.ensure(std::max<size_t>(n, 1) * 4)); }

  // Copies n int32 values (host, managed or device memory) into staging slot `slot` on the stream.
  // Stream order makes reuse of a slot by the next call safe.
  const int32_t* stage(int slot, const int32_t* src, size_t n) {
    DeviceBuffer& b = stage_[static_cast<size_t>(slot)];
    auto* dst = static_cast<int32_t*>(b.ensure(std::max<size_t>(n, 1) * sizeof(int32_t)));
    if (n) EELLM_CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(int32_t), cudaMemcpyDefault, st_));
    return dst;
  }

  // 1 / base^(2i/HS) computed exactly as the CPU reference does (double pow, rounded to float).
  const float* inv_freq(int HS, float base) {
    if (HS != freq_hs_ || base != freq_base_) {
      const int half = HS / 2;
      std::vector<float> f(static_cast<size_t>(std::max(half, 1)));
      for (int i = 0; i < half; ++i)
        f[static_cast<size_t>(i)] = static_cast<float>(1.0 / std::pow(static_cast<double>(base), 2.0 * i / HS));
      void* d = freq_.ensure(f.size() * sizeof(float));
      EELLM_CUDA_CHECK(cudaMemcpyAsync(d, f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice, st_));
      synchronize();  // f is a local: the copy must finish before it goes
      freq_hs_ = HS, freq_base_ = base;
    }
    return static_cast<const float*>(freq_.get());
  }

  static void check_attention(const AttentionShape& s) {
    if (s.HS > cuda::kMaxHeadSize || s.G <= 0 || s.NH % s.G != 0)
      throw cuda::CudaError("CudaBackend attention: head size " + std::to_string(s.HS) + " (max " +
                            std::to_string(cuda::kMaxHeadSize) + "), heads " + std::to_string(s.NH) + ", groups " +
                            std::to_string(s.G) + " (heads must be a multiple of groups) are not supported");
  }

  int device_;
  GemmMath math_;
  cudaStream_t st_;
  std::string gpu_name_;
  CublasHandle blas_;
  DeviceBuffer workspace_, partial_, delta_, logits_, reduce_, flag_, freq_;
  std::array<DeviceBuffer, 6> stage_;
  int freq_hs_ = -1;
  float freq_base_ = 0.0f;
};

}  // namespace

StatusOr<std::unique_ptr<Backend>> make_cuda_backend(const CudaOptions& options) {
  EELLM_ASSIGN_OR_RETURN(int device, cuda::select_device());
  int concurrent = 0;
  if (cudaDeviceGetAttribute(&concurrent, cudaDevAttrConcurrentManagedAccess, device) != cudaSuccess ||
      concurrent == 0) {
    cudaGetLastError();
    return Status::failed_precondition("GPU " + std::to_string(device) +
                                       " lacks concurrentManagedAccess, which the CUDA backend's managed tensor "
                                       "memory needs (Linux with a Pascal or newer GPU)");
  }
  try {
    auto be = std::make_unique<CudaBackend>(device, options.gemm);
    set_tensor_memory(cuda::managed_tensor_memory());
    return std::unique_ptr<Backend>(std::move(be));
  } catch (const cuda::CudaError& e) {
    return Status::internal(e.what());
  }
}

}  // namespace eellm::exec
