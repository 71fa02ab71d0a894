// The field lists of the scenario structs, written once: for_each_field(spec, visitor) calls
// visitor(key, member) for every serialised member in file order, with the YAML key (= Megatron /
// EE-LLM name in snake_case). The YAML reader, the writer, and anything else that walks a scenario
// generically (e.g. a GUI property editor) use these lists, so a new field is added in one place.
// enum_values<E>() lists every value of a scenario enum (for parsing, messages and pickers).
// Header-only, no state; thread-safe.
#pragma once

#include <array>
#include <type_traits>

#include "model/scenario.h"

namespace eellm {

template <typename E>
struct EnumValues;
#define EELLM_ENUM_VALUES(E, ...)                                   \
  template <>                                                       \
  struct EnumValues<E> {                                            \
    static constexpr auto values = std::to_array<E>({__VA_ARGS__}); \
  }
EELLM_ENUM_VALUES(Normalization, Normalization::kLayerNorm, Normalization::kRMSNorm);
EELLM_ENUM_VALUES(PositionEmbedding, PositionEmbedding::kLearnedAbsolute, PositionEmbedding::kRope);
EELLM_ENUM_VALUES(Activation, Activation::kGelu, Activation::kSwiGLU);
EELLM_ENUM_VALUES(DType, DType::kFP32, DType::kFP16, DType::kBF16);
EELLM_ENUM_VALUES(RecomputeGranularity, RecomputeGranularity::kNone, RecomputeGranularity::kSelective,
                  RecomputeGranularity::kFull);
EELLM_ENUM_VALUES(WarmupStyle, WarmupStyle::kLinear, WarmupStyle::kCosine);
EELLM_ENUM_VALUES(LrDecayStyle, LrDecayStyle::kConstant, LrDecayStyle::kLinear, LrDecayStyle::kCosine);
EELLM_ENUM_VALUES(ScheduleKind, ScheduleKind::kNoPipelining, ScheduleKind::kGPipe, ScheduleKind::k1F1B,
                  ScheduleKind::kInterleaved1F1B, ScheduleKind::kZBH1, ScheduleKind::kEE1F1B, ScheduleKind::kEEFill,
                  ScheduleKind::kEETuning);
EELLM_ENUM_VALUES(FillSemantics, FillSemantics::kEELLM, FillSemantics::kExitTruncated);
EELLM_ENUM_VALUES(Confidence, Confidence::kMaxProb, Confidence::kMargin, Confidence::kEntropy);
EELLM_ENUM_VALUES(InferenceMethod, InferenceMethod::kFull, InferenceMethod::kRecompute, InferenceMethod::kPipeline,
                  InferenceMethod::kSpeculative);
EELLM_ENUM_VALUES(DeviceKind, DeviceKind::kCPU, DeviceKind::kCUDA);
EELLM_ENUM_VALUES(IntraNodeFabric, IntraNodeFabric::kNVSwitch, IntraNodeFabric::kPCIe, IntraNodeFabric::kSharedMemory);
#undef EELLM_ENUM_VALUES

template <typename E>
constexpr const auto& enum_values() {
  return EnumValues<E>::values;
}

// In the overloads below `S` is the struct or its const version, so one list serves readers and
// writers.
template <typename S, typename V>
requires std::is_same_v<std::remove_const_t<S>, ModelSpec>
void for_each_field(S& m, V&& v) {
  v("arch", m.arch);
  v("num_layers", m.num_layers);
  v("hidden_size", m.hidden_size);
  v("num_attention_heads", m.num_attention_heads);
  v("num_query_groups", m.num_query_groups);
  v("ffn_hidden_size", m.ffn_hidden_size);
  v("kv_channels", m.kv_channels);
  v("seq_length", m.seq_length);
  v("max_position_embeddings", m.max_position_embeddings);
  v("vocab_size", m.vocab_size);
  v("make_vocab_size_divisible_by", m.make_vocab_size_divisible_by);
  v("normalization", m.normalization);
  v("position_embedding_type", m.position_embedding_type);
  v("activation", m.activation);
  v("add_bias_linear", m.add_bias_linear);
  v("untie_embeddings_and_output_weights", m.untie_embeddings_and_output_weights);
  v("init_method_std", m.init_method_std);
  v("layernorm_epsilon", m.layernorm_epsilon);
  v("rotary_base", m.rotary_base);
  v("use_flash_attn", m.use_flash_attn);
}

template <typename S, typename V>
requires std::is_same_v<std::remove_const_t<S>, ExitSpec>
void for_each_field(S& e, V&& v) {
  v("exit_layer_nums", e.exit_layer_nums);
  v("exit_layer_weight", e.exit_layer_weight);
  v("exit_layer_weight_init", e.exit_layer_weight_init);
  v("exit_layer_weight_warmup_iters", e.exit_layer_weight_warmup_iters);
  v("exit_layer_weight_warmup_style", e.exit_layer_weight_warmup_style);
  v("final_exit_weight", e.final_exit_weight);
  v("pre_exit", e.pre_exit);
  v("use_exit_norm", e.use_exit_norm);
  v("use_exit_mlp", e.use_exit_mlp);
  v("use_exit_block", e.use_exit_block);
  v("untie_exit_output_weights", e.untie_exit_output_weights);
  v("exit_layer_temperature", e.exit_layer_temperature);
  v("use_dynamic_exit_layer_weight", e.use_dynamic_exit_layer_weight);
}

template <typename S, typename V>
requires std::is_same_v<std::remove_const_t<S>, ParallelSpec>
void for_each_field(S& p, V&& v) {
  v("tensor_model_parallel_size", p.tensor_model_parallel_size);
  v("pipeline_model_parallel_size", p.pipeline_model_parallel_size);
  v("data_parallel_size", p.data_parallel_size);
  v("world_size", p.world_size);
  v("virtual_pipeline_model_parallel_size", p.virtual_pipeline_model_parallel_size);
  v("layer_partition", p.layer_partition);
  v("schedule", p.schedule);
  v("sequence_parallel", p.sequence_parallel);
  v("use_distributed_optimizer", p.use_distributed_optimizer);
  v("overlap_grad_reduce", p.overlap_grad_reduce);
  v("ddp_bucket_size", p.ddp_bucket_size);
  v("fill_explicit_bubbles", p.fill_explicit_bubbles);
  v("num_fill_warmup_microbatches", p.num_fill_warmup_microbatches);
  v("num_fill_cooldown_microbatches", p.num_fill_cooldown_microbatches);
  v("fill_semantics", p.fill_semantics);
  v("backward_forward_ratio", p.backward_forward_ratio);
  v("tune_exit_pipeline_parallel_size", p.tune_exit_pipeline_parallel_size);
  v("recompute_granularity", p.recompute_granularity);
}

template <typename S, typename V>
requires std::is_same_v<std::remove_const_t<S>, LinkSpec>
void for_each_field(S& l, V&& v) {
  v("bandwidth_GBps", l.bandwidth_GBps);
  v("latency_us", l.latency_us);
}

template <typename S, typename V>
requires std::is_same_v<std::remove_const_t<S>, DeviceProfile>
void for_each_field(S& d, V&& v) {
  v("name", d.name);
  v("peak_tflops_fp32", d.peak_tflops_fp32);
  v("peak_tflops_fp16", d.peak_tflops_fp16);
  v("peak_tflops_bf16", d.peak_tflops_bf16);
  v("memory_GiB", d.memory_GiB);
  v("memory_bandwidth_GBps", d.memory_bandwidth_GBps);
  v("kernel_launch_us", d.kernel_launch_us);
  v("gemm_max_efficiency", d.gemm_max_efficiency);
  v("gemm_half_efficiency_dim", d.gemm_half_efficiency_dim);
  v("gemm_tile_m", d.gemm_tile_m);
  v("gemm_tile_n", d.gemm_tile_n);
  v("num_sms", d.num_sms);
  v("elementwise_efficiency", d.elementwise_efficiency);
  v("attention_efficiency", d.attention_efficiency);
  v("elementwise_backward_ratio", d.elementwise_backward_ratio);
  v("attention_backward_ratio", d.attention_backward_ratio);
  v("attention_efficiency_bf16", d.attention_efficiency_bf16);
  v("attention_backward_ratio_bf16", d.attention_backward_ratio_bf16);
  v("collective_efficiency", d.collective_efficiency);
  v("p2p_efficiency", d.p2p_efficiency);
  v("collective_latency_us", d.collective_latency_us);
  v("large_message_KiB", d.large_message_KiB);
  v("large_message_p2p_efficiency", d.large_message_p2p_efficiency);
  v("large_message_collective_efficiency", d.large_message_collective_efficiency);
  v("per_layer_overhead_us", d.per_layer_overhead_us);
  v("per_exit_overhead_us", d.per_exit_overhead_us);
  v("compute_share", d.compute_share);
  v("host_cores", d.host_cores);
  v("oversubscribed_efficiency", d.oversubscribed_efficiency);
  v("optimizer_bytes_per_param", d.optimizer_bytes_per_param);
  v("per_iteration_overhead_us", d.per_iteration_overhead_us);
  v("cpu_gemm", d.cpu_gemm);
  v("nvlink_bandwidth_GBps", d.nvlink_bandwidth_GBps);
  v("nvlink_latency_us", d.nvlink_latency_us);
  v("network_bandwidth_GBps", d.network_bandwidth_GBps);
  v("network_latency_us", d.network_latency_us);
  // Power (cost analysis)
  v("power_busy_W", d.power_busy_W);
  v("power_idle_W", d.power_idle_W);
}

template <typename S, typename V>
requires std::is_same_v<std::remove_const_t<S>, CostSpec>
void for_each_field(S& c, V&& v) {
  v("price_per_gpu_hour_usd", c.price_per_gpu_hour_usd);
  v("node_overhead_W", c.node_overhead_W);
  v("pue", c.pue);
  v("node_mtbf_hours", c.node_mtbf_hours);
  v("checkpoint_write_GBps_per_node", c.checkpoint_write_GBps_per_node);
  v("restart_s", c.restart_s);
}

template <typename S, typename V>
requires std::is_same_v<std::remove_const_t<S>, TrainingSpec>
void for_each_field(S& t, V&& v) {
  v("micro_batch_size", t.micro_batch_size);
  v("global_batch_size", t.global_batch_size);
  v("train_iters", t.train_iters);
  v("lr", t.lr);
  v("min_lr", t.min_lr);
  v("lr_warmup_iters", t.lr_warmup_iters);
  v("lr_decay_style", t.lr_decay_style);
  v("lr_decay_iters", t.lr_decay_iters);
  v("weight_decay", t.weight_decay);
  v("adam_beta1", t.adam_beta1);
  v("adam_beta2", t.adam_beta2);
  v("adam_eps", t.adam_eps);
  v("clip_grad", t.clip_grad);
  v("seed", t.seed);
  v("params_dtype", t.params_dtype);
  v("accumulate_allreduce_grads_in_fp32", t.accumulate_allreduce_grads_in_fp32);
  v("data_path", t.data_path);
  v("valid_fraction", t.valid_fraction);
  v("eval_interval", t.eval_interval);
  v("eval_iters", t.eval_iters);
  v("save_interval", t.save_interval);
  v("log_interval", t.log_interval);
  // Training budget (cost analysis)
  v("train_tokens", t.train_tokens);
  v("megatron_args", t.megatron_args);
}

template <typename S, typename V>
requires std::is_same_v<std::remove_const_t<S>, InferenceSpec>
void for_each_field(S& i, V&& v) {
  v("batch_size", i.batch_size);
  v("prompt_length", i.prompt_length);
  v("max_new_tokens", i.max_new_tokens);
  v("method", i.method);
  v("early_exit_thres", i.early_exit_thres);
  v("confidence", i.confidence);
  v("exit_rates", i.exit_rates);
  v("speculative_draft_tokens", i.speculative_draft_tokens);
  v("draft_exit", i.draft_exit);
  v("max_pending_recompute", i.max_pending_recompute);
}

template <typename S, typename V>
requires std::is_same_v<std::remove_const_t<S>, ExecutionSpec>
void for_each_field(S& x, V&& v) {
  v("device", x.device);
  v("num_threads", x.num_threads);
  v("recv_timeout_s", x.recv_timeout_s);
  v("gemm_math", x.gemm_math);
}

}  // namespace eellm
