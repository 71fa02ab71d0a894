// Backend: the compute ops of the early-exit GPT, forward and backward (llm.c layout, ggml-style
// interface). The CPU backend (cpu_backend.cpp) is the reference that always builds; a CUDA backend
// implements the same interface over device pointers. Every pointer is to backend memory.
//
// Conventions (one letter legend for the whole interface):
//   N = rows (B·T tokens), B = batch, T = time, C = channels, OC = output channels,
//   NH = query heads, G = key/value groups (NH % G == 0), HS = head size, V = real vocab,
//   Vp = padded vocab (rows of the projection; columns ≥ V are masked out of the softmax).
// Every backward op ACCUMULATES (+=) into its gradient outputs, so residual branches and tied
// weights need no special casing; callers zero the buffers they own.
// Determinism: for a fixed thread count every op gives bitwise identical results run to run
// (work is split by output index; reductions over rows use per-item partials summed in order).
// Thread-safety: one backend instance is used by one thread at a time (ops thread internally).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "exec/backend/gemm.h"
#include "model/scenario.h"

namespace eellm::exec {

// Shape of one attention call. The qkv rows are laid out per token as
// [q: NH·HS | k: G·HS | v: G·HS] (row stride qkv_stride = (NH + 2G)·HS).
struct AttentionShape {
  int B = 0, T = 0, NH = 0, G = 0, HS = 0;
  int qkv_stride() const { return (NH + 2 * G) * HS; }
  int out_stride() const { return NH * HS; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual int num_threads() const = 0;
  // The GEMM library for log lines ("eigen", "openblas (SkylakeX)", "cublas"); "" when not meaningful.
  virtual std::string gemm_name() const { return ""; }

  // Memory helpers (host memory on the CPU backend).
  virtual void zero(float* p, size_t n) = 0;
  virtual void copy(float* dst, const float* src, size_t n) = 0;
  virtual void add_inplace(float* dst, const float* src, size_t n) = 0;  // dst += src
  virtual void scale_inplace(float* p, float s, size_t n) = 0;
  // Waits until every op queued so far has finished (a device backend runs ops asynchronously).
  // Call it before the host reads or writes backend memory: losses, tensors reduced or copied on
  // the host, buffers handed to a host-memory (MPI) communicator. No-op on the CPU backend.
  virtual void synchronize() {}

  // out (N, OC) = inp (N, C) · weightᵀ (weight is (OC, C)) + bias (OC, nullable).
  virtual void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C,
                              int OC) = 0;
  // dinp += dout · weight; dweight += doutᵀ · inp; dbias += Σ_rows dout. dinp/dweight/dbias
  // nullable (the zero-bubble split computes dinp and dweight in separate calls). With
  // accumulate_dinp false, dinp = dout · weight (its old contents are neither read nor need zeroing).
  virtual void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                               const float* weight, int N, int C, int OC, bool accumulate_dinp = true) = 0;

  // Norms over the last dim C. LayerNorm saves mean and rstd (N); RMSNorm saves rstd (mean unused,
  // nullable). bias nullable (RMSNorm has none).
  virtual void norm_forward(Normalization kind, float* out, float* mean, float* rstd, const float* inp,
                            const float* weight, const float* bias, int N, int C, float eps) = 0;
  virtual void norm_backward(Normalization kind, float* dinp, float* dweight, float* dbias, const float* dout,
                             const float* inp, const float* weight, const float* mean, const float* rstd, int N,
                             int C) = 0;

  // out (B,T,C) = wte[tokens] + wpe[t] (wpe nullable: RoPE models have no learned positions).
  virtual void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int B, int T,
                                 int C) = 0;
  virtual void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int B, int T,
                                  int C) = 0;

  // Rotary embedding (Megatron/NeoX "rotate half" form, rotary dim = HS) applied in place to the q
  // and k parts of qkv; position t uses angle t·base^(-2i/HS). Backward rotates the q/k gradient
  // back in place (the rotation is orthogonal).
  virtual void rope_forward(float* qkv, const AttentionShape& s, float base) = 0;
  virtual void rope_backward(float* dqkv, const AttentionShape& s, float base) = 0;

  // Causal softmax(q·kᵀ/√HS)·v per head. Saves only lse (B, NH, T) — the attention matrix is never
  // stored; backward recomputes it per head from q, k and lse (flash-attention style).
  virtual void attention_forward(float* out, float* lse, const float* qkv, const AttentionShape& s) = 0;
  virtual void attention_backward(float* dqkv, const float* dout, const float* out, const float* lse, const float* qkv,
                                  const AttentionShape& s) = 0;

  // GELU (exact erf form, Megatron's default): out = gelu(inp), N elements.
  virtual void gelu_forward(float* out, const float* inp, size_t n) = 0;
  // dinp += dout · gelu'(inp); with accumulate false, dinp = dout · gelu'(inp) (no zeroing needed).
  // out (nullable): gelu_forward's output for inp, which holds x·Φ(x); a backend may take Φ from it
  // instead of recomputing erfc (the CPU backend does: one exponential per element instead of two
  // and the erfc polynomial). Must be exactly the forward's output when given.
  virtual void gelu_backward(float* dinp, const float* dout, const float* inp, size_t n, bool accumulate = true,
                             const float* out = nullptr) = 0;
  // SwiGLU: inp (N, 2F) = [a | b] per row, out (N, F) = silu(a) · b.
  virtual void swiglu_forward(float* out, const float* inp, int N, int F) = 0;
  virtual void swiglu_backward(float* dinp, const float* dout, const float* inp, int N, int F) = 0;

  // Softmax cross-entropy fused with the output projection: logits = x (N, C) · weightᵀ (Vp, C),
  // computed a block of rows at a time so the (N, Vp) logits never exist in full. losses (N) gets
  // the per-token loss. If dx/dweight are non-null, also back-propagates d(Σ_n grad_scale·loss_n):
  // dx += dlogits · weight, dweight += dlogitsᵀ · x. Columns ≥ V are excluded from the softmax.
  // If `logits_out` is non-null the full (N, Vp) logits are also written there (tests, inference).
  virtual void classifier_fused(float* losses, float* dx, float* dweight, float* logits_out, const float* x,
                                const float* weight, const int32_t* targets, int N, int C, int V, int Vp,
                                float grad_scale) = 0;

  // Σ p² over n elements, each square and the sum in double (global gradient norm). Hence it is
  // non-finite exactly when an element is ±inf or NaN (a finite float's square is < 1.2e77): the
  // trainer and the gradient sync take the gradients' finiteness from it.
  virtual double sum_squares(const float* p, size_t n) = 0;
  // True if all n values are finite.
  virtual bool all_finite(const float* p, size_t n) = 0;

  // ---- Decode ops: incremental generation over a KV cache (exec/generate/generate.h) ----
  // Rows: a decode step processes R rows, row r = (sequence seq[r], position pos[r]) — the new
  // tokens of several sequences, possibly several positions per sequence (KV recomputation,
  // speculative verification). The index arrays seq/pos/idx/tokens of these ops are HOST memory
  // (R entries; a device backend copies them with the launch); every float pointer is backend
  // memory. KV cache slot (one attention layer): two buffers k, v, each (B, max_T, KV) row-major,
  // KV = G·HS; position p of sequence b is row b·max_T + p. All decode ops OVERWRITE their outputs.
  // AttentionShape: only NH, G, HS are read (B and T are ignored; R and max_T are passed).

  // dst row dst_row[r] (C floats) = wte[tokens[r]] + wpe[pos[r]] (wpe nullable: RoPE models).
  virtual void embed_rows(float* dst, const int32_t* dst_row, const int32_t* tokens, const int32_t* pos, int R,
                          const float* wte, const float* wpe, int C) = 0;
  // dst (R, C): row r = src row idx[r] (gather_rows); dst row idx[r] = src row r (scatter_rows;
  // idx entries distinct). Used to move rows between the (B·max_T, C) residual store and a batch.
  virtual void gather_rows(float* dst, const float* src, const int32_t* idx, int R, int C) = 0;
  virtual void scatter_rows(float* dst, const float* src, const int32_t* idx, int R, int C) = 0;
  // RoPE in place on qkv (R, qkv_stride) at per-row positions pos[r]: exactly rope_forward's
  // rotation of a row at time t = pos[r] (same float angles, bitwise on the CPU backend).
  virtual void rope_rows(float* qkv, const int32_t* pos, int R, const AttentionShape& s, float base) = 0;
  // Writes the k and v parts of qkv row r into k/v cache rows seq[r]·max_T + pos[r] (KV floats each).
  virtual void kv_append(float* k, float* v, const float* qkv, const int32_t* seq, const int32_t* pos, int R, int max_T,
                         const AttentionShape& s) = 0;
  // out (R, NH·HS): for row r and head h, softmax(q·kᵀ/√HS)·v over the cached keys [0, pos[r]] of
  // sequence seq[r] (group h / (NH/G)); q is the q part of qkv row r. Causal within a call because
  // kv_append of the same rows precedes it. Exact exp (no lse saved: inference only).
  virtual void attention_cached(float* out, const float* qkv, const float* k, const float* v, const int32_t* seq,
                                const int32_t* pos, int R, int max_T, const AttentionShape& s) = 0;
  // Backend memory ↔ host memory (n floats). The generator reads logits on the host with download.
  virtual void download(float* host_dst, const float* src, size_t n) { copy(host_dst, src, n); }
  virtual void upload(float* dst, const float* host_src, size_t n) { copy(dst, host_src, n); }

  // AdamW step on one tensor (torch semantics: decoupled decay p -= lr·wd·p, bias-corrected moments,
  // step t is 1-based). grad is multiplied by grad_scale first (gradient clipping).
  virtual void adamw_step(float* param, const float* grad, float* m, float* v, size_t n, float lr, float beta1,
                          float beta2, float eps, float weight_decay, float grad_scale, int t) = 0;
};

// The CPU reference backend (Eigen or OpenBLAS GEMM, on its own thread pool: cpu_pool.h).
// num_threads ≤ 0 → all the CPUs the process may use. gemm kOpenBLAS falls back to Eigen when
// OpenBLAS cannot be loaded (gemm_name() says which is used). math kBf16: the matmuls' products
// (matmul_forward/backward of ≥ 17 rows, the fused classifier's three) in bf16 with fp32
// accumulation through oneDNN (gemm.h); requires bf16_gemm_info().available. The attention's
// per-head products and decode steps stay fp32.
std::unique_ptr<Backend> make_cpu_backend(int num_threads, CpuGemm gemm = CpuGemm::kEigen,
                                          GemmMath math = GemmMath::kFp32);

}  // namespace eellm::exec
