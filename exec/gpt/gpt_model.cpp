#include "exec/gpt/gpt_model.h"

#include <cassert>
#include <numeric>

namespace eellm::exec {

GptModel::GptModel(const GptConfig& cfg, Backend& be, std::vector<int> chunk_layers) : cfg_(cfg), be_(&be) {
  params_.allocate(cfg);
  grads_.allocate(cfg);
  if (chunk_layers.empty()) chunk_layers = {cfg.L};
  assert(std::accumulate(chunk_layers.begin(), chunk_layers.end(), 0) == cfg.L);
  int first = 0;
  for (size_t i = 0; i < chunk_layers.size(); ++i) {
    chunks_.push_back(std::make_unique<GptChunk>(cfg, first, chunk_layers[i], i == 0, i + 1 == chunk_layers.size()));
    chunks_.back()->set_backend(&be);
    first += chunk_layers[i];
  }
  states_.resize(chunks_.size());
  boundary_grads_.resize(chunks_.size());
}

void GptModel::zero_grads() {
  for (auto& [name, t] : grads_.named()) be_->zero(t->ptr(), t->numel());
}

MicrobatchLosses GptModel::run_microbatch(const int32_t* tokens, const int32_t* targets, int B, int T,
                                          const HeadWeights& w, bool compute_grad, std::vector<Tensor>* logits) {
  MicrobatchLosses out;
  out.exits.assign(static_cast<size_t>(cfg_.num_exits()), 0.0f);
  if (logits) logits->clear();
  for (size_t i = 0; i < chunks_.size(); ++i) {
    const float* in = i == 0 ? nullptr : states_[i - 1].output();
    std::vector<Tensor> chunk_logits;
    chunks_[i]->forward(states_[i], params_, grads_, tokens, in, targets, B, T, w, compute_grad,
                        logits ? &chunk_logits : nullptr);
    for (size_t k = 0; k < chunks_[i]->exits().size(); ++k)
      out.exits[static_cast<size_t>(chunks_[i]->exits()[k])] = states_[i].exit_loss[k];
    if (logits)
      for (Tensor& t : chunk_logits) logits->push_back(std::move(t));
  }
  out.final_loss = states_.back().final_loss;
  if (!compute_grad) return out;
  for (size_t i = chunks_.size(); i-- > 0;) {
    const float* dout = i + 1 == chunks_.size() ? nullptr : boundary_grads_[i + 1].ptr();
    if (i > 0) boundary_grads_[i].data.assign(static_cast<size_t>(B) * T * cfg_.C, 0.0f);
    chunks_[i]->backward(states_[i], params_, grads_, dout, i > 0 ? boundary_grads_[i].ptr() : nullptr);
  }
  return out;
}

}  // namespace eellm::exec
