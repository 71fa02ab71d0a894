// `eellm simulate SCENARIO [--trace trace.json] [--format text|json|csv] [--schedule-listing]
// [--strict-memory]`: predicts one training iteration with the discrete-event simulator
// (sim/simulate.h) and prints the summary with its what-if cost block (sim/cost_report.h: time to
// train, GPU-hours, cost, energy, failures, checkpoints); the trace opens in ui.perfetto.dev. A stage
// over the GPU's memory is flagged in every format and warned about on stderr (an error with
// --strict-memory).
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "model/scenario_io.h"
#include "model/validate.h"
#include "sim/cost_report.h"
#include "sim/simulate.h"
#include "sim/trace.h"

namespace eellm::cli {
namespace {

// The summary in `format` with the cost block: text lines after it, a "cost" member of the JSON
// object, cost columns on every CSV row. A run the cost model cannot cost says why instead.
std::string summary_with_cost(const SimulationResult& r, const std::string& format) {
  const auto cost = training_cost_of(r);
  if (format == "json") {
    const std::string block =
        cost.is_ok() ? training_cost_to_json(*cost) : nlohmann::json{{"error", cost.status().message()}}.dump();
    return add_json_member(summary_to_json(r.summary), "cost", block);
  }
  if (format == "csv") {
    if (!cost.is_ok()) return summary_to_csv(r.summary);
    return append_csv_columns(summary_to_csv(r.summary), training_cost_csv_header(), {training_cost_csv_values(*cost)});
  }
  return summary_to_text(r.summary) + (cost.is_ok() ? training_cost_to_text(*cost, r.scenario.cluster.cost)
                                                    : "cost: not computed: " + cost.status().message() + "\n");
}

}  // namespace

void register_simulate(CLI::App& app) {
  struct Options {
    std::string scenario;
    std::string trace;
    std::string format = "text";
    bool listing = false;
    bool strict_memory = false;
    InferenceCliOptions inference;  // --mode inference (helper "plan", cli/cmd_simulate_inference.cpp)
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("simulate", "Predict one training iteration event by event (discrete-event simulator)");
  cmd->add_option("scenario", opt->scenario, "Scenario file or shipped scenario name (e.g. ee-llm-7b)")->required();
  cmd->add_option("--trace", opt->trace, "Write a Chrome/Perfetto trace.json of the iteration");
  cmd->add_option("--format", opt->format, "Summary format")
      ->check(CLI::IsMember({"text", "json", "csv"}))
      ->capture_default_str();
  cmd->add_flag("--schedule-listing", opt->listing, "Also print each pipeline rank's instruction list");
  cmd->add_flag("--strict-memory", opt->strict_memory,
                "Exit 1 when a stage's peak memory exceeds the GPU's memory (default: warn on stderr)");
  add_inference_options(cmd, opt->inference);
  cmd->callback([opt] {
    auto sc = load_scenario(opt->scenario);
    if (!sc.is_ok()) {
      finish("simulate", sc.status());
      return;
    }
    if (Status st = validate_cost_fields(*sc).first_error(); !st.is_ok()) {  // the cost block's inputs
      std::cerr << "eellm simulate: " << sc->source_path << ": " << st.message() << "\n";
      exit_code() = 1;
      return;
    }
    // --- inference mode: early-exit decoding (sim/inference_sim.h) ---
    if (opt->inference.mode == "inference") {
      exit_code() = run_simulate_inference(*sc, opt->inference, opt->format);
      return;
    }
    // --- training mode ---
    SimulateOptions so;
    so.record_timeline = !opt->trace.empty();
    auto res = simulate(*sc, so);
    if (!res.is_ok()) {
      finish("simulate", res.status());
      return;
    }
    if (!opt->trace.empty()) {
      TraceOptions to;
      to.title = sc->name + " (" + res->summary.schedule + ", predicted)";
      Status st = write_trace(res->engine.timeline, opt->trace, to);
      if (!st.is_ok()) {
        finish("simulate", st);
        return;
      }
    }
    const std::string over = memory_overflow(res->summary);
    if (!over.empty()) {
      std::cerr << "eellm simulate: " << (opt->strict_memory ? "error" : "warning") << ": " << sc->name << " " << over
                << (opt->strict_memory ? "" : " (the times below assume it ran; --strict-memory makes this an error)")
                << "\n";
      if (opt->strict_memory) {
        exit_code() = 1;
        return;
      }
    }
    std::cout << summary_with_cost(*res, opt->format);
    if (opt->listing) std::cout << format_schedule(res->schedule);
    if (!opt->trace.empty() && opt->format == "text") std::cout << "trace written to " << opt->trace << "\n";
  });
}

}  // namespace eellm::cli
