// Test helper: field-by-field comparison of two Scenarios, written out by hand (not through
// scenario_fields.h) so that a field the reader or writer forgets shows up as a failure.
#pragma once

#include <gtest/gtest.h>

#include "model/scenario.h"

namespace eellm {

#define EELLM_EXPECT_FIELD(a, b, f) EXPECT_EQ((a).f, (b).f) << #f

inline void expect_same_device(const DeviceProfile& a, const DeviceProfile& b) {
  EELLM_EXPECT_FIELD(a, b, name);
  EELLM_EXPECT_FIELD(a, b, peak_tflops_fp32);
  EELLM_EXPECT_FIELD(a, b, peak_tflops_fp16);
  EELLM_EXPECT_FIELD(a, b, peak_tflops_bf16);
  EELLM_EXPECT_FIELD(a, b, memory_GiB);
  EELLM_EXPECT_FIELD(a, b, memory_bandwidth_GBps);
  EELLM_EXPECT_FIELD(a, b, kernel_launch_us);
  EELLM_EXPECT_FIELD(a, b, gemm_max_efficiency);
  EELLM_EXPECT_FIELD(a, b, gemm_half_efficiency_dim);
  EELLM_EXPECT_FIELD(a, b, gemm_tile_m);
  EELLM_EXPECT_FIELD(a, b, gemm_tile_n);
  EELLM_EXPECT_FIELD(a, b, num_sms);
  EELLM_EXPECT_FIELD(a, b, elementwise_efficiency);
  EELLM_EXPECT_FIELD(a, b, attention_efficiency);
  EELLM_EXPECT_FIELD(a, b, collective_efficiency);
  EELLM_EXPECT_FIELD(a, b, per_layer_overhead_us);
  EELLM_EXPECT_FIELD(a, b, optimizer_bytes_per_param);
  EELLM_EXPECT_FIELD(a, b, per_iteration_overhead_us);
  EELLM_EXPECT_FIELD(a, b, nvlink_bandwidth_GBps);
  EELLM_EXPECT_FIELD(a, b, nvlink_latency_us);
  EELLM_EXPECT_FIELD(a, b, network_bandwidth_GBps);
  EELLM_EXPECT_FIELD(a, b, network_latency_us);
}

// Model, exit, parallel and training fields a Megatron/EE-LLM command line expresses.
inline void expect_same_megatron_fields(const Scenario& a, const Scenario& b) {
  EELLM_EXPECT_FIELD(a, b, model.num_layers);
  EELLM_EXPECT_FIELD(a, b, model.hidden_size);
  EELLM_EXPECT_FIELD(a, b, model.num_attention_heads);
  EELLM_EXPECT_FIELD(a, b, model.num_query_groups);
  EELLM_EXPECT_FIELD(a, b, model.ffn_hidden_size);
  EELLM_EXPECT_FIELD(a, b, model.kv_channels);
  EELLM_EXPECT_FIELD(a, b, model.seq_length);
  EELLM_EXPECT_FIELD(a, b, model.max_position_embeddings);
  EELLM_EXPECT_FIELD(a, b, model.vocab_size);
  EELLM_EXPECT_FIELD(a, b, model.make_vocab_size_divisible_by);
  EELLM_EXPECT_FIELD(a, b, model.normalization);
  EELLM_EXPECT_FIELD(a, b, model.position_embedding_type);
  EELLM_EXPECT_FIELD(a, b, model.activation);
  EELLM_EXPECT_FIELD(a, b, model.add_bias_linear);
  EELLM_EXPECT_FIELD(a, b, model.untie_embeddings_and_output_weights);
  EELLM_EXPECT_FIELD(a, b, model.init_method_std);
  EELLM_EXPECT_FIELD(a, b, model.layernorm_epsilon);
  EELLM_EXPECT_FIELD(a, b, model.rotary_base);
  EELLM_EXPECT_FIELD(a, b, exits.exit_layer_nums);
  EELLM_EXPECT_FIELD(a, b, exits.exit_layer_weight);
  EELLM_EXPECT_FIELD(a, b, exits.exit_layer_weight_init);
  EELLM_EXPECT_FIELD(a, b, exits.exit_layer_weight_warmup_iters);
  EELLM_EXPECT_FIELD(a, b, exits.exit_layer_weight_warmup_style);
  EELLM_EXPECT_FIELD(a, b, exits.pre_exit);
  EELLM_EXPECT_FIELD(a, b, exits.use_exit_norm);
  EELLM_EXPECT_FIELD(a, b, exits.use_exit_mlp);
  EELLM_EXPECT_FIELD(a, b, exits.use_exit_block);
  EELLM_EXPECT_FIELD(a, b, exits.untie_exit_output_weights);
  EELLM_EXPECT_FIELD(a, b, parallel.tensor_model_parallel_size);
  EELLM_EXPECT_FIELD(a, b, parallel.pipeline_model_parallel_size);
  EELLM_EXPECT_FIELD(a, b, parallel.virtual_pipeline_model_parallel_size);
  EELLM_EXPECT_FIELD(a, b, parallel.sequence_parallel);
  EELLM_EXPECT_FIELD(a, b, parallel.use_distributed_optimizer);
  EELLM_EXPECT_FIELD(a, b, parallel.overlap_grad_reduce);
  EELLM_EXPECT_FIELD(a, b, parallel.fill_explicit_bubbles);
  EELLM_EXPECT_FIELD(a, b, parallel.num_fill_warmup_microbatches);
  EELLM_EXPECT_FIELD(a, b, parallel.num_fill_cooldown_microbatches);
  EELLM_EXPECT_FIELD(a, b, parallel.recompute_granularity);
  EELLM_EXPECT_FIELD(a, b, training.micro_batch_size);
  EELLM_EXPECT_FIELD(a, b, training.global_batch_size);
  EELLM_EXPECT_FIELD(a, b, training.train_iters);
  EELLM_EXPECT_FIELD(a, b, training.lr);
  EELLM_EXPECT_FIELD(a, b, training.min_lr);
  EELLM_EXPECT_FIELD(a, b, training.lr_warmup_iters);
  EELLM_EXPECT_FIELD(a, b, training.lr_decay_style);
  EELLM_EXPECT_FIELD(a, b, training.lr_decay_iters);
  EELLM_EXPECT_FIELD(a, b, training.weight_decay);
  EELLM_EXPECT_FIELD(a, b, training.adam_beta1);
  EELLM_EXPECT_FIELD(a, b, training.adam_beta2);
  EELLM_EXPECT_FIELD(a, b, training.adam_eps);
  EELLM_EXPECT_FIELD(a, b, training.clip_grad);
  EELLM_EXPECT_FIELD(a, b, training.seed);
  EELLM_EXPECT_FIELD(a, b, training.params_dtype);
  EELLM_EXPECT_FIELD(a, b, training.data_path);
  EELLM_EXPECT_FIELD(a, b, training.valid_fraction);
  EELLM_EXPECT_FIELD(a, b, training.eval_interval);
  EELLM_EXPECT_FIELD(a, b, training.eval_iters);
  EELLM_EXPECT_FIELD(a, b, training.save_interval);
  EELLM_EXPECT_FIELD(a, b, training.log_interval);
}

inline void expect_same_scenario(const Scenario& a, const Scenario& b, bool compare_cluster) {
  EELLM_EXPECT_FIELD(a, b, name);
  EELLM_EXPECT_FIELD(a, b, description);
  EELLM_EXPECT_FIELD(a, b, model.arch);
  expect_same_megatron_fields(a, b);
  EELLM_EXPECT_FIELD(a, b, exits.final_exit_weight);
  EELLM_EXPECT_FIELD(a, b, parallel.data_parallel_size);
  EELLM_EXPECT_FIELD(a, b, parallel.world_size);
  EELLM_EXPECT_FIELD(a, b, parallel.layer_partition);
  EELLM_EXPECT_FIELD(a, b, parallel.schedule);
  EELLM_EXPECT_FIELD(a, b, inference.batch_size);
  EELLM_EXPECT_FIELD(a, b, inference.prompt_length);
  EELLM_EXPECT_FIELD(a, b, inference.max_new_tokens);
  EELLM_EXPECT_FIELD(a, b, inference.method);
  EELLM_EXPECT_FIELD(a, b, inference.early_exit_thres);
  EELLM_EXPECT_FIELD(a, b, inference.confidence);
  EELLM_EXPECT_FIELD(a, b, inference.exit_rates);
  EELLM_EXPECT_FIELD(a, b, inference.speculative_draft_tokens);
  EELLM_EXPECT_FIELD(a, b, inference.draft_exit);
  EELLM_EXPECT_FIELD(a, b, inference.max_pending_recompute);
  EELLM_EXPECT_FIELD(a, b, execution.device);
  EELLM_EXPECT_FIELD(a, b, execution.num_threads);
  EELLM_EXPECT_FIELD(a, b, execution.recv_timeout_s);
  if (compare_cluster) {
    EELLM_EXPECT_FIELD(a, b, cluster.name);
    EELLM_EXPECT_FIELD(a, b, cluster.device_name);
    EELLM_EXPECT_FIELD(a, b, cluster.num_nodes);
    EELLM_EXPECT_FIELD(a, b, cluster.gpus_per_node);
    EELLM_EXPECT_FIELD(a, b, cluster.intra_node.bandwidth_GBps);
    EELLM_EXPECT_FIELD(a, b, cluster.intra_node.latency_us);
    EELLM_EXPECT_FIELD(a, b, cluster.inter_node.bandwidth_GBps);
    EELLM_EXPECT_FIELD(a, b, cluster.inter_node.latency_us);
    expect_same_device(a.cluster.device, b.cluster.device);
  }
}

}  // namespace eellm
