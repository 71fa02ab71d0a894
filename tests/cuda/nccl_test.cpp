// The NCCL communicator (exec/comm/nccl/nccl_comm.h) over every operation of the Communicator
// interface, with device (managed) and host buffers. Run as one process (bootstrap: the self
// communicator; NCCL world of 1) or under mpirun (bootstrap: the MPI world; one process per GPU).
// Skipped when there is no GPU or fewer GPUs than processes (NCCL refuses two ranks on one GPU).
// Has its own main (MPI initialisation when launched by mpirun); only rank 0 prints.
#include <gtest/gtest.h>

#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "exec/backend/cuda/cuda_backend.h"
#include "exec/backend/cuda/cuda_context.h"
#include "exec/comm/nccl/nccl_comm.h"
#include "tests/cuda/cuda_test_util.h"
#ifdef EELLM_HAVE_MPI
#include "exec/comm/mpi/mpi_comm.h"
#endif

namespace eellm::exec::testing {
namespace {

Communicator* g_boot = nullptr;
constexpr double kTimeout = 60;

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    EELLM_SKIP_WITHOUT_GPU();
    if (cuda::device_count() < g_boot->size())
      GTEST_SKIP() << g_boot->size() << " processes but " << cuda::device_count() << " GPU(s): one process per GPU";
    // The CUDA backend switches tensors to managed memory, as in a real run.
    auto be = make_cuda_backend();
    ASSERT_TRUE(be.is_ok()) << be.status().to_string();
    be_ = std::move(be).value();
    auto c = make_nccl_communicator(*g_boot, "nccl world", kTimeout);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    comm_ = std::move(c).value();
    r_ = comm_->rank(), n_ = comm_->size();
  }
  std::unique_ptr<Backend> be_;
  std::unique_ptr<Communicator> comm_;
  int r_ = 0, n_ = 1;
};

TEST_F(Nccl, Collectives) {
  ASSERT_EQ(n_, g_boot->size());
  ASSERT_EQ(r_, g_boot->rank());
  const size_t k = 1000;
  // all-reduce on managed (device) memory and on host memory, float and double.
  Tensor t({static_cast<int64_t>(k)});
  for (size_t i = 0; i < k; ++i) t.data[i] = static_cast<float>(r_ + 1) * static_cast<float>(i);
  ASSERT_TRUE(comm_->all_reduce_sum(t.ptr(), k, kTimeout).is_ok());
  const float ranks_sum = static_cast<float>(n_ * (n_ + 1) / 2);
  for (size_t i = 0; i < k; i += 97) EXPECT_EQ(t.data[i], ranks_sum * static_cast<float>(i)) << i;
  std::vector<double> hd(5, static_cast<double>(r_) + 0.5);
  ASSERT_TRUE(comm_->all_reduce_sum(hd.data(), hd.size(), kTimeout).is_ok());
  EXPECT_DOUBLE_EQ(hd[4], n_ * (n_ - 1) / 2.0 + 0.5 * n_);

  // broadcast from the last rank (host buffer).
  std::vector<int> b(7, r_ == n_ - 1 ? 42 : -1);
  ASSERT_TRUE(comm_->broadcast(b.data(), b.size() * sizeof(int), n_ - 1, kTimeout).is_ok());
  EXPECT_EQ(b, std::vector<int>(7, 42));

  // all-gather and reduce-scatter (device in, host out and the reverse).
  Tensor in({3});
  for (int i = 0; i < 3; ++i) in.data[static_cast<size_t>(i)] = static_cast<float>(10 * r_ + i);
  std::vector<float> gathered(static_cast<size_t>(3 * n_));
  ASSERT_TRUE(comm_->all_gather(in.ptr(), gathered.data(), 3, kTimeout).is_ok());
  for (int q = 0; q < n_; ++q)
    for (int i = 0; i < 3; ++i) EXPECT_EQ(gathered[static_cast<size_t>(3 * q + i)], static_cast<float>(10 * q + i));
  std::vector<float> rs_in(static_cast<size_t>(2 * n_));
  std::iota(rs_in.begin(), rs_in.end(), 0.0f);
  Tensor rs_out({2});
  ASSERT_TRUE(comm_->reduce_scatter_sum(rs_in.data(), rs_out.ptr(), 2, kTimeout).is_ok());
  EXPECT_EQ(rs_out.data[0], static_cast<float>(n_ * 2 * r_));
  EXPECT_EQ(rs_out.data[1], static_cast<float>(n_ * (2 * r_ + 1)));
  EXPECT_TRUE(comm_->barrier(kTimeout).is_ok());
}

TEST_F(Nccl, PointToPointBothDirectionsBeforeReceiving) {
  // Every rank sends to both neighbours (or to itself) before it receives: the pattern that
  // deadlocks when sends block on one stream.
  const int next = (r_ + 1) % n_, prev = (r_ + n_ - 1) % n_;
  const size_t k = 1 << 20;  // 4 MiB: larger than NCCL's eager buffers
  Tensor a({static_cast<int64_t>(k)}), b({static_cast<int64_t>(k)});
  for (size_t i = 0; i < k; i += 4096) a.data[i] = static_cast<float>(r_), b.data[i] = static_cast<float>(-r_ - 1);
  ASSERT_TRUE(comm_->send(a.ptr(), k * sizeof(float), next, 1).is_ok());
  ASSERT_TRUE(comm_->send(b.ptr(), k * sizeof(float), prev, 2).is_ok());
  a.zero();  // the send copied the message: reusing the buffer at once is allowed
  Tensor from_prev({static_cast<int64_t>(k)}), from_next({static_cast<int64_t>(k)});
  std::vector<float> host(k);
  ASSERT_TRUE(comm_->recv(from_prev.ptr(), k * sizeof(float), prev, 1, kTimeout).is_ok());
  ASSERT_TRUE(comm_->recv(host.data(), k * sizeof(float), next, 2, kTimeout).is_ok());
  EXPECT_EQ(from_prev.data[4096], static_cast<float>(prev));
  EXPECT_EQ(host[4096], static_cast<float>(-next - 1));
  ASSERT_TRUE(comm_->wait_sends(kTimeout).is_ok());
  EXPECT_EQ(comm_->pending_sends(), 0);
}

TEST_F(Nccl, SubgroupsAndErrors) {
  // Even and odd ranks.
  std::vector<int> mine;
  for (int q = r_ % 2; q < n_; q += 2) mine.push_back(q);
  auto sub = comm_->subgroup(mine, "parity group");
  ASSERT_TRUE(sub.is_ok()) << sub.status().to_string();
  ASSERT_TRUE(*sub);
  EXPECT_EQ((*sub)->size(), static_cast<int>(mine.size()));
  double x = 1.0;
  ASSERT_TRUE((*sub)->all_reduce_sum(&x, 1, kTimeout).is_ok());
  EXPECT_EQ(x, static_cast<double>(mine.size()));
  EXPECT_FALSE(comm_->send(&x, sizeof(x), n_, 0).is_ok()) << "peer outside the group";
  if (n_ == 1) {
    const Status s = comm_->recv(&x, sizeof(x), 0, 0, 1.0);
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.to_string().find("no message"), std::string::npos) << s.to_string();
  }
}

TEST_F(Nccl, ReceiveTimesOut) {
  if (n_ < 2) GTEST_SKIP() << "needs two ranks";
  // Rank 0 waits for a message rank 1 never sends; it must return within the deadline.
  if (r_ == 0) {
    float y = 0;
    const Status s = comm_->recv(&y, sizeof(y), 1, 0, 2.0);
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.to_string().find("timed out after 2"), std::string::npos) << s.to_string();
  }
  ASSERT_TRUE(g_boot->barrier(kTimeout).is_ok());  // over MPI: the NCCL comm of rank 0 is aborted
}

}  // namespace
}  // namespace eellm::exec::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::unique_ptr<eellm::exec::Communicator> self;
#ifdef EELLM_HAVE_MPI
  std::unique_ptr<eellm::exec::MpiEnvironment> mpi;
  if (eellm::exec::launched_by_mpi()) {
    auto env = eellm::exec::MpiEnvironment::init(&argc, &argv);
    if (!env.is_ok()) {
      std::fprintf(stderr, "%s\n", env.status().to_string().c_str());
      return 2;
    }
    mpi = std::move(env).value();
    eellm::exec::testing::g_boot = &mpi->world();
  }
#endif
  if (!eellm::exec::testing::g_boot) {
    self = eellm::exec::make_self_communicator("self");
    eellm::exec::testing::g_boot = self.get();
  }
  if (eellm::exec::testing::g_boot->rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  return RUN_ALL_TESTS();
}
