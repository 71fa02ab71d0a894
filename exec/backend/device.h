// Backend selection by the scenario's `execution.device` (cpu | cuda): the one place that creates
// the backend of a training or generation run, so callers stay device-agnostic. Creating the CUDA
// backend also switches Tensor memory to CUDA managed memory (exec/backend/tensor.h): call make_backend
// BEFORE allocating the tensors the backend will use.
// Thread-safety: call from one thread at start-up.
#pragma once

#include <memory>

#include "exec/backend/backend.h"
#include "model/scenario.h"
#include "model/status.h"

namespace eellm::exec {

// device cpu → make_cpu_backend(num_threads). device cuda → the CUDA backend (GEMM math from the
// environment variable EELLM_CUDA_GEMM = bf16 (default) | tf32 | fp32); a Status error when this
// build has no CUDA or the machine has no usable GPU.
StatusOr<std::unique_ptr<Backend>> make_backend(::eellm::DeviceKind device, int num_threads);

// The backend of a run of `scenario` (its execution.device, with its execution.gemm_math: bf16 on a
// CPU without oneDNN's bf16 GEMM, or tf32 on a CPU, is a Status error). gemm_math auto follows
// training.params_dtype, which the simulator prices: fp32 → fp32; bf16 → bf16 (on a CPU without the
// bf16 GEMM: fp32, said on stderr); fp16 → bf16 on CUDA, fp32 on the CPU; on CUDA the environment
// variable EELLM_CUDA_GEMM, when set, takes auto's place. On the CPU the GEMM is the device
// profile's cpu_gemm; auto (the default) measures every available library at the model's shapes
// (one microbatch) once per machine (choose_cpu_gemm: cached in the user's cache dir) and logs the
// choice on stderr ("eellm: gemm: openblas (SkylakeX), 2 threads, measured 28.3 vs eigen ...").
StatusOr<std::unique_ptr<Backend>> make_backend(const Scenario& scenario, int num_threads);

// True when this binary was built with the CUDA backend (EELLM_HAVE_CUDA).
bool cuda_compiled();

}  // namespace eellm::exec
