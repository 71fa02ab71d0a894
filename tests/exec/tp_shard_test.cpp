// Tensor-parallel sharding rules (exec/gpt/tp_shard.h): for every parameter of a model that uses every
// rule (GQA, SwiGLU, RMSNorm, untied heads, exit block and MLP), the shards of all tp ranks have
// the shapes GptParams::allocate(local_config) gives, tile the full tensor exactly once, and
// extract → insert round-trips.
#include <gtest/gtest.h>

#include <map>

#include "exec/gpt/tp_shard.h"

namespace eellm::exec {
namespace {

GptConfig every_rule_config(bool swiglu) {
  GptConfig c;
  c.L = 2, c.C = 16, c.NH = 8, c.G = 4, c.HS = 2, c.F = 24, c.V = 37, c.Vp = 40, c.max_T = 8;
  c.norm = swiglu ? NormKind::kRMSNorm : NormKind::kLayerNorm;
  c.rope = swiglu, c.swiglu = swiglu, c.bias = true, c.untie_final = true;
  c.exit_depth = {1}, c.exit_layer = {1};
  c.exit_block = c.exit_norm = c.exit_mlp = c.untie_exits = true;
  return c;
}

class TpShard : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(TpShard, ShardsHaveLocalShapesAndTileEveryTensorExactlyOnce) {
  const auto [tp, swiglu] = GetParam();
  const GptConfig full = every_rule_config(swiglu);
  auto local = local_config(full, tp);
  ASSERT_TRUE(local.is_ok()) << local.status().to_string();
  EXPECT_EQ(local->NH, full.NH / tp);
  EXPECT_EQ(local->G, full.G / tp);
  EXPECT_EQ(local->F, full.F / tp);
  EXPECT_EQ(local->Vp, full.Vp / tp);
  EXPECT_EQ(local->V, full.V);
  EXPECT_EQ(local->tp, tp);
  GptParams fp, lp;
  fp.allocate(full);
  lp.allocate(*local);
  std::map<std::string, const Tensor*> local_by_name;
  for (auto& [n, t] : lp.named()) local_by_name[n] = t;
  int split = 0;
  for (auto& [name, t] : fp.named()) {
    for (size_t i = 0; i < t->numel(); ++i) t->data[i] = static_cast<float>(i + 1);  // distinct values
    ASSERT_TRUE(local_by_name.count(name)) << name;
    Tensor rebuilt(t->shape);
    std::vector<int> hits(t->numel(), 0);
    bool replicated = false;
    for (int r = 0; r < tp; ++r) {
      auto spec = shard_spec(full, name, tp, r);
      ASSERT_TRUE(spec.is_ok()) << spec.status().to_string();
      replicated = spec->replicated();
      EXPECT_EQ(replicated, is_tp_replicated(name)) << name;
      const Tensor shard = extract_shard(*t, *spec);
      EXPECT_EQ(shard.shape, local_by_name[name]->shape) << name << " rank " << r;
      Tensor marks(shard.shape);
      for (float& v : marks.data) v = 1.0f;
      Tensor cover(t->shape);
      insert_shard(cover, marks, *spec);
      for (size_t i = 0; i < cover.numel(); ++i) hits[i] += cover.data[i] != 0.0f;
      insert_shard(rebuilt, shard, *spec);
    }
    EXPECT_EQ(rebuilt.data, t->data) << name;
    if (replicated) continue;
    ++split;
    for (size_t i = 0; i < hits.size(); ++i) ASSERT_EQ(hits[i], 1) << name << " element " << i;
  }
  // 2 layers + the exit block: qkv_w/b, proj_w, fc_w/b, fcproj_w each; exit MLP fc_w/b, fcproj_w;
  // wte, lm_head, exit out_w.
  EXPECT_EQ(split, 3 * 6 + 3 + 3);
}

INSTANTIATE_TEST_SUITE_P(Degrees, TpShard,
                         ::testing::Combine(::testing::Values(1, 2, 4), ::testing::Values(false, true)));

TEST(TpShard, QkvShardHoldsTheRanksHeadsAndKvGroups) {
  const GptConfig c = every_rule_config(true);  // Q = 16, KV = 8
  auto s = shard_spec(c, "layers.1.qkv_w", 2, 1);
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->dim, 0);
  using R = std::pair<int64_t, int64_t>;
  EXPECT_EQ(s->ranges, (std::vector<R>{{8, 16}, {20, 24}, {28, 32}}));
  EXPECT_EQ(shard_spec(c, "exits.0.mlp_fc_w", 2, 1)->ranges, (std::vector<R>{{12, 24}, {36, 48}}));  // [a | b]
  EXPECT_EQ(shard_spec(c, "layers.0.fcproj_w", 2, 0)->dim, 1);
  EXPECT_EQ(shard_spec(c, "wte", 4, 3)->ranges, (std::vector<R>{{30, 40}}));
  EXPECT_TRUE(shard_spec(c, "layers.0.proj_b", 2, 1)->replicated());
}

TEST(TpShard, BadInputsAreRefusedNamingTheField) {
  GptConfig c = every_rule_config(false);
  auto bad = local_config(c, 3);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("num_attention_heads (8)"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(shard_spec(c, "layers.0.nonsense", 2, 0).is_ok());
  EXPECT_FALSE(shard_spec(c, "wte", 2, 2).is_ok());
}

}  // namespace
}  // namespace eellm::exec
