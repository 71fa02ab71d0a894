// Communicators and process groups of the distributed runtime (DESIGN.md: "communicators (MPI,
// NCCL)"). A Communicator is one group of processes (an MPI_Comm, later an ncclComm_t): tagged
// point-to-point messages and sum collectives. No MPI type appears here, so exec/runtime and the
// tests build without MPI; exec/comm/mpi/ implements it, make_self_communicator() is the 1-process one.
//
// Fault handling: every blocking operation takes a deadline (seconds, ≤ 0 → wait forever) and
// returns a Status naming the peer/operation when it expires, so a dead or hung rank turns into
// an error on every other rank within the timeout instead of a silent hang (issue [exec-dist] 6).
//
// Non-blocking collectives (iall_reduce_sum, ireduce_scatter_sum, iall_gather) return a
// CollectiveRequest; its wait() takes a deadline like the blocking ops. Every rank of the group must
// post the same collectives in the same order. The base-class versions are "deferred": the
// blocking op runs inside wait(), which is correct (same order everywhere) but overlaps nothing;
// the MPI communicator posts real MPI_I* operations.
//
// Megatron rank order: tensor-parallel rank fastest, then data-parallel, then pipeline:
//   world_rank = pp_rank·(dp·tp) + dp_rank·tp + tp_rank.
// Thread-safety: a Communicator is used by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/status.h"

namespace eellm::exec {

struct ParallelDims {
  int tp = 1, pp = 1, dp = 1;
  int world() const { return tp * pp * dp; }
};

struct RankCoords {
  int tp = 0, dp = 0, pp = 0;
};

RankCoords coords_of(const ParallelDims& dims, int world_rank);
int world_rank_of(const ParallelDims& dims, const RankCoords& c);

// The groups one rank belongs to, as ascending world-rank lists (Megatron's parallel_state).
struct ProcessGroups {
  ParallelDims dims;
  int world_rank = 0;
  RankCoords coords;
  std::vector<int> tensor;    // same dp, pp; all tp ranks
  std::vector<int> pipeline;  // same tp, dp; all pp stages (index = pp rank)
  std::vector<int> data;      // same tp, pp; all dp replicas
  // Same tp, dp; the pipeline stages holding a tied word embedding (first, last, tied-exit stages).
  // Empty when this rank is not one of them or the group has fewer than two stages.
  std::vector<int> embedding;
};

// Fails when world_size != tp·pp·dp (naming the numbers), a size is < 1, the rank is out of
// range, or an embedding stage is outside [0, pp).
StatusOr<ProcessGroups> make_process_groups(const ParallelDims& dims, int world_size, int world_rank,
                                            const std::vector<int>& embedding_stages);

// A posted non-blocking collective. The buffers it was given must stay alive and untouched until
// wait() has returned ok. Destroying an unfinished request abandons it (only after a fault, when
// the job is being torn down). Used by one thread.
class CollectiveRequest {
 public:
  virtual ~CollectiveRequest() = default;
  // Non-blocking poll (also drives MPI's progress engine); true once the operation is complete.
  virtual bool test() = 0;
  // Blocks until complete or `timeout_s` (≤ 0 → forever) passes; the error names the operation.
  virtual Status wait(double timeout_s) = 0;
};

// steady_clock now in ns: the clock of send completions, GradSync's bucket timings and the
// runtime's measured timeline.
int64_t steady_now_ns();

// A send found complete (the runtime's SEND events, sim/timeline.h): the k-th send() of a
// communicator has id k (from 0); done_ns is steady_now_ns() when a poll found it complete.
struct SendCompletion {
  int64_t id = 0;
  int64_t done_ns = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;  // in this group
  virtual int size() const = 0;
  // Short description for messages, e.g. "pipeline group".
  virtual const std::string& name() const = 0;

  // Non-blocking send of `bytes` bytes to group rank `peer`; the data is copied, so the caller may
  // reuse the buffer at once. Messages between a pair with equal tags arrive in order.
  virtual Status send(const void* data, size_t bytes, int peer, int tag) = 0;
  // Waits until every send posted so far has completed (or the deadline passes).
  virtual Status wait_sends(double timeout_s) = 0;
  // Number of sends posted and not yet known to be complete (polls without blocking).
  virtual int pending_sends() = 0;
  // Blocking receive of exactly `bytes` bytes from `peer` with `tag`.
  virtual Status recv(void* data, size_t bytes, int peer, int tag, double timeout_s) = 0;
  // Posts ahead the receive that a later recv() with the same arguments completes, so that the
  // message can arrive while this rank computes (with progress() polled) and a large send does
  // not wait for the receiver to reach its recv(). `data` must stay alive and untouched until that
  // recv(). The default posts nothing: recv() then does all the work.
  virtual Status post_recv(void* /*data*/, size_t /*bytes*/, int /*peer*/, int /*tag*/) { return Status::ok(); }
  // Drives the transfers of the sends and posted receives in flight without blocking, and notes
  // the send completions it finds (record_send_completions). Open MPI moves a large (rendezvous)
  // message, and learns that it arrived, only inside MPI calls, so a rank that computes for long
  // calls this between layers (GptChunk's progress hook, set by the runtime); otherwise a send
  // posted before a compute step completes only after it. A few MPI_Test calls, nothing when
  // nothing is in flight. The default does nothing: the one-process communicator has no
  // messages, NCCL's run on the device by themselves.
  virtual void progress() {}

  // Send completion times, off by default. When on, each send found complete — by pending_sends(),
  // wait_sends(), or (MPI) the polls of a blocking receive — is kept until take_completed_sends()
  // returns it, so a completion is seen at the first such poll after it happened.
  void record_send_completions(bool on) { record_sends_ = on; }
  int64_t next_send_id() const { return next_send_id_; }  // the id the next send() gets
  std::vector<SendCompletion> take_completed_sends() { return std::exchange(completed_sends_, {}); }

  // Sum collectives over the group, in place where the signature says so.
  virtual Status all_reduce_sum(float* data, size_t n, double timeout_s) = 0;
  virtual Status all_reduce_sum(double* data, size_t n, double timeout_s) = 0;
  // in: size()·n_per_rank values; out: this rank's n_per_rank summed values (block rank()).
  virtual Status reduce_scatter_sum(const float* in, float* out, size_t n_per_rank, double timeout_s) = 0;
  // in: n_per_rank values; out: size()·n_per_rank values, block r from group rank r.
  virtual Status all_gather(const float* in, float* out, size_t n_per_rank, double timeout_s) = 0;
  virtual Status broadcast(void* data, size_t bytes, int root, double timeout_s) = 0;
  // Non-blocking forms of the three collectives above (same buffer semantics).
  virtual StatusOr<std::unique_ptr<CollectiveRequest>> iall_reduce_sum(float* data, size_t n);
  virtual StatusOr<std::unique_ptr<CollectiveRequest>> ireduce_scatter_sum(const float* in, float* out,
                                                                           size_t n_per_rank);
  virtual StatusOr<std::unique_ptr<CollectiveRequest>> iall_gather(const float* in, float* out, size_t n_per_rank);
  virtual Status barrier(double timeout_s) = 0;

  // A communicator over the listed ranks of this group (ascending, this rank must be in it).
  // Collective over THIS group: every rank calls it with its own list (lists of different ranks
  // must be equal or disjoint). An empty list → returns null (rank takes part in no new group).
  virtual StatusOr<std::unique_ptr<Communicator>> subgroup(const std::vector<int>& ranks, const std::string& name) = 0;

  // Ends the whole job with `code` (MPI_Abort); used after a fault so no rank is left waiting.
  [[noreturn]] virtual void abort(int code) = 0;

 protected:
  // For implementations: send() takes the id of the send it posts; the poll that finds that send
  // complete reports it.
  int64_t take_send_id() { return next_send_id_++; }
  void send_completed(int64_t id) {
    if (record_sends_) completed_sends_.push_back({id, steady_now_ns()});
  }
  bool records_send_completions() const { return record_sends_; }

 private:
  bool record_sends_ = false;
  int64_t next_send_id_ = 0;
  std::vector<SendCompletion> completed_sends_;
};

// The one-process communicator: collectives are identities, p2p to another rank is an error.
std::unique_ptr<Communicator> make_self_communicator(const std::string& name = "self");

// The communicators of one rank, built from a world communicator by make_communicators().
struct Communicators {
  ProcessGroups groups;
  Communicator* world = nullptr;                                    // not owned
  std::unique_ptr<Communicator> tensor, pipeline, data, embedding;  // embedding null if not a member
};
StatusOr<Communicators> make_communicators(Communicator& world, const ParallelDims& dims,
                                           const std::vector<int>& embedding_stages);

}  // namespace eellm::exec
