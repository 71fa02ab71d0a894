// Network model of a GPU cluster: collectives and point-to-point transfers as NCCL runs them on
// nodes of GPUs joined by NVLink/NVSwitch (or PCIe / shared memory) and rail-optimised NICs.
//
// A communication group is described by its size, how many of its ranks sit on one node, and how
// many GPUs of that node send across the node boundary at the same time (they share the node's
// NICs: NVIDIA's DGX A100/H100 give GPU i the NIC(s) of rail i, so each GPU's share of the node's
// inter-node bandwidth is nics × NIC bandwidth / GPUs crossing at once).
//
// Bus bandwidth (NCCL's "busbw", nccl-tests/doc/PERFORMANCE.md): the per-rank rate that the link a
// collective is bound by sustains; an all-reduce of S bytes over n ranks moves 2(n−1)/n·S through
// every rank's busiest link (ring), reduce-scatter and all-gather (n−1)/n·S.
// - Within a node the bound is the GPU's NVLink bandwidth.
// - A group spanning nodes with k ranks per node is bound by min(NVLink, k × NIC share): NCCL runs
//   one ring per channel, each ring crossing every node boundary once, the channels spread over the
//   k ranks' rails.
// Algorithms (NCCL's tuning model, src/graph/tuning.cc): ring: 2(n−1) steps of the step latency,
// time = 2(n−1)·α + 2(n−1)/n · S / busbw; tree (all-reduce across nodes only; a chain within a
// node, a double binary tree across nodes): 2·(⌈log2 N⌉·α_net + (k−1)·α_nvl) + S / (busbw/2)
// (NCCL's algorithm bandwidth of the tree is half its bus bandwidth). kAuto takes the faster, as
// NCCL's tuner does. Latencies are per step: the NVLink or the NIC latency of the link crossed.
// Thread-safety: value type, const methods.
#pragma once

#include "model/scenario.h"

namespace eellm {

enum class CollectiveAlgo { kRing, kTree, kAuto };

struct CommGroup {
  int size = 1;            // ranks in the group
  int ranks_per_node = 1;  // of this group on one node (= size when the group is inside a node)
  // GPUs of the node that cross the node boundary at the same time (this group's and other
  // groups'); 0 → every GPU of the node (the SPMD default: all groups of a kind run together).
  int crossing_per_node = 0;
  bool inter_node() const { return size > ranks_per_node; }
  int nodes() const;
};

class NetworkModel {
 public:
  // `link_scale` scales every bandwidth (the CPU time-sharing rule of CostModel; 1 on GPUs).
  explicit NetworkModel(const ClusterSpec& cluster, double link_scale = 1.0);

  // Bytes/s, per GPU per direction, after efficiencies.
  double nvlink_bandwidth() const;
  double nic_share(const CommGroup& g) const;  // one GPU's share of its node's NICs
  double bus_bandwidth(const CommGroup& g) const;

  double allreduce(double bytes, const CommGroup& g, CollectiveAlgo algo = CollectiveAlgo::kAuto) const;
  double reduce_scatter(double bytes, const CommGroup& g) const;  // ring, S = the full buffer
  double allgather(double bytes, const CommGroup& g) const;       // ring, S = the full buffer
  // One transfer between two GPUs (same node or not); `crossing_per_node` as in CommGroup.
  double p2p(double bytes, bool inter_node, int crossing_per_node = 0) const;
  // Per-step latency of the link a group's ring crosses, seconds.
  double step_latency(const CommGroup& g) const;

 private:
  // The node's NIC bytes/s per GPU crossing the boundary (no efficiency applied).
  double nic_line_rate(int crossing_per_node) const;

  const ClusterSpec* cluster_;
  double link_scale_;
};

}  // namespace eellm
