// Training behaviour: schedules, zero-weight exits, chunked model = whole model, gradient
// accumulation, bitwise resume, and each class of bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "exec/gpt/optimizer.h"
#include "exec/io/data.h"
#include "exec/io/dist_checkpoint.h"
#include "exec/io/safetensors.h"
#include "exec/train/trainer.h"
#include "model/layout.h"
#include "test_util.h"

namespace eellm::exec {
namespace {
namespace fs = std::filesystem;
using testing::Variant;

// A byte-level scenario of the small test model and a token file of real text for it.
Scenario byte_scenario(Variant v) {
  Scenario s = testing::small_scenario(v);
  s.model.vocab_size = 256;
  s.model.make_vocab_size_divisible_by = 128;
  s.training.train_iters = 20;
  return s;
}

std::string corpus_file(const std::string& dir, size_t bytes = 40000) {
  auto text = read_corpus(default_corpus_files());
  EXPECT_TRUE(text.is_ok()) << text.status().to_string();
  const std::string path = dir + "/corpus.tok";
  EXPECT_TRUE(write_token_file(path, encode_bytes(text->substr(0, bytes)), kByteVocab).is_ok());
  return path;
}

std::unique_ptr<Trainer> make_trainer(const Scenario& s, TrainOptions o) {
  auto tr = Trainer::create(s, o);
  EXPECT_TRUE(tr.is_ok()) << tr.status().to_string();
  return tr.is_ok() ? std::move(tr).value() : nullptr;
}

TEST(Schedules, ExitWeightWarmUp) {
  ExitSpec e;
  e.exit_layer_nums = {2, 4};
  e.exit_layer_weight = {1.0, 0.5};
  e.exit_layer_weight_init = {0.0};
  e.exit_layer_weight_warmup_iters = 10;
  EXPECT_DOUBLE_EQ(exit_loss_weight_at(e, 0, 0), 0.0);
  EXPECT_DOUBLE_EQ(exit_loss_weight_at(e, 0, 5), 0.5);
  EXPECT_DOUBLE_EQ(exit_loss_weight_at(e, 1, 5), 0.25);
  EXPECT_DOUBLE_EQ(exit_loss_weight_at(e, 0, 10), 1.0);
  EXPECT_DOUBLE_EQ(exit_loss_weight_at(e, 1, 1000), 0.5);
  e.exit_layer_weight_warmup_style = WarmupStyle::kCosine;
  EXPECT_NEAR(exit_loss_weight_at(e, 0, 5), 0.5, 1e-12);
  EXPECT_NEAR(exit_loss_weight_at(e, 0, 2), 0.5 * (1 - std::cos(M_PI * 0.2)), 1e-12);
}

TEST(Schedules, LearningRate) {
  TrainingSpec t;
  t.lr = 1e-3;
  t.min_lr = 1e-4;
  t.lr_warmup_iters = 10;
  t.train_iters = 110;
  EXPECT_DOUBLE_EQ(lr_at(t, 0), 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(t, 9), 1e-3);
  EXPECT_NEAR(lr_at(t, 60), 1e-4 + 0.5 * 9e-4, 1e-15);  // halfway through the cosine
  EXPECT_DOUBLE_EQ(lr_at(t, 110), 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(t, 500), 1e-4);
  t.lr_decay_style = LrDecayStyle::kLinear;
  EXPECT_NEAR(lr_at(t, 60), 1e-4 + 0.5 * 9e-4, 1e-15);
}

TEST(Training, ZeroWeightExitsTrainExactlyLikeNoExits) {
  const std::string dir = testing::temp_dir("zero_exits");
  TrainOptions o;
  o.data_path = corpus_file(dir);
  o.num_threads = 2;
  Scenario with = byte_scenario(Variant::kGpt2);
  with.exits.exit_layer_weight = {0.0};
  Scenario without = with;
  without.exits = ExitSpec{};
  auto a = make_trainer(with, o), b = make_trainer(without, o);
  ASSERT_TRUE(a && b);
  for (int i = 0; i < 4; ++i) {
    auto ra = a->step(), rb = b->step();
    ASSERT_TRUE(ra.is_ok() && rb.is_ok());
    EXPECT_EQ(ra->final_loss, rb->final_loss) << "step " << i;
    EXPECT_EQ(ra->grad_norm, rb->grad_norm) << "step " << i;
  }
  auto pb = b->model().params().named();
  for (auto& [name, t] : pb) {
    bool found = false;
    for (auto& [na, ta] : a->model().params().named())
      if (na == name) {
        found = true;
        EXPECT_EQ(ta->data, t->data) << name;
      }
    EXPECT_TRUE(found) << name;
  }
}

TEST(Training, ChunkedModelEqualsWholeModel) {
  // The pipeline API: three chunks [0,1) [1,2) [2,3) with an exit at each chunk boundary give the
  // same losses and parameters as one chunk.
  for (Variant v : {Variant::kGpt2, Variant::kLlama}) {
    const std::string dir = testing::temp_dir("chunks");
    TrainOptions o;
    o.data_path = corpus_file(dir);
    o.num_threads = 2;
    const Scenario s = byte_scenario(v);
    auto whole = make_trainer(s, o);
    o.chunk_layers = {1, 1, 1};
    auto split = make_trainer(s, o);
    ASSERT_TRUE(whole && split);
    for (int i = 0; i < 3; ++i) {
      auto ra = whole->step(), rb = split->step();
      ASSERT_TRUE(ra.is_ok() && rb.is_ok());
      EXPECT_EQ(ra->exit_loss, rb->exit_loss);
      EXPECT_EQ(ra->final_loss, rb->final_loss);
    }
    auto pa = whole->model().params().named(), pb = split->model().params().named();
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pa[i].second->data, pb[i].second->data) << pa[i].first;
  }
}

TEST(Training, GradientAccumulationMatchesOneLargeMicrobatch) {
  const std::string dir = testing::temp_dir("accum");
  TrainOptions o;
  o.data_path = corpus_file(dir);
  o.num_threads = 2;
  Scenario one = byte_scenario(Variant::kLlama);
  one.training.micro_batch_size = 4;
  one.training.global_batch_size = 4;
  Scenario four = one;
  four.training.micro_batch_size = 1;  // 4 microbatches of 1 see the same 4 sequences
  auto a = make_trainer(one, o), b = make_trainer(four, o);
  ASSERT_TRUE(a && b);
  for (int i = 0; i < 2; ++i) {
    auto ra = a->step(), rb = b->step();
    ASSERT_TRUE(ra.is_ok() && rb.is_ok());
    EXPECT_NEAR(ra->final_loss, rb->final_loss, 1e-5);
    EXPECT_NEAR(ra->grad_norm, rb->grad_norm, 1e-4 * ra->grad_norm);
  }
  auto pa = a->model().params().named(), pb = b->model().params().named();
  for (size_t i = 0; i < pa.size(); ++i)
    for (size_t k = 0; k < pa[i].second->numel(); ++k)
      ASSERT_NEAR(pa[i].second->data[k], pb[i].second->data[k], 1e-5) << pa[i].first;
}

TEST(Training, ResumeIsBitwiseIdentical) {
  const std::string dir = testing::temp_dir("resume");
  TrainOptions o;
  o.data_path = corpus_file(dir, 1000);  // small: the run crosses an epoch boundary
  o.num_threads = 2;
  Scenario s = byte_scenario(Variant::kGpt2);
  s.training.micro_batch_size = 4;
  s.training.global_batch_size = 8;
  o.steps = 12;
  auto straight = make_trainer(s, o);
  ASSERT_TRUE(straight);
  ASSERT_TRUE(straight->train().is_ok());

  o.steps = 5;
  o.save_dir = dir + "/ckpt";
  auto first = make_trainer(s, o);
  ASSERT_TRUE(first->train().is_ok());
  o.steps = 12;
  o.save_dir.clear();
  o.resume_dir = dir + "/ckpt";
  auto resumed = make_trainer(s, o);
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->iteration(), 5);
  ASSERT_TRUE(resumed->train().is_ok());
  EXPECT_EQ(resumed->iteration(), 12);
  EXPECT_GT(straight->data().position().epoch, 0u);
  EXPECT_EQ(straight->data().position().index, resumed->data().position().index);
  auto pa = straight->model().params().named(), pb = resumed->model().params().named();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_EQ(pa[i].second->data, pb[i].second->data) << pa[i].first;
}

TEST(BadInput, DataFiles) {
  const std::string dir = testing::temp_dir("bad_data");
  const Scenario s = byte_scenario(Variant::kGpt2);
  TrainOptions o;
  o.num_threads = 2;
  o.data_path = dir + "/missing.tok";
  auto r = Trainer::create(s, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("missing.tok"), std::string::npos);

  std::ofstream(dir + "/empty.tok").close();
  o.data_path = dir + "/empty.tok";
  r = Trainer::create(s, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("is empty"), std::string::npos) << r.status().to_string();

  o.data_path = dir;  // a directory cannot be read as a file
  r = Trainer::create(s, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find(dir), std::string::npos) << r.status().to_string();

  std::ofstream(dir + "/text.tok") << "plain text, not a token file";
  o.data_path = dir + "/text.tok";
  r = Trainer::create(s, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("EELLMTOK"), std::string::npos) << r.status().to_string();

  const std::string good = corpus_file(dir, 1000);
  std::string bytes = *read_file(good);
  fs::resize_file(good, bytes.size() - 10);  // truncated
  o.data_path = good;
  r = Trainer::create(s, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().to_string();

  ASSERT_TRUE(write_token_file(dir + "/tiny.tok", encode_bytes("too short"), kByteVocab).is_ok());
  o.data_path = dir + "/tiny.tok";
  r = Trainer::create(s, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("seq_length+1"), std::string::npos) << r.status().to_string();
}

TEST(BadInput, CheckpointFromAnotherScenarioOrCorrupted) {
  const std::string dir = testing::temp_dir("bad_ckpt");
  TrainOptions o;
  o.data_path = corpus_file(dir);
  o.num_threads = 2;
  o.steps = 1;
  o.save_dir = dir + "/ckpt";
  ASSERT_TRUE(make_trainer(byte_scenario(Variant::kGpt2), o)->train().is_ok());
  o.save_dir.clear();
  o.resume_dir = dir + "/ckpt";
  Scenario other = byte_scenario(Variant::kGpt2);
  other.model.hidden_size = 64;
  auto r = Trainer::create(other, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("hidden_size is 32 there but 64 here"), std::string::npos)
      << r.status().to_string();

  auto sub = resolve_checkpoint_dir(dir + "/ckpt");
  ASSERT_TRUE(sub.is_ok());
  {
    std::fstream f(*sub + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-5, std::ios::end);
    f.put('\x7f');
  }
  r = Trainer::create(byte_scenario(Variant::kGpt2), o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos) << r.status().to_string();

  o.resume_dir = dir + "/nowhere";
  r = Trainer::create(byte_scenario(Variant::kGpt2), o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST(BadInput, NonFiniteLossStopsNamingStepAndKeepsCheckpoint) {
  const std::string dir = testing::temp_dir("nan");
  TrainOptions o;
  o.data_path = corpus_file(dir);
  o.num_threads = 2;
  o.steps = 2;
  o.save_dir = dir + "/ckpt";
  Scenario s = byte_scenario(Variant::kGpt2);
  auto tr = make_trainer(s, o);
  ASSERT_TRUE(tr->train().is_ok());
  const std::string latest_before = *read_file(dir + "/ckpt/latest");
  // Poison one weight of layer 1: every head from exit@2 on sees NaN.
  tr->model().params().layers[1].fc_w.data[3] = std::numeric_limits<float>::quiet_NaN();
  auto r = tr->step();
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("step 3"), std::string::npos) << r.status().to_string();
  EXPECT_NE(r.status().message().find("exit@2"), std::string::npos) << r.status().to_string();
  EXPECT_EQ(tr->iteration(), 2);
  EXPECT_EQ(*read_file(dir + "/ckpt/latest"), latest_before);
  TrainProgress p;
  GptParams params;
  params.allocate(tr->config());
  ASSERT_TRUE(load_checkpoint(dir + "/ckpt", tr->config(), params, nullptr, &p).is_ok());
  EXPECT_EQ(p.iteration, 2);
  for (float x : params.layers[1].fc_w.data) ASSERT_TRUE(std::isfinite(x));

  // A poisoned gradient (finite loss) is named by tensor.
  tr->model().params().layers[1].fc_w.data[3] = 0.0f;
  tr->model().params().layers[2].fcproj_b.data[0] = std::numeric_limits<float>::infinity();
  r = tr->step();
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("step 3"), std::string::npos) << r.status().to_string();
}

}  // namespace
}  // namespace eellm::exec
