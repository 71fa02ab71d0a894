// GradSync (exec/train/grad_sync.h) in one process: the bucket plan (reverse order, one group per
// bucket, size cap, no split tensor, DP padding), ZeRO-1 shard ranges tiling every bucket, and a
// 1-rank GradSync step equal to exec/optimizer's AdamW bit for bit (norm, clipping, decay).
#include "exec/train/grad_sync.h"

#include <gtest/gtest.h>

#include <numeric>

#include "exec/gpt/optimizer.h"
#include "tests/exec/dist_reference.h"

namespace eellm::exec {
namespace {

TEST(BucketPlan, ReverseOrderGroupsCapAndPadding) {
  // Tensors 0..5 of sizes; groups: 0,0,1,1,1,-1; tensor 5 is reduced again (tied embedding).
  const std::vector<size_t> n{10, 7, 5, 30, 4, 9};
  const std::vector<int> g{0, 0, 1, 1, 1, -1};
  const std::vector<bool> again{false, false, false, false, false, true};
  const BucketPlan p = plan_buckets(n, g, again, 12, 4);
  // Walk 5,4,3,2,1,0: {5} (group -1), {4,3} (group 1: 34 ≥ 12 closes), {2} (group 1), {1,0} (group 0).
  ASSERT_EQ(p.buckets.size(), 4u);
  EXPECT_EQ(p.buckets[0].tensors, (std::vector<size_t>{5}));
  EXPECT_TRUE(p.buckets[0].reduced_again);
  EXPECT_EQ(p.buckets[1].tensors, (std::vector<size_t>{4, 3}));
  EXPECT_EQ(p.buckets[1].offsets, (std::vector<size_t>{0, 4}));
  EXPECT_EQ(p.buckets[1].numel, 34u);
  EXPECT_EQ(p.buckets[1].padded, 36u);  // multiple of dp 4
  EXPECT_EQ(p.buckets[2].tensors, (std::vector<size_t>{2}));
  EXPECT_EQ(p.buckets[2].group, 1);
  EXPECT_EQ(p.buckets[3].tensors, (std::vector<size_t>{1, 0}));
  EXPECT_EQ(p.buckets[3].group, 0);
  EXPECT_EQ(p.buckets[3].padded, 20u);
  // Every tensor exactly once.
  std::vector<int> seen(n.size(), 0);
  for (const auto& b : p.buckets)
    for (size_t t : b.tensors) ++seen[t];
  EXPECT_EQ(seen, std::vector<int>(n.size(), 1));
  // Bucket size 0 → Megatron's default: all of a group in one bucket.
  EXPECT_EQ(plan_buckets(n, g, again, 0, 4).buckets.size(), 3u);
  EXPECT_EQ(default_bucket_floats(64), 64'000'000u);
}

TEST(BucketPlan, ShardRangesTileTheBucket) {
  for (int dp : {1, 2, 3, 4}) {
    const BucketPlan p = plan_buckets({13, 1, 6}, {0, 0, 0}, {false, false, false}, 0, dp);
    ASSERT_EQ(p.buckets.size(), 1u);
    size_t next = 0;
    for (int r = 0; r < dp; ++r) {
      auto [lo, hi] = shard_range(p.buckets[0].padded, dp, r);
      EXPECT_EQ(lo, next);
      EXPECT_EQ(hi - lo, p.buckets[0].padded / static_cast<size_t>(dp));
      next = hi;
    }
    EXPECT_EQ(next, p.buckets[0].padded);
    EXPECT_GE(p.buckets[0].padded, 20u);
    EXPECT_LT(p.buckets[0].padded, 20u + static_cast<size_t>(dp));
  }
}

// One process, several small buckets: the same update as AdamW::step over every tensor.
TEST(GradSync, SingleRankStepEqualsAdamW) {
  const Scenario s = testing::tiny_dist_scenario(1, 1, 1, ScheduleKind::kNoPipelining, 1);
  const GptConfig cfg = make_gpt_config(s).value();
  auto be = make_cpu_backend(1);
  GptParams p1, p2, g;
  p1.allocate(cfg), p2.allocate(cfg), g.allocate(cfg);
  init_params(p1, cfg, 5);
  init_params(p2, cfg, 5);
  init_params(g, cfg, 9);  // a gradient with a norm well above clip_grad
  AdamW adam;
  adam.init(cfg);
  auto self = make_self_communicator("data");
  std::vector<SyncTensor> ts;
  auto P = p2.named();
  auto G = g.named();
  for (size_t i = 0; i < P.size(); ++i) ts.push_back({P[i].first, P[i].second, G[i].second, static_cast<int>(i % 3)});
  GradSyncOptions o;
  o.bucket_floats = 3000;
  auto gs = GradSync::create(ts, *self, *be, o);
  ASSERT_TRUE(gs.is_ok()) << gs.status().to_string();
  EXPECT_GT((*gs)->plan().buckets.size(), 3u);
  TrainingSpec t = s.training;
  t.weight_decay = 0.1;
  for (int it = 0; it < 2; ++it) {
    const StepStats want = adam.step(*be, p1, g, t, it);
    auto got = (*gs)->step({self.get()}, t, it);
    ASSERT_TRUE(got.is_ok()) << got.status().to_string();
    EXPECT_DOUBLE_EQ(got->grad_norm, want.grad_norm);
    EXPECT_DOUBLE_EQ(got->clip, want.clip_scale);
    EXPECT_LT(got->clip, 1.0);
  }
  auto A = p1.named(), B = p2.named();
  for (size_t i = 0; i < A.size(); ++i) EXPECT_EQ(A[i].second->data, B[i].second->data) << A[i].first;
  // Moments: one whole-tensor slice per tensor, equal to AdamW's.
  auto slices = (*gs)->moment_slices();
  ASSERT_EQ(slices.size(), ts.size());
  auto M = adam.m().named();
  for (const auto& sl : slices) {
    ASSERT_EQ(sl.end - sl.begin, M[sl.tensor].second->numel());
    EXPECT_TRUE(std::equal(sl.m, sl.m + (sl.end - sl.begin), M[sl.tensor].second->data.begin()));
  }
  // A non-finite gradient fails naming the tensor and changes nothing.
  G[3].second->data[0] = std::numeric_limits<float>::quiet_NaN();
  auto bad = (*gs)->step({self.get()}, t, 2);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("non-finite gradient in tensor " + G[3].first), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace eellm::exec
