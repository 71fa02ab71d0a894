// NcclCommunicator (see nccl_comm.h): non-blocking-mode NCCL communicators, one for collectives and
// two for point-to-point (lower→higher rank, higher→lower), each with its own stream; deadline
// polling; host-buffer staging.
#include "exec/comm/nccl/nccl_comm.h"

#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <thread>
#include <utility>

#include "exec/backend/cuda/cuda_check.h"
#include "exec/backend/cuda/cuda_context.h"

namespace eellm::exec {
namespace {

using Clock = std::chrono::steady_clock;
using cuda::DeviceBuffer;

std::string str(double v) {
  return std::to_string(v);
}

struct Deadline {
  Clock::time_point end{};
  bool forever = true;
  static Deadline in(double seconds) {
    Deadline d;
    if (seconds > 0) {
      d.forever = false;
      d.end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    }
    return d;
  }
  bool passed() const { return !forever && Clock::now() > end; }
};

void backoff(int& spins) {
  if (++spins < 1000)
    std::this_thread::yield();
  else
    std::this_thread::sleep_for(std::chrono::microseconds(50));
}

Status nccl_error(const std::string& what, ncclResult_t r) {
  return Status::internal(what + " failed: " + ncclGetErrorString(r) + " (hint: NCCL_DEBUG=WARN shows why)");
}

// Waits until a non-blocking communicator has finished the call just issued (init, split, enqueue).
Status settle(ncclComm_t c, ncclResult_t r, const std::string& what, const Deadline& d, double timeout_s) {
  if (r != ncclSuccess && r != ncclInProgress) return nccl_error(what, r);
  for (int spins = 0;;) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t q = ncclCommGetAsyncError(c, &state);
    if (q != ncclSuccess) return nccl_error(what + " (ncclCommGetAsyncError)", q);
    if (state == ncclSuccess) return Status::ok();
    if (state != ncclInProgress) return nccl_error(what, state);
    if (d.passed()) return Status::failed_precondition(what + " timed out after " + str(timeout_s) + " s");
    backoff(spins);
  }
}

ncclConfig_t nonblocking_config() {
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;
  return cfg;
}

// Owns one ncclComm_t: finalize + destroy when healthy, abort otherwise (or when finalize stalls).
class Comm {
 public:
  Comm() = default;
  explicit Comm(ncclComm_t c) : c_(c) {}
  ~Comm() { reset(); }
  Comm(Comm&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  Comm& operator=(Comm&& o) noexcept {
    if (this != &o) reset(), c_ = std::exchange(o.c_, nullptr);
    return *this;
  }
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  ncclComm_t get() const { return c_; }
  void abort() {
    if (c_) ncclCommAbort(c_), c_ = nullptr;
  }
  void reset() {
    if (!c_) return;
    const Deadline d = Deadline::in(10.0);
    if (settle(c_, ncclCommFinalize(c_), "ncclCommFinalize", d, 10.0).is_ok())
      ncclCommDestroy(c_);
    else
      ncclCommAbort(c_);
    c_ = nullptr;
  }

 private:
  ncclComm_t c_ = nullptr;
};

bool device_accessible(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

template <class F>
Status guarded(F&& f) {
  try {
    return f();
  } catch (const cuda::CudaError& e) {
    return Status::internal(e.what());
  }
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Comm main, Communicator* boot, std::string name)
      : main_(std::move(main)), boot_(boot), name_(std::move(name)) {
    EELLM_NCCL_CHECK(ncclCommUserRank(main_.get(), &rank_));
    EELLM_NCCL_CHECK(ncclCommCount(main_.get(), &size_));
  }
  // Second phase: the two point-to-point communicators (collective over the group).
  Status init_p2p(double timeout_s) {
    const Deadline d = Deadline::in(timeout_s);
    for (Comm* c : {&up_, &down_}) {
      ncclConfig_t cfg = nonblocking_config();
      ncclComm_t out = nullptr;
      const ncclResult_t r = ncclCommSplit(main_.get(), 0, rank_, &out, &cfg);
      if (r != ncclSuccess && r != ncclInProgress) return nccl_error(name_ + ": ncclCommSplit (p2p)", r);
      EELLM_RETURN_IF_ERROR(settle(out, r, name_ + ": ncclCommSplit (p2p)", d, timeout_s));
      *c = Comm(out);
    }
    return Status::ok();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }

  Status send(const void* data, size_t bytes, int peer, int /*tag*/) override {
    EELLM_RETURN_IF_ERROR(check_peer(peer));
    return guarded([&]() -> Status {
      reclaim();
      const int64_t id = take_send_id();
      DeviceBuffer buf = take_buffer();
      void* staged = buf.ensure(bytes);
      if (peer == rank_) {  // a local copy, ordered with the compute stream
        if (bytes) EELLM_CUDA_CHECK(cudaMemcpyAsync(staged, data, bytes, cudaMemcpyDefault, cuda::process_stream()));
        self_.push_back({std::move(buf), bytes});
        send_completed(id);
        return Status::ok();
      }
      const Dir& dir = direction_to(peer);
      after_compute(dir.stream->get());
      if (bytes) EELLM_CUDA_CHECK(cudaMemcpyAsync(staged, data, bytes, cudaMemcpyDefault, dir.stream->get()));
      // Later compute that overwrites `data` must wait for the copy, not for the transfer.
      EELLM_CUDA_CHECK(cudaEventRecord(copied_.get(), dir.stream->get()));
      EELLM_CUDA_CHECK(cudaStreamWaitEvent(cuda::process_stream(), copied_.get(), 0));
      const Deadline d = Deadline::in(0);
      EELLM_RETURN_IF_ERROR(settle(dir.comm->get(),
                                   ncclSend(staged, bytes, ncclInt8, peer, dir.comm->get(), dir.stream->get()),
                                   name_ + ": ncclSend to rank " + std::to_string(peer), d, 0));
      auto done = std::make_unique<cuda::Event>();
      EELLM_CUDA_CHECK(cudaEventRecord(done->get(), dir.stream->get()));
      sends_.push_back({std::move(done), std::move(buf), peer, id});
      return Status::ok();
    });
  }

  Status wait_sends(double timeout_s) override {
    return guarded([&]() -> Status {
      const Deadline d = Deadline::in(timeout_s);
      while (!sends_.empty()) {
        Pending& p = sends_.front();
        EELLM_RETURN_IF_ERROR(
            wait_event(p.done->get(), name_ + ": send to rank " + std::to_string(p.peer), d, timeout_s));
        send_completed(p.id);
        free_.push_back(std::move(p.buf));
        sends_.pop_front();
      }
      return Status::ok();
    });
  }

  int pending_sends() override {
    reclaim();
    return static_cast<int>(sends_.size());
  }

  Status recv(void* data, size_t bytes, int peer, int /*tag*/, double timeout_s) override {
    EELLM_RETURN_IF_ERROR(check_peer(peer));
    return guarded([&]() -> Status {
      if (peer == rank_) {
        if (self_.empty()) return Status::failed_precondition(name_ + ": recv from self with no message sent to self");
        SelfMsg m = std::move(self_.front());
        self_.pop_front();
        if (m.bytes != bytes)
          return Status::invalid_argument(name_ + ": recv from self of " + std::to_string(bytes) +
                                          " bytes, but the message has " + std::to_string(m.bytes));
        if (bytes)
          EELLM_CUDA_CHECK(cudaMemcpyAsync(data, m.buf.get(), bytes, cudaMemcpyDefault, cuda::process_stream()));
        EELLM_CUDA_CHECK(cudaStreamSynchronize(cuda::process_stream()));
        free_.push_back(std::move(m.buf));
        return Status::ok();
      }
      const Dir& dir = direction_to(peer);
      const std::string what = name_ + ": recv from rank " + std::to_string(peer);
      return staged_op(data, bytes, /*copy_in=*/false, dir, what, timeout_s,
                       [&](void* p, cudaStream_t s) { return ncclRecv(p, bytes, ncclInt8, peer, dir.comm->get(), s); });
    });
  }

  Status all_reduce_sum(float* data, size_t n, double timeout_s) override {
    return collective(data, n * sizeof(float), name_ + ": all-reduce", timeout_s, [&](void* p, cudaStream_t s) {
      return ncclAllReduce(p, p, n, ncclFloat, ncclSum, main_.get(), s);
    });
  }
  Status all_reduce_sum(double* data, size_t n, double timeout_s) override {
    return collective(
        data, n * sizeof(double), name_ + ": all-reduce (double)", timeout_s,
        [&](void* p, cudaStream_t s) { return ncclAllReduce(p, p, n, ncclDouble, ncclSum, main_.get(), s); });
  }
  Status broadcast(void* data, size_t bytes, int root, double timeout_s) override {
    EELLM_RETURN_IF_ERROR(check_peer(root));
    return collective(
        data, bytes, name_ + ": broadcast from rank " + std::to_string(root), timeout_s,
        [&](void* p, cudaStream_t s) { return ncclBroadcast(p, p, bytes, ncclInt8, root, main_.get(), s); });
  }
  Status barrier(double timeout_s) override {
    return guarded([&]() -> Status {
      void* p = barrier_.ensure(sizeof(float));
      EELLM_CUDA_CHECK(cudaMemsetAsync(p, 0, sizeof(float), coll_.get()));
      return collective(p, sizeof(float), name_ + ": barrier", timeout_s, [&](void* q, cudaStream_t s) {
        return ncclAllReduce(q, q, 1, ncclFloat, ncclSum, main_.get(), s);
      });
    });
  }

  Status reduce_scatter_sum(const float* in, float* out, size_t n_per_rank, double timeout_s) override {
    return two_buffer(in, n_per_rank * size_, out, n_per_rank, name_ + ": reduce-scatter", timeout_s,
                      [&](const void* i, void* o, cudaStream_t s) {
                        return ncclReduceScatter(i, o, n_per_rank, ncclFloat, ncclSum, main_.get(), s);
                      });
  }
  Status all_gather(const float* in, float* out, size_t n_per_rank, double timeout_s) override {
    return two_buffer(in, n_per_rank, out, n_per_rank * size_, name_ + ": all-gather", timeout_s,
                      [&](const void* i, void* o, cudaStream_t s) {
                        return ncclAllGather(i, o, n_per_rank, ncclFloat, main_.get(), s);
                      });
  }

  StatusOr<std::unique_ptr<Communicator>> subgroup(const std::vector<int>& ranks, const std::string& name) override {
    bool member = false;
    for (size_t i = 0; i < ranks.size(); ++i) {
      if (ranks[i] < 0 || ranks[i] >= size_ || (i > 0 && ranks[i] <= ranks[i - 1]))
        return Status::invalid_argument(name + ": rank list must be ascending ranks of " + name_);
      member = member || ranks[i] == rank_;
    }
    if (!ranks.empty() && !member)
      return Status::invalid_argument(name + ": rank " + std::to_string(rank_) + " is not in its own group list");
    // Lists are equal or disjoint, so the lowest rank names the group.
    const int color = ranks.empty() ? NCCL_SPLIT_NOCOLOR : ranks.front();
    ncclConfig_t cfg = nonblocking_config();
    ncclComm_t out = nullptr;
    const double timeout_s = 300;
    const ncclResult_t r = ncclCommSplit(main_.get(), color, rank_, &out, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) return nccl_error(name + ": ncclCommSplit", r);
    if (ranks.empty()) {
      EELLM_RETURN_IF_ERROR(settle(main_.get(), r, name + ": ncclCommSplit", Deadline::in(timeout_s), timeout_s));
      return std::unique_ptr<Communicator>();
    }
    EELLM_RETURN_IF_ERROR(settle(out, r, name + ": ncclCommSplit", Deadline::in(timeout_s), timeout_s));
    try {
      auto c = std::make_unique<NcclCommunicator>(Comm(out), boot_, name);
      if (c->size() != static_cast<int>(ranks.size()))
        return Status::internal(name + ": split gave " + std::to_string(c->size()) + " ranks, expected " +
                                std::to_string(ranks.size()));
      EELLM_RETURN_IF_ERROR(c->init_p2p(timeout_s));
      return std::unique_ptr<Communicator>(std::move(c));
    } catch (const cuda::CudaError& e) {
      return Status::internal(e.what());
    }
  }

  [[noreturn]] void abort(int code) override {
    abort_all();
    boot_->abort(code);
    std::abort();  // not reached: the bootstrap communicator's abort ends the job
  }

 private:
  struct Dir {
    Comm* comm;
    cuda::Stream* stream;
  };
  struct Pending {
    std::unique_ptr<cuda::Event> done;
    DeviceBuffer buf;
    int peer;
    int64_t id;  // Communicator::take_send_id
  };
  struct SelfMsg {
    DeviceBuffer buf;
    size_t bytes;
  };

  Status check_peer(int peer) const {
    if (peer < 0 || peer >= size_)
      return Status::invalid_argument(name_ + ": rank " + std::to_string(peer) + " outside the group of " +
                                      std::to_string(size_));
    return Status::ok();
  }
  // Messages to a higher rank travel "up", to a lower rank "down"; the receiver mirrors it.
  Dir direction_to(int peer) { return peer > rank_ ? Dir{&up_, &up_stream_} : Dir{&down_, &down_stream_}; }

  void after_compute(cudaStream_t s) {
    EELLM_CUDA_CHECK(cudaEventRecord(ready_.get(), cuda::process_stream()));
    EELLM_CUDA_CHECK(cudaStreamWaitEvent(s, ready_.get(), 0));
  }

  void abort_all() {
    up_.abort();
    down_.abort();
    main_.abort();
  }

  DeviceBuffer take_buffer() {
    if (free_.empty()) return DeviceBuffer();
    DeviceBuffer b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void reclaim() {
    while (!sends_.empty() && cudaEventQuery(sends_.front().done->get()) == cudaSuccess) {
      send_completed(sends_.front().id);
      free_.push_back(std::move(sends_.front().buf));
      sends_.pop_front();
    }
    cudaGetLastError();
  }

  // Polls `done` (stream or event query) and the communicators' async errors until done or the
  // deadline; aborts the communicators on an NCCL error or expiry.
  template <class Query>
  Status poll(Query done, const std::string& what, const Deadline& d, double timeout_s) {
    for (int spins = 0;;) {
      const cudaError_t q = done();
      if (q == cudaSuccess) return Status::ok();
      if (q != cudaErrorNotReady) {
        abort_all();
        return Status::internal(what + ": " + cudaGetErrorString(q));
      }
      for (Comm* c : {&main_, &up_, &down_}) {
        ncclResult_t state = ncclSuccess;
        if (c->get() && ncclCommGetAsyncError(c->get(), &state) == ncclSuccess && state != ncclSuccess &&
            state != ncclInProgress) {
          abort_all();
          return nccl_error(what, state);
        }
      }
      if (d.passed()) {
        abort_all();
        return Status::failed_precondition(what + " timed out after " + str(timeout_s) +
                                           " s (NCCL communicators aborted)");
      }
      backoff(spins);
    }
  }
  Status wait_stream(cudaStream_t s, const std::string& what, const Deadline& d, double timeout_s) {
    return poll([s] { return cudaStreamQuery(s); }, what, d, timeout_s);
  }
  Status wait_event(cudaEvent_t e, const std::string& what, const Deadline& d, double timeout_s) {
    return poll([e] { return cudaEventQuery(e); }, what, d, timeout_s);
  }

  // One in-place NCCL op on `data` (bytes), staged through device memory when `data` is host memory.
  template <class Op>
  Status staged_op(void* data, size_t bytes, bool copy_in, const Dir& dir, const std::string& what, double timeout_s,
                   Op op) {
    if (!main_.get()) return Status::failed_precondition(what + ": communicator was aborted");
    const Deadline d = Deadline::in(timeout_s);
    cudaStream_t s = dir.stream->get();
    after_compute(s);
    const bool host = bytes > 0 && !device_accessible(data);
    void* p = data;
    if (host) {
      p = stage_.ensure(bytes);
      if (copy_in) EELLM_CUDA_CHECK(cudaMemcpyAsync(p, data, bytes, cudaMemcpyDefault, s));
    }
    EELLM_RETURN_IF_ERROR(settle(dir.comm->get(), op(p, s), what, d, timeout_s));
    if (host) EELLM_CUDA_CHECK(cudaMemcpyAsync(data, p, bytes, cudaMemcpyDefault, s));
    return wait_stream(s, what, d, timeout_s);
  }
  template <class Op>
  Status collective(void* data, size_t bytes, const std::string& what, double timeout_s, Op op) {
    if (bytes == 0) return Status::ok();
    return guarded([&]() -> Status {
      return staged_op(data, bytes, /*copy_in=*/true, Dir{&main_, &coll_}, what, timeout_s, op);
    });
  }
  // reduce-scatter / all-gather: separate input (n_in floats) and output (n_out floats) buffers.
  template <class Op>
  Status two_buffer(const float* in, size_t n_in, float* out, size_t n_out, const std::string& what, double timeout_s,
                    Op op) {
    if (n_in == 0 && n_out == 0) return Status::ok();
    return guarded([&]() -> Status {
      if (!main_.get()) return Status::failed_precondition(what + ": communicator was aborted");
      const Deadline d = Deadline::in(timeout_s);
      cudaStream_t s = coll_.get();
      after_compute(s);
      const size_t bin = n_in * sizeof(float), bout = n_out * sizeof(float);
      const void* pi = in;
      void* po = out;
      const bool host_in = !device_accessible(in), host_out = !device_accessible(out);
      if (host_in) {
        void* t = stage_.ensure(bin);
        EELLM_CUDA_CHECK(cudaMemcpyAsync(t, in, bin, cudaMemcpyDefault, s));
        pi = t;
      }
      if (host_out) po = stage_out_.ensure(bout);
      EELLM_RETURN_IF_ERROR(settle(main_.get(), op(pi, po, s), what, d, timeout_s));
      if (host_out) EELLM_CUDA_CHECK(cudaMemcpyAsync(out, po, bout, cudaMemcpyDefault, s));
      return wait_stream(s, what, d, timeout_s);
    });
  }

  Comm main_, up_, down_;
  Communicator* boot_;
  std::string name_;
  int rank_ = 0, size_ = 1;
  cuda::Stream coll_, up_stream_, down_stream_;
  cuda::Event ready_, copied_;
  DeviceBuffer stage_, stage_out_, barrier_;
  std::deque<Pending> sends_;
  std::deque<SelfMsg> self_;
  std::deque<DeviceBuffer> free_;
};

}  // namespace

StatusOr<std::unique_ptr<Communicator>> make_nccl_communicator(Communicator& bootstrap, const std::string& name,
                                                               double timeout_s) {
  EELLM_ASSIGN_OR_RETURN(int device, cuda::select_device());
  (void)device;
  ncclUniqueId id{};
  if (bootstrap.rank() == 0) {
    const ncclResult_t r = ncclGetUniqueId(&id);
    if (r != ncclSuccess) return nccl_error(name + ": ncclGetUniqueId", r);
  }
  EELLM_RETURN_IF_ERROR(bootstrap.broadcast(&id, sizeof(id), 0, timeout_s));
  ncclConfig_t cfg = nonblocking_config();
  ncclComm_t c = nullptr;
  const ncclResult_t r = ncclCommInitRankConfig(&c, bootstrap.size(), id, bootstrap.rank(), &cfg);
  if (r != ncclSuccess && r != ncclInProgress) return nccl_error(name + ": ncclCommInitRankConfig", r);
  Comm owned(c);
  EELLM_RETURN_IF_ERROR(settle(c, r, name + ": ncclCommInitRankConfig", Deadline::in(timeout_s), timeout_s));
  try {
    auto comm = std::make_unique<NcclCommunicator>(std::move(owned), &bootstrap, name);
    EELLM_RETURN_IF_ERROR(comm->init_p2p(timeout_s));
    return std::unique_ptr<Communicator>(std::move(comm));
  } catch (const cuda::CudaError& e) {
    return Status::internal(e.what());
  }
}

}  // namespace eellm::exec
