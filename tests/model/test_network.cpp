// Network model (model/network.h): ring and tree collectives and p2p transfers, hand-computed.
#include <gtest/gtest.h>

#include "model/network.h"
#include "model/scenario_io.h"
#include "model/validate.h"

namespace eellm {
namespace {

// A DGX A100-like cluster with round numbers: 8 GPUs per node, NVLink 300 GB/s per direction at
// 2.5 us a step, `nics` NICs of 25 GB/s at 5 us; efficiencies 1 so the formulas read plainly.
ClusterSpec dgx(int nics = 8) {
  ClusterSpec c;
  c.num_nodes = 16;
  c.gpus_per_node = 8;
  c.nics_per_node = nics;
  c.intra_node = LinkSpec{300, 2.5};
  c.inter_node = LinkSpec{25, 5};
  c.device.collective_efficiency = 1;
  return c;
}

TEST(Network, RingAllReduceInsideANode) {
  const ClusterSpec c = dgx();
  const NetworkModel net(c);
  // 2(n−1)·α + 2(n−1)/n·S/busbw, busbw = NVLink: 14·2.5 us + 1.75·1e9 / 300e9.
  EXPECT_NEAR(net.allreduce(1e9, CommGroup{8, 8, 0}), 35e-6 + 1.75e9 / 300e9, 1e-12);
  // Inside a node the tuner's choice is the ring.
  EXPECT_NEAR(net.allreduce(1e9, CommGroup{8, 8, 0}, CollectiveAlgo::kAuto),
              net.allreduce(1e9, CommGroup{8, 8, 0}, CollectiveAlgo::kRing), 1e-15);
  // Reduce-scatter: half the steps and half the bytes.
  EXPECT_NEAR(net.reduce_scatter(1e9, CommGroup{8, 8, 0}), 7 * 2.5e-6 + 0.875e9 / 300e9, 1e-12);
}

TEST(Network, DataParallelAcrossNodesOneRankPerNode) {
  const ClusterSpec c = dgx();
  const NetworkModel net(c);
  const CommGroup g{16, 1, 0};  // TP 8: each DP rank on its own node, all 8 rails busy
  EXPECT_NEAR(net.bus_bandwidth(g), 25e9, 1);
  const double ring = 30 * 5e-6 + 2 * 15.0 / 16 * 1e9 / 25e9;  // 0.07515 s
  const double tree = 2 * (4 * 5e-6) + 2 * 1e9 / 25e9;         // log2(16) = 4 hops: 0.08004 s
  EXPECT_NEAR(net.allreduce(1e9, g, CollectiveAlgo::kRing), ring, 1e-12);
  EXPECT_NEAR(net.allreduce(1e9, g, CollectiveAlgo::kTree), tree, 1e-12);
  EXPECT_NEAR(net.allreduce(1e9, g), ring, 1e-12);  // large: ring wins
  // Small messages: the tree's log-depth latency wins (150 us of ring steps vs 40 us).
  EXPECT_NEAR(net.allreduce(1e5, g), 40e-6 + 2e5 / 25e9, 1e-12);
}

TEST(Network, TensorParallelGroupSpanningTwoNodes) {
  const ClusterSpec c = dgx();
  const NetworkModel net(c);
  const CommGroup g{16, 8, 0};                                  // TP 16 on 8-GPU nodes: 8 ranks a node, 8 rails cross
  EXPECT_NEAR(net.bus_bandwidth(g), 200e9, 1);                  // min(NVLink 300, 8 × 25)
  const double ring = 30 * 5e-6 + 2 * 15.0 / 16 * 1e8 / 200e9;  // 1.0875 ms
  const double tree = 2 * (1 * 5e-6 + 7 * 2.5e-6) + 2 * 1e8 / 200e9;  // 1.045 ms
  EXPECT_NEAR(net.allreduce(1e8, g, CollectiveAlgo::kRing), ring, 1e-12);
  EXPECT_NEAR(net.allreduce(1e8, g), tree, 1e-12);
}

TEST(Network, NodeNicsAreSharedByEveryGpuCrossingAtOnce) {
  const ClusterSpec c = dgx(4);  // 4 NICs for 8 GPUs
  const NetworkModel net(c);
  // All 8 GPUs send across: 4 × 25 / 8 = 12.5 GB/s each; only 2 of them: 50 GB/s each.
  EXPECT_NEAR(net.p2p(1e8, true, 8), 5e-6 + 1e8 / 12.5e9, 1e-12);
  EXPECT_NEAR(net.p2p(1e8, true, 2), 5e-6 + 1e8 / 50e9, 1e-12);
  EXPECT_NEAR(net.p2p(1e8, false), 2.5e-6 + 1e8 / 300e9, 1e-12);
  // The NICs' own efficiency applies across nodes only.
  ClusterSpec slow = c;
  slow.inter_node_efficiency = 0.5;
  EXPECT_NEAR(NetworkModel(slow).p2p(1e8, true, 8), 5e-6 + 1e8 / 6.25e9, 1e-12);
  EXPECT_NEAR(NetworkModel(slow).allreduce(1e9, CommGroup{8, 8, 0}), net.allreduce(1e9, CommGroup{8, 8, 0}), 1e-15);
}

TEST(Network, DefaultNicCountIsOnePerGpu) {
  ClusterSpec c = dgx(0);
  EXPECT_EQ(c.nics(), 8);
  EXPECT_NEAR(NetworkModel(c).bus_bandwidth(CommGroup{4, 1, 0}), 25e9, 1);
}

// The topology fields of a cluster: the shipped DGX A100 states them, a scenario may override them,
// they survive a round trip, and bad values are named.
TEST(Network, ClusterTopologyFieldsReadValidateAndRoundTrip) {
  const auto dgx_a100 = load_cluster_profile("a100-80gb-128x8");
  ASSERT_TRUE(dgx_a100.is_ok()) << dgx_a100.status().to_string();
  EXPECT_EQ(dgx_a100->nics_per_node, 8);
  EXPECT_EQ(dgx_a100->intra_node_fabric, IntraNodeFabric::kNVSwitch);
  EXPECT_DOUBLE_EQ(dgx_a100->inter_node.bandwidth_GBps, 25);  // HDR 200 Gb/s
  auto sc = load_scenario("gpt3-175b");
  ASSERT_TRUE(sc.is_ok()) << sc.status().to_string();
  sc->cluster.nics_per_node = 4;
  sc->cluster.inter_node_efficiency = 0.9;
  sc->cluster.intra_node_fabric = IntraNodeFabric::kPCIe;
  const auto back = parse_scenario(scenario_to_yaml(*sc));
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(back->cluster.nics_per_node, 4);
  EXPECT_DOUBLE_EQ(back->cluster.inter_node_efficiency, 0.9);
  EXPECT_EQ(back->cluster.intra_node_fabric, IntraNodeFabric::kPCIe);
  sc->cluster.nics_per_node = -1;
  sc->cluster.inter_node_efficiency = 1.5;
  const std::string d = validate_scenario(*sc).to_string();
  EXPECT_NE(d.find("cluster.nics_per_node (-1) must not be negative"), std::string::npos) << d;
  EXPECT_NE(d.find("cluster.inter_node_efficiency (1.5) must be in [0, 1]"), std::string::npos) << d;
  const auto bad = parse_scenario("cluster: {profile: a100-80gb-2x8, intra_node_fabric: infiniband}\n");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("nvswitch"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace eellm
