// Checkpoints: safetensors round trip, and atomicity — a process killed (SIGKILL) at arbitrary
// points of a save always leaves a checkpoint that loads and verifies.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "exec/checkpoint.h"
#include "exec/safetensors.h"
#include "test_util.h"

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
  for (int round = 0; round < 12; ++round) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // child: save new checkpoints as fast as it can until killed
      for (int it = 1;; ++it) {
        for (float& x : p.wte.data) x += 1.0f;  // every save differs
        TrainProgress pr;
        pr.iteration = round * 1000 + it;
        if (!save_checkpoint(dir, s, *cfg, p, &opt, pr).is_ok()) ::_exit(3);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + 37 * round % 150));
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
    if (got.iteration > 0) ++kills_after_first_save;
    EXPECT_FLOAT_EQ(q.wte.data[0], p.wte.data[0] + static_cast<float>(it)) << "iteration " << got.iteration;
  }
  EXPECT_GT(kills_after_first_save, 0);
}

}  // namespace
}  // namespace eellm::exec
