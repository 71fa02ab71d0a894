// MpiCommunicator: Communicator over an MPI_Comm (see mpi_comm.h for the error/timeout policy).
#include "exec/comm/mpi/mpi_comm.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <list>
#include <string>
#include <thread>
#include <vector>

namespace eellm::exec {
namespace {

Status mpi_error(int rc, const char* call, const char* file, int line) {
  char msg[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return Status::internal(std::string(file) + ":" + std::to_string(line) + ": " + call +
                          " failed: " + std::string(msg, static_cast<size_t>(len)));
}

}  // namespace
}  // namespace eellm::exec

// Every MPI call: on failure return a Status naming file, line and the call.
#define EELLM_MPI_CHECK(call)                                                                        \
  do {                                                                                               \
    const int _mpi_rc = (call);                                                                      \
    if (_mpi_rc != MPI_SUCCESS) return ::eellm::exec::mpi_error(_mpi_rc, #call, __FILE__, __LINE__); \
  } while (0)

namespace eellm::exec {
namespace {

using Clock = std::chrono::steady_clock;

std::string str(int v) {
  return std::to_string(v);
}
std::string seconds(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f s", s);
  return b;
}

// Owns an MPI_Comm (freed unless it is a predefined one or MPI is already finalised).
class MpiComm {
 public:
  MpiComm() = default;
  explicit MpiComm(MPI_Comm c) : comm_(c) {}
  ~MpiComm() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_NULL && comm_ != MPI_COMM_WORLD && comm_ != MPI_COMM_SELF)
      MPI_Comm_free(&comm_);
  }
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;
  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

// Polls `req` until done or the deadline; yields then sleeps between polls so oversubscribed
// ranks (more processes than cores) leave the CPU to the rank that computes. `between` (if set)
// runs after each unsuccessful poll.
Status wait_request(MPI_Request* req, double timeout_s, const std::string& what, bool cancel_on_timeout = false,
                    const std::function<void()>& between = nullptr) {
  const auto start = Clock::now();
  for (int polls = 0;; ++polls) {
    int done = 0;
    EELLM_MPI_CHECK(MPI_Test(req, &done, MPI_STATUS_IGNORE));
    if (done) return Status::ok();
    if (between) between();
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (timeout_s > 0 && waited > timeout_s) {
      // A receive is withdrawn so a late message cannot land in a dead buffer; other requests stay
      // posted (the caller aborts the job after reporting).
      if (cancel_on_timeout && MPI_Cancel(req) == MPI_SUCCESS) MPI_Request_free(req);
      return Status::failed_precondition(what + " timed out after " + seconds(timeout_s) +
                                         " (execution.recv_timeout_s): the peer died, hangs, or is far behind");
    }
    if (polls < 64)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(polls < 1024 ? 20 : 200));
  }
}

// A posted MPI_I* collective; wait() polls against the deadline like the blocking operations.
class MpiRequest final : public CollectiveRequest {
 public:
  MpiRequest(MPI_Request req, std::string what) : req_(req), what_(std::move(what)) {}
  ~MpiRequest() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && req_ != MPI_REQUEST_NULL) MPI_Request_free(&req_);  // abandoned after a fault
  }
  bool test() override {
    if (req_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    if (MPI_Test(&req_, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return false;  // wait() reports it
    return done != 0;
  }
  Status wait(double timeout_s) override {
    if (req_ == MPI_REQUEST_NULL) return Status::ok();
    return wait_request(&req_, timeout_s, what_);  // MPI_Test sets req_ to MPI_REQUEST_NULL when done
  }

 private:
  MPI_Request req_;
  std::string what_;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, std::string name) : comm_(comm), name_(std::move(name)) {
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &size_);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  }
  ~MpiCommunicator() override {
    // Withdraw receives posted ahead and never completed (a failed iteration), then complete what
    // the peers may still be receiving; never block forever on teardown.
    int finalized = 0;
    MPI_Finalized(&finalized);
    for (PostedRecv& r : recvs_)
      if (!finalized && r.req != MPI_REQUEST_NULL && MPI_Cancel(&r.req) == MPI_SUCCESS) MPI_Request_free(&r.req);
    (void)wait_sends(5.0);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }

  Status send(const void* data, size_t bytes, int peer, int tag) override {
    EELLM_RETURN_IF_ERROR(check_peer(peer));
    auto& s = sends_.emplace_back();
    s.id = take_send_id();
    s.peer = peer;
    s.tag = tag;
    s.buffer.resize(bytes);
    if (bytes) std::memcpy(s.buffer.data(), data, bytes);
    EELLM_MPI_CHECK(MPI_Isend(s.buffer.data(), static_cast<int>(bytes), MPI_BYTE, peer, tag, comm_.get(), &s.req));
    return Status::ok();
  }

  int pending_sends() override {
    poll_sends(sends_.begin());
    return static_cast<int>(sends_.size());
  }

  void progress() override {
    poll_sends(sends_.begin());
    for (PostedRecv& r : recvs_) {
      int done = 0;  // MPI_Test sets a completed request to MPI_REQUEST_NULL; recv() then returns at once
      if (r.req != MPI_REQUEST_NULL) MPI_Test(&r.req, &done, MPI_STATUS_IGNORE);
    }
  }

  Status post_recv(void* data, size_t bytes, int peer, int tag) override {
    EELLM_RETURN_IF_ERROR(check_peer(peer));
    PostedRecv& r = recvs_.emplace_back();
    r.data = data, r.bytes = bytes, r.peer = peer, r.tag = tag;
    EELLM_MPI_CHECK(MPI_Irecv(data, static_cast<int>(bytes), MPI_BYTE, peer, tag, comm_.get(), &r.req));
    return Status::ok();
  }

  Status wait_sends(double timeout_s) override {
    // While waiting for the oldest send, the others are polled too when their completion times
    // are recorded (they may complete first).
    std::function<void()> others;
    if (records_send_completions()) others = [this] { poll_sends(std::next(sends_.begin())); };
    while (!sends_.empty()) {
      PendingSend& s = sends_.front();
      EELLM_RETURN_IF_ERROR(wait_request(&s.req, timeout_s,
                                         name_ + ": send of " + std::to_string(s.buffer.size()) + " bytes to rank " +
                                             str(s.peer) + " (tag " + str(s.tag) + ")",
                                         false, others));
      send_completed(s.id);
      sends_.pop_front();
    }
    return Status::ok();
  }

  Status recv(void* data, size_t bytes, int peer, int tag, double timeout_s) override {
    EELLM_RETURN_IF_ERROR(check_peer(peer));
    MPI_Request req;
    auto posted = std::find_if(recvs_.begin(), recvs_.end(), [&](const PostedRecv& r) {
      return r.data == data && r.bytes == bytes && r.peer == peer && r.tag == tag;
    });
    if (posted != recvs_.end()) {  // posted ahead (post_recv): wait for that one
      req = posted->req;
      recvs_.erase(posted);
    } else {
      EELLM_MPI_CHECK(MPI_Irecv(data, static_cast<int>(bytes), MPI_BYTE, peer, tag, comm_.get(), &req));
    }
    std::function<void()> sends;  // a send may complete while this rank waits
    if (records_send_completions() && !sends_.empty()) sends = [this] { poll_sends(sends_.begin()); };
    return wait_request(
        &req, timeout_s,
        name_ + ": receive of " + std::to_string(bytes) + " bytes from rank " + str(peer) + " (tag " + str(tag) + ")",
        /*cancel_on_timeout=*/true, sends);
  }

  Status all_reduce_sum(float* data, size_t n, double timeout_s) override {
    MPI_Request req;
    EELLM_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_.get(), &req));
    return wait_request(&req, timeout_s, name_ + ": all-reduce of " + std::to_string(n) + " floats");
  }
  Status all_reduce_sum(double* data, size_t n, double timeout_s) override {
    MPI_Request req;
    EELLM_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, comm_.get(), &req));
    return wait_request(&req, timeout_s, name_ + ": all-reduce of " + std::to_string(n) + " doubles");
  }
  Status reduce_scatter_sum(const float* in, float* out, size_t n, double timeout_s) override {
    MPI_Request req;
    EELLM_MPI_CHECK(MPI_Ireduce_scatter_block(in, out, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_.get(), &req));
    return wait_request(&req, timeout_s, name_ + ": reduce-scatter of " + std::to_string(n) + " floats per rank");
  }
  Status all_gather(const float* in, float* out, size_t n, double timeout_s) override {
    MPI_Request req;
    EELLM_MPI_CHECK(
        MPI_Iallgather(in, static_cast<int>(n), MPI_FLOAT, out, static_cast<int>(n), MPI_FLOAT, comm_.get(), &req));
    return wait_request(&req, timeout_s, name_ + ": all-gather of " + std::to_string(n) + " floats per rank");
  }
  StatusOr<std::unique_ptr<CollectiveRequest>> iall_reduce_sum(float* data, size_t n) override {
    MPI_Request req;
    EELLM_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_.get(), &req));
    return std::unique_ptr<CollectiveRequest>(
        new MpiRequest(req, name_ + ": non-blocking all-reduce of " + std::to_string(n) + " floats"));
  }
  StatusOr<std::unique_ptr<CollectiveRequest>> ireduce_scatter_sum(const float* in, float* out, size_t n) override {
    MPI_Request req;
    EELLM_MPI_CHECK(MPI_Ireduce_scatter_block(in, out, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_.get(), &req));
    return std::unique_ptr<CollectiveRequest>(
        new MpiRequest(req, name_ + ": non-blocking reduce-scatter of " + std::to_string(n) + " floats per rank"));
  }
  StatusOr<std::unique_ptr<CollectiveRequest>> iall_gather(const float* in, float* out, size_t n) override {
    MPI_Request req;
    EELLM_MPI_CHECK(
        MPI_Iallgather(in, static_cast<int>(n), MPI_FLOAT, out, static_cast<int>(n), MPI_FLOAT, comm_.get(), &req));
    return std::unique_ptr<CollectiveRequest>(
        new MpiRequest(req, name_ + ": non-blocking all-gather of " + std::to_string(n) + " floats per rank"));
  }
  Status broadcast(void* data, size_t bytes, int root, double timeout_s) override {
    EELLM_RETURN_IF_ERROR(check_peer(root));
    MPI_Request req;
    EELLM_MPI_CHECK(MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, comm_.get(), &req));
    return wait_request(&req, timeout_s, name_ + ": broadcast from rank " + str(root));
  }
  Status barrier(double timeout_s) override {
    MPI_Request req;
    EELLM_MPI_CHECK(MPI_Ibarrier(comm_.get(), &req));
    return wait_request(&req, timeout_s, name_ + ": barrier");
  }

  StatusOr<std::unique_ptr<Communicator>> subgroup(const std::vector<int>& ranks, const std::string& name) override {
    for (int r : ranks) EELLM_RETURN_IF_ERROR(check_peer(r));
    if (!ranks.empty() && std::find(ranks.begin(), ranks.end(), rank_) == ranks.end())
      return Status::invalid_argument(name + ": rank " + str(rank_) + " is not in its own group list");
    // Equal-or-disjoint lists: the smallest member identifies the group.
    const int color = ranks.empty() ? MPI_UNDEFINED : ranks.front();
    MPI_Comm out = MPI_COMM_NULL;
    EELLM_MPI_CHECK(MPI_Comm_split(comm_.get(), color, rank_, &out));
    if (ranks.empty()) return std::unique_ptr<Communicator>();
    auto c = std::make_unique<MpiCommunicator>(out, name);
    c->owned_ = std::make_unique<MpiComm>(out);
    if (c->size() != static_cast<int>(ranks.size()))
      return Status::internal(name + ": split gave " + str(c->size()) + " ranks, expected " +
                              str(static_cast<int>(ranks.size())) + " (group lists overlap)");
    return std::unique_ptr<Communicator>(std::move(c));
  }

  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  struct PendingSend {
    std::vector<char> buffer;
    MPI_Request req = MPI_REQUEST_NULL;
    int64_t id = 0;  // Communicator::take_send_id
    int peer = 0, tag = 0;
  };
  // Tests the pending sends from `it` on; reports and drops the completed ones.
  void poll_sends(std::list<PendingSend>::iterator it) {
    while (it != sends_.end()) {
      int done = 0;
      if (MPI_Test(&it->req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done) {
        send_completed(it->id);
        it = sends_.erase(it);
      } else {
        ++it;
      }
    }
  }
  struct Handle {
    explicit Handle(MPI_Comm c) : c_(c) {}
    MPI_Comm get() const { return c_; }
    MPI_Comm c_;
  };
  Status check_peer(int peer) const {
    if (peer < 0 || peer >= size_)
      return Status::invalid_argument(name_ + ": rank " + str(peer) + " outside the group of " + str(size_));
    return Status::ok();
  }

  struct PostedRecv {
    void* data = nullptr;
    size_t bytes = 0;
    int peer = 0, tag = 0;
    MPI_Request req = MPI_REQUEST_NULL;
  };

  Handle comm_;
  std::string name_;
  int rank_ = 0, size_ = 1;
  std::list<PostedRecv> recvs_;     // post_recv's, until their recv()
  std::list<PendingSend> sends_;    // list: MPI keeps pointers to the buffers and requests
  std::unique_ptr<MpiComm> owned_;  // frees a split communicator after the pending sends
};

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

StatusOr<std::unique_ptr<MpiEnvironment>> MpiEnvironment::init(int* argc, char*** argv) {
  int initialized = 0;
  EELLM_MPI_CHECK(MPI_Initialized(&initialized));
  if (initialized) return Status::failed_precondition("MPI is already initialised in this process");
  int provided = 0;
  EELLM_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  std::unique_ptr<MpiEnvironment> env(new MpiEnvironment());
  env->world_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, "world");
  return env;
}

MpiEnvironment::~MpiEnvironment() {
  world_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

}  // namespace eellm::exec
