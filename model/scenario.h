// Scenario: everything one run needs (model, exits, parallel layout, cluster, training, inference,
// execution). Plain value types; key names follow Megatron-LM / EE-LLM flags in snake_case, units
// live in key names. Parsing, validation and serialisation are in scenario_io.h / validate.h; the
// derived sizes (data-parallel size, microbatches, layers per stage, exit placement) are computed in
// one place, derive_layout() in layout.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace eellm {

enum class Normalization { kLayerNorm, kRMSNorm };
enum class PositionEmbedding { kLearnedAbsolute, kRope };
enum class Activation { kGelu, kSwiGLU };
enum class DType { kFP32, kFP16, kBF16 };
enum class RecomputeGranularity { kNone, kSelective, kFull };
enum class WarmupStyle { kLinear, kCosine };
enum class LrDecayStyle { kConstant, kLinear, kCosine };

// Pipeline schedules; every one is both simulated (sim/) and executed (exec/).
enum class ScheduleKind {
  kNoPipelining,     // pp == 1: forward/backward of every microbatch, then the step
  kGPipe,            // all forwards, then all backwards
  k1F1B,             // PipeDream-flush, Megatron's non-interleaved schedule
  kInterleaved1F1B,  // Megatron's interleaved schedule with virtual stages
  kZBH1,             // zero bubble H1: backward split into B (input) and W (weight)
  kEE1F1B,           // EE-LLM: 1F1B with exit losses computed and back-propagated on their own stage
  kEEFill,           // EE-LLM: kEE1F1B plus explicit bubble filling (partial fwd/bwd to the exits)
  kEETuning,         // EE-Tuning: frozen backbone, only exit heads train, no gradients cross stages
};

// How EE bubble filling runs its fill microbatches (parallel.fill_semantics). kEELLM: as EE-LLM's
// released code runs them (megatron/core/pipeline_parallel/schedules.py): a fill forward runs the
// whole stage, stage 0 forwards one more microbatch that is never sent, and which microbatch a stage
// fills follows the order its p2p messages arrive in. kExitTruncated: eellm's own variant, where a
// fill forward stops at the deepest exit it reaches and no stage forwards what no exit uses.
enum class FillSemantics { kEELLM, kExitTruncated };

enum class Confidence { kMaxProb, kMargin, kEntropy };
enum class InferenceMethod { kFull, kRecompute, kPipeline, kSpeculative };
enum class DeviceKind { kCPU, kCUDA };
// How a node's GPUs reach each other: NVSwitch (every GPU at its full NVLink bandwidth to every
// other, DGX/HGX A100/H100/H200), PCIe (through the host bridge) or the host's shared memory (CPU
// ranks). The network model (model/network.h) uses the link figures; the fabric is stated so a
// profile says what machine it describes.
enum class IntraNodeFabric { kNVSwitch, kPCIe, kSharedMemory };

struct ModelSpec {
  std::string arch = "gpt";  // free-form label ("gpt2", "llama")
  int num_layers = 0;
  int hidden_size = 0;
  int num_attention_heads = 0;
  int num_query_groups = 0;  // 0 → num_attention_heads (no GQA)
  int ffn_hidden_size = 0;   // 0 → 4h (GELU) or Megatron's SwiGLU default 4h·2/3 rounded to 64
  int kv_channels = 0;       // 0 → hidden_size / num_attention_heads
  int seq_length = 0;
  int max_position_embeddings = 0;  // 0 → seq_length
  int vocab_size = 0;
  int make_vocab_size_divisible_by = 128;  // Megatron pads to a multiple of this × TP
  Normalization normalization = Normalization::kLayerNorm;
  PositionEmbedding position_embedding_type = PositionEmbedding::kLearnedAbsolute;
  Activation activation = Activation::kGelu;
  bool add_bias_linear = true;
  bool untie_embeddings_and_output_weights = false;
  double init_method_std = 0.02;
  double layernorm_epsilon = 1e-5;
  double rotary_base = 10000.0;
  // Megatron's --use-flash-attn: the attention core is one fused kernel (FlashAttention) that never
  // stores the s×s scores and recomputes them in its backward. Independent of recompute_granularity.
  bool use_flash_attn = false;
};

struct ExitSpec {
  std::vector<int> exit_layer_nums;            // 1-based layer numbers
  std::vector<double> exit_layer_weight;       // final weight per exit (same length, or one for all)
  std::vector<double> exit_layer_weight_init;  // warm-up start weight per exit (empty → = final)
  int exit_layer_weight_warmup_iters = 0;
  WarmupStyle exit_layer_weight_warmup_style = WarmupStyle::kLinear;
  double final_exit_weight = 1.0;  // weight of the final (last-layer) loss
  bool pre_exit = false;           // exit sits before layer n (on its input) instead of after
  bool use_exit_norm = false;
  bool use_exit_mlp = false;
  bool use_exit_block = false;
  bool untie_exit_output_weights = false;
  std::vector<double> exit_layer_temperature;  // EE-LLM's --exit-layer-temperature (empty → 1 per exit)
  bool use_dynamic_exit_layer_weight = false;  // EE-LLM's --use-dynamic-exit-layer-weight
};

struct ParallelSpec {
  int tensor_model_parallel_size = 1;
  int pipeline_model_parallel_size = 1;
  int data_parallel_size = 0;  // 0 → world_size / (tp·pp)
  int world_size = 0;          // 0 → all GPUs of the cluster
  int virtual_pipeline_model_parallel_size = 1;
  std::vector<int> layer_partition;  // layers per (virtual) stage; empty → even split
  ScheduleKind schedule = ScheduleKind::k1F1B;
  bool sequence_parallel = false;
  bool use_distributed_optimizer = false;
  bool overlap_grad_reduce = false;
  int ddp_bucket_size = 0;                // gradient bucket, elements; 0 → max(40M, 1M·dp) (Megatron)
  bool fill_explicit_bubbles = false;     // EE-LLM flag; with an EE schedule selects kEEFill
  int num_fill_warmup_microbatches = -1;  // -1 → derived from pp and the bwd/fwd ratio
  int num_fill_cooldown_microbatches = -1;
  FillSemantics fill_semantics = FillSemantics::kEELLM;
  // EE-LLM's --backward-forward-ratio: sets the default fill counts; 0 → the ratio of the
  // scenario's own cost model.
  double backward_forward_ratio = 0;
  // EE-Tuning's --tune-exit-pipeline-parallel-size: only stages below it are loaded and run
  // (ee-tuning); 0 → every stage.
  int tune_exit_pipeline_parallel_size = 0;
  RecomputeGranularity recompute_granularity = RecomputeGranularity::kNone;
};

// Alpha-beta link: time(bytes) = latency + bytes / bandwidth.
struct LinkSpec {
  double bandwidth_GBps = 0;  // unidirectional, per GPU
  double latency_us = 0;
};

// A device, as read from scenarios/devices/NAME.yaml (spec sheet, fitted or calibrated).
struct DeviceProfile {
  std::string name;
  double peak_tflops_fp32 = 0;  // dense
  double peak_tflops_fp16 = 0;
  double peak_tflops_bf16 = 0;
  double memory_GiB = 0;
  double memory_bandwidth_GBps = 0;
  double kernel_launch_us = 0;
  // GEMM efficiency model: achieved = peak · gemm_max_efficiency · tile/wave quantisation
  // · n/(n + gemm_half_efficiency_dim) for the smallest dimension n.
  double gemm_max_efficiency = 0.8;
  double gemm_half_efficiency_dim = 64;
  int gemm_tile_m = 128;
  int gemm_tile_n = 128;
  int num_sms = 108;
  double elementwise_efficiency = 0.7;  // fraction of memory bandwidth element-wise ops reach
  double attention_efficiency = 0.5;    // of GEMM peak, for the softmax(QK^T)V core
  // Backward time / forward time of an element-wise kernel and of the attention core. 2 is the
  // GPU rule (a backward moves about twice the bytes, and does twice the core's GEMM work); a CPU
  // executor's kernels are measured by `eellm calibrate` (its forward softmax is exp-bound and its
  // element-wise backwards read three tensors where the forward reads two: about 1.5).
  double elementwise_backward_ratio = 2;
  double attention_backward_ratio = 2;
  // The attention core in bf16 GEMM math on a CPU executor (its products bf16, its softmax fp32,
  // plus the rounding passes the cost model prices apart), measured by `eellm calibrate`; 0: the
  // two figures above.
  double attention_efficiency_bf16 = 0;  // of the bf16 GEMM peak
  double attention_backward_ratio_bf16 = 0;
  double collective_efficiency = 0.8;  // fraction of link bandwidth collectives reach
  // Link model beyond one alpha-beta line (calibrated CPU profiles; the defaults change nothing):
  // p2p transfers reach p2p_efficiency of the link bandwidth (0 → collective_efficiency);
  // collectives pay collective_latency_us per step (0 → the link latency); bytes of a buffer
  // beyond large_message_KiB (0 → one regime) move at large_message_*_efficiency × that rate.
  double p2p_efficiency = 0;
  double collective_latency_us = 0;
  double large_message_KiB = 0;
  double large_message_p2p_efficiency = 1;
  double large_message_collective_efficiency = 1;
  double per_layer_overhead_us = 0;  // fitted residual per transformer layer and microbatch
  double per_exit_overhead_us = 0;   // fitted residual per exit head and microbatch
  // Fraction of the calibrated compute throughput (GEMM peak, memory bandwidth) one rank reaches
  // in a real run (fitted by `eellm validate`). With host_cores > 0 (CPU profiles), ranks × threads
  // beyond the host's cores time-share them: the fraction is then further multiplied by
  // oversubscribed_efficiency · host_cores / (ranks on the node × threads per rank).
  double compute_share = 1;
  int host_cores = 0;
  double oversubscribed_efficiency = 1;
  double optimizer_bytes_per_param = 0;  // 0 → computed from dtypes (read+write of state)
  double per_iteration_overhead_us = 0;  // fitted fixed cost per training iteration (host side)
  // GEMM library of the CPU executor (exec/backend/gemm.h): auto | eigen | openblas | onednn | blis
  // (auto: every available one measured at the model's shapes once per machine, the fastest kept;
  // `eellm calibrate` writes the winner).
  std::string cpu_gemm = "auto";
  // Links this device ships with (spec sheet; a cluster profile's LinkSpecs override them):
  // NVLink per GPU and the InfiniBand NIC per GPU, unidirectional.
  double nvlink_bandwidth_GBps = 0;
  double nvlink_latency_us = 0;
  double network_bandwidth_GBps = 0;
  double network_latency_us = 0;
  // --- Power (what-if cost analysis, model/training_cost.h) ---
  // Board power while the compute stream is busy (spec-sheet TDP) and while it idles (bubbles,
  // checkpoint writes, restarts); watts per device.
  double power_busy_W = 0;
  double power_idle_W = 0;
};

// What-if cost analysis inputs of a cluster (the `cost:` block of a cluster profile, overridable in
// a scenario's `cluster:` section; model/training_cost.h). Zero turns a term off where noted.
struct CostSpec {
  double price_per_gpu_hour_usd = 0;
  double node_overhead_W = 0;                 // CPUs, NICs, switches, fans per node (beyond the GPUs)
  double pue = 1;                             // data-centre power usage effectiveness (≥ 1)
  double node_mtbf_hours = 0;                 // mean time between failures of one node; 0 → no failures
  double checkpoint_write_GBps_per_node = 0;  // each node writes its shard; 0 → no checkpoints
  double restart_s = 0;                       // job restart after a failure, incl. checkpoint load
};

struct ClusterSpec {
  std::string name;
  std::string device_name;  // a file under scenarios/devices/
  DeviceProfile device;     // resolved
  int num_nodes = 1;
  int gpus_per_node = 1;
  IntraNodeFabric intra_node_fabric = IntraNodeFabric::kNVSwitch;
  LinkSpec intra_node;  // per GPU, unidirectional: NVLink / PCIe / shared memory
  // Inter-node: nics_per_node NICs (rail-optimised: GPU i uses the NIC(s) of its rail), each
  // inter_node.bandwidth_GBps per direction; 0 → one NIC per GPU. Every transfer that crosses the
  // node boundary at the same time shares them (model/network.h).
  int nics_per_node = 0;
  LinkSpec inter_node;  // one NIC
  // Fraction of the NIC line rate NCCL's inter-node transfers reach (0 → the device's
  // collective_efficiency, the same figure as within a node).
  double inter_node_efficiency = 0;
  CostSpec cost;  // what-if cost analysis (separate block)
  int total_gpus() const { return num_nodes * gpus_per_node; }
  int nics() const { return nics_per_node > 0 ? nics_per_node : gpus_per_node; }
};

struct TrainingSpec {
  int micro_batch_size = 1;
  int global_batch_size = 1;
  int train_iters = 100;
  double lr = 3e-4;
  double min_lr = 0;
  int lr_warmup_iters = 0;
  LrDecayStyle lr_decay_style = LrDecayStyle::kCosine;
  int lr_decay_iters = 0;  // 0 → train_iters
  double weight_decay = 0.1;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.95;
  double adam_eps = 1e-8;
  double clip_grad = 1.0;
  uint64_t seed = 1234;
  DType params_dtype = DType::kBF16;  // mixed precision compute dtype (master weights fp32)
  // Megatron's --accumulate-allreduce-grads-in-fp32: fp16 runs keep fp32 main grads (4 bytes per
  // parameter, reduced in fp32) instead of fp16 ones (2 bytes). bf16 runs always keep fp32 grads.
  bool accumulate_allreduce_grads_in_fp32 = false;
  std::string data_path;  // token file; empty → default corpus
  double valid_fraction = 0.05;
  int eval_interval = 0;  // 0 → off
  int eval_iters = 10;
  int save_interval = 0;
  int log_interval = 1;
  // --- Training budget (what-if cost analysis) ---
  double train_tokens = 0;  // backbone tokens to train on; 0 → train_iters iterations
  // The flags of the Megatron/EE-LLM command line this scenario was imported from, as given (one
  // flag and its values a line; `eellm convert`): flags eellm does not model travel through them
  // verbatim, and the export writes back the given spelling of every flag whose value is unchanged.
  std::string megatron_args;
};

struct InferenceSpec {
  int batch_size = 1;
  int prompt_length = 128;
  int max_new_tokens = 128;
  InferenceMethod method = InferenceMethod::kRecompute;
  double early_exit_thres = 0.8;
  Confidence confidence = Confidence::kMaxProb;
  std::vector<double> exit_rates;  // fraction of tokens leaving at each exit (simulation input)
  int speculative_draft_tokens = 4;
  int draft_exit = 0;             // index into exit_layer_nums
  int max_pending_recompute = 8;  // KV recomputation cap before a forced full pass
};

struct ExecutionSpec {
  DeviceKind device = DeviceKind::kCPU;
  int num_threads = 0;  // 0 → all cores
  double recv_timeout_s = 60;
  // The executor's GEMM math (exec/backend/gemm.h): auto | fp32 | tf32 | bf16. auto: the
  // training.params_dtype (fp32 → fp32, bf16 → bf16, fp16 → bf16 on CUDA and fp32 on the CPU; on
  // CUDA EELLM_CUDA_GEMM first). bf16 = operands rounded to bfloat16, fp32 accumulation and fp32
  // storage; tf32 is CUDA only. The cost model prices the linear layers' GEMMs at the peak of an
  // explicit fp32 / bf16 here, else at the params_dtype's peak.
  std::string gemm_math = "auto";
};

struct Scenario {
  std::string name;
  std::string description;
  std::string source_path;  // file it was loaded from (for messages); empty when built in code
  ModelSpec model;
  ExitSpec exits;
  ParallelSpec parallel;
  ClusterSpec cluster;
  TrainingSpec training;
  InferenceSpec inference;
  ExecutionSpec execution;
};

// Enum ↔ the strings used in scenario files and on the command line.
const char* to_string(Normalization v);
const char* to_string(PositionEmbedding v);
const char* to_string(Activation v);
const char* to_string(DType v);
const char* to_string(RecomputeGranularity v);
const char* to_string(WarmupStyle v);
const char* to_string(LrDecayStyle v);
const char* to_string(ScheduleKind v);
const char* to_string(FillSemantics v);
const char* to_string(Confidence v);
const char* to_string(InferenceMethod v);
const char* to_string(DeviceKind v);
const char* to_string(IntraNodeFabric v);

}  // namespace eellm
