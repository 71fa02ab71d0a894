// Test support for exec/runtime: a small in-code early-exit scenario (tiny-ee shrunk so an MPI test
// step takes milliseconds), deterministic microbatches, and the single-process reference the
// distributed runs must match. Header-only; used by tests/exec and tests/mpi.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "exec/gpt/gpt.h"
#include "exec/gpt/gpt_model.h"
#include "exec/gpt/optimizer.h"
#include "model/layout.h"
#include "model/scenario_io.h"
#include "sim/schedule.h"

namespace eellm::exec::testing {

// tiny-ee (LayerNorm, learned positions, GELU, tied embedding and exits with a norm) at 8 layers,
// hidden 32, 4 heads, 16 tokens, exits after layers 2 and 5; m microbatches of 2 per replica;
// tp-way tensor parallelism.
inline Scenario tiny_dist_scenario(int pp, int dp, int vp, ScheduleKind kind, int m, int tp = 1) {
  auto loaded = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/tiny-ee.yaml");
  Scenario s = loaded.value();
  s.model.num_layers = 8;
  s.model.hidden_size = 32;
  s.model.num_attention_heads = 4;
  s.model.seq_length = 16;
  s.model.max_position_embeddings = 16;
  s.exits.exit_layer_nums = {2, 5};
  s.exits.exit_layer_weight = {0.5, 0.25};
  s.parallel.pipeline_model_parallel_size = pp;
  s.parallel.virtual_pipeline_model_parallel_size = vp;
  s.parallel.data_parallel_size = dp;
  s.parallel.tensor_model_parallel_size = tp;
  s.parallel.world_size = tp * pp * dp;
  s.parallel.schedule = kind;
  // Exits on stages 0 and 2 of 4: EE-LLM's released fill order cannot run them (its code waits for
  // a gradient that never comes); eellm's own variant can (tests/mpi/ee_llm_golden_mpi_test.cpp
  // runs EE-LLM's order).
  s.parallel.fill_semantics = FillSemantics::kExitTruncated;
  s.training.micro_batch_size = 2;
  s.training.global_batch_size = 2 * m * dp;
  s.training.lr = 1e-3;
  s.training.lr_warmup_iters = 0;
  s.training.lr_decay_style = LrDecayStyle::kConstant;
  s.training.adam_eps = 1e-6;  // keeps AdamW's first steps well-conditioned for tiny gradients
  s.training.clip_grad = 1.0;
  s.execution.num_threads = 1;
  return s;
}

// A variant that uses every tensor-parallel sharding rule: RoPE, SwiGLU (fc rows [a | b]), RMSNorm,
// GQA (2 kv groups for 4 heads), biases, untied final and exit heads, exit heads with a block
// and an MLP, and a vocabulary of 199 (padded to 200 at tp 2: the last row of rank 1 is padding;
// the letters 'a'..'z' = 97..122 fall on both halves).
inline Scenario every_tp_rule(Scenario s) {
  s.model.position_embedding_type = PositionEmbedding::kRope;
  s.model.activation = Activation::kSwiGLU;
  s.model.normalization = Normalization::kRMSNorm;
  s.model.num_query_groups = 2;
  s.model.ffn_hidden_size = 64;
  s.model.vocab_size = 199;
  s.model.make_vocab_size_divisible_by = 1;
  s.model.untie_embeddings_and_output_weights = true;
  s.exits.use_exit_block = true;
  s.exits.use_exit_mlp = true;
  s.exits.untie_exit_output_weights = true;
  return s;
}

// Global microbatch g of an iteration: inputs and next-token targets from a seeded stream.
inline void microbatch_tokens(int iteration, int g, int B, int T, int32_t* in, int32_t* tgt) {
  std::mt19937 rng(static_cast<uint32_t>(7919 * iteration + 104729 * g + 17));
  std::vector<int32_t> seq(static_cast<size_t>(T) + 1);
  for (int b = 0; b < B; ++b) {
    // A learnable stream: runs of a small alphabet with a seeded start.
    int c = static_cast<int>(rng() % 26);
    for (auto& v : seq) v = 'a' + (c = (c + 1 + static_cast<int>(rng() % 3 == 0)) % 26);
    for (int t = 0; t < T; ++t)
      in[b * T + t] = seq[static_cast<size_t>(t)], tgt[b * T + t] = seq[static_cast<size_t>(t) + 1];
  }
}

// One DP replica's m microbatches (m·B·T tokens each for inputs and targets).
inline void replica_tokens(int iteration, int dp_rank, int m, int B, int T, std::vector<int32_t>& in,
                           std::vector<int32_t>& tgt) {
  const size_t n = static_cast<size_t>(B) * T;
  in.assign(n * m, 0), tgt.assign(n * m, 0);
  for (int j = 0; j < m; ++j) microbatch_tokens(iteration, dp_rank * m + j, B, T, &in[j * n], &tgt[j * n]);
}

struct ReferenceRun {
  GptParams params;
  std::vector<double> exit_loss;  // mean over the microbatches whose forward reached the exit
  double final_loss = 0;
  double grad_norm = 0;
};

// The single-process run of `iters` iterations for schedules whose every microbatch trains the
// whole model (none, GPipe, 1F1B, interleaved, ZB-H1, EE 1F1B): GptModel + AdamW, exactly what
// exec/trainer does. With ee_tuning only the exit heads' tensors are updated (frozen backbone)
// and the final head is not trained.
inline ReferenceRun reference_full(const Scenario& s, int iters, bool ee_tuning) {
  const GptConfig cfg = make_gpt_config(s).value();
  const Layout lay = derive_layout(s).value();
  auto be = make_cpu_backend(1);
  GptModel model(cfg, *be);
  init_params(model.params(), cfg, s.training.seed);
  AdamW adam;
  adam.init(cfg);
  const int B = s.training.micro_batch_size, T = s.model.seq_length;
  const int M = lay.num_microbatches * lay.dp;
  ReferenceRun r;
  std::vector<int32_t> in(static_cast<size_t>(B) * T), tgt(in.size());
  for (int it = 0; it < iters; ++it) {
    HeadWeights w;
    for (int e = 0; e < cfg.num_exits(); ++e)
      w.exits.push_back(static_cast<float>(exit_loss_weight_at(s.exits, e, it) / M));
    w.final_weight = ee_tuning ? 0.0f : static_cast<float>(s.exits.final_exit_weight / M);
    model.zero_grads();
    r.exit_loss.assign(static_cast<size_t>(cfg.num_exits()), 0.0);
    r.final_loss = 0;
    for (int g = 0; g < M; ++g) {
      microbatch_tokens(it, g, B, T, in.data(), tgt.data());
      MicrobatchLosses l = model.run_microbatch(in.data(), tgt.data(), B, T, w, true);
      for (size_t e = 0; e < l.exits.size(); ++e) r.exit_loss[e] += l.exits[e] / M;
      r.final_loss += l.final_loss / M;
    }
    if (!ee_tuning) {
      r.grad_norm = adam.step(*be, model.params(), model.grads(), s.training, it).grad_norm;
      continue;
    }
    // Exit heads only: norm, clipping and AdamW over exits.* tensors (as the runtime does).
    auto P = model.params().params();
    auto G = model.grads().named();
    auto Mo = adam.m().named();
    auto V = adam.v().named();
    double sq = 0;
    for (size_t i = 0; i < P.size(); ++i)
      if (P[i].role.owner == ParamOwner::kExit) sq += be->sum_squares(G[i].second->ptr(), G[i].second->numel());
    r.grad_norm = std::sqrt(sq);
    const TrainingSpec& t = s.training;
    const double clip = t.clip_grad > 0 && r.grad_norm > t.clip_grad ? t.clip_grad / (r.grad_norm + 1e-6) : 1.0;
    for (size_t i = 0; i < P.size(); ++i) {
      if (P[i].role.owner != ParamOwner::kExit) continue;
      const float wd = P[i].role.decays() ? static_cast<float>(t.weight_decay) : 0.0f;
      be->adamw_step(P[i].tensor->ptr(), G[i].second->ptr(), Mo[i].second->ptr(), V[i].second->ptr(),
                     P[i].tensor->numel(), static_cast<float>(lr_at(t, it)), static_cast<float>(t.adam_beta1),
                     static_cast<float>(t.adam_beta2), static_cast<float>(t.adam_eps), wd, static_cast<float>(clip),
                     it + 1);
    }
  }
  r.params = model.params();
  return r;
}

// EE-LLM bubble filling (vp = 1), single process: per microbatch, the stages that run its forward
// and backward are read off the schedule (fill microbatches stop at their deepest exit, cool-down
// microbatches skip the backward of the first stages); the chunks are chained in one process.
// `schedule`: the one to read (e.g. simulate()'s); null → make_schedule's at its default ratio.
inline ReferenceRun reference_from_schedule(const Scenario& s, int iters, const Schedule* schedule = nullptr) {
  const GptConfig cfg = make_gpt_config(s).value();
  const Layout lay = derive_layout(s).value();
  const Schedule sched = schedule ? *schedule : make_schedule(s, lay).value();
  auto be = make_cpu_backend(1);
  const int pp = lay.pp, m = lay.num_microbatches, B = s.training.micro_batch_size, T = s.model.seq_length;
  const size_t act = static_cast<size_t>(B) * T * cfg.C;
  GptParams params, grads;
  params.allocate(cfg);
  grads.allocate(cfg);
  init_params(params, cfg, s.training.seed);
  AdamW adam;
  adam.init(cfg);
  std::vector<std::unique_ptr<GptChunk>> chunks;
  for (int r = 0; r < pp; ++r) {
    const ChunkLayout& c = lay.chunk(r, 0);
    chunks.push_back(std::make_unique<GptChunk>(cfg, c.first_layer, c.num_layers, c.has_embedding, c.has_final_head));
    chunks.back()->set_backend(be.get());
  }
  ReferenceRun out;
  const int E = cfg.num_exits();
  std::vector<int32_t> in(static_cast<size_t>(B) * T), tgt(in.size());
  for (int it = 0; it < iters; ++it) {
    for (auto& [n, g] : grads.named()) g->zero();
    std::vector<double> sum(static_cast<size_t>(E + 1), 0.0), cnt(sum.size(), 0.0);
    for (int d = 0; d < lay.dp; ++d) {
      for (int j = 0; j < m; ++j) {
        microbatch_tokens(it, d * m + j, B, T, in.data(), tgt.data());
        std::vector<int> fwd(static_cast<size_t>(pp), 0), bwd(fwd), trunc(fwd);
        for (int r = 0; r < pp; ++r)
          for (const Instr& x : sched.ranks[static_cast<size_t>(r)]) {
            if (x.microbatch != j) continue;
            if (x.kind == InstrKind::kForward)
              fwd[static_cast<size_t>(r)] = 1, trunc[static_cast<size_t>(r)] = x.has(kTruncated);
            if (x.kind == InstrKind::kBackward) bwd[static_cast<size_t>(r)] = 1;
          }
        HeadWeights w;
        for (int e = 0; e < E; ++e) w.exits.push_back(static_cast<float>(exit_loss_weight_at(s.exits, e, it) / m));
        std::vector<ChunkState> st(static_cast<size_t>(pp));
        int last = -1;
        for (int r = 0; r < pp && fwd[static_cast<size_t>(r)]; ++r) {
          w.final_weight = trunc[static_cast<size_t>(r)] ? 0.0f : static_cast<float>(s.exits.final_exit_weight / m);
          chunks[static_cast<size_t>(r)]->forward(st[static_cast<size_t>(r)], params, grads, in.data(),
                                                  r ? st[static_cast<size_t>(r - 1)].output() : nullptr, tgt.data(), B,
                                                  T, w, bwd[static_cast<size_t>(r)] != 0);
          const auto& ex = chunks[static_cast<size_t>(r)]->exits();
          for (size_t k = 0; k < ex.size(); ++k)
            sum[static_cast<size_t>(ex[k])] += st[static_cast<size_t>(r)].exit_loss[k],
                cnt[static_cast<size_t>(ex[k])] += 1;
          if (r == pp - 1 && !trunc[static_cast<size_t>(r)])
            sum.back() += st[static_cast<size_t>(r)].final_loss, cnt.back() += 1;
          last = r;
        }
        std::vector<float> dout, dnext(act);
        for (int r = last; r >= 0; --r) {
          if (!bwd[static_cast<size_t>(r)]) break;  // the schedule stops this microbatch's backward here
          std::fill(dnext.begin(), dnext.end(), 0.0f);
          chunks[static_cast<size_t>(r)]->backward(st[static_cast<size_t>(r)], params, grads,
                                                   dout.empty() ? nullptr : dout.data(), r ? dnext.data() : nullptr);
          dout = dnext;
        }
      }
    }
    // DP: the runtime averages replica gradients; each replica's weights were 1/m.
    for (auto& [n, g] : grads.named())
      for (float& v : g->data) v /= static_cast<float>(lay.dp);
    out.grad_norm = adam.step(*be, params, grads, s.training, it).grad_norm;
    out.exit_loss.clear();
    for (int e = 0; e < E; ++e)
      out.exit_loss.push_back(cnt[static_cast<size_t>(e)] ? sum[static_cast<size_t>(e)] / cnt[static_cast<size_t>(e)]
                                                          : 0.0);
    out.final_loss = cnt.back() ? sum.back() / cnt.back() : 0.0;
  }
  out.params = params;
  return out;
}

}  // namespace eellm::exec::testing
