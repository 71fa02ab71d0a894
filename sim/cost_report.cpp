// The cost block of simulate, the GUI and `plan --objective` (see cost_report.h).
#include "sim/cost_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "model/cost_model.h"
#include "model/layout.h"
#include "model/validate.h"
#include "sim/format.h"

namespace eellm {
namespace {

int nodes_for(int gpus, int gpus_per_node) {
  return gpus_per_node > 0 ? (gpus + gpus_per_node - 1) / gpus_per_node : 1;
}

// The cost inputs every caller shares: budget, power, prices, failures, checkpoint size.
TrainingCostInput base_input(const Scenario& s, const Layout& layout) {
  TrainingCostInput in;
  in.train_tokens = s.training.train_tokens;
  in.train_iters = s.training.train_iters;
  in.gpus = layout.world_size;
  in.nodes = nodes_for(layout.world_size, s.cluster.gpus_per_node);
  in.checkpoint_bytes = checkpoint_bytes(CostModel(s, layout));
  in.power_busy_W = s.cluster.device.power_busy_W;
  in.power_idle_W = s.cluster.device.power_idle_W;
  in.cost = s.cluster.cost;
  return in;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Seconds as the largest unit that reads well (s, h, days).
std::string duration(double s) {
  if (s < 3600) return fmt("%.1f s", s);
  if (s < 2 * 86400) return fmt("%.2f h", s / 3600);
  return fmt("%.2f days", s / 86400);
}

}  // namespace

TrainingCostInput training_cost_input(const SimulationResult& r) {
  TrainingCostInput in = base_input(r.scenario, r.layout);
  const SimulationSummary& m = r.summary;
  in.iteration_time_s = m.iteration_time_s;
  in.tokens_per_iteration = m.tokens_per_s * m.iteration_time_s;
  for (const StageSummary& st : m.stages) in.stages.push_back({r.layout.tp * r.layout.dp, st.busy_s, st.idle_s});
  return in;
}

StatusOr<TrainingCost> training_cost_of(const SimulationResult& result) {
  EELLM_RETURN_IF_ERROR(validate_cost_fields(result.scenario).first_error());
  return training_cost(training_cost_input(result));
}

std::string training_cost_to_text(const TrainingCost& c, const CostSpec& k) {
  std::ostringstream os;
  os << "cost (" << fmt("%.0f", c.iterations) << " iterations; docs/cost.md)\n";
  os << "  time to train      " << duration(c.wall_s) << " (useful " << duration(c.useful_s) << ", goodput "
     << fmt("%.1f %%)\n", 100 * c.goodput);
  // Significant digits, not "%.0f": a CPU profile or a tiny run has 0.0012 GPU-hours, not 0.
  os << "  GPU-hours          " << format_significant(c.gpu_hours) << "\n";
  if (k.price_per_gpu_hour_usd > 0)
    os << "  cost               " << format_significant(c.cost_usd) << " USD"
       << fmt(" at %.2f USD per GPU-hour\n", k.price_per_gpu_hour_usd);
  else
    os << "  cost               no price in the profile (cluster.cost.price_per_gpu_hour_usd)\n";
  os << "  energy             " << format_significant(c.energy_kWh) << " kWh (GPUs busy "
     << format_significant(c.energy_gpu_busy_kWh) << ", idle " << format_significant(c.energy_gpu_idle_kWh)
     << ", node overhead " << format_significant(c.energy_node_kWh) << " kWh" << fmt("; PUE %.2f)\n", k.pue);
  if (c.job_mtbf_s > 0)
    os << "  failures           job MTBF " << duration(c.job_mtbf_s)
       << fmt(": %.1f expected interruptions", c.interruptions) << " (lost work " << duration(c.lost_work_s)
       << ", restarts " << duration(c.restart_total_s) << ")\n";
  else
    os << "  failures           not modelled (cluster.cost.node_mtbf_hours is 0)\n";
  if (c.checkpoint_write_s > 0)
    os << "  checkpoints        " << fmt("%.1f GB", c.checkpoint_bytes / 1e9) << ", write "
       << duration(c.checkpoint_write_s) << ", Young/Daly interval " << duration(c.checkpoint_interval_s)
       << fmt(": %.0f writes", c.checkpoints) << " (" << duration(c.checkpoint_overhead_s) << ")\n";
  else
    os << "  checkpoints        not modelled (cluster.cost.checkpoint_write_GBps_per_node is 0)\n";
  return os.str();
}

const std::vector<std::string>& training_cost_csv_header() {
  static const std::vector<std::string> h = {"train_iterations",
                                             "useful_time_s",
                                             "wall_time_s",
                                             "goodput",
                                             "gpu_hours",
                                             "cost_usd",
                                             "energy_kWh",
                                             "interruptions",
                                             "job_mtbf_s",
                                             "checkpoint_bytes",
                                             "checkpoint_write_s",
                                             "checkpoint_interval_s",
                                             "checkpoint_overhead_s",
                                             "lost_work_s",
                                             "restart_total_s"};
  return h;
}

std::vector<double> training_cost_csv_values(const TrainingCost& c) {
  return {c.iterations,
          c.useful_s,
          c.wall_s,
          c.goodput,
          c.gpu_hours,
          c.cost_usd,
          c.energy_kWh,
          c.interruptions,
          c.job_mtbf_s,
          c.checkpoint_bytes,
          c.checkpoint_write_s,
          c.checkpoint_interval_s,
          c.checkpoint_overhead_s,
          c.lost_work_s,
          c.restart_total_s};
}

std::string training_cost_to_json(const TrainingCost& c) {
  nlohmann::json j;
  const auto& h = training_cost_csv_header();
  const std::vector<double> v = training_cost_csv_values(c);
  for (size_t i = 0; i < h.size(); ++i) j[h[i]] = v[i];
  j["energy_gpu_busy_kWh"] = c.energy_gpu_busy_kWh;
  j["energy_gpu_idle_kWh"] = c.energy_gpu_idle_kWh;
  j["energy_node_kWh"] = c.energy_node_kWh;
  j["checkpoints"] = c.checkpoints;
  return j.dump();
}

std::string append_csv_columns(const std::string& csv, const std::vector<std::string>& header,
                               const std::vector<std::vector<double>>& values) {
  std::istringstream in(csv);
  std::ostringstream out;
  std::string line;
  for (int row = -1; std::getline(in, line); ++row) {
    out << line;
    if (row < 0) {
      for (const std::string& h : header) out << "," << h;
    } else if (!values.empty()) {
      const std::vector<double>& v = values[std::min<size_t>(static_cast<size_t>(row), values.size() - 1)];
      for (double x : v) out << fmt(",%.9g", x);
    }
    out << "\n";
  }
  return out.str();
}

std::string add_json_member(const std::string& json, const std::string& key, const std::string& value_json) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(json);
  j[key] = nlohmann::ordered_json::parse(value_json);
  return j.dump(2) + "\n";
}

StatusOr<std::vector<InferenceCost>> inference_costs(const Scenario& scenario, const InferenceSimResult& r) {
  EELLM_RETURN_IF_ERROR(validate_cost_fields(scenario).first_error());
  std::vector<InferenceCost> out;
  for (const DecodeResult& d : r.methods) out.push_back(inference_cost(scenario.cluster, r.tp * r.pp, d.tokens_per_s));
  return out;
}

std::string inference_cost_to_text(const InferenceSimResult& r, const std::vector<InferenceCost>& costs,
                                   const CostSpec& k) {
  std::ostringstream os;
  os << "cost per million generated tokens (" << r.tp * r.pp;
  if (k.price_per_gpu_hour_usd > 0)
    os << fmt(" GPUs at %.2f USD per GPU-hour", k.price_per_gpu_hour_usd);
  else
    os << " GPUs, no price in the profile";
  os << fmt(", PUE %.2f)\n", k.pue);
  os << "  method        USD/Mtok    kWh/Mtok\n";
  for (size_t i = 0; i < r.methods.size() && i < costs.size(); ++i) {
    const std::string usd = k.price_per_gpu_hour_usd > 0 ? fmt("%.4f", costs[i].usd_per_million_tokens) : "-";
    char line[128];
    std::snprintf(line, sizeof line, "  %-12s  %-10s  %-10.4f\n", to_string(r.methods[i].method), usd.c_str(),
                  costs[i].kWh_per_million_tokens);
    os << line;
  }
  return os.str();
}

// ---- planner objective ----

StatusOr<PlanObjective> parse_plan_objective(const std::string& name) {
  for (PlanObjective o : {PlanObjective::kTime, PlanObjective::kCost, PlanObjective::kEnergy, PlanObjective::kGoodput})
    if (name == to_string(o)) return o;
  return Status::invalid_argument("--objective '" + name + "' is not one of time, cost, energy, goodput");
}

const char* to_string(PlanObjective o) {
  switch (o) {
    case PlanObjective::kTime:
      return "time";
    case PlanObjective::kCost:
      return "cost";
    case PlanObjective::kEnergy:
      return "energy";
    case PlanObjective::kGoodput:
      return "goodput";
  }
  return "?";
}

namespace {

// Smaller is better.
double objective_key(PlanObjective o, const TrainingCost& c) {
  switch (o) {
    case PlanObjective::kTime:
      return c.wall_s;
    case PlanObjective::kCost:
      return c.cost_usd;
    case PlanObjective::kEnergy:
      return c.energy_kWh;
    case PlanObjective::kGoodput:
      return -c.goodput;
  }
  return c.wall_s;
}

const char* objective_unit(PlanObjective o) {
  switch (o) {
    case PlanObjective::kTime:
      return "wall-clock time to train, days";
    case PlanObjective::kCost:
      return "cost, USD";
    case PlanObjective::kEnergy:
      return "energy, kWh";
    case PlanObjective::kGoodput:
      return "goodput, highest first";
  }
  return "";
}

// The cost of one planner entry on `base` (budget in backbone tokens, see cost_report.h).
StatusOr<TrainingCost> plan_entry_cost(const Scenario& base, const PlanEntry& e) {
  EELLM_RETURN_IF_ERROR(validate_cost_fields(base).first_error());
  Scenario s = apply_candidate(base, e.candidate);
  if (s.training.train_tokens <= 0)
    s.training.train_tokens =
        static_cast<double>(s.training.train_iters) * s.training.global_batch_size * s.model.seq_length;
  EELLM_ASSIGN_OR_RETURN(const Layout layout, derive_layout(s));
  TrainingCostInput in = base_input(s, layout);
  const double t = e.metrics.time_s();
  in.iteration_time_s = t;
  in.tokens_per_iteration = e.metrics.tokens_per_s * t;
  in.stages = {{layout.world_size, t * (1 - e.metrics.bubble_fraction), t * e.metrics.bubble_fraction}};
  return training_cost(in);
}

bool over_limits(const PlanLimits& l, const PlanEntry& e, const TrainingCost& c) {
  return (l.max_gpus > 0 && e.candidate.world_size > l.max_gpus) ||
         (l.max_cost_usd > 0 && c.cost_usd > l.max_cost_usd) ||
         (l.deadline_days > 0 && c.wall_s > l.deadline_days * 86400);
}

std::string limits_text(const PlanLimits& l) {
  std::string s;
  if (l.deadline_days > 0) s += fmt(", deadline %g days", l.deadline_days);
  if (l.max_cost_usd > 0) s += fmt(", max cost %g USD", l.max_cost_usd);
  if (l.max_gpus > 0) s += ", max " + std::to_string(l.max_gpus) + " GPUs";
  return s.empty() ? std::string(", no limits") : s;
}

}  // namespace

StatusOr<CostRanking> rank_plans_by_cost(const Scenario& base, const std::vector<PlanEntry>& plans,
                                         PlanObjective objective, const PlanLimits& limits, int top_k) {
  CostRanking r;
  r.objective = objective;
  r.limits = limits;
  for (const PlanEntry& e : plans) {
    auto c = plan_entry_cost(base, e);
    if (!c.is_ok()) {
      if (r.errors.size() < 3) r.errors.push_back(to_string(e.candidate) + ": " + c.status().message());
      continue;
    }
    ++r.considered;
    if (over_limits(limits, e, *c))
      ++r.over_limits;
    else
      r.ranked.push_back({e, *c});
  }
  std::stable_sort(r.ranked.begin(), r.ranked.end(), [objective](const CostRankedPlan& a, const CostRankedPlan& b) {
    const double ka = objective_key(objective, a.cost), kb = objective_key(objective, b.cost);
    if (std::abs(ka - kb) > 1e-9 * std::max(std::abs(ka), std::abs(kb))) return ka < kb;  // else a tie
    if (a.entry.metrics.ranking_time_s() != b.entry.metrics.ranking_time_s())
      return a.entry.metrics.ranking_time_s() < b.entry.metrics.ranking_time_s();
    return a.entry.candidate.index < b.entry.candidate.index;
  });
  if (r.ranked.empty()) {
    std::string msg = "no plan meets the limits (" + limits_text(limits).substr(2) +
                      "): " + std::to_string(r.considered) + " costed, " + std::to_string(r.over_limits) +
                      " over a limit";
    if (!r.errors.empty()) msg += "; e.g. " + r.errors.front();
    return Status::not_found(msg);
  }
  if (top_k > 0 && static_cast<int>(r.ranked.size()) > top_k) r.ranked.resize(static_cast<size_t>(top_k));
  return r;
}

std::string cost_ranking_to_text(const CostRanking& r) {
  std::ostringstream os;
  os << "ranked by " << to_string(r.objective) << " (" << objective_unit(r.objective) << limits_text(r.limits)
     << "): " << r.considered << " simulated plans costed, " << r.over_limits << " over a limit\n";
  os << "  #   days      GPU-h       cost_USD      energy_kWh   goodput   iter_s      plan\n";
  for (size_t i = 0; i < r.ranked.size(); ++i) {
    const TrainingCost& c = r.ranked[i].cost;
    char line[256];
    std::snprintf(line, sizeof line, "  %-3zu %-9.2f %-11.0f %-13.0f %-12.0f %5.1f %%   %-11.6f ", i + 1,
                  c.wall_s / 86400, c.gpu_hours, c.cost_usd, c.energy_kWh, 100 * c.goodput,
                  r.ranked[i].entry.metrics.time_s());
    os << line << to_string(r.ranked[i].entry.candidate) << "\n";
  }
  for (const std::string& e : r.errors) os << "  not costed: " << e << "\n";
  return os.str();
}

std::string cost_ranking_to_json(const CostRanking& r) {
  nlohmann::ordered_json j;
  j["objective"] = to_string(r.objective);
  j["limits"] = {{"max_cost_usd", r.limits.max_cost_usd},
                 {"deadline_days", r.limits.deadline_days},
                 {"max_gpus", r.limits.max_gpus}};
  j["considered"] = r.considered;
  j["over_limits"] = r.over_limits;
  j["ranked"] = nlohmann::ordered_json::array();
  for (const CostRankedPlan& p : r.ranked) {
    nlohmann::ordered_json e;
    e["plan"] = to_string(p.entry.candidate);
    e["world_size"] = p.entry.candidate.world_size;
    e["iteration_time_s"] = p.entry.metrics.time_s();
    e["cost"] = nlohmann::ordered_json::parse(training_cost_to_json(p.cost));
    j["ranked"].push_back(e);
  }
  return j.dump(2) + "\n";
}

std::string cost_ranking_to_csv(const CostRanking& r) {
  std::ostringstream os;
  os << "rank,objective,plan,world_size,iteration_time_s";
  for (const std::string& h : training_cost_csv_header()) os << "," << h;
  os << "\n";
  for (size_t i = 0; i < r.ranked.size(); ++i) {
    os << i + 1 << "," << to_string(r.objective) << ",\"" << to_string(r.ranked[i].entry.candidate) << "\","
       << r.ranked[i].entry.candidate.world_size << fmt(",%.9g", r.ranked[i].entry.metrics.time_s());
    for (double v : training_cost_csv_values(r.ranked[i].cost)) os << fmt(",%.9g", v);
    os << "\n";
  }
  return os.str();
}

}  // namespace eellm
