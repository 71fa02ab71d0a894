// The decoding loops over the Decoder: full / KV recomputation (one step = one token per sequence)
// and self-speculative (one round = draft through an early exit, verify with the rest).
#include <algorithm>
#include <chrono>
#include <ctime>

#include "exec/generate/generate.h"
#include "exec/io/data.h"

namespace eellm::exec {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace

Generator::Generator(const GptConfig& cfg, const GptParams& params, Backend& be, const GenerateOptions& o, int batch)
    : cfg_(cfg), o_(o), dec_(cfg, params, be, batch), seq_(static_cast<size_t>(batch)) {}

StatusOr<std::unique_ptr<Generator>> Generator::create(const GptConfig& cfg, const GptParams& params, Backend& be,
                                                       const std::vector<std::vector<int32_t>>& prompts,
                                                       const GenerateOptions& o) {
  EELLM_RETURN_IF_ERROR(check_generate_options(cfg, o));
  EELLM_RETURN_IF_ERROR(check_prompts(cfg, prompts));
  if (o.method == InferenceMethod::kPipeline)
    return Status::failed_precondition(
        "method pipeline runs its stages on MPI ranks: start it under mpirun (eellm generate --method pipeline), "
        "or use recompute for the same tokens in one process");
  std::unique_ptr<Generator> g(new Generator(cfg, params, be, o, static_cast<int>(prompts.size())));
  if (o.method == InferenceMethod::kRecompute) g->active_exits_ = active_exits(cfg, o);
  if (o.method == InferenceMethod::kSpeculative) {
    GenerateOptions all = o;
    all.threshold = 0.0;  // the enabled exits, whatever the threshold
    g->draft_exit_ = o.draft_exit >= 0 ? o.draft_exit : active_exits(cfg, all).front();
    g->active_exits_ = {g->draft_exit_};
  }
  if (cfg.exit_block) g->block_exits_ = g->active_exits_;
  if (!o.forced.empty() && o.forced.size() != prompts.size())
    return Status::invalid_argument("forced tokens are given for " + std::to_string(o.forced.size()) +
                                    " sequences, but there are " + std::to_string(prompts.size()) + " prompts");
  for (size_t b = 0; b < prompts.size(); ++b) {
    if (!o.forced.empty()) g->seq_[b].forced = &g->o_.forced[b];
    g->seq_[b].tokens = prompts[b];
    g->seq_[b].rng.seed(o.seed + b);
  }
  g->stats_.head_counts.assign(static_cast<size_t>(cfg.num_exits() + 1), 0);
  const auto t0 = std::chrono::steady_clock::now();
  g->prefill();
  g->stats_.prefill_s = seconds_since(t0);
  g->decode_rows0_ = g->dec_.layer_rows();
  return g;
}

std::vector<int> Generator::unfinished() const {
  std::vector<int> out;
  for (size_t b = 0; b < seq_.size(); ++b)
    if (!seq_[b].done) out.push_back(static_cast<int>(b));
  return out;
}

bool Generator::done() const {
  return unfinished().empty();
}

std::vector<DecodeRow> Generator::rows_from(int slot, const std::vector<int>& seqs,
                                            const std::vector<int>& last) const {
  std::vector<DecodeRow> rows;
  for (size_t i = 0; i < seqs.size(); ++i)
    for (int p = dec_.cache().length(slot, seqs[i]); p <= last[i]; ++p) rows.push_back({seqs[i], p});
  return rows;
}

// After it every cache slot holds K/V for positions ≤ last[b]: the prompt at prefill, the tokens
// skipped by early exits at a flush.
void Generator::fill_kv(const std::vector<int>& seqs, const std::vector<int>& last) {
  for (int depth = 0; depth <= cfg_.L; ++depth) {
    for (int e : block_exits_)
      if (cfg_.exit_depth[static_cast<size_t>(e)] == depth) {
        const auto rows = rows_from(cfg_.L + e, seqs, last);
        x_.resize(rows.size() * static_cast<size_t>(cfg_.C));
        dec_.exit_block(e, rows, x_.data());
      }
    if (depth < cfg_.L) dec_.layer(depth, rows_from(depth, seqs, last));
  }
}

// Every prompt position but the last runs through all layers (and the blocks of the exits in use,
// whose K/V later tokens attend to). The last prompt token is the first decode step's input, so
// the first new token may exit early too.
void Generator::prefill() {
  std::vector<int> seqs, last;
  for (size_t b = 0; b < seq_.size(); ++b) {
    const int n = static_cast<int>(seq_[b].tokens.size());
    for (int p = 0; p + 1 < n; ++p) dec_.embed(static_cast<int>(b), p, seq_[b].tokens[static_cast<size_t>(p)]);
    seqs.push_back(static_cast<int>(b));
    last.push_back(n - 2);
  }
  fill_kv(seqs, last);
}

std::vector<int> active_exits(const GptConfig& cfg, const GenerateOptions& o) {
  // Threshold 1 ("off") evaluates no exit at all, so the computation is the full model's exactly.
  if (o.threshold >= 1.0) return {};
  std::vector<int> enabled = o.exits;
  if (enabled.empty())
    for (int e = 0; e < cfg.num_exits(); ++e) enabled.push_back(e);
  std::stable_sort(enabled.begin(), enabled.end(), [&](int a, int b) {
    return cfg.exit_depth[static_cast<size_t>(a)] < cfg.exit_depth[static_cast<size_t>(b)];
  });
  enabled.erase(std::unique(enabled.begin(), enabled.end()), enabled.end());
  return enabled;
}

void append_token(const GptConfig& cfg, const GenerateOptions& o, SequenceState& s, GenerateStats& stats, int32_t token,
                  int head) {
  const size_t i = s.out.tokens.size();
  s.tokens.push_back(s.forced && i < s.forced->size() ? (*s.forced)[i] : token);
  s.out.tokens.push_back(token);
  s.out.head.push_back(head);
  s.out.text += decode_bytes({token});
  ++stats.tokens;
  ++stats.head_counts[static_cast<size_t>(head)];
  stats.avg_exit_layers += head < cfg.num_exits() ? cfg.exit_depth[static_cast<size_t>(head)] : cfg.L;
  for (const std::string& stop : o.stop) {
    if (s.out.text.size() >= stop.size() && s.out.text.ends_with(stop)) {
      // Byte tokenizer: one token per byte, so the stop string is its last stop.size() tokens.
      s.out.text.resize(s.out.text.size() - stop.size());
      const size_t keep = s.out.tokens.size() - std::min(s.out.tokens.size(), stop.size());
      s.out.tokens.resize(keep), s.out.head.resize(keep);
      s.out.stopped = s.done = true;
      return;
    }
  }
  if (static_cast<int>(s.out.tokens.size()) >= o.max_new_tokens || static_cast<int>(s.tokens.size()) >= cfg.max_T)
    s.done = true;
}

void Generator::append(int b, int32_t token, int head) {
  append_token(cfg_, o_, seq_[static_cast<size_t>(b)], stats_, token, head);
}

void Generator::step() {
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = thread_cpu_seconds();
  if (o_.method == InferenceMethod::kSpeculative)
    round_speculative();
  else
    step_recompute();
  stats_.decode_s += seconds_since(t0);
  stats_.decode_cpu_s += thread_cpu_seconds() - c0;
}

// One token per unfinished sequence. Rows of layer l for sequence b: positions [length(l, b), p_b]
// — the new token plus the tokens that exited before reaching l (KV recomputation), one batch.
void Generator::step_recompute() {
  std::vector<int> going = unfinished();
  if (going.empty()) return;
  const int E = cfg_.num_exits(), C = cfg_.C, Vp = cfg_.Vp;
  std::vector<int> last(seq_.size(), 0);
  for (int b : going) {
    const Seq& s = seq_[static_cast<size_t>(b)];
    last[static_cast<size_t>(b)] = static_cast<int>(s.tokens.size()) - 1;
    dec_.embed(b, last[static_cast<size_t>(b)], s.tokens.back());
  }
  auto lasts = [&](const std::vector<int>& seqs) {
    std::vector<int> l;
    for (int b : seqs) l.push_back(last[static_cast<size_t>(b)]);
    return l;
  };
  std::vector<std::pair<int, int>> decided;  // (b, head)
  std::vector<int32_t> decided_token;
  for (int depth = 0; depth <= cfg_.L && !going.empty(); ++depth) {
    for (int e : active_exits_) {
      if (cfg_.exit_depth[static_cast<size_t>(e)] != depth || going.empty()) continue;
      TensorData block_out;
      std::vector<DecodeRow> block_rows;
      if (cfg_.exit_block) {
        block_rows = rows_from(cfg_.L + e, going, lasts(going));
        block_out.resize(block_rows.size() * static_cast<size_t>(C));
        dec_.exit_block(e, block_rows, block_out.data());
      }
      // Sequences with max_pending tokens already missing from the last layer must go all the way.
      std::vector<int> eligible;
      for (int b : going)
        if (last[static_cast<size_t>(b)] - dec_.cache().length(cfg_.L - 1, b) < o_.max_pending) eligible.push_back(b);
      if (eligible.empty()) continue;
      x_.resize(eligible.size() * static_cast<size_t>(C));
      for (size_t i = 0; i < eligible.size(); ++i) {
        const int b = eligible[i];
        const float* src = dec_.resid(b, last[static_cast<size_t>(b)]);
        if (cfg_.exit_block) {
          size_t r = 0;
          while (!(block_rows[r].b == b && block_rows[r].pos == last[static_cast<size_t>(b)])) ++r;
          src = block_out.data() + r * static_cast<size_t>(C);
        }
        std::copy_n(src, C, x_.data() + i * static_cast<size_t>(C));
      }
      logits_.resize(eligible.size() * static_cast<size_t>(Vp));
      dec_.head(e, x_.data(), static_cast<int>(eligible.size()), logits_.data());
      for (size_t i = 0; i < eligible.size(); ++i) {
        const float* lg = logits_.data() + i * static_cast<size_t>(Vp);
        if (confidence_score(o_.confidence, lg, cfg_.V) < o_.threshold) continue;
        const int b = eligible[i];
        decided.emplace_back(b, e);
        decided_token.push_back(pick_token(lg, cfg_.V, o_.sampling, seq_[static_cast<size_t>(b)].rng));
        going.erase(std::find(going.begin(), going.end(), b));
      }
    }
    if (depth < cfg_.L) dec_.layer(depth, rows_from(depth, going, lasts(going)));
  }
  if (!going.empty()) {
    x_.resize(going.size() * static_cast<size_t>(C));
    for (size_t i = 0; i < going.size(); ++i)
      std::copy_n(dec_.resid(going[i], last[static_cast<size_t>(going[i])]), C, x_.data() + i * static_cast<size_t>(C));
    logits_.resize(going.size() * static_cast<size_t>(Vp));
    dec_.head(-1, x_.data(), static_cast<int>(going.size()), logits_.data());
    for (size_t i = 0; i < going.size(); ++i) {
      decided.emplace_back(going[i], E);
      decided_token.push_back(pick_token(logits_.data() + i * static_cast<size_t>(Vp), cfg_.V, o_.sampling,
                                         seq_[static_cast<size_t>(going[i])].rng));
    }
  }
  for (size_t i = 0; i < decided.size(); ++i) append(decided[i].first, decided_token[i], decided[i].second);
}

void Generator::flush_pending() {
  std::vector<int> seqs, last;
  for (size_t b = 0; b < seq_.size(); ++b) {
    seqs.push_back(static_cast<int>(b));
    // Positions whose K/V some layer holds: those at or below the first layer's length.
    last.push_back(dec_.cache().length(0, static_cast<int>(b)) - 1);
  }
  fill_kv(seqs, last);
}

// Draft k_b tokens per sequence through layers < d and the draft exit (one row per sequence per
// draft step; greedy: argmax, sampling: a draw from the exit's distribution q), then verify all drafted positions of
// all sequences with layers ≥ d and the final head in one pass. Position cur−1+i holds the i-th token of the round (the
// last committed token, then drafts); the final head there predicts the token at cur+i.
void Generator::round_speculative() {
  SpecRound s;
  s.seqs = unfinished();
  if (s.seqs.empty()) return;
  const int d = cfg_.exit_depth[static_cast<size_t>(draft_exit_)], C = cfg_.C, Vp = cfg_.Vp;
  int maxk = 0;
  for (int b : s.seqs) {
    const Seq& q = seq_[static_cast<size_t>(b)];
    s.cur.push_back(static_cast<int>(q.tokens.size()));
    s.k.push_back(std::min(
        {o_.draft_tokens, o_.max_new_tokens - static_cast<int>(q.out.tokens.size()), cfg_.max_T - s.cur.back()}));
    maxk = std::max(maxk, s.k.back());
  }
  s.draft.resize(s.seqs.size());
  s.sampled = o_.sampling.temperature > 0.0f;
  s.draft_q.resize(s.seqs.size());
  for (int j = 0; j < maxk; ++j) draft_step(s, j);
  // Verification: layers ≥ d over every drafted position, then the final head on all of them.
  std::vector<int> vlast;
  for (size_t i = 0; i < s.seqs.size(); ++i) vlast.push_back(s.cur[i] - 1 + s.k[i] - 1);
  for (int l = d; l < cfg_.L; ++l) dec_.layer(l, rows_from(l, s.seqs, vlast));
  std::vector<DecodeRow> vrows;
  for (size_t i = 0; i < s.seqs.size(); ++i)
    for (int j = 0; j < s.k[i]; ++j) vrows.push_back({s.seqs[i], s.cur[i] - 1 + j});
  x_.resize(vrows.size() * static_cast<size_t>(C));
  for (size_t r = 0; r < vrows.size(); ++r) std::copy_n(dec_.resid(vrows[r].b, vrows[r].pos), C, x_.data() + r * C);
  logits_.resize(vrows.size() * static_cast<size_t>(Vp));
  dec_.head(-1, x_.data(), static_cast<int>(vrows.size()), logits_.data());
  size_t base = 0;
  for (size_t i = 0; i < s.seqs.size(); ++i) {
    const int b = s.seqs[i];
    commit_drafts(s, i, logits_.data() + base * static_cast<size_t>(Vp));
    base += static_cast<size_t>(s.k[i]);
    // Keep K/V of committed positions only: all but the last committed token (the next input).
    dec_.cache().truncate(b, static_cast<int>(seq_[static_cast<size_t>(b)].tokens.size()) - 1);
  }
}

void Generator::draft_step(SpecRound& s, int j) {
  const int e = draft_exit_, d = cfg_.exit_depth[static_cast<size_t>(e)], C = cfg_.C, Vp = cfg_.Vp;
  std::vector<int> ds, dlast;
  for (size_t i = 0; i < s.seqs.size(); ++i) {
    if (j >= s.k[i]) continue;
    const int b = s.seqs[i], pos = s.cur[i] - 1 + j;
    dec_.embed(b, pos, j == 0 ? seq_[static_cast<size_t>(b)].tokens.back() : s.draft[i].back());
    ds.push_back(b), dlast.push_back(pos);
  }
  for (int l = 0; l < d; ++l) dec_.layer(l, rows_from(l, ds, dlast));
  TensorData block_out;
  std::vector<DecodeRow> block_rows;
  if (cfg_.exit_block) {
    block_rows = rows_from(cfg_.L + e, ds, dlast);
    block_out.resize(block_rows.size() * static_cast<size_t>(C));
    dec_.exit_block(e, block_rows, block_out.data());
  }
  x_.resize(ds.size() * static_cast<size_t>(C));
  for (size_t i = 0; i < ds.size(); ++i) {
    const float* src = dec_.resid(ds[i], dlast[i]);
    if (cfg_.exit_block) {
      size_t r = 0;
      while (!(block_rows[r].b == ds[i] && block_rows[r].pos == dlast[i])) ++r;
      src = block_out.data() + r * static_cast<size_t>(C);
    }
    std::copy_n(src, C, x_.data() + i * static_cast<size_t>(C));
  }
  logits_.resize(ds.size() * static_cast<size_t>(Vp));
  dec_.head(e, x_.data(), static_cast<int>(ds.size()), logits_.data());
  for (size_t i = 0, n = 0; i < s.seqs.size(); ++i) {
    if (j >= s.k[i]) continue;
    const float* lg = logits_.data() + (n++) * static_cast<size_t>(Vp);
    // Unconfident drafts are likely rejected: verify this one and draft no further this round.
    if (o_.draft_threshold > 0.0 && j + 1 < s.k[i] && confidence_score(o_.confidence, lg, cfg_.V) < o_.draft_threshold)
      s.k[i] = j + 1;
    if (!s.sampled) {
      s.draft[i].push_back(argmax_token(lg, cfg_.V));
    } else {  // draw the draft from q, the draft exit's sampling distribution
      s.draft_q[i].push_back(sampling_distribution(lg, cfg_.V, o_.sampling));
      s.draft[i].push_back(sample_index(s.draft_q[i].back(), seq_[static_cast<size_t>(s.seqs[i])].rng));
    }
  }
}

void Generator::commit_drafts(const SpecRound& s, size_t i, const float* logits) {
  const int b = s.seqs[i], e = draft_exit_, E = cfg_.num_exits();
  for (int j = 0; j < s.k[i]; ++j) {
    if (seq_[static_cast<size_t>(b)].done) continue;
    const float* lg = logits + static_cast<size_t>(j) * static_cast<size_t>(cfg_.Vp);
    const int32_t x = s.draft[i][static_cast<size_t>(j)];
    ++stats_.drafted;
    if (s.sampled) {
      // Speculative sampling (Leviathan et al. 2023; Chen et al. 2023): accept the draft x with
      // probability min(1, p(x)/q(x)), else draw from max(0, p − q) normalised and stop. The
      // committed token is then distributed exactly as p, the full model's sampling distribution.
      const std::vector<double> pd = sampling_distribution(lg, cfg_.V, o_.sampling);
      const std::vector<double>& qd = s.draft_q[i][static_cast<size_t>(j)];
      Seq& sq = seq_[static_cast<size_t>(b)];
      const double ratio =
          qd[static_cast<size_t>(x)] > 0 ? pd[static_cast<size_t>(x)] / qd[static_cast<size_t>(x)] : 1.0;
      if (uniform01(sq.rng) < ratio) {
        ++stats_.accepted;
        append(b, x, e);
        continue;
      }
      std::vector<double> res(pd.size());
      double mass = 0;
      for (size_t v = 0; v < pd.size(); ++v) mass += res[v] = std::max(0.0, pd[v] - qd[v]);
      append(b, sample_index(mass > 0 ? res : pd, sq.rng), E);
      break;
    }
    const int32_t y = argmax_token(lg, cfg_.V);
    if (y == x) {
      ++stats_.accepted;
      append(b, y, e);
    } else {
      append(b, y, E);  // the verifier's correction; later drafts were conditioned on a wrong token
      break;
    }
  }
}

GenerateResult Generator::result() const {
  GenerateResult r;
  for (const Seq& s : seq_) r.sequences.push_back(s.out);
  r.stats = stats_;
  if (stats_.tokens > 0) {
    r.stats.avg_exit_layers = stats_.avg_exit_layers / static_cast<double>(stats_.tokens);
    r.stats.layers_per_token =
        static_cast<double>(dec_.layer_rows() - decode_rows0_) / static_cast<double>(stats_.tokens);
  }
  return r;
}

StatusOr<GenerateResult> generate(const GptConfig& cfg, const GptParams& params, Backend& be,
                                  const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o) {
  EELLM_ASSIGN_OR_RETURN(std::unique_ptr<Generator> g, Generator::create(cfg, params, be, prompts, o));
  while (!g->done()) g->step();
  return g->result();
}

}  // namespace eellm::exec
