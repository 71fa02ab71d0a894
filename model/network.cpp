// Cluster network model (see network.h).
#include "model/network.h"

#include <algorithm>
#include <cmath>

namespace eellm {
namespace {

constexpr double kUs = 1e-6;

// Seconds to move `bytes` at `bw` bytes/s; the part beyond the device's large-message threshold
// moves at `large_eff` × bw (caches overflow: a CPU's shared-memory transport slows down past
// them; GPU profiles leave the threshold at 0, one regime).
double move_seconds(const DeviceProfile& dev, double bytes, double bw, bool collective) {
  const double limit = dev.large_message_KiB * 1024.0;
  if (!(limit > 0) || bytes <= limit) return bytes / bw;
  const double eff =
      std::max(1e-6, collective ? dev.large_message_collective_efficiency : dev.large_message_p2p_efficiency);
  return limit / bw + (bytes - limit) / (bw * eff);
}

}  // namespace

int CommGroup::nodes() const {
  const int k = std::max(1, ranks_per_node);
  return (std::max(1, size) + k - 1) / k;
}

NetworkModel::NetworkModel(const ClusterSpec& cluster, double link_scale)
    : cluster_(&cluster), link_scale_(link_scale > 0 ? link_scale : 1.0) {}

double NetworkModel::nvlink_bandwidth() const {
  const ClusterSpec& c = *cluster_;
  return std::max(1e-9, c.intra_node.bandwidth_GBps * 1e9 * c.device.collective_efficiency * link_scale_);
}

double NetworkModel::nic_line_rate(int crossing_per_node) const {
  const ClusterSpec& c = *cluster_;
  const int gpn = std::max(1, c.gpus_per_node);
  const int crossing = std::clamp(crossing_per_node > 0 ? crossing_per_node : gpn, 1, gpn);
  return c.nics() * c.inter_node.bandwidth_GBps * 1e9 * link_scale_ / crossing;
}

double NetworkModel::nic_share(const CommGroup& g) const {
  const ClusterSpec& c = *cluster_;
  const double eff = c.inter_node_efficiency > 0 ? c.inter_node_efficiency : c.device.collective_efficiency;
  return std::max(1e-9, nic_line_rate(g.crossing_per_node) * eff);
}

double NetworkModel::bus_bandwidth(const CommGroup& g) const {
  if (!g.inter_node()) return nvlink_bandwidth();
  const int k = std::max(1, g.ranks_per_node);
  const double net = k * nic_share(g);
  return k > 1 ? std::min(nvlink_bandwidth(), net) : net;
}

double NetworkModel::step_latency(const CommGroup& g) const {
  const ClusterSpec& c = *cluster_;
  if (c.device.collective_latency_us > 0) return c.device.collective_latency_us * kUs;
  return (g.inter_node() ? c.inter_node.latency_us : c.intra_node.latency_us) * kUs;
}

double NetworkModel::allreduce(double bytes, const CommGroup& g, CollectiveAlgo algo) const {
  if (g.size <= 1 || bytes <= 0) return 0;
  const DeviceProfile& dev = cluster_->device;
  const double n = g.size, busbw = bus_bandwidth(g), move = move_seconds(dev, bytes, busbw, true);
  const double ring = 2 * (n - 1) * step_latency(g) + 2 * (n - 1) / n * move;
  if (algo == CollectiveAlgo::kRing) return ring;
  // Tree: a chain through the node's k ranks, a double binary tree over the nodes (or over the
  // ranks of a single node when asked for explicitly); reduce up and broadcast down, S each.
  const int k = std::max(1, std::min(g.ranks_per_node, g.size));
  const double hops = g.inter_node() ? std::ceil(std::log2(static_cast<double>(g.nodes()))) : std::ceil(std::log2(n));
  const double intra_hops = g.inter_node() ? k - 1 : 0;
  const ClusterSpec& c = *cluster_;
  const double a_net = step_latency(g);
  const double a_nvl = c.device.collective_latency_us > 0 ? a_net : c.intra_node.latency_us * kUs;
  const double tree = 2 * (hops * a_net + intra_hops * a_nvl) + 2 * move;
  if (algo == CollectiveAlgo::kTree) return tree;
  return g.inter_node() ? std::min(ring, tree) : ring;
}

double NetworkModel::reduce_scatter(double bytes, const CommGroup& g) const {
  if (g.size <= 1 || bytes <= 0) return 0;
  const double n = g.size;
  return (n - 1) * step_latency(g) + (n - 1) / n * move_seconds(cluster_->device, bytes, bus_bandwidth(g), true);
}

double NetworkModel::allgather(double bytes, const CommGroup& g) const {
  return reduce_scatter(bytes, g);
}

double NetworkModel::p2p(double bytes, bool inter_node, int crossing_per_node) const {
  if (bytes < 0) return 0;  // a zero-byte message still pays the latency (the simulator probes it)
  const ClusterSpec& c = *cluster_;
  const DeviceProfile& dev = c.device;
  const double eff = dev.p2p_efficiency > 0 ? dev.p2p_efficiency : dev.collective_efficiency;
  const double bw =
      inter_node ? nic_line_rate(crossing_per_node) * (c.inter_node_efficiency > 0 ? c.inter_node_efficiency : eff)
                 : c.intra_node.bandwidth_GBps * 1e9 * eff * link_scale_;
  const double latency = (inter_node ? c.inter_node.latency_us : c.intra_node.latency_us) * kUs;
  return latency + move_seconds(dev, bytes, std::max(1e-9, bw), false);
}

}  // namespace eellm
