// Cost model of an early-exit GPT under tensor/pipeline/data parallelism (see cost_model.h).
//
// Conventions (stated once, relied on by the tests):
// - FLOPs count matrix multiplications only (2·m·n·k each); element-wise work is costed in time,
//   not in FLOPs, as in Megatron's and Narayanan et al.'s formulas.
// - Attention scores count the full s² (QKᵀ and A·V, 4·b·s²·h per layer forward), not the causal
//   half, as Megatron's formula does.
// - Backward: every weight GEMM costs its forward once for the input gradient and once for the
//   weight gradient; the attention core (no weights) costs attention_backward_ratio × its forward
//   (2 on a GPU), all input gradient, and an element-wise kernel elementwise_backward_ratio × its
//   forward (2 on a GPU; both measured by `eellm calibrate` for the CPU executor).
// - Activation memory follows Korthikanti et al. 2022 Table 2 (16-bit activations, 1-byte dropout
//   masks), generalised to ffn ≠ 4h, SwiGLU, GQA and fp32 so that the table's rows are exact for
//   GPT-style models. Logits held for the cross-entropy backward are fp32 (Megatron casts them).
// - All tensor-parallel collectives are exposed (Megatron without --tp-comm-overlap): their time
//   is inside the layer's fwd / bwd_input time.
// - Rank order is Megatron's: tensor-parallel fastest, then data-parallel, then pipeline.
// Thread-safety: const methods only read the scenario and layout; safe to call concurrently.
#include "model/cost_model.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace eellm {
namespace {

constexpr double kUs = 1e-6;

int64_t norm_params(const ModelSpec& m) {
  return m.normalization == Normalization::kLayerNorm ? 2LL * m.hidden_size : static_cast<int64_t>(m.hidden_size);
}

// Sizes of one transformer layer, split into the tensor-parallel-sharded part and the part every
// TP rank holds whole (norms and the biases of row-parallel linears).
struct LayerParams {
  int64_t attn_sharded = 0, attn_replicated = 0;
  int64_t mlp_sharded = 0, mlp_replicated = 0;
  int64_t norms = 0;
  int64_t total() const { return attn_sharded + attn_replicated + mlp_sharded + mlp_replicated + norms; }
  int64_t per_gpu(int tp) const { return (attn_sharded + mlp_sharded) / tp + attn_replicated + mlp_replicated + norms; }
};

LayerParams layer_params(const ModelSpec& m, const Layout& L) {
  const int64_t h = m.hidden_size, kv = L.kv_channels, nh = m.num_attention_heads, g = L.num_query_groups;
  const int64_t ffn = L.ffn_hidden_size;
  const bool bias = m.add_bias_linear;
  const int64_t fc1_out = m.activation == Activation::kSwiGLU ? 2 * ffn : ffn;
  LayerParams p;
  p.attn_sharded = h * (nh + 2 * g) * kv + (bias ? (nh + 2 * g) * kv : 0) + nh * kv * h;
  p.attn_replicated = bias ? h : 0;
  p.mlp_sharded = h * fc1_out + (bias ? fc1_out : 0) + ffn * h;
  p.mlp_replicated = bias ? h : 0;
  p.norms = 2 * norm_params(m);
  return p;
}

// Per-microbatch shapes of one GPU.
struct Dims {
  double b, s, h, nh, g, kv, ffn, fc1_out, V, t, e;
  bool sp, flash;
  double m() const { return b * s; }                 // GEMM rows (full sequence: SP all-gathers before the GEMMs)
  double s_local() const { return sp ? s / t : s; }  // sequence held outside the TP region
};

Dims dims_of(const Scenario& sc, const Layout& L) {
  Dims d{};
  d.b = sc.training.micro_batch_size;
  d.s = sc.model.seq_length;
  d.h = sc.model.hidden_size;
  d.nh = sc.model.num_attention_heads;
  d.g = L.num_query_groups;
  d.kv = L.kv_channels;
  d.ffn = L.ffn_hidden_size;
  d.fc1_out = sc.model.activation == Activation::kSwiGLU ? 2.0 * d.ffn : d.ffn;
  d.V = L.padded_vocab_size;
  d.t = L.tp;
  d.e = sc.training.params_dtype == DType::kFP32 ? 4 : 2;
  d.sp = sc.parallel.sequence_parallel && L.tp > 1;
  d.flash = sc.model.use_flash_attn;
  return d;
}

// Full-model (unsharded) FLOPs of one transformer layer, one microbatch.
Flops layer_flops(const Dims& d) {
  const double m = d.m();
  const double gemm =
      2 * m * d.h * (d.nh + 2 * d.g) * d.kv + 2 * m * d.nh * d.kv * d.h + 2 * m * d.h * d.fc1_out + 2 * m * d.ffn * d.h;
  const double core = 2 * (2 * d.b * d.nh * d.s * d.s * d.kv);
  return Flops{gemm + core, gemm + 2 * core, gemm};
}
Flops mlp_flops(const Dims& d) {
  const double gemm = 2 * d.m() * d.h * d.fc1_out + 2 * d.m() * d.ffn * d.h;
  return Flops{gemm, gemm, gemm};
}
Flops projection_flops(const Dims& d) {
  const double gemm = 2 * d.m() * d.h * d.V;
  return Flops{gemm, gemm, gemm};
}
Flops scaled(Flops f, double k) {
  return Flops{f.fwd * k, f.bwd_input * k, f.bwd_weight * k};
}

// Korthikanti et al. 2022 Table 2, generalised. Unsharded part: two norm inputs, QKV input, MLP
// input (each e·sbh) and two dropout masks (sbh); sharded part: Q, K, V, projection input, MLP
// inner activations; attention core (2e+1)·a·s²·b (softmax output, its dropout mask and output),
// not stored under selective recompute (replayed in backward) nor with flash attention (never
// materialised; its b·a·s fp32 softmax statistics are negligible and not counted).
int64_t layer_activation(const Dims& d, RecomputeGranularity r) {
  const double sbh = d.s * d.b * d.h;
  if (r == RecomputeGranularity::kFull) return static_cast<int64_t>(std::llround(d.e * sbh / (d.sp ? d.t : 1)));
  const double unsharded = 4 * d.e * sbh + 2 * sbh;
  const double mlp_inner = (d.fc1_out + d.ffn) * d.e * d.s * d.b;  // fc1 output + activation output
  const double attn_inner = d.e * d.s * d.b * (2 * d.nh * d.kv + 2 * d.g * d.kv);
  const double core = r == RecomputeGranularity::kSelective || d.flash ? 0.0 : (2 * d.e + 1) * d.nh * d.s * d.s * d.b;
  const double v = (d.sp ? unsharded / d.t : unsharded) + (mlp_inner + attn_inner + core) / d.t;
  return static_cast<int64_t>(std::llround(v));
}
int64_t mlp_activation(const Dims& d) {
  const double in = d.e * d.s * d.b * d.h;
  return static_cast<int64_t>(std::llround((d.sp ? in / d.t : in) + (d.fc1_out + d.ffn) * d.e * d.s * d.b / d.t));
}

// Node of a global rank under Megatron's rank order.
int node_of(int rank, int gpus_per_node) {
  return rank / std::max(1, gpus_per_node);
}

}  // namespace

int64_t ParamCounts::backbone() const {
  return embedding + per_layer * num_layers + final_norm + output_layer;
}
int64_t ParamCounts::total() const {
  return backbone() + std::accumulate(exit_heads.begin(), exit_heads.end(), int64_t{0});
}

CostModel::CostModel(const Scenario& scenario, const Layout& layout) : scenario_(&scenario), layout_(&layout) {}

ParamCounts CostModel::param_counts() const {
  const ModelSpec& m = scenario_->model;
  const Layout& L = *layout_;
  const int64_t h = m.hidden_size, V = L.padded_vocab_size;
  ParamCounts c;
  const int64_t max_pos = m.max_position_embeddings > 0 ? m.max_position_embeddings : m.seq_length;
  c.embedding = V * h + (m.position_embedding_type == PositionEmbedding::kLearnedAbsolute ? max_pos * h : 0);
  const LayerParams lp = layer_params(m, L);
  c.per_layer = lp.total();
  c.num_layers = m.num_layers;
  c.final_norm = norm_params(m);
  c.output_layer = m.untie_embeddings_and_output_weights ? V * h : 0;
  const ExitSpec& x = scenario_->exits;
  for (size_t i = 0; i < L.exits.size(); ++i) {
    int64_t head = 0;
    if (x.use_exit_block) head += lp.total();
    if (x.use_exit_norm) head += norm_params(m);
    if (x.use_exit_mlp) head += lp.mlp_sharded + lp.mlp_replicated;
    if (x.untie_exit_output_weights) head += V * h;
    c.exit_heads.push_back(head);
  }
  return c;
}

int CostModel::activation_element_bytes() const {
  return scenario_->training.params_dtype == DType::kFP32 ? 4 : 2;
}

double CostModel::peak_flops() const {
  const DeviceProfile& dev = scenario_->cluster.device;
  switch (scenario_->training.params_dtype) {
    case DType::kFP32:
      return dev.peak_tflops_fp32 * 1e12;
    case DType::kFP16:
      return dev.peak_tflops_fp16 * 1e12;
    case DType::kBF16:
      return dev.peak_tflops_bf16 * 1e12;
  }
  return dev.peak_tflops_bf16 * 1e12;
}

bool CostModel::rounds_gemm_operands() const {
  const Scenario& s = *scenario_;
  if (s.cluster.device.host_cores <= 0) return false;
  const std::string& math = s.execution.gemm_math;
  return math == "bf16" || (math == "auto" && s.training.params_dtype == DType::kBF16);
}

Bf16AttentionRounding bf16_attention_rounding(double rows, double qkv_width, double out_width, double heads,
                                              double seq) {
  const double qkv = rows * qkv_width, dout = rows * out_width;
  const double blocks = heads * seq * (seq + 64) / 2;  // Σ over causal blocks of 64 query rows: rows × keys
  return {qkv + blocks, qkv + dout + 2 * blocks};
}

double CostModel::bf16_rounding_time(double elements) const {
  return elementwise_time_raw(6 * elements);
}

double CostModel::gemm_peak_flops() const {
  const DeviceProfile& dev = scenario_->cluster.device;
  const std::string& math = scenario_->execution.gemm_math;
  if (math == "fp32") return dev.peak_tflops_fp32 * 1e12;
  if (math == "bf16") return dev.peak_tflops_bf16 * 1e12;
  return peak_flops();
}

double CostModel::model_flops_per_iteration(bool include_exits) const {
  const Dims d = dims_of(*scenario_, *layout_);
  Flops per_mb = scaled(layer_flops(d), scenario_->model.num_layers);
  per_mb += projection_flops(d);
  if (include_exits) {
    const ExitSpec& x = scenario_->exits;
    for (size_t i = 0; i < layout_->exits.size(); ++i) {
      if (x.use_exit_block) per_mb += layer_flops(d);
      if (x.use_exit_mlp) per_mb += mlp_flops(d);
      per_mb += projection_flops(d);
    }
  }
  return per_mb.total() * layout_->num_microbatches * layout_->dp;
}

int64_t CostModel::layer_activation_bytes() const {
  return layer_activation(dims_of(*scenario_, *layout_), scenario_->parallel.recompute_granularity);
}

// ---------------------------------------------------------------------------------------------
// Op times.

double CostModel::gemm_time_raw(double m, double n, double k) const {
  if (m <= 0 || n <= 0 || k <= 0) return 0;
  const DeviceProfile& dev = scenario_->cluster.device;
  const double tm = std::max(1, dev.gemm_tile_m), tn = std::max(1, dev.gemm_tile_n);
  const double tiles_m = std::ceil(m / tm), tiles_n = std::ceil(n / tn);
  const double tiles = tiles_m * tiles_n;
  const double sms = std::max(1, dev.num_sms);
  const double waves = std::ceil(tiles / sms);
  // Useful fraction of the launched tile-waves: partial edge tiles and a partial last wave idle
  // (a GEMM with fewer tiles than SMs leaves the other SMs idle, the same formula with one wave).
  const double util = (m * n) / (waves * sms * tm * tn);
  const double nmin = std::min({m, n, k});
  const double shape_eff = nmin / (nmin + std::max(0.0, dev.gemm_half_efficiency_dim));
  const double eff = std::max(1e-6, dev.gemm_max_efficiency * util * shape_eff);
  const double share = compute_share();
  const double t_compute = 2 * m * n * k / (gemm_peak_flops() * share * eff);
  const double t_memory = activation_element_bytes() * (m * k + k * n + m * n) /
                          (dev.memory_bandwidth_GBps * share * 1e9 * std::max(1e-6, dev.elementwise_efficiency));
  return std::max(t_compute, t_memory);
}

double CostModel::gemm_time(double m, double n, double k) const {
  if (m <= 0 || n <= 0 || k <= 0) return 0;
  return std::max(gemm_time_raw(m, n, k), scenario_->cluster.device.kernel_launch_us * kUs);
}

double CostModel::elementwise_time_raw(double bytes) const {
  if (bytes <= 0) return 0;
  const DeviceProfile& dev = scenario_->cluster.device;
  return bytes / (dev.memory_bandwidth_GBps * compute_share() * 1e9 * std::max(1e-6, dev.elementwise_efficiency));
}

double CostModel::core_time_share() const {
  const DeviceProfile& dev = scenario_->cluster.device;
  if (dev.host_cores <= 0) return 1.0;
  const Layout& L = *layout_;
  const int ranks = std::max(1, std::min(L.tp * L.pp * L.dp, std::max(1, scenario_->cluster.gpus_per_node)));
  // The executor's default: each rank gets cores / ranks threads (at least one).
  const int threads =
      scenario_->execution.num_threads > 0 ? scenario_->execution.num_threads : std::max(1, dev.host_cores / ranks);
  const double demand = static_cast<double>(ranks) * threads * busy_fraction_;
  return demand <= dev.host_cores ? 1.0 : dev.host_cores / demand;
}

double CostModel::compute_share() const {
  const DeviceProfile& dev = scenario_->cluster.device;
  const double share = dev.compute_share > 0 ? dev.compute_share : 1.0;
  const double t = core_time_share();
  return t < 1.0 ? share * std::min(1.0, dev.oversubscribed_efficiency * t) : share;
}

double CostModel::elementwise_time(double bytes) const {
  if (bytes <= 0) return 0;
  return std::max(elementwise_time_raw(bytes), scenario_->cluster.device.kernel_launch_us * kUs);
}

NetworkModel CostModel::network() const {
  return NetworkModel(scenario_->cluster, core_time_share());
}

CommGroup CostModel::tp_group() const {
  const int gpn = std::max(1, scenario_->cluster.gpus_per_node);
  return CommGroup{layout_->tp, std::min(layout_->tp, gpn), 0};
}

CommGroup CostModel::dp_group() const {
  const Layout& L = *layout_;
  const int gpn = std::max(1, scenario_->cluster.gpus_per_node);
  // DP ranks are tp apart: a node holds max(1, gpn / tp) of them (all, when tp·dp fits a node).
  const int per_node = std::clamp(gpn / std::max(1, L.tp), 1, std::max(1, L.dp));
  return CommGroup{L.dp, per_node, 0};
}

double CostModel::p2p_time(int64_t bytes, bool inter_node) const {
  const Layout& L = *layout_;
  // A stage's tp·dp GPUs all send to the next stage at once; those of one node share its NICs.
  const int crossing = std::min(std::max(1, scenario_->cluster.gpus_per_node), L.tp * L.dp);
  return network().p2p(static_cast<double>(bytes), inter_node, crossing);
}

double CostModel::collective_latency(bool inter_node) const {
  const CommGroup g{2, inter_node ? 1 : 2, 0};
  return network().step_latency(g);
}

double CostModel::allreduce_time(int64_t bytes, int group, bool inter_node, CollectiveAlgo algo) const {
  return network().allreduce(static_cast<double>(bytes), CommGroup{group, inter_node ? 1 : group, 0}, algo);
}

double CostModel::reduce_scatter_time(int64_t bytes, int group, bool inter_node) const {
  return network().reduce_scatter(static_cast<double>(bytes), CommGroup{group, inter_node ? 1 : group, 0});
}

double CostModel::allgather_time(int64_t bytes, int group, bool inter_node) const {
  return reduce_scatter_time(bytes, group, inter_node);
}

bool CostModel::tp_group_inter_node() const {
  return layout_->tp > std::max(1, scenario_->cluster.gpus_per_node);
}

bool CostModel::dp_group_inter_node() const {
  if (layout_->dp <= 1) return false;
  return layout_->tp * layout_->dp > std::max(1, scenario_->cluster.gpus_per_node);
}

bool CostModel::pp_hop_inter_node(int stage) const {
  const Layout& L = *layout_;
  const int g = std::max(1, scenario_->cluster.gpus_per_node);
  const int stride = L.tp * L.dp;
  const int next = (stage + 1) % L.pp;
  for (int r = 0; r < stride; ++r)
    if (node_of(stage * stride + r, g) != node_of(next * stride + r, g)) return true;
  return false;
}

// ---------------------------------------------------------------------------------------------
// Per-chunk costs.

namespace {

// A sequence of kernels: device time and kernel count per part (fwd, bwd-input, bwd-weight).
struct Seq {
  OpTimes raw;
  OpTimes kernels;
  Seq& operator+=(const Seq& o) {
    raw += o.raw;
    kernels += o.kernels;
    return *this;
  }
  // Asynchronous launches overlap execution: a part takes its device time or its host time (its
  // launches plus `host_s` of other host work in the forward and in the input-gradient part).
  OpTimes finish(double launch_s, double host_s = 0) const {
    return OpTimes{std::max(raw.fwd, kernels.fwd * launch_s + host_s),
                   std::max(raw.bwd_input, kernels.bwd_input * launch_s + host_s),
                   std::max(raw.bwd_weight, kernels.bwd_weight * launch_s)};
  }
};

// Times of one transformer layer on one GPU (incl. its exposed TP collectives).
struct LayerTimes {
  OpTimes total;
  double core_fwd = 0;  // attention core forward (selective recompute replays it)
};

}  // namespace

// The kernels of one microbatch on one GPU, as sequences (CostModel::chunk() sums them).
class ChunkKernels {
 public:
  explicit ChunkKernels(const CostModel& cm)
      : cm_(cm), sc_(cm.scenario()), dev_(sc_.cluster.device), d_(dims_of(sc_, cm.layout())) {
    const NetworkModel net = cm.network();
    act_bytes_ = d_.m() * d_.h * d_.e;
    local_act_ = d_.b * d_.s_local() * d_.h * d_.e;
    tp_ar_ = cm.layout().tp > 1 ? net.allreduce(act_bytes_, cm.tp_group()) : 0;
    small_ar_ = cm.layout().tp > 1 ? net.allreduce(d_.m() * 4, cm.tp_group()) : 0;
    launch_ = dev_.kernel_launch_us * kUs;
    rounds_ = cm.rounds_gemm_operands();
  }
  const Dims& dims() const { return d_; }
  double launch() const { return launch_; }

  // A column/row-parallel GEMM (M×K)·(K×N): forward, input-gradient and weight-gradient kernels.
  // Where the executor rounds fp32 operands to bf16 in passes of their own (rounds_gemm_operands),
  // the forward rounds x (M×K) and W (N×K), the input gradient dy (M×N) and W, the weight gradient x.
  Seq gemm3(double M, double N, double K) const {
    Seq o{{cm_.gemm_time_raw(M, N, K), cm_.gemm_time_raw(M, K, N), cm_.gemm_time_raw(K, N, M)}, {1, 1, 1}};
    if (rounds_) o += Seq{{rounding(M * K + N * K), rounding(M * N + N * K), rounding(M * K)}, {2, 2, 1}};
    return o;
  }
  double rounding(double elements) const { return rounds_ ? cm_.bf16_rounding_time(elements) : 0; }
  // Element-wise kernel moving `bytes` forward; its backward takes elementwise_backward_ratio
  // times as long (2 on a GPU: about twice the bytes; measured for the CPU executor's kernels).
  Seq elem(double bytes) const {
    return Seq{{cm_.elementwise_time_raw(bytes), cm_.elementwise_time_raw(dev_.elementwise_backward_ratio * bytes), 0},
               {1, 1, 0}};
  }
  // TP "all-reduce points" (each an all-reduce, or an RS+AG pair with SP) in forward and backward.
  Seq tp_point(double fwd_count, double bwd_count) const {
    if (cm_.layout().tp <= 1) return Seq{};
    return Seq{{fwd_count * tp_ar_, bwd_count * tp_ar_, 0}, {fwd_count, bwd_count, 0}};
  }
  Seq norm() const { return elem(2 * local_act_); }
  Seq mlp() const {
    const double t = d_.t;
    Seq o = gemm3(d_.m(), d_.fc1_out / t, d_.h);
    o += elem(d_.m() * (d_.fc1_out + d_.ffn) / t * d_.e);  // bias + activation (GELU, or SwiGLU gate)
    o += gemm3(d_.m(), d_.h, d_.ffn / t);
    return o;
  }
  Seq attention_core() const;
  Seq layer() const;
  LayerTimes layer_times() const;
  Seq projection() const;
  OpTimes embedding() const;

 private:
  const CostModel& cm_;
  const Scenario& sc_;
  const DeviceProfile& dev_;
  Dims d_;
  double act_bytes_ = 0, local_act_ = 0, tp_ar_ = 0, small_ar_ = 0, launch_ = 0;
  bool rounds_ = false;  // CostModel::rounds_gemm_operands()
};

// Attention core: QKᵀ and A·V as batched GEMMs at attention_efficiency.
// - Without flash attention (Megatron's unfused path: baddbmm, fused scale-mask-softmax kernel,
//   dropout, bmm) the s×s scores go through memory: the softmax reads and writes them (2e bytes an
//   element), the dropout reads them and writes its output and a 1-byte mask (2e + 1). Backward:
//   attention_backward_ratio × the forward (2 on a GPU: twice the GEMM work and score traffic).
// - FlashAttention is one kernel that keeps the scores on chip; its backward recomputes QKᵀ and
//   the softmax: 5 matmuls to the forward's 2 (Dao 2023, FlashAttention-2, §3.1.2) = 2.5× the
//   forward on a GPU (scaled by the device's attention_backward_ratio / 2).
Seq ChunkKernels::attention_core() const {
  const double heads = d_.b * d_.nh / d_.t;
  if (dev_.host_cores > 0) {
    // eellm's own CPU executor (profiles with host_cores, measured by `eellm calibrate`): its core
    // GEMMs at attention_efficiency of peak and a softmax moving the scores twice, no dropout — the
    // pricing fidelity/calibrate.cpp inverts to measure attention_efficiency. The peak is the GEMM
    // math's: in bf16 math the executor's attention products are bf16 too.
    // In bf16 math its own measured figures where the profile has them, and the rounding passes.
    auto in_math = [&](double bf16, double fp32) { return rounds_ && bf16 > 0 ? bf16 : fp32; };
    const double eff = in_math(dev_.attention_efficiency_bf16, dev_.attention_efficiency);
    const double bwd_ratio = in_math(dev_.attention_backward_ratio_bf16, dev_.attention_backward_ratio);
    const double flops = 2 * (2 * heads * d_.s * d_.s * d_.kv);
    const double fwd = flops / (cm_.gemm_peak_flops() * cm_.compute_share() * std::max(1e-6, eff)) +
                       cm_.elementwise_time_raw(2 * heads * d_.s * d_.s * d_.e);
    const Bf16AttentionRounding r =
        bf16_attention_rounding(d_.m(), (d_.nh + 2 * d_.g) * d_.kv / d_.t, d_.nh * d_.kv / d_.t, heads, d_.s);
    return Seq{{fwd + rounding(r.fwd), bwd_ratio * fwd + rounding(r.bwd), 0}, {3, 5, 0}};
  }
  // The batched GEMMs through the GEMM model (heads stacked along M): QKᵀ (s×kv)·(kv×s) has the
  // head dimension as its K, A·V (s×s)·(s×kv) as its N — the skinny shapes the shape term prices;
  // attention_efficiency is what the batched kernels reach beyond that.
  const double gemm = (cm_.gemm_time_raw(heads * d_.s, d_.s, d_.kv) + cm_.gemm_time_raw(heads * d_.s, d_.kv, d_.s)) /
                      std::max(1e-6, dev_.attention_efficiency);
  if (sc_.model.use_flash_attn) {
    const double fwd = gemm;
    return Seq{{fwd, 1.25 * dev_.attention_backward_ratio * fwd, 0}, {1, 2, 0}};
  }
  const double scores = heads * d_.s * d_.s;
  const double fwd = gemm + cm_.elementwise_time_raw(scores * (4 * d_.e + 1));
  return Seq{{fwd, dev_.attention_backward_ratio * fwd, 0}, {4, 6, 0}};
}

Seq ChunkKernels::layer() const {
  const double t = d_.t, m = d_.m();
  Seq o = norm();
  o += gemm3(m, (d_.nh + 2 * d_.g) * d_.kv / t, d_.h);
  if (sc_.model.position_embedding_type == PositionEmbedding::kRope)
    o += elem(2 * m * (d_.nh + d_.g) * d_.kv / t * d_.e);
  o += attention_core();
  o += gemm3(m, d_.h, d_.nh * d_.kv / t);
  o += elem(3 * local_act_);  // bias + residual add
  o += norm();
  o += mlp();
  o += elem(3 * local_act_);
  o += tp_point(2, 2);
  return o;
}

LayerTimes ChunkKernels::layer_times() const {
  const double overhead = dev_.per_layer_overhead_us * kUs;
  LayerTimes lt;
  // On a GPU the host's per-layer work (Python, framework bookkeeping) runs ahead of the device,
  // like the launches: it shows only when it exceeds the kernels' time. On eellm's CPU executor
  // (host_cores profiles) the host is the device: it adds.
  const bool cpu = dev_.host_cores > 0;
  lt.total = layer().finish(launch_, cpu ? 0.0 : overhead);
  if (cpu) {
    lt.total.fwd += overhead;
    lt.total.bwd_input += overhead;
  }
  lt.core_fwd = attention_core().finish(launch_).fwd;
  return lt;
}

// Output projection + vocab-parallel cross-entropy (logits kept in fp32 for backward).
Seq ChunkKernels::projection() const {
  const double t = d_.t, m = d_.m();
  Seq o = gemm3(m, d_.V / t, d_.h);
  o += elem(m * d_.V / t * (d_.e + 4));
  if (cm_.layout().tp > 1) {
    // Three tiny all-reduces of b·s fp32 (max, sum of exp, target logit) plus the input-gradient
    // all-reduce (or the SP all-gather/reduce-scatter) of the head's input.
    o += Seq{{3 * small_ar_ + (d_.sp ? tp_ar_ / 2 : 0), tp_ar_ * (d_.sp ? 0.5 : 1.0), 0}, {d_.sp ? 4.0 : 3.0, 1, 0}};
  }
  return o;
}

// Lookup (+ position add) forward, then the vocab-parallel all-reduce (reduce-scatter with SP);
// backward is the weight gradient's scatter-add.
OpTimes ChunkKernels::embedding() const {
  Seq emb{{cm_.elementwise_time_raw(2 * act_bytes_), 0, cm_.elementwise_time_raw(3 * act_bytes_)}, {1, 0, 1}};
  if (cm_.layout().tp > 1) emb += Seq{{d_.sp ? tp_ar_ / 2 : tp_ar_, 0, 0}, {1, 0, 0}};
  return emb.finish(launch_);
}

ChunkCosts CostModel::chunk(int virtual_stage) const {
  const ChunkLayout& cl = layout_->chunks[static_cast<size_t>(virtual_stage)];
  const DeviceProfile& dev = scenario_->cluster.device;
  const ChunkKernels k(*this);
  const Dims& d = k.dims();
  ChunkCosts cc;
  cc.virtual_stage = virtual_stage;
  const LayerTimes lt = k.layer_times();
  cc.per_layer = lt.total;
  const int nl = cl.num_layers;
  cc.backbone = OpTimes{lt.total.fwd * nl, lt.total.bwd_input * nl, lt.total.bwd_weight * nl};
  cc.backbone_flops = scaled(layer_flops(d), nl / d.t);
  if (cl.has_embedding) {
    cc.embedding = k.embedding();
    cc.backbone += cc.embedding;
  }
  if (cl.has_final_head) {
    Seq head = k.norm();
    head += k.projection();
    cc.final_head = head.finish(k.launch());
    cc.backbone += cc.final_head;
    cc.backbone_flops += scaled(projection_flops(d), 1 / d.t);
  }
  const ExitSpec& x = scenario_->exits;
  for (size_t i = 0; i < cl.exits.size(); ++i) {
    OpTimes o;
    Flops f;
    if (x.use_exit_block) {
      o += lt.total;
      f += scaled(layer_flops(d), 1 / d.t);
    }
    Seq rest;
    if (x.use_exit_norm) rest += k.norm();
    if (x.use_exit_mlp) {
      rest += k.mlp();
      rest += k.tp_point(1, 1);
      f += scaled(mlp_flops(d), 1 / d.t);
    }
    rest += k.projection();
    o += rest.finish(k.launch());
    // Fitted residual per head (framework work the kernels do not show: loss bookkeeping, the
    // head's small ops), charged like per_layer_overhead_us.
    o.fwd += dev.per_exit_overhead_us * kUs;
    o.bwd_input += dev.per_exit_overhead_us * kUs;
    f += scaled(projection_flops(d), 1 / d.t);
    cc.exits.push_back(o);
    cc.exit_flops.push_back(f);
  }
  // Selective recompute (Korthikanti et al. 2022 §4.2) replays the attention core only; full
  // recompute the whole forward of every layer.
  const RecomputeGranularity r = scenario_->parallel.recompute_granularity;
  cc.recompute_fwd = r == RecomputeGranularity::kSelective ? lt.core_fwd * nl
                     : r == RecomputeGranularity::kFull    ? lt.total.fwd * nl
                                                           : 0.0;
  cc.p2p_bytes = static_cast<int64_t>(std::llround(d.b * d.s_local() * d.h * d.e));
  return cc;
}

// ---------------------------------------------------------------------------------------------
// Memory.

// One exit head's own parameters per GPU (block, norm, MLP, untied output weights); a tied head
// reads the word embedding.
static int64_t exit_head_params(const ModelSpec& m, const ExitSpec& x, const Layout& L) {
  const LayerParams lp = layer_params(m, L);
  const int64_t tp = L.tp;
  int64_t p = 0;
  if (x.use_exit_block) p += lp.per_gpu(static_cast<int>(tp));
  if (x.use_exit_norm) p += norm_params(m);
  if (x.use_exit_mlp) p += lp.mlp_sharded / tp + lp.mlp_replicated;
  if (x.untie_exit_output_weights) p += static_cast<int64_t>(L.padded_vocab_size) * m.hidden_size / tp;
  return p;
}

int64_t CostModel::stage_params(int stage) const {
  const Layout& L = *layout_;
  const ModelSpec& m = scenario_->model;
  const ExitSpec& x = scenario_->exits;
  const int64_t h = m.hidden_size, V = L.padded_vocab_size, tp = L.tp;
  const LayerParams lp = layer_params(m, L);
  const int64_t max_pos = m.max_position_embeddings > 0 ? m.max_position_embeddings : m.seq_length;
  const bool learned = m.position_embedding_type == PositionEmbedding::kLearnedAbsolute;
  const bool tied = !m.untie_embeddings_and_output_weights;
  int64_t p = 0;
  bool has_word_embedding = false;
  bool needs_tied_copy = false;
  for (int c = 0; c < L.vp; ++c) {
    const ChunkLayout& cl = L.chunk(stage, c);
    p += lp.per_gpu(static_cast<int>(tp)) * cl.num_layers;
    if (cl.has_embedding) {
      p += V * h / tp + (learned ? max_pos * h : 0);
      has_word_embedding = true;
    }
    if (cl.has_final_head) {
      p += norm_params(m);
      if (tied)
        needs_tied_copy = true;
      else
        p += V * h / tp;
    }
    p += exit_head_params(m, x, L) * static_cast<int64_t>(cl.exits.size());
    if (!cl.exits.empty() && !x.untie_exit_output_weights) needs_tied_copy = true;
  }
  // A tied head on a stage without the embedding keeps its own copy of the word embedding, kept
  // equal by the embedding-group all-reduce.
  if (needs_tied_copy && !has_word_embedding) p += V * h / tp;
  return p;
}

int CostModel::max_microbatches_in_flight(int stage) const {
  const Layout& L = *layout_;
  const int mbs = L.num_microbatches;
  switch (L.schedule) {
    case ScheduleKind::kNoPipelining:
      return 1;
    case ScheduleKind::kGPipe:
      return mbs;
    case ScheduleKind::kInterleaved1F1B: {
      // Megatron: warm-up of (pp − rank − 1)·2 + (vp − 1)·pp chunk-microbatches, plus the one in
      // the steady state; each chunk holds 1/vp of the stage's layers.
      const int chunk_mbs = std::min((L.pp - stage - 1) * 2 + (L.vp - 1) * L.pp + 1, mbs * L.vp);
      return (chunk_mbs + L.vp - 1) / L.vp;
    }
    case ScheduleKind::k1F1B:
    case ScheduleKind::kZBH1:
    case ScheduleKind::kEE1F1B:
    case ScheduleKind::kEEFill:
    case ScheduleKind::kEETuning:
      return std::min(L.pp - stage, mbs);
  }
  return std::min(L.pp - stage, mbs);
}

StageMemory CostModel::stage_memory(int stage) const {
  const Layout& L = *layout_;
  const Scenario& sc = *scenario_;
  StageMemory mem;
  mem.params = stage_params(stage);
  const bool mixed = sc.training.params_dtype != DType::kFP32;
  const bool dist = sc.parallel.use_distributed_optimizer;
  // EE-Tuning freezes the backbone: only the exit heads of the stages it loads
  // (--tune-exit-pipeline-parallel-size) have gradients and optimizer state; the others load nothing.
  const int tuned = sc.parallel.tune_exit_pipeline_parallel_size;
  const bool tuning = L.schedule == ScheduleKind::kEETuning;
  if (tuning && tuned > 0 && stage >= tuned) mem.params = 0;
  double P = static_cast<double>(mem.params);
  if (tuning && mem.params > 0) {
    int64_t exits = 0;
    for (int c = 0; c < L.vp; ++c) exits += static_cast<int64_t>(L.chunk(stage, c).exits.size());
    P = static_cast<double>(exits * exit_head_params(sc.model, sc.exits, L));
  }
  // Megatron's accounting (Rajbhandari et al. 2020's 2 + 2 + 12 for fp16; Megatron-LM's
  // distributed-optimizer doc table for the rest): 16-bit weights, gradients in the dtype of the
  // main-grad buffer (grad_bytes_per_param()), 12 bytes of fp32 master weights and Adam m, v; fp32
  // training: 4 + 4 + 8. The distributed optimizer shards the optimizer part over dp.
  mem.weights_bytes = static_cast<int64_t>(static_cast<double>(mem.params) * (mixed ? 2 : 4));
  mem.grads_bytes = static_cast<int64_t>(P * grad_bytes_per_param());
  const double opt = mixed ? 12 : 8;
  mem.optimizer_bytes = static_cast<int64_t>(std::ceil(P * opt / (dist ? L.dp : 1)));

  int64_t act = 0, logit_bytes = 0;
  for (int c = 0; c < L.vp; ++c) {
    ChunkActivation ca = chunk_activation(c * L.pp + stage);
    // EE-Tuning runs the frozen backbone without autograd: only the exit heads keep activations.
    if (tuning)
      ca.activation_bytes -=
          layer_activation(dims_of(sc, L), sc.parallel.recompute_granularity) * L.chunk(stage, c).num_layers;
    if (tuning && tuned > 0 && stage >= tuned) ca = ChunkActivation{};
    act += ca.activation_bytes;
    logit_bytes += ca.logits_bytes;
  }
  mem.activation_bytes_per_microbatch = act;
  mem.exit_logits_bytes_per_microbatch = logit_bytes;
  mem.max_microbatches_in_flight = max_microbatches_in_flight(stage);
  if (L.schedule == ScheduleKind::kInterleaved1F1B) mem.held_activation_bytes = interleaved_held_bytes(stage);
  return mem;
}

ChunkActivation CostModel::chunk_activation(int virtual_stage) const {
  const Layout& L = *layout_;
  const Dims d = dims_of(*scenario_, L);
  const ExitSpec& x = scenario_->exits;
  const ChunkLayout& cl = L.chunks[static_cast<size_t>(virtual_stage)];
  const double local_act = d.b * d.s_local() * d.h * d.e;
  const double logits = d.b * d.s * d.V / d.t * 4;
  ChunkActivation ca;
  ca.activation_bytes = layer_activation(d, scenario_->parallel.recompute_granularity) * cl.num_layers;
  if (cl.has_final_head) {
    ca.activation_bytes += static_cast<int64_t>(2 * local_act);  // final norm input + projection input
    ca.logits_bytes += static_cast<int64_t>(logits);
  }
  for (size_t i = 0; i < cl.exits.size(); ++i) {
    // Exit heads are not checkpointed: a block stores a full layer's activations.
    if (x.use_exit_block) ca.activation_bytes += layer_activation(d, RecomputeGranularity::kNone);
    if (x.use_exit_norm) ca.activation_bytes += static_cast<int64_t>(local_act);
    if (x.use_exit_mlp) ca.activation_bytes += mlp_activation(d);
    ca.activation_bytes += static_cast<int64_t>(local_act);
    ca.logits_bytes += static_cast<int64_t>(logits);
  }
  return ca;
}

// Megatron's interleaved order (sim/schedule.cpp builds the same): virtual microbatch k runs chunk
// (k mod pp·vp)/pp forward (reversed for backward); w warm-up forwards, then forward k + w with
// backward k, then the cool-down backwards. A forward holds its chunk's bytes until its backward
// ends, so the peak is the largest sum after a forward.
int64_t CostModel::interleaved_held_bytes(int stage) const {
  const Layout& L = *layout_;
  const int pp = L.pp, vp = L.vp, total = L.num_microbatches * vp;
  const int w = L.num_microbatches == pp ? total : std::min((pp - stage - 1) * 2 + (vp - 1) * pp, total);
  std::vector<int64_t> bytes(static_cast<size_t>(vp));
  for (int c = 0; c < vp; ++c) {
    const ChunkActivation ca = chunk_activation(c * pp + stage);
    bytes[static_cast<size_t>(c)] = ca.activation_bytes + ca.logits_bytes;
  }
  auto fwd = [&](int k) { return bytes[static_cast<size_t>((k % (pp * vp)) / pp)]; };
  auto bwd = [&](int k) { return bytes[static_cast<size_t>(vp - 1 - (k % (pp * vp)) / pp)]; };
  int64_t held = 0, peak = 0;
  for (int k = 0; k < w; ++k) peak = std::max(peak, held += fwd(k));
  for (int i = 0; i < total - w; ++i) {
    peak = std::max(peak, held += fwd(w + i));
    held -= bwd(i);
  }
  return peak;
}

// ---------------------------------------------------------------------------------------------
// Communication.

// Megatron reduces (and keeps) the main-grad buffer: fp32 for bf16 and fp32 training (bf16 forces
// accumulate_allreduce_grads_in_fp32), fp16 for fp16 training unless
// --accumulate-allreduce-grads-in-fp32.
int CostModel::grad_bytes_per_param() const {
  const TrainingSpec& t = scenario_->training;
  return t.params_dtype == DType::kFP16 && !t.accumulate_allreduce_grads_in_fp32 ? 2 : 4;
}

int64_t CostModel::dp_grad_bytes(int stage) const {
  return stage_params(stage) * grad_bytes_per_param();
}

double CostModel::dp_sync_time(int stage) const {
  const Layout& L = *layout_;
  if (L.dp <= 1) return 0;
  const NetworkModel net = network();
  const CommGroup g = dp_group();
  const double grads = static_cast<double>(dp_grad_bytes(stage));
  if (scenario_->parallel.use_distributed_optimizer) {
    const double params = static_cast<double>(stage_params(stage)) * activation_element_bytes();
    return net.reduce_scatter(grads, g) + net.allgather(params, g);
  }
  return net.allreduce(grads, g);
}

std::vector<int> CostModel::embedding_group_stages() const {
  const Layout& L = *layout_;
  const ModelSpec& m = scenario_->model;
  std::vector<int> stages;
  if (L.pp <= 1) return stages;
  const bool tied_final = !m.untie_embeddings_and_output_weights;
  const bool tied_exits = !scenario_->exits.untie_exit_output_weights;
  for (int s = 0; s < L.pp; ++s) {
    bool in = false;
    for (int c = 0; c < L.vp; ++c) {
      const ChunkLayout& cl = L.chunk(s, c);
      if (cl.has_final_head && tied_final) in = true;
      if (tied_exits && !cl.exits.empty()) in = true;
    }
    if (in || s == 0) stages.push_back(s);
  }
  if (stages.size() <= 1) stages.clear();  // only stage 0: nothing to keep in sync
  return stages;
}

int64_t CostModel::embedding_group_bytes() const {
  if (embedding_group_stages().empty()) return 0;
  const Layout& L = *layout_;
  return static_cast<int64_t>(L.padded_vocab_size) * scenario_->model.hidden_size / L.tp * grad_bytes_per_param();
}

double CostModel::embedding_group_time() const {
  const std::vector<int> g = embedding_group_stages();
  if (g.empty()) return 0;
  const Layout& L = *layout_;
  const int gpn = std::max(1, scenario_->cluster.gpus_per_node);
  const int stride = L.tp * L.dp;
  const bool inter = node_of(g.front() * stride, gpn) != node_of(g.back() * stride, gpn);
  // One rank per stage; every TP×DP rank of those stages reduces its shard at the same time.
  const CommGroup group{static_cast<int>(g.size()), inter ? 1 : static_cast<int>(g.size()), 0};
  return network().allreduce(static_cast<double>(embedding_group_bytes()), group);
}

int64_t CostModel::tp_bytes_per_microbatch(int stage) const {
  const Layout& L = *layout_;
  if (L.tp <= 1) return 0;
  const Dims d = dims_of(*scenario_, L);
  const double act = d.m() * d.h * d.e;
  const ExitSpec& x = scenario_->exits;
  double points = 0;  // all-reduce-sized collectives, fwd + bwd
  for (int c = 0; c < L.vp; ++c) {
    const ChunkLayout& cl = L.chunk(stage, c);
    points += 4.0 * cl.num_layers;
    if (cl.has_embedding) points += 1;
    if (cl.has_final_head) points += 1;
    for (int idx : cl.exits) {
      (void)idx;
      points += 1 + (x.use_exit_block ? 4 : 0) + (x.use_exit_mlp ? 2 : 0);
    }
  }
  return static_cast<int64_t>(points * act);
}

double CostModel::p2p_activation_time(int stage) const {
  if (layout_->pp <= 1) return 0;
  return p2p_time(chunk(stage).p2p_bytes, pp_hop_inter_node(stage));
}

double CostModel::optimizer_step_time(int stage) const {
  const Scenario& sc = *scenario_;
  const DeviceProfile& dev = sc.cluster.device;
  double params = static_cast<double>(stage_params(stage));
  if (sc.parallel.use_distributed_optimizer) params /= layout_->dp;
  // Bytes a parameter moves in Megatron's optimizer step. Adam itself: read grad, master, m, v;
  // write master, m, v (28). Mixed precision adds the grad-norm pass (read 4) and the copy of the
  // fp32 master weights back to the 16-bit ones (read 4, write 2): 38 for bf16 (fp32 main grads
  // used in place); fp16 first copies its 16-bit grads into fp32 main grads (read 2, write 4) and
  // unscales them with the inf check (read 4, write 4): 52. fp32: the fused Adam alone (28).
  const TrainingSpec& t = sc.training;
  const double mixed_bpp = t.params_dtype == DType::kFP16 && !t.accumulate_allreduce_grads_in_fp32 ? 52.0 : 38.0;
  const double bpp = dev.optimizer_bytes_per_param > 0 ? dev.optimizer_bytes_per_param
                     : t.params_dtype == DType::kFP32  ? 28.0
                                                       : mixed_bpp;
  return elementwise_time(params * bpp);
}

}  // namespace eellm
