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

Status fill(const SafetensorsFile& f, const std::string& prefix, GptParams& p, const std::string& source) {
  for (auto& [name, t] : p.named()) {
    auto it = f.tensors.find(prefix + name);
    if (it == f.tensors.end()) return Status::failed_precondition(source + " has no tensor " + prefix + name);
    if (it->second.shape != t->shape)
      return Status::failed_precondition(source + ": tensor " + prefix + name + " has shape " +
                                         shape_string(it->second.shape) + ", the model needs " +
                                         shape_string(t->shape));
    t->data = it->second.data;
  }
  return Status::ok();
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
  if (fs::exists(fs::path(dir) / "state.json", ec) || fs::exists(fs::path(dir) / "manifest.json", ec)) return dir;
  const fs::path latest = fs::path(dir) / "latest";
  if (!fs::exists(latest, ec))
    return Status::not_found("checkpoint directory " + dir +
                             " has neither a `latest` file nor a state.json / manifest.json");
  EELLM_ASSIGN_OR_RETURN(std::string name, read_file(latest.string()));
  while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
  const fs::path sub = fs::path(dir) / name;
  if (name.empty() || !(fs::exists(sub / "state.json", ec) || fs::exists(sub / "manifest.json", ec)))
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

namespace {
StatusOr<json> read_state(const std::string& sub) {
  const std::string path = (fs::path(sub) / "state.json").string();
  EELLM_ASSIGN_OR_RETURN(std::string text, read_file(path));
  json state = json::parse(text, nullptr, false);
  if (state.is_discarded() || !state.is_object() || state.value("format", "") != "eellm-checkpoint-1")
    return Status::corruption(path + " is not an eellm checkpoint state (bad JSON or format)");
  return state;
}

StatusOr<std::string> read_verified(const std::string& sub, const json& state, const std::string& file) {
  const std::string path = (fs::path(sub) / file).string();
  if (!state["files"].contains(file)) return Status::corruption(sub + "/state.json does not list " + file);
  EELLM_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  const json& f = state["files"][file];
  if (bytes.size() != f["bytes"].get<size_t>())
    return Status::corruption(path + " has " + std::to_string(bytes.size()) + " bytes, state.json records " +
                              std::to_string(f["bytes"].get<size_t>()));
  if (fnv1a64_hex(bytes) != f["fnv1a64"].get<std::string>())
    return Status::corruption(path + " checksum " + fnv1a64_hex(bytes) + " does not match state.json (" +
                              f["fnv1a64"].get<std::string>() + ")");
  return bytes;
}
}  // namespace

Status load_single_process_checkpoint(const std::string& dir, const GptConfig& cfg, GptParams& params, AdamW* opt,
                                      TrainProgress* progress) {
  EELLM_ASSIGN_OR_RETURN(std::string sub, resolve_checkpoint_dir(dir));
  EELLM_ASSIGN_OR_RETURN(json state, read_state(sub));
  const json want = fingerprint(cfg), have = state["model"];
  std::string diffs;
  for (auto it = want.begin(); it != want.end(); ++it) {
    if (!have.contains(it.key()) || have[it.key()] != it.value())
      diffs += (diffs.empty() ? "" : "; ") + it.key() + " is " +
               (have.contains(it.key()) ? have[it.key()].dump() : "missing") + " there but " + it.value().dump() +
               " here";
  }
  if (!diffs.empty())
    return Status::failed_precondition("checkpoint " + sub + " was written for a different model (scenario '" +
                                       state.value("scenario_name", "?") + "'): " + diffs);
  EELLM_ASSIGN_OR_RETURN(std::string model_bytes, read_verified(sub, state, "model.safetensors"));
  EELLM_ASSIGN_OR_RETURN(SafetensorsFile mf, parse_safetensors(model_bytes, sub + "/model.safetensors"));
  EELLM_RETURN_IF_ERROR(fill(mf, "", params, sub + "/model.safetensors"));
  if (opt) {
    EELLM_ASSIGN_OR_RETURN(std::string opt_bytes, read_verified(sub, state, "optimizer.safetensors"));
    EELLM_ASSIGN_OR_RETURN(SafetensorsFile of, parse_safetensors(opt_bytes, sub + "/optimizer.safetensors"));
    opt->init(cfg);
    EELLM_RETURN_IF_ERROR(fill(of, "m.", opt->m(), sub + "/optimizer.safetensors"));
    EELLM_RETURN_IF_ERROR(fill(of, "v.", opt->v(), sub + "/optimizer.safetensors"));
    opt->set_step_count(state["adam_step"].get<int>());
  }
  if (progress) {
    progress->iteration = state["iteration"].get<int>();
    progress->data.epoch = state["data"]["epoch"].get<uint64_t>();
    progress->data.index = state["data"]["index"].get<uint64_t>();
    progress->seed = state["seed"].get<uint64_t>();
  }
  return Status::ok();
}

StatusOr<Scenario> checkpoint_scenario(const std::string& dir) {
  EELLM_ASSIGN_OR_RETURN(std::string sub, resolve_checkpoint_dir(dir));
  std::error_code ec;
  if (fs::exists(fs::path(sub) / "manifest.json", ec)) {
    const std::string path = (fs::path(sub) / "manifest.json").string();
    EELLM_ASSIGN_OR_RETURN(std::string text, read_file(path));
    const json m = json::parse(text, nullptr, false);
    if (m.is_discarded() || !m.is_object()) return Status::corruption(path + " is not valid JSON");
    EELLM_ASSIGN_OR_RETURN(Scenario s,
                           parse_scenario(m.value("scenario_yaml", ""), path + ":scenario_yaml", scenarios_dir()));
    // The weights are layout-independent: a single process (eval, generate) reads them whole.
    ParallelSpec one;
    one.schedule = ScheduleKind::kNoPipelining;
    one.world_size = 1;
    s.parallel = one;
    return s;
  }
  EELLM_ASSIGN_OR_RETURN(json state, read_state(sub));
  return parse_scenario(state.value("scenario_yaml", ""), sub + "/state.json:scenario_yaml", scenarios_dir());
}

}  // namespace eellm::exec
