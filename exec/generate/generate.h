// Early-exit generation with a KV cache: the incremental decoder (a forward over arbitrary
// (sequence, position) rows that reads and appends K/V) and the decoding methods built on it.
//
// Legend: B = batch of sequences, R = rows of one step (tokens of several sequences), C = hidden,
// Vp = padded vocab, L = layers.
//
// Methods (InferenceMethod):
//   full         every token runs all L layers and the final head; no exit head runs.
//   recompute    EE-LLM's KV recomputation: a token leaving at an exit of depth d skips layers ≥ d;
//                its residual at depth d is kept and those layers process it later, batched with
//                the next token that goes deeper (one small batch per layer). A sequence with more
//                than max_pending such tokens runs its next token through the whole model.
//   speculative  self-speculative (lossless for greedy): draft_tokens tokens drafted one at a time
//                through layers < d and the draft exit, then layers ≥ d and the final head verify
//                them in one pass reusing the drafted K/V of layers < d; the matching prefix plus
//                the final head's correction is kept and the caches are truncated behind it.
//                With sampling: drafts are drawn from the exit's distribution q and accepted by
//                speculative rejection sampling against the final head's p, so every token is
//                distributed exactly as the full model samples it (lossless in distribution).
// The residual store holds, per sequence and position, the residual stream at the depth that
// position has reached; a layer reads its rows from it and writes them back in place.
//
// Batch > 1: the rows of all sequences go through each layer together; a sequence that exits stops
// contributing rows to deeper layers in that step, the others go on.
// Thread-safety: a Decoder is used by one thread (the backend ops thread internally).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/generate/confidence.h"
#include "exec/generate/kv_cache.h"
#include "exec/gpt/gpt.h"
#include "exec/io/checkpoint.h"
#include "model/scenario.h"
#include "model/status.h"

namespace eellm::exec {

struct DecodeRow {
  int b = 0;    // sequence
  int pos = 0;  // position in the sequence
};

class Decoder {
 public:
  // `exit_blocks`: allocate cache slots for the exit heads' blocks (only with use_exit_block).
  Decoder(const GptConfig& cfg, const GptParams& params, Backend& be, int batch);

  const GptConfig& config() const { return cfg_; }
  KvCache& cache() { return cache_; }
  const KvCache& cache() const { return cache_; }
  int batch() const { return batch_; }

  // Residual stream of (b, pos) at the depth that position has reached (C floats).
  float* resid(int b, int pos) { return resid_.data() + (static_cast<size_t>(b) * cfg_.max_T + pos) * cfg_.C; }

  // Embeds `token` at (b, pos) into the residual store (depth 0).
  void embed(int b, int pos, int32_t token);
  // Backbone layer l on `rows` (each sequence's rows contiguous, starting at or below the layer's
  // cache length): reads the rows' residuals, writes their K/V, writes the outputs back in place.
  void layer(int l, const std::vector<DecodeRow>& rows);
  // The block of exit e on `rows` (residuals at the exit's depth): fills the block's K/V and writes
  // the block outputs to `out` (R, C). Precondition: cfg.exit_block.
  void exit_block(int e, const std::vector<DecodeRow>& rows, float* out);
  // Head e (≥ 0: exit, −1: final) from R input rows x (R, C) — the residual at the head's depth, or
  // the exit block's output — to logits (R, Vp). layer, exit_block and head end with
  // Backend::synchronize(), so the host may read the residual store and the logits afterwards;
  // every buffer passed in must be backend memory (TensorData).
  void head(int e, const float* x, int R, float* logits);
  // Number of layer-rows computed so far (the work metric behind "layers per token").
  long layer_rows() const { return layer_rows_; }

 private:
  void block_forward(const LayerParams& lp, int slot, const std::vector<DecodeRow>& rows, float* x);
  // Fills the host index arrays of the decode ops (seq, pos, residual-store row) for `rows`.
  void index(const std::vector<DecodeRow>& rows);

  GptConfig cfg_;
  const GptParams* p_;
  Backend* be_;
  int batch_;
  KvCache cache_;
  TensorData resid_;  // (B, max_T, C), backend memory
  long layer_rows_ = 0;
  std::vector<int32_t> seq_idx_, pos_idx_, row_idx_;
  Tensor x_, ln_, mean_, rstd_, qkv_, att_, res2_, fc_, act_, hn_, hm_, hfc_, hact_;
};

// Teacher-forced logits of every head at every position of one token sequence, computed
// incrementally through the cache `chunk` positions at a time (1 = token by token). One (T, Vp)
// tensor per head: exits in model order, then the final head — the layout of GptModel's logits.
std::vector<Tensor> incremental_logits(const GptConfig& cfg, const GptParams& params, Backend& be,
                                       const std::vector<int32_t>& tokens, int chunk);

struct GenerateOptions {
  InferenceMethod method = InferenceMethod::kFull;
  Confidence confidence = Confidence::kMaxProb;
  double threshold = 1.0;  // ≥ 1 → no early exit ("off")
  std::vector<int> exits;  // enabled exits (model indices); empty → all
  int max_pending = 8;     // recompute: pending tokens that force a full pass
  int draft_exit = -1;     // speculative: model exit index; −1 → the first enabled exit
  int draft_tokens = 4;    // speculative: tokens drafted per round (at most)
  // speculative: a sequence stops drafting in a round once its draft exit's confidence (the rule
  // `confidence`) falls below this; the unconfident draft is still verified. 0 → always draft
  // draft_tokens. Lossless either way: it only decides how many drafts the verifier sees.
  double draft_threshold = 0.0;
  int max_new_tokens = 64;
  SamplingOptions sampling;
  uint64_t seed = 0;              // sequence b draws from mt19937_64(seed + b)
  std::vector<std::string> stop;  // a sequence ends when its generated text ends with one of these
  // Teacher forcing (methods full and recompute; for measuring exit decisions on real text): when
  // non-empty, one list per sequence; the i-th token fed back into sequence b is forced[b][i]
  // (while the list lasts) instead of the token it generated. The generated tokens are still what
  // SequenceOutput reports, so they are per-position predictions given the same context.
  std::vector<std::vector<int32_t>> forced;
};

struct SequenceOutput {
  std::vector<int32_t> tokens;  // generated (without the prompt, without a matched stop string)
  std::string text;
  std::vector<int> head;  // per generated token: exit index, or num_exits for the final head
  bool stopped = false;   // ended on a stop string
};

struct GenerateStats {
  long tokens = 0;  // generated tokens, all sequences
  double prefill_s = 0, decode_s = 0;
  // CPU time of the calling thread while decoding: the decode work itself when the backend runs on
  // that one thread (CPU backend with 1 thread), unaffected by other processes sharing the cores.
  double decode_cpu_s = 0;
  std::vector<long> head_counts;   // per exit, then the final head
  double avg_exit_layers = 0;      // layers before the head that produced each token
  double layers_per_token = 0;     // layer-rows computed while decoding / tokens (incl. recompute)
  long drafted = 0, accepted = 0;  // speculative
  double tokens_per_s() const { return decode_s > 0 ? static_cast<double>(tokens) / decode_s : 0.0; }
  double tokens_per_cpu_s() const { return decode_cpu_s > 0 ? static_cast<double>(tokens) / decode_cpu_s : 0.0; }
  std::vector<double> exit_rates() const;  // head_counts[e] / tokens, per exit (not the final head)
};

struct GenerateResult {
  std::vector<SequenceOutput> sequences;
  GenerateStats stats;
};

// One sequence's generation state, shared by the single-process loops and the pipeline mode.
struct SequenceState {
  std::vector<int32_t> tokens;  // prompt + generated (before stop-string stripping)
  bool done = false;
  std::mt19937_64 rng;
  SequenceOutput out;
  const std::vector<int32_t>* forced = nullptr;  // GenerateOptions::forced[b], if given
};
// Appends `token` (produced by head `head`: exit index, or num_exits for the final head) to `s`,
// counts it in `stats`, applies stop strings, max_new_tokens and the context limit (sets done).
void append_token(const GptConfig& cfg, const GenerateOptions& o, SequenceState& s, GenerateStats& stats, int32_t token,
                  int head);
// Exits evaluated while decoding with `o` (enabled exits by depth; none when threshold ≥ 1).
std::vector<int> active_exits(const GptConfig& cfg, const GenerateOptions& o);

// Checks options against the model: exits, threshold, draft settings, sampling.
Status check_generate_options(const GptConfig& cfg, const GenerateOptions& o);
// Prompts must be non-empty and leave room for at least one new token in the context.
Status check_prompts(const GptConfig& cfg, const std::vector<std::vector<int32_t>>& prompts);

// One generation session over a batch of prompts: prefill, then step() until done(). Exposed
// (rather than only generate()) so tests can inspect the cache between steps.
class Generator {
 public:
  static StatusOr<std::unique_ptr<Generator>> create(const GptConfig& cfg, const GptParams& params, Backend& be,
                                                     const std::vector<std::vector<int32_t>>& prompts,
                                                     const GenerateOptions& o);
  bool done() const;
  // One decode step of every unfinished sequence (full, recompute), or one draft-and-verify round
  // (speculative).
  void step();
  // Runs the layers that early-exited tokens skipped (KV recomputation without a new token), so
  // that every cached position is present in every layer. For tests and for handing a cache over.
  void flush_pending();
  GenerateResult result() const;
  const Decoder& decoder() const { return dec_; }
  // Prompt followed by the generated tokens of sequence b (before stop-string stripping).
  const std::vector<int32_t>& sequence(int b) const { return seq_[static_cast<size_t>(b)].tokens; }

 private:
  using Seq = SequenceState;
  Generator(const GptConfig& cfg, const GptParams& params, Backend& be, const GenerateOptions& o, int batch);
  void prefill();
  // Every layer and kept exit block over the positions its cache lacks, up to last[b] per sequence.
  void fill_kv(const std::vector<int>& seqs, const std::vector<int>& last);
  void step_recompute();
  void round_speculative();
  // One speculative round's state: per unfinished sequence seqs[i], its length cur[i] at the start,
  // its draft count k[i], its drafts and (sampling) their draft distributions q.
  struct SpecRound {
    std::vector<int> seqs, cur, k;
    std::vector<std::vector<int32_t>> draft;
    std::vector<std::vector<std::vector<double>>> draft_q;
    bool sampled = false;
  };
  // The j-th draft token of every sequence still drafting: layers < d, the exit (block) and head.
  void draft_step(SpecRound& s, int j);
  // Sequence i's drafts against the final head's logits (rows from `lg`): accepts the agreeing
  // prefix and appends the verifier's token at the first disagreement.
  void commit_drafts(const SpecRound& s, size_t i, const float* lg);
  void append(int b, int32_t token, int head);
  // Rows [length(slot, b), last] of every sequence in `seqs`.
  std::vector<DecodeRow> rows_from(int slot, const std::vector<int>& seqs, const std::vector<int>& last) const;
  std::vector<int> unfinished() const;

  GptConfig cfg_;
  GenerateOptions o_;
  Decoder dec_;
  std::vector<Seq> seq_;
  std::vector<int> active_exits_;  // exits evaluated while decoding, by depth
  std::vector<int> block_exits_;   // exits whose block K/V is kept (evaluated exits with use_exit_block)
  int draft_exit_ = -1;
  GenerateStats stats_;
  long decode_rows0_ = 0;
  TensorData x_, logits_;  // backend memory: head inputs and logits
};

// Generates for every prompt (one batch). Pipeline mode runs under MPI (exec/generate/pipeline_generate.h).
StatusOr<GenerateResult> generate(const GptConfig& cfg, const GptParams& params, Backend& be,
                                  const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o);

// A trained model for generation: the checkpoint's scenario, config and weights.
struct GenerationModel {
  Scenario scenario;
  GptConfig config;
  GptParams params;
};
// Loads CHECKPOINT (a directory with `latest`, or one iteration's directory). Missing or damaged
// checkpoints are errors naming the path (every listed file is verified, the optimizer state too).
StatusOr<GenerationModel> load_generation_model(const std::string& checkpoint_dir,
                                                const CheckpointReadOptions& read = {});

// Limits of one generation batch from the command line (`eellm generate --prompt/--batch-file`):
// every prompt holds a KV cache for the whole context, so the batch is bounded up front.
constexpr size_t kMaxBatchPrompts = 256;
constexpr size_t kMaxBatchFileBytes = size_t{4} << 20;
// Prompts of a batch file: one per line, "\n" inside a line standing for a newline. A file that is
// not a regular file, larger than kMaxBatchFileBytes, with more than kMaxBatchPrompts prompts, with
// a blank line (an empty prompt, named by line number) or none at all is kInvalidArgument.
StatusOr<std::vector<std::string>> read_prompt_file(const std::string& path);

// {"exit_rates": [...], ...} as read by read_exit_rates_json (the inference simulator).
std::string exit_rates_json(const GptConfig& cfg, const GenerateOptions& o, const GenerateStats& s);
std::string stats_to_text(const GptConfig& cfg, const GenerateStats& s);

}  // namespace eellm::exec
