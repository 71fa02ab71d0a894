// Inference simulation: hand-computed speedups on exact costs, and sanity of the cost-model costs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "model/scenario_io.h"
#include "sim/inference_sim.h"

namespace eellm {
namespace {

// 32 layers of 1 ms each (memory-bound: a step costs 1 ms whatever its token count), free heads
// and links, one exit after layer 8 (stage 0 of 4 when pipelined).
InferenceCosts exact_costs(int pp) {
  InferenceCosts c;
  c.num_layers = 32;
  c.pp = pp;
  for (int l = 0; l < 32; ++l) c.stage_of_layer.push_back(l / (32 / pp));
  c.layer.memory_s = 1e-3;
  c.prefill_layer.memory_s = 1e-3;
  c.exit_heads = {StepCost{}};
  c.exit_depth = {8};
  return c;
}

DecodeParams params(double rate) {
  DecodeParams p;
  p.exit_rates = {rate};
  p.new_tokens = 2000;
  return p;
}

TEST(InferenceSim, FullModelIsTheBaseline) {
  const DecodeResult r = simulate_decode(exact_costs(1), InferenceMethod::kFull, params(0.5));
  EXPECT_DOUBLE_EQ(r.time_per_output_token_s, 32e-3);
  EXPECT_DOUBLE_EQ(r.speedup_vs_full, 1.0);
  EXPECT_DOUBLE_EQ(r.avg_exit_layers, 32);
}

// Half the tokens leave after 8 layers: 0.5·8 + 0.5·32 = 20 layer steps per token (the skipped KV
// rides along the next deep token for free when decode is memory bound) → speedup 32/20 = 1.6.
TEST(InferenceSim, KvRecomputationReproducesHandComputedSpeedup) {
  const DecodeResult r = simulate_decode(exact_costs(1), InferenceMethod::kRecompute, params(0.5));
  EXPECT_NEAR(r.speedup_vs_full, 1.6, 0.01);
  EXPECT_NEAR(r.avg_exit_layers, 20, 0.1);
  EXPECT_NEAR(r.avg_layers_computed, 32, 0.1);  // every KV entry is computed eventually
  // 25 % exit: 0.25·8 + 0.75·32 = 26 → 32/26 = 1.2308.
  EXPECT_NEAR(simulate_decode(exact_costs(1), InferenceMethod::kRecompute, params(0.25)).speedup_vs_full, 32.0 / 26,
              0.01);
}

// When recomputing KV costs compute (compute-bound steps: t(n) = n ms), an early token's 24 skipped
// layers are paid again with the next deep token: 0.5·8 + 0.5·32 + 0.5·24 = 32 → no speedup.
TEST(InferenceSim, KvRecomputationCostsWhenComputeBound) {
  InferenceCosts c = exact_costs(1);
  c.layer.memory_s = 0;
  c.layer.compute_per_token_s = 1e-3;
  const DecodeResult r = simulate_decode(c, InferenceMethod::kRecompute, params(0.5));
  EXPECT_NEAR(r.speedup_vs_full, 1.0, 0.02);
}

// Pipeline-based, 4 stages of 8 layers, exit at the end of stage 0: a token that exits frees stage 0
// after 8 ms and the next token starts; later stages fill the KV concurrently without delaying it
// (each stage is busy 8 ms per token). Per token 0.5·8 + 0.5·32 = 20 ms → 1.6.
TEST(InferenceSim, PipelineBasedReproducesHandComputedSpeedup) {
  const DecodeResult r = simulate_decode(exact_costs(4), InferenceMethod::kPipeline, params(0.5));
  EXPECT_NEAR(r.speedup_vs_full, 1.6, 0.01);
  // Every token exits at stage 0: stage 0 is the bottleneck at 8 ms per token → 4×.
  EXPECT_NEAR(simulate_decode(exact_costs(4), InferenceMethod::kPipeline, params(1.0)).speedup_vs_full, 4.0, 0.01);
}

// Self-speculative, draft through the exit after layer 8, K = 4 drafts, verification of layers 9..32
// over 4 positions in one memory-bound pass: round = 4·8 + 24 = 56 ms; tokens per round
// (1 − α^4)/(1 − α): α = 0.5 → 1.875 (speedup 32·1.875/56 = 1.0714), α = 0.9 → 3.439 (1.9651).
TEST(InferenceSim, SelfSpeculativeReproducesHandComputedSpeedup) {
  DecodeParams p = params(0.0);
  p.new_tokens = 20000;
  p.acceptance_rate = 0.5;
  EXPECT_NEAR(simulate_decode(exact_costs(1), InferenceMethod::kSpeculative, p).speedup_vs_full, 32 * 1.875 / 56, 0.01);
  p.acceptance_rate = 0.9;
  const DecodeResult r = simulate_decode(exact_costs(1), InferenceMethod::kSpeculative, p);
  EXPECT_NEAR(r.speedup_vs_full, 32 * 3.439 / 56, 0.02);
  EXPECT_DOUBLE_EQ(r.acceptance_rate, 0.9);
  // Default α: the cumulative exit rate up to the draft exit.
  p.acceptance_rate = -1;
  p.exit_rates = {0.5};
  EXPECT_DOUBLE_EQ(simulate_decode(exact_costs(1), InferenceMethod::kSpeculative, p).acceptance_rate, 0.5);
}

TEST(InferenceSim, BatchLeavesAtTheDeepestExitOfItsSequences) {
  InferenceCosts c = exact_costs(1);
  c.batch_size = 2;  // both must exit: probability 0.25 → 0.25·8 + 0.75·32 = 26 → 32/26
  EXPECT_NEAR(simulate_decode(c, InferenceMethod::kRecompute, params(0.5)).speedup_vs_full, 32.0 / 26, 0.02);
}

TEST(InferenceSim, ScenarioCostsAreMemoryBoundAndRatesAreChecked) {
  auto s = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/ee-llm-7b.yaml");
  ASSERT_TRUE(s.is_ok());
  auto c = inference_costs(*s);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  // One 7B layer (~202M params, bf16) read at 2039 GB/s · efficiency: a few tenths of a ms, and
  // decode at batch 1 is memory bound.
  EXPECT_GT(c->layer.memory_s, c->layer.compute_per_token_s * 10);
  EXPECT_GT(c->layer.memory_s, 0.1e-3);
  EXPECT_LT(c->layer.memory_s, 1e-3);
  EXPECT_EQ(c->exit_depth, (std::vector<int>{8, 16}));

  InferenceSimOptions o;
  o.exit_rates = {0.2, 0.3};
  auto r = simulate_inference(*s, o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->methods.size(), 4u);  // full, recompute, pipeline (pp 4), speculative
  EXPECT_GT(r->methods[1].speedup_vs_full, 1.2);
  EXPECT_NEAR(r->methods[1].avg_exit_layers, 0.2 * 8 + 0.3 * 16 + 0.5 * 32, 0.2);

  o.exit_rates = {0.8, 0.3};
  r = simulate_inference(*s, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("sums to"), std::string::npos);
  o.exit_rates = {0.5};
  r = simulate_inference(*s, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("2 exits"), std::string::npos) << r.status().message();
}

TEST(InferenceSim, ReadsExitRatesJson) {
  const std::string path = std::string(EELLM_BINARY_DIR) + "/test_exit_rates.json";
  std::ofstream(path) << R"({"exit_rates": [0.25, 0.5], "tokens": 100})";
  auto r = read_exit_rates_json(path);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, (std::vector<double>{0.25, 0.5}));
  std::ofstream(path) << R"({"rates": [0.25]})";
  EXPECT_FALSE(read_exit_rates_json(path).is_ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace eellm
