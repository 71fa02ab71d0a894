// `eellm simulate SCENARIO [--trace trace.json] [--format text|json|csv] [--schedule-listing]
// [--strict-memory]`: predicts one training iteration with the discrete-event simulator
// (sim/simulate.h) and prints the summary; the trace opens in ui.perfetto.dev. A stage over the GPU's
// memory is flagged in every format and warned about on stderr (an error with --strict-memory).
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "model/scenario_io.h"
#include "sim/simulate.h"
#include "sim/trace.h"

namespace eellm::cli {

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
  CLI::App* cmd = app.add_subcommand("simulate", "Predict one training iteration event by event (discrete-event simulator)");
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
      std::cerr << "eellm simulate: " << sc.status().to_string() << "\n";
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
      std::cerr << "eellm simulate: " << res.status().to_string() << "\n";
      exit_code() = 1;
      return;
    }
    if (!opt->trace.empty()) {
      TraceOptions to;
      to.title = sc->name + " (" + res->summary.schedule + ", predicted)";
      Status st = write_trace(res->engine.timeline, opt->trace, to);
      if (!st.is_ok()) {
        std::cerr << "eellm simulate: " << st.to_string() << "\n";
        exit_code() = 1;
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
    if (opt->format == "json") std::cout << summary_to_json(res->summary);
    else if (opt->format == "csv") std::cout << summary_to_csv(res->summary);
    else std::cout << summary_to_text(res->summary);
    if (opt->listing) std::cout << format_schedule(res->schedule);
    if (!opt->trace.empty() && opt->format == "text") std::cout << "trace written to " << opt->trace << "\n";
  });
}

}  // namespace eellm::cli
