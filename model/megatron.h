// Megatron-LM / EE-LLM interop: a launch command line (or a whole launch script, as EE-LLM ships
// them: variables, `\` continuations, `$(( ))` arithmetic, `torchrun ...
// pretrain_early_exit_gpt.py`) to a Scenario, and a Scenario back to a command line. A Megatron
// command line says nothing of the cluster, so the caller names the device (or a cluster profile)
// and the GPU count. Flags eellm does not model are reported as warnings, never dropped silently.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

struct MegatronImportOptions {
  std::string name;                      // scenario name (empty → "megatron-import")
  std::string cluster;                   // a cluster profile; overrides `device`
  std::string device = "a100-80gb-sxm";  // device profile when no cluster profile is named
  int gpus = 0;                          // 0 → torchrun's --nnodes × --nproc_per_node, else tp·pp
  int gpus_per_node = 0;                 // 0 → torchrun's --nproc_per_node, else min(gpus, 8)
};

struct MegatronImport {
  Scenario scenario;
  std::vector<std::string> warnings;  // ignored or assumed things, one sentence each
};

// Parses the command (or script) text. Errors: no Megatron command in the text, a flag with a
// missing or malformed value, sizes that contradict each other.
StatusOr<MegatronImport> scenario_from_megatron(const std::string& text, const MegatronImportOptions& options = {});

struct MegatronExport {
  std::string command;                // `torchrun ... pretrain_early_exit_gpt.py \` one flag per line
  std::vector<std::string> warnings;  // scenario fields a Megatron command line cannot express
};
MegatronExport scenario_to_megatron(const Scenario& scenario);

// The words of the last launch command in a shell script after variable, arithmetic and quote
// processing (exposed for tests). Implemented in megatron_shell.cpp.
StatusOr<std::vector<std::string>> expand_launch_command(const std::string& script);

}  // namespace eellm
