// The whole early-exit GPT (exec/gpt/gpt_model.h) on the CUDA backend against the CPU backend: every
// head's loss and every parameter gradient of one microbatch, then the losses after three AdamW
// steps, for the GPT-2 style tiny-ee scenario and a LLaMA-style variant (RMSNorm, RoPE, SwiGLU,
// grouped queries, no biases, exit MLP). fp32 GEMMs; tolerance 1e-3 relative to each tensor's
// scale (many ops chained; the CPU uses approximate exp/erf). Skipped without a GPU.
#include <gtest/gtest.h>

#include <random>

#include "exec/backend/cuda/cuda_backend.h"
#include "exec/gpt/gpt_model.h"
#include "exec/gpt/optimizer.h"
#include "model/scenario_io.h"
#include "tests/cuda/cuda_test_util.h"

namespace eellm::exec::testing {
namespace {

Scenario tiny(bool llama) {
  auto s = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/tiny-ee.yaml");
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  Scenario sc = s.value();
  sc.model.num_layers = 4;
  sc.model.hidden_size = 128;
  sc.model.seq_length = 96;
  sc.exits.exit_layer_nums = {2};
  sc.exits.exit_layer_weight = {0.5};
  if (llama) {
    sc.model.normalization = Normalization::kRMSNorm;
    sc.model.position_embedding_type = PositionEmbedding::kRope;
    sc.model.activation = Activation::kSwiGLU;
    sc.model.add_bias_linear = false;
    sc.model.num_query_groups = 4;
    sc.exits.use_exit_mlp = true;
  }
  return sc;
}

void compare_models(bool llama) {
  CudaOptions o;
  o.gemm = GemmMath::kFp32;
  auto gpu_or = make_cuda_backend(o);
  ASSERT_TRUE(gpu_or.is_ok()) << gpu_or.status().to_string();
  std::unique_ptr<Backend> gpu = std::move(gpu_or).value(), cpu = make_cpu_backend(2);
  const Scenario s = tiny(llama);
  auto cfg_or = make_gpt_config(s);
  ASSERT_TRUE(cfg_or.is_ok()) << cfg_or.status().to_string();
  const GptConfig cfg = *cfg_or;
  GptModel mc(cfg, *cpu), mg(cfg, *gpu);
  init_params(mc.params(), cfg, 42);
  init_params(mg.params(), cfg, 42);
  const int B = 2, T = s.model.seq_length;
  std::vector<int32_t> tokens(static_cast<size_t>(B * T)), targets(tokens.size());
  std::mt19937 rng(7);
  for (auto& t : tokens) t = static_cast<int32_t>(rng() % cfg.V);
  for (auto& t : targets) t = static_cast<int32_t>(rng() % cfg.V);
  HeadWeights w;
  w.exits = {0.5f};
  w.final_weight = 1.0f;

  mc.zero_grads();
  mg.zero_grads();
  const MicrobatchLosses lc = mc.run_microbatch(tokens.data(), targets.data(), B, T, w, true);
  const MicrobatchLosses lg = mg.run_microbatch(tokens.data(), targets.data(), B, T, w, true);
  gpu->synchronize();
  EXPECT_NEAR(lg.final_loss, lc.final_loss, 1e-4 * lc.final_loss);
  ASSERT_EQ(lg.exits.size(), lc.exits.size());
  for (size_t e = 0; e < lc.exits.size(); ++e)
    EXPECT_NEAR(lg.exits[e], lc.exits[e], 1e-4 * lc.exits[e]) << "exit " << e;
  auto gc = mc.grads().named();
  auto gg = mg.grads().named();
  ASSERT_EQ(gc.size(), gg.size());
  for (size_t i = 0; i < gc.size(); ++i) {
    const std::vector<float> want(gc[i].second->data.begin(), gc[i].second->data.end());
    EXPECT_CLOSE("gradient " + gc[i].first, *gg[i].second, want, 1e-3);
  }

  AdamW oc, og;
  oc.init(cfg);
  og.init(cfg);
  TrainingSpec spec = s.training;
  spec.lr_warmup_iters = 0;
  for (int it = 0; it < 3; ++it) {
    oc.step(*cpu, mc.params(), mc.grads(), spec, it);
    og.step(*gpu, mg.params(), mg.grads(), spec, it);
    mc.zero_grads();
    mg.zero_grads();
    const MicrobatchLosses a = mc.run_microbatch(tokens.data(), targets.data(), B, T, w, true);
    const MicrobatchLosses b = mg.run_microbatch(tokens.data(), targets.data(), B, T, w, true);
    EXPECT_NEAR(b.final_loss, a.final_loss, 1e-3 * a.final_loss) << "after step " << it + 1;
  }
}

TEST(CudaModel, Gpt2StyleMatchesCpu) {
  EELLM_SKIP_WITHOUT_GPU();
  compare_models(false);
}

TEST(CudaModel, LlamaStyleMatchesCpu) {
  EELLM_SKIP_WITHOUT_GPU();
  compare_models(true);
}

}  // namespace
}  // namespace eellm::exec::testing
