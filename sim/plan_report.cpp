// Renderings of a PlanResult (see plan.h): text tables, JSON, CSV.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sim/format.h"
#include "sim/plan.h"

namespace eellm {
namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string fixed(double v, int decimals) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

std::string partition_str(const PlanCandidate& c) {
  if (c.layer_partition.empty()) return "even";
  std::string s;
  for (size_t i = 0; i < c.layer_partition.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(c.layer_partition[i]);
  }
  return s;
}

std::string exits_str(const PlanCandidate& c) {
  std::string s = c.pre_exit ? "pre:" : "post:";
  for (size_t i = 0; i < c.exit_layer_nums.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(c.exit_layer_nums[i]);
  }
  return s;
}

std::string stage_mem_str(const PlanMetrics& m) {
  std::string s;
  for (size_t i = 0; i < m.stage_memory_GiB.size(); ++i) {
    if (i) s += '/';
    s += fmt("%.1f", m.stage_memory_GiB[i]);
  }
  return s;
}

// The systems that can launch the plan ("eellm,ee-llm"), per launch_problem.
std::string runs_on(const PlanCandidate& c) {
  std::string s;
  for (LaunchTarget t : kLaunchTargets)
    if (launch_problem(t, c).empty()) s += std::string(s.empty() ? "" : ",") + to_string(t);
  return s;
}

void table(std::ostringstream& os, const std::vector<PlanEntry>& rows) {
  double largest = 0;  // the three time columns in seconds, to 4 significant digits of the largest
  for (const PlanEntry& e : rows)
    largest = std::max({largest, e.metrics.ranking_time_s(), e.metrics.iteration_time_s, e.metrics.estimated_time_s});
  const int dec = significant_decimals(largest);
  char line[512];
  std::snprintf(line, sizeof line,
                "%4s %6s %4s %4s %4s %3s %4s %-12s %-9s %3s %4s %10s %10s %10s %12s %6s %7s %7s %8s  %s\n", "#", "gpus",
                "tp", "pp", "dp", "vp", "mbs", "schedule", "recompute", "sp", "dopt", "rank_s", "iter_s", "est_s",
                "tokens/s", "mfu%", "bubble%", "exit%", "peak_GiB", "partition | exits | GiB per stage | runs on");
  os << line;
  for (size_t i = 0; i < rows.size(); ++i) {
    const PlanCandidate& c = rows[i].candidate;
    const PlanMetrics& m = rows[i].metrics;
    std::snprintf(line, sizeof line,
                  "%4zu %6d %4d %4d %4d %3d %4d %-12s %-9s %3s %4s %10.*f %10s %10.*f %12.0f %6.1f %7.1f %7.1f %8.1f  ",
                  i + 1, c.world_size, c.tp, c.pp, c.dp, c.vp, c.micro_batch_size, to_string(c.schedule),
                  to_string(c.recompute), c.sequence_parallel ? "y" : "n", c.distributed_optimizer ? "y" : "n", dec,
                  m.ranking_time_s(), m.simulated ? fixed(m.iteration_time_s, dec).c_str() : "-", dec,
                  m.estimated_time_s, m.tokens_per_s, m.mfu * 100, m.bubble_fraction * 100,
                  m.exit_overhead_fraction * 100, m.peak_memory_GiB);
    os << line << partition_str(c) << (c.balanced_partition ? " (balanced)" : "") << " | " << exits_str(c)
       << (c.exits_moved ? " (moved)" : "") << " | " << stage_mem_str(m) << " | " << runs_on(c) << "\n";
  }
}

nlohmann::json entry_json(const PlanEntry& e) {
  const PlanCandidate& c = e.candidate;
  const PlanMetrics& m = e.metrics;
  nlohmann::json j;
  j["world_size"] = c.world_size;
  j["tensor_model_parallel_size"] = c.tp;
  j["pipeline_model_parallel_size"] = c.pp;
  j["data_parallel_size"] = c.dp;
  j["virtual_pipeline_model_parallel_size"] = c.vp;
  j["micro_batch_size"] = c.micro_batch_size;
  j["schedule"] = to_string(c.schedule);
  j["recompute_granularity"] = to_string(c.recompute);
  j["sequence_parallel"] = c.sequence_parallel;
  j["use_distributed_optimizer"] = c.distributed_optimizer;
  j["layer_partition"] = c.layer_partition;
  j["balanced_partition"] = c.balanced_partition;
  j["exit_layer_nums"] = c.exit_layer_nums;
  j["pre_exit"] = c.pre_exit;
  j["exits_moved"] = c.exits_moved;
  j["label"] = to_string(c);
  j["ranking_time_s"] = m.ranking_time_s();
  j["simulated"] = m.simulated;
  j["backbone_fraction"] = m.backbone_fraction;
  j["iteration_time_s"] = m.iteration_time_s;
  j["estimated_time_s"] = m.estimated_time_s;
  j["tokens_per_s"] = m.tokens_per_s;
  j["mfu"] = m.mfu;
  j["bubble_fraction"] = m.bubble_fraction;
  j["exit_overhead_fraction"] = m.exit_overhead_fraction;
  j["peak_memory_GiB"] = m.peak_memory_GiB;
  j["stage_memory_GiB"] = m.stage_memory_GiB;
  j["launchable_with"] = nlohmann::json::array();
  j["not_launchable_with"] = nlohmann::json::object();
  for (LaunchTarget t : kLaunchTargets) {
    const std::string why = launch_problem(t, c);
    if (why.empty())
      j["launchable_with"].push_back(to_string(t));
    else
      j["not_launchable_with"][to_string(t)] = why;
  }
  return j;
}

}  // namespace

namespace {

// What was simulated, and how far the closed form was off on those plans.
void search_summary(std::ostringstream& os, const PlanResult& r) {
  os << "screened " << r.candidates << " candidates in " << fmt("%.2f", r.screen_seconds) << " s ("
     << fmt("%.0f", r.screen_seconds > 0 ? static_cast<double>(r.candidates) / r.screen_seconds : 0.0) << "/s); "
     << r.estimated << " passed the constraints, " << r.simulated << " event-simulated in "
     << fmt("%.2f", r.simulate_seconds) << " s; memory budget " << fmt("%.1f", r.memory_budget_GiB) << " GiB per GPU ("
     << r.device << ")\n";
  if (r.simulated > 0)
    os << "closed-form estimate (est_s) vs simulated on those " << r.simulated << ": mean error "
       << fmt("%.1f", 100 * r.estimate_error_mean) << " %, max " << fmt("%.1f", 100 * r.estimate_error_max) << " %\n";
  if (r.spaces.size() > 1) {
    os << "simulated the best of each narrower search too, so widening never returns a worse plan:";
    for (size_t i = 0; i < r.spaces.size(); ++i) os << (i ? "; " : " ") << r.spaces[i];
    os << "\n";
  }
  if (!r.launchable_with.empty()) {
    os << "only plans launchable with";
    for (LaunchTarget t : r.launchable_with) os << " " << to_string(t);
    os << "\n";
  }
  os << "\n";
}

}  // namespace

std::string plan_to_text(const PlanResult& r) {
  std::ostringstream os;
  if (!r.interrupted.empty())
    os << "INTERRUPTED (" << r.interrupted << "): the best plans found so far"
       << (r.simulated > 0 ? "" : ", closed-form estimates only (nothing was simulated yet)") << "\n";
  search_summary(os, r);
  if (!r.pruned.empty()) {
    os << "pruned:\n";
    char line[160];
    for (const PruneCount& p : r.pruned) {
      std::snprintf(line, sizeof line, "  %-36s %10lld   e.g. ", p.reason.c_str(), static_cast<long long>(p.count));
      os << line << p.example << "\n";
    }
    os << "\n";
  }
  os << "ranked by " << kRankingKey << ":\n";
  table(os, r.ranked);
  os << plan_columns_legend();
  os << "\nPareto front (rank_s vs peak memory vs GPUs: no other plan is as good in all three and better in one):\n";
  table(os, r.pareto);
  return os.str();
}

std::string plan_scenario_name(const std::string& base, const PlanCandidate& c) {
  return base + "-" + std::to_string(c.world_size) + "gpus-tp" + std::to_string(c.tp) + "-pp" + std::to_string(c.pp) +
         "-dp" + std::to_string(c.dp) + (c.vp > 1 ? "-vp" + std::to_string(c.vp) : "") + "-mbs" +
         std::to_string(c.micro_batch_size) + "-" + to_string(c.schedule) + "-" + to_string(c.recompute);
}

std::string plan_columns_legend() {
  return "columns: tp/pp/dp tensor/pipeline/data parallel sizes; vp virtual stages per GPU; mbs micro-batch size; "
         "sp sequence parallel; dopt distributed optimizer;\n"
         "  rank_s the ranking key, seconds; iter_s the simulated iteration time, seconds (- not simulated); est_s the "
         "closed-form estimate the search screened with, seconds;\n"
         "  tokens/s backbone tokens per second; mfu% model FLOP utilisation; bubble% idle share of pp x iteration; "
         "exit% iteration time added by the exits (against the same plan without them);\n"
         "  GiB per stage: the peak (static + activations) of one GPU of each pipeline stage; peak_GiB the largest of "
         "them, which must fit the memory budget\n";
}

std::string plan_to_json(const PlanResult& r) {
  nlohmann::json j;
  j["candidates"] = r.candidates;
  j["estimated"] = r.estimated;
  j["simulated"] = r.simulated;
  j["ranking_key"] = kRankingKey;
  j["estimate_error_mean"] = r.estimate_error_mean;
  j["estimate_error_max"] = r.estimate_error_max;
  j["spaces"] = r.spaces;
  j["interrupted"] = r.interrupted;
  j["launchable_with_filter"] = nlohmann::json::array();
  for (LaunchTarget t : r.launchable_with) j["launchable_with_filter"].push_back(to_string(t));
  j["screen_seconds"] = r.screen_seconds;
  j["simulate_seconds"] = r.simulate_seconds;
  j["memory_budget_GiB"] = r.memory_budget_GiB;
  j["device"] = r.device;
  j["pruned"] = nlohmann::json::array();
  for (const PruneCount& p : r.pruned)
    j["pruned"].push_back({{"reason", p.reason}, {"count", p.count}, {"example", p.example}});
  j["ranked"] = nlohmann::json::array();
  for (const PlanEntry& e : r.ranked) j["ranked"].push_back(entry_json(e));
  j["pareto"] = nlohmann::json::array();
  for (const PlanEntry& e : r.pareto) j["pareto"].push_back(entry_json(e));
  return j.dump(2) + "\n";
}

std::string plan_to_csv(const PlanResult& r) {
  std::ostringstream os;
  os << "rank,world_size,tp,pp,dp,vp,micro_batch_size,schedule,recompute_granularity,sequence_parallel,"
        "use_distributed_optimizer,layer_partition,exit_layer_nums,pre_exit,ranking_time_s,iteration_time_s,"
        "estimated_time_s,tokens_per_s,mfu,bubble_fraction,exit_overhead_fraction,peak_memory_GiB,stage_memory_GiB,"
        "launchable_with\n";
  for (size_t i = 0; i < r.ranked.size(); ++i) {
    const PlanCandidate& c = r.ranked[i].candidate;
    const PlanMetrics& m = r.ranked[i].metrics;
    std::string exits;
    for (size_t k = 0; k < c.exit_layer_nums.size(); ++k) {
      if (k) exits += ' ';
      exits += std::to_string(c.exit_layer_nums[k]);
    }
    std::string part = c.layer_partition.empty() ? "" : partition_str(c);
    for (char& ch : part)
      if (ch == ',') ch = ' ';
    std::string mem = stage_mem_str(m);
    for (char& ch : mem)
      if (ch == '/') ch = ' ';
    os << i + 1 << "," << c.world_size << "," << c.tp << "," << c.pp << "," << c.dp << "," << c.vp << ","
       << c.micro_batch_size << "," << to_string(c.schedule) << "," << to_string(c.recompute) << ","
       << (c.sequence_parallel ? 1 : 0) << "," << (c.distributed_optimizer ? 1 : 0) << "," << part << "," << exits
       << "," << (c.pre_exit ? 1 : 0) << "," << fmt("%.6g", m.ranking_time_s()) << ","
       << fmt("%.6g", m.iteration_time_s) << "," << fmt("%.6g", m.estimated_time_s) << ","
       << fmt("%.6g", m.tokens_per_s) << "," << fmt("%.6g", m.mfu) << "," << fmt("%.6g", m.bubble_fraction) << ","
       << fmt("%.6g", m.exit_overhead_fraction) << "," << fmt("%.6g", m.peak_memory_GiB) << "," << mem << ",";
    for (char ch : runs_on(c)) os << (ch == ',' ? ' ' : ch);
    os << "\n";
  }
  return os.str();
}

}  // namespace eellm
