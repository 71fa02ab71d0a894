// Checkpoints: safetensors round trip, and atomicity — a process killed (SIGKILL) at arbitrary
// points of a save always leaves a checkpoint that loads and verifies (single-process format and
// the distributed one saved by a 1-process world).
#include "exec/io/checkpoint.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "exec/io/dist_checkpoint.h"
#include "exec/io/safetensors.h"
#include "tests/exec/io/checkpoint_util.h"
#include "tests/exec/test_util.h"

namespace eellm::exec {
namespace {

TEST(Safetensors, RoundTripAndRejectsDamage) {
  Tensor a({2, 3}), b({4});
  for (size_t i = 0; i < a.numel(); ++i) a.data[i] = static_cast<float>(i) * 0.5f;
  for (size_t i = 0; i < b.numel(); ++i) b.data[i] = -static_cast<float>(i);
  const std::string bytes = safetensors_bytes({{"a", &a}, {"b", &b}}, {{"k", "v"}});
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  EXPECT_EQ((8 + hlen) % 8, 0u);
  auto f = parse_safetensors(bytes, "mem");
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  EXPECT_EQ(f->tensors.at("a").shape, a.shape);
  EXPECT_EQ(f->tensors.at("a").data, a.data);
  EXPECT_EQ(f->tensors.at("b").data, b.data);
  EXPECT_EQ(f->metadata.at("k"), "v");
  EXPECT_FALSE(parse_safetensors(bytes.substr(0, bytes.size() - 4), "mem").is_ok());
  EXPECT_FALSE(parse_safetensors("1234", "mem").is_ok());
}

// The distributed save's piece assignment (pure): each piece to the first rank in world order
// that holds it, duplicates written once, TP shards and ZeRO-1 moment slices tiling each tensor.
TEST(DistCheckpoint, AssignsEachPieceToItsFirstHolder) {
  Tensor wte({4, 2}), qkv0({3, 2}), qkv1({3, 2});
  std::vector<float> m(12, 0.5f), v(12, 0.25f);
  const ShardSpec whole;
  ShardSpec top{0, {{0, 3}}}, bottom{0, {{3, 6}}};
  // Rank 0: wte (replicated), the top half of qkv, moments [0, 4) of its qkv shard.
  const std::vector<CkptParam> p0 = {{"wte", {4, 2}, whole, &wte}, {"layers.0.qkv_w", {6, 2}, top, &qkv0}};
  const std::vector<CkptMoments> m0 = {{"layers.0.qkv_w", {6, 2}, top, {3, 2}, 0, 4, m.data(), v.data()}};
  // Rank 1: wte again (a DP replica), the bottom half, and moments [4, 6) of the top shard plus all of
  // the bottom shard's; an empty moment slice is skipped.
  const std::vector<CkptParam> p1 = {{"wte", {4, 2}, whole, &wte}, {"layers.0.qkv_w", {6, 2}, bottom, &qkv1}};
  const std::vector<CkptMoments> m1 = {{"layers.0.qkv_w", {6, 2}, top, {3, 2}, 4, 6, m.data(), v.data()},
                                       {"layers.0.qkv_w", {6, 2}, bottom, {3, 2}, 0, 6, m.data(), v.data()},
                                       {"wte", {4, 2}, whole, {4, 2}, 3, 3, m.data(), v.data()}};
  const std::vector<CkptMoments> wte_moments = {{"wte", {4, 2}, whole, {4, 2}, 0, 8, m.data(), v.data()}};
  std::vector<CkptMoments> m0_all = m0;
  m0_all.push_back(wte_moments[0]);
  auto a = assign_checkpoint_pieces({describe_checkpoint_holdings(p0, m0_all), describe_checkpoint_holdings(p1, m1)});
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->params, (std::vector<std::vector<size_t>>{{0, 1}, {1}}));
  EXPECT_EQ(a->moments, (std::vector<std::vector<size_t>>{{0, 1}, {0, 1}}));
  const auto tensors = nlohmann::json::parse(a->tensors_json);
  EXPECT_EQ(tensors["wte"]["params"].size(), 1u);
  EXPECT_EQ(tensors["wte"]["params"][0]["file"], "rank_00000.safetensors");
  EXPECT_EQ(tensors["layers.0.qkv_w"]["params"][1]["file"], "rank_00001.safetensors");
  EXPECT_EQ(tensors["layers.0.qkv_w"]["moments"].size(), 3u);
  EXPECT_EQ(tensors["layers.0.qkv_w"]["shape"], (std::vector<int64_t>{6, 2}));

  // Without rank 1 the bottom half of qkv is missing; without its moments the top shard is short.
  auto gap = assign_checkpoint_pieces({describe_checkpoint_holdings(p0, m0_all)});
  ASSERT_FALSE(gap.is_ok());
  EXPECT_EQ(gap.status().message(), "checkpoint: the ranks' pieces of tensor layers.0.qkv_w cover 6 of 12 elements");
  auto short_moments =
      assign_checkpoint_pieces({describe_checkpoint_holdings(p0, m0_all), describe_checkpoint_holdings(p1, {m1[1]})});
  ASSERT_FALSE(short_moments.is_ok());
  EXPECT_NE(short_moments.status().message().find("AdamW moment slices of tensor layers.0.qkv_w"), std::string::npos)
      << short_moments.status().message();
  EXPECT_NE(short_moments.status().message().find("cover 4 of 6 elements"), std::string::npos);
}

TEST(Checkpoint, SurvivesKillDuringSave) {
  const std::string dir = testing::temp_dir("kill") + "/ckpt";
  Scenario s = testing::small_scenario(testing::Variant::kLlama);
  s.model.hidden_size = 128;  // a few MB per checkpoint so that kills land inside the writes
  s.model.num_attention_heads = 4;
  s.model.ffn_hidden_size = 512;
  auto cfg = make_gpt_config(s);
  ASSERT_TRUE(cfg.is_ok());
  GptParams p;
  p.allocate(*cfg);
  init_params(p, *cfg, 1);
  AdamW opt;
  opt.init(*cfg);
  TrainProgress prog;
  ASSERT_TRUE(save_checkpoint(dir, s, *cfg, p, &opt, prog).is_ok());
  int kills_after_first_save = 0;
  for (int round = 0; round < 10; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // child: save new checkpoints as fast as it can until killed
      ::close(fds[0]);
      for (int it = 1;; ++it) {
        for (float& x : p.wte.data) x += 1.0f;  // every save differs
        TrainProgress pr;
        pr.iteration = round * 1000 + it;
        if (!save_checkpoint(dir, s, *cfg, p, &opt, pr).is_ok()) ::_exit(3);
        if (it == 1 && ::write(fds[1], "x", 1) != 1) ::_exit(4);  // one complete save: kill from now on
      }
    }
    ::close(fds[1]);
    char c = 0;
    ASSERT_EQ(::read(fds[0], &c, 1), 1) << "the saving child died before completing a save";
    ::close(fds[0]);
    // Kill at a different point of the following saves each round.
    std::this_thread::sleep_for(std::chrono::milliseconds(1 + 13 * round));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the saving child exited by itself (status " << status << ")";
    GptParams q;
    q.allocate(*cfg);
    AdamW o2;
    TrainProgress got;
    Status st = load_checkpoint(dir, *cfg, q, &o2, &got);
    ASSERT_TRUE(st.is_ok()) << "after kill " << round << ": " << st.to_string();
    // The loaded weights are those of the iteration the checkpoint names.
    const int it = got.iteration % 1000;
    EXPECT_GE(it, 1);
    EXPECT_NEAR(q.wte.data[0], p.wte.data[0] + static_cast<float>(it), 1e-3) << "iteration " << got.iteration;
    EXPECT_NEAR(q.wte.data.back(), p.wte.data.back() + static_cast<float>(it), 1e-3) << "iteration " << got.iteration;
    ++kills_after_first_save;
  }
  EXPECT_EQ(kills_after_first_save, 10);
}

// The distributed checkpoint's collective save (exec/io/dist_checkpoint.h) over a 1-process world:
// a process killed at arbitrary points of its saves always leaves `latest` naming a complete
// checkpoint (manifest written last, directory renamed, then `latest` replaced).
TEST(DistCheckpoint, SurvivesKillDuringSave) {
  const std::string dir = testing::temp_dir("dist_kill") + "/ckpt";
  Scenario s = testing::small_scenario(testing::Variant::kLlama);
  s.model.hidden_size = 128;
  s.model.num_attention_heads = 4;
  s.model.ffn_hidden_size = 512;
  const GptConfig cfg = make_gpt_config(s).value();
  GptParams p;
  p.allocate(cfg);
  init_params(p, cfg, 1);
  AdamW opt;
  opt.init(cfg);
  TrainProgress prog;
  ASSERT_TRUE(testing::save_self_distributed(dir, s, cfg, p, opt, prog).is_ok());
  for (int round = 0; round < 6; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      for (int it = 1;; ++it) {
        for (float& x : p.wte.data) x += 1.0f;
        TrainProgress pr;
        pr.iteration = round * 1000 + it;
        if (!testing::save_self_distributed(dir, s, cfg, p, opt, pr).is_ok()) ::_exit(3);
        if (it == 1 && ::write(fds[1], "x", 1) != 1) ::_exit(4);
      }
    }
    ::close(fds[1]);
    char c = 0;
    ASSERT_EQ(::read(fds[0], &c, 1), 1) << "the saving child died before completing a save";
    ::close(fds[0]);
    std::this_thread::sleep_for(std::chrono::milliseconds(1 + 17 * round));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the saving child exited by itself (status " << status << ")";
    GptParams q;
    q.allocate(cfg);
    AdamW o2;
    TrainProgress got;
    const Status st = load_checkpoint(dir, cfg, q, &o2, &got);
    ASSERT_TRUE(st.is_ok()) << "after kill " << round << ": " << st.to_string();
    const int it = got.iteration % 1000;
    EXPECT_GE(it, 1);
    EXPECT_NEAR(q.wte.data[0], p.wte.data[0] + static_cast<float>(it), 1e-3) << "iteration " << got.iteration;
    EXPECT_NEAR(q.wte.data.back(), p.wte.data.back() + static_cast<float>(it), 1e-3) << "iteration " << got.iteration;
  }
}

}  // namespace
}  // namespace eellm::exec
