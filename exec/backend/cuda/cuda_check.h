// Error checking for every CUDA runtime, cuBLAS and NCCL call of exec/backend/cuda/. A failing call throws
// CudaError whose message names the file, line, the call as written, the library's error string
// and a hint for the common causes (no device, out of memory, wrong architecture, launch config).
// Backend ops have no Status return, so a device fault surfaces as an exception the caller (CLI,
// test) reports; make_cuda_backend() and the NCCL communicator convert to Status at their edges.
// Thread-safety: stateless.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <stdexcept>
#include <string>

namespace eellm::exec::cuda {

class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string cuda_hint(cudaError_t e);
std::string cublas_status_string(cublasStatus_t s);

[[noreturn]] void throw_cuda_error(const char* lib, const char* what, const std::string& detail,
                                   const std::string& hint, const char* file, int line);

inline void check_cuda(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw_cuda_error("CUDA", what, std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e), cuda_hint(e), file,
                     line);
}
inline void check_cublas(cublasStatus_t s, const char* what, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw_cuda_error("cuBLAS", what, cublas_status_string(s),
                     "check the GEMM shapes/leading dimensions and that the compute type is supported on this GPU",
                     file, line);
}
inline void check_nccl(ncclResult_t r, const char* what, const char* file, int line) {
  if (r != ncclSuccess && r != ncclInProgress)
    throw_cuda_error("NCCL", what, ncclGetErrorString(r),
                     "run with NCCL_DEBUG=WARN for details; one process per GPU, every rank must call the same "
                     "collectives in the same order",
                     file, line);
}

}  // namespace eellm::exec::cuda

#define EELLM_CUDA_CHECK(call) ::eellm::exec::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define EELLM_CUBLAS_CHECK(call) ::eellm::exec::cuda::check_cublas((call), #call, __FILE__, __LINE__)
#define EELLM_NCCL_CHECK(call) ::eellm::exec::cuda::check_nccl((call), #call, __FILE__, __LINE__)
// After a kernel launch: reports launch-configuration errors at the launch site.
#define EELLM_CUDA_LAUNCH_CHECK() \
  ::eellm::exec::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
