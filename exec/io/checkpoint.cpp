#include "exec/io/checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "exec/io/checkpoint_files.h"
#include "exec/io/json_check.h"
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

StatusOr<nlohmann::json> read_checkpoint_json(const std::string& path, const std::string& format) {
  EELLM_ASSIGN_OR_RETURN(std::string text, read_file(path, /*follow_symlinks=*/false));
  auto j = parse_json_bounded(text, path, 16);
  if (!j.is_ok()) return Status::corruption(j.status().message() + " (a damaged or truncated checkpoint file)");
  if (!j->is_object()) return Status::corruption(path + " is " + j->type_name() + ", expected a JSON object");
  EELLM_ASSIGN_OR_RETURN(std::string have, json_string(*j, "format", path));
  if (have != format) return Status::corruption(path + ": format is \"" + have + "\", expected \"" + format + "\"");
  return std::move(j).value();
}

StatusOr<CheckpointProgress> read_checkpoint_progress(const json& j, const std::string& source) {
  constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
  CheckpointProgress p;
  EELLM_ASSIGN_OR_RETURN(int64_t it, json_int(j, "iteration", 0, kMaxInt, source));
  p.progress.iteration = static_cast<int>(it);
  EELLM_ASSIGN_OR_RETURN(const json* data, json_object(j, "data", source));
  EELLM_ASSIGN_OR_RETURN(p.progress.data.epoch, json_uint(*data, "epoch", source + ": data"));
  EELLM_ASSIGN_OR_RETURN(p.progress.data.index, json_uint(*data, "index", source + ": data"));
  EELLM_ASSIGN_OR_RETURN(p.progress.seed, json_uint(j, "seed", source));
  p.adam_step = p.progress.iteration;
  if (j.contains("adam_step")) {
    EELLM_ASSIGN_OR_RETURN(int64_t step, json_int(j, "adam_step", 0, kMaxInt, source));
    p.adam_step = static_cast<int>(step);
  }
  return p;
}

Status check_checkpoint_files(const json& files, const std::string& source) {
  if (!files.is_object())
    return Status::corruption(source + ": files is " + files.type_name() + ", expected an object");
  for (auto it = files.begin(); it != files.end(); ++it) {
    const std::string& name = it.key();
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
      return Status::corruption(source + ": files lists '" + name + "', which is not a plain file name");
    const std::string where = source + ": files." + name;
    EELLM_RETURN_IF_ERROR(json_uint(*it, "bytes", where).status());
    EELLM_ASSIGN_OR_RETURN(std::string sum, json_string(*it, "fnv1a64", where));
    if (sum.size() != 16 || sum.find_first_not_of("0123456789abcdef") != std::string::npos)
      return Status::corruption(where + ".fnv1a64 is \"" + sum + "\", expected 16 lowercase hex digits");
  }
  return Status::ok();
}

StatusOr<std::string> read_listed_file(const std::string& sub, const json& files, const std::string& file,
                                       const std::string& source) {
  const std::string path = (fs::path(sub) / file).string();
  if (!files.contains(file)) return Status::corruption(source + ": files does not list " + file);
  auto read = read_file(path, /*follow_symlinks=*/false);
  if (!read.is_ok() && read.status().code() == StatusCode::kNotFound)
    return Status::not_found("checkpoint file " + path + " is missing (" + source + " lists it)");
  if (!read.is_ok()) return read.status();
  const std::string& bytes = *read;
  const json& f = files[file];
  if (bytes.size() != f["bytes"].get<uint64_t>())
    return Status::corruption(path + " has " + std::to_string(bytes.size()) + " bytes, " + source + " records " +
                              f["bytes"].dump());
  if (fnv1a64_hex(bytes) != f["fnv1a64"].get<std::string>())
    return Status::corruption(path + " checksum " + fnv1a64_hex(bytes) + " does not match " + source + " (" +
                              f["fnv1a64"].get<std::string>() + ")");
  return std::move(read).value();
}

StatusOr<Scenario> checkpoint_scenario(const std::string& dir) {
  EELLM_ASSIGN_OR_RETURN(std::string sub, resolve_checkpoint_dir(dir));
  const bool dist = regular_file_exists(fs::path(sub) / "manifest.json");
  const std::string path = (fs::path(sub) / (dist ? "manifest.json" : "state.json")).string();
  EELLM_ASSIGN_OR_RETURN(json j, read_checkpoint_json(path, dist ? "eellm-dist-checkpoint-1" : "eellm-checkpoint-1"));
  EELLM_ASSIGN_OR_RETURN(std::string yaml, json_string(j, "scenario_yaml", path));
  StatusOr<Scenario> s = Status::internal("unset");
  try {
    s = parse_scenario(yaml, path + ":scenario_yaml", scenarios_dir());
  } catch (const std::exception& e) {
    return Status::corruption(path + ": scenario_yaml cannot be read (" + e.what() + ")");
  }
  if (!s.is_ok() || !dist) return s;
  // The weights are layout-independent: a single process (eval, generate) reads them whole.
  ParallelSpec one;
  one.schedule = ScheduleKind::kNoPipelining;
  one.world_size = 1;
  s->parallel = one;
  return s;
}

}  // namespace eellm::exec
