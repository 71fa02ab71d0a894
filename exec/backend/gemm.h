// The CPU backend's GEMM libraries and the choice between them.
//
// Eigen is compiled in (-march=native). The BLAS libraries are loaded at run time (dlopen of the
// Debian 12 libraries, no build dependency), each called single-threaded on row slices of C that
// the backend's thread pool (cpu_pool.h) takes (one thread pool; their own pools would fight it):
// - OpenBLAS (libopenblas.so.0, package libopenblas0): while loading it, OPENBLAS_CORETYPE is set to
//   the kernel family a current OpenBLAS picks for this CPU (AVX-512 → SkylakeX, AVX2+FMA → Haswell)
//   unless the environment already names that family or an AVX-512 one, because the OpenBLAS 0.3.21
//   of Debian 12 falls back to old kernels (Prescott, Haswell) on CPUs newer than it, e.g. AVX-512
//   Zen 4/5 or virtualised Xeons. The environment is restored after loading.
// - oneDNN (libdnnl.so.2, package libdnnl2): dnnl_sgemm, row-major; it dispatches on the CPU's ISA
//   itself (AVX-512 on Zen 4, where OpenBLAS 0.3.21 does not). Inside the backend's parallel region
//   it runs sequentially.
// - BLIS (libblis.so.4, package libblis4-pthread or -openmp): cblas_sgemm. BLIS 0.9 of Debian 12
//   detects CPUs newer than it (Zen 4) as "generic" (reference kernels, ~5× slower); it is then
//   loaded with BLIS_ARCH_TYPE set to skx (AVX-512) or haswell (AVX2+FMA), unless the environment
//   sets it, and the environment is restored.
//
// The choice is the device profile's `cpu_gemm` (model/scenario.h): auto (default) | eigen |
// openblas | onednn | blis. auto measures every available library at the model's GEMM shapes and
// keeps the fastest (gemm_choice.h: once per machine, cached); `eellm calibrate` writes the winner.
//
// GEMM math (both backends): fp32 (exact products), tf32 (CUDA only) or bf16 — operands rounded to
// bfloat16, products accumulated in fp32, weights/activations/gradients stored in fp32 (the fp32
// weights are the master weights). On the CPU bf16 runs through oneDNN's gemm_bf16bf16f32 (AVX512_BF16
// instructions where the CPU has them, e.g. Zen 4/5, Cooper Lake, Sapphire Rapids), whatever library
// `cpu_gemm` picked for fp32; the scenario's execution.gemm_math selects it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/status.h"

namespace eellm::exec {

enum class CpuGemm { kEigen, kOpenBLAS, kOneDNN, kBLIS };
// Every library, Eigen first.
const std::vector<CpuGemm>& all_cpu_gemms();

const char* cpu_gemm_name(CpuGemm g);  // "eigen" | "openblas" | "onednn" | "blis"
// One of those names (case-sensitive); an error naming `field` otherwise. "auto" is resolved by
// choose_cpu_gemm (gemm_choice.h), not here.
StatusOr<CpuGemm> parse_cpu_gemm(const std::string& s, const std::string& field = "cpu_gemm");

// A run-time library as loaded (once per process, thread-safe). Eigen is always available.
struct GemmLibInfo {
  bool available = false;
  std::string kernel;      // e.g. "SkylakeX" (openblas_get_corename), "avx512_core_bf16", "skx"
  std::string kernel_set;  // what this process set (OPENBLAS_CORETYPE=SkylakeX, ...); "" if it left it alone
  std::string error;       // why it is unavailable
};
const GemmLibInfo& cpu_gemm_info(CpuGemm g);
const GemmLibInfo& openblas_info();  // cpu_gemm_info(CpuGemm::kOpenBLAS)

// Row-major single-threaded sgemm through library g (not Eigen): C[M×N] = alpha·op(A)·op(B) + beta·C
// with op(X) = X or Xᵀ. Requires cpu_gemm_info(g).available.
void blas_sgemm(CpuGemm g, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                const float* B, int ldb, float beta, float* C, int ldc);

// "openblas (SkylakeX)" / "onednn (avx512_core_bf16)" / "eigen": the GEMM a backend uses, for log lines.
std::string cpu_gemm_label(CpuGemm g);

enum class GemmMath { kFp32, kTf32, kBf16 };
// "fp32" | "tf32" | "bf16"; an error naming `field` otherwise.
StatusOr<GemmMath> parse_gemm_math(const std::string& s, const std::string& field = "gemm_math");
const char* to_string(GemmMath m);

// The CPU's bf16 GEMM (oneDNN's dnnl_gemm_bf16bf16f32), loaded and probed once per process: a
// 16×16×16 product checked against fp32, so `available` means it runs on this CPU (oneDNN 2.x has no
// bf16 GEMM below AVX-512). kernel names oneDNN's ISA; error says why it cannot run.
const GemmLibInfo& bf16_gemm_info();
// Row-major single-threaded C[M×N] = alpha·op(A)·op(B) + beta·C, A and B bfloat16 (bit patterns),
// C fp32, fp32 accumulation. Requires bf16_gemm_info().available.
void bf16_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const uint16_t* A, int lda,
                const uint16_t* B, int ldb, float beta, float* C, int ldc);
// dst[i] = src[i] rounded to bfloat16, to nearest, ties to even (what the AVX512_BF16 conversion
// does, the same bits with or without it); fp32 denormals become ±0 (the instruction's rule), NaN
// stays NaN, ±Inf stays ±Inf.
void to_bf16(const float* src, uint16_t* dst, size_t n);
float from_bf16(uint16_t b);

}  // namespace eellm::exec
