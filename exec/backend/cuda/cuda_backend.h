// CudaBackend: the Backend interface (exec/backend/backend.h) on one NVIDIA GPU. GEMMs through cuBLAS
// (cublasGemmEx, fp32 storage with a selectable compute type), every other op a kernel of
// cuda_kernels.cu / cuda_attention.cu. All work is queued on the process stream
// (cuda_context.h); synchronize() waits for it — call it before the host reads backend memory.
//
// Precision: fp32 storage for weights, activations and gradients (master weights are the weights);
// GEMM math per GemmMath — kBf16 (CUBLAS_COMPUTE_32F_FAST_16BF: bf16 tensor-core products, fp32
// accumulation; the default for bf16/fp16 scenarios and of CudaOptions), kTf32, or kFp32 (exact, for
// tests and fp32 scenarios; exec/backend/device.h resolves execution.gemm_math auto). NOT DONE YET: bf16
// activation storage (halves activation memory and traffic) and tensor-core attention (the
// attention kernels are fp32 SIMT flash-style); both limit MFU, see scripts/gpu-check.sh.
//
// Memory: make_cuda_backend() switches the process's TensorMemory to CUDA managed memory, so every
// Tensor allocated afterwards is usable by kernels and by host code (after synchronize()). Index
// arrays (tokens, targets, decode rows) may be host memory: they are staged to the device with the
// launch. Requires a GPU with concurrentManagedAccess (Linux, Pascal or newer).
//
// Determinism: bitwise reproducible run to run except embedding_backward (fp32 atomics) and
// cuBLAS's algorithm choice (fixed for a given GPU, shapes and library version).
// Thread-safety: one thread at a time, like every Backend.
#pragma once

#include <memory>
#include <string>

#include "exec/backend/backend.h"
#include "exec/backend/gemm.h"
#include "model/status.h"

namespace eellm::exec {

struct CudaOptions {
  GemmMath gemm = GemmMath::kBf16;
};

// Fails with a Status naming the cause when no GPU is usable (none present, no driver, no
// concurrent managed access). Selects device local_rank % device_count.
StatusOr<std::unique_ptr<Backend>> make_cuda_backend(const CudaOptions& options = {});

}  // namespace eellm::exec
