// Generation behind a request/response interface: what `eellm generate` and `eellm serve` share
// (opening a checkpoint on a device, exit layers → exit indices) and the HTTP-independent core of
// `eellm serve` — EE-LLM's request fields (megatron/early_exit_text_generation_server.py, PUT /api)
// parsed and validated into GenerateOptions, one generation per request, and the JSON answer.
//
// Request fields (names and defaults as EE-LLM's server; see docs/serve.md for every rule):
//   prompts (string | [string], required), tokens_to_generate (64), use_early_exit (false),
//   early_exit_thres (the checkpoint scenario's inference.early_exit_thres), exit_layers ([] = all),
//   top_k (0), top_p (0 = off), temperature (0 = greedy), random_seed (1234), echo_prompts (false),
//   stop_sequences ([]), no_log (false); print_max_prob and length_penalty are accepted and have no
//   effect; logprobs, add_BOS, prevent_newline_after_colon, top_p_decay, top_p_bound and beam_width
//   are refused when they ask for something this server does not do.
// A request with use_early_exit false decodes with the full model (InferenceMethod::kFull); with true,
// with the server's method (recompute or speculative) and the threshold.
//
// Thread-safety: GenerationService::generate may be called from any number of threads; requests
// run one at a time (a mutex, as EE-LLM's server does), the prompts of one request as one batch.
// health() reads only immutable state and an atomic counter.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/generate/generate.h"
#include "model/scenario.h"
#include "model/status.h"

namespace eellm::exec {

// Model exit index of the exit at 1-based layer number `layer`; the error lists the model's exits.
StatusOr<int> exit_index_at_layer(const GptConfig& cfg, int layer);

// A checkpoint opened for generation: the backend first, then the weights (make_backend must run
// before the tensors it uses are allocated).
struct GenerationSession {
  ::eellm::DeviceKind device = ::eellm::DeviceKind::kCPU;
  std::unique_ptr<Backend> backend;
  GenerationModel model;
};
// `device` empty → the checkpoint scenario's execution.device; `threads` 0 → the scenario's
// execution.num_threads (0 = all cores).
StatusOr<GenerationSession> open_generation(const std::string& checkpoint, const std::string& device, int threads,
                                            const CheckpointReadOptions& read = {});

// Server-wide settings (command-line flags of `eellm serve`).
struct ServeConfig {
  // The server's decoding settings: method (with use_early_exit: recompute or speculative),
  // confidence rule, max_pending, draft_tokens, draft_exit (model exit index; −1 → the first
  // enabled exit). Each request starts from these and sets its own threshold, exits and sampling.
  GenerateOptions decode = [] {
    GenerateOptions g;
    g.method = InferenceMethod::kRecompute;
    return g;
  }();
  int max_batch = 128;  // prompts per request (EE-LLM's limit)
};
Status check_serve_config(const GptConfig& cfg, const ServeConfig& sc);

// One validated request.
struct ServeRequest {
  std::vector<std::string> prompts;
  GenerateOptions options;
  bool use_early_exit = false;
  bool echo_prompts = false;
  bool no_log = false;
};
// Parses a request body. Errors are kInvalidArgument and name the field, the value's fault and the
// rule ("top_k: must be an integer in [0, 1000], got 2000"); a body nested deeper than
// kMaxRequestDepth is refused before it is parsed.
constexpr int kMaxRequestDepth = 64;
StatusOr<ServeRequest> parse_serve_request(const std::string& body, const GenerationModel& model,
                                           const ServeConfig& sc);
// The answer: text, segments, tokens, per-token exit layer, stats (see docs/serve.md).
nlohmann::json serve_response(const GptConfig& cfg, const ServeRequest& req, const GenerateResult& r, double request_s);
// JSON text with invalid UTF-8 (byte-level tokens can split characters) replaced by U+FFFD.
std::string dump_json(const nlohmann::json& j);

class GenerationService {
 public:
  GenerationService(GenerationSession session, ServeConfig sc);

  struct Reply {
    int status = 200;  // HTTP status: 200, 400 (bad request), 500 (generation failed)
    std::string body;  // JSON
    std::string log;   // the request's figures or error for the server log ("" when it asked for no_log)
  };
  // Parses, generates and answers one request body (serialised with every other call).
  Reply generate(const std::string& body);
  // {"model": ..., "config": ..., "server": ...} for GET /health.
  std::string health() const;
  const GenerationModel& model() const { return session_.model; }
  const ServeConfig& config() const { return sc_; }

 private:
  GenerationSession session_;
  ServeConfig sc_;
  std::mutex mu_;  // one generation at a time: the backend and its buffers are not shared
  std::atomic<long> served_{0};
};

// {"error": message} with an HTTP status: the body of every non-200 answer.
std::string error_body(const std::string& message);

}  // namespace eellm::exec
