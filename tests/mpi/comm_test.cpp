// MpiCommunicator under mpirun (np 2 and 4): tagged p2p, every collective with exact values,
// Megatron process groups, and a receive that times out naming its peer.
#include <gtest/gtest.h>

#include <numeric>

#include "tests/mpi/mpi_test_util.h"

namespace eellm::exec {
namespace {

using testing::world;
constexpr double kTimeout = 30;

TEST(Comm, TaggedMessagesMatchByTagNotByOrder) {
  Communicator& w = world();
  const int n = w.size(), r = w.rank();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  std::vector<float> a(100), b(7);
  std::iota(a.begin(), a.end(), 1000.0f * r);
  std::iota(b.begin(), b.end(), -10.0f * r);
  ASSERT_TRUE(w.send(a.data(), a.size() * 4, next, 11).is_ok());
  ASSERT_TRUE(w.send(b.data(), b.size() * 4, next, 12).is_ok());
  a.assign(a.size(), 0.0f);  // the send copied its data
  std::vector<float> ra(100), rb(7);
  ASSERT_TRUE(w.recv(rb.data(), rb.size() * 4, prev, 12, kTimeout).is_ok());  // the later tag first
  ASSERT_TRUE(w.recv(ra.data(), ra.size() * 4, prev, 11, kTimeout).is_ok());
  EXPECT_EQ(ra[0], 1000.0f * prev);
  EXPECT_EQ(ra[99], 1000.0f * prev + 99);
  EXPECT_EQ(rb[6], -10.0f * prev + 6);
  ASSERT_TRUE(w.wait_sends(kTimeout).is_ok());
  EXPECT_EQ(w.pending_sends(), 0);
}

TEST(Comm, CollectivesGiveExactSums) {
  Communicator& w = world();
  const int n = w.size(), r = w.rank();
  std::vector<float> f{1.0f * r, 2.0f, -0.5f * r};
  ASSERT_TRUE(w.all_reduce_sum(f.data(), f.size(), kTimeout).is_ok());
  const float tri = n * (n - 1) / 2.0f;
  EXPECT_EQ(f, (std::vector<float>{tri, 2.0f * n, -0.5f * tri}));
  double d = 0.25 * (r + 1);
  ASSERT_TRUE(w.all_reduce_sum(&d, 1, kTimeout).is_ok());
  EXPECT_DOUBLE_EQ(d, 0.25 * n * (n + 1) / 2);

  // reduce-scatter: block k of rank r holds r + k; rank k receives Σ_r (r + k) per element.
  std::vector<float> in(static_cast<size_t>(n) * 3), out(3);
  for (int k = 0; k < n; ++k)
    for (int j = 0; j < 3; ++j) in[static_cast<size_t>(k * 3 + j)] = static_cast<float>(r + k + j);
  ASSERT_TRUE(w.reduce_scatter_sum(in.data(), out.data(), 3, kTimeout).is_ok());
  for (int j = 0; j < 3; ++j) EXPECT_EQ(out[static_cast<size_t>(j)], tri + static_cast<float>(n * (r + j)));

  std::vector<float> mine{static_cast<float>(r), static_cast<float>(10 * r)}, all(static_cast<size_t>(2 * n));
  ASSERT_TRUE(w.all_gather(mine.data(), all.data(), 2, kTimeout).is_ok());
  for (int k = 0; k < n; ++k) {
    EXPECT_EQ(all[static_cast<size_t>(2 * k)], static_cast<float>(k));
    EXPECT_EQ(all[static_cast<size_t>(2 * k + 1)], static_cast<float>(10 * k));
  }
  int64_t v = r == n - 1 ? 4242 : -1;
  ASSERT_TRUE(w.broadcast(&v, sizeof v, n - 1, kTimeout).is_ok());
  EXPECT_EQ(v, 4242);
  EXPECT_TRUE(w.barrier(kTimeout).is_ok());
}

// Non-blocking collectives: several in flight at once, completed out of posting order, exact sums;
// the self communicator's deferred requests give the identity.
TEST(Comm, NonBlockingCollectivesOverlapAndGiveExactSums) {
  Communicator& w = world();
  const int n = w.size(), r = w.rank();
  std::vector<float> a(1000, 1.0f + static_cast<float>(r)), b(4, static_cast<float>(r));
  std::vector<float> in(static_cast<size_t>(n) * 2), out(2), mine{static_cast<float>(r)}, all(static_cast<size_t>(n));
  for (size_t k = 0; k < in.size(); ++k) in[k] = static_cast<float>(k);
  auto ra = w.iall_reduce_sum(a.data(), a.size());
  auto rb = w.iall_reduce_sum(b.data(), b.size());
  auto rs = w.ireduce_scatter_sum(in.data(), out.data(), 2);
  auto rg = w.iall_gather(mine.data(), all.data(), 1);
  ASSERT_TRUE(ra.is_ok() && rb.is_ok() && rs.is_ok() && rg.is_ok());
  ASSERT_TRUE((*rg)->wait(kTimeout).is_ok());
  ASSERT_TRUE((*rb)->wait(kTimeout).is_ok());
  ASSERT_TRUE((*rs)->wait(kTimeout).is_ok());
  ASSERT_TRUE((*ra)->wait(kTimeout).is_ok());
  EXPECT_TRUE((*ra)->test());
  const float tri = n * (n - 1) / 2.0f;
  EXPECT_EQ(a.front(), n + tri);
  EXPECT_EQ(a.back(), n + tri);
  EXPECT_EQ(b, std::vector<float>(4, tri));
  EXPECT_EQ(out[0], static_cast<float>(n * 2 * r));
  EXPECT_EQ(out[1], static_cast<float>(n * (2 * r + 1)));
  for (int k = 0; k < n; ++k) EXPECT_EQ(all[static_cast<size_t>(k)], static_cast<float>(k));

  auto self = make_self_communicator();
  std::vector<float> x{1, 2, 3, 4}, y(4);
  auto s1 = self->ireduce_scatter_sum(x.data(), y.data(), 4);
  ASSERT_TRUE(s1.is_ok());
  EXPECT_FALSE((*s1)->test());  // deferred: runs inside wait()
  ASSERT_TRUE((*s1)->wait(1).is_ok());
  EXPECT_EQ(y, x);
}

TEST(Comm, MegatronGroupsReduceOverTheRightRanks) {
  Communicator& w = world();
  const int n = w.size();
  // np 2: pp 2; np 4: pp 2 × dp 2. Embedding group: both stages.
  const ParallelDims dims{1, 2, n / 2};
  auto c = make_communicators(w, dims, {0, 1});
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->pipeline->size(), 2);
  EXPECT_EQ(c->data->size(), n / 2);
  EXPECT_EQ(c->tensor->size(), 1);
  ASSERT_TRUE(c->embedding);
  EXPECT_EQ(c->pipeline->rank(), c->groups.coords.pp);
  EXPECT_EQ(c->data->rank(), c->groups.coords.dp);
  // Sum of world ranks over each group equals the sum of its listed members.
  auto check = [&](Communicator& g, const std::vector<int>& members) {
    double v = w.rank();
    ASSERT_TRUE(g.all_reduce_sum(&v, 1, kTimeout).is_ok()) << g.name();
    EXPECT_EQ(v, std::accumulate(members.begin(), members.end(), 0.0)) << g.name();
  };
  check(*c->pipeline, c->groups.pipeline);
  check(*c->data, c->groups.data);
  check(*c->embedding, c->groups.embedding);
  // Only stage 0 in the embedding group when stage 1 holds no copy → no group at all.
  auto none = make_communicators(w, dims, {0});
  ASSERT_TRUE(none.is_ok());
  EXPECT_FALSE(none->embedding);
  // A job of the wrong size is refused with the numbers.
  auto bad = make_communicators(w, {1, n, 2}, {});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("mpirun -np " + std::to_string(2 * n)), std::string::npos);
}

TEST(Comm, ReceiveWithoutSenderTimesOutNamingThePeer) {
  Communicator& w = world();
  const int peer = (w.rank() + 1) % w.size();
  float x = 0;
  const Status st = w.recv(&x, sizeof x, peer, 999, 0.3);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("from rank " + std::to_string(peer)), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("timed out after 0.3 s"), std::string::npos) << st.message();
  EXPECT_TRUE(w.barrier(kTimeout).is_ok());
  // The withdrawn receive must not swallow a later message with the same tag.
  const float sent = 7.0f + static_cast<float>(w.rank());
  ASSERT_TRUE(w.send(&sent, sizeof sent, peer, 999).is_ok());
  const int from = (w.rank() + w.size() - 1) % w.size();
  ASSERT_TRUE(w.recv(&x, sizeof x, from, 999, kTimeout).is_ok());
  EXPECT_EQ(x, 7.0f + static_cast<float>(from));
  ASSERT_TRUE(w.wait_sends(kTimeout).is_ok());
}

}  // namespace
}  // namespace eellm::exec
