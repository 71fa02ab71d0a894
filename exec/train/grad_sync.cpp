// GradSync: bucketed DP gradient reduction, overlap, ZeRO-1 AdamW (see grad_sync.h).
#include "exec/train/grad_sync.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <utility>

#include "exec/gpt/optimizer.h"

namespace eellm::exec {
namespace {

std::string str(size_t v) {
  return std::to_string(v);
}

// A flat (n) buffer; GradSync::create fills fresh tensors only, so tensor.h's resize zero-fills.
void alloc_flat(Tensor& t, size_t n) {
  resize(t, {static_cast<int64_t>(n)});
}

}  // namespace

size_t default_bucket_floats(int dp) {
  return std::max<size_t>(40'000'000, 1'000'000 * static_cast<size_t>(dp));
}

BucketPlan plan_buckets(const std::vector<size_t>& numels, const std::vector<int>& groups,
                        const std::vector<bool>& reduced_again, size_t bucket_floats, int dp) {
  BucketPlan plan;
  if (bucket_floats == 0) bucket_floats = default_bucket_floats(dp);
  const size_t d = static_cast<size_t>(std::max(1, dp));
  std::map<std::pair<int, bool>, size_t> open;  // (group, reduced_again) → index of its open bucket
  for (size_t i = numels.size(); i-- > 0;) {
    const std::pair<int, bool> key{groups[i], reduced_again[i]};
    auto it = open.find(key);
    if (it == open.end()) {
      BucketPlan::Bucket b;
      b.group = key.first, b.reduced_again = key.second;
      plan.buckets.push_back(std::move(b));
      it = open.emplace(key, plan.buckets.size() - 1).first;
    }
    BucketPlan::Bucket& b = plan.buckets[it->second];
    b.tensors.push_back(i);
    b.offsets.push_back(b.numel);
    b.numel += numels[i];
    b.padded = (b.numel + d - 1) / d * d;
    if (b.numel >= bucket_floats) open.erase(it);  // full: the next tensor of this key opens a new one
  }
  return plan;
}

StatusOr<std::unique_ptr<GradSync>> GradSync::create(std::vector<SyncTensor> tensors, Communicator& data, Backend& be,
                                                     const GradSyncOptions& options) {
  std::unique_ptr<GradSync> gs(new GradSync());
  gs->data_ = &data, gs->be_ = &be, gs->opt_ = options;
  std::vector<size_t> numels;
  std::vector<int> groups;
  std::vector<bool> again;
  for (SyncTensor& t : tensors) {
    if (!t.param || !t.grad || t.param->numel() != t.grad->numel())
      return Status::invalid_argument("GradSync: tensor " + t.name + " has no parameter/gradient pair of equal size");
    if (!t.role) {
      auto role = param_role_of(t.name);
      if (!role.is_ok()) return role.status().with_context("GradSync");
      t.role = *role;
    }
    numels.push_back(t.param->numel());
    groups.push_back(t.group);
    again.push_back(t.reduced_again);
  }
  gs->tensors_ = std::move(tensors);
  const int dp = data.size();
  gs->plan_ = plan_buckets(numels, groups, again, options.bucket_floats, dp);
  gs->state_.resize(gs->plan_.buckets.size());
  const bool zero = gs->distributed_optimizer();
  for (size_t b = 0; b < gs->plan_.buckets.size(); ++b) {
    const BucketPlan::Bucket& bk = gs->plan_.buckets[b];
    BucketState& s = gs->state_[b];
    if (dp > 1) alloc_flat(s.flat, bk.padded);
    if (zero) {
      std::tie(s.lo, s.hi) = shard_range(bk.padded, dp, data.rank());
      alloc_flat(s.shard_grad, s.hi - s.lo);
      alloc_flat(s.gather, bk.padded);
    } else {
      s.lo = 0, s.hi = bk.numel;
    }
    alloc_flat(s.m, s.hi - s.lo);
    alloc_flat(s.v, s.hi - s.lo);
  }
  gs->bucket_of_.assign(gs->tensors_.size(), 0);
  for (size_t b = 0; b < gs->plan_.buckets.size(); ++b)
    for (size_t t : gs->plan_.buckets[b].tensors) gs->bucket_of_[t] = b;
  gs->reset_iteration();
  return gs;
}

void GradSync::reset_iteration() {
  final_.assign(tensors_.size(), 0);
  for (size_t b = 0; b < state_.size(); ++b) {
    BucketState& s = state_[b];
    s.posted = s.done = false;
    s.pending = plan_.buckets[b].tensors.size();
    s.post_ns = s.done_ns = -1;
  }
}

Status GradSync::post(size_t b) {
  BucketState& s = state_[b];
  if (s.posted) return Status::ok();
  s.posted = true;
  if (data_->size() == 1) {
    s.done = true;
    return Status::ok();
  }
  const BucketPlan::Bucket& bk = plan_.buckets[b];
  be_->synchronize();  // the gradients are copied on the host (a device backend runs asynchronously)
  float* fl = s.flat.ptr();
  for (size_t k = 0; k < bk.tensors.size(); ++k) {
    const Tensor& g = *tensors_[bk.tensors[k]].grad;
    std::copy(g.data.begin(), g.data.end(), fl + bk.offsets[k]);
  }
  std::fill(fl + bk.numel, fl + bk.padded, 0.0f);
  s.post_ns = steady_now_ns();
  if (distributed_optimizer() && !bk.reduced_again) {
    EELLM_ASSIGN_OR_RETURN(s.req, data_->ireduce_scatter_sum(fl, s.shard_grad.ptr(), s.hi - s.lo));
  } else {
    EELLM_ASSIGN_OR_RETURN(s.req, data_->iall_reduce_sum(fl, bk.padded));
  }
  return Status::ok();
}

Status GradSync::finish(size_t b) {
  BucketState& s = state_[b];
  if (s.done) return Status::ok();
  EELLM_RETURN_IF_ERROR(post(b));
  if (s.done) return Status::ok();
  EELLM_RETURN_IF_ERROR(
      s.req->wait(opt_.timeout_s).with_context("data-parallel reduction of gradient bucket " + str(b)));
  s.req.reset();
  s.done = true;
  s.done_ns = steady_now_ns();
  const BucketPlan::Bucket& bk = plan_.buckets[b];
  const float inv = 1.0f / static_cast<float>(data_->size());
  if (distributed_optimizer() && !bk.reduced_again) {
    for (float& v : s.shard_grad.data) v *= inv;
    return Status::ok();
  }
  const float* flat = s.flat.ptr();
  for (size_t k = 0; k < bk.tensors.size(); ++k) {
    Tensor& g = *tensors_[bk.tensors[k]].grad;
    const float* src = flat + bk.offsets[k];
    for (size_t j = 0; j < g.data.size(); ++j) g.data[j] = src[j] * inv;
  }
  return Status::ok();
}

Status GradSync::group_ready(int group) {
  if (!opt_.overlap || data_->size() == 1) return Status::ok();
  for (size_t b = 0; b < plan_.buckets.size(); ++b)
    if (plan_.buckets[b].group == group) EELLM_RETURN_IF_ERROR(post(b));
  return Status::ok();
}

Status GradSync::tensors_ready(const std::vector<size_t>& tensors) {
  if (!opt_.overlap || data_->size() == 1) return Status::ok();
  // Last tensor first: buckets are filled in reverse tensor order, so they are posted in bucket order.
  for (auto it = tensors.rbegin(); it != tensors.rend(); ++it) {
    const size_t t = *it;
    if (t >= tensors_.size()) return Status::internal("GradSync::tensors_ready: no tensor " + str(t));
    if (final_[t]) continue;
    final_[t] = 1;
    const size_t b = bucket_of_[t];
    if (--state_[b].pending == 0) EELLM_RETURN_IF_ERROR(post(b));
  }
  return Status::ok();
}

std::vector<GradSync::BucketTiming> GradSync::timings() const {
  std::vector<BucketTiming> out;
  for (size_t b = 0; b < state_.size(); ++b)
    out.push_back({plan_.buckets[b].group, plan_.buckets[b].padded, state_[b].post_ns, state_[b].done_ns});
  return out;
}

void GradSync::poll() {
  for (BucketState& s : state_)
    if (s.req) (void)s.req->test();
}

Status GradSync::reduce() {
  for (size_t b = 0; b < state_.size(); ++b) EELLM_RETURN_IF_ERROR(post(b));
  for (size_t b = 0; b < state_.size(); ++b) EELLM_RETURN_IF_ERROR(finish(b));
  reduced_ = true;
  return Status::ok();
}

std::vector<GradSync::MomentSlice> GradSync::moment_slices() {
  std::vector<MomentSlice> out;
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    const BucketPlan::Bucket& bk = plan_.buckets[b];
    BucketState& s = state_[b];
    for (size_t k = 0; k < bk.tensors.size(); ++k) {
      const size_t t0 = bk.offsets[k], t1 = t0 + tensors_[bk.tensors[k]].param->numel();
      const size_t a = std::max(t0, s.lo), e = std::min(t1, s.hi);
      MomentSlice ms;
      ms.tensor = bk.tensors[k];
      if (a < e) ms.begin = a - t0, ms.end = e - t0, ms.m = s.m.ptr() + (a - s.lo), ms.v = s.v.ptr() + (a - s.lo);
      out.push_back(ms);
    }
  }
  std::sort(out.begin(), out.end(), [](const MomentSlice& x, const MomentSlice& y) { return x.tensor < y.tensor; });
  return out;
}

StatusOr<GradSync::Step> GradSync::step(const std::vector<Communicator*>& norm_groups, const TrainingSpec& t,
                                        int iteration) {
  if (!reduced_) EELLM_RETURN_IF_ERROR(reduce());
  reduced_ = false;
  reset_iteration();
  const bool zero = distributed_optimizer();

  // The pieces this rank updates: (tensor, element range, gradient pointer, moment offset).
  struct Piece {
    size_t tensor, bucket, begin, end;
    const float* grad;
    float* m;
    float* v;
  };
  std::vector<Piece> pieces;
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    const BucketPlan::Bucket& bk = plan_.buckets[b];
    BucketState& s = state_[b];
    for (size_t k = 0; k < bk.tensors.size(); ++k) {
      const SyncTensor& st = tensors_[bk.tensors[k]];
      const size_t t0 = bk.offsets[k], t1 = t0 + st.param->numel();
      const size_t a = std::max(t0, s.lo), e = std::min(t1, s.hi);
      if (a >= e) continue;
      const float* g = zero && !bk.reduced_again ? s.shard_grad.ptr() + (a - s.lo) : st.grad->ptr() + (a - t0);
      pieces.push_back({bk.tensors[k], b, a - t0, e - t0, g, s.m.ptr() + (a - s.lo), s.v.ptr() + (a - s.lo)});
    }
  }
  // Σ g² and non-finite count; plain DP: per whole tensor, in the tensors' order (as before ZeRO).
  std::sort(pieces.begin(), pieces.end(), [](const Piece& x, const Piece& y) {
    return x.tensor != y.tensor ? x.tensor < y.tensor : x.begin < y.begin;
  });
  double buf[2] = {0.0, 0.0};  // Σ g², non-finite pieces
  std::string bad;
  for (const Piece& p : pieces) {
    // One pass: Σ g² is non-finite exactly when the piece holds an inf or NaN.
    const double sq = be_->sum_squares(p.grad, p.end - p.begin);
    if (!std::isfinite(sq)) {
      buf[1] += 1;
      if (bad.empty()) bad = tensors_[p.tensor].name;
    } else if (tensors_[p.tensor].counts_in_norm) {
      buf[0] += sq;
    }
  }
  if (zero)
    EELLM_RETURN_IF_ERROR(data_->all_reduce_sum(buf, 2, opt_.timeout_s).with_context("gradient norm over DP shards"));
  for (Communicator* g : norm_groups)
    if (g && g->size() > 1)
      EELLM_RETURN_IF_ERROR(
          g->all_reduce_sum(buf, 2, opt_.timeout_s).with_context("gradient norm over the " + g->name()));
  if (buf[1] > 0)
    return Status::failed_precondition(
        (bad.empty() ? std::string("non-finite gradient on another rank") : "non-finite gradient in tensor " + bad) +
        " at step " + std::to_string(iteration + 1) + "; parameters left unchanged");
  Step r;
  r.grad_norm = std::sqrt(buf[0]);
  if (t.clip_grad > 0 && r.grad_norm > t.clip_grad) r.clip = t.clip_grad / (r.grad_norm + 1e-6);
  r.lr = lr_at(t, iteration);
  for (const Piece& p : pieces) {
    Tensor& param = *tensors_[p.tensor].param;
    const float wd = tensors_[p.tensor].role->decays() ? static_cast<float>(t.weight_decay) : 0.0f;
    be_->adamw_step(param.ptr() + p.begin, p.grad, p.m, p.v, p.end - p.begin, static_cast<float>(r.lr),
                    static_cast<float>(t.adam_beta1), static_cast<float>(t.adam_beta2), static_cast<float>(t.adam_eps),
                    wd, static_cast<float>(r.clip), iteration + 1);
  }
  if (!zero) return r;
  // ZeRO-1: every DP rank updated its shard of each bucket; gather the parameters.
  be_->synchronize();  // the updated parameters are read on the host
  // All buckets' gathers in flight at once; shard_grad (consumed by AdamW) is the send buffer.
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    const BucketPlan::Bucket& bk = plan_.buckets[b];
    BucketState& s = state_[b];
    float* mine = s.shard_grad.ptr();
    std::fill(mine, mine + (s.hi - s.lo), 0.0f);
    for (size_t k = 0; k < bk.tensors.size(); ++k) {
      const Tensor& param = *tensors_[bk.tensors[k]].param;
      const size_t t0 = bk.offsets[k], t1 = t0 + param.numel();
      for (size_t j = std::max(t0, s.lo); j < std::min(t1, s.hi); ++j) mine[j - s.lo] = param.data[j - t0];
    }
    EELLM_ASSIGN_OR_RETURN(s.req, data_->iall_gather(mine, s.gather.ptr(), s.hi - s.lo));
  }
  for (size_t b = 0; b < plan_.buckets.size(); ++b) {
    const BucketPlan::Bucket& bk = plan_.buckets[b];
    BucketState& s = state_[b];
    EELLM_RETURN_IF_ERROR(s.req->wait(opt_.timeout_s).with_context("parameter all-gather of bucket " + str(b)));
    s.req.reset();
    for (size_t k = 0; k < bk.tensors.size(); ++k) {
      Tensor& param = *tensors_[bk.tensors[k]].param;
      std::copy_n(s.gather.ptr() + bk.offsets[k], param.numel(), param.ptr());
    }
  }
  return r;
}

}  // namespace eellm::exec
