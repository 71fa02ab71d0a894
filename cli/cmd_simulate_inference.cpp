// `eellm simulate SCENARIO --mode inference [--exit-rates rates.json] [--method M] [--acceptance-rate A]`:
// the inference branch of `simulate` (registered by cmd_simulate.cpp): early-exit decoding predicted
// by sim/inference_sim.h for the full model, KV recomputation, pipeline-based and self-speculative
// decoding, from the scenario's inference section or a rates file written by `eellm generate`; with
// the cost per million generated tokens of each method (sim/cost_report.h).
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "sim/cost_report.h"
#include "sim/inference_sim.h"

namespace eellm::cli {

void add_inference_options(CLI::App* cmd, InferenceCliOptions& o) {
  cmd->add_option("--mode", o.mode, "training: one training iteration; inference: early-exit decoding")
      ->check(CLI::IsMember({"training", "inference"}));
  cmd->add_option("--exit-rates", o.exit_rates_file,
                  "Inference: JSON {\"exit_rates\": [...]} (eellm generate --stats-out)");
  cmd->add_option("--method", o.methods, "Inference: methods to compare (default: all that apply)")
      ->check(CLI::IsMember({"full", "recompute", "pipeline", "speculative"}));
  cmd->add_option("--acceptance-rate", o.acceptance_rate,
                  "Inference: self-speculative acceptance rate α (default: from the exit rates)")
      ->check(CLI::Range(0.0, 1.0));
}

int run_simulate_inference(const Scenario& scenario, const InferenceCliOptions& o, const std::string& format) {
  InferenceSimOptions so;
  so.acceptance_rate = o.acceptance_rate;
  if (!o.exit_rates_file.empty()) {
    auto rates = read_exit_rates_file(o.exit_rates_file);
    if (!rates.is_ok()) {
      std::cerr << "eellm simulate: " << rates.status().to_string() << "\n";
      return 1;
    }
    so.exit_rates = rates->rates;
    so.exit_rates_layers = rates->exit_layers;
    so.exit_rates_source = o.exit_rates_file;
  }
  for (const std::string& m : o.methods) {
    if (m == "full")
      so.methods.push_back(InferenceMethod::kFull);
    else if (m == "recompute")
      so.methods.push_back(InferenceMethod::kRecompute);
    else if (m == "pipeline")
      so.methods.push_back(InferenceMethod::kPipeline);
    else
      so.methods.push_back(InferenceMethod::kSpeculative);
  }
  auto res = simulate_inference(scenario, so);
  if (!res.is_ok()) {
    std::cerr << "eellm simulate: " << res.status().to_string() << "\n";
    return 1;
  }
  if (res->exit_rates_assumed) std::cerr << "eellm simulate: warning: exit rates " << res->exit_rates_source << "\n";
  const auto cost_or = inference_costs(scenario, *res);
  if (!cost_or.is_ok()) {
    std::cerr << "eellm simulate: " << cost_or.status().to_string() << "\n";
    return 1;
  }
  const std::vector<InferenceCost>& costs = *cost_or;
  if (format == "json") {
    nlohmann::json block = nlohmann::json::array();
    for (size_t i = 0; i < costs.size(); ++i)
      block.push_back({{"method", to_string(res->methods[i].method)},
                       {"usd_per_million_tokens", costs[i].usd_per_million_tokens},
                       {"kWh_per_million_tokens", costs[i].kWh_per_million_tokens}});
    std::cout << add_json_member(inference_to_json(*res), "cost", block.dump());
  } else if (format == "csv") {
    std::vector<std::vector<double>> rows;
    for (const InferenceCost& c : costs) rows.push_back({c.usd_per_million_tokens, c.kWh_per_million_tokens});
    std::cout << append_csv_columns(inference_to_csv(*res), {"usd_per_million_tokens", "kWh_per_million_tokens"}, rows);
  } else {
    std::cout << inference_to_text(*res) << inference_cost_to_text(*res, costs, scenario.cluster.cost);
  }
  return 0;
}

}  // namespace eellm::cli
