// validate_scenario: every range error of every section (collected, not just the first), the
// layout errors of derive_layout, and warnings — most importantly a stage that does not fit device
// memory, with the per-stage figures from the cost model.
#include "model/validate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <numeric>

#include "model/cost_model.h"
#include "model/layout.h"

namespace eellm {

bool Diagnostics::has_errors() const {
  for (const Diagnostic& d : items)
    if (d.severity == Diagnostic::Severity::kError) return true;
  return false;
}

Status Diagnostics::first_error() const {
  for (const Diagnostic& d : items)
    if (d.severity == Diagnostic::Severity::kError) return Status::invalid_argument(d.message);
  return Status::ok();
}

std::string Diagnostics::to_string() const {
  std::string s;
  for (const Diagnostic& d : items) {
    s += d.severity == Diagnostic::Severity::kError ? "error: " : "warning: ";
    s += d.message;
    s += "\n";
  }
  return s;
}

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
std::string num(int v) {
  return std::to_string(v);
}
std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

class Checker {
 public:
  explicit Checker(Diagnostics& d) : diags_(d) {}

  void error(const std::string& field, const std::string& message) {
    add(Diagnostic::Severity::kError, field, message);
  }
  void warning(const std::string& field, const std::string& message) {
    add(Diagnostic::Severity::kWarning, field, message);
  }

  template <typename T>
  void positive(const std::string& field, T v) {
    if (!(v > 0)) error(field, field + " (" + num(v) + ") must be positive");
  }
  template <typename T>
  void non_negative(const std::string& field, T v) {
    if (!(v >= 0)) error(field, field + " (" + num(v) + ") must not be negative");
  }
  // lo < v ≤ hi (open below) or lo ≤ v ≤ hi.
  void in_range(const std::string& field, double v, double lo, double hi, bool open_below, const char* why = "") {
    const bool ok = (open_below ? v > lo : v >= lo) && v <= hi;
    if (!ok)
      error(field,
            field + " (" + num(v) + ") must be in " + (open_below ? "(" : "[") + num(lo) + ", " + num(hi) + "]" + why);
  }
  // v ≤ hi for a size already checked for its sign ("beyond any real system").
  void at_most(const std::string& field, int64_t v, int64_t hi, const char* what) {
    if (v > hi)
      error(field, field + " (" + std::to_string(v) + ") is larger than " + std::to_string(hi) + " " + what +
                       ", beyond any real system");
  }
  // a × b in 64 bits, ≤ hi; false (and an error naming both fields) when it is not.
  bool product(const std::string& field, const std::string& what, int64_t a, int64_t b, int64_t hi) {
    int64_t p = 0;
    if (!__builtin_mul_overflow(a, b, &p) && p <= hi) return true;
    error(field, what + " (" + std::to_string(a) + " × " + std::to_string(b) + ") is larger than " +
                     std::to_string(hi) + ", beyond any real system");
    return false;
  }
  // A finite float in (lo, hi] or [lo, hi].
  void finite_in(const std::string& field, double v, double lo, double hi, bool open_below, const char* why = "") {
    if (!std::isfinite(v))
      error(field, field + " (" + num(v) + ") must be a finite number");
    else
      in_range(field, v, lo, hi, open_below, why);
  }
  // A finite v ≤ hi (its sign is checked elsewhere).
  void finite_at_most(const std::string& field, double v, double hi) {
    if (!std::isfinite(v) || v > hi) error(field, field + " (" + num(v) + ") must be a finite number ≤ " + num(hi));
  }
  bool reported(const std::string& field) const {
    for (const Diagnostic& d : diags_.items)
      if (d.field == field) return true;
    return false;
  }

 private:
  void add(Diagnostic::Severity sev, const std::string& field, const std::string& message) {
    if (sev == Diagnostic::Severity::kError)  // one error per field
      for (const Diagnostic& d : diags_.items)
        if (d.field == field && d.severity == sev) return;
    diags_.items.push_back(Diagnostic{sev, field, message});
  }
  Diagnostics& diags_;
};

void check_model(Checker& c, const ModelSpec& m) {
  c.positive("model.num_layers", m.num_layers);
  c.positive("model.hidden_size", m.hidden_size);
  c.positive("model.num_attention_heads", m.num_attention_heads);
  c.positive("model.seq_length", m.seq_length);
  c.positive("model.vocab_size", m.vocab_size);
  c.non_negative("model.num_query_groups", m.num_query_groups);
  c.non_negative("model.ffn_hidden_size", m.ffn_hidden_size);
  c.non_negative("model.kv_channels", m.kv_channels);
  c.non_negative("model.max_position_embeddings", m.max_position_embeddings);
  c.positive("model.make_vocab_size_divisible_by", m.make_vocab_size_divisible_by);
  c.positive("model.init_method_std", m.init_method_std);
  c.positive("model.layernorm_epsilon", m.layernorm_epsilon);
  if (m.position_embedding_type == PositionEmbedding::kRope) c.positive("model.rotary_base", m.rotary_base);
  if (m.position_embedding_type == PositionEmbedding::kLearnedAbsolute && m.max_position_embeddings > 0 &&
      m.max_position_embeddings < m.seq_length)
    c.error("model.max_position_embeddings", "model.max_position_embeddings (" + num(m.max_position_embeddings) +
                                                 ") is smaller than seq_length (" + num(m.seq_length) +
                                                 "): learned positions cannot cover the sequence");
}

void check_exits(Checker& c, const Scenario& s) {
  const ExitSpec& e = s.exits;
  const int L = s.model.num_layers;
  for (size_t i = 0; i < e.exit_layer_nums.size(); ++i) {
    const int n = e.exit_layer_nums[i];
    const std::string f = "exits.exit_layer_nums[" + std::to_string(i) + "]";
    if (L > 0 && (n < 1 || n > L))
      c.error(f, f + " (" + num(n) + ") is out of range: layers are numbered 1.." + num(L));
  }
  for (size_t i = 0; i < e.exit_layer_weight.size(); ++i)
    c.non_negative("exits.exit_layer_weight[" + std::to_string(i) + "]", e.exit_layer_weight[i]);
  for (size_t i = 0; i < e.exit_layer_weight_init.size(); ++i)
    c.non_negative("exits.exit_layer_weight_init[" + std::to_string(i) + "]", e.exit_layer_weight_init[i]);
  c.non_negative("exits.exit_layer_weight_warmup_iters", e.exit_layer_weight_warmup_iters);
  c.non_negative("exits.final_exit_weight", e.final_exit_weight);
  if (e.exit_layer_nums.empty() &&
      (e.use_exit_norm || e.use_exit_mlp || e.use_exit_block || e.untie_exit_output_weights))
    c.warning("exits", "exit head options are set but exits.exit_layer_nums is empty: the model has no exits");
  if (!e.exit_layer_nums.empty() && !e.exit_layer_weight.empty() &&
      std::all_of(e.exit_layer_weight.begin(), e.exit_layer_weight.end(), [](double w) { return w == 0; }))
    c.warning("exits.exit_layer_weight", "every exit_layer_weight is 0: the exits do not train");
}

void check_parallel(Checker& c, const Scenario& s) {
  const ParallelSpec& p = s.parallel;
  c.positive("parallel.tensor_model_parallel_size", p.tensor_model_parallel_size);
  c.positive("parallel.pipeline_model_parallel_size", p.pipeline_model_parallel_size);
  c.positive("parallel.virtual_pipeline_model_parallel_size", p.virtual_pipeline_model_parallel_size);
  c.non_negative("parallel.data_parallel_size", p.data_parallel_size);
  c.non_negative("parallel.world_size", p.world_size);
  c.non_negative("parallel.ddp_bucket_size", p.ddp_bucket_size);
  if (p.num_fill_warmup_microbatches < -1)
    c.error("parallel.num_fill_warmup_microbatches", "parallel.num_fill_warmup_microbatches (" +
                                                         num(p.num_fill_warmup_microbatches) +
                                                         ") must be ≥ 0, or -1 to derive it");
  if (p.num_fill_cooldown_microbatches < -1)
    c.error("parallel.num_fill_cooldown_microbatches", "parallel.num_fill_cooldown_microbatches (" +
                                                           num(p.num_fill_cooldown_microbatches) +
                                                           ") must be ≥ 0, or -1 to derive it");
  const int64_t gpus = int64_t{s.cluster.num_nodes} * s.cluster.gpus_per_node;  // 64 bits: not yet bounded
  if (p.world_size > 0 && gpus > 0 && p.world_size > gpus)
    c.error("parallel.world_size", "parallel.world_size (" + num(p.world_size) + ") exceeds the cluster's " +
                                       std::to_string(gpus) + " GPUs (" + num(s.cluster.num_nodes) + " nodes × " +
                                       num(s.cluster.gpus_per_node) + ")");
  if (p.fill_explicit_bubbles && s.exits.exit_layer_nums.empty())
    c.warning("parallel.fill_explicit_bubbles",
              "parallel.fill_explicit_bubbles without exits has nothing to fill with");
}

// The device's figures: finite, and within what any real device has.
void check_device(Checker& c, const DeviceProfile& d, DType dt) {
  using namespace bounds;
  const std::string p = "cluster.device.";
  c.finite_in(p + "memory_GiB", d.memory_GiB, 0, kMaxMemoryGiB, true);
  c.finite_in(p + "memory_bandwidth_GBps", d.memory_bandwidth_GBps, kMinBandwidthGBps, kMaxBandwidthGBps, false);
  const double peak = dt == DType::kFP32   ? d.peak_tflops_fp32
                      : dt == DType::kFP16 ? d.peak_tflops_fp16
                                           : d.peak_tflops_bf16;
  const std::string peak_field = p + "peak_tflops_" + to_string(dt);
  if (!(peak > 0))
    c.error(peak_field,
            peak_field + " (" + num(peak) + ") must be positive: training.params_dtype is " + to_string(dt));
  else
    c.finite_in(peak_field, peak, kMinTflops, kMaxTflops, false);
  for (const auto& [key, v] :
       {std::pair{"peak_tflops_fp32", d.peak_tflops_fp32}, std::pair{"peak_tflops_fp16", d.peak_tflops_fp16},
        std::pair{"peak_tflops_bf16", d.peak_tflops_bf16}})
    if (p + key != peak_field) c.finite_in(p + key, v, 0, kMaxTflops, false);
  for (const auto& [key, v] :
       {std::pair{"kernel_launch_us", d.kernel_launch_us}, std::pair{"collective_latency_us", d.collective_latency_us},
        std::pair{"per_layer_overhead_us", d.per_layer_overhead_us},
        std::pair{"per_exit_overhead_us", d.per_exit_overhead_us},
        std::pair{"per_iteration_overhead_us", d.per_iteration_overhead_us},
        std::pair{"nvlink_latency_us", d.nvlink_latency_us}, std::pair{"network_latency_us", d.network_latency_us}})
    c.finite_in(p + key, v, key == std::string("per_layer_overhead_us") ? -kMaxLatencyUs : 0, kMaxLatencyUs, false);
  for (const auto& [key, v] : {std::pair{"gemm_max_efficiency", d.gemm_max_efficiency},
                               std::pair{"elementwise_efficiency", d.elementwise_efficiency},
                               std::pair{"attention_efficiency", d.attention_efficiency},
                               std::pair{"collective_efficiency", d.collective_efficiency}})
    c.finite_in(p + key, v, 0, 1, true);
  c.finite_in(p + "p2p_efficiency", d.p2p_efficiency, 0, 1, false, " (0: collective_efficiency)");
  c.finite_in(p + "attention_efficiency_bf16", d.attention_efficiency_bf16, 0, 1, false, " (0: attention_efficiency)");
  c.finite_in(p + "attention_backward_ratio_bf16", d.attention_backward_ratio_bf16, 0, 100, false,
              " (0: attention_backward_ratio)");
  // Fitted multipliers: positive, and within a few times the nominal figure.
  for (const auto& [key, v] : {std::pair{"elementwise_backward_ratio", d.elementwise_backward_ratio},
                               std::pair{"attention_backward_ratio", d.attention_backward_ratio},
                               std::pair{"large_message_p2p_efficiency", d.large_message_p2p_efficiency},
                               std::pair{"large_message_collective_efficiency", d.large_message_collective_efficiency},
                               std::pair{"compute_share", d.compute_share},
                               std::pair{"oversubscribed_efficiency", d.oversubscribed_efficiency}})
    c.finite_in(p + key, v, 0, 100, true);
  c.finite_in(p + "large_message_KiB", d.large_message_KiB, 0, 1e9, false);
  c.finite_in(p + "gemm_half_efficiency_dim", d.gemm_half_efficiency_dim, 0, 1e6, false);
  c.finite_in(p + "optimizer_bytes_per_param", d.optimizer_bytes_per_param, 0, 1e3, false);
  for (const auto& [key, v] : {std::pair{"nvlink_bandwidth_GBps", d.nvlink_bandwidth_GBps},
                               std::pair{"network_bandwidth_GBps", d.network_bandwidth_GBps}})
    c.finite_in(p + key, v, 0, kMaxBandwidthGBps, false);
  c.non_negative(p + "host_cores", d.host_cores);
  c.at_most(p + "host_cores", d.host_cores, 1048576, "cores");
  for (const auto& [key, v] : {std::pair{"gemm_tile_m", d.gemm_tile_m}, std::pair{"gemm_tile_n", d.gemm_tile_n},
                               std::pair{"num_sms", d.num_sms}}) {
    c.positive(p + key, v);
    c.at_most(p + key, v, 65536, "");
  }
  static const char* const kGemms[] = {"auto", "eigen", "openblas", "onednn", "blis"};
  if (std::find(std::begin(kGemms), std::end(kGemms), d.cpu_gemm) == std::end(kGemms))
    c.error(p + "cpu_gemm", p + "cpu_gemm ('" + d.cpu_gemm + "') must be auto, eigen, openblas, onednn or blis");
}

void check_link(Checker& c, const std::string& field, const LinkSpec& l, bool used) {
  using namespace bounds;
  if (used)
    c.finite_in(field + ".bandwidth_GBps", l.bandwidth_GBps, kMinBandwidthGBps, kMaxBandwidthGBps, false);
  else
    c.finite_in(field + ".bandwidth_GBps", l.bandwidth_GBps, 0, kMaxBandwidthGBps, false);
  c.finite_in(field + ".latency_us", l.latency_us, 0, kMaxLatencyUs, false);
}

void check_cluster(Checker& c, const Scenario& s) {
  const ClusterSpec& k = s.cluster;
  const DeviceProfile& d = k.device;
  if (k.device_name.empty() && d.name.empty() && d.memory_GiB == 0 && d.peak_tflops_fp32 == 0 &&
      d.peak_tflops_fp16 == 0 && d.peak_tflops_bf16 == 0) {
    c.error("cluster",
            "cluster: no device (the scenario has no cluster section, or one naming neither a profile nor "
            "a device): name one, e.g. cluster: {profile: a100-80gb-2x8}");
    return;  // every device figure would be reported as 0
  }
  c.positive("cluster.num_nodes", k.num_nodes);
  c.positive("cluster.gpus_per_node", k.gpus_per_node);
  c.at_most("cluster.gpus_per_node", k.gpus_per_node, bounds::kMaxGpusPerNode, "GPUs");
  if (k.num_nodes > 0 && k.gpus_per_node > 0)
    c.product("cluster.num_nodes", "cluster.num_nodes × gpus_per_node", k.num_nodes, k.gpus_per_node, bounds::kMaxGpus);
  check_device(c, k.device, s.training.params_dtype);
  // A link only matters when some traffic crosses it.
  check_link(c, "cluster.intra_node", k.intra_node, k.gpus_per_node > 1);
  check_link(c, "cluster.inter_node", k.inter_node, k.num_nodes > 1);
  c.non_negative("cluster.nics_per_node", k.nics_per_node);
  c.at_most("cluster.nics_per_node", k.nics_per_node, bounds::kMaxGpusPerNode, "NICs");
  c.finite_in("cluster.inter_node_efficiency", k.inter_node_efficiency, 0, 1, false,
              " (0: the device's collective_efficiency)");
}

void check_training(Checker& c, const TrainingSpec& t) {
  c.positive("training.micro_batch_size", t.micro_batch_size);
  c.positive("training.global_batch_size", t.global_batch_size);
  c.positive("training.train_iters", t.train_iters);
  c.non_negative("training.lr", t.lr);
  c.non_negative("training.min_lr", t.min_lr);
  if (t.min_lr > t.lr)
    c.error("training.min_lr", "training.min_lr (" + num(t.min_lr) + ") is larger than lr (" + num(t.lr) + ")");
  c.non_negative("training.lr_warmup_iters", t.lr_warmup_iters);
  c.non_negative("training.lr_decay_iters", t.lr_decay_iters);
  if (t.train_iters > 0 && t.lr_warmup_iters > t.train_iters)
    c.warning("training.lr_warmup_iters", "training.lr_warmup_iters (" + num(t.lr_warmup_iters) +
                                              ") exceeds train_iters (" + num(t.train_iters) +
                                              "): the learning rate never reaches lr");
  c.non_negative("training.weight_decay", t.weight_decay);
  for (const auto& [field, beta] :
       {std::pair{"training.adam_beta1", t.adam_beta1}, std::pair{"training.adam_beta2", t.adam_beta2}})
    if (!(beta >= 0 && beta < 1)) c.error(field, std::string(field) + " (" + num(beta) + ") must be in [0, 1)");
  c.positive("training.adam_eps", t.adam_eps);
  c.non_negative("training.clip_grad", t.clip_grad);
  c.in_range("training.valid_fraction", t.valid_fraction, 0, 0.9, false, " (a fraction of the data)");
  c.non_negative("training.eval_interval", t.eval_interval);
  c.non_negative("training.eval_iters", t.eval_iters);
  if (t.eval_interval > 0 && t.eval_iters <= 0)
    c.error("training.eval_iters",
            "training.eval_iters (" + num(t.eval_iters) + ") must be positive when eval_interval is set");
  c.non_negative("training.save_interval", t.save_interval);
  c.non_negative("training.log_interval", t.log_interval);
}

void check_inference(Checker& c, const Scenario& s) {
  const InferenceSpec& i = s.inference;
  c.positive("inference.batch_size", i.batch_size);
  c.positive("inference.prompt_length", i.prompt_length);
  c.non_negative("inference.max_new_tokens", i.max_new_tokens);
  c.in_range("inference.early_exit_thres", i.early_exit_thres, 0, 1, true);
  c.positive("inference.speculative_draft_tokens", i.speculative_draft_tokens);
  c.non_negative("inference.max_pending_recompute", i.max_pending_recompute);
  const size_t ne = s.exits.exit_layer_nums.size();
  if (!i.exit_rates.empty()) {
    if (i.exit_rates.size() != ne)
      c.error("inference.exit_rates", "inference.exit_rates has " + std::to_string(i.exit_rates.size()) +
                                          " entries; give one per exit (" + std::to_string(ne) + ")");
    for (size_t k = 0; k < i.exit_rates.size(); ++k)
      c.in_range("inference.exit_rates[" + std::to_string(k) + "]", i.exit_rates[k], 0, 1, false);
    const double sum = std::accumulate(i.exit_rates.begin(), i.exit_rates.end(), 0.0);
    if (sum > 1 + 1e-9)
      c.error("inference.exit_rates",
              "inference.exit_rates sum to " + num(sum) + "; at most 1 of the tokens can exit early");
  }
  if (i.method == InferenceMethod::kSpeculative && (i.draft_exit < 0 || static_cast<size_t>(i.draft_exit) >= ne))
    c.error("inference.draft_exit", "inference.draft_exit (" + num(i.draft_exit) + ") must index an exit (0.." +
                                        num(static_cast<int>(ne) - 1) + ") for the speculative method");
  const int max_pos = s.model.max_position_embeddings > 0 ? s.model.max_position_embeddings : s.model.seq_length;
  if (s.model.position_embedding_type == PositionEmbedding::kLearnedAbsolute && max_pos > 0 &&
      int64_t{i.prompt_length} + i.max_new_tokens > max_pos)
    c.error("inference.max_new_tokens", "inference.prompt_length (" + num(i.prompt_length) + ") + max_new_tokens (" +
                                            num(i.max_new_tokens) + ") exceeds the " + num(max_pos) +
                                            " learned positions of the model");
}

// What-if cost inputs (cluster.cost, the device's power, training.train_tokens): finite, and
// non-negative where zero turns a term off; PUE ≥ 1.
void check_cost(Checker& c, const Scenario& s) {
  const CostSpec& k = s.cluster.cost;
  const DeviceProfile& d = s.cluster.device;
  const std::pair<const char*, double> fields[] = {
      {"cluster.cost.price_per_gpu_hour_usd", k.price_per_gpu_hour_usd},
      {"cluster.cost.node_overhead_W", k.node_overhead_W},
      {"cluster.cost.node_mtbf_hours", k.node_mtbf_hours},
      {"cluster.cost.checkpoint_write_GBps_per_node", k.checkpoint_write_GBps_per_node},
      {"cluster.cost.restart_s", k.restart_s},
      {"cluster.device.power_busy_W", d.power_busy_W},
      {"cluster.device.power_idle_W", d.power_idle_W},
      {"training.train_tokens", s.training.train_tokens}};
  for (const auto& [field, v] : fields) {
    if (!std::isfinite(v))
      c.error(field, std::string(field) + " (" + num(v) + ") must be a finite number");
    else
      c.non_negative(field, v);
  }
  if (!(std::isfinite(k.pue) && k.pue >= 1))
    c.error("cluster.cost.pue",
            "cluster.cost.pue (" + num(k.pue) + ") must be a finite number ≥ 1 (facility power / IT power)");
  if (d.power_idle_W > d.power_busy_W)
    c.warning("cluster.device.power_idle_W", "cluster.device.power_idle_W (" + num(d.power_idle_W) +
                                                 ") exceeds power_busy_W (" + num(d.power_busy_W) + ")");
}

// Upper bounds of the model's sizes (their signs are check_model's).
void check_model_bounds(Checker& c, const ModelSpec& m) {
  using namespace bounds;
  c.at_most("model.num_layers", m.num_layers, kMaxLayers, "layers");
  c.at_most("model.hidden_size", m.hidden_size, kMaxHidden, "");
  c.at_most("model.num_attention_heads", m.num_attention_heads, kMaxHeads, "heads");
  c.at_most("model.num_query_groups", m.num_query_groups, kMaxHeads, "groups");
  c.at_most("model.kv_channels", m.kv_channels, kMaxHeads, "channels");
  c.at_most("model.ffn_hidden_size", m.ffn_hidden_size, kMaxFfnHidden, "");
  c.at_most("model.seq_length", m.seq_length, kMaxSeqLength, "tokens");
  c.at_most("model.max_position_embeddings", m.max_position_embeddings, kMaxSeqLength, "positions");
  c.at_most("model.vocab_size", m.vocab_size, kMaxVocab, "tokens");
  c.at_most("model.make_vocab_size_divisible_by", m.make_vocab_size_divisible_by, kMaxVocabMultiple, "");
  c.finite_in("model.init_method_std", m.init_method_std, 0, 10, true);
  c.finite_in("model.layernorm_epsilon", m.layernorm_epsilon, 0, 1, true);
  c.finite_in("model.rotary_base", m.rotary_base, 0, 1e12, m.position_embedding_type == PositionEmbedding::kRope);
}

// The parallel sizes and every product the layout forms (tp·pp, micro batch·dp, pp·vp, vocab
// multiple·tp, microbatches), in 64 bits: derive_layout computes them in int.
void check_parallel_bounds(Checker& c, const Scenario& s) {
  using namespace bounds;
  const ParallelSpec& p = s.parallel;
  const TrainingSpec& t = s.training;
  const int64_t tp = p.tensor_model_parallel_size, pp = p.pipeline_model_parallel_size;
  const int64_t vp = p.virtual_pipeline_model_parallel_size;
  c.at_most("parallel.tensor_model_parallel_size", tp, kMaxParallel, "");
  c.at_most("parallel.pipeline_model_parallel_size", pp, kMaxParallel, "");
  c.at_most("parallel.virtual_pipeline_model_parallel_size", vp, kMaxVirtualStages, "");
  c.at_most("parallel.data_parallel_size", p.data_parallel_size, kMaxParallel, "");
  c.at_most("parallel.world_size", p.world_size, kMaxGpus, "GPUs");
  c.at_most("parallel.layer_partition", static_cast<int64_t>(p.layer_partition.size()), kMaxParallel, "entries");
  for (size_t i = 0; i < p.layer_partition.size() && i < 64; ++i)
    c.at_most("parallel.layer_partition[" + std::to_string(i) + "]", p.layer_partition[i], kMaxLayers, "layers");
  c.at_most("training.micro_batch_size", t.micro_batch_size, kMaxBatch, "sequences");
  c.at_most("training.global_batch_size", t.global_batch_size, kMaxBatch, "sequences");
  if (tp <= 0 || pp <= 0 || vp <= 0 || t.micro_batch_size <= 0 || t.global_batch_size <= 0) return;
  const bool ok =
      c.product("parallel.tensor_model_parallel_size",
                "parallel.tensor_model_parallel_size × pipeline_model_parallel_size", tp, pp, kMaxGpus) &
      c.product("parallel.virtual_pipeline_model_parallel_size",
                "parallel.pipeline_model_parallel_size × virtual_pipeline_model_parallel_size", pp, vp, kMaxParallel) &
      c.product("model.make_vocab_size_divisible_by", "model.make_vocab_size_divisible_by × tensor_model_parallel_size",
                std::max(1, s.model.make_vocab_size_divisible_by), tp, kMaxVocab);
  const int64_t world = p.world_size > 0 ? p.world_size : int64_t{s.cluster.num_nodes} * s.cluster.gpus_per_node;
  const int64_t dp = p.data_parallel_size > 0 ? p.data_parallel_size : world / (tp * pp);
  if (!ok || dp <= 0 || world > kMaxGpus) return;
  if (!c.product("training.micro_batch_size", "training.micro_batch_size × data_parallel_size", t.micro_batch_size, dp,
                 kMaxBatch))
    return;
  const int64_t microbatches = t.global_batch_size / (t.micro_batch_size * dp);
  if (microbatches > kMaxMicrobatches) {
    c.error("training.global_batch_size", "training.global_batch_size (" + num(t.global_batch_size) + ") makes " +
                                              std::to_string(microbatches) + " microbatches per iteration, more than " +
                                              std::to_string(kMaxMicrobatches));
    return;
  }
  c.product("training.global_batch_size", "the schedule's steps: pipeline stages × virtual stages × microbatches",
            pp * vp, microbatches, kMaxScheduleSteps);
}

// Upper bounds of the exits, inference and execution sizes; training's floats finite.
void check_other_bounds(Checker& c, const Scenario& s) {
  using namespace bounds;
  const ExitSpec& e = s.exits;
  c.at_most("exits.exit_layer_nums", static_cast<int64_t>(e.exit_layer_nums.size()), kMaxExits, "exits");
  c.at_most("exits.exit_layer_weight", static_cast<int64_t>(e.exit_layer_weight.size()), kMaxExits, "weights");
  c.at_most("exits.exit_layer_weight_init", static_cast<int64_t>(e.exit_layer_weight_init.size()), kMaxExits,
            "weights");
  for (size_t i = 0; i < e.exit_layer_weight.size() && i < kMaxExits; ++i)
    c.finite_at_most("exits.exit_layer_weight[" + std::to_string(i) + "]", e.exit_layer_weight[i], 1e6);
  for (size_t i = 0; i < e.exit_layer_weight_init.size() && i < kMaxExits; ++i)
    c.finite_at_most("exits.exit_layer_weight_init[" + std::to_string(i) + "]", e.exit_layer_weight_init[i], 1e6);
  c.finite_at_most("exits.final_exit_weight", e.final_exit_weight, 1e6);
  const InferenceSpec& i = s.inference;
  c.at_most("inference.batch_size", i.batch_size, 65536, "sequences");
  c.at_most("inference.prompt_length", i.prompt_length, kMaxSeqLength, "tokens");
  c.at_most("inference.max_new_tokens", i.max_new_tokens, kMaxInferenceTokens, "tokens");
  c.at_most("inference.speculative_draft_tokens", i.speculative_draft_tokens, 1024, "tokens");
  c.at_most("inference.max_pending_recompute", i.max_pending_recompute, kMaxInferenceTokens, "tokens");
  c.at_most("inference.exit_rates", static_cast<int64_t>(i.exit_rates.size()), kMaxExits, "rates");
  c.at_most("execution.num_threads", s.execution.num_threads, kMaxThreads, "threads");
  c.finite_in("execution.recv_timeout_s", s.execution.recv_timeout_s, 0, 1e7, true);
  const TrainingSpec& t = s.training;
  for (const auto& [field, v] :
       {std::pair{"training.lr", t.lr}, std::pair{"training.min_lr", t.min_lr},
        std::pair{"training.weight_decay", t.weight_decay}, std::pair{"training.clip_grad", t.clip_grad}})
    c.finite_at_most(field, v, 1e6);
  c.finite_at_most("training.adam_eps", t.adam_eps, 1);
}

// The field a derive_layout message starts with ("model.num_layers (4) is not ..." →
// model.num_layers).
std::string leading_field(const std::string& message) {
  const size_t end = message.find_first_of(" (");
  const std::string head = message.substr(0, end);
  return head.find('.') != std::string::npos ? head : std::string("parallel");
}

void check_memory(Checker& c, const Scenario& s, const Layout& layout, double margin) {
  const double capacity = s.cluster.device.memory_GiB * 1024.0 * 1024.0 * 1024.0;
  if (!(capacity > 0)) return;
  const double usable = capacity * (1.0 - margin);
  const CostModel cost(s, layout);
  for (int stage = 0; stage < layout.pp; ++stage) {
    const StageMemory m = cost.stage_memory(stage);
    const double peak = static_cast<double>(m.peak_bytes());
    if (peak <= usable) continue;
    const double per_mb = static_cast<double>(m.activation_bytes_per_microbatch + m.exit_logits_bytes_per_microbatch);
    std::string msg =
        "stage " + std::to_string(stage) + " needs " + gib(peak) + " of " + gib(capacity) +
        (margin > 0 ? " (" + gib(usable) + " usable with a " + num(margin * 100) + "% margin)" : "") + " on " +
        (s.cluster.device.name.empty() ? std::string("the device") : s.cluster.device.name) + ": weights " +
        gib(static_cast<double>(m.weights_bytes)) + " + gradients " + gib(static_cast<double>(m.grads_bytes)) +
        " + optimizer " + gib(static_cast<double>(m.optimizer_bytes)) + " + " +
        std::to_string(m.max_microbatches_in_flight) + " microbatch(es) in flight × " + gib(per_mb) + " activations";
    c.warning("memory.stage[" + std::to_string(stage) + "]", msg);
  }
}

}  // namespace

Diagnostics validate_cost_fields(const Scenario& s) {
  Diagnostics diags;
  Checker c(diags);
  check_cost(c, s);
  return diags;
}

Diagnostics validate_bounds(const Scenario& s) {
  Diagnostics diags;
  Checker c(diags);
  check_model_bounds(c, s.model);
  check_parallel_bounds(c, s);
  check_other_bounds(c, s);
  return diags;
}

Diagnostics validate_scenario(const Scenario& s, double memory_margin_fraction) {
  Diagnostics diags = validate_bounds(s);
  const bool bounded = !diags.has_errors();
  Checker c(diags);
  check_model(c, s.model);
  check_exits(c, s);
  check_parallel(c, s);
  check_cluster(c, s);
  check_training(c, s.training);
  check_inference(c, s);
  check_cost(c, s);
  c.non_negative("execution.num_threads", s.execution.num_threads);
  static const char* const kMaths[] = {"auto", "fp32", "tf32", "bf16"};
  const std::string& math = s.execution.gemm_math;
  if (std::find(std::begin(kMaths), std::end(kMaths), math) == std::end(kMaths))
    c.error("execution.gemm_math", "execution.gemm_math ('" + math + "') must be auto, fp32, tf32 or bf16");
  else if (math == "tf32" && s.execution.device == DeviceKind::kCPU)
    c.error("execution.gemm_math", "execution.gemm_math tf32 needs execution.device cuda (CPUs have no TF32)");
  if (s.cluster.device.host_cores > 0 && s.training.params_dtype != DType::kFP32)
    c.warning("training.params_dtype",
              "training.params_dtype " + std::string(to_string(s.training.params_dtype)) + " on the CPU device " +
                  s.cluster.device.name +
                  ": the cost model prices activations and attention in 16 bits, the CPU executor keeps them in "
                  "fp32 (only its GEMMs take bf16); for CPU runs use params_dtype fp32 with execution.gemm_math bf16");
  if (!bounded) return diags;  // derive_layout's arithmetic assumes the bounds

  auto layout = derive_layout(s);
  if (!layout.is_ok()) {
    // derive_layout stops at its first problem; skip it when the range checks said the same.
    const std::string& msg = layout.status().message();
    const std::string field = leading_field(msg);
    if (!c.reported(field) && !c.reported(field.substr(0, field.find(' ')))) c.error(field, msg);
    return diags;
  }
  if (diags.has_errors()) return diags;  // the cost model assumes a valid scenario
  check_memory(c, s, *layout, memory_margin_fraction);
  return diags;
}

}  // namespace eellm
