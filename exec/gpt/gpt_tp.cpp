// GptChunk's tensor- and sequence-parallel pieces (see gpt.h): the group set-up, the collectives
// around column-/row-parallel blocks, the vocabulary-parallel embedding and cross-entropy, and
// the norm-weight gradient sums of sequence parallelism.
#include <algorithm>
#include <cmath>
#include <limits>

#include "exec/backend/fast_math.h"
#include "exec/gpt/gpt.h"

namespace eellm::exec {

Status GptChunk::set_tensor_parallel(Communicator* tensor, double timeout_s, bool sequence_parallel) {
  const int n = tensor ? tensor->size() : 1;
  if (n != cfg_.tp)
    return Status::invalid_argument("tensor-parallel group of " + std::to_string(n) +
                                    " ranks for a chunk config local to tp " + std::to_string(cfg_.tp) +
                                    " (use local_config)");
  tp_comm_ = n > 1 ? tensor : nullptr;
  tp_timeout_ = timeout_s;
  tp_ = n;
  tp_rank_ = tensor ? tensor->rank() : 0;
  sp_ = sequence_parallel && n > 1;
  vocab_begin_ = tp_rank_ * cfg_.Vp;
  vocab_valid_ = std::clamp(cfg_.V - vocab_begin_, 0, cfg_.Vp);
  tp_status_ = Status::ok();
  return Status::ok();
}

void GptChunk::tp_all_reduce(float* p, size_t n) {
  if (tp_ == 1 || !tp_status_.is_ok()) return;
  be_->synchronize();
  tp_status_ = tp_comm_->all_reduce_sum(p, n, tp_timeout_);
}

const float* GptChunk::sp_gather(const float* shard, Tensor& full, int N) {
  resize(full, {N, cfg_.C});
  if (!tp_status_.is_ok()) return full.ptr();
  be_->synchronize();
  tp_status_ = tp_comm_->all_gather(shard, full.ptr(), static_cast<size_t>(rows(N)) * cfg_.C, tp_timeout_);
  return full.ptr();
}

void GptChunk::sp_scatter(const float* full, float* shard, int N) {
  if (!tp_status_.is_ok()) return;
  be_->synchronize();
  tp_status_ = tp_comm_->reduce_scatter_sum(full, shard, static_cast<size_t>(rows(N)) * cfg_.C, tp_timeout_);
}

const float* GptChunk::row_parallel_bias(const Tensor& b) const {
  return tp_rank_ == 0 ? opt(b) : nullptr;
}

void GptChunk::row_parallel_forward(float* out, const float* in, const Tensor& W, const Tensor& b, int N, int K) {
  if (!sp_) {  // all-reduce of the partial products (tp 1: the plain matmul)
    be_->matmul_forward(out, in, W.ptr(), row_parallel_bias(b), N, K, cfg_.C);
    tp_all_reduce(out, static_cast<size_t>(N) * cfg_.C);
    return;
  }
  resize(s_part_, {N, cfg_.C});
  be_->matmul_forward(s_part_.ptr(), in, W.ptr(), row_parallel_bias(b), N, K, cfg_.C);
  sp_scatter(s_part_.ptr(), out, N);
}

const float* GptChunk::column_parallel_input_grad(Tensor& full, int N) {
  if (!sp_) {
    tp_all_reduce(full.ptr(), full.numel());
    return full.ptr();
  }
  resize(s_rs_, {rows(N), cfg_.C});
  sp_scatter(full.ptr(), s_rs_.ptr(), N);
  return s_rs_.ptr();
}

GptChunk::NormGrads GptChunk::norm_grads(Tensor& w, Tensor& b, int slot) {
  if (!sp_) return {w.ptr(), b.empty() ? nullptr : b.ptr()};
  const size_t C = static_cast<size_t>(cfg_.C);
  if (s_ng_.numel() != 4 * C) resize(s_ng_, {static_cast<int64_t>(4 * C)});
  float* base = s_ng_.ptr() + static_cast<size_t>(slot) * C;
  be_->zero(base, 2 * C);
  return {base, b.empty() ? nullptr : base + C};
}

void GptChunk::finish_norm_grads(std::initializer_list<NormGradsTarget> targets) {
  if (!sp_) return;
  tp_all_reduce(s_ng_.ptr(), s_ng_.numel());  // each rank saw only its rows
  for (const NormGradsTarget& t : targets) {
    be_->add_inplace(t.w->ptr(), t.g.w, t.w->numel());
    if (t.g.b) be_->add_inplace(t.b->ptr(), t.g.b, t.b->numel());
  }
}

void GptChunk::local_tokens(const int32_t* tokens, int N) {
  s_tok_.resize(static_cast<size_t>(N));
  s_tok_out_.resize(static_cast<size_t>(N));
  for (int n = 0; n < N; ++n) {
    const int local = tokens[n] - vocab_begin_;
    const bool out = local < 0 || local >= cfg_.Vp;
    s_tok_[static_cast<size_t>(n)] = out ? 0 : local;
    s_tok_out_[static_cast<size_t>(n)] = out;
  }
}

// Vocabulary-parallel embedding: rows of other ranks' tokens are 0 before the sum over the group
// (all-reduce, or reduce-scatter onto this rank's rows with sequence parallelism); positions are
// added after the sum, once.
void GptChunk::tp_embedding_forward(float* out, const GptParams& p, const int32_t* tokens, int B, int T) {
  const GptConfig& c = cfg_;
  const int N = B * T, R = rows(N);
  Backend& be = *be_;
  local_tokens(tokens, N);
  float* full = out;
  if (sp_) resize(s_part_, {N, c.C}), full = s_part_.ptr();
  be.embedding_forward(full, s_tok_.data(), p.wte.ptr(), nullptr, B, T, c.C);
  for (int n = 0; n < N; ++n)
    if (s_tok_out_[static_cast<size_t>(n)]) be.zero(full + static_cast<size_t>(n) * c.C, c.C);
  if (sp_)
    sp_scatter(full, out, N);
  else
    tp_all_reduce(out, static_cast<size_t>(N) * c.C);
  if (c.rope) return;
  const int row0 = sp_ ? tp_rank_ * R : 0;
  for (int i = 0; i < R;) {
    const int t = (row0 + i) % T, run = std::min(R - i, T - t);
    be.add_inplace(out + static_cast<size_t>(i) * c.C, p.wpe.ptr() + static_cast<size_t>(t) * c.C,
                   static_cast<size_t>(run) * c.C);
    i += run;
  }
}

// d (R rows) → this rank's wte rows and all of wpe, from the gradient of every row (gathered with
// sequence parallelism; replicated otherwise), so no sum over the group is needed.
void GptChunk::tp_embedding_backward(GptParams& g, const float* d, const int32_t* tokens, int B, int T) {
  const GptConfig& c = cfg_;
  const int N = B * T;
  Backend& be = *be_;
  const float* dfull = sp_ ? sp_gather(d, s_gfull_, N) : d;
  local_tokens(tokens, N);
  resize(s_demb_, {N, c.C});
  be.copy(s_demb_.ptr(), dfull, s_demb_.numel());
  for (int n = 0; n < N; ++n)
    if (s_tok_out_[static_cast<size_t>(n)]) be.zero(s_demb_.ptr() + static_cast<size_t>(n) * c.C, c.C);
  be.embedding_backward(g.wte.ptr(), nullptr, s_demb_.ptr(), s_tok_.data(), B, T, c.C);
  if (!c.rope)
    for (int b = 0; b < B; ++b)
      be.add_inplace(g.wpe.ptr(), dfull + static_cast<size_t>(b) * T * c.C, static_cast<size_t>(T) * c.C);
}

// Vocabulary-parallel cross-entropy (Megatron's): local logits (N, Vp_l); per row the local max,
// Σ exp(logit − local max) over this rank's real-vocabulary columns and the target logit (0 unless
// this rank holds the target) are all-gathered and combined into the global log-sum-exp, so every
// rank gets the same losses; d(logits) = scale·(softmax − onehot) stays local. x: all N rows; dx:
// this rank's rows (N, or N/tp with sequence parallelism), zero on entry.
void GptChunk::tp_classifier(float* dx, Tensor& dW, Tensor* logits, const float* x, const Tensor& W,
                             const int32_t* targets, int N, float grad_scale) {
  const GptConfig& c = cfg_;
  Backend& be = *be_;
  const int Vl = c.Vp, valid = vocab_valid_;
  const size_t n3 = 3 * static_cast<size_t>(N);
  resize(s_logits_, {N, Vl}), resize(s_stats_, {static_cast<int64_t>(n3)});
  resize(s_gather_, {static_cast<int64_t>(n3) * tp_});
  be.matmul_forward(s_logits_.ptr(), x, W.ptr(), nullptr, N, c.C, Vl);
  be.synchronize();
  if (logits) std::copy(s_logits_.data.begin(), s_logits_.data.end(), logits->data.begin());
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int n = 0; n < N; ++n) {
    const float* row = s_logits_.ptr() + static_cast<size_t>(n) * Vl;
    float mx = ninf, sum = 0.0f;
    for (int j = 0; j < valid; ++j) mx = std::max(mx, row[j]);
    for (int j = 0; j < valid; ++j) sum += fast_expf(row[j] - mx);
    const int t = targets[n] - vocab_begin_;
    s_stats_.data[static_cast<size_t>(n)] = valid > 0 ? mx : 0.0f;  // empty shard: (0, Σ 0)
    s_stats_.data[static_cast<size_t>(N + n)] = sum;
    s_stats_.data[static_cast<size_t>(2 * N + n)] = t >= 0 && t < valid ? row[t] : 0.0f;
  }
  if (tp_status_.is_ok()) tp_status_ = tp_comm_->all_gather(s_stats_.ptr(), s_gather_.ptr(), n3, tp_timeout_);
  for (int n = 0; n < N; ++n) {
    float M = ninf, S = 0.0f, tl = 0.0f;
    for (int r = 0; r < tp_; ++r)
      if (s_gather_.data[r * n3 + static_cast<size_t>(N + n)] > 0.0f)
        M = std::max(M, s_gather_.data[r * n3 + static_cast<size_t>(n)]);
    for (int r = 0; r < tp_; ++r) {
      const float* g = s_gather_.ptr() + r * n3;
      if (g[N + n] > 0.0f) S += g[N + n] * fast_expf(g[n] - M);
      tl += g[2 * N + n];
    }
    const float lse = M + std::log(S);
    s_losses_.data[static_cast<size_t>(n)] = lse - tl;
    s_stats_.data[static_cast<size_t>(n)] = lse;
  }
  if (!dx) return;
  for (int n = 0; n < N; ++n) {
    float* row = s_logits_.ptr() + static_cast<size_t>(n) * Vl;
    const float lse = s_stats_.data[static_cast<size_t>(n)];
    for (int j = 0; j < valid; ++j) row[j] = fast_expf(row[j] - lse) * grad_scale;
    for (int j = valid; j < Vl; ++j) row[j] = 0.0f;
    const int t = targets[n] - vocab_begin_;
    if (t >= 0 && t < valid) row[t] -= grad_scale;
  }
  if (!sp_) {
    be.matmul_backward(dx, dW.ptr(), nullptr, s_logits_.ptr(), x, W.ptr(), N, c.C, Vl);
    tp_all_reduce(dx, static_cast<size_t>(N) * c.C);
    return;
  }
  resize(s_part_, {N, c.C});
  be.zero(s_part_.ptr(), s_part_.numel());
  be.matmul_backward(s_part_.ptr(), dW.ptr(), nullptr, s_logits_.ptr(), x, W.ptr(), N, c.C, Vl);
  sp_scatter(s_part_.ptr(), dx, N);  // dx was zero
}

}  // namespace eellm::exec
