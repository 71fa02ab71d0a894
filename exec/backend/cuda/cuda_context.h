// Process-wide CUDA state of exec/backend/cuda/: the device this process uses (one process per GPU, chosen
// by the launcher's local rank), the one compute stream every backend op, tensor memset and NCCL
// ordering goes through, the managed TensorMemory (exec/backend/tensor.h), and RAII wrappers for streams,
// events and device buffers.
//
// Why one stream: Tensor::zero() and the backend's ops must be ordered without any caller knowing
// about streams; communication gets its own stream and orders itself against this one with events.
// Thread-safety: process_stream()/select_device() are initialised once (function-local statics);
// the RAII types are used by one thread.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "exec/backend/tensor.h"
#include "model/status.h"

namespace eellm::exec::cuda {

// Number of visible GPUs; 0 when there is none or the driver is missing (never throws).
int device_count(std::string* why = nullptr);
// The launcher's local rank (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID, LOCAL_RANK),
// 0 when none is set.
int local_rank();
// Selects device local_rank() % device_count() for this process (once); error when no GPU.
StatusOr<int> select_device();

// The process's compute stream (non-blocking, created on first use, on the selected device).
cudaStream_t process_stream();

// CUDA managed memory (cudaMallocManaged): device kernels and host code share pointers.
const TensorMemory& managed_tensor_memory();

class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event();  // timing disabled (cheap ordering events)
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// A growable raw device allocation (cudaMalloc), freed on destruction. Growing discards contents.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  // Ensures at least `bytes` bytes (synchronises the process stream before freeing old storage).
  void* ensure(size_t bytes);
  void* get() const { return p_; }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace eellm::exec::cuda
