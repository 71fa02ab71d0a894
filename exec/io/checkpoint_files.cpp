// What single-process and distributed checkpoints share when they are read (checkpoint_files.h).
#include "exec/io/checkpoint_files.h"

#include <filesystem>
#include <limits>

#include "exec/io/json_check.h"
#include "exec/io/safetensors.h"

namespace eellm::exec {
namespace fs = std::filesystem;
using nlohmann::json;

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

}  // namespace eellm::exec
