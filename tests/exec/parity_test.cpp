// Parity with PyTorch (tests/exec/torch/reference.py, run with Debian's /usr/bin/python3 and its
// python3-torch): logits of every head, every exit loss, every parameter gradient of the weighted
// total loss, then 10 AdamW steps of losses, for three backbone/exit-head variants that between
// them cover every head variant of the scenario format. The reference computes in float64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>

#include "exec/gpt/gpt_model.h"
#include "exec/gpt/optimizer.h"
#include "exec/io/safetensors.h"
#include "test_util.h"

namespace eellm::exec {
namespace {

using testing::Variant;

bool torch_available() {
  return std::system("/usr/bin/python3 -c 'import torch' > /dev/null 2>&1") == 0;
}

// max |a−b| relative to max |b| (a tensor-wide relative error, robust to near-zero entries).
double rel_err(const float* a, const float* b, size_t n) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    ref = std::max(ref, std::fabs(static_cast<double>(b[i])));
  }
  return diff / std::max(ref, 1e-30);
}

void run_parity(Variant variant, const std::string& name) {
  if (!torch_available()) GTEST_SKIP() << "/usr/bin/python3 cannot import torch (install python3-torch)";
  const Scenario s = testing::small_scenario(variant);
  auto cfg_or = make_gpt_config(s);
  ASSERT_TRUE(cfg_or.is_ok()) << cfg_or.status().to_string();
  const GptConfig cfg = *cfg_or;
  auto be = make_cpu_backend(2);
  GptModel model(cfg, *be);
  init_params(model.params(), cfg, 42);
  const int B = s.training.micro_batch_size, T = s.model.seq_length, steps = 10;
  std::vector<int32_t> tokens(static_cast<size_t>(B * T)), targets(tokens.size());
  std::mt19937 rng(7);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(rng() % cfg.V);
  for (size_t i = 0; i < tokens.size(); ++i) targets[i] = static_cast<int32_t>(rng() % cfg.V);

  const std::string dir = testing::temp_dir("parity_" + name);
  HeadWeights w;
  for (double x : s.exits.exit_layer_weight) w.exits.push_back(static_cast<float>(x));
  w.final_weight = 1.0f;
  nlohmann::json j{{"L", cfg.L},
                   {"C", cfg.C},
                   {"NH", cfg.NH},
                   {"G", cfg.G},
                   {"HS", cfg.HS},
                   {"F", cfg.F},
                   {"V", cfg.V},
                   {"Vp", cfg.Vp},
                   {"norm", cfg.norm == Normalization::kLayerNorm ? "LayerNorm" : "RMSNorm"},
                   {"rope", cfg.rope},
                   {"swiglu", cfg.swiglu},
                   {"untie_final", cfg.untie_final},
                   {"eps", cfg.eps},
                   {"rope_base", cfg.rope_base},
                   {"exit_depth", cfg.exit_depth},
                   {"exit_block", cfg.exit_block},
                   {"exit_norm", cfg.exit_norm},
                   {"exit_mlp", cfg.exit_mlp},
                   {"untie_exits", cfg.untie_exits},
                   {"exit_weights", w.exits},
                   {"final_weight", w.final_weight},
                   {"steps", steps},
                   {"threads", 2}};
  const TrainingSpec& t = s.training;
  j["training"] = {{"lr", t.lr},
                   {"min_lr", t.min_lr},
                   {"warmup", t.lr_warmup_iters},
                   {"decay_iters", t.train_iters},
                   {"weight_decay", t.weight_decay},
                   {"beta1", t.adam_beta1},
                   {"beta2", t.adam_beta2},
                   {"eps", t.adam_eps},
                   {"clip", t.clip_grad}};
  std::ofstream(dir + "/config.json") << j.dump(2);
  ASSERT_TRUE(write_file_atomic(dir + "/weights.safetensors", safetensors_bytes(std::as_const(model.params()).named()))
                  .is_ok());
  Tensor tok({B, T}), tgt({B, T});
  for (size_t i = 0; i < tokens.size(); ++i)
    tok.data[i] = static_cast<float>(tokens[i]), tgt.data[i] = static_cast<float>(targets[i]);
  ASSERT_TRUE(
      write_file_atomic(dir + "/batch.safetensors", safetensors_bytes({{"tokens", &tok}, {"targets", &tgt}})).is_ok());
  const std::string cmd = "/usr/bin/python3 " EELLM_SOURCE_DIR "/tests/exec/torch/reference.py " + dir;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto res_or = read_safetensors(dir + "/results.safetensors");
  ASSERT_TRUE(res_or.is_ok()) << res_or.status().to_string();
  const auto& R = res_or->tensors;

  // Forward + backward of the weighted loss.
  model.zero_grads();
  std::vector<Tensor> logits;
  MicrobatchLosses l = model.run_microbatch(tokens.data(), targets.data(), B, T, w, true, &logits);
  ASSERT_EQ(logits.size(), static_cast<size_t>(cfg.num_exits() + 1));
  for (int h = 0; h <= cfg.num_exits(); ++h) {
    const std::string hn = h < cfg.num_exits() ? "exit" + std::to_string(h) : "final";
    const Tensor& ref = R.at("logits." + hn);
    ASSERT_EQ(ref.numel(), logits[static_cast<size_t>(h)].numel());
    EXPECT_LT(rel_err(logits[static_cast<size_t>(h)].ptr(), ref.ptr(), ref.numel()), 1e-5) << "logits of " << hn;
    const float mine = h < cfg.num_exits() ? l.exits[static_cast<size_t>(h)] : l.final_loss;
    EXPECT_NEAR(mine, R.at("loss." + hn).data[0], 1e-5 * std::fabs(R.at("loss." + hn).data[0])) << "loss of " << hn;
  }
  int checked = 0;
  double worst = 0;
  for (auto& [pname, g] : model.grads().named()) {
    auto it = R.find("grad." + pname);
    ASSERT_NE(it, R.end()) << pname;
    const double err = rel_err(g->ptr(), it->second.ptr(), g->numel());
    EXPECT_LT(err, 1e-4) << "gradient of " << pname;
    worst = std::max(worst, err);
    ++checked;
  }
  std::printf("%s: %d gradients, worst relative error %.2e\n", name.c_str(), checked, worst);
  EXPECT_EQ(checked, static_cast<int>(R.size()) - 2 * (cfg.num_exits() + 1) - 1);  // every torch gradient matched

  // 10 AdamW steps on the same batch.
  AdamW opt;
  opt.init(cfg);
  const Tensor& ref_losses = R.at("adam_losses");
  for (int it = 0; it < steps; ++it) {
    model.zero_grads();
    MicrobatchLosses li = model.run_microbatch(tokens.data(), targets.data(), B, T, w, true);
    for (int h = 0; h <= cfg.num_exits(); ++h) {
      const float mine = h < cfg.num_exits() ? li.exits[static_cast<size_t>(h)] : li.final_loss;
      const float ref = ref_losses.data[static_cast<size_t>(it * (cfg.num_exits() + 1) + h)];
      EXPECT_NEAR(mine, ref, 1e-4 * std::fabs(ref)) << "step " << it << " head " << h;
    }
    opt.step(*be, model.params(), model.grads(), t, it);
  }
  // The losses must actually move, or the comparison above proves little.
  EXPECT_LT(ref_losses.data.back(), ref_losses.data[static_cast<size_t>(cfg.num_exits())] - 0.05);
}

TEST(TorchParity, Gpt2WithNormExitsTied) {
  run_parity(Variant::kGpt2, "gpt2");
}
TEST(TorchParity, LlamaWithBlockNormMlpPreExitsUntiedGqa) {
  run_parity(Variant::kLlama, "llama");
}
TEST(TorchParity, Gpt2WithMlpExitsUntiedNoNorm) {
  run_parity(Variant::kGpt2Mlp, "gpt2mlp");
}

}  // namespace
}  // namespace eellm::exec
