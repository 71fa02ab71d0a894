// GptModel: the single-process early-exit GPT, composed of GptChunks over contiguous layer ranges
// (one chunk by default; several give the same numbers and exercise the pipeline API). Owns the
// parameters, gradients and per-chunk microbatch state. Not thread-safe.
#pragma once

#include <memory>
#include <vector>

#include "exec/gpt/gpt.h"

namespace eellm::exec {

// Losses of one microbatch: per exit (model order) and final, unweighted mean CE.
struct MicrobatchLosses {
  std::vector<float> exits;
  float final_loss = 0.0f;
};

class GptModel {
 public:
  // `chunk_layers`: layers per chunk (sums to L); empty → one chunk holding the whole model.
  GptModel(const GptConfig& cfg, Backend& be, std::vector<int> chunk_layers = {});

  const GptConfig& config() const { return cfg_; }
  GptParams& params() { return params_; }
  const GptParams& params() const { return params_; }
  GptParams& grads() { return grads_; }
  Backend& backend() { return *be_; }

  void zero_grads();
  // Forward (and with compute_grad, backward) of one microbatch of B sequences of T tokens.
  // Gradients of Σ weights·losses accumulate into grads(). `logits` (optional) receives one
  // (B,T,Vp) tensor per head: exits in model order, then the final head.
  MicrobatchLosses run_microbatch(const int32_t* tokens, const int32_t* targets, int B, int T, const HeadWeights& w,
                                  bool compute_grad, std::vector<Tensor>* logits = nullptr);

 private:
  GptConfig cfg_;
  Backend* be_;
  GptParams params_, grads_;
  std::vector<std::unique_ptr<GptChunk>> chunks_;
  std::vector<ChunkState> states_;
  std::vector<Tensor> boundary_grads_;
};

}  // namespace eellm::exec
