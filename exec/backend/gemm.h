// The CPU backend's GEMM libraries and the choice between them.
//
// Eigen is compiled in (-march=native). OpenBLAS is loaded at run time (dlopen of Debian's
// libopenblas.so.0, no build dependency): while loading it, OPENBLAS_CORETYPE is set to the kernel
// family a current OpenBLAS picks for this CPU (AVX-512 → SkylakeX, AVX2+FMA → Haswell) unless the
// environment already names that family or an AVX-512 one, because the OpenBLAS 0.3.21 of Debian 12
// falls back to old kernels (Prescott, Haswell) on CPUs newer than it, e.g. AVX-512 Zen 4/5 or
// virtualised Xeons. The environment is restored after loading. OpenBLAS is called single-threaded (its own thread
// pool busy-waits and would fight the backend's OpenMP threads); the backend splits the output
// rows over its threads, so there is one pool.
//
// The choice is the device profile's `cpu_gemm` (model/scenario.h): eigen | openblas | auto. auto
// measures both at the model's GEMM shapes once per process and thread count (choose_cpu_gemm)
// and keeps the faster; `eellm calibrate` does the same and writes the winner into the profile.
#pragma once

#include <string>
#include <vector>

#include "model/status.h"

namespace eellm::exec {

enum class CpuGemm { kEigen, kOpenBLAS };

const char* cpu_gemm_name(CpuGemm g);  // "eigen" | "openblas"
// "eigen" | "openblas" (case-sensitive); an error naming `field` otherwise. "auto" is resolved by
// choose_cpu_gemm, not here.
StatusOr<CpuGemm> parse_cpu_gemm(const std::string& s, const std::string& field = "cpu_gemm");

// OpenBLAS as loaded (once per process, thread-safe).
struct OpenBlasInfo {
  bool available = false;
  std::string corename;      // openblas_get_corename(), e.g. "SkylakeX"
  std::string coretype_set;  // what this process set OPENBLAS_CORETYPE to ("" if it left it alone)
  std::string error;         // why it is unavailable
};
const OpenBlasInfo& openblas_info();

// Row-major single-threaded sgemm through OpenBLAS: C[M×N] = alpha·op(A)·op(B) + beta·C with
// op(X) = X or Xᵀ. Requires openblas_info().available.
void openblas_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc);

// "openblas (SkylakeX)" / "eigen": the GEMM a backend uses, for log lines.
std::string cpu_gemm_label(CpuGemm g);

}  // namespace eellm::exec
