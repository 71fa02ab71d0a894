// CpuPool: the CPU backend's threads (instead of OpenMP's team).
//
// Why not OpenMP: libgomp's threads busy-wait at every barrier and between parallel regions (up to
// GOMP_SPINCOUNT = 300,000 spins by default, read from the environment when the library loads, so a
// program cannot lower it for itself). On a machine where another process takes one core for a
// moment, the thread that was descheduled holds up its static share while the others spin on their
// cores, and a training step spent more than half its samples spinning (perf, 2 cores, shared).
//
// Here: a job is n items that the calling thread and the workers take one at a time from a shared
// counter, so a thread that loses its core delays one item, not a fixed share, and the job ends as
// soon as every item is done — a worker that wakes late finds nothing to do and is not waited for.
// Waiting threads spin briefly (kSpins pauses, tens of microseconds: long enough to catch the next
// op of a step, short enough not to hold a core someone else needs), then sleep on a futex
// (std::atomic wait), so an idle or out-waited thread gives its core back.
//
// Items must not depend on which thread runs them for results to be reproducible; `thread` is
// only for per-thread scratch buffers. Thread-safety: one caller at a time (the backend's own
// contract); run() does not nest.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace eellm::exec {

class CpuPool {
 public:
  // threads ≥ 1 (the caller counts as one; threads − 1 workers are started).
  explicit CpuPool(int threads);
  ~CpuPool();
  CpuPool(const CpuPool&) = delete;
  CpuPool& operator=(const CpuPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // f(item, thread) for every item in [0, n); returns when all are done. thread ∈ [0, size()).
  template <class F>
  void run(long n, F&& f) {
    using Fn = std::remove_reference_t<F>;
    run_raw(
        n, [](void* ctx, long i, int t) { (*static_cast<Fn*>(ctx))(i, t); },
        const_cast<void*>(static_cast<const void*>(&f)));
  }

 private:
  using ItemFn = void (*)(void* ctx, long item, int thread);
  void run_raw(long n, ItemFn fn, void* ctx);
  void worker(int thread);
  // Takes and runs items of the job published as `epoch` until none is left (or the job changed).
  void drain(uint32_t epoch, int thread);

  std::vector<std::thread> workers_;
  // The job: (epoch << 32) | next item. Claiming an item is a CAS that also checks the epoch, so a
  // late worker can never take an item of a later job with the function of an earlier one.
  std::atomic<uint64_t> state_{0};
  std::atomic<ItemFn> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<long> n_{0};
  std::atomic<uint32_t> wake_{0};  // the epoch; workers sleep on it
  std::atomic<uint32_t> done_{0};  // items finished of the current job; the caller sleeps on it
  std::atomic<bool> stop_{false};
};

}  // namespace eellm::exec
