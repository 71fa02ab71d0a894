// CpuPool: every item of every job runs exactly once, on a thread index within the pool, for jobs
// of any size back to back (the pool replaces OpenMP in the CPU backend).
#include "exec/backend/cpu_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace eellm::exec {
namespace {

TEST(CpuPool, EveryItemOfEveryJobRunsOnceOnAThreadOfThePool) {
  for (int threads : {1, 2, 3, 5}) {
    CpuPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (long n : {0L, 1L, 2L, 7L, 64L, 1000L}) {
      for (int rep = 0; rep < 50; ++rep) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::atomic<int> bad_thread{0};
        pool.run(n, [&](long i, int t) {
          hits[static_cast<size_t>(i)].fetch_add(1);
          if (t < 0 || t >= threads) bad_thread.fetch_add(1);
        });
        for (long i = 0; i < n; ++i)
          ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << threads << " threads, n " << n << ", item " << i;
        EXPECT_EQ(bad_thread.load(), 0);
      }
    }
  }
}

TEST(CpuPool, ResultsOfAJobAreVisibleToTheCallerWhenRunReturns) {
  CpuPool pool(4);
  std::vector<long> out(4096, 0);
  for (int rep = 1; rep <= 200; ++rep) {
    pool.run(static_cast<long>(out.size()), [&](long i, int) { out[static_cast<size_t>(i)] = i * rep; });
    long wrong = 0;
    for (size_t i = 0; i < out.size(); ++i) wrong += out[i] != static_cast<long>(i) * rep;
    ASSERT_EQ(wrong, 0) << "job " << rep;
  }
}

}  // namespace
}  // namespace eellm::exec
