#include "exec/io/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "exec/io/safetensors.h"
#include "model/scenario_io.h"

namespace eellm::exec {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json fingerprint(const GptConfig& c) {
  return json{{"num_layers", c.L},
              {"hidden_size", c.C},
              {"num_attention_heads", c.NH},
              {"num_query_groups", c.G},
              {"kv_channels", c.HS},
              {"ffn_hidden_size", c.F},
              {"vocab_size", c.V},
              {"padded_vocab_size", c.Vp},
              {"max_position_embeddings", c.max_T},
              {"normalization", to_string(c.norm)},
              {"rope", c.rope},
              {"swiglu", c.swiglu},
              {"add_bias_linear", c.bias},
              {"untie_embeddings_and_output_weights", c.untie_final},
              {"exit_layer_nums", c.exit_layer},
              {"exit_depths", c.exit_depth},
              {"use_exit_block", c.exit_block},
              {"use_exit_norm", c.exit_norm},
              {"use_exit_mlp", c.exit_mlp},
              {"untie_exit_output_weights", c.untie_exits}};
}

std::string iter_name(int it) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "iter_%07d", it);
  return buf;
}

// True when `p` is a regular file (not a symlink, directory or special file).
bool regular_file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(fs::symlink_status(p, ec));
}

}  // namespace

std::string model_fingerprint(const GptConfig& cfg) {
  return fingerprint(cfg).dump();
}
std::string checkpoint_iter_name(int iteration) {
  return iter_name(iteration);
}

Status check_model_fingerprint(const std::string& stored_json, const GptConfig& cfg, const std::string& source) {
  const json want = fingerprint(cfg), have = json::parse(stored_json, nullptr, false);
  if (have.is_discarded() || !have.is_object())
    return Status::corruption(source + ": the model fingerprint is not a JSON object");
  std::string diffs;
  for (auto it = want.begin(); it != want.end(); ++it) {
    if (!have.contains(it.key()) || have[it.key()] != it.value())
      diffs += (diffs.empty() ? "" : "; ") + it.key() + " is " +
               (have.contains(it.key()) ? have[it.key()].dump() : "missing") + " there but " + it.value().dump() +
               " here";
  }
  if (!diffs.empty()) return Status::failed_precondition(source + " was written for a different model: " + diffs);
  return Status::ok();
}

StatusOr<std::string> resolve_checkpoint_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::not_found("checkpoint directory " + dir + " is not a directory");
  if (regular_file_exists(fs::path(dir) / "state.json") || regular_file_exists(fs::path(dir) / "manifest.json"))
    return dir;
  const fs::path latest = fs::path(dir) / "latest";
  if (fs::symlink_status(latest, ec).type() == fs::file_type::not_found)
    return Status::not_found("checkpoint directory " + dir +
                             " has neither a `latest` file nor a state.json / manifest.json");
  EELLM_ASSIGN_OR_RETURN(std::string name, read_file(latest.string(), /*follow_symlinks=*/false));
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  if (name.empty() || name.size() > 255 || name == "." || name == ".." ||
      name.find_first_of("/\\") != std::string::npos || name.find('\0') != std::string::npos)
    return Status::corruption("checkpoint " + latest.string() + " does not name a checkpoint directory of " + dir);
  const fs::path sub = fs::path(dir) / name;
  if (fs::symlink_status(sub, ec).type() != fs::file_type::directory ||
      !(regular_file_exists(sub / "state.json") || regular_file_exists(sub / "manifest.json")))
    return Status::corruption("checkpoint " + latest.string() + " names '" + name +
                              "', which has neither state.json nor manifest.json (an incomplete save?)");
  return sub.string();
}

Status save_checkpoint(const std::string& dir, const Scenario& scenario, const GptConfig& cfg, const GptParams& params,
                       AdamW* opt, const TrainProgress& progress, int keep) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status::io_error("cannot create checkpoint directory " + dir + ": " + ec.message());
  const std::string name = iter_name(progress.iteration);
  const fs::path tmp = fs::path(dir) / (".tmp_" + name);
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return Status::io_error("cannot create " + tmp.string() + ": " + ec.message());

  json files = json::object();
  auto write = [&](const std::string& file, const std::string& bytes) -> Status {
    EELLM_RETURN_IF_ERROR(write_file_atomic((tmp / file).string(), bytes));
    files[file] = {{"bytes", bytes.size()}, {"fnv1a64", fnv1a64_hex(bytes)}};
    return Status::ok();
  };
  EELLM_RETURN_IF_ERROR(write("model.safetensors", safetensors_bytes(params.named(), {{"format", "eellm"}})));
  if (opt) {
    std::vector<std::pair<std::string, const Tensor*>> moments;
    for (auto& [n, t] : opt->m().named()) moments.emplace_back("m." + n, t);
    for (auto& [n, t] : opt->v().named()) moments.emplace_back("v." + n, t);
    EELLM_RETURN_IF_ERROR(write("optimizer.safetensors", safetensors_bytes(moments)));
  }
  json state{{"format", "eellm-checkpoint-1"},
             {"iteration", progress.iteration},
             {"adam_step", opt ? opt->step_count() : 0},
             {"data", {{"epoch", progress.data.epoch}, {"index", progress.data.index}}},
             {"seed", progress.seed},
             {"scenario_name", scenario.name},
             {"scenario_yaml", scenario_to_yaml(scenario)},
             {"model", fingerprint(cfg)},
             {"files", files}};
  EELLM_RETURN_IF_ERROR(write_file_atomic((tmp / "state.json").string(), state.dump(2)));
  return publish_checkpoint(dir, tmp.string(), name, keep);
}

Status publish_checkpoint(const std::string& dir, const std::string& tmp, const std::string& name, int keep) {
  const fs::path final_dir = fs::path(dir) / name;
  EELLM_RETURN_IF_ERROR(fsync_dir(tmp));
  std::error_code ec;
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) return Status::io_error("cannot rename " + tmp + " to " + final_dir.string() + ": " + ec.message());
  EELLM_RETURN_IF_ERROR(fsync_dir(dir));
  EELLM_RETURN_IF_ERROR(write_file_atomic((fs::path(dir) / "latest").string(), name + "\n"));
  // Prune: keep the newest `keep` iter_* directories.
  std::vector<std::string> olds;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory() && e.path().filename().string().starts_with("iter_")) olds.push_back(e.path().string());
  std::sort(olds.begin(), olds.end());
  for (size_t i = 0; i + static_cast<size_t>(std::max(1, keep)) < olds.size(); ++i) fs::remove_all(olds[i], ec);
  return Status::ok();
}

}  // namespace eellm::exec
