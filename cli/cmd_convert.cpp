// `eellm convert`: Megatron-LM / EE-LLM launch command line (or launch script) → scenario YAML
// (--from-megatron), scenario → torchrun command line (--to-megatron), or a scenario with every
// field written out (--to-yaml). Warnings (ignored flags, assumptions) go to stderr.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "model/megatron.h"
#include "model/scenario_io.h"
#include "model/validate.h"

namespace eellm::cli {
namespace {

struct ConvertCliOptions {
  std::string from_megatron, to_megatron, to_yaml, out;
  MegatronImportOptions import;
};

// A launch script is a few kilobytes; 16 MiB bounds what a hostile input costs (stdin too).
constexpr uint64_t kMaxScriptBytes = uint64_t{16} << 20;

StatusOr<std::string> read_input(const std::string& path) {
  if (path != "-") return read_regular_file(path, "command line file", kMaxScriptBytes);
  std::string text;
  char buf[65536];
  while (std::cin.read(buf, sizeof buf) || std::cin.gcount() > 0) {
    text.append(buf, static_cast<size_t>(std::cin.gcount()));
    if (text.size() > kMaxScriptBytes)
      return Status::invalid_argument("the command line on stdin is over " + std::to_string(kMaxScriptBytes) +
                                      " bytes");
  }
  return text;
}

Status write_output(const std::string& out, const std::string& text) {
  if (out.empty() || out == "-") {
    std::cout << text;
    return Status::ok();
  }
  std::ofstream f(out, std::ios::binary);
  f << text;
  if (!f) return Status::io_error("cannot write " + out);
  std::cerr << "eellm convert: wrote " << out << "\n";
  return Status::ok();
}

Status run_convert(const ConvertCliOptions& o) {
  const int modes = !o.from_megatron.empty() + !o.to_megatron.empty() + !o.to_yaml.empty();
  if (modes != 1)
    return Status::invalid_argument(
        "give exactly one of --from-megatron FILE, --to-megatron SCENARIO, --to-yaml SCENARIO");
  if (!o.from_megatron.empty()) {
    EELLM_ASSIGN_OR_RETURN(const std::string text, read_input(o.from_megatron));
    MegatronImportOptions io = o.import;
    if (io.name.empty() && o.from_megatron != "-") io.name = std::filesystem::path(o.from_megatron).stem().string();
    auto imp = scenario_from_megatron(text, io);
    if (!imp.is_ok()) return imp.status().with_context(o.from_megatron);
    for (const std::string& w : imp->warnings) std::cerr << "eellm convert: warning: " << w << "\n";
    const Diagnostics d = validate_scenario(imp->scenario);
    std::cerr << d.to_string();
    // The diagnostics are printed above; the failure names them only, and nothing is written.
    if (d.has_errors())
      return Status::invalid_argument("the imported scenario has errors (listed above); nothing written");
    return write_output(o.out, scenario_to_yaml(imp->scenario));
  }
  const std::string& name = o.to_megatron.empty() ? o.to_yaml : o.to_megatron;
  auto sc = load_scenario(name);
  if (!sc.is_ok()) return sc.status();
  if (!o.to_yaml.empty()) return write_output(o.out, scenario_to_yaml(*sc));
  const MegatronExport ex = scenario_to_megatron(*sc);
  for (const std::string& w : ex.warnings) std::cerr << "eellm convert: warning: " << w << "\n";
  return write_output(o.out, ex.command);
}

}  // namespace

void register_convert(CLI::App& app) {
  auto o = std::make_shared<ConvertCliOptions>();
  CLI::App* cmd = app.add_subcommand("convert", "Convert between Megatron-LM/EE-LLM command lines and scenario files");
  cmd->add_option("--from-megatron", o->from_megatron,
                  "Launch command line or script (pretrain_early_exit_gpt.py flags) to read; '-' for stdin");
  cmd->add_option("--to-megatron", o->to_megatron, "Scenario file or shipped name to write as a torchrun command line");
  cmd->add_option("--to-yaml", o->to_yaml, "Scenario to write back with every field explicit");
  cmd->add_option("--device", o->import.device,
                  "Device profile for --from-megatron (a command line names no hardware); an unambiguous prefix "
                  "of a shipped name is enough")
      ->capture_default_str();
  cmd->add_option("--cluster", o->import.cluster, "Cluster profile for --from-megatron (overrides --device)");
  cmd->add_option("--gpus", o->import.gpus, "Total GPUs (default: torchrun's --nnodes × --nproc_per_node, else tp·pp)");
  cmd->add_option("--gpus-per-node", o->import.gpus_per_node,
                  "GPUs per node (default: torchrun's --nproc_per_node, else 8)");
  cmd->add_option("--name", o->import.name, "Scenario name (default: the input file's name)");
  cmd->add_option("--out,-o", o->out, "Output file (default: stdout)");
  cmd->callback([o] { finish("convert", run_convert(*o)); });
}

}  // namespace eellm::cli
