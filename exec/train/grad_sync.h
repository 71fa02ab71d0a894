// GradSync: the data-parallel gradient reduction and the AdamW step of one rank's trained tensors
// (issue [exec-dist] 6, Megatron's DistributedDataParallel + DistributedOptimizer).
//
// The caller hands over (param, grad) Tensor pairs with their checkpoint names; shapes do not
// matter (tensor-parallel shards are just smaller tensors). The tensors are packed into BUCKETS
// (plan_buckets): walked in reverse order (backward produces the last layers' gradients first), a
// bucket holds tensors of one readiness group only (the runtime's model chunk), never splits a
// tensor, and is closed once it reaches `bucket_floats`; its flat size is padded to a multiple of
// the data-parallel size so it shards evenly.
//
//  - Plain DP: each bucket is summed with an all-reduce, scaled by 1/dp and copied back into the
//    grad tensors; AdamW then runs per tensor (moments held here, per bucket).
//  - ZeRO-1 (distributed_optimizer): each bucket is reduce-scattered; DP rank r owns elements
//    [r·S/dp, (r+1)·S/dp) of every bucket of flat size S, keeps AdamW moments only for them,
//    updates those parameter elements in place and all-gathers the bucket's parameters. Buckets
//    flagged `reduced_again` (the tied word embedding, which the embedding group sums after the DP
//    reduction) are all-reduced in full instead, so that sum sees averaged gradients; their
//    optimizer state is still sharded.
//  - overlap (Megatron's overlap_grad_reduce): a bucket is posted as a non-blocking collective as
//    soon as every one of its gradients is final. The runtime reports final gradients per tensor
//    (tensors_ready: per layer during the chunk's last backward, the heads' before it) and per
//    readiness group (group_ready: everything of the chunk after its last backward step); as
//    buckets are filled in reverse tensor order (last layers first), the first buckets complete
//    while the backward still runs through the earlier layers. reduce() posts the rest and waits.
//    Without overlap everything is posted and waited in reduce(). Post order may differ from
//    bucket order but is the same on every DP replica (they run the same instruction list).
// The gradient norm is Σ over tensors with counts_in_norm of Σ g², in double, summed over the
// norm group (and, with ZeRO, over the DP shards) — the same quantity as the single-process run.
// A non-finite gradient anywhere fails the step on every rank of the norm/DP groups alike.
// Invariants: every DP replica builds the same plan (same tensors in the same order) and makes
// the same calls in the same order. Thread-safety: one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/backend/tensor.h"
#include "exec/comm/comm.h"
#include "exec/gpt/gpt.h"
#include "model/scenario.h"
#include "model/status.h"

namespace eellm::exec {

struct SyncTensor {
  std::string name;  // checkpoint name (GptParams::named()), for messages and checkpoints
  Tensor* param = nullptr;
  Tensor* grad = nullptr;
  int group = -1;              // readiness group (model chunk); -1: ready only at reduce()
  bool reduced_again = false;  // another collective sums this gradient after the DP reduction
  bool counts_in_norm = true;  // false for a tied copy counted on another stage
  // What the tensor is (GptParams::params()); decides weight decay. Unset: param_role_of(name).
  std::optional<ParamRole> role;
};

struct GradSyncOptions {
  bool distributed_optimizer = false;  // parallel.use_distributed_optimizer (ZeRO-1)
  bool overlap = false;                // parallel.overlap_grad_reduce
  size_t bucket_floats = 40'000'000;   // parallel.ddp_bucket_size
  double timeout_s = 60;               // execution.recv_timeout_s
};

// Megatron's default bucket: max(40M, 1M·dp) elements; scenario value 0 → this.
size_t default_bucket_floats(int dp);

struct BucketPlan {
  struct Bucket {
    int group = -1;
    bool reduced_again = false;
    std::vector<size_t> tensors;  // indices into the tensor list, in bucket order
    std::vector<size_t> offsets;  // flat offset of each tensor in the bucket
    size_t numel = 0;             // Σ tensor sizes
    size_t padded = 0;            // numel rounded up to a multiple of dp
  };
  std::vector<Bucket> buckets;
};

// Pure: the bucket layout for tensors of `numels` elements (see the header comment).
BucketPlan plan_buckets(const std::vector<size_t>& numels, const std::vector<int>& groups,
                        const std::vector<bool>& reduced_again, size_t bucket_floats, int dp);

// This DP rank's element range [begin, end) of a bucket of `padded` elements (ZeRO-1 shard).
inline std::pair<size_t, size_t> shard_range(size_t padded, int dp, int dp_rank) {
  const size_t n = padded / static_cast<size_t>(dp);
  return {n * static_cast<size_t>(dp_rank), n * static_cast<size_t>(dp_rank + 1)};
}

class GradSync {
 public:
  // `data` (the DP group; size 1 → no reduction) and `be` must outlive this object.
  static StatusOr<std::unique_ptr<GradSync>> create(std::vector<SyncTensor> tensors, Communicator& data, Backend& be,
                                                    const GradSyncOptions& options);

  // Overlap only (else a no-op): group g's gradients are final; post its buckets.
  Status group_ready(int group);
  // Overlap only (else a no-op): the gradients of these tensors (indices into tensors()) are final
  // for this iteration; posts every bucket whose tensors are now all final.
  Status tensors_ready(const std::vector<size_t>& tensors);
  // Drives the progress of posted collectives (MPI progresses non-blocking ops only inside calls).
  void poll();
  // Posts every bucket not yet posted and waits for all. After it, plain DP: every grad tensor
  // holds the DP average; ZeRO-1: the reduced_again tensors do, the others' averages are sharded.
  Status reduce();

  struct Step {
    double grad_norm = 0, clip = 1, lr = 0;
  };
  // Clipping by the global norm (Σ g² summed over every group of `norm_groups`, e.g. the
  // pipeline ranks that train and the tensor-parallel group), AdamW with lr_at(t, iteration) and
  // step iteration+1, and (ZeRO-1) the parameter all-gather. Calls reduce() first if needed.
  StatusOr<Step> step(const std::vector<Communicator*>& norm_groups, const TrainingSpec& t, int iteration);

  // This rank's optimizer state of one tensor: moments of elements [begin, end) of the tensor
  // (flattened). Plain DP: the whole tensor; ZeRO-1: the part inside this rank's shards (maybe empty).
  struct MomentSlice {
    size_t tensor = 0;  // index in tensors()
    size_t begin = 0, end = 0;
    float* m = nullptr;
    float* v = nullptr;
  };
  std::vector<MomentSlice> moment_slices();
  const std::vector<SyncTensor>& tensors() const { return tensors_; }
  const BucketPlan& plan() const { return plan_; }
  // When each bucket of the last reduce() was posted and found complete (steady_now_ns(); -1 for a
  // bucket that needed no collective, dp 1). Valid from reduce() until the next step().
  struct BucketTiming {
    int group = -1;
    size_t floats = 0;  // padded bucket size
    int64_t post_ns = -1, done_ns = -1;
  };
  std::vector<BucketTiming> timings() const;
  bool distributed_optimizer() const { return opt_.distributed_optimizer && data_->size() > 1; }

 private:
  GradSync() = default;
  Status post(size_t b);
  Status finish(size_t b);

  struct BucketState {
    Tensor flat;            // padded gradient sums (then averages)
    Tensor shard_grad;      // ZeRO-1: this rank's reduce-scatter result
    Tensor m, v;            // AdamW moments over [lo, hi)
    Tensor gather;          // ZeRO-1: the all-gathered parameters
    size_t lo = 0, hi = 0;  // this rank's optimizer range in the bucket
    std::unique_ptr<CollectiveRequest> req;
    bool posted = false, done = false;
    size_t pending = 0;  // tensors of the bucket not yet reported final (tensors_ready)
    int64_t post_ns = -1, done_ns = -1;
  };
  void reset_iteration();
  std::vector<SyncTensor> tensors_;
  BucketPlan plan_;
  std::vector<BucketState> state_;
  std::vector<size_t> bucket_of_;  // per tensor: its bucket
  std::vector<char> final_;        // per tensor: reported final this iteration
  Communicator* data_ = nullptr;
  Backend* be_ = nullptr;
  GradSyncOptions opt_;
  bool reduced_ = false;
};

}  // namespace eellm::exec
