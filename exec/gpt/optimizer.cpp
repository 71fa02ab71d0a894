#include "exec/gpt/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace eellm::exec {

double lr_at(const TrainingSpec& t, int iter) {
  const int warm = t.lr_warmup_iters;
  if (warm > 0 && iter < warm) return t.lr * static_cast<double>(iter + 1) / warm;
  const int decay_iters = t.lr_decay_iters > 0 ? t.lr_decay_iters : t.train_iters;
  if (t.lr_decay_style == LrDecayStyle::kConstant || decay_iters <= warm) return t.lr;
  const double ratio = std::clamp(static_cast<double>(iter - warm) / (decay_iters - warm), 0.0, 1.0);
  const double coeff =
      t.lr_decay_style == LrDecayStyle::kLinear ? 1.0 - ratio : 0.5 * (std::cos(std::numbers::pi * ratio) + 1.0);
  return t.min_lr + coeff * (t.lr - t.min_lr);
}

void AdamW::init(const GptConfig& cfg) {
  m_.allocate(cfg);
  v_.allocate(cfg);
  t_ = 0;
}

StepStats AdamW::step(Backend& be, GptParams& params, GptParams& grads, const TrainingSpec& spec, int iter) {
  double sq = 0.0;
  for (auto& [name, g] : grads.named()) sq += be.sum_squares(g->ptr(), g->numel());
  return step(be, params, grads, spec, iter, sq);
}

StepStats AdamW::step(Backend& be, GptParams& params, GptParams& grads, const TrainingSpec& spec, int iter,
                      double grad_sum_squares) {
  StepStats s;
  auto P = params.params();
  auto G = grads.named();
  auto M = m_.named();
  auto V = v_.named();
  s.grad_norm = std::sqrt(grad_sum_squares);
  if (spec.clip_grad > 0 && s.grad_norm > spec.clip_grad) s.clip_scale = spec.clip_grad / (s.grad_norm + 1e-6);
  s.lr = lr_at(spec, iter);
  t_ = iter + 1;
  for (size_t i = 0; i < P.size(); ++i) {
    const float wd = P[i].role.decays() ? static_cast<float>(spec.weight_decay) : 0.0f;  // matrices only
    be.adamw_step(P[i].tensor->ptr(), G[i].second->ptr(), M[i].second->ptr(), V[i].second->ptr(), P[i].tensor->numel(),
                  static_cast<float>(s.lr), static_cast<float>(spec.adam_beta1), static_cast<float>(spec.adam_beta2),
                  static_cast<float>(spec.adam_eps), wd, static_cast<float>(s.clip_scale), t_);
  }
  return s;
}

}  // namespace eellm::exec
