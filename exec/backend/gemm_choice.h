// Choosing the CPU GEMM by measurement: both libraries timed at the model's shapes on a CPU backend
// (forward and both backward GEMMs), the faster one kept; cached per process. Separate from gemm.h
// because it runs the backend (backend.h), which itself uses gemm.h.
#pragma once

#include <string>
#include <vector>

#include "exec/backend/gemm.h"

namespace eellm::exec {

// One linear layer's shape: y (N×OC) = x (N×C) · wᵀ.
struct GemmShape {
  int N = 0, C = 0, OC = 0;
};

// The winner of timing both libraries (forward + both backward GEMMs of every shape, best of a
// few repetitions) with `threads` backend threads.
struct GemmChoice {
  CpuGemm gemm = CpuGemm::kEigen;
  double eigen_gflops = 0, openblas_gflops = 0;  // 0: not measured (OpenBLAS unavailable)
  std::string summary() const;                   // e.g. "openblas (SkylakeX) 61.2 vs eigen 40.3 GFLOP/s"
};
GemmChoice measure_cpu_gemm(int threads, const std::vector<GemmShape>& shapes);
// measure_cpu_gemm, cached per (threads, shapes) for the life of the process.
GemmChoice choose_cpu_gemm(int threads, const std::vector<GemmShape>& shapes);

// The linear layers' shapes of one microbatch (tokens = micro batch × sequence) of a GPT with
// hidden C, qkv width, fc width (F or 2F) and ffn F.
std::vector<GemmShape> gpt_gemm_shapes(int tokens, int C, int qkv, int fc, int F);

}  // namespace eellm::exec
