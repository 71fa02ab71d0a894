#include "exec/backend/gemm_choice.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <tuple>
#include <utility>

#include "exec/backend/backend.h"

namespace eellm::exec {
namespace {

// Seconds of the best of `reps` runs of f (after one warm-up run).
template <class F>
double best_seconds(int reps, F f) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// GFLOP/s of forward + dinp + dweight over all shapes on a CPU backend with `gemm`.
double measure_one(CpuGemm gemm, int threads, const std::vector<GemmShape>& shapes) {
  auto be = make_cpu_backend(threads, gemm);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-1, 1);
  double flops = 0, seconds = 0;
  for (const GemmShape& s : shapes) {
    const size_t nx = static_cast<size_t>(s.N) * s.C, nw = static_cast<size_t>(s.OC) * s.C;
    std::vector<float> x(nx), w(nw), y(static_cast<size_t>(s.N) * s.OC), dx(nx), dw(nw);
    for (float& v : x) v = d(rng);
    for (float& v : w) v = d(rng);
    for (float& v : y) v = d(rng);
    seconds += best_seconds(3, [&] {
      be->matmul_forward(y.data(), x.data(), w.data(), nullptr, s.N, s.C, s.OC);
      be->matmul_backward(dx.data(), dw.data(), nullptr, y.data(), x.data(), w.data(), s.N, s.C, s.OC);
    });
    flops += 3 * 2.0 * s.N * s.C * s.OC;
  }
  return flops / std::max(seconds, 1e-12) / 1e9;
}

}  // namespace

std::string GemmChoice::summary() const {
  char buf[160];
  if (openblas_gflops <= 0) {
    std::snprintf(buf, sizeof buf, "eigen %.1f GFLOP/s (OpenBLAS unavailable)", eigen_gflops);
  } else {
    const bool ob = gemm == CpuGemm::kOpenBLAS;
    std::snprintf(buf, sizeof buf, "%s %.1f vs %s %.1f GFLOP/s", cpu_gemm_label(gemm).c_str(),
                  ob ? openblas_gflops : eigen_gflops,
                  cpu_gemm_label(ob ? CpuGemm::kEigen : CpuGemm::kOpenBLAS).c_str(),
                  ob ? eigen_gflops : openblas_gflops);
  }
  return buf;
}

GemmChoice measure_cpu_gemm(int threads, const std::vector<GemmShape>& shapes) {
  GemmChoice c;
  c.eigen_gflops = measure_one(CpuGemm::kEigen, threads, shapes);
  if (openblas_info().available) c.openblas_gflops = measure_one(CpuGemm::kOpenBLAS, threads, shapes);
  c.gemm = c.openblas_gflops > c.eigen_gflops ? CpuGemm::kOpenBLAS : CpuGemm::kEigen;
  return c;
}

GemmChoice choose_cpu_gemm(int threads, const std::vector<GemmShape>& shapes) {
  static std::mutex mu;
  static std::map<std::pair<int, std::vector<std::tuple<int, int, int>>>, GemmChoice> cache;
  std::vector<std::tuple<int, int, int>> key;
  for (const GemmShape& s : shapes) key.emplace_back(s.N, s.C, s.OC);
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find({threads, key});
  if (it != cache.end()) return it->second;
  GemmChoice c = measure_cpu_gemm(threads, shapes);
  cache.emplace(std::make_pair(threads, key), c);
  return c;
}

std::vector<GemmShape> gpt_gemm_shapes(int tokens, int C, int qkv, int fc, int F) {
  return {{tokens, C, qkv}, {tokens, C, C}, {tokens, C, fc}, {tokens, F, C}};
}

}  // namespace eellm::exec
