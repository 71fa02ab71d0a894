// make_backend: the scenario's execution.device → a Backend (see device.h).
#include "exec/backend/device.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "exec/backend/gemm.h"
#include "exec/backend/gemm_choice.h"
#ifdef EELLM_HAVE_CUDA
#include "exec/backend/cuda/cuda_backend.h"
#endif

namespace eellm::exec {

bool cuda_compiled() {
#ifdef EELLM_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

namespace {

// The CUDA backend with GEMM math `math` ("auto": EELLM_CUDA_GEMM, else bf16).
StatusOr<std::unique_ptr<Backend>> make_cuda(const std::string& math) {
#ifdef EELLM_HAVE_CUDA
  CudaOptions o;
  if (math != "auto") {
    EELLM_ASSIGN_OR_RETURN(o.gemm, parse_gemm_math(math, "execution.gemm_math"));
  } else if (const char* env = std::getenv("EELLM_CUDA_GEMM")) {
    auto m = parse_gemm_math(env, "environment variable EELLM_CUDA_GEMM");
    if (!m.is_ok()) return m.status();
    o.gemm = m.value();
  }
  auto be = make_cuda_backend(o);
  if (!be.is_ok()) return be.status().with_context("execution.device: cuda");
  return std::move(be).value();
#else
  (void)math;
  return Status::failed_precondition(
      "execution.device is cuda but this eellm was built without CUDA (configure with -DEELLM_CUDA=ON on a machine "
      "with the CUDA toolkit and NCCL)");
#endif
}

}  // namespace

StatusOr<std::unique_ptr<Backend>> make_backend(::eellm::DeviceKind device, int num_threads) {
  if (device == ::eellm::DeviceKind::kCPU) return make_cpu_backend(num_threads);
  return make_cuda("auto");
}

StatusOr<std::unique_ptr<Backend>> make_backend(const Scenario& scenario, int num_threads) {
  const std::string& math_s = scenario.execution.gemm_math;
  const DType dtype = scenario.training.params_dtype;
  if (scenario.execution.device != ::eellm::DeviceKind::kCPU) {
    // auto: EELLM_CUDA_GEMM, else the scenario's dtype (fp16 → bf16: the backend has no fp16 math).
    if (math_s != "auto" || std::getenv("EELLM_CUDA_GEMM")) return make_cuda(math_s);
    return make_cuda(dtype == DType::kFP32 ? "fp32" : "bf16");
  }
  GemmMath math = GemmMath::kFp32;
  if (math_s != "auto") {
    EELLM_ASSIGN_OR_RETURN(math, parse_gemm_math(math_s, "execution.gemm_math"));
  } else if (dtype == DType::kBF16) {  // auto: the scenario's dtype, what the simulator prices
    if (bf16_gemm_info().available)
      math = GemmMath::kBf16;
    else
      std::fprintf(stderr, "eellm: training.params_dtype bf16 runs fp32 GEMMs here: %s\n",
                   bf16_gemm_info().error.c_str());
  }
  if (math == GemmMath::kTf32)
    return Status::invalid_argument("execution.gemm_math tf32 needs execution.device cuda (CPUs have no TF32)");
  if (math == GemmMath::kBf16 && !bf16_gemm_info().available)
    return Status::failed_precondition("execution.gemm_math bf16: " + bf16_gemm_info().error);
  const std::string& g = scenario.cluster.device.cpu_gemm;
  CpuGemm gemm = CpuGemm::kEigen;
  if (g == "auto") {
    const ModelSpec& m = scenario.model;
    const int C = m.hidden_size, F = m.ffn_hidden_size > 0 ? m.ffn_hidden_size : 4 * C;
    const int fc = m.activation == Activation::kSwiGLU ? 2 * F : F;
    const int tokens = scenario.training.micro_batch_size * m.seq_length;
    const GemmChoice c = choose_cpu_gemm(num_threads, gpt_gemm_shapes(tokens, C, 3 * C, fc, F));
    std::fprintf(stderr, "eellm: %s\n", c.log_line().c_str());
    gemm = c.gemm;
  } else if (g != "eigen") {
    EELLM_ASSIGN_OR_RETURN(gemm, parse_cpu_gemm(g, "cluster.device.cpu_gemm"));
  }
  if (math == GemmMath::kBf16) std::fprintf(stderr, "eellm: gemm math bf16: %s\n", bf16_gemm_info().kernel.c_str());
  return make_cpu_backend(num_threads, gemm, math);
}

}  // namespace eellm::exec
