// eellm describe's figures: per-stage rows agree with the cost model, exits are listed on their
// stage, over-capacity stages are flagged, and the JSON carries the same numbers.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/cost_model.h"
#include "model/describe.h"
#include "model/layout.h"

namespace eellm {
namespace {

Scenario ee_scenario() {
  Scenario s;
  s.name = "describe-test";
  s.model.num_layers = 8;
  s.model.hidden_size = 1024;
  s.model.num_attention_heads = 16;
  s.model.seq_length = 1024;
  s.model.vocab_size = 50257;
  s.exits.exit_layer_nums = {3, 6};
  s.parallel.tensor_model_parallel_size = 2;
  s.parallel.pipeline_model_parallel_size = 4;
  s.parallel.world_size = 16;
  s.cluster.device.name = "dev";
  s.cluster.device.memory_GiB = 80;
  s.cluster.device.peak_tflops_fp16 = s.cluster.device.peak_tflops_bf16 = 312;
  s.cluster.device.memory_bandwidth_GBps = 2000;
  s.cluster.gpus_per_node = 8;
  s.cluster.num_nodes = 2;
  s.cluster.intra_node = {300, 2};
  s.cluster.inter_node = {25, 5};
  s.training.micro_batch_size = 2;
  s.training.global_batch_size = 32;
  return s;
}

TEST(Describe, StagesAgreeWithTheCostModel) {
  const Scenario s = ee_scenario();
  const auto r = describe_scenario(s);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const Layout L = derive_layout(s).value();
  const CostModel cm(s, L);
  EXPECT_EQ(r->dp, 2);
  EXPECT_EQ(r->num_microbatches, 8);
  EXPECT_EQ(r->padded_vocab_size, 50432);  // next multiple of 128 × tp 2
  ASSERT_EQ(r->stages.size(), 4u);
  EXPECT_EQ(r->stages[0].layers, "1-2");
  EXPECT_EQ(r->stages[3].layers, "7-8");
  EXPECT_EQ(r->stages[1].exit_layers, std::vector<int>{3});
  EXPECT_EQ(r->stages[2].exit_layers, std::vector<int>{6});
  EXPECT_TRUE(r->stages[0].exit_layers.empty());
  for (int st = 0; st < 4; ++st) {
    const StageMemory m = cm.stage_memory(st);
    EXPECT_EQ(r->stages[st].params, m.params);
    EXPECT_EQ(r->stages[st].total_bytes, m.peak_bytes());
    EXPECT_EQ(r->stages[st].microbatches_in_flight, 4 - st);
    EXPECT_FALSE(r->stages[st].over_capacity);
    EXPECT_EQ(r->stages[st].dp_bytes, cm.dp_grad_bytes(st));
  }
  EXPECT_EQ(r->stages[3].p2p_bytes_per_microbatch, 0);
  EXPECT_EQ(r->stages[0].p2p_bytes_per_microbatch, int64_t{2} * 1024 * 1024 * 2);
  // Stage 1 holds an exit head (2·b·s·h·V/t extra forward FLOPs); stage 0 only layers + embedding.
  EXPECT_GT(r->stages[1].fwd_flops, r->stages[0].fwd_flops);
  EXPECT_EQ(r->params_total - r->params_backbone, 0);  // tied heads add no parameters
  EXPECT_GT(r->model_flops_per_iteration, r->model_flops_per_iteration_no_exits);
  EXPECT_TRUE(r->stages[1].in_embedding_group);
  EXPECT_TRUE(r->stages[0].in_embedding_group);
}

TEST(Describe, FlagsOverCapacityAndWritesJson) {
  Scenario s = ee_scenario();
  s.cluster.device.memory_GiB = 0.5;
  const auto r = describe_scenario(s);
  ASSERT_TRUE(r.is_ok());
  for (const StageReport& st : r->stages) EXPECT_TRUE(st.over_capacity);
  const std::string text = describe_to_text(*r);
  EXPECT_NE(text.find("over device capacity"), std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(describe_to_json(*r));
  EXPECT_EQ(j["layout"]["data_parallel_size"], 2);
  EXPECT_EQ(j["stages"].size(), 4u);
  EXPECT_EQ(j["stages"][2]["exit_layers"][0], 6);
  EXPECT_EQ(j["stages"][1]["total_bytes"].get<int64_t>(), r->stages[1].total_bytes);
  EXPECT_TRUE(j["stages"][0]["over_capacity"].get<bool>());
}

TEST(Describe, BadLayoutIsAnError) {
  Scenario s = ee_scenario();
  s.parallel.pipeline_model_parallel_size = 3;
  s.parallel.world_size = 6;
  const auto r = describe_scenario(s);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("num_layers"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace eellm
