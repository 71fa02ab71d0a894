// Shared helpers for the exec tests: small scenarios built in code, temporary directories.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "exec/backend/backend.h"
#include "model/scenario.h"
#include "model/scenario_io.h"
#include "sim/timeline.h"

namespace eellm::exec::testing {

// The three head/backbone variants the tests cover.
enum class Variant {
  kGpt2,     // LayerNorm, learned positions, GELU, biases, tied; post-exits with norm, tied
  kLlama,    // RMSNorm, RoPE, SwiGLU, GQA, no bias, untied; pre-exits with block+norm+MLP, untied
  kGpt2Mlp,  // GPT-2 backbone; post-exits with an MLP branch and no norm, untied projection
};

inline Scenario small_scenario(Variant v) {
  Scenario s;
  s.name = "test-small";
  ModelSpec& m = s.model;
  m.num_layers = 3;
  m.hidden_size = 32;
  m.num_attention_heads = 4;
  m.seq_length = 16;
  m.vocab_size = 61;  // padded to 64: exercises the masked padding columns
  m.make_vocab_size_divisible_by = 16;
  m.init_method_std = 0.05;  // larger than Megatron's 0.02 so that gradients are not tiny
  s.exits.exit_layer_nums = {1, 2};
  s.exits.exit_layer_weight = {0.3, 0.6};
  s.exits.use_exit_norm = true;
  if (v == Variant::kLlama) {
    m.normalization = Normalization::kRMSNorm;
    m.position_embedding_type = PositionEmbedding::kRope;
    m.activation = Activation::kSwiGLU;
    m.ffn_hidden_size = 48;
    m.num_query_groups = 2;
    m.add_bias_linear = false;
    m.untie_embeddings_and_output_weights = true;
    s.exits.exit_layer_nums = {2, 3};
    s.exits.pre_exit = true;
    s.exits.use_exit_block = true;
    s.exits.use_exit_mlp = true;
    s.exits.untie_exit_output_weights = true;
  } else if (v == Variant::kGpt2Mlp) {
    s.exits.use_exit_norm = false;
    s.exits.use_exit_mlp = true;
    s.exits.untie_exit_output_weights = true;
  }
  s.parallel.schedule = ScheduleKind::kNoPipelining;
  s.parallel.world_size = 1;
  s.training.micro_batch_size = 2;
  s.training.global_batch_size = 2;
  s.training.lr = 1e-3;
  s.training.min_lr = 1e-4;
  s.training.lr_warmup_iters = 3;
  s.training.train_iters = 10;
  s.training.weight_decay = 0.1;
  s.training.clip_grad = 1.0;
  s.training.params_dtype = DType::kFP32;
  s.execution.num_threads = 2;
  return s;
}

// A fresh empty directory under the build tree, removed and recreated on each call.
inline std::string temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path p = fs::path(EELLM_BINARY_DIR) / "exec_test_tmp" / (name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// n normally distributed floats (mean 0, standard deviation `scale`).
inline std::vector<float> randn(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A timeline event with only rank, op and interval set (measured/predicted timelines in tests).
// One attention forward and backward on `be` of random inputs of shape s (seed 7: the same inputs
// on every call): the output, the log-sum-exp and dqkv (the backward accumulates onto a random start).
struct AttentionResult {
  std::vector<float> y, lse, dqkv;
};
inline AttentionResult run_attention(Backend& be, const AttentionShape& s) {
  std::mt19937 rng(7);
  const size_t nqkv = static_cast<size_t>(s.B) * s.T * s.qkv_stride(),
               nout = static_cast<size_t>(s.B) * s.T * s.out_stride();
  const auto qkv = randn(nqkv, rng), dout = randn(nout, rng);
  AttentionResult o{std::vector<float>(nout), std::vector<float>(static_cast<size_t>(s.B) * s.NH * s.T),
                    randn(nqkv, rng)};
  be.attention_forward(o.y.data(), o.lse.data(), qkv.data(), s);
  be.attention_backward(o.dqkv.data(), dout.data(), o.y.data(), o.lse.data(), qkv.data(), s);
  return o;
}

// One fused-classifier call (logits, cross-entropy, dx, dweight) on `be` of random x (N×C) and
// weight (Vp×C, scale 0.2) drawn from `seed`, targets (i·37) mod V; the gradients accumulate onto
// dx0 and dw0 everywhere.
struct ClassifierResult {
  std::vector<float> loss, dx, dw;
};
inline ClassifierResult run_classifier(Backend& be, int N, int C, int V, int Vp, uint32_t seed, float dx0 = 0.0f,
                                       float dw0 = 0.0f) {
  std::mt19937 rng(seed);
  const auto x = randn(static_cast<size_t>(N) * C, rng), w = randn(static_cast<size_t>(Vp) * C, rng, 0.2f);
  std::vector<int32_t> tgt(static_cast<size_t>(N));
  for (int i = 0; i < N; ++i) tgt[static_cast<size_t>(i)] = (i * 37) % V;
  ClassifierResult o{std::vector<float>(static_cast<size_t>(N)), std::vector<float>(x.size(), dx0),
                     std::vector<float>(w.size(), dw0)};
  be.classifier_fused(o.loss.data(), o.dx.data(), o.dw.data(), nullptr, x.data(), w.data(), tgt.data(), N, C, V, Vp,
                      1.0f / N);
  return o;
}

inline TimelineEvent timeline_event(int rank, InstrKind op, TimeNs t0, TimeNs t1) {
  TimelineEvent e;
  e.rank = rank;
  e.op = op;
  e.t0 = t0;
  e.t1 = t1;
  return e;
}

// max |a − b| / max |b| (entries near 0 would make a per-entry relative error noise).
inline double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
    m = std::max(m, static_cast<double>(std::fabs(b[i])));
  }
  return d / std::max(m, 1e-30);
}

// tiny-ee's architecture shrunk to train in seconds on 2 cores: seq_length 64 (from 256), one
// microbatch of 16 per step, lr 2e-3, no evaluation during training, `iters` steps.
inline StatusOr<Scenario> shrunk_tiny_ee(int iters) {
  EELLM_ASSIGN_OR_RETURN(Scenario s, load_scenario("tiny-ee"));
  s.model.seq_length = 64;
  s.training.micro_batch_size = 16;
  s.training.global_batch_size = 16;
  s.training.train_iters = iters;
  s.training.lr = 2e-3;
  s.training.eval_interval = 0;
  return s;
}

}  // namespace eellm::exec::testing
