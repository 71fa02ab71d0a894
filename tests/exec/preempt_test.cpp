// Preemption of the single-process trainer (exec/train/preempt.h), without Slurm: SIGUSR1 or
// SIGTERM during training stops it after the current step with a checkpoint and kCancelled; the
// runs resumed through checkpoint_to_resume() give the uninterrupted losses, each iteration once.
#include "exec/train/preempt.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "exec/io/checkpoint.h"
#include "exec/train/trainer.h"
#include "test_util.h"

namespace eellm::exec {
namespace {

// (step, [loss, final, exits...]) per iteration line of a metrics file.
std::vector<std::pair<int, std::vector<double>>> curve(const std::string& path) {
  std::vector<std::pair<int, std::vector<double>>> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("eval")) continue;
    std::vector<double> v{j["loss"].get<double>(), j["final"].get<double>()};
    for (double e : j["exits"]) v.push_back(e);
    out.emplace_back(j["step"].get<int>(), v);
  }
  return out;
}

Status train_once(const Scenario& s, TrainOptions o) {
  auto tr = Trainer::create(s, o);
  if (!tr.is_ok()) return tr.status();
  return (*tr)->train();
}

TEST(Preempt, SignalCheckpointsAndResumeEqualsUninterrupted) {
  const std::string dir = testing::temp_dir("preempt");
  Scenario s = testing::small_scenario(testing::Variant::kGpt2);
  s.model.vocab_size = 256;
  s.training.train_iters = 6;
  TrainOptions ref;
  ref.metrics_path = dir + "/uninterrupted.jsonl";
  ASSERT_TRUE(train_once(s, ref).is_ok());

  install_preempt_handlers();
  const std::string ckpt = dir + "/ckpt";
  EXPECT_EQ(checkpoint_to_resume(ckpt).value(), "");  // nothing yet: a fresh start
  TrainOptions o;
  o.save_dir = ckpt;
  o.metrics_path = dir + "/preempted.jsonl";
  // Three preempted runs (SIGUSR1, SIGTERM, SIGUSR1: one step each), then one to the end.
  const int signals[] = {SIGUSR1, SIGTERM, SIGUSR1};
  for (int k = 0; k < 3; ++k) {
    o.resume_dir = checkpoint_to_resume(ckpt).value();
    EXPECT_EQ(o.resume_dir.empty(), k == 0);
    std::raise(signals[k]);  // arrives before the step; the trainer stops after it
    ASSERT_TRUE(preempt_requested());
    const Status st = train_once(s, o);
    clear_preempt_request();
    ASSERT_TRUE(st.is_cancelled()) << st.to_string();
    const std::string name = signals[k] == SIGUSR1 ? "SIGUSR1" : "SIGTERM";
    EXPECT_NE(st.message().find("stopped by " + name + " after iteration " + std::to_string(k + 1)), std::string::npos)
        << st.message();
    EXPECT_TRUE(std::filesystem::exists(ckpt + "/" + checkpoint_iter_name(k + 1) + "/state.json"));
  }
  o.resume_dir = checkpoint_to_resume(ckpt).value();
  ASSERT_TRUE(train_once(s, o).is_ok());
  const auto a = curve(ref.metrics_path), b = curve(o.metrics_path);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i].first, static_cast<int>(i) + 1) << "each iteration once, in order";
    EXPECT_EQ(a[i].second, b[i].second) << "iteration " << i + 1;  // bitwise: same data, weights, moments
  }
}

TEST(Preempt, LastStepFinishesNormallyAndBadLatestIsAnError) {
  const std::string dir = testing::temp_dir("preempt_last");
  Scenario s = testing::small_scenario(testing::Variant::kGpt2);
  s.model.vocab_size = 256;
  s.training.train_iters = 1;
  install_preempt_handlers();
  TrainOptions o;
  o.save_dir = dir + "/ckpt";
  std::raise(SIGUSR1);
  const Status st = train_once(s, o);  // the signal came during the last step: the run is complete
  clear_preempt_request();
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(checkpoint_to_resume(o.save_dir).value(), o.save_dir);
  std::ofstream(o.save_dir + "/latest") << "iter_0000099\n";  // names a checkpoint that is not there
  auto bad = checkpoint_to_resume(o.save_dir);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("--resume-latest " + o.save_dir), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("iter_0000099"), std::string::npos);
  // Without a save directory the stop says that nothing was saved.
  std::raise(SIGTERM);
  EXPECT_NE(preempted_status(3, "").message().find("no checkpoint written"), std::string::npos);
  clear_preempt_request();
}

}  // namespace
}  // namespace eellm::exec
