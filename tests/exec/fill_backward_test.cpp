// EE-LLM's truncated fill backward (sim/schedule.h: a kTruncated BWD, no gradient from the next
// stage): the executor starts it at the chunk's deepest exit, as the simulator charges it
// (sim/sim_costs.h's layers_to_deepest_exit), and gets the gradients of the whole-chunk backward,
// whose layers above the exit only ever added zeros.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "exec/gpt/gpt.h"
#include "sim/sim_costs.h"
#include "tests/exec/dist_reference.h"

namespace eellm::exec {
namespace {

struct FillRun {
  GptParams grads;
  std::vector<float> dinput;
  int progress_calls = 0;  // the chunk's progress hook during the backward: between its matmuls
};

// Forward (exit losses only: the chunk holds no final head) then backward of `layers` (−1: all),
// with no gradient from above, as a fill backward has none. `split`: BWD_INPUT then BWD_WEIGHT.
FillRun fill_backward(GptChunk& ch, const GptParams& p, int layers, bool split) {
  const GptConfig& cfg = ch.config();
  const int B = 2, T = 16, N = B * T;
  FillRun r;
  r.grads.allocate(cfg);
  std::vector<int32_t> in(static_cast<size_t>(N)), tgt(in.size());
  testing::microbatch_tokens(0, 0, B, T, in.data(), tgt.data());
  std::vector<float> x(static_cast<size_t>(N) * cfg.C);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * std::sin(0.37f * static_cast<float>(i));
  r.dinput.assign(x.size(), 0.0f);
  ChunkState st;
  ch.set_progress_hook(nullptr);
  ch.forward(st, p, r.grads, nullptr, x.data(), tgt.data(), B, T, HeadWeights{{0.5f, 0.25f}, 1.0f}, true);
  ch.set_progress_hook([&r] { ++r.progress_calls; });
  if (split) {
    ch.backward_input(st, p, r.grads, nullptr, r.dinput.data(), layers);
    ch.backward_weight(st, p, r.grads);
  } else {
    ch.backward(st, p, r.grads, nullptr, r.dinput.data(), layers);
  }
  ch.set_progress_hook(nullptr);
  return r;
}

bool all_zero(const Tensor& t) {
  return std::all_of(t.data.begin(), t.data.end(), [](float v) { return v == 0.0f; });
}

TEST(FillBackward, StartsAtTheDeepestExitWithTheWholeBackwardsGradients) {
  // 8 layers, exits after layers 2 and 5 (depths 2 and 5). Chunks without the final head:
  // (first layer, layers, layers to the deepest exit).
  const Scenario s = testing::tiny_dist_scenario(4, 1, 1, ScheduleKind::kEEFill, 8);
  const GptConfig cfg = make_gpt_config(s).value();
  auto be = make_cpu_backend(1);
  GptParams p;
  p.allocate(cfg);
  init_params(p, cfg, 11);
  for (auto [first, count, upto] : {std::tuple{1, 6, 4}, std::tuple{3, 4, 2}, std::tuple{2, 4, 3}}) {
    GptChunk ch(cfg, first, count, false, false);
    ch.set_backend(be.get());
    ASSERT_EQ(ch.layers_to_deepest_exit(), upto) << "chunk at layer " << first;
    for (bool split : {false, true}) {
      SCOPED_TRACE("chunk at layer " + std::to_string(first) + (split ? ", BWD_INPUT + BWD_WEIGHT" : ", BWD"));
      const FillRun whole = fill_backward(ch, p, -1, split);
      const FillRun fill = fill_backward(ch, p, upto, split);
      // Work: the layers above the exit get none; per layer the same matmul steps as before.
      EXPECT_GT(whole.progress_calls, 0);
      EXPECT_EQ(fill.progress_calls * count, whole.progress_calls * upto);
      // Gradients: the same, bit for bit; the layers above the exit get zero either way.
      EXPECT_EQ(fill.dinput, whole.dinput);
      EXPECT_FALSE(std::all_of(fill.dinput.begin(), fill.dinput.end(), [](float v) { return v == 0.0f; }));
      const auto a = whole.grads.named(), b = fill.grads.named();
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(b[i].second->data, a[i].second->data) << a[i].first;
      for (int l = first + upto; l < first + count; ++l) {
        const LayerParams& lg = fill.grads.layers[static_cast<size_t>(l)];
        EXPECT_TRUE(all_zero(lg.qkv_w) && all_zero(lg.fc_w) && all_zero(lg.ln1_w)) << "layer " << l;
      }
      EXPECT_FALSE(all_zero(fill.grads.layers[static_cast<size_t>(first + upto - 1)].qkv_w));
    }
  }
}

// The chunk's own count is the simulator's: for every stage of the EE-fill layouts it is charged for.
TEST(FillBackward, LayersToTheDeepestExitAgreeWithTheSimulator) {
  for (int pp : {2, 4}) {
    const Scenario s = testing::tiny_dist_scenario(pp, 1, 1, ScheduleKind::kEEFill, 8);
    const Layout lay = derive_layout(s).value();
    const GptConfig cfg = make_gpt_config(s).value();
    for (int v = 0; v < lay.num_virtual_stages(); ++v) {
      const ChunkLayout& cl = lay.chunks[static_cast<size_t>(v)];
      const GptChunk ch(cfg, cl.first_layer, cl.num_layers, cl.has_embedding, cl.has_final_head);
      EXPECT_EQ(ch.layers_to_deepest_exit(), layers_to_deepest_exit(lay, v)) << "pp " << pp << " stage " << v;
    }
  }
}

}  // namespace
}  // namespace eellm::exec
