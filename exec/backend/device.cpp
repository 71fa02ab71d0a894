// make_backend: the scenario's execution.device → a Backend (see device.h).
#include "exec/backend/device.h"

#include <cstdlib>
#include <string>

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

}  // namespace eellm::exec
