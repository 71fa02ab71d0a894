// Distributed checkpoints: collective atomic save, layout-independent load (see dist_checkpoint.h).
#include "exec/io/dist_checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "exec/io/checkpoint_files.h"
#include "exec/io/json_check.h"
#include "exec/io/safetensors.h"
#include "model/scenario_io.h"

namespace eellm::exec {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int kTagLen = 31000, kTagData = 31001;
constexpr const char* kFormat = "eellm-dist-checkpoint-1";

std::string str(int64_t v) {
  return std::to_string(v);
}

std::string rank_file(int r) {
  char b[40];
  std::snprintf(b, sizeof b, "rank_%05d.safetensors", r);
  return b;
}

json spec_json(const ShardSpec& s) {
  json r = json::array();
  for (auto [a, b] : s.ranges) r.push_back({a, b});
  return r;
}

Status agree(Communicator& w, const Status& st, double timeout, const std::string& phase) {
  return agree_on_status(w, st.is_ok() ? st : st.with_context("checkpoint " + phase), timeout);
}

// Rank 0 receives every rank's string (others get an empty vector).
StatusOr<std::vector<std::string>> gather_strings(Communicator& w, const std::string& mine, double timeout) {
  std::vector<std::string> out;
  if (w.rank() != 0) {
    const uint64_t n = mine.size();
    EELLM_RETURN_IF_ERROR(w.send(&n, sizeof n, 0, kTagLen));
    EELLM_RETURN_IF_ERROR(w.send(mine.data(), mine.size(), 0, kTagData));
    EELLM_RETURN_IF_ERROR(w.wait_sends(timeout));
    return out;
  }
  out.push_back(mine);
  for (int r = 1; r < w.size(); ++r) {
    uint64_t n = 0;
    EELLM_RETURN_IF_ERROR(w.recv(&n, sizeof n, r, kTagLen, timeout));
    std::string s(n, '\0');
    EELLM_RETURN_IF_ERROR(w.recv(s.data(), n, r, kTagData, timeout));
    out.push_back(std::move(s));
  }
  return out;
}

Status broadcast_string(Communicator& w, std::string& s, double timeout) {
  uint64_t n = s.size();
  EELLM_RETURN_IF_ERROR(w.broadcast(&n, sizeof n, 0, timeout));
  s.resize(n);
  return w.broadcast(s.data(), n, 0, timeout);
}

// Shard file keys: "param/NAME/DIM[RANGES]", "m/NAME/DIM[RANGES]@BEGIN" (and "v/...").
std::string spec_key(const ShardSpec& s) {
  return json(s.dim).dump() + spec_json(s).dump();
}
std::string moment_key(const char* mv, const std::string& name, const std::string& spec, size_t begin) {
  return std::string(mv) + "/" + name + "/" + spec + "@" + std::to_string(begin);
}

}  // namespace

Status agree_on_status(Communicator& world, const Status& st, double timeout_s) {
  std::vector<double> bad(static_cast<size_t>(world.size()), 0.0);
  bad[static_cast<size_t>(world.rank())] = st.is_ok() ? 0.0 : 1.0;
  EELLM_RETURN_IF_ERROR(world.all_reduce_sum(bad.data(), bad.size(), timeout_s));
  const auto first = std::find_if(bad.begin(), bad.end(), [](double v) { return v > 0; });
  if (first == bad.end()) return Status::ok();
  const int root = static_cast<int>(first - bad.begin());
  std::string msg = world.rank() == root ? st.message() : std::string();
  int32_t code = static_cast<int32_t>(st.code());
  uint64_t n = msg.size();
  EELLM_RETURN_IF_ERROR(world.broadcast(&code, sizeof code, root, timeout_s));
  EELLM_RETURN_IF_ERROR(world.broadcast(&n, sizeof n, root, timeout_s));
  msg.resize(n);
  EELLM_RETURN_IF_ERROR(world.broadcast(msg.data(), n, root, timeout_s));
  msg = "rank " + std::to_string(root) + ": " + msg;
  switch (static_cast<StatusCode>(code)) {
    case StatusCode::kInvalidArgument:
      return Status::invalid_argument(msg);
    case StatusCode::kNotFound:
      return Status::not_found(msg);
    case StatusCode::kCorruption:
      return Status::corruption(msg);
    case StatusCode::kIOError:
      return Status::io_error(msg);
    case StatusCode::kFailedPrecondition:
      return Status::failed_precondition(msg);
    default:
      return Status::internal(msg);
  }
}

StatusOr<std::vector<int64_t>> full_shape_of(const GptConfig& full_cfg, const std::string& name,
                                             const std::vector<int64_t>& local_shape, int tp) {
  std::vector<int64_t> shape = local_shape;
  for (int r = 0; r < tp; ++r) {
    EELLM_ASSIGN_OR_RETURN(ShardSpec s, shard_spec(full_cfg, name, tp, r));
    if (s.replicated()) return shape;
    if (r == 0) shape[static_cast<size_t>(s.dim)] = 0;
    for (auto [a, b] : s.ranges) shape[static_cast<size_t>(s.dim)] = std::max(shape[static_cast<size_t>(s.dim)], b);
  }
  return shape;
}

std::string describe_checkpoint_holdings(const std::vector<CkptParam>& params,
                                         const std::vector<CkptMoments>& moments) {
  json desc{{"params", json::array()}, {"moments", json::array()}};
  for (const CkptParam& p : params)
    desc["params"].push_back({{"name", p.name},
                              {"shape", p.full_shape},
                              {"dim", p.spec.dim},
                              {"ranges", spec_json(p.spec)},
                              {"local_shape", p.local->shape}});
  for (const CkptMoments& m : moments)
    desc["moments"].push_back({{"name", m.name},
                               {"shape", m.full_shape},
                               {"dim", m.spec.dim},
                               {"ranges", spec_json(m.spec)},
                               {"local_shape", m.local_shape},
                               {"begin", m.begin},
                               {"end", m.end}});
  return desc.dump();
}

namespace {

int64_t product(const json& shape) {
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  return n;
}

// Covered elements per tensor (params) and per tensor and TP shard (moments: covered, shard size).
struct Coverage {
  std::map<std::string, int64_t> params;
  std::map<std::string, std::map<std::string, std::pair<int64_t, int64_t>>> moments;
};

// Assigns rank r's param pieces nobody before it holds (into `out` and the manifest `tensors`).
void assign_params(const json& d, int r, std::set<std::string>& taken, json& tensors, Coverage& cover,
                   std::vector<size_t>& out) {
  for (size_t i = 0; i < d["params"].size(); ++i) {
    const json& p = d["params"][i];
    // (p["dim"].dump() + p["ranges"].dump() is spec_key of the holder's ShardSpec.)
    const std::string key = "param/" + p["name"].get<std::string>() + "/" + p["dim"].dump() + p["ranges"].dump();
    if (!taken.insert(key).second) continue;
    out.push_back(i);
    json& t = tensors[p["name"].get<std::string>()];
    t["shape"] = p["shape"];
    t["params"].push_back({{"file", rank_file(r)},
                           {"key", key},
                           {"dim", p["dim"]},
                           {"ranges", p["ranges"]},
                           {"local_shape", p["local_shape"]}});
    cover.params[p["name"].get<std::string>()] += product(p["local_shape"]);
  }
}

// Assigns rank r's non-empty moment slices nobody before it holds.
void assign_moments(const json& d, int r, std::set<std::string>& taken, json& tensors, Coverage& cover,
                    std::vector<size_t>& out) {
  for (size_t i = 0; i < d["moments"].size(); ++i) {
    const json& m = d["moments"][i];
    if (m["begin"] == m["end"]) continue;
    const std::string spec = m["dim"].dump() + m["ranges"].dump();
    const std::string nm = m["name"].get<std::string>();
    const size_t begin = m["begin"].get<size_t>();
    if (!taken.insert("moments/" + nm + "/" + spec + "@" + m["begin"].dump() + "-" + m["end"].dump()).second) continue;
    out.push_back(i);
    json& t = tensors[nm];
    t["shape"] = m["shape"];
    t["moments"].push_back({{"file", rank_file(r)},
                            {"m", moment_key("m", nm, spec, begin)},
                            {"v", moment_key("v", nm, spec, begin)},
                            {"dim", m["dim"]},
                            {"ranges", m["ranges"]},
                            {"local_shape", m["local_shape"]},
                            {"begin", m["begin"]},
                            {"end", m["end"]}});
    auto& c = cover.moments[nm][spec];
    c.first += m["end"].get<int64_t>() - m["begin"].get<int64_t>();
    c.second = product(m["local_shape"]);
  }
}

// Every tensor tiled exactly once (params), every TP shard's moments exactly once.
Status check_coverage(const json& tensors, const Coverage& cover) {
  for (auto& [n, t] : tensors.items()) {
    const int64_t full = product(t["shape"]);
    const auto it = cover.params.find(n);
    const int64_t have = it == cover.params.end() ? 0 : it->second;
    if (have != full)
      return Status::internal("checkpoint: the ranks' pieces of tensor " + n + " cover " + str(have) + " of " +
                              str(full) + " elements");
    const auto mt = cover.moments.find(n);
    if (mt == cover.moments.end()) continue;
    for (auto& [spec, c] : mt->second)
      if (c.first != c.second)
        return Status::internal("checkpoint: the ranks' AdamW moment slices of tensor " + n + " (shard " + spec +
                                ") cover " + str(c.first) + " of " + str(c.second) + " elements");
  }
  return Status::ok();
}

json plan_json(const PieceAssignment& a) {
  json plan = json::array();
  for (size_t r = 0; r < a.params.size(); ++r) plan.push_back({{"params", a.params[r]}, {"moments", a.moments[r]}});
  return plan;
}

}  // namespace

StatusOr<PieceAssignment> assign_checkpoint_pieces(const std::vector<std::string>& descriptions) {
  PieceAssignment a;
  a.params.resize(descriptions.size());
  a.moments.resize(descriptions.size());
  json tensors = json::object();
  std::set<std::string> taken;
  Coverage cover;
  for (size_t r = 0; r < descriptions.size(); ++r) {
    const json d = json::parse(descriptions[r], nullptr, false);
    if (d.is_discarded() || !d.contains("params") || !d.contains("moments"))
      return Status::internal("checkpoint: rank " + str(static_cast<int64_t>(r)) + "'s description is not valid");
    assign_params(d, static_cast<int>(r), taken, tensors, cover, a.params[r]);
    assign_moments(d, static_cast<int>(r), taken, tensors, cover, a.moments[r]);
  }
  EELLM_RETURN_IF_ERROR(check_coverage(tensors, cover));
  a.tensors_json = tensors.dump();
  return a;
}

namespace {

// Phase 1: rank 0 (re)creates the temporary directory.
Status prepare_directory(const std::string& dir, const fs::path& tmp) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec) fs::remove_all(tmp, ec);
  if (!ec) fs::create_directories(tmp, ec);
  if (ec) return Status::io_error("cannot create checkpoint directory " + tmp.string() + ": " + ec.message());
  return Status::ok();
}

// Phase 3: this rank's assigned pieces into tmp/rank_NNNNN.safetensors; `file_info` describes the file
// (empty when the rank writes nothing).
Status write_rank_file(const fs::path& tmp, int me, const json& mine, const std::vector<CkptParam>& params,
                       const std::vector<CkptMoments>& moments, std::string& file_info) {
  if (mine["params"].empty() && mine["moments"].empty()) return Status::ok();
  std::vector<Tensor> store;
  store.reserve(2 * mine["moments"].size());
  std::vector<std::pair<std::string, const Tensor*>> items;
  for (size_t i : mine["params"]) {
    const CkptParam& p = params[i];
    items.emplace_back("param/" + p.name + "/" + spec_key(p.spec), p.local);
  }
  for (size_t i : mine["moments"]) {
    const CkptMoments& m = moments[i];
    const std::string spec = spec_key(m.spec);
    for (int k = 0; k < 2; ++k) {
      Tensor& t = store.emplace_back();
      t.shape = {static_cast<int64_t>(m.end - m.begin)};
      const float* src = k == 0 ? m.m : m.v;
      t.data.assign(src, src + (m.end - m.begin));
      items.emplace_back(moment_key(k == 0 ? "m" : "v", m.name, spec, m.begin), &t);
    }
  }
  const std::string bytes = safetensors_bytes(items, {{"format", "eellm-dist-shard"}});
  file_info = json{{"file", rank_file(me)}, {"bytes", bytes.size()}, {"fnv1a64", fnv1a64_hex(bytes)}}.dump();
  return write_file_atomic((tmp / rank_file(me)).string(), bytes);
}

// What phase 4 writes besides the files: the manifest's contents.
struct ManifestInput {
  const Scenario* scenario;
  const GptConfig* full_cfg;
  const CkptLayout* layout;
  const TrainProgress* progress;
  int world = 1;
};

json manifest_json(const ManifestInput& in, const std::vector<std::string>& infos, const std::string& tensors) {
  json files = json::object();
  for (const std::string& s : infos)
    if (!s.empty()) {
      const json f = json::parse(s);
      files[f["file"].get<std::string>()] = {{"bytes", f["bytes"]}, {"fnv1a64", f["fnv1a64"]}};
    }
  const CkptLayout& l = *in.layout;
  return json{{"format", kFormat},
              {"iteration", in.progress->iteration},
              {"data", {{"epoch", in.progress->data.epoch}, {"index", in.progress->data.index}}},
              {"seed", in.progress->seed},
              {"scenario_name", in.scenario->name},
              {"scenario_yaml", scenario_to_yaml(*in.scenario)},
              {"model", json::parse(model_fingerprint(*in.full_cfg))},
              {"layout",
               {{"tp", l.tp},
                {"pp", l.pp},
                {"dp", l.dp},
                {"vp", l.vp},
                {"world", in.world},
                {"distributed_optimizer", l.distributed_optimizer}}},
              {"files", files},
              {"tensors", json::parse(tensors)}};
}

}  // namespace

Status save_distributed_checkpoint(const std::string& dir, Communicator& world, const Scenario& scenario,
                                   const GptConfig& full_cfg, const CkptLayout& layout,
                                   const std::vector<CkptParam>& params, const std::vector<CkptMoments>& moments,
                                   const TrainProgress& progress, double timeout_s, int keep) {
  const int me = world.rank();
  const std::string name = checkpoint_iter_name(progress.iteration);
  const fs::path tmp = fs::path(dir) / (".tmp_" + name);
  EELLM_RETURN_IF_ERROR(agree(world, me == 0 ? prepare_directory(dir, tmp) : Status::ok(), timeout_s, "directory"));

  // Phase 2: describe what this rank holds; rank 0 assigns each piece to its first holder.
  EELLM_ASSIGN_OR_RETURN(std::vector<std::string> all,
                         gather_strings(world, describe_checkpoint_holdings(params, moments), timeout_s));
  std::string plan_text, tensors;
  Status st;
  if (me == 0) {
    auto a = assign_checkpoint_pieces(all);
    st = a.status();
    if (a.is_ok()) plan_text = plan_json(*a).dump(), tensors = a->tensors_json;
  }
  EELLM_RETURN_IF_ERROR(agree(world, st, timeout_s, "plan"));
  EELLM_RETURN_IF_ERROR(broadcast_string(world, plan_text, timeout_s));
  const json plan = json::parse(plan_text);

  // Phase 3: the assigned pieces into rank_NNNNN.safetensors.
  std::string file_info;
  st = write_rank_file(tmp, me, plan[static_cast<size_t>(me)], params, moments, file_info);
  EELLM_RETURN_IF_ERROR(agree(world, st, timeout_s, "shard write"));
  EELLM_ASSIGN_OR_RETURN(std::vector<std::string> infos, gather_strings(world, file_info, timeout_s));

  // Phase 4: rank 0 publishes.
  if (me == 0) {
    const ManifestInput in{&scenario, &full_cfg, &layout, &progress, world.size()};
    st = write_file_atomic((tmp / "manifest.json").string(), manifest_json(in, infos, tensors).dump(1));
    if (st.is_ok()) st = publish_checkpoint(dir, tmp.string(), name, keep);
  }
  return agree(world, st, timeout_s, "publish");
}

namespace {

// One stored piece of a tensor, checked against the tensor's shape: a param piece (a TP shard under
// `key`) or a moment piece (elements [begin, end) of a flattened TP shard, m and v under their keys).
struct Piece {
  std::string file, key, m, v;
  ShardSpec spec;
  std::vector<int64_t> local_shape;
  size_t begin = 0, end = 0;
};
struct TensorEntry {
  std::vector<int64_t> shape;
  std::vector<Piece> params, moments;
};

// A piece's spec (dim, ranges within the tensor, ascending) and local shape (that of the spec).
Status read_spec(const json& p, const std::vector<int64_t>& shape, const std::string& where, Piece& out) {
  EELLM_ASSIGN_OR_RETURN(int64_t dim, json_int(p, "dim", -1, static_cast<int64_t>(shape.size()) - 1, where));
  out.spec.dim = static_cast<int>(dim);
  EELLM_ASSIGN_OR_RETURN(const json* ranges, json_array(p, "ranges", where));
  if (dim < 0 && !ranges->empty()) return Status::corruption(where + ".ranges must be empty for dim -1 (whole tensor)");
  if (dim >= 0 && ranges->empty()) return Status::corruption(where + ".ranges is empty for dim " + str(dim));
  int64_t last = 0;
  for (const json& r : *ranges) {
    const int64_t extent = shape[static_cast<size_t>(std::max<int64_t>(dim, 0))];
    const bool pair = r.is_array() && r.size() == 2 && r[0].is_number_integer() && r[1].is_number_integer();
    if (!pair || r[0].get<int64_t>() < last || r[1].get<int64_t>() <= r[0].get<int64_t>() ||
        r[1].get<int64_t>() > extent || (r[0].is_number_unsigned() && r[0].get<uint64_t>() > uint64_t(extent)) ||
        (r[1].is_number_unsigned() && r[1].get<uint64_t>() > uint64_t(extent)))
      return Status::corruption(where + ".ranges has " + r.dump() + ", expected ascending [begin, end) within [0, " +
                                str(extent) + "] of dim " + str(dim));
    last = r[1].get<int64_t>();
    out.spec.ranges.emplace_back(r[0].get<int64_t>(), last);
  }
  if (!p.contains("local_shape")) return Status::corruption(where + ".local_shape is missing");
  EELLM_ASSIGN_OR_RETURN(out.local_shape, json_shape(p["local_shape"], where + ".local_shape"));
  const std::vector<int64_t> want = out.spec.replicated() ? shape : shard_shape(shape, out.spec);
  if (out.local_shape != want)
    return Status::corruption(where + ".local_shape is " + shape_string(out.local_shape) + ", its ranges give " +
                              shape_string(want));
  return Status::ok();
}

// Pieces (specs) that tile the tensor exactly once: one whole piece, or pieces split along one dim
// whose ranges cover [0, extent) without overlap.
Status check_tiling(const std::vector<const ShardSpec*>& specs, const std::vector<int64_t>& shape,
                    const std::string& where) {
  if (specs.empty()) return Status::corruption(where + " has no pieces");
  if (specs.size() == 1 && specs[0]->replicated()) return Status::ok();
  std::vector<std::pair<int64_t, int64_t>> all;
  for (const ShardSpec* s : specs) {
    if (s->replicated() || s->dim != specs[0]->dim)
      return Status::corruption(where + ": pieces mix a whole tensor or different split dims");
    all.insert(all.end(), s->ranges.begin(), s->ranges.end());
  }
  std::sort(all.begin(), all.end());
  int64_t at = 0;
  for (auto [b, e] : all) {
    if (b != at)
      return Status::corruption(where + ": pieces " + (b < at ? "overlap" : "leave a gap") + " at " + str(b));
    at = e;
  }
  if (at != shape[static_cast<size_t>(specs[0]->dim)])
    return Status::corruption(where + ": pieces cover " + str(at) + " of " +
                              str(shape[static_cast<size_t>(specs[0]->dim)]) + " along dim " + str(specs[0]->dim));
  return Status::ok();
}

// Moment pieces: per TP shard (spec), slices [begin, end) tiling its elements; the shards tiling the tensor.
Status check_moment_tiling(const std::vector<Piece>& moments, const std::vector<int64_t>& shape,
                           const std::string& where) {
  if (moments.empty()) return Status::ok();  // saved without optimizer state
  std::map<std::string, std::vector<const Piece*>> by_spec;
  for (const Piece& p : moments) by_spec[spec_json(p.spec).dump() + str(p.spec.dim)].push_back(&p);
  std::vector<const ShardSpec*> specs;
  for (auto& [k, list] : by_spec) {
    specs.push_back(&list.front()->spec);
    std::vector<std::pair<size_t, size_t>> slices;
    for (const Piece* p : list) slices.emplace_back(p->begin, p->end);
    std::sort(slices.begin(), slices.end());
    size_t at = 0;
    for (auto [b, e] : slices) {
      if (b != at) return Status::corruption(where + ": AdamW moment slices overlap or leave a gap at " + str(b));
      at = e;
    }
    if (at != static_cast<size_t>(shape_elements(list.front()->local_shape)))
      return Status::corruption(where + ": AdamW moment slices cover " + str(at) + " of " +
                                str(shape_elements(list.front()->local_shape)) + " elements of a shard");
  }
  return check_tiling(specs, shape, where + " (moments)");
}

// One manifest piece (a param piece or, when `moment`, a moment piece).
StatusOr<Piece> read_piece(const json& p, const TensorEntry& t, const json& files, bool moment,
                           const std::string& where) {
  Piece out;
  EELLM_ASSIGN_OR_RETURN(out.file, json_string(p, "file", where));
  if (!files.contains(out.file)) return Status::corruption(where + ".file " + out.file + " is not listed in files");
  EELLM_RETURN_IF_ERROR(read_spec(p, t.shape, where, out));
  if (!moment) {
    EELLM_ASSIGN_OR_RETURN(out.key, json_string(p, "key", where));
    return out;
  }
  EELLM_ASSIGN_OR_RETURN(out.m, json_string(p, "m", where));
  EELLM_ASSIGN_OR_RETURN(out.v, json_string(p, "v", where));
  const int64_t n = shape_elements(out.local_shape);
  EELLM_ASSIGN_OR_RETURN(int64_t b, json_int(p, "begin", 0, n, where));
  EELLM_ASSIGN_OR_RETURN(int64_t e, json_int(p, "end", b, n, where));
  out.begin = static_cast<size_t>(b), out.end = static_cast<size_t>(e);
  return out;
}

// The manifest's `tensors` section, every piece checked and each tensor tiled exactly once.
StatusOr<std::map<std::string, TensorEntry>> read_tensors(const json& m, const std::string& source) {
  EELLM_ASSIGN_OR_RETURN(const json* tensors, json_object(m, "tensors", source));
  const json& files = m["files"];
  std::map<std::string, TensorEntry> out;
  for (auto it = tensors->begin(); it != tensors->end(); ++it) {
    const std::string where = source + ": tensors." + it.key();
    TensorEntry t;
    if (!it->is_object() || !it->contains("shape")) return Status::corruption(where + " has no shape");
    EELLM_ASSIGN_OR_RETURN(t.shape, json_shape((*it)["shape"], where + ".shape"));
    EELLM_ASSIGN_OR_RETURN(const json* params, json_array(*it, "params", where));
    for (size_t i = 0; i < params->size(); ++i) {
      EELLM_ASSIGN_OR_RETURN(Piece p, read_piece((*params)[i], t, files, false, where + ".params[" + str(i) + "]"));
      t.params.push_back(std::move(p));
    }
    const json moments = it->value("moments", json::array());
    if (!moments.is_array()) return Status::corruption(where + ".moments is not an array");
    for (size_t i = 0; i < moments.size(); ++i) {
      EELLM_ASSIGN_OR_RETURN(Piece p, read_piece(moments[i], t, files, true, where + ".moments[" + str(i) + "]"));
      t.moments.push_back(std::move(p));
    }
    std::vector<const ShardSpec*> specs;
    for (const Piece& p : t.params) specs.push_back(&p.spec);
    EELLM_RETURN_IF_ERROR(check_tiling(specs, t.shape, where + ".params"));
    EELLM_RETURN_IF_ERROR(check_moment_tiling(t.moments, t.shape, where));
    out.emplace(it.key(), std::move(t));
  }
  return out;
}

StatusOr<CkptLayout> read_layout(const json& m, const std::string& source) {
  EELLM_ASSIGN_OR_RETURN(const json* l, json_object(m, "layout", source));
  const std::string where = source + ": layout";
  CkptLayout out;
  int* fields[] = {&out.tp, &out.pp, &out.dp, &out.vp};
  const char* names[] = {"tp", "pp", "dp", "vp"};
  for (int i = 0; i < 4; ++i) {
    EELLM_ASSIGN_OR_RETURN(int64_t v, json_int(*l, names[i], 1, 1 << 20, where));
    *fields[i] = static_cast<int>(v);
  }
  EELLM_ASSIGN_OR_RETURN(out.distributed_optimizer, json_bool(*l, "distributed_optimizer", where));
  return out;
}

// A checkpoint opened for reading: its manifest (a single-process checkpoint's state.json is turned
// into one), checked whole at open; the data files, each verified once on first use, and at the end
// every listed file the caller did not need (verify_rest).
class Reader {
 public:
  static StatusOr<Reader> open(const std::string& dir, const GptConfig* cfg, const CheckpointReadOptions& opts) {
    Reader r;
    r.opts_ = opts;
    EELLM_ASSIGN_OR_RETURN(r.sub_, resolve_checkpoint_dir(dir));
    std::error_code ec;
    const fs::path mpath = fs::path(r.sub_) / "manifest.json";
    if (fs::symlink_status(mpath, ec).type() != fs::file_type::not_found) {
      r.source_ = mpath.string();
      EELLM_ASSIGN_OR_RETURN(r.m_, read_checkpoint_json(r.source_, kFormat));
      EELLM_RETURN_IF_ERROR(check_checkpoint_files(r.m_.contains("files") ? r.m_["files"] : json(), r.source_));
      EELLM_ASSIGN_OR_RETURN(r.layout_, read_layout(r.m_, r.source_));
    } else {
      EELLM_RETURN_IF_ERROR(r.adapt_single_process());
    }
    EELLM_ASSIGN_OR_RETURN(r.progress_, read_checkpoint_progress(r.m_, r.source_));
    EELLM_ASSIGN_OR_RETURN(const json* model, json_object(r.m_, "model", r.source_));
    if (cfg) EELLM_RETURN_IF_ERROR(check_model_fingerprint(model->dump(), *cfg, "checkpoint " + r.source_));
    EELLM_ASSIGN_OR_RETURN(r.tensors_, read_tensors(r.m_, r.source_));
    return r;
  }

  const CheckpointProgress& progress() const { return progress_; }
  const CkptLayout& layout() const { return layout_; }

  // Tensor `key` of `file`, of shape `shape` (with `flat`, of as many elements: moments are stored
  // 1-D by distributed saves and in the tensor's shape by single-process ones).
  StatusOr<const Tensor*> get(const std::string& file, const std::string& key, const std::string& tensor,
                              const std::vector<int64_t>& shape, bool flat = false) {
    EELLM_ASSIGN_OR_RETURN(const SafetensorsFile* f, load_file(file));
    auto t = f->tensors.find(key);
    if (t == f->tensors.end())
      return Status::corruption(file + " has no tensor `" + key + "` (" + source_ + " lists it for " + tensor + ")");
    if (flat ? static_cast<int64_t>(t->second.numel()) != shape_elements(shape) : t->second.shape != shape)
      return Status::corruption(file + ": tensor `" + key + "` has shape " + shape_string(t->second.shape) + ", " +
                                source_ + " records " + shape_string(shape));
    return &t->second;
  }

  // The data file, read, verified against the manifest's size and checksum and parsed once.
  StatusOr<const SafetensorsFile*> load_file(const std::string& file) {
    auto it = files_.find(file);
    if (it == files_.end()) {
      EELLM_ASSIGN_OR_RETURN(std::string bytes, read_listed_file(sub_, m_["files"], file, source_));
      EELLM_ASSIGN_OR_RETURN(SafetensorsFile sf,
                             parse_safetensors(bytes, (fs::path(sub_) / file).string(), opts_.allow_nonfinite));
      it = files_.emplace(file, std::move(sf)).first;
    }
    return &it->second;
  }

  // Every listed file not loaded yet: present, size, checksum, header and values (then dropped).
  Status verify_rest() {
    for (auto it = m_["files"].begin(); it != m_["files"].end(); ++it) {
      if (files_.count(it.key())) continue;
      EELLM_ASSIGN_OR_RETURN(std::string bytes, read_listed_file(sub_, m_["files"], it.key(), source_));
      EELLM_RETURN_IF_ERROR(check_safetensors(bytes, (fs::path(sub_) / it.key()).string(), opts_.allow_nonfinite));
    }
    return Status::ok();
  }

  // The manifest entry of tensor `name`, whose shape must be the model's `shape`.
  StatusOr<const TensorEntry*> entry(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end())
      return Status::failed_precondition(source_ + " has no tensor " + name + " (field `tensors`)");
    if (it->second.shape != shape)
      return Status::failed_precondition(source_ + ": tensor " + name + " has shape " + shape_string(it->second.shape) +
                                         ", the model needs " + shape_string(shape));
    return &it->second;
  }

  // Full tensor `name` (of the model's `shape`) from its param pieces.
  StatusOr<Tensor> full_param(const std::string& name, const std::vector<int64_t>& shape) {
    EELLM_ASSIGN_OR_RETURN(const TensorEntry* e, entry(name, shape));
    Tensor full(e->shape);
    for (const Piece& p : e->params) {
      EELLM_ASSIGN_OR_RETURN(const Tensor* t, get(p.file, p.key, name, p.local_shape));
      place(full, *t, p.spec);
    }
    return full;
  }

  // Full AdamW moments (m, v) of tensor `name`; false when the checkpoint has none.
  StatusOr<bool> full_moments(const std::string& name, const std::vector<int64_t>& shape, Tensor& m, Tensor& v) {
    EELLM_ASSIGN_OR_RETURN(const TensorEntry* e, entry(name, shape));
    if (e->moments.empty()) return false;
    m = Tensor(e->shape), v = Tensor(e->shape);
    std::map<std::string, std::vector<const Piece*>> by_spec;
    for (const Piece& p : e->moments) by_spec[spec_json(p.spec).dump() + str(p.spec.dim)].push_back(&p);
    for (auto& [spec_text, list] : by_spec) {
      Tensor lm(list.front()->local_shape), lv(lm.shape);
      for (const Piece* p : list) {
        const std::vector<int64_t> slice{static_cast<int64_t>(p->end - p->begin)};
        EELLM_ASSIGN_OR_RETURN(const Tensor* tm, get(p->file, p->m, name, slice, true));
        EELLM_ASSIGN_OR_RETURN(const Tensor* tv, get(p->file, p->v, name, slice, true));
        std::copy_n(tm->ptr(), p->end - p->begin, lm.ptr() + p->begin);
        std::copy_n(tv->ptr(), p->end - p->begin, lv.ptr() + p->begin);
      }
      place(m, lm, list.front()->spec);
      place(v, lv, list.front()->spec);
    }
    return true;
  }

 private:
  static void place(Tensor& full, const Tensor& piece, const ShardSpec& spec) {
    if (spec.replicated())
      full.data = piece.data;
    else
      insert_shard(full, piece, spec);
  }

  // A single-process checkpoint (checkpoint.h) as a one-file manifest.
  Status adapt_single_process() {
    source_ = (fs::path(sub_) / "state.json").string();
    EELLM_ASSIGN_OR_RETURN(const json st, read_checkpoint_json(source_, "eellm-checkpoint-1"));
    EELLM_ASSIGN_OR_RETURN(const json* files, json_object(st, "files", source_));
    EELLM_RETURN_IF_ERROR(check_checkpoint_files(*files, source_));
    m_ = st;
    m_["tensors"] = json::object();
    EELLM_ASSIGN_OR_RETURN(const SafetensorsFile* model, load_file("model.safetensors"));
    const bool has_opt = files->contains("optimizer.safetensors");
    for (const auto& [name, t] : model->tensors) {
      json& e = m_["tensors"][name];
      e["shape"] = t.shape;
      e["params"] = json::array({{{"file", "model.safetensors"},
                                  {"key", name},
                                  {"dim", -1},
                                  {"ranges", json::array()},
                                  {"local_shape", t.shape}}});
      if (has_opt)
        e["moments"] = json::array({{{"file", "optimizer.safetensors"},
                                     {"m", "m." + name},
                                     {"v", "v." + name},
                                     {"dim", -1},
                                     {"ranges", json::array()},
                                     {"local_shape", t.shape},
                                     {"begin", 0},
                                     {"end", t.numel()}}});
    }
    return Status::ok();
  }

  std::string sub_, source_;
  json m_;
  CheckpointReadOptions opts_;
  CheckpointProgress progress_;
  CkptLayout layout_;
  std::map<std::string, TensorEntry> tensors_;
  std::map<std::string, SafetensorsFile> files_;
};

// Runs `f` (a reader), turning any exception that escapes the checks into kCorruption naming `dir`.
template <typename F>
auto guarded(const std::string& dir, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::corruption("checkpoint " + dir + " is malformed: " + e.what());
  }
}

Status load_into(Reader& r, const std::vector<CkptParam>& params, const std::vector<CkptMoments>& moments) {
  for (const CkptParam& p : params) {
    EELLM_ASSIGN_OR_RETURN(Tensor full, r.full_param(p.name, p.full_shape));
    Tensor local = p.spec.replicated() ? std::move(full) : extract_shard(full, p.spec);
    if (local.shape != p.local->shape)
      return Status::failed_precondition("checkpoint tensor " + p.name + ": this rank's part has shape " +
                                         shape_string(local.shape) + ", the model needs " +
                                         shape_string(p.local->shape));
    p.local->data = local.data;
  }
  std::string last;
  Tensor fm, fv, lm, lv;
  for (const CkptMoments& m : moments) {
    if (m.name != last) {
      EELLM_ASSIGN_OR_RETURN(bool have, r.full_moments(m.name, m.full_shape, fm, fv));
      if (!have)
        return Status::failed_precondition("checkpoint has no AdamW moments for tensor " + m.name +
                                           " (saved without optimizer state)");
      last = m.name;
      lm = m.spec.replicated() ? fm : extract_shard(fm, m.spec);
      lv = m.spec.replicated() ? fv : extract_shard(fv, m.spec);
    }
    if (lm.numel() < m.end || m.end < m.begin)
      return Status::failed_precondition("checkpoint moments of " + m.name + ": slice [" + std::to_string(m.begin) +
                                         ", " + std::to_string(m.end) + ") is outside its " +
                                         std::to_string(lm.numel()) + " elements");
    std::copy(lm.data.begin() + static_cast<std::ptrdiff_t>(m.begin),
              lm.data.begin() + static_cast<std::ptrdiff_t>(m.end), m.m);
    std::copy(lv.data.begin() + static_cast<std::ptrdiff_t>(m.begin),
              lv.data.begin() + static_cast<std::ptrdiff_t>(m.end), m.v);
  }
  return r.verify_rest();
}

}  // namespace

Status load_distributed_checkpoint(const std::string& dir, const GptConfig& full_cfg,
                                   const std::vector<CkptParam>& params, const std::vector<CkptMoments>& moments,
                                   TrainProgress* progress, const CheckpointReadOptions& opts) {
  return guarded(dir, [&]() -> Status {
    EELLM_ASSIGN_OR_RETURN(Reader r, Reader::open(dir, &full_cfg, opts));
    EELLM_RETURN_IF_ERROR(load_into(r, params, moments));
    if (progress) *progress = r.progress().progress;
    return Status::ok();
  });
}

Status load_checkpoint(const std::string& dir, const GptConfig& cfg, GptParams& params, AdamW* opt,
                       TrainProgress* progress, const CheckpointReadOptions& opts) {
  return guarded(dir, [&]() -> Status {
    EELLM_ASSIGN_OR_RETURN(Reader r, Reader::open(dir, &cfg, opts));
    // The full model in one process: every tensor whole.
    std::vector<CkptParam> ps;
    std::vector<CkptMoments> ms;
    if (opt) opt->init(cfg);
    auto P = params.named();
    for (auto& [n, t] : P) ps.push_back({n, t->shape, ShardSpec{}, t});
    if (opt) {
      auto M = opt->m().named(), V = opt->v().named();
      for (size_t i = 0; i < P.size(); ++i)
        ms.push_back({P[i].first, P[i].second->shape, ShardSpec{}, P[i].second->shape, 0, P[i].second->numel(),
                      M[i].second->ptr(), V[i].second->ptr()});
    }
    EELLM_RETURN_IF_ERROR(load_into(r, ps, ms));
    if (opt) opt->set_step_count(r.progress().adam_step);
    if (progress) *progress = r.progress().progress;
    return Status::ok();
  });
}

StatusOr<CkptLayout> distributed_checkpoint_layout(const std::string& dir) {
  return guarded(dir, [&]() -> StatusOr<CkptLayout> {
    EELLM_ASSIGN_OR_RETURN(Reader r, Reader::open(dir, nullptr, {}));
    return r.layout();
  });
}

StatusOr<Scenario> checkpoint_scenario(const std::string& dir) {
  EELLM_ASSIGN_OR_RETURN(std::string sub, resolve_checkpoint_dir(dir));
  std::error_code ec;
  const bool dist = fs::is_regular_file(fs::symlink_status(fs::path(sub) / "manifest.json", ec));
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
