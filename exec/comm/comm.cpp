// Process groups (pure rank arithmetic) and the one-process communicator.
#include "exec/comm/comm.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>

namespace eellm::exec {
namespace {

std::string str(int v) {
  return std::to_string(v);
}

class SelfCommunicator final : public Communicator {
 public:
  explicit SelfCommunicator(std::string name) : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  Status send(const void*, size_t, int peer, int) override { return no_peer(peer); }
  Status wait_sends(double) override { return Status::ok(); }
  int pending_sends() override { return 0; }
  Status recv(void*, size_t, int peer, int, double) override { return no_peer(peer); }
  Status all_reduce_sum(float*, size_t, double) override { return Status::ok(); }
  Status all_reduce_sum(double*, size_t, double) override { return Status::ok(); }
  Status reduce_scatter_sum(const float* in, float* out, size_t n, double) override {
    if (n) std::memmove(out, in, n * sizeof(float));
    return Status::ok();
  }
  Status all_gather(const float* in, float* out, size_t n, double) override {
    if (n) std::memmove(out, in, n * sizeof(float));
    return Status::ok();
  }
  Status broadcast(void*, size_t, int root, double) override { return root == 0 ? Status::ok() : no_peer(root); }
  Status barrier(double) override { return Status::ok(); }
  StatusOr<std::unique_ptr<Communicator>> subgroup(const std::vector<int>& ranks, const std::string& name) override {
    if (ranks.empty()) return std::unique_ptr<Communicator>();
    if (ranks != std::vector<int>{0}) return Status::invalid_argument(name + ": a 1-process group has only rank 0");
    return std::unique_ptr<Communicator>(new SelfCommunicator(name));
  }
  [[noreturn]] void abort(int code) override { std::exit(code); }

 private:
  Status no_peer(int peer) const {
    return Status::invalid_argument(name_ + ": rank " + str(peer) + " does not exist in a 1-process group");
  }
  std::string name_;
};

// The base-class non-blocking collective: the blocking operation runs inside wait() (see comm.h).
class DeferredRequest final : public CollectiveRequest {
 public:
  explicit DeferredRequest(std::function<Status(double)> op) : op_(std::move(op)) {}
  bool test() override { return done_; }
  Status wait(double timeout_s) override {
    if (done_) return Status::ok();
    EELLM_RETURN_IF_ERROR(op_(timeout_s));
    done_ = true;
    return Status::ok();
  }

 private:
  std::function<Status(double)> op_;
  bool done_ = false;
};

}  // namespace

StatusOr<std::unique_ptr<CollectiveRequest>> Communicator::iall_reduce_sum(float* data, size_t n) {
  return std::unique_ptr<CollectiveRequest>(
      new DeferredRequest([this, data, n](double t) { return all_reduce_sum(data, n, t); }));
}
StatusOr<std::unique_ptr<CollectiveRequest>> Communicator::ireduce_scatter_sum(const float* in, float* out,
                                                                               size_t n_per_rank) {
  return std::unique_ptr<CollectiveRequest>(new DeferredRequest(
      [this, in, out, n_per_rank](double t) { return reduce_scatter_sum(in, out, n_per_rank, t); }));
}
StatusOr<std::unique_ptr<CollectiveRequest>> Communicator::iall_gather(const float* in, float* out, size_t n_per_rank) {
  return std::unique_ptr<CollectiveRequest>(
      new DeferredRequest([this, in, out, n_per_rank](double t) { return all_gather(in, out, n_per_rank, t); }));
}

int64_t steady_now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

RankCoords coords_of(const ParallelDims& d, int world_rank) {
  RankCoords c;
  c.tp = world_rank % d.tp;
  c.dp = (world_rank / d.tp) % d.dp;
  c.pp = world_rank / (d.tp * d.dp);
  return c;
}

int world_rank_of(const ParallelDims& d, const RankCoords& c) {
  return c.pp * d.dp * d.tp + c.dp * d.tp + c.tp;
}

StatusOr<ProcessGroups> make_process_groups(const ParallelDims& dims, int world_size, int world_rank,
                                            const std::vector<int>& embedding_stages) {
  if (dims.tp < 1 || dims.pp < 1 || dims.dp < 1)
    return Status::invalid_argument("parallel sizes must be ≥ 1 (tp " + str(dims.tp) + ", pp " + str(dims.pp) +
                                    ", dp " + str(dims.dp) + ")");
  if (world_size != dims.world())
    return Status::invalid_argument("the job has " + str(world_size) + " processes but tensor (" + str(dims.tp) +
                                    ") × pipeline (" + str(dims.pp) + ") × data (" + str(dims.dp) +
                                    ") parallel sizes need " + str(dims.world()) + "; launch with mpirun -np " +
                                    str(dims.world()));
  if (world_rank < 0 || world_rank >= world_size)
    return Status::invalid_argument("rank " + str(world_rank) + " outside the world of " + str(world_size));
  for (int s : embedding_stages)
    if (s < 0 || s >= dims.pp)
      return Status::invalid_argument("embedding stage " + str(s) + " outside pipeline [0, " + str(dims.pp) + ")");
  ProcessGroups g;
  g.dims = dims;
  g.world_rank = world_rank;
  g.coords = coords_of(dims, world_rank);
  const RankCoords me = g.coords;
  for (int t = 0; t < dims.tp; ++t) g.tensor.push_back(world_rank_of(dims, {t, me.dp, me.pp}));
  for (int p = 0; p < dims.pp; ++p) g.pipeline.push_back(world_rank_of(dims, {me.tp, me.dp, p}));
  for (int d = 0; d < dims.dp; ++d) g.data.push_back(world_rank_of(dims, {me.tp, d, me.pp}));
  std::vector<int> stages = embedding_stages;
  std::sort(stages.begin(), stages.end());
  stages.erase(std::unique(stages.begin(), stages.end()), stages.end());
  if (stages.size() >= 2 && std::find(stages.begin(), stages.end(), me.pp) != stages.end())
    for (int p : stages) g.embedding.push_back(world_rank_of(dims, {me.tp, me.dp, p}));
  return g;
}

std::unique_ptr<Communicator> make_self_communicator(const std::string& name) {
  return std::make_unique<SelfCommunicator>(name);
}

StatusOr<Communicators> make_communicators(Communicator& world, const ParallelDims& dims,
                                           const std::vector<int>& embedding_stages) {
  Communicators c;
  EELLM_ASSIGN_OR_RETURN(c.groups, make_process_groups(dims, world.size(), world.rank(), embedding_stages));
  c.world = &world;
  EELLM_ASSIGN_OR_RETURN(c.tensor, world.subgroup(c.groups.tensor, "tensor-parallel group"));
  EELLM_ASSIGN_OR_RETURN(c.pipeline, world.subgroup(c.groups.pipeline, "pipeline group"));
  EELLM_ASSIGN_OR_RETURN(c.data, world.subgroup(c.groups.data, "data-parallel group"));
  EELLM_ASSIGN_OR_RETURN(c.embedding, world.subgroup(c.groups.embedding, "embedding group"));
  return c;
}

}  // namespace eellm::exec
