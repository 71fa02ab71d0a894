// Inference simulation: early-exit decoding with a KV cache, predicted token by token from the cost
// model, for four methods (InferenceMethod):
//   full        every token runs all L layers and the final head (the baseline; no exit heads run);
//   recompute   EE-LLM's KV recomputation: a token leaving at depth d skips layers d+1..L; their KV is
//               computed later, batched into the forward of the next token that goes deeper (so a
//               layer step processes 1 + pending tokens); more than max_pending_recompute pending
//               tokens force a full pass;
//   pipeline    EE-LLM's pipeline-based method (pp stages): the stage whose exit decides sends the
//               token back to stage 0, which starts the next token at once, while later stages finish
//               the current token only to fill their KV. Stages run FIFO; a step is an event chain
//               over the stages' busy times;
//   speculative self-speculative decoding: K draft steps through layers 1..d and the draft exit, then
//               one verification pass of layers d+1..L and the final head over the K positions;
//               each draft token is accepted with probability α (independently), a round yields
//               n+1 tokens (n < K accepted, the verifier corrects the first rejected) or K tokens, so
//               E[tokens/round] = (1 − α^K)/(1 − α). α defaults to the cumulative exit rate up to the
//               draft exit (a token confident at or before it agrees with the full model — a lower
//               bound); --acceptance-rate overrides it.
//
// Cost model (stated once; InferenceCosts holds its numbers so tests can set them exactly). A step
// of one layer that processes n new tokens per sequence of a batch of B takes
//   t(n) = max(memory_s, n · compute_per_token_s) + comm_s
// with memory_s = (layer weight bytes / tp + B · context · KV bytes per token per layer / tp)
// / (HBM bandwidth · elementwise_efficiency) — decode is memory-bandwidth bound: the weights and the
// KV cache are read once per step whatever n is — and compute_per_token_s = B · (2 · layer params /
// tp + 4 · context · h / tp) FLOPs / (peak · gemm_max_efficiency); comm_s = two tensor-parallel
// all-reduces of the step's activations (0 when tp = 1). Exit heads and the final head follow the
// same form with their own parameters (no KV). A hop between pipeline stages costs one p2p transfer
// of B·h activations. Context is the average over decoding (prompt + new/2). The prompt phase
// (prefill) runs every layer on all prompt tokens at once: t(prompt_length) per layer + final head.
// With B > 1 the batch leaves at the deepest exit any of its sequences needs (the step goes on until
// every sequence is confident), which is why early exit pays off mostly at small batches.
//
// Exits (and speculative acceptances) are drawn from a deterministic pseudo-random sequence
// (splitmix64 of the draw index) matching the given rates, over at least 20,000 tokens: per-token
// figures are averages over those, decode_s scales them to the requested new tokens. Runs are
// reproducible. With B > 1 a draft is accepted only if every sequence accepts it (α^B).
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

// t(n) = max(memory_s, n · compute_per_token_s) + comm_s, seconds.
struct StepCost {
  double memory_s = 0;
  double compute_per_token_s = 0;
  double comm_s = 0;
  double time(double tokens) const {
    return (memory_s > tokens * compute_per_token_s ? memory_s : tokens * compute_per_token_s) + comm_s;
  }
};

struct InferenceCosts {
  int num_layers = 0;
  int pp = 1;
  std::vector<int> stage_of_layer;  // pipeline stage of each (0-based) layer
  StepCost layer;                   // one decode step of one transformer layer
  StepCost prefill_layer;           // the same layer with the prefill context
  StepCost final_head;
  std::vector<StepCost> exit_heads;  // per exit
  std::vector<int> exit_depth;       // layers before each exit decides (layer, or layer − 1 with pre_exit)
  double p2p_s = 0;                  // one hop between pipeline stages
  int batch_size = 1;
};

// The costs of a scenario's inference set-up (its TP/PP layout, batch, prompt and generation lengths).
StatusOr<InferenceCosts> inference_costs(const Scenario& scenario);

struct DecodeParams {
  std::vector<double> exit_rates;  // fraction of tokens leaving at each exit; the rest reach the end
  int new_tokens = 128;            // per sequence
  int max_pending_recompute = 8;
  int draft_exit = 0;           // speculative: index of the drafting exit
  int draft_tokens = 4;         // speculative: K
  double acceptance_rate = -1;  // speculative: α; < 0 → cumulative exit rate up to the draft exit
};

struct DecodeResult {
  InferenceMethod method = InferenceMethod::kFull;
  double time_per_output_token_s = 0;  // decode time / tokens per sequence
  double tokens_per_s = 0;             // batch · tokens / decode time
  double avg_exit_layers = 0;          // layers a token needs before its decision
  double avg_layers_computed = 0;      // layer steps per token incl. KV recompute / fill
  double decode_s = 0;                 // params.new_tokens tokens at the average per-token time
  double speedup_vs_full = 1;
  double acceptance_rate = 0;  // speculative only
};

// Decodes params.new_tokens tokens with `method` on `costs`. Preconditions: checked rates (see
// check_exit_rates), exit_depth ascending.
DecodeResult simulate_decode(const InferenceCosts& costs, InferenceMethod method, const DecodeParams& params);

// Rates must have one entry per exit, each in [0, 1], summing to at most 1. `source` names them.
Status check_exit_rates(const std::vector<double>& rates, size_t num_exits, const std::string& source);

// What `eellm generate --stats-out` writes: {"exit_rates": [...], "exit_layers": [...], ...}.
struct MeasuredExitRates {
  std::vector<double> rates;
  std::vector<int> exit_layers;  // 1-based layer of each exit of the model they were measured on (may be empty)
};
StatusOr<MeasuredExitRates> read_exit_rates_file(const std::string& path);
// The rates alone (read_exit_rates_file(path).rates).
StatusOr<std::vector<double>> read_exit_rates_json(const std::string& path);

struct InferenceSimOptions {
  std::vector<InferenceMethod> methods;  // empty → all four (pipeline only when pp > 1)
  std::vector<double> exit_rates;        // empty → scenario.inference.exit_rates
  // Where exit_rates came from (e.g. the file name) and the exits of the model they were measured on:
  // rates measured with other exits than the scenario's are refused (a rate belongs to one exit depth).
  std::string exit_rates_source;
  std::vector<int> exit_rates_layers;
  double acceptance_rate = -1;
};

struct InferenceSimResult {
  std::string scenario;
  int tp = 1, pp = 1, batch_size = 1, prompt_length = 0, new_tokens = 0;
  std::vector<double> exit_rates;
  std::string exit_rates_source;    // where the rates came from, or why none were (then all 0)
  bool exit_rates_assumed = false;  // no rates given: nobody exits early, so early-exit methods only add cost
  double prefill_s = 0;             // time to first token
  double layer_step_s = 0;          // one decode layer step, n = 1 (for reading the table)
  std::vector<DecodeResult> methods;
};

StatusOr<InferenceSimResult> simulate_inference(const Scenario& scenario, const InferenceSimOptions& options = {});

std::string inference_to_text(const InferenceSimResult& r);
std::string inference_to_json(const InferenceSimResult& r);
std::string inference_to_csv(const InferenceSimResult& r);

}  // namespace eellm
