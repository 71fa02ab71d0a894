// simulate(): scenario → costs → schedule → engine → memory, bubbles, summary (see simulate.h).
#include "sim/simulate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sim/format.h"

namespace eellm {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// Model FLOPs of the work the schedule runs, per GPU (no recompute): exact for fill microbatches,
// truncated backwards and EE-Tuning's exit-only backward, where the backbone formula would not be.
double executed_flops_per_gpu(const Schedule& s, const SimCosts& c) {
  double total = 0;
  for (size_t r = 0; r < s.ranks.size(); ++r)
    for (const Instr& in : s.ranks[r]) {
      if (in.kind > InstrKind::kBackwardWeight) continue;
      const ChunkTimes& t = c.chunks[static_cast<size_t>(s.virtual_stage(static_cast<int>(r), in.chunk))];
      const bool trunc = in.has(kTruncated) && !in.has(kExitOnly);
      if (in.kind == InstrKind::kForward) {
        const double share = trunc && t.fwd > 0 ? static_cast<double>(t.fwd_partial) / static_cast<double>(t.fwd) : 1.0;
        total += t.fwd_flops * share + t.exit_fwd_flops;
        continue;
      }
      const TimeNs full = t.bwd_input + t.bwd_weight;
      const double share = trunc && full > 0 ? static_cast<double>(t.bwd_input_partial + t.bwd_weight_partial) /
                                                   static_cast<double>(full)
                                             : 1.0;
      const double backbone = in.has(kExitOnly) ? 0 : t.bwd_flops * share;
      const double both = backbone + t.exit_bwd_flops;
      total += in.kind == InstrKind::kBackward ? both : 0.5 * both;
    }
  return total;
}

}  // namespace

MemoryParams memory_params_from_model(const CostModel& cm) {
  const Layout& L = cm.layout();
  MemoryParams p;
  p.chunks.resize(static_cast<size_t>(L.num_virtual_stages()));
  for (int r = 0; r < L.pp; ++r) {
    const StageMemory sm = cm.stage_memory(r);
    p.static_bytes.push_back(sm.static_bytes());
    for (int c = 0; c < L.vp; ++c) {
      const ChunkLayout& cl = L.chunk(r, c);
      const ChunkActivation ca = cm.chunk_activation(cl.virtual_stage);  // what describe counts
      ChunkMemory m;
      m.activation_bytes = ca.activation_bytes;
      m.exit_logits_bytes = ca.logits_bytes;
      const int upto = layers_to_deepest_exit(L, cl.virtual_stage);
      m.activation_partial_bytes = cl.num_layers > 0 ? m.activation_bytes * upto / cl.num_layers : m.activation_bytes;
      p.chunks[static_cast<size_t>(cl.virtual_stage)] = m;
    }
  }
  return p;
}

Scenario scenario_without_exits(const Scenario& scenario) {
  Scenario base = scenario;
  base.exits = ExitSpec{};
  base.parallel.fill_explicit_bubbles = false;
  if (base.parallel.schedule == ScheduleKind::kEE1F1B || base.parallel.schedule == ScheduleKind::kEEFill)
    base.parallel.schedule = ScheduleKind::k1F1B;
  return base;
}

namespace {

// The per-stage rows of the summary (busy, idle and bubble parts, memory) and the fractions they
// add up to.
void add_stage_summaries(const SimulationResult& res, SimulationSummary& s) {
  const Layout& L = res.layout;
  const double denom = static_cast<double>(L.pp) * static_cast<double>(res.engine.iteration_ns);
  for (int r = 0; r < L.pp; ++r) {
    const BubbleAttribution& b = res.bubbles[static_cast<size_t>(r)];
    const RankMemory& m = res.memory.ranks[static_cast<size_t>(r)];
    StageSummary st;
    st.stage = r;
    st.busy_s = ns_to_seconds(b.busy);
    st.exit_busy_s = ns_to_seconds(b.exit_busy);
    st.idle_s = ns_to_seconds(b.idle);
    st.bubble_dependency_s = ns_to_seconds(b.dependency);
    st.bubble_exposed_comm_s = ns_to_seconds(b.exposed_comm);
    st.bubble_imbalance_s = ns_to_seconds(b.imbalance);
    st.bubble_exit_s = ns_to_seconds(b.exit);
    st.peak_memory_GiB = static_cast<double>(m.peak_bytes) / kGiB;
    st.peak_memory_time_s = ns_to_seconds(m.peak_time);
    st.static_memory_GiB = static_cast<double>(m.static_bytes) / kGiB;
    st.max_microbatches_in_flight = m.max_in_flight;
    s.stages.push_back(st);
    s.peak_memory_GiB = std::max(s.peak_memory_GiB, st.peak_memory_GiB);
    if (denom > 0) {
      s.bubble_fraction += static_cast<double>(b.idle) / denom;
      s.bubble_dependency_fraction += static_cast<double>(b.dependency) / denom;
      s.bubble_exposed_comm_fraction += static_cast<double>(b.exposed_comm) / denom;
      s.bubble_imbalance_fraction += static_cast<double>(b.imbalance) / denom;
      s.bubble_exit_fraction += static_cast<double>(b.exit) / denom;
    }
  }
}

}  // namespace

StatusOr<SimulationResult> simulate(const Scenario& scenario, const SimulateOptions& options) {
  SimulationResult res;
  res.scenario = scenario;
  EELLM_ASSIGN_OR_RETURN(res.layout, derive_layout(res.scenario));
  CostModel cm(res.scenario, res.layout);
  res.costs = sim_costs_from_model(cm);
  EELLM_ASSIGN_OR_RETURN(res.schedule, make_schedule(res.scenario, res.layout));
  EngineOptions eo;
  eo.record_timeline = options.record_timeline;
  EELLM_ASSIGN_OR_RETURN(res.engine, simulate_schedule(res.schedule, res.costs, eo));
  // CPU ranks that outnumber the cores time-share them only while they compute: a pipeline's idle
  // ranks leave their share to the busy ones. Re-cost with the busy fraction of the previous pass
  // (a fixed point; three passes settle it to well under 1 %). The schedule stays the first one.
  const bool time_shared = cm.core_time_share() < 1.0;
  for (int pass = 0; pass < 3 && time_shared && res.engine.iteration_ns > 0; ++pass) {
    double busy = 0;
    for (const BubbleAttribution& b : attribute_bubbles(res.schedule, res.engine, res.costs))
      busy += static_cast<double>(b.busy);
    cm.set_busy_fraction(std::clamp(
        busy / (static_cast<double>(res.layout.pp) * static_cast<double>(res.engine.iteration_ns)), 0.05, 1.0));
    res.costs = sim_costs_from_model(cm);
    EELLM_ASSIGN_OR_RETURN(res.engine, simulate_schedule(res.schedule, res.costs, eo));
  }
  res.memory = memory_timeline(res.schedule, res.engine, memory_params_from_model(cm));
  if (options.record_timeline) res.engine.timeline.memory = res.memory.samples;
  res.bubbles = attribute_bubbles(res.schedule, res.engine, res.costs);

  const Layout& L = res.layout;
  SimulationSummary& s = res.summary;
  s.scenario = scenario.name;
  s.schedule = to_string(res.schedule.kind);
  s.tp = L.tp;
  s.pp = L.pp;
  s.dp = L.dp;
  s.vp = L.vp;
  s.world_size = L.world_size;
  s.device_memory_GiB = scenario.cluster.device.memory_GiB;
  s.num_microbatches = L.num_microbatches;
  s.num_fill_warmup = res.schedule.num_fill_warmup;
  s.num_fill_cooldown = res.schedule.num_fill_cooldown;
  const double T = ns_to_seconds(res.engine.iteration_ns);
  s.iteration_time_s = T;
  s.engine_events = res.engine.events_processed;
  s.num_backbone_microbatches = num_backbone_microbatches(res.schedule);
  if (T > 0) {
    const double tokens = static_cast<double>(scenario.training.global_batch_size) * scenario.model.seq_length;
    const double backbone_share = static_cast<double>(s.num_backbone_microbatches) / L.num_microbatches;
    s.tokens_per_s = tokens * backbone_share / T;
    s.fill_tokens_per_s = tokens * (1.0 - backbone_share) / T;
    const double flops = executed_flops_per_gpu(res.schedule, res.costs) * L.tp * L.dp;
    s.model_tflops_per_gpu = flops / T / L.world_size / 1e12;
    const double peak = cm.peak_flops();
    s.mfu = peak > 0 ? flops / (T * L.world_size * peak) : 0;
  }
  add_stage_summaries(res, s);
  s.critical_path = format_critical_path(res.schedule, critical_path(res.schedule, res.engine));

  if (options.compare_without_exits && !scenario.exits.exit_layer_nums.empty() &&
      L.schedule != ScheduleKind::kEETuning) {
    const Scenario base = scenario_without_exits(scenario);
    SimulateOptions bo;
    bo.record_timeline = false;
    bo.compare_without_exits = false;
    auto b = simulate(base, bo);
    if (!b.is_ok()) return b.status().with_context("the same scenario without exits");
    s.iteration_time_no_exits_s = b->summary.iteration_time_s;
    if (s.iteration_time_no_exits_s > 0) {
      // Per backbone token: ee-fill trains the backbone on fewer microbatches than the baseline.
      const double per_token = static_cast<double>(b->summary.num_backbone_microbatches) / s.num_backbone_microbatches;
      s.exit_overhead_fraction = s.num_backbone_microbatches == b->summary.num_backbone_microbatches
                                     ? T / s.iteration_time_no_exits_s - 1.0
                                     : T * per_token / s.iteration_time_no_exits_s - 1.0;
    }
  }
  return res;
}

double memory_excess_GiB(const SimulationSummary& s) {
  return s.device_memory_GiB > 0 ? s.peak_memory_GiB - s.device_memory_GiB : 0.0;
}

std::string memory_overflow(const SimulationSummary& s) {
  if (memory_excess_GiB(s) <= 0) return "";
  const StageSummary* worst = nullptr;
  std::vector<int> others;
  for (const StageSummary& st : s.stages)
    if (st.peak_memory_GiB > s.device_memory_GiB) {
      if (worst == nullptr || st.peak_memory_GiB > worst->peak_memory_GiB) {
        if (worst != nullptr) others.push_back(worst->stage);
        worst = &st;
      } else {
        others.push_back(st.stage);
      }
    }
  if (worst == nullptr) return "";
  char b[200];
  std::snprintf(b, sizeof b, "does not fit: stage %d needs %.1f GiB, %.1f GiB more than the %.1f GiB of a GPU",
                worst->stage, worst->peak_memory_GiB, worst->peak_memory_GiB - s.device_memory_GiB,
                s.device_memory_GiB);
  std::string out = b;
  if (!others.empty()) {
    std::sort(others.begin(), others.end());
    out += " (over too: stage";
    for (int o : others) {
      out += ' ';
      out.append(std::to_string(o));
    }
    out += ")";
  }
  return out;
}

std::string summary_to_json(const SimulationSummary& s) {
  nlohmann::ordered_json j;
  j["scenario"] = s.scenario;
  j["schedule"] = s.schedule;
  j["tensor_model_parallel_size"] = s.tp;
  j["pipeline_model_parallel_size"] = s.pp;
  j["data_parallel_size"] = s.dp;
  j["virtual_pipeline_model_parallel_size"] = s.vp;
  j["world_size"] = s.world_size;
  j["num_microbatches"] = s.num_microbatches;
  j["num_fill_warmup_microbatches"] = s.num_fill_warmup;
  j["num_fill_cooldown_microbatches"] = s.num_fill_cooldown;
  j["num_backbone_microbatches"] = s.num_backbone_microbatches;
  j["iteration_time_s"] = s.iteration_time_s;
  j["tokens_per_s"] = s.tokens_per_s;
  j["fill_tokens_per_s"] = s.fill_tokens_per_s;
  j["model_tflops_per_gpu"] = s.model_tflops_per_gpu;
  j["mfu"] = s.mfu;
  j["bubble_fraction"] = s.bubble_fraction;
  j["bubble_attribution"] = {{"dependency_fraction", s.bubble_dependency_fraction},
                             {"exposed_comm_fraction", s.bubble_exposed_comm_fraction},
                             {"stage_imbalance_fraction", s.bubble_imbalance_fraction},
                             {"exit_work_fraction", s.bubble_exit_fraction}};
  j["iteration_time_no_exits_s"] = s.iteration_time_no_exits_s;
  j["exit_overhead_fraction"] = s.exit_overhead_fraction;
  j["peak_memory_GiB"] = s.peak_memory_GiB;
  j["device_memory_GiB"] = s.device_memory_GiB;
  j["fits_memory"] = memory_excess_GiB(s) <= 0;
  j["memory_excess_GiB"] = std::max(0.0, memory_excess_GiB(s));
  j["memory_note"] = memory_overflow(s);
  nlohmann::ordered_json stages = nlohmann::ordered_json::array();
  for (const StageSummary& st : s.stages) {
    nlohmann::ordered_json o;
    o["stage"] = st.stage;
    o["busy_time_s"] = st.busy_s;
    o["exit_busy_time_s"] = st.exit_busy_s;
    o["idle_time_s"] = st.idle_s;
    o["bubble_dependency_s"] = st.bubble_dependency_s;
    o["bubble_exposed_comm_s"] = st.bubble_exposed_comm_s;
    o["bubble_stage_imbalance_s"] = st.bubble_imbalance_s;
    o["bubble_exit_work_s"] = st.bubble_exit_s;
    o["peak_memory_GiB"] = st.peak_memory_GiB;
    o["fits_memory"] = s.device_memory_GiB <= 0 || st.peak_memory_GiB <= s.device_memory_GiB;
    o["peak_memory_time_s"] = st.peak_memory_time_s;
    o["static_memory_GiB"] = st.static_memory_GiB;
    o["max_microbatches_in_flight"] = st.max_microbatches_in_flight;
    stages.push_back(o);
  }
  j["stages"] = stages;
  j["critical_path"] = s.critical_path;
  return j.dump(2) + "\n";
}

namespace {

// The per-stage table: each time column in the one unit its largest value needs.
void stage_table(std::ostringstream& os, const SimulationSummary& s) {
  using Get = double (*)(const StageSummary&);
  const std::pair<const char*, Get> cols[] = {
      {"busy", [](const StageSummary& st) { return st.busy_s; }},
      {"exit work", [](const StageSummary& st) { return st.exit_busy_s; }},
      {"idle", [](const StageSummary& st) { return st.idle_s; }},
      {"peak at", [](const StageSummary& st) { return st.peak_memory_time_s; }}};
  TimeUnit unit[4];
  int decimals[4];
  for (int c = 0; c < 4; ++c) {
    double largest = 0;
    for (const StageSummary& st : s.stages) largest = std::max(largest, std::abs(cols[c].second(st)));
    unit[c] = time_unit_for(largest);
    decimals[c] = column_decimals(largest / unit[c].seconds);
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %5s  %12s  %12s  %12s  %9s  %12s  %s\n", "stage", cols[0].first, cols[1].first,
                cols[2].first, "peak GiB", cols[3].first, "in-flight");
  os << buf;
  for (const StageSummary& st : s.stages) {
    std::snprintf(buf, sizeof buf, "  %5d  %12s  %12s  %12s  %9.1f  %12s  %d%s\n", st.stage,
                  format_in_unit(st.busy_s, unit[0], decimals[0]).c_str(),
                  format_in_unit(st.exit_busy_s, unit[1], decimals[1]).c_str(),
                  format_in_unit(st.idle_s, unit[2], decimals[2]).c_str(), st.peak_memory_GiB,
                  format_in_unit(st.peak_memory_time_s, unit[3], decimals[3]).c_str(), st.max_microbatches_in_flight,
                  s.device_memory_GiB > 0 && st.peak_memory_GiB > s.device_memory_GiB ? "  over memory" : "");
    os << buf;
  }
}

}  // namespace

std::string summary_to_text(const SimulationSummary& s) {
  std::ostringstream os;
  char buf[512];
  std::snprintf(buf, sizeof buf, "scenario %s: schedule %s, TP %d × PP %d × DP %d (VP %d) = %d GPUs, %d microbatches\n",
                s.scenario.c_str(), s.schedule.c_str(), s.tp, s.pp, s.dp, s.vp, s.world_size, s.num_microbatches);
  os << buf;
  if (s.num_fill_warmup + s.num_fill_cooldown > 0) {
    std::snprintf(buf, sizeof buf,
                  "  fill microbatches: %d warm-up, %d cool-down (taken from the %d, as EE-LLM; %d train the whole "
                  "backbone)\n  fill throughput    %.1f tokens/s (not counted in the throughput below)\n",
                  s.num_fill_warmup, s.num_fill_cooldown, s.num_microbatches, s.num_backbone_microbatches,
                  s.fill_tokens_per_s);
    os << buf;
  }
  const std::vector<std::string>& part = bubble_part_names();
  os << "  iteration time     " << format_duration(s.iteration_time_s) << "\n";
  std::snprintf(buf, sizeof buf,
                "  throughput         %.1f tokens/s\n  model FLOP rate    %s per GPU\n"
                "  MFU                %.1f %%\n  bubble             %.1f %% (%s %.1f, %s %.1f, %s %.1f, %s %.1f)\n",
                s.tokens_per_s, format_flop_rate(s.model_tflops_per_gpu * 1e12).c_str(), 100 * s.mfu,
                100 * s.bubble_fraction, part[0].c_str(), 100 * s.bubble_dependency_fraction, part[1].c_str(),
                100 * s.bubble_exposed_comm_fraction, part[2].c_str(), 100 * s.bubble_imbalance_fraction,
                part[3].c_str(), 100 * s.bubble_exit_fraction);
  os << buf;
  if (s.iteration_time_no_exits_s > 0 && s.num_backbone_microbatches == s.num_microbatches) {
    std::snprintf(buf, sizeof buf, "  exit overhead      %+.1f %% (%s without exits)\n", 100 * s.exit_overhead_fraction,
                  format_duration(s.iteration_time_no_exits_s).c_str());
    os << buf;
  } else if (s.iteration_time_no_exits_s > 0) {
    // ee-fill: fewer microbatches train the whole backbone, so the iteration and the time per
    // backbone microbatch are two different overheads; both are named.
    std::snprintf(buf, sizeof buf,
                  "  exit overhead      %+.1f %% iteration time (%s without exits)\n"
                  "  per backbone mb    %+.1f %% time per microbatch that trains the whole backbone (%d of %d "
                  "do)\n",
                  100 * (s.iteration_time_s / s.iteration_time_no_exits_s - 1.0),
                  format_duration(s.iteration_time_no_exits_s).c_str(), 100 * s.exit_overhead_fraction,
                  s.num_backbone_microbatches, s.num_microbatches);
    os << buf;
  }
  const std::string over = memory_overflow(s);
  if (!over.empty()) os << "  MEMORY             " << over << "\n";
  stage_table(os, s);
  return os.str();
}

std::string summary_to_csv(const SimulationSummary& s) {
  std::ostringstream os;
  os << "scenario,schedule,tp,pp,dp,vp,num_microbatches,iteration_time_s,tokens_per_s,model_tflops_per_gpu,mfu,"
        "bubble_fraction,exit_overhead_fraction,stage,busy_time_s,exit_busy_time_s,idle_time_s,peak_memory_GiB,"
        "max_microbatches_in_flight,device_memory_GiB,fits_memory\n";
  char buf[512];
  for (const StageSummary& st : s.stages) {
    std::snprintf(
        buf, sizeof buf, "%s,%s,%d,%d,%d,%d,%d,%.9g,%.9g,%.6g,%.6g,%.6g,%.6g,%d,%.9g,%.9g,%.9g,%.6g,%d,%.6g,%d\n",
        s.scenario.c_str(), s.schedule.c_str(), s.tp, s.pp, s.dp, s.vp, s.num_microbatches, s.iteration_time_s,
        s.tokens_per_s, s.model_tflops_per_gpu, s.mfu, s.bubble_fraction, s.exit_overhead_fraction, st.stage, st.busy_s,
        st.exit_busy_s, st.idle_s, st.peak_memory_GiB, st.max_microbatches_in_flight, s.device_memory_GiB,
        s.device_memory_GiB <= 0 || st.peak_memory_GiB <= s.device_memory_GiB ? 1 : 0);
    os << buf;
  }
  return os.str();
}

}  // namespace eellm
