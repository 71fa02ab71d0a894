// Process-wide CUDA state: device selection, the compute stream, managed tensor memory, RAII types
// and the error messages of cuda_check.h.
#include "exec/backend/cuda/cuda_context.h"

#include <cstdlib>
#include <mutex>

#include "exec/backend/cuda/cuda_check.h"
#include "model/parse.h"

namespace eellm::exec::cuda {

std::string cuda_hint(cudaError_t e) {
  switch (e) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
      return "no usable GPU: check nvidia-smi, the driver version and CUDA_VISIBLE_DEVICES";
    case cudaErrorMemoryAllocation:
      return "out of GPU memory: lower micro_batch_size or seq_length, or use more pipeline stages";
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDeviceFunction:
      return "the binary has no kernels for this GPU: add its architecture to CMAKE_CUDA_ARCHITECTURES";
    case cudaErrorInvalidConfiguration:
    case cudaErrorInvalidValue:
      return "bad launch configuration or argument (a shape too large for a kernel's limits?)";
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
      return "a kernel faulted (bad pointer or shape); rerun under compute-sanitizer; the context is now unusable";
    default:
      return "see the CUDA runtime documentation for this error";
  }
}

std::string cublas_status_string(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    default:
      return "cublasStatus " + std::to_string(static_cast<int>(s));
  }
}

void throw_cuda_error(const char* lib, const char* what, const std::string& detail, const std::string& hint,
                      const char* file, int line) {
  throw CudaError(std::string(lib) + " error at " + file + ":" + std::to_string(line) + " in `" + what +
                  "`: " + detail + " (hint: " + hint + ")");
}

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky-free error so later queries start clean
    return 0;
  }
  if (n == 0 && why) *why = "cudaGetDeviceCount reported 0 devices";
  return n;
}

int local_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "LOCAL_RANK"})
    if (const char* s = std::getenv(v)) {
      int r = 0;
      return parse_number(s, r) ? r : 0;  // a malformed value selects device 0, as no value does
    }
  return 0;
}

StatusOr<int> select_device() {
  static std::once_flag once;
  static int device = -1;
  static std::string error;
  std::call_once(once, [] {
    std::string why;
    const int n = device_count(&why);
    if (n == 0) {
      error = "no CUDA GPU is available (" + why + "); use execution.device: cpu, or run on a machine with a GPU";
      return;
    }
    const int d = local_rank() % n;
    const cudaError_t e = cudaSetDevice(d);
    if (e != cudaSuccess) {
      error = "cudaSetDevice(" + std::to_string(d) + ") failed: " + cudaGetErrorString(e);
      return;
    }
    device = d;
  });
  if (device < 0) return Status::failed_precondition(error);
  return device;
}

cudaStream_t process_stream() {
  static Stream* stream = [] {
    (void)select_device();
    // Deliberately never destroyed: tensors freed during static destruction still memset/free on it.
    return new Stream();
  }();
  return stream->get();
}

namespace {

void* managed_alloc(size_t bytes) {
  void* p = nullptr;
  if (cudaMallocManaged(&p, bytes, cudaMemAttachGlobal) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;  // TensorAllocator turns this into std::bad_alloc
  }
  return p;
}
void managed_release(void* p) {
  // cudaFree waits for the device to finish with the block; errors at exit (context gone) are moot.
  if (cudaFree(p) != cudaSuccess) cudaGetLastError();
}
// Ordered after the queued kernels and complete on return, so host code may touch the tensor at once
// (a CPU backend in the same process, tests) — one stream sync per Tensor::zero().
void managed_zero(void* p, size_t bytes) {
  EELLM_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, process_stream()));
  EELLM_CUDA_CHECK(cudaStreamSynchronize(process_stream()));
}

const TensorMemory kManaged{"cuda-managed", &managed_alloc, &managed_release, &managed_zero};

}  // namespace

const TensorMemory& managed_tensor_memory() {
  return kManaged;
}

Stream::Stream() {
  EELLM_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking));
}
Stream::~Stream() {
  if (s_ && cudaStreamDestroy(s_) != cudaSuccess) cudaGetLastError();
}
Event::Event() {
  EELLM_CUDA_CHECK(cudaEventCreateWithFlags(&e_, cudaEventDisableTiming));
}
Event::~Event() {
  if (e_ && cudaEventDestroy(e_) != cudaSuccess) cudaGetLastError();
}

DeviceBuffer::~DeviceBuffer() {
  if (p_ && cudaFree(p_) != cudaSuccess) cudaGetLastError();
}

void* DeviceBuffer::ensure(size_t bytes) {
  if (bytes <= bytes_) return p_;
  if (p_) {
    EELLM_CUDA_CHECK(cudaStreamSynchronize(process_stream()));
    EELLM_CUDA_CHECK(cudaFree(p_));
    p_ = nullptr, bytes_ = 0;
  }
  const size_t grown = std::max(bytes, bytes_ * 3 / 2);
  EELLM_CUDA_CHECK(cudaMalloc(&p_, grown));
  bytes_ = grown;
  return p_;
}

}  // namespace eellm::exec::cuda
