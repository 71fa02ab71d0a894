// Distributed checkpoints: collective atomic save, layout-independent load (see dist_checkpoint.h).
#include "exec/io/dist_checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

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

// A checkpoint opened for reading: its manifest (a single-process checkpoint's state.json is
// turned into one) and the shard files, each verified once on first use.
class Reader {
 public:
  static StatusOr<Reader> open(const std::string& dir, const GptConfig* cfg) {
    Reader r;
    EELLM_ASSIGN_OR_RETURN(r.sub_, resolve_checkpoint_dir(dir));
    std::error_code ec;
    const fs::path mpath = fs::path(r.sub_) / "manifest.json";
    if (fs::exists(mpath, ec)) {
      EELLM_ASSIGN_OR_RETURN(std::string text, read_file(mpath.string()));
      r.m_ = json::parse(text, nullptr, false);
      r.source_ = mpath.string();
      if (r.m_.is_discarded() || !r.m_.is_object())
        return Status::corruption(r.source_ + " is not valid JSON (a damaged or truncated manifest)");
      if (r.m_.value("format", "") != kFormat)
        return Status::corruption(r.source_ + ": field `format` is " + r.m_.value("format", json("missing")).dump() +
                                  ", expected \"" + kFormat + "\"");
      for (const char* f : {"iteration", "data", "seed", "model", "files", "tensors", "layout"})
        if (!r.m_.contains(f)) return Status::corruption(r.source_ + " has no field `" + std::string(f) + "`");
    } else {
      EELLM_RETURN_IF_ERROR(r.adapt_single_process());
    }
    if (cfg) EELLM_RETURN_IF_ERROR(check_model_fingerprint(r.m_["model"].dump(), *cfg, "checkpoint " + r.source_));
    return r;
  }

  const json& manifest() const { return m_; }

  StatusOr<const Tensor*> get(const std::string& file, const std::string& key, const std::string& tensor) {
    EELLM_ASSIGN_OR_RETURN(const SafetensorsFile* f, load_file(file, tensor));
    auto t = f->tensors.find(key);
    if (t == f->tensors.end())
      return Status::corruption(file + " has no tensor `" + key + "` (" + source_ + " lists it for " + tensor + ")");
    return &t->second;
  }

  // The shard file, read and verified against the manifest's size and checksum once.
  StatusOr<const SafetensorsFile*> load_file(const std::string& file, const std::string& tensor) {
    auto it = files_.find(file);
    if (it == files_.end()) {
      const std::string path = (fs::path(sub_) / file).string();
      if (!m_["files"].contains(file))
        return Status::corruption(source_ + ": tensor " + tensor + " names file " + file +
                                  ", which `files` does not list");
      std::error_code ec;
      if (!fs::exists(path, ec))
        return Status::not_found("checkpoint shard file " + path + " is missing (" + source_ + " lists it for tensor " +
                                 tensor + ")");
      EELLM_ASSIGN_OR_RETURN(std::string bytes, read_file(path));
      const json& f = m_["files"][file];
      if (bytes.size() != f.value("bytes", size_t{0}))
        return Status::corruption(path + " has " + std::to_string(bytes.size()) + " bytes, " + source_ + " records " +
                                  f.value("bytes", json(0)).dump());
      if (fnv1a64_hex(bytes) != f.value("fnv1a64", ""))
        return Status::corruption(path + " checksum " + fnv1a64_hex(bytes) + " does not match " + source_ + " (" +
                                  f.value("fnv1a64", "") + ")");
      EELLM_ASSIGN_OR_RETURN(SafetensorsFile sf, parse_safetensors(bytes, path));
      it = files_.emplace(file, std::move(sf)).first;
    }
    return &it->second;
  }

  StatusOr<const json*> entry(const std::string& name) const {
    if (!m_["tensors"].contains(name))
      return Status::failed_precondition(source_ + " has no tensor " + name + " (field `tensors`)");
    return &m_["tensors"][name];
  }

  // Full tensor `name` from its param pieces.
  StatusOr<Tensor> full_param(const std::string& name) {
    EELLM_ASSIGN_OR_RETURN(const json* e, entry(name));
    Tensor full((*e)["shape"].get<std::vector<int64_t>>());
    int64_t covered = 0;
    for (const json& p : e->value("params", json::array())) {
      EELLM_ASSIGN_OR_RETURN(const Tensor* t, get(p["file"], p["key"], name));
      EELLM_ASSIGN_OR_RETURN(ShardSpec spec, spec_of(p, name));
      if (t->shape != p["local_shape"].get<std::vector<int64_t>>())
        return Status::corruption(p["file"].get<std::string>() + ": tensor `" + p["key"].get<std::string>() +
                                  "` has shape " + shape_string(t->shape) + ", " + source_ + " records " +
                                  p["local_shape"].dump());
      place(full, *t, spec);
      covered += static_cast<int64_t>(t->numel());
    }
    if (covered != static_cast<int64_t>(full.numel()))
      return Status::corruption(source_ + ": the pieces of tensor " + name + " cover " + str(covered) + " of " +
                                str(static_cast<int64_t>(full.numel())) + " elements");
    return full;
  }

  // Full AdamW moments (m, v) of tensor `name`; false when the checkpoint has none.
  StatusOr<bool> full_moments(const std::string& name, Tensor& m, Tensor& v) {
    EELLM_ASSIGN_OR_RETURN(const json* e, entry(name));
    const json pieces = e->value("moments", json::array());
    if (pieces.empty()) return false;
    const auto shape = (*e)["shape"].get<std::vector<int64_t>>();
    m = Tensor(shape), v = Tensor(shape);
    std::map<std::string, std::vector<const json*>> by_spec;
    for (const json& p : pieces) by_spec[p["dim"].dump() + p["ranges"].dump()].push_back(&p);
    for (auto& [spec_text, list] : by_spec) {
      EELLM_ASSIGN_OR_RETURN(ShardSpec spec, spec_of(*list.front(), name));
      Tensor lm((*list.front())["local_shape"].get<std::vector<int64_t>>()), lv(lm.shape);
      size_t covered = 0;
      for (const json* p : list) {
        const size_t b = (*p)["begin"].get<size_t>(), en = (*p)["end"].get<size_t>();
        EELLM_ASSIGN_OR_RETURN(const Tensor* tm, get((*p)["file"], (*p)["m"], name));
        EELLM_ASSIGN_OR_RETURN(const Tensor* tv, get((*p)["file"], (*p)["v"], name));
        if (en < b || en > lm.numel() || tm->numel() != en - b || tv->numel() != en - b)
          return Status::corruption(source_ + ": AdamW moment slice [" + std::to_string(b) + ", " + std::to_string(en) +
                                    ") of tensor " + name + " does not fit its shard or its stored tensors");
        std::copy_n(tm->ptr(), en - b, lm.ptr() + b);
        std::copy_n(tv->ptr(), en - b, lv.ptr() + b);
        covered += en - b;
      }
      if (covered != lm.numel())
        return Status::corruption(source_ + ": the AdamW moment slices of tensor " + name + " cover " +
                                  std::to_string(covered) + " of " + std::to_string(lm.numel()) + " elements");
      place(m, lm, spec);
      place(v, lv, spec);
    }
    return true;
  }

 private:
  StatusOr<ShardSpec> spec_of(const json& p, const std::string& name) const {
    ShardSpec s;
    s.dim = p.value("dim", -1);
    for (const json& r : p.value("ranges", json::array()))
      s.ranges.emplace_back(r[0].get<int64_t>(), r[1].get<int64_t>());
    if (!s.replicated() && (s.ranges.empty() || s.dim >= static_cast<int>(m_["tensors"][name]["shape"].size())))
      return Status::corruption(source_ + ": tensor " + name + " has a piece with a bad `dim`/`ranges`");
    return s;
  }
  static void place(Tensor& full, const Tensor& piece, const ShardSpec& spec) {
    if (spec.replicated())
      full.data = piece.data;
    else
      insert_shard(full, piece, spec);
  }

  // A single-process checkpoint (checkpoint.h) as a one-file manifest.
  Status adapt_single_process() {
    source_ = (fs::path(sub_) / "state.json").string();
    EELLM_ASSIGN_OR_RETURN(std::string text, read_file(source_));
    const json st = json::parse(text, nullptr, false);
    if (st.is_discarded() || !st.is_object() || st.value("format", "") != "eellm-checkpoint-1")
      return Status::corruption(source_ + " is not an eellm checkpoint state (bad JSON or format)");
    m_ = json{{"format", kFormat},
              {"iteration", st["iteration"]},
              {"data", st["data"]},
              {"seed", st["seed"]},
              {"model", st["model"]},
              {"files", st["files"]},
              {"scenario_yaml", st.value("scenario_yaml", "")},
              {"layout", {{"tp", 1}, {"pp", 1}, {"dp", 1}, {"vp", 1}, {"world", 1}, {"distributed_optimizer", false}}},
              {"tensors", json::object()}};
    EELLM_ASSIGN_OR_RETURN(const SafetensorsFile* model, load_file("model.safetensors", "(all)"));
    const bool has_opt = st["files"].contains("optimizer.safetensors");
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
  std::map<std::string, SafetensorsFile> files_;
};

}  // namespace

Status load_distributed_checkpoint(const std::string& dir, const GptConfig& full_cfg,
                                   const std::vector<CkptParam>& params, const std::vector<CkptMoments>& moments,
                                   TrainProgress* progress) {
  EELLM_ASSIGN_OR_RETURN(Reader r, Reader::open(dir, &full_cfg));
  for (const CkptParam& p : params) {
    EELLM_ASSIGN_OR_RETURN(Tensor full, r.full_param(p.name));
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
      EELLM_ASSIGN_OR_RETURN(bool have, r.full_moments(m.name, fm, fv));
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
  if (progress) {
    const json& j = r.manifest();
    progress->iteration = j["iteration"].get<int>();
    progress->data.epoch = j["data"]["epoch"].get<uint64_t>();
    progress->data.index = j["data"]["index"].get<uint64_t>();
    progress->seed = j["seed"].get<uint64_t>();
  }
  return Status::ok();
}

Status load_checkpoint(const std::string& dir, const GptConfig& cfg, GptParams& params, AdamW* opt,
                       TrainProgress* progress) {
  EELLM_ASSIGN_OR_RETURN(std::string sub, resolve_checkpoint_dir(dir));
  std::error_code ec;
  if (!fs::exists(fs::path(sub) / "manifest.json", ec))
    return load_single_process_checkpoint(sub, cfg, params, opt, progress);
  // A distributed checkpoint: assemble the full tensors.
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
  TrainProgress p;
  EELLM_RETURN_IF_ERROR(load_distributed_checkpoint(sub, cfg, ps, ms, &p));
  if (opt) opt->set_step_count(p.iteration);
  if (progress) *progress = p;
  return Status::ok();
}

StatusOr<CkptLayout> distributed_checkpoint_layout(const std::string& dir) {
  EELLM_ASSIGN_OR_RETURN(Reader r, Reader::open(dir, nullptr));
  const json& l = r.manifest()["layout"];
  CkptLayout out;
  out.tp = l.value("tp", 1), out.pp = l.value("pp", 1), out.dp = l.value("dp", 1), out.vp = l.value("vp", 1);
  out.distributed_optimizer = l.value("distributed_optimizer", false);
  return out;
}

}  // namespace eellm::exec
