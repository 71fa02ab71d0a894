// make_backend: the scenario's execution.device → a Backend (see device.h).
#include "exec/backend/device.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#ifdef EELLM_HAVE_CUDA
#include "exec/backend/cuda/cuda_backend.h"
#include "exec/backend/gemm_choice.h"
#endif

namespace eellm::exec {

bool cuda_compiled() {
#ifdef EELLM_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

StatusOr<std::unique_ptr<Backend>> make_backend(::eellm::DeviceKind device, int num_threads) {
  if (device == ::eellm::DeviceKind::kCPU) return make_cpu_backend(num_threads);
#ifdef EELLM_HAVE_CUDA
  CudaOptions o;
  if (const char* env = std::getenv("EELLM_CUDA_GEMM")) {
    auto m = parse_gemm_math(env);
    if (!m.is_ok()) return m.status().with_context("environment variable EELLM_CUDA_GEMM");
    o.gemm = m.value();
  }
  auto be = make_cuda_backend(o);
  if (!be.is_ok()) return be.status().with_context("execution.device: cuda");
  return std::move(be).value();
#else
  return Status::failed_precondition(
      "execution.device is cuda but this eellm was built without CUDA (configure with -DEELLM_CUDA=ON on a machine "
      "with the CUDA toolkit and NCCL)");
#endif
}

StatusOr<std::unique_ptr<Backend>> make_backend(const Scenario& scenario, int num_threads) {
  const std::string& g = scenario.cluster.device.cpu_gemm;
  if (scenario.execution.device != ::eellm::DeviceKind::kCPU || g == "eigen")
    return make_backend(scenario.execution.device, num_threads);
  CpuGemm gemm = CpuGemm::kEigen;
  if (g == "auto") {
    const ModelSpec& m = scenario.model;
    const int C = m.hidden_size, F = m.ffn_hidden_size > 0 ? m.ffn_hidden_size : 4 * C;
    const int fc = m.activation == Activation::kSwiGLU ? 2 * F : F;
    const int tokens = scenario.training.micro_batch_size * m.seq_length;
    const GemmChoice c = choose_cpu_gemm(num_threads, gpt_gemm_shapes(tokens, C, 3 * C, fc, F));
    std::fprintf(stderr, "eellm: %s\n", c.log_line().c_str());
    gemm = c.gemm;
  } else {
    EELLM_ASSIGN_OR_RETURN(gemm, parse_cpu_gemm(g, "cluster.device.cpu_gemm"));
  }
  return make_cpu_backend(num_threads, gemm);
}

}  // namespace eellm::exec
