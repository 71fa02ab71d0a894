// The what-if training cost model (model/training_cost.h): Young/Daly intervals and a whole run
// worked by hand, energy from busy/idle time per stage, the Llama 3 interruption count and goodput
// (Dubey et al. 2024), and the scenario fields that feed it (reading, writing, validation).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "model/cost_model.h"
#include "model/layout.h"
#include "model/scenario_io.h"
#include "model/training_cost.h"
#include "model/validate.h"

namespace eellm {
namespace {

TEST(TrainingCost, YoungDalyIntervalHandComputed) {
  EXPECT_DOUBLE_EQ(young_daly_interval_s(50, 10000), 1000);  // sqrt(2·50·10⁴) = sqrt(10⁶)
  EXPECT_DOUBLE_EQ(young_daly_interval_s(2, 3600), 120);     // sqrt(14,400)
  EXPECT_DOUBLE_EQ(young_daly_interval_s(25, 7200), 600);    // sqrt(360,000)
}

// 16 GPUs on 2 nodes; node MTBF 4 h → job MTBF M = 7,200 s; a 100 GB checkpoint at 2 GB/s per node
// → δ = 25 s; τ = sqrt(2·25·7,200) = 600 s; restart 300 s. Useful 3,960 × 10 s = 39,600 s,
// checkpoints 39,600/600 = 66 → 1,650 s; wall = (39,600 + 1,650) / (1 − (300 + 300)/7,200)
// = 45,000 s; N = 45,000/7,200 = 6.25; lost work and restarts 6.25 × 300 = 1,875 s each.
TrainingCostInput hand_worked_run() {
  TrainingCostInput in;
  in.iteration_time_s = 10;
  in.train_iters = 3960;
  in.stages = {{16, 8, 2}};
  in.gpus = 16;
  in.nodes = 2;
  in.checkpoint_bytes = 100e9;
  in.cost.node_mtbf_hours = 4;
  in.cost.checkpoint_write_GBps_per_node = 2;
  in.cost.restart_s = 300;
  in.cost.price_per_gpu_hour_usd = 2.5;
  return in;
}

TEST(TrainingCost, WholeRunHandComputed) {
  auto c = training_cost(hand_worked_run());
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_DOUBLE_EQ(c->iterations, 3960);
  EXPECT_DOUBLE_EQ(c->useful_s, 39600);
  EXPECT_DOUBLE_EQ(c->checkpoint_write_s, 25);
  EXPECT_DOUBLE_EQ(c->job_mtbf_s, 7200);
  EXPECT_DOUBLE_EQ(c->checkpoint_interval_s, 600);
  EXPECT_DOUBLE_EQ(c->checkpoints, 66);
  EXPECT_DOUBLE_EQ(c->checkpoint_overhead_s, 1650);
  EXPECT_NEAR(c->wall_s, 45000, 1e-9);
  EXPECT_NEAR(c->interruptions, 6.25, 1e-12);
  EXPECT_NEAR(c->lost_work_s, 1875, 1e-9);
  EXPECT_NEAR(c->restart_total_s, 1875, 1e-9);
  EXPECT_NEAR(c->useful_s + c->checkpoint_overhead_s + c->lost_work_s + c->restart_total_s, c->wall_s, 1e-9);
  EXPECT_NEAR(c->goodput, 0.88, 1e-12);
  EXPECT_NEAR(c->gpu_hours, 200, 1e-9);  // 16 × 45,000 s
  EXPECT_NEAR(c->cost_usd, 500, 1e-9);
}

TEST(TrainingCost, TrainTokensBecomeWholeIterations) {
  TrainingCostInput in = hand_worked_run();
  in.cost = {};  // no failures, no checkpoints: wall = useful
  in.train_tokens = 1e9;
  in.tokens_per_iteration = 3e5;  // 3,333.3 → 3,334 iterations
  auto c = training_cost(in);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_DOUBLE_EQ(c->iterations, 3334);
  EXPECT_DOUBLE_EQ(c->wall_s, 33340);
  EXPECT_DOUBLE_EQ(c->goodput, 1);
  EXPECT_DOUBLE_EQ(c->interruptions, 0);
}

// Two stages of 2 GPUs; per iteration stage 0 is busy 3 s and idle 1 s, stage 1 busy 2 s and idle
// 2 s; 400 W busy, 100 W idle, 10 iterations, PUE 1.5:
// 10 × [2·(400·3 + 100·1) + 2·(400·2 + 100·2)] J × 1.5 = 10 × 4,600 × 1.5 = 69,000 J.
TEST(TrainingCost, EnergyIsBusyAndIdlePowerTimesTimeTimesPue) {
  TrainingCostInput in;
  in.iteration_time_s = 4;
  in.train_iters = 10;
  in.stages = {{2, 3, 1}, {2, 2, 2}};
  in.gpus = 4;
  in.power_busy_W = 400;
  in.power_idle_W = 100;
  in.cost.pue = 1.5;
  auto c = training_cost(in);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_DOUBLE_EQ(c->energy_kWh, 69000 / 3.6e6);
  EXPECT_DOUBLE_EQ(c->energy_gpu_busy_kWh, 10 * (2 * 400 * 3 + 2 * 400 * 2) / 3.6e6);
  EXPECT_DOUBLE_EQ(c->energy_gpu_idle_kWh, 10 * (2 * 100 * 1 + 2 * 100 * 2) / 3.6e6);
  // A 500 W node overhead over the 40 s wall time adds 20,000 J before PUE.
  in.cost.node_overhead_W = 500;
  auto with_node = training_cost(in);
  ASSERT_TRUE(with_node.is_ok());
  EXPECT_DOUBLE_EQ(with_node->energy_kWh, (46000 + 20000) * 1.5 / 3.6e6);
}

TEST(TrainingCost, UnusableInputsAreErrorsNamingTheField) {
  TrainingCostInput in = hand_worked_run();
  in.cost.checkpoint_write_GBps_per_node = 0;
  auto no_ckpt = training_cost(in);
  ASSERT_FALSE(no_ckpt.is_ok());
  EXPECT_NE(no_ckpt.status().message().find("checkpoint_write_GBps_per_node"), std::string::npos);
  in = hand_worked_run();
  in.cost.node_mtbf_hours = 0.1;  // job MTBF 180 s < restart 300 s
  auto hopeless = training_cost(in);
  ASSERT_FALSE(hopeless.is_ok());
  EXPECT_NE(hopeless.status().message().find("never progresses"), std::string::npos);
  in = hand_worked_run();
  in.train_iters = 0;
  EXPECT_NE(training_cost(in).status().message().find("train_iters"), std::string::npos);
}

// Llama 3 405B (Dubey et al. 2024, Sec. 3.3.4): 466 job interruptions in a 54-day snapshot of
// pre-training on 16,384 H100 GPUs (2,048 nodes of 8), effective training time above 90 %.
constexpr const char* kLlama3 = R"(
name: llama3-405b
model: {arch: llama, num_layers: 126, hidden_size: 16384, num_attention_heads: 128, num_query_groups: 8,
        ffn_hidden_size: 53248, seq_length: 8192, max_position_embeddings: 8192, vocab_size: 128256,
        normalization: RMSNorm, position_embedding_type: rope, activation: swiglu, add_bias_linear: false,
        untie_embeddings_and_output_weights: true}
parallel: {tensor_model_parallel_size: 8, pipeline_model_parallel_size: 16, use_distributed_optimizer: true,
           layer_partition: [7, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 7]}
cluster: {profile: h100-sxm-2x8, num_nodes: 2048}
training: {micro_batch_size: 1, global_batch_size: 2048, params_dtype: bf16}
)";

TEST(TrainingCost, Llama3InterruptionsAndGoodput) {
  auto s = parse_scenario(kLlama3, "llama3", ".");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  auto layout = derive_layout(*s);
  ASSERT_TRUE(layout.is_ok()) << layout.status().to_string();
  ASSERT_EQ(layout->world_size, 16384);
  const CostModel cm(*s, *layout);
  // Weights (bf16, 2 B) + fp32 master weights and Adam moments (12 B) per parameter, one copy.
  const double params = static_cast<double>(cm.param_counts().total());
  EXPECT_NEAR(params, 405e9, 0.02 * 405e9);
  const double ckpt = checkpoint_bytes(cm);
  EXPECT_NEAR(ckpt, 14 * params, 0.001 * 14 * params);

  const double days = 54, interruptions = 466;
  TrainingCostInput in;
  in.gpus = 16384;
  in.nodes = 2048;
  in.checkpoint_bytes = ckpt;
  in.cost = s->cluster.cost;                                       // h100-sxm-2x8: 2 GB/s per node, 10 min restarts
  in.cost.node_mtbf_hours = in.nodes * days * 24 / interruptions;  // the rate the counts give
  in.train_iters = 1000000;
  in.iteration_time_s = 1;
  in.stages = {{16384, 1, 0}};
  auto probe = training_cost(in);
  ASSERT_TRUE(probe.is_ok()) << probe.status().to_string();
  // Goodput does not depend on the length of the run: the useful time of a 54-day run is
  // 54 days × goodput; run that and count the interruptions.
  in.iteration_time_s = days * 86400 * probe->goodput / static_cast<double>(in.train_iters);
  auto run = training_cost(in);
  ASSERT_TRUE(run.is_ok());
  EXPECT_NEAR(run->wall_s, days * 86400, 1e-6 * days * 86400);
  EXPECT_EQ(std::lround(run->interruptions), 466);
  EXPECT_GT(run->goodput, 0.90);  // "effective training time above 90 %"
  // Consistent with the counts: 466 × (10 min restart + half an interval) is at most 10 % of 54 days.
  EXPECT_LT(run->goodput, 1 - interruptions * in.cost.restart_s / (days * 86400));
  EXPECT_NEAR(run->checkpoint_interval_s, std::sqrt(2 * run->checkpoint_write_s * run->job_mtbf_s), 1e-9);
}

TEST(TrainingCostScenario, CostBlockOverridesTheProfileAndRoundTrips) {
  constexpr const char* kYaml = R"(
name: t
model: {num_layers: 4, hidden_size: 64, num_attention_heads: 4, seq_length: 32, vocab_size: 128}
cluster: {profile: a100-80gb-2x8, cost: {price_per_gpu_hour_usd: 3.25, restart_s: 120}}
training: {train_tokens: 1.5e12}
)";
  auto s = parse_scenario(kYaml, "t.yaml", ".");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_DOUBLE_EQ(s->cluster.cost.price_per_gpu_hour_usd, 3.25);
  EXPECT_DOUBLE_EQ(s->cluster.cost.restart_s, 120);
  EXPECT_DOUBLE_EQ(s->cluster.cost.node_mtbf_hours, 5696);  // from the profile
  EXPECT_DOUBLE_EQ(s->cluster.device.power_busy_W, 400);
  EXPECT_DOUBLE_EQ(s->training.train_tokens, 1.5e12);
  const std::string yaml = scenario_to_yaml(*s);
  EXPECT_NE(yaml.find("price_per_gpu_hour_usd: 3.25"), std::string::npos) << yaml;
  EXPECT_EQ(yaml.find("node_mtbf_hours"), std::string::npos) << yaml;  // same as the profile
  auto back = parse_scenario(yaml, "back.yaml", ".");
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_DOUBLE_EQ(back->cluster.cost.price_per_gpu_hour_usd, 3.25);
  EXPECT_DOUBLE_EQ(back->cluster.cost.node_mtbf_hours, 5696);
  EXPECT_DOUBLE_EQ(back->training.train_tokens, 1.5e12);
}

TEST(TrainingCostScenario, UnknownCostKeyIsAnErrorWithItsPath) {
  auto s = parse_scenario("cluster: {profile: a100-80gb-2x8, cost: {price_usd: 3}}\n", "t.yaml", ".");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("cluster.cost.price_usd"), std::string::npos) << s.status().message();
}

std::string first_error(const Scenario& s) {
  return validate_scenario(s).first_error().message();
}

TEST(TrainingCostScenario, ValidationNamesTheField) {
  auto base = load_scenario("ee-llm-7b");
  ASSERT_TRUE(base.is_ok()) << base.status().to_string();
  EXPECT_FALSE(validate_scenario(*base).has_errors());
  Scenario s = *base;
  s.cluster.cost.price_per_gpu_hour_usd = -1;
  EXPECT_NE(first_error(s).find("cluster.cost.price_per_gpu_hour_usd (-1) must not be negative"), std::string::npos);
  s = *base;
  s.cluster.cost.pue = 0.9;
  EXPECT_NE(first_error(s).find("cluster.cost.pue (0.9) must be a finite number ≥ 1"), std::string::npos);
  s = *base;
  s.cluster.cost.node_mtbf_hours = std::numeric_limits<double>::infinity();
  EXPECT_NE(first_error(s).find("cluster.cost.node_mtbf_hours (inf) must be a finite number"), std::string::npos);
  s = *base;
  s.cluster.device.power_busy_W = std::nan("");
  EXPECT_NE(first_error(s).find("cluster.device.power_busy_W"), std::string::npos);
  s = *base;
  s.training.train_tokens = -5;
  EXPECT_NE(first_error(s).find("training.train_tokens (-5) must not be negative"), std::string::npos);
}

}  // namespace
}  // namespace eellm
