// eellm describe's figures (see describe.h).
#include "model/describe.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "model/cost_model.h"
#include "model/layout.h"

namespace eellm {

StatusOr<DescribeReport> describe_scenario(const Scenario& sc) {
  EELLM_ASSIGN_OR_RETURN(Layout L, derive_layout(sc));
  const CostModel cm(sc, L);
  DescribeReport r;
  r.name = sc.name;
  r.description = sc.description;
  r.tp = L.tp, r.pp = L.pp, r.dp = L.dp, r.vp = L.vp, r.world_size = L.world_size;
  r.micro_batch_size = sc.training.micro_batch_size;
  r.global_batch_size = sc.training.global_batch_size;
  r.num_microbatches = L.num_microbatches;
  r.padded_vocab_size = L.padded_vocab_size;
  r.ffn_hidden_size = L.ffn_hidden_size;
  r.num_query_groups = L.num_query_groups;
  r.kv_channels = L.kv_channels;
  r.schedule = to_string(L.schedule);
  r.recompute = to_string(sc.parallel.recompute_granularity);
  r.dtype = to_string(sc.training.params_dtype);
  r.device = sc.cluster.device.name;
  r.sequence_parallel = sc.parallel.sequence_parallel;
  r.distributed_optimizer = sc.parallel.use_distributed_optimizer;
  r.device_capacity_bytes = sc.cluster.device.memory_GiB * 1024.0 * 1024.0 * 1024.0;
  const ParamCounts pc = cm.param_counts();
  r.params_backbone = pc.backbone();
  r.params_total = pc.total();
  r.model_flops_per_iteration = cm.model_flops_per_iteration(true);
  r.model_flops_per_iteration_no_exits = cm.model_flops_per_iteration(false);
  r.embedding_group_bytes = cm.embedding_group_bytes();
  const std::vector<int> group = cm.embedding_group_stages();
  for (int s = 0; s < L.pp; ++s) {
    StageReport st;
    st.stage = s;
    for (int c = 0; c < L.vp; ++c) {
      const ChunkLayout& cl = L.chunk(s, c);
      char range[48] = "-";
      if (cl.num_layers > 0)
        std::snprintf(range, sizeof range, "%d-%d", cl.first_layer + 1, cl.first_layer + cl.num_layers);
      if (!st.layers.empty()) st.layers.push_back(',');
      st.layers.append(range);
      for (int x : cl.exits) st.exit_layers.push_back(L.exits[static_cast<size_t>(x)].layer);
      const ChunkCosts cc = cm.chunk(cl.virtual_stage);
      st.fwd_flops += cc.backbone_flops.fwd;
      st.bwd_flops += cc.backbone_flops.bwd();
      st.fwd_s += cc.backbone.fwd;
      st.bwd_s += cc.backbone.bwd() + cc.recompute_fwd;
      for (size_t i = 0; i < cc.exits.size(); ++i) {
        st.fwd_flops += cc.exit_flops[i].fwd;
        st.bwd_flops += cc.exit_flops[i].bwd();
        st.fwd_s += cc.exits[i].fwd;
        st.bwd_s += cc.exits[i].bwd();
      }
      if (!cl.has_final_head) st.p2p_bytes_per_microbatch += cc.p2p_bytes;
    }
    const StageMemory m = cm.stage_memory(s);
    st.params = m.params;
    st.activation_bytes_per_microbatch = m.activation_bytes_per_microbatch + m.exit_logits_bytes_per_microbatch;
    st.microbatches_in_flight = m.max_microbatches_in_flight;
    st.activation_bytes = m.held_bytes();
    st.static_bytes = m.static_bytes();
    st.total_bytes = m.peak_bytes();
    st.over_capacity = r.device_capacity_bytes > 0 && static_cast<double>(st.total_bytes) > r.device_capacity_bytes;
    st.tp_bytes_per_microbatch = cm.tp_bytes_per_microbatch(s);
    st.dp_bytes = L.dp > 1 ? cm.dp_grad_bytes(s) : 0;
    for (int g : group) st.in_embedding_group |= g == s;
    r.stages.push_back(st);
  }
  return r;
}

namespace {
double gib(double b) {
  return b / (1024.0 * 1024.0 * 1024.0);
}
double mib(double b) {
  return b / (1024.0 * 1024.0);
}
std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
std::string exits_str(const std::vector<int>& v) {
  if (v.empty()) return "-";
  std::string s;
  for (int x : v) {
    if (!s.empty()) s.push_back(',');
    s.append(std::to_string(x));
  }
  return s;
}
}  // namespace

std::string describe_to_text(const DescribeReport& r) {
  std::string o;
  char line[512];
  o.append("scenario ").append(r.name);
  if (!r.description.empty()) o.append(": ").append(r.description);
  o.push_back('\n');
  std::snprintf(line, sizeof line,
                "layout   world %d = tp %d x pp %d x dp %d, vp %d | micro batch %d, global batch "
                "%d -> %d microbatches\n",
                r.world_size, r.tp, r.pp, r.dp, r.vp, r.micro_batch_size, r.global_batch_size, r.num_microbatches);
  o += line;
  std::snprintf(line, sizeof line,
                "         schedule %s, recompute %s, sequence parallel %s, distributed optimizer %s, %s\n",
                r.schedule.c_str(), r.recompute.c_str(), r.sequence_parallel ? "on" : "off",
                r.distributed_optimizer ? "on" : "off", r.dtype.c_str());
  o += line;
  std::snprintf(line, sizeof line, "sizes    padded vocab %d, ffn %d, query groups %d, kv channels %d\n",
                r.padded_vocab_size, r.ffn_hidden_size, r.num_query_groups, r.kv_channels);
  o += line;
  std::snprintf(line, sizeof line, "params   %.4g B without exits, %.4g B with exits (+%.2f %%)\n",
                r.params_backbone / 1e9, r.params_total / 1e9,
                100.0 * (r.params_total - r.params_backbone) / std::max<int64_t>(1, r.params_backbone));
  o += line;
  std::snprintf(line, sizeof line, "flops    %.4g PFLOP per iteration (model, no recompute), %.4g without exits\n",
                r.model_flops_per_iteration / 1e15, r.model_flops_per_iteration_no_exits / 1e15);
  o += line;
  std::snprintf(line, sizeof line, "device   %s, %.1f GiB per GPU; embedding-group all-reduce %.1f MiB\n\n",
                r.device.c_str(), gib(r.device_capacity_bytes), mib(static_cast<double>(r.embedding_group_bytes)));
  o += line;
  o += "stage layers       exits   params/GPU  fwd GFLOP  bwd GFLOP  fwd ms  bwd ms  act/mb GiB  "
       "inflight  act GiB  "
       "static GiB  total GiB  p2p MiB/mb  TP MiB/mb  DP MiB\n";
  for (const StageReport& s : r.stages) {
    std::snprintf(line, sizeof line,
                  "%5d %-12s %-7s %10.4gM %10.1f %10.1f %7.2f %7.2f %11.3f %9d %8.2f %11.2f "
                  "%10.2f%s %10.1f %10.1f %7.1f\n",
                  s.stage, s.layers.c_str(), exits_str(s.exit_layers).c_str(), s.params / 1e6, s.fwd_flops / 1e9,
                  s.bwd_flops / 1e9, s.fwd_s * 1e3, s.bwd_s * 1e3,
                  gib(static_cast<double>(s.activation_bytes_per_microbatch)), s.microbatches_in_flight,
                  gib(static_cast<double>(s.activation_bytes)), gib(static_cast<double>(s.static_bytes)),
                  gib(static_cast<double>(s.total_bytes)), s.over_capacity ? "!" : " ",
                  mib(static_cast<double>(s.p2p_bytes_per_microbatch)),
                  mib(static_cast<double>(s.tp_bytes_per_microbatch)), mib(static_cast<double>(s.dp_bytes)));
    o += line;
  }
  bool over = false;
  for (const StageReport& s : r.stages) over |= s.over_capacity;
  if (over)
    o.append("! over device capacity (")
        .append(fmt("%.1f", gib(r.device_capacity_bytes)))
        .append(" GiB): analytical upper bound; `eellm simulate` has the precise memory timeline\n");
  return o;
}

std::string describe_to_json(const DescribeReport& r) {
  nlohmann::json j;
  j["name"] = r.name;
  j["description"] = r.description;
  j["layout"] = {{"tensor_model_parallel_size", r.tp},
                 {"pipeline_model_parallel_size", r.pp},
                 {"data_parallel_size", r.dp},
                 {"virtual_pipeline_model_parallel_size", r.vp},
                 {"world_size", r.world_size},
                 {"micro_batch_size", r.micro_batch_size},
                 {"global_batch_size", r.global_batch_size},
                 {"num_microbatches", r.num_microbatches},
                 {"padded_vocab_size", r.padded_vocab_size},
                 {"ffn_hidden_size", r.ffn_hidden_size},
                 {"num_query_groups", r.num_query_groups},
                 {"kv_channels", r.kv_channels},
                 {"schedule", r.schedule},
                 {"recompute_granularity", r.recompute},
                 {"sequence_parallel", r.sequence_parallel},
                 {"use_distributed_optimizer", r.distributed_optimizer},
                 {"params_dtype", r.dtype}};
  j["device"] = {{"name", r.device}, {"memory_bytes", r.device_capacity_bytes}};
  j["totals"] = {{"params_without_exits", r.params_backbone},
                 {"params_with_exits", r.params_total},
                 {"model_flops_per_iteration", r.model_flops_per_iteration},
                 {"model_flops_per_iteration_without_exits", r.model_flops_per_iteration_no_exits},
                 {"embedding_group_bytes", r.embedding_group_bytes}};
  nlohmann::json stages = nlohmann::json::array();
  for (const StageReport& s : r.stages) {
    stages.push_back({{"stage", s.stage},
                      {"layers", s.layers},
                      {"exit_layers", s.exit_layers},
                      {"params_per_gpu", s.params},
                      {"fwd_flops_per_microbatch", s.fwd_flops},
                      {"bwd_flops_per_microbatch", s.bwd_flops},
                      {"fwd_s_per_microbatch", s.fwd_s},
                      {"bwd_s_per_microbatch", s.bwd_s},
                      {"activation_bytes_per_microbatch", s.activation_bytes_per_microbatch},
                      {"microbatches_in_flight", s.microbatches_in_flight},
                      {"activation_bytes", s.activation_bytes},
                      {"static_bytes", s.static_bytes},
                      {"total_bytes", s.total_bytes},
                      {"over_capacity", s.over_capacity},
                      {"p2p_bytes_per_microbatch", s.p2p_bytes_per_microbatch},
                      {"tp_bytes_per_microbatch", s.tp_bytes_per_microbatch},
                      {"dp_grad_bytes", s.dp_bytes},
                      {"in_embedding_group", s.in_embedding_group}});
  }
  j["stages"] = stages;
  return j.dump(2);
}

}  // namespace eellm
