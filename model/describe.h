// The numbers `eellm describe` prints: derived layout, totals and one row per pipeline stage, all
// taken from derive_layout() and the CostModel. Kept in model/ (not cli/) so tests and the GUI use
// the same figures. Value types; pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

struct StageReport {
  int stage = 0;
  std::string layers;                           // 1-based ranges of its chunks, e.g. "1-6" or "1-3,13-15"
  std::vector<int> exit_layers;                 // exit_layer_nums of the exits on this stage
  int64_t params = 0;                           // held by one GPU
  double fwd_flops = 0, bwd_flops = 0;          // per microbatch per GPU, backbone + exits
  double fwd_s = 0, bwd_s = 0;                  // per microbatch, incl. recompute in bwd
  int64_t activation_bytes_per_microbatch = 0;  // incl. exit logits
  int microbatches_in_flight = 0;
  int64_t activation_bytes = 0;  // peak: in flight × per microbatch
  int64_t static_bytes = 0;      // weights + grads + optimizer
  int64_t total_bytes = 0;
  bool over_capacity = false;
  int64_t p2p_bytes_per_microbatch = 0;  // activation sent to the next stage (0 on the last)
  int64_t tp_bytes_per_microbatch = 0;
  int64_t dp_bytes = 0;  // gradient bytes reduced per iteration (0 when dp = 1)
  bool in_embedding_group = false;
};

struct DescribeReport {
  std::string name, description;
  int tp = 1, pp = 1, dp = 1, vp = 1, world_size = 1;
  int micro_batch_size = 1, global_batch_size = 1, num_microbatches = 1;
  int padded_vocab_size = 0, ffn_hidden_size = 0, num_query_groups = 0, kv_channels = 0;
  std::string schedule, recompute, dtype, device;
  bool sequence_parallel = false, distributed_optimizer = false;
  double device_capacity_bytes = 0;
  int64_t params_backbone = 0, params_total = 0;  // whole model, without / with exits
  double model_flops_per_iteration = 0, model_flops_per_iteration_no_exits = 0;
  int64_t embedding_group_bytes = 0;
  std::vector<StageReport> stages;
};

StatusOr<DescribeReport> describe_scenario(const Scenario& scenario);
std::string describe_to_text(const DescribeReport& r);
std::string describe_to_json(const DescribeReport& r);  // keys with units (…_bytes, …_flops, …_s)

}  // namespace eellm
