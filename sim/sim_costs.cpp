#include "sim/sim_costs.h"

#include <algorithm>

namespace eellm {
namespace {

// Fraction of a stage's parameters that are exit heads (EE-Tuning trains only those).
double exit_param_fraction(const CostModel& cm, int stage) {
  const Layout& L = cm.layout();
  const ParamCounts pc = cm.param_counts();
  double exit_params = 0;
  for (int c = 0; c < L.vp; ++c)
    for (int idx : L.chunk(stage, c).exits)
      exit_params += static_cast<double>(pc.exit_heads[static_cast<size_t>(idx)]) / L.tp;
  const double total = static_cast<double>(cm.stage_params(stage));
  return total > 0 ? std::min(1.0, exit_params / total) : 0;
}

}  // namespace

int layers_to_deepest_exit(const Layout& L, int v) {
  const ChunkLayout& cl = L.chunks[static_cast<size_t>(v)];
  if (cl.exits.empty()) return cl.num_layers;
  int depth = 0;
  for (int idx : cl.exits) depth = std::max(depth, L.exits[static_cast<size_t>(idx)].depth);
  return std::clamp(depth - cl.first_layer, 0, cl.num_layers);
}

SimCosts sim_costs_from_model(const CostModel& cm) {
  const Layout& L = cm.layout();
  const bool tuning = L.schedule == ScheduleKind::kEETuning;
  SimCosts c;
  for (int v = 0; v < L.num_virtual_stages(); ++v) {
    const ChunkCosts cc = cm.chunk(v);
    const ChunkLayout& cl = L.chunks[static_cast<size_t>(v)];
    ChunkTimes t;
    t.fwd = seconds_to_ns(cc.backbone.fwd);
    t.bwd_input = seconds_to_ns(cc.backbone.bwd_input);
    t.bwd_weight = seconds_to_ns(cc.backbone.bwd_weight);
    const int upto = layers_to_deepest_exit(L, v);
    const bool full = upto == cl.num_layers;
    t.fwd_partial = full ? t.fwd : seconds_to_ns(cc.embedding.fwd + cc.per_layer.fwd * upto);
    t.bwd_input_partial = full ? t.bwd_input : seconds_to_ns(cc.embedding.bwd_input + cc.per_layer.bwd_input * upto);
    t.bwd_weight_partial =
        full ? t.bwd_weight : seconds_to_ns(cc.embedding.bwd_weight + cc.per_layer.bwd_weight * upto);
    for (size_t k = 0; k < cc.exits.size(); ++k) {
      t.exit_fwd += seconds_to_ns(cc.exits[k].fwd);
      t.exit_bwd_input += seconds_to_ns(cc.exits[k].bwd_input);
      t.exit_bwd_weight += seconds_to_ns(cc.exits[k].bwd_weight);
      if (k < cc.exit_flops.size()) {
        t.exit_fwd_flops += cc.exit_flops[k].fwd;
        t.exit_bwd_flops += cc.exit_flops[k].bwd();
      }
    }
    t.recompute = seconds_to_ns(cc.recompute_fwd);
    t.recompute_partial = cl.num_layers > 0 ? t.recompute * upto / cl.num_layers : 0;
    t.fwd_flops = cc.backbone_flops.fwd;
    t.bwd_flops = cc.backbone_flops.bwd();
    t.p2p_bytes = cc.p2p_bytes;
    c.chunks.push_back(t);
  }
  for (int r = 0; r < L.pp; ++r) {
    RankTimes rt;
    const double share = tuning ? exit_param_fraction(cm, r) : 1.0;
    if (L.dp > 1) {
      rt.dp_allreduce = seconds_to_ns(cm.dp_sync_time(r) * share);
      rt.dp_bytes = static_cast<int64_t>(static_cast<double>(cm.dp_grad_bytes(r)) * share);
    }
    rt.embedding_allreduce = tuning ? 0 : seconds_to_ns(cm.embedding_group_time());
    rt.embedding_bytes = cm.embedding_group_bytes();
    rt.optimizer = seconds_to_ns(cm.optimizer_step_time(r) * share);
    c.ranks.push_back(rt);
    // Alpha-beta figures of the hop r → r+1 taken from the cost model's p2p time at the size this
    // layout sends (its activation), so a profile with a large-message regime is exact for it.
    LinkTimes lk;
    const bool inter = cm.pp_hop_inter_node(r);
    const int64_t sent = c.chunks.empty() ? 0 : c.chunks[static_cast<size_t>(r) % c.chunks.size()].p2p_bytes;
    const bool piecewise = cm.scenario().cluster.device.large_message_KiB > 0;
    const int64_t probe = piecewise && sent > 0 ? sent : int64_t{1} << 30;
    const double t0 = cm.p2p_time(0, inter), t1 = cm.p2p_time(probe, inter);
    lk.latency = seconds_to_ns(t0);
    lk.ns_per_byte = (t1 - t0) * 1e9 / static_cast<double>(probe);
    c.hops.push_back(lk);
  }
  return c;
}

double backward_forward_ratio(const SimCosts& c) {
  double f = 0, b = 0;
  for (const ChunkTimes& t : c.chunks) {
    f += static_cast<double>(t.fwd + t.exit_fwd);
    b += static_cast<double>(t.bwd_input + t.bwd_weight + t.recompute + t.exit_bwd_input + t.exit_bwd_weight);
  }
  return f > 0 && b > 0 ? b / f : 2.0;
}

}  // namespace eellm
