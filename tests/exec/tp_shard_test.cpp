// Tensor-parallel sharding rules (exec/gpt/tp_shard.h): for every parameter of a model that uses every
// rule (GQA, SwiGLU, RMSNorm, untied heads, exit block and MLP), the shards of all tp ranks have
// the shapes GptParams::allocate(local_config) gives, tile the full tensor exactly once, and
// extract → insert round-trips.
#include "exec/gpt/tp_shard.h"

#include <gtest/gtest.h>

#include <map>

namespace eellm::exec {
namespace {

GptConfig every_rule_config(bool swiglu) {
  GptConfig c;
  c.L = 2, c.C = 16, c.NH = 8, c.G = 4, c.HS = 2, c.F = 24, c.V = 37, c.Vp = 40, c.max_T = 8;
  c.norm = swiglu ? Normalization::kRMSNorm : Normalization::kLayerNorm;
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
  for (auto& [name, t, role] : fp.params()) {
    for (size_t i = 0; i < t->numel(); ++i) t->data[i] = static_cast<float>(i + 1);  // distinct values
    ASSERT_TRUE(local_by_name.count(name)) << name;
    Tensor rebuilt(t->shape);
    std::vector<int> hits(t->numel(), 0);
    bool replicated = false;
    for (int r = 0; r < tp; ++r) {
      auto spec = shard_spec(full, role, tp, r);
      ASSERT_TRUE(spec.is_ok()) << spec.status().to_string();
      replicated = spec->replicated();
      EXPECT_EQ(replicated, is_tp_replicated(role)) << name;
      EXPECT_EQ(replicated, is_tp_replicated(name)) << name;
      auto by_name = shard_spec(full, name, tp, r);  // a checkpoint key gives the same shard
      ASSERT_TRUE(by_name.is_ok()) << by_name.status().to_string();
      EXPECT_EQ(by_name->dim, spec->dim) << name;
      EXPECT_EQ(by_name->ranges, spec->ranges) << name;
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

// Every parameter of a model with exits (exit blocks, norms, MLPs, untied heads) carries the role
// its name implies, and the split dimension Megatron gives it: ColumnParallelLinear weights and
// biases dim 0, RowParallelLinear weights dim 1 (biases replicated), VocabParallelEmbedding and the
// parallel output layers dim 0, norms and learned positions replicated.
TEST(ParamRole, EveryParameterHasTheRoleItsNameImpliesAndMegatronsSplit) {
  using P = ParamPart;
  struct Suffix {
    const char* name;
    P part;
    int dim;
  };
  const std::vector<Suffix> layer = {
      {"ln1_w", P::kNormWeight, -1}, {"ln1_b", P::kNormBias, -1},       {"qkv_w", P::kQkvWeight, 0},
      {"qkv_b", P::kQkvBias, 0},     {"proj_w", P::kProjWeight, 1},     {"proj_b", P::kProjBias, -1},
      {"ln2_w", P::kNormWeight, -1}, {"ln2_b", P::kNormBias, -1},       {"fc_w", P::kFcWeight, 0},
      {"fc_b", P::kFcBias, 0},       {"fcproj_w", P::kFcProjWeight, 1}, {"fcproj_b", P::kFcProjBias, -1}};
  const std::vector<Suffix> exit = {{"norm_w", P::kNormWeight, -1},        {"norm_b", P::kNormBias, -1},
                                    {"mlp_fc_w", P::kFcWeight, 0},         {"mlp_fc_b", P::kFcBias, 0},
                                    {"mlp_fcproj_w", P::kFcProjWeight, 1}, {"mlp_fcproj_b", P::kFcProjBias, -1},
                                    {"out_w", P::kOutputWeight, 0}};
  struct Want {
    std::string name;
    ParamRole role;
    int dim;
  };
  std::vector<Want> want = {{"wte", {ParamOwner::kEmbedding, -1, false, P::kEmbeddingTable}, 0},
                            {"wpe", {ParamOwner::kPositionEmbedding, -1, false, P::kPositionTable}, -1}};
  GptConfig c = every_rule_config(false);
  c.L = 3, c.exit_depth = {1, 2}, c.exit_layer = {1, 2};
  for (int i = 0; i < c.L; ++i)
    for (const Suffix& x : layer)
      want.push_back({"layers." + std::to_string(i) + "." + x.name, {ParamOwner::kLayer, i, false, x.part}, x.dim});
  want.push_back({"lnf_w", {ParamOwner::kFinalNorm, -1, false, P::kNormWeight}, -1});
  want.push_back({"lnf_b", {ParamOwner::kFinalNorm, -1, false, P::kNormBias}, -1});
  want.push_back({"lm_head", {ParamOwner::kHead, -1, false, P::kOutputWeight}, 0});
  for (int j = 0; j < 2; ++j) {
    const std::string pre = "exits." + std::to_string(j) + ".";
    for (const Suffix& x : layer)
      want.push_back({pre + "block." + x.name, {ParamOwner::kExit, j, true, x.part}, x.dim});
    for (const Suffix& x : exit) want.push_back({pre + x.name, {ParamOwner::kExit, j, false, x.part}, x.dim});
  }
  GptParams p;
  p.allocate(c);
  const auto got = p.params();
  ASSERT_EQ(got.size(), want.size());  // 2 + 3·12 + 3 + 2·(12 + 7) = 79
  EXPECT_EQ(got.size(), 79u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(got[i].role, want[i].role) << got[i].name << ": " << to_string(got[i].role);
    EXPECT_EQ(got[i].role.split_dim(), want[i].dim) << got[i].name;
    // Weight decay on matrices only (Megatron's no-decay set: biases and norm weights).
    EXPECT_EQ(got[i].role.decays(), got[i].tensor->shape.size() >= 2) << got[i].name;
    auto parsed = param_role_of(got[i].name);  // the serialized name reads back as the same role
    ASSERT_TRUE(parsed.is_ok()) << parsed.status().to_string();
    EXPECT_EQ(*parsed, got[i].role) << got[i].name;
  }
  EXPECT_EQ(to_string(want[2].role), "layer 0 norm weight (replicated)");
  EXPECT_EQ(to_string(ParamRole{ParamOwner::kExit, 1, true, P::kQkvWeight}),
            "exit 1 block qkv weight (column-parallel)");
  for (const char* bad : {"layers.x.qkv_w", "layers.-1.qkv_w", "exits.0.block.out_w", "layers.0.nonsense", "lnf"}) {
    auto r = param_role_of(bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  }
}

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
