// CpuPool (see cpu_pool.h).
//
// Publishing a job: the caller first closes the counter for the new epoch (index kClosed: nothing
// can be claimed), then writes the function, context and count (release), then opens the counter.
// A worker reads the job's fields only after seeing its epoch in the counter, and claims an item
// by a CAS from that epoch: if the CAS succeeds, the counter was not yet closed for a later job,
// so the fields it read (acquire; written after the closing) are this job's.
#include "exec/backend/cpu_pool.h"

#include <limits>

namespace eellm::exec {
namespace {

// Spin checks before sleeping: each pauses for a few to ~140 cycles (x86 `pause`), so tens of
// microseconds in all.
constexpr int kSpins = 1000;
constexpr uint64_t kClosed = std::numeric_limits<uint32_t>::max();

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Returns a.load() once it differs from `old`: kSpins checks, then sleeping on the futex.
uint32_t wait_change(const std::atomic<uint32_t>& a, uint32_t old) {
  for (int i = 0; i < kSpins; ++i) {
    const uint32_t v = a.load(std::memory_order_acquire);
    if (v != old) return v;
    relax();
  }
  uint32_t v;
  while ((v = a.load(std::memory_order_acquire)) == old) a.wait(old, std::memory_order_acquire);
  return v;
}

}  // namespace

CpuPool::CpuPool(int threads) {
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { worker(t); });
}

CpuPool::~CpuPool() {
  stop_.store(true, std::memory_order_release);
  wake_.fetch_add(1, std::memory_order_acq_rel);
  wake_.notify_all();
  for (std::thread& w : workers_) w.join();
}

void CpuPool::worker(int thread) {
  uint32_t seen = 0;
  for (;;) {
    seen = wait_change(wake_, seen);
    if (stop_.load(std::memory_order_acquire)) return;
    drain(seen, thread);
  }
}

void CpuPool::drain(uint32_t epoch, int thread) {
  uint64_t s = state_.load(std::memory_order_acquire);
  if ((s >> 32) != epoch) return;
  const ItemFn fn = fn_.load(std::memory_order_acquire);
  void* const ctx = ctx_.load(std::memory_order_acquire);
  const long n = n_.load(std::memory_order_acquire);
  for (;;) {
    if ((s >> 32) != epoch || static_cast<long>(s & kClosed) >= n) return;
    if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    fn(ctx, static_cast<long>(s & kClosed), thread);
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == static_cast<uint32_t>(n)) done_.notify_all();
    ++s;  // the next claim expects the counter one further; a failed CAS reloads it
  }
}

void CpuPool::run_raw(long n, ItemFn fn, void* ctx) {
  if (n <= 0) return;
  if (workers_.empty() || n == 1) {
    for (long i = 0; i < n; ++i) fn(ctx, i, 0);
    return;
  }
  const uint32_t epoch = wake_.load(std::memory_order_relaxed) + 1;
  state_.store((static_cast<uint64_t>(epoch) << 32) | kClosed, std::memory_order_relaxed);
  fn_.store(fn, std::memory_order_release);
  ctx_.store(ctx, std::memory_order_release);
  n_.store(n, std::memory_order_release);
  done_.store(0, std::memory_order_release);
  state_.store(static_cast<uint64_t>(epoch) << 32, std::memory_order_release);
  wake_.store(epoch, std::memory_order_release);
  wake_.notify_all();
  drain(epoch, 0);
  const uint32_t all = static_cast<uint32_t>(n);
  for (uint32_t d = done_.load(std::memory_order_acquire); d < all; d = done_.load(std::memory_order_acquire))
    wait_change(done_, d);
}

}  // namespace eellm::exec
