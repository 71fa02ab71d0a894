// Cost model: parameters, FLOPs, memory, communication volumes and op times of an early-exit GPT
// under a parallel layout, on a DeviceProfile. Pure functions of (Scenario, Layout); the simulator,
// planner and `eellm describe` read every number from here. All FLOPs/bytes/times are per GPU
// (i.e. per tensor-parallel rank) and per microbatch unless the name says otherwise.
// Times are in seconds (double); the simulator converts to integer nanoseconds.
#pragma once

#include <cstdint>
#include <vector>

#include "model/layout.h"
#include "model/network.h"
#include "model/scenario.h"

namespace eellm {

// Forward, backward-input and backward-weight kept apart so zero-bubble schedules can use them.
struct Flops {
  double fwd = 0, bwd_input = 0, bwd_weight = 0;
  double bwd() const { return bwd_input + bwd_weight; }
  double total() const { return fwd + bwd_input + bwd_weight; }
  Flops& operator+=(const Flops& o) {
    fwd += o.fwd;
    bwd_input += o.bwd_input;
    bwd_weight += o.bwd_weight;
    return *this;
  }
};

// Same split, in seconds on the device (compute incl. tensor-parallel collectives inside the op).
struct OpTimes {
  double fwd = 0, bwd_input = 0, bwd_weight = 0;
  double bwd() const { return bwd_input + bwd_weight; }
  OpTimes& operator+=(const OpTimes& o) {
    fwd += o.fwd;
    bwd_input += o.bwd_input;
    bwd_weight += o.bwd_weight;
    return *this;
  }
};

// Parameter counts of the whole (unsharded) model.
struct ParamCounts {
  int64_t embedding = 0;  // word (+ learned position) embedding
  int64_t per_layer = 0;  // one transformer layer
  int num_layers = 0;     // backbone layers (added: backbone() needs it)
  int64_t final_norm = 0;
  int64_t output_layer = 0;         // 0 when tied to the embedding
  std::vector<int64_t> exit_heads;  // each exit head (block + norm + MLP + untied projection)
  int64_t backbone() const;         // embedding + layers + final norm + output layer
  int64_t total() const;            // backbone + exits
};

// Memory of one pipeline rank (one GPU), in bytes.
struct StageMemory {
  int64_t params = 0;         // parameters held by this GPU (sharded by TP)
  int64_t weights_bytes = 0;  // model weights in compute dtype (+ fp32 master copy when mixed)
  int64_t grads_bytes = 0;
  int64_t optimizer_bytes = 0;                   // Adam moments (+ master weights), /dp with distributed optimizer
  int64_t activation_bytes_per_microbatch = 0;   // stored for backward, all layers and exits of the stage
  int64_t exit_logits_bytes_per_microbatch = 0;  // logits held by exit heads (and final head) for backward
  int max_microbatches_in_flight = 1;            // per the schedule (1F1B: pp - rank)
  // Activation + logit bytes held at the peak when the chunks of the stage differ in size
  // (interleaved: the schedule's order decides which chunk-microbatches are held); -1 → in flight
  // × per microbatch.
  int64_t held_activation_bytes = -1;
  int64_t static_bytes() const { return weights_bytes + grads_bytes + optimizer_bytes; }
  int64_t held_bytes() const {
    return held_activation_bytes >= 0
               ? held_activation_bytes
               : max_microbatches_in_flight * (activation_bytes_per_microbatch + exit_logits_bytes_per_microbatch);
  }
  int64_t peak_bytes() const { return static_bytes() + held_bytes(); }
};

// Bytes one microbatch of one chunk (virtual stage) keeps for its backward on one GPU.
struct ChunkActivation {
  int64_t activation_bytes = 0;
  int64_t logits_bytes = 0;  // fp32 logits of the final head and the exit heads on the chunk
};

// One model chunk's costs per microbatch. Exit heads are kept separate from the backbone so the
// simulator can attribute exit work and run partial forwards (bubble filling).
struct ChunkCosts {
  int virtual_stage = 0;
  Flops backbone_flops;        // layers + embedding/final head where present
  OpTimes backbone;            // seconds
  OpTimes per_layer;           // one transformer layer, seconds
  OpTimes embedding;           // 0 unless the chunk has the embedding
  OpTimes final_head;          // final norm + output projection + cross-entropy, 0 unless last
  std::vector<OpTimes> exits;  // per exit on this chunk (order of ChunkLayout::exits)
  std::vector<Flops> exit_flops;
  double recompute_fwd = 0;  // extra forward seconds in backward under activation recompute
  int64_t p2p_bytes = 0;     // activation (or its gradient) sent to the neighbour per microbatch
};

// Elements eellm's CPU executor rounds to bf16 in one attention forward and backward in bf16 math:
// q, k, v once per call (rows × qkv_width), dout in the backward (rows × out_width), and the
// probabilities of each causal block of 64 query rows (heads × Σ rows × keys) once in the forward,
// they and their gradients in the backward.
struct Bf16AttentionRounding {
  double fwd = 0, bwd = 0;
};
Bf16AttentionRounding bf16_attention_rounding(double rows, double qkv_width, double out_width, double heads,
                                              double seq);

class CostModel {
 public:
  CostModel(const Scenario& scenario, const Layout& layout);

  const Scenario& scenario() const { return *scenario_; }
  const Layout& layout() const { return *layout_; }

  ParamCounts param_counts() const;
  // Model FLOPs of one iteration (all GPUs, fwd + bwd, no recompute), the MFU numerator.
  double model_flops_per_iteration(bool include_exits = true) const;
  // Per-layer activation bytes per microbatch (Korthikanti et al. 2022, Table 2).
  int64_t layer_activation_bytes() const;

  ChunkCosts chunk(int virtual_stage) const;
  StageMemory stage_memory(int stage) const;
  ChunkActivation chunk_activation(int virtual_stage) const;
  // Peak activation + logit bytes of `stage` under the interleaved schedule, walking its order.
  int64_t interleaved_held_bytes(int stage) const;

  // Time of one GEMM (m×k)·(k×n) in `dtype` on the device (roofline + efficiency model), at least
  // one kernel launch.
  double gemm_time(double m, double n, double k) const;
  // Time of an element-wise op moving `bytes` through memory, at least one kernel launch.
  double elementwise_time(double bytes) const;
  // Inside chunk(), a sequence of kernels (a layer's forward, its backward) takes
  // max(Σ kernel device time, kernels × kernel_launch_us): the host launches asynchronously, so
  // launch cost only shows when the kernels are shorter than it (small layers, small microbatches).

  // The cluster's network (model/network.h), with this layout's CPU link time-sharing applied.
  NetworkModel network() const;
  // This layout's tensor- and data-parallel groups as the network model sees them (Megatron rank
  // order: TP fastest, then DP, then PP; every group of a kind communicates at the same time).
  CommGroup tp_group() const;
  CommGroup dp_group() const;

  // Point-to-point time between two global ranks (intra- or inter-node link): latency + bytes/bw,
  // so p2p_time(0, ·) is the link latency. Inter-node hops share the node's NICs with the other
  // GPUs of the stage sending at the same time.
  double p2p_time(int64_t bytes, bool inter_node) const;
  // All-reduce / reduce-scatter / all-gather time of `bytes` (full buffer size) over `group`
  // GPUs, `inter_node` when the group spans nodes (then one rank per node, each on its own rail;
  // the layout's own groups use tp_group() / dp_group() through the network model).
  double allreduce_time(int64_t bytes, int group, bool inter_node, CollectiveAlgo algo = CollectiveAlgo::kRing) const;
  double reduce_scatter_time(int64_t bytes, int group, bool inter_node) const;
  double allgather_time(int64_t bytes, int group, bool inter_node) const;

  // Bytes of one gradient in Megatron's main-grad buffer: 2 for fp16 training without
  // accumulate_allreduce_grads_in_fp32, else 4.
  int grad_bytes_per_param() const;
  // Bytes this stage reduces over the data-parallel group per iteration (its gradients).
  int64_t dp_grad_bytes(int stage) const;
  // Bytes of the embedding-group all-reduce (tied word embedding on first/last/exit stages); 0 if
  // none.
  int64_t embedding_group_bytes() const;
  // The ranks (pipeline stages) in the embedding group.
  std::vector<int> embedding_group_stages() const;
  // Optimizer step seconds on one GPU of `stage`.
  double optimizer_step_time(int stage) const;
  // Whether a data-parallel group / the pipeline hop after `stage` crosses nodes (Megatron rank
  // order: tp fastest, then dp, then pp).
  bool dp_group_inter_node() const;
  bool pp_hop_inter_node(int stage) const;

  // --- Additions (helper "cost"): derived figures the simulator, planner and describe share. ---
  // Peak dense FLOP/s of the device in the training compute dtype.
  double peak_flops() const;
  // The peak the GEMMs (linear layers and attention) run at: execution.gemm_math's when it is fp32
  // or bf16 (what the executor multiplies in), else peak_flops() (auto follows params_dtype; tf32
  // has no field).
  double gemm_peak_flops() const;
  // Whether the executor rounds fp32 operands to bf16 in passes of their own before each GEMM:
  // eellm's CPU executor (a profile with host_cores) in bf16 math (execution.gemm_math bf16, or auto
  // with params_dtype bf16). GPUs convert inside the GEMM kernels or store bf16 activations.
  bool rounds_gemm_operands() const;
  // Seconds of the passes rounding `elements` fp32 values to bf16 (read 4 bytes, write 2 each, as
  // element-wise work without the launch floor); chunk() adds them where rounds_gemm_operands().
  double bf16_rounding_time(double elements) const;
  // Bytes of one activation element in the compute dtype (4 for fp32, 2 for fp16/bf16).
  int activation_element_bytes() const;
  // Parameters held by one GPU of `stage` (TP-sharded; replicated norms/biases counted whole; tied
  // word-embedding copies on the last stage and on stages with tied exits included).
  int64_t stage_params(int stage) const;
  // Microbatches whose activations one GPU of `stage` holds at peak under the schedule (an upper
  // bound for the analytical memory check; the simulator's memory timeline is the precise one).
  int max_microbatches_in_flight(int stage) const;
  // Seconds of the data-parallel gradient synchronisation of `stage` (ring all-reduce of fp32
  // grads, or reduce-scatter of grads + all-gather of compute-dtype params with the distributed
  // optimizer).
  double dp_sync_time(int stage) const;
  // Seconds of the embedding-group all-reduce (0 when there is no group).
  double embedding_group_time() const;
  // Bytes one GPU of `stage` moves in tensor-parallel collectives per microbatch (fwd + bwd; full
  // buffer sizes of each all-reduce, or of each reduce-scatter + all-gather with SP). 0 when tp
  // == 1.
  int64_t tp_bytes_per_microbatch(int stage) const;
  // Seconds of one p2p transfer of this layout's activation (ChunkCosts::p2p_bytes) after `stage`.
  double p2p_activation_time(int stage) const;
  // Tensor-parallel group crosses nodes (tp > gpus_per_node).
  bool tp_group_inter_node() const;
  // Fraction of the profile's compute throughput one rank gets (DeviceProfile::compute_share, and
  // the CPU time-sharing rule when ranks × threads exceed host_cores); 1 for spec-sheet profiles.
  double compute_share() const;
  // With host_cores > 0: cores / (ranks on the node × threads per rank) when that demand exceeds
  // the cores, else 1. CPU-driven transfers (MPI over shared memory) time-share the cores too, so
  // link bandwidths are scaled by it (compute by compute_share()).
  double core_time_share() const;
  // Fraction of the time the node's ranks compute at once (default 1: all, always); the simulator
  // refines it from a first pass for time-shared CPU ranks (sim/simulate.cpp). Clamped to (0, 1].
  void set_busy_fraction(double f) { busy_fraction_ = f > 0 && f < 1 ? f : 1.0; }
  // Per-step latency of a collective (DeviceProfile::collective_latency_us, else the link's).
  double collective_latency(bool inter_node) const;

 private:
  friend class ChunkKernels;
  // Device time of a kernel without the launch floor (chunk() applies launch cost per sequence).
  double gemm_time_raw(double m, double n, double k) const;
  double elementwise_time_raw(double bytes) const;

  const Scenario* scenario_;
  const Layout* layout_;
  double busy_fraction_ = 1.0;
};

}  // namespace eellm
