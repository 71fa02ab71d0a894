// Subcommands of the `eellm` binary. Each cmd_*.cpp registers one (or a few) on the app; the
// callback runs the command and hands its Status to finish() — the one failure path: main prints
// "eellm COMMAND: <status>" on stderr and exits 1, or 130 when the status is kCancelled. A command
// whose success has several exit codes (a distributed run's) sets `exit_code` instead.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm::cli {

// Set by a subcommand callback; main returns it when no failure was recorded by finish().
int& exit_code();
// Records the outcome of subcommand `command` (e.g. "train", "data prepare"); ok records nothing.
void finish(const std::string& command, const Status& st);

// eellm describe (cli/cmd_describe.cpp) and eellm fit (cli/cmd_fit.cpp).
void register_describe(CLI::App& app);
void register_fit(CLI::App& app);

// eellm convert (cli/cmd_convert.cpp).
void register_convert(CLI::App& app);

// eellm train, eellm eval, eellm data prepare (cli/cmd_train.cpp).
void register_train(CLI::App& app);
void register_eval(CLI::App& app);
void register_data(CLI::App& app);

// eellm compare-trace (cli/cmd_compare_trace.cpp): predicted vs measured trace.
void register_compare_trace(CLI::App& app);

// eellm simulate (cli/cmd_simulate.cpp).
void register_simulate(CLI::App& app);

// eellm plan, sweep, compare (cli/cmd_plan.cpp, cmd_sweep.cpp, cmd_compare.cpp).
void register_plan(CLI::App& app);
void register_sweep(CLI::App& app);
void register_compare(CLI::App& app);

// eellm calibrate and eellm fidelity (cli/cmd_calibrate.cpp, cli/cmd_fidelity.cpp): measure this
// machine, then predicted vs measured iteration times of small plans. `eellm validate` is a
// deprecated alias of fidelity ("validate" means scenario validation).
void register_calibrate(CLI::App& app);
void register_fidelity(CLI::App& app);

// eellm launch (cli/cmd_launch.cpp): a Slurm job script that runs a plan.
void register_launch(CLI::App& app);

// eellm generate (cli/cmd_generate.cpp): early-exit text generation from a checkpoint.
void register_generate(CLI::App& app);
// eellm serve (cli/cmd_serve.cpp): the same generation behind an HTTP endpoint (EE-LLM's PUT /api).
void register_serve(CLI::App& app);

// `eellm simulate --mode inference` (cli/cmd_simulate_inference.cpp; called by cmd_simulate.cpp).
struct InferenceCliOptions {
  std::string mode = "training";
  std::string exit_rates_file;
  std::vector<std::string> methods;
  double acceptance_rate = -1;
};
void add_inference_options(CLI::App* cmd, InferenceCliOptions& options);
int run_simulate_inference(const Scenario& scenario, const InferenceCliOptions& options, const std::string& format);

}  // namespace eellm::cli
