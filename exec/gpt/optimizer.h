// AdamW (decoupled weight decay, torch semantics) with global-norm gradient clipping and
// Megatron's learning-rate schedule (linear warm-up, then constant/linear/cosine decay to min_lr).
// The moments are a GptParams-shaped pair so they checkpoint under the same names. Not thread-safe.
#pragma once

#include <string>

#include "exec/gpt/gpt.h"
#include "model/scenario.h"

namespace eellm::exec {

// Learning rate for the 0-based iteration `iter`.
double lr_at(const TrainingSpec& t, int iter);

struct StepStats {
  double grad_norm = 0;  // before clipping
  double clip_scale = 1;
  double lr = 0;
};

class AdamW {
 public:
  void init(const GptConfig& cfg);
  // One update with lr_at(spec, iter); returns the norm and scale. `step_count` becomes iter+1.
  StepStats step(Backend& be, GptParams& params, GptParams& grads, const TrainingSpec& spec, int iter);
  // The same with Σ g² over `grads` already computed (in grads.named() order, as step() sums it).
  StepStats step(Backend& be, GptParams& params, GptParams& grads, const TrainingSpec& spec, int iter,
                 double grad_sum_squares);
  GptParams& m() { return m_; }
  GptParams& v() { return v_; }
  int step_count() const { return t_; }
  void set_step_count(int t) { t_ = t; }

 private:
  GptParams m_, v_;
  int t_ = 0;
};

}  // namespace eellm::exec
