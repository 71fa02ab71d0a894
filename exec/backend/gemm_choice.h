// Choosing the CPU GEMM by measurement: every available library (gemm.h) timed at the model's shapes
// on a CPU backend (forward and both backward GEMMs), the fastest kept. The choice is cached per
// process and in a small file per machine (so every run on a machine, and every rank of a run on
// it, takes the same library: results stay bitwise reproducible across runs). Separate from gemm.h
// because it runs the backend (backend.h), which itself uses gemm.h.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "exec/backend/gemm.h"

namespace eellm::exec {

// One linear layer's shape: y (N×OC) = x (N×C) · wᵀ.
struct GemmShape {
  int N = 0, C = 0, OC = 0;
};

// The winner of timing every available library (forward + both backward GEMMs of every shape, the
// libraries alternating in rounds, best round of each) with `threads` backend threads.
struct GemmChoice {
  CpuGemm gemm = CpuGemm::kEigen;
  int threads = 0;
  std::vector<std::pair<CpuGemm, double>> gflops;  // each measured library (all_cpu_gemms() order)
  std::string source;                              // "measured", or "cached in <file>"
  double gflops_of(CpuGemm g) const;               // 0: not measured (unavailable)
  // "openblas (SkylakeX) 28.3 vs eigen 17.2, onednn (avx512_core_bf16) 25.0 GFLOP/s"
  std::string summary() const;
  // "gemm: openblas (SkylakeX), 2 threads, measured 28.3 vs eigen 17.2, ... GFLOP/s (cached in ...)"
  std::string log_line() const;
};
GemmChoice measure_cpu_gemm(int threads, const std::vector<GemmShape>& shapes);

// The choice for (this machine, threads, shapes, the libraries and kernels available): read from
// `cache_file` if it holds it, else measured and added to it (under an exclusive lock on
// cache_file + ".lock", so concurrent processes measure once and agree). An empty path, or a file
// that cannot be written, only caches in the process; an unreadable file is re-measured (warning).
GemmChoice choose_cpu_gemm(int threads, const std::vector<GemmShape>& shapes, const std::string& cache_file);
// With the default cache file, and cached per process.
GemmChoice choose_cpu_gemm(int threads, const std::vector<GemmShape>& shapes);
// $XDG_CACHE_HOME/eellm/cpu_gemm.json, else $HOME/.cache/eellm/cpu_gemm.json, else "".
std::string default_cpu_gemm_cache_file();

// The last choice choose_cpu_gemm made in this process (threads 0 when none), for run metadata.
GemmChoice last_cpu_gemm_choice();
// The run's GEMM for its metadata: the last choice's log_line() when `gemm_name` (Backend::gemm_name)
// is the chosen library, else "gemm: <gemm_name>" (pinned by the profile, or not a CPU backend).
std::string gemm_run_note(const std::string& gemm_name);

// The linear layers' shapes of one microbatch (tokens = micro batch × sequence) of a GPT with
// hidden C, qkv width, fc width (F or 2F) and ffn F.
std::vector<GemmShape> gpt_gemm_shapes(int tokens, int C, int qkv, int fc, int F);

}  // namespace eellm::exec
