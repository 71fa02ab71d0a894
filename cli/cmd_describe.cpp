// `eellm describe SCENARIO [--format text|json]`: Megatron-style rank-0 table of a scenario — the
// derived layout, totals, and per pipeline stage its layers, exits, parameters, FLOPs per
// microbatch, memory against device capacity and communication volumes, all from the cost model.
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "model/describe.h"
#include "model/scenario_io.h"

namespace eellm::cli {

void register_describe(CLI::App& app) {
  struct Options {
    std::string scenario;
    std::string format = "text";
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("describe", "Show a scenario's layout, parameters, FLOPs, memory and traffic per stage");
  cmd->add_option("scenario", opt->scenario, "Scenario file or shipped scenario name (e.g. ee-llm-7b)")->required();
  cmd->add_option("--format", opt->format, "Output format")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  cmd->callback([opt] {
    auto sc = load_scenario(opt->scenario);
    if (!sc.is_ok()) {
      finish("describe", sc.status());
      return;
    }
    auto report = describe_scenario(*sc);
    if (!report.is_ok()) {
      finish("describe", report.status());
      return;
    }
    if (opt->format == "json")
      std::cout << describe_to_json(*report) << "\n";
    else
      std::cout << describe_to_text(*report);
  });
}

}  // namespace eellm::cli
