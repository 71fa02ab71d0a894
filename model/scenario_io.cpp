// Scenario, cluster and device files: strict YAML reading (yaml_reader.h) over the field lists of
// scenario_fields.h, profile resolution under scenarios_dir(), and a writer whose output reads back
// to an equal Scenario (doubles in shortest round-trip form, strings double-quoted).
#include "model/scenario_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "model/layout.h"
#include "model/parse.h"
#include "model/scenario_fields.h"
#include "model/validate.h"
#include "model/yaml_reader.h"

namespace fs = std::filesystem;

namespace eellm {
namespace {

// Scenario and profile files are a few kilobytes; 16 MiB bounds what a hostile one can cost.
constexpr uint64_t kMaxYamlBytes = uint64_t{16} << 20;

StatusOr<std::string> read_text_file(const fs::path& path, const char* what) {
  return read_regular_file(path.string(), what, kMaxYamlBytes);
}

const char* file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

StatusOr<YAML::Node> load_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    std::string where = source;
    if (e.mark.line >= 0) where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    return Status::invalid_argument(where + ": malformed YAML: " + e.msg);
  } catch (const YAML::Exception& e) {
    return Status::invalid_argument(source + ": malformed YAML: " + e.msg);
  }
}

bool looks_like_path(const std::string& s) {
  return s.find('/') != std::string::npos || s.ends_with(".yaml") || s.ends_with(".yml");
}

// Names of the .yaml files in a folder (without extension), sorted.
std::vector<std::string> yaml_stems(const fs::path& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().extension() == ".yaml") names.insert(entry.path().stem().string());
  return {names.begin(), names.end()};
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// A profile name ("a100-80gb-sxm") → scenarios_dir()/kind/NAME.yaml; a path → itself, relative to
// `base_dir` (the file that names it) and then to the working directory. Never throws: a name too
// long for the filesystem or a symlink loop is an error naming it.
StatusOr<fs::path> resolve_profile(const char* kind, const char* what, const std::string& name,
                                   const fs::path& base_dir) {
  std::error_code ec;
  if (name.empty()) return Status::invalid_argument(std::string(what) + ": the name is empty");
  if (looks_like_path(name)) {
    fs::path p(name);
    if (p.is_relative() && fs::exists(fs::symlink_status(base_dir / p, ec))) return base_dir / p;
    if (fs::exists(fs::symlink_status(p, ec))) return p;
    if (ec && ec != std::errc::no_such_file_or_directory)
      return Status::invalid_argument(std::string(what) + " file '" + name + "': " + ec.message());
    const fs::path cwd = fs::current_path(ec);
    return Status::not_found(std::string(what) + " file '" + name + "' not found (looked in " + base_dir.string() +
                             " and " + (ec ? std::string("the working directory") : cwd.string()) + ")");
  }
  const fs::path dir = fs::path(scenarios_dir()) / kind;
  const fs::path p = dir / (name + ".yaml");
  if (fs::exists(fs::symlink_status(p, ec))) return p;
  if (ec && ec != std::errc::no_such_file_or_directory)
    return Status::invalid_argument(std::string(what) + " '" + name + "': " + ec.message());
  const std::vector<std::string> known = yaml_stems(dir);
  std::string msg = std::string(what) + " '" + name + "' not found: no file " + p.string();
  const std::string hint = closest_match(name, known);
  if (!hint.empty()) msg += "; did you mean '" + hint + "'?";
  msg += " (available: " + (known.empty() ? std::string("none") : join(known)) + ")";
  return Status::not_found(msg);
}

StatusOr<DeviceProfile> load_device_impl(const std::string& name, const fs::path& base_dir) {
  EELLM_ASSIGN_OR_RETURN(const fs::path path, resolve_profile("devices", "device profile", name, base_dir));
  EELLM_ASSIGN_OR_RETURN(const std::string text, read_text_file(path, "device profile"));
  EELLM_ASSIGN_OR_RETURN(const YAML::Node root, load_yaml(text, path.string()));
  YamlContext ctx{path.string(), {}, 0};
  DeviceProfile d;
  MapReader r(ctx, root, "");
  if (!r.valid() && ctx.ok()) ctx.error("", "device profile is empty");
  for_each_field(d, r);
  r.finish();
  EELLM_RETURN_IF_ERROR(ctx.status());
  if (d.name.empty()) d.name = path.stem().string();
  if (!valid_utf8(d.name)) return Status::invalid_argument(path.string() + ": the device name is not valid UTF-8");
  return d;
}

// `device: NAME-or-PATH`, or an inline mapping of DeviceProfile fields, optionally starting from
// `base: NAME` (what-if overrides of a shipped device).
void read_device_ref(YamlContext& ctx, const YAML::Node& node, const std::string& path, const fs::path& base_dir,
                     std::string& device_name, DeviceProfile& device) {
  if (node.IsScalar()) {
    auto d = load_device_impl(node.Scalar(), base_dir);
    if (!d.is_ok()) {
      ctx.error(node, path, d.status().message());
      return;
    }
    device_name = node.Scalar();
    device = *d;
    return;
  }
  if (!node.IsMap()) {
    ctx.error(node, path, "expected a device name, a path or a mapping of device fields");
    return;
  }
  MapReader r(ctx, node, path);
  const YAML::Node base = r.take("base");
  std::string base_name;
  if (base) {
    read_value(ctx, base, path + ".base", base_name);
    auto d = load_device_impl(base_name, base_dir);
    if (!d.is_ok()) {
      ctx.error(base, path + ".base", d.status().message());
    } else {
      device = *d;
    }
  } else {
    device = DeviceProfile{};
  }
  for_each_field(device, r);
  r.finish();
  device_name = base ? base_name : device.name;
}

void read_link(YamlContext& ctx, const YAML::Node& node, const std::string& path, LinkSpec& link) {
  MapReader r(ctx, node, path);
  for_each_field(link, r);
  r.finish();
}

StatusOr<ClusterSpec> load_cluster_impl(const std::string& name, const fs::path& base_dir);

// The cluster keys shared by cluster files and a scenario's `cluster:` section (which may also
// name a `profile` to start from).
void read_cluster(YamlContext& ctx, const YAML::Node& node, const std::string& path, const fs::path& base_dir,
                  bool allow_profile, ClusterSpec& c) {
  MapReader r(ctx, node, path);
  if (allow_profile) {
    const YAML::Node prof = r.take("profile");
    if (prof) {
      std::string prof_name;
      read_value(ctx, prof, r.child_path("profile"), prof_name);
      auto loaded = load_cluster_impl(prof_name, base_dir);
      if (!loaded.is_ok()) {
        ctx.error(prof, r.child_path("profile"), loaded.status().message());
      } else {
        c = *loaded;
      }
    }
  }
  r("name", c.name);
  if (const YAML::Node dev = r.take("device"))
    read_device_ref(ctx, dev, r.child_path("device"), base_dir, c.device_name, c.device);
  r("num_nodes", c.num_nodes);
  r("gpus_per_node", c.gpus_per_node);
  r("intra_node_fabric", c.intra_node_fabric);
  r("nics_per_node", c.nics_per_node);
  r("inter_node_efficiency", c.inter_node_efficiency);
  if (const YAML::Node n = r.take("intra_node")) read_link(ctx, n, r.child_path("intra_node"), c.intra_node);
  if (const YAML::Node n = r.take("inter_node")) read_link(ctx, n, r.child_path("inter_node"), c.inter_node);
  if (const YAML::Node n = r.take("cost")) {  // what-if cost block: keys given override the profile's
    MapReader cr(ctx, n, r.child_path("cost"));
    for_each_field(c.cost, cr);
    cr.finish();
  }
  r.finish();
  // Links not given come from the device's spec-sheet figures (NVLink, NIC per GPU).
  if (c.intra_node.bandwidth_GBps == 0 && c.intra_node.latency_us == 0)
    c.intra_node = LinkSpec{c.device.nvlink_bandwidth_GBps, c.device.nvlink_latency_us};
  if (c.inter_node.bandwidth_GBps == 0 && c.inter_node.latency_us == 0)
    c.inter_node = LinkSpec{c.device.network_bandwidth_GBps, c.device.network_latency_us};
}

StatusOr<ClusterSpec> load_cluster_impl(const std::string& name, const fs::path& base_dir) {
  EELLM_ASSIGN_OR_RETURN(const fs::path path, resolve_profile("clusters", "cluster profile", name, base_dir));
  EELLM_ASSIGN_OR_RETURN(const std::string text, read_text_file(path, "cluster profile"));
  EELLM_ASSIGN_OR_RETURN(const YAML::Node root, load_yaml(text, path.string()));
  YamlContext ctx{path.string(), {}, 0};
  ClusterSpec c;
  if (!root.IsMap()) ctx.error(root, "", "a cluster profile is a mapping (name, device, num_nodes, ...)");
  read_cluster(ctx, root, "", path.parent_path(), /*allow_profile=*/false, c);
  if (ctx.ok() && !root["device"]) ctx.error(root, "device", "a cluster profile must name its device");
  EELLM_RETURN_IF_ERROR(ctx.status());
  if (c.name.empty()) c.name = path.stem().string();
  if (!valid_utf8(c.name)) return Status::invalid_argument(path.string() + ": the cluster name is not valid UTF-8");
  return c;
}

// ---- writing ----

std::string format_double(double v) {
  char buf[64];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest form that reads back exactly
  (void)ec;
  return std::string(buf, ptr);
}

// Emits `key: value` per field; with `only` non-null, just the keys it holds.
struct FieldWriter {
  YAML::Emitter& out;
  const std::set<std::string>* only = nullptr;

  bool want(const char* key) const { return only == nullptr || only->count(key) > 0; }
  void operator()(const char* key, const std::string& v) {
    if (want(key)) out << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << v;
  }
  void operator()(const char* key, bool v) {
    if (want(key)) out << YAML::Key << key << YAML::Value << (v ? "true" : "false");
  }
  void operator()(const char* key, int v) {
    if (want(key)) out << YAML::Key << key << YAML::Value << v;
  }
  void operator()(const char* key, uint64_t v) {
    if (want(key)) out << YAML::Key << key << YAML::Value << std::to_string(v);
  }
  void operator()(const char* key, double v) {
    if (want(key)) out << YAML::Key << key << YAML::Value << format_double(v);
  }
  void operator()(const char* key, const std::vector<int>& v) {
    if (!want(key)) return;
    out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (int x : v) out << x;
    out << YAML::EndSeq;
  }
  void operator()(const char* key, const std::vector<double>& v) {
    if (!want(key)) return;
    out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginSeq;
    for (double x : v) out << format_double(x);
    out << YAML::EndSeq;
  }
  template <typename E>
  requires std::is_enum_v<E>
  void operator()(const char* key, E v) {
    if (want(key)) out << YAML::Key << key << YAML::Value << to_string(v);
  }
};

// Each field as text, for finding which fields of two values differ.
template <typename T>
std::vector<std::pair<std::string, std::string>> field_texts(const T& value) {
  std::vector<std::pair<std::string, std::string>> texts;
  for_each_field(value, [&texts](const char* key, const auto& v) {
    YAML::Emitter e;
    e << YAML::BeginMap;
    FieldWriter{e}(key, v);
    e << YAML::EndMap;
    texts.emplace_back(key, e.c_str());
  });
  return texts;
}

template <typename T>
std::set<std::string> differing_fields(const T& a, const T& b) {
  const auto ta = field_texts(a), tb = field_texts(b);
  std::set<std::string> keys;
  for (size_t i = 0; i < ta.size(); ++i)
    if (ta[i].second != tb[i].second) keys.insert(ta[i].first);
  return keys;
}

template <typename T>
void write_section(YAML::Emitter& out, const char* key, const T& spec) {
  out << YAML::Key << key << YAML::Value << YAML::BeginMap;
  for_each_field(spec, FieldWriter{out});
  out << YAML::EndMap;
}

void write_device(YAML::Emitter& out, const std::string& device_name, const DeviceProfile& device) {
  auto shipped =
      device_name.empty() ? StatusOr<DeviceProfile>(Status::not_found("")) : load_device_profile(device_name);
  out << YAML::Key << "device" << YAML::Value;
  if (shipped.is_ok()) {
    const std::set<std::string> diff = differing_fields(*shipped, device);
    if (diff.empty()) {
      out << device_name;
      return;
    }
    out << YAML::BeginMap << YAML::Key << "base" << YAML::Value << device_name;
    for_each_field(device, FieldWriter{out, &diff});
    out << YAML::EndMap;
    return;
  }
  out << YAML::BeginMap;
  for_each_field(device, FieldWriter{out});
  out << YAML::EndMap;
}

void write_link(YAML::Emitter& out, const char* key, const LinkSpec& link) {
  out << YAML::Key << key << YAML::Value << YAML::Flow << YAML::BeginMap;
  for_each_field(link, FieldWriter{out});
  out << YAML::EndMap;
}

bool same_link(const LinkSpec& a, const LinkSpec& b) {
  return a.bandwidth_GBps == b.bandwidth_GBps && a.latency_us == b.latency_us;
}

// The topology keys beyond nodes and GPUs; with `profile`, only those that differ from it.
void write_topology(YAML::Emitter& out, const ClusterSpec& c, const ClusterSpec* profile) {
  if (!profile || profile->intra_node_fabric != c.intra_node_fabric)
    out << YAML::Key << "intra_node_fabric" << YAML::Value << to_string(c.intra_node_fabric);
  if (!profile || profile->nics_per_node != c.nics_per_node)
    out << YAML::Key << "nics_per_node" << YAML::Value << c.nics_per_node;
  if (!profile || profile->inter_node_efficiency != c.inter_node_efficiency)
    out << YAML::Key << "inter_node_efficiency" << YAML::Value << format_double(c.inter_node_efficiency);
}

void write_cluster(YAML::Emitter& out, const ClusterSpec& c) {
  out << YAML::Key << "cluster" << YAML::Value << YAML::BeginMap;
  auto profile = c.name.empty() ? StatusOr<ClusterSpec>(Status::not_found("")) : load_cluster_profile(c.name);
  if (profile.is_ok()) {
    // By name, with only what differs from the profile inline.
    const ClusterSpec& p = *profile;
    out << YAML::Key << "profile" << YAML::Value << c.name;
    if (p.device_name != c.device_name || !differing_fields(p.device, c.device).empty())
      write_device(out, c.device_name, c.device);
    if (p.num_nodes != c.num_nodes) out << YAML::Key << "num_nodes" << YAML::Value << c.num_nodes;
    if (p.gpus_per_node != c.gpus_per_node) out << YAML::Key << "gpus_per_node" << YAML::Value << c.gpus_per_node;
    write_topology(out, c, &p);
    if (!same_link(p.intra_node, c.intra_node)) write_link(out, "intra_node", c.intra_node);
    if (!same_link(p.inter_node, c.inter_node)) write_link(out, "inter_node", c.inter_node);
    if (const std::set<std::string> diff = differing_fields(p.cost, c.cost); !diff.empty()) {
      out << YAML::Key << "cost" << YAML::Value << YAML::BeginMap;
      for_each_field(c.cost, FieldWriter{out, &diff});
      out << YAML::EndMap;
    }
  } else {
    out << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << c.name;
    write_device(out, c.device_name, c.device);
    out << YAML::Key << "num_nodes" << YAML::Value << c.num_nodes;
    out << YAML::Key << "gpus_per_node" << YAML::Value << c.gpus_per_node;
    write_topology(out, c, nullptr);
    write_link(out, "intra_node", c.intra_node);
    write_link(out, "inter_node", c.inter_node);
    write_section(out, "cost", c.cost);
  }
  out << YAML::EndMap;
}

}  // namespace

std::string scenarios_dir() {
  if (const char* env = std::getenv("EELLM_SCENARIOS"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path() / ".." / "share" / "eellm" / "scenarios";
    if (fs::is_directory(installed, ec)) return fs::weakly_canonical(installed, ec).string();
  }
  return EELLM_SOURCE_SCENARIOS_DIR;
}

StatusOr<DeviceProfile> load_device_profile(const std::string& path_or_name) {
  return load_device_impl(path_or_name, fs::current_path());
}

StatusOr<ClusterSpec> load_cluster_profile(const std::string& path_or_name) {
  return load_cluster_impl(path_or_name, fs::current_path());
}

StatusOr<Scenario> parse_scenario(const std::string& yaml_text, const std::string& source,
                                  const std::string& base_dir) {
  EELLM_ASSIGN_OR_RETURN(const YAML::Node root, load_yaml(yaml_text, source));
  YamlContext ctx{source, {}, 0};
  if (!root.IsMap()) {
    ctx.error(root, "",
              root.IsNull() ? "the scenario is empty" : "a scenario is a mapping of sections (model, exits, ...)");
    return ctx.status();
  }
  Scenario s;
  s.source_path = source;
  MapReader top(ctx, root, "");
  top("name", s.name);
  top("description", s.description);
  auto section = [&](const char* key, auto& spec) {
    if (const YAML::Node n = top.take(key)) {
      MapReader r(ctx, n, key);
      for_each_field(spec, r);
      r.finish();
    }
  };
  section("model", s.model);
  section("exits", s.exits);
  section("parallel", s.parallel);
  if (const YAML::Node n = top.take("cluster"))  // none: check_scenario says the device is missing
    read_cluster(ctx, n, "cluster", base_dir, /*allow_profile=*/true, s.cluster);
  section("training", s.training);
  section("inference", s.inference);
  section("execution", s.execution);
  top.finish();
  EELLM_RETURN_IF_ERROR(ctx.status());
  return s;
}

StatusOr<Scenario> load_scenario(const std::string& path_or_name) {
  fs::path path(path_or_name);
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) {  // what is there (a FIFO, /dev/zero) is refused by type on reading
    const fs::path dir(scenarios_dir());
    const fs::path shipped = dir / (path_or_name + ".yaml");
    if (!looks_like_path(path_or_name) && fs::exists(fs::symlink_status(shipped, ec))) {
      path = shipped;
    } else {
      const std::vector<std::string> known = yaml_stems(dir);
      std::string msg = "scenario '" + path_or_name + "' not found: no such file";
      if (!looks_like_path(path_or_name)) msg += " and no shipped scenario " + shipped.string();
      const std::string hint = closest_match(fs::path(path_or_name).stem().string(), known);
      if (!hint.empty()) msg += "; did you mean '" + hint + "'?";
      msg += " (shipped: " + join(known) + ")";
      return Status::not_found(msg);
    }
  }
  EELLM_ASSIGN_OR_RETURN(const std::string text, read_text_file(path, "scenario"));
  const std::string base = path.parent_path().empty() ? std::string(".") : path.parent_path().string();
  EELLM_ASSIGN_OR_RETURN(Scenario s, parse_scenario(text, path.string(), base));
  EELLM_RETURN_IF_ERROR(check_scenario(s, path.string()));
  return s;
}

Status check_scenario(const Scenario& s, const std::string& source) {
  const Diagnostics d = validate_scenario(s);
  std::string msg;
  for (const Diagnostic& x : d.items)
    if (x.severity == Diagnostic::Severity::kError) {
      // Appended piecewise: GCC 12 reports a false -Wrestrict on chained std::string + at -O3.
      if (!msg.empty()) msg.append("\n");
      if (!source.empty()) msg.append(source).append(": ");
      msg.append(x.message);
    }
  return msg.empty() ? Status::ok() : Status::invalid_argument(msg);
}

StatusOr<std::string> read_regular_file(const std::string& path, const std::string& what, uint64_t max_bytes) {
  // Fault injection for the tests that every entry point turns an exception into an error.
  if (const char* fault = std::getenv("EELLM_FAULT_INJECT"); fault != nullptr && std::string_view(fault) == "reader")
    throw std::runtime_error("injected fault (EELLM_FAULT_INJECT=reader) reading " + what + " " + path);
  // O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked on the open file.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string why = std::strerror(err);
    if (err == ENOENT) return Status::not_found(what + " '" + path + "' not found");
    return Status::io_error("cannot read " + what + " '" + path + "': " + why);
  }
  struct stat st {};
  std::string text;
  Status status = Status::ok();
  if (::fstat(fd, &st) != 0) {
    status = Status::io_error("cannot read " + what + " '" + path + "': " + std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    status =
        Status::invalid_argument(what + " '" + path + "' is " + file_type_name(st.st_mode) + ", not a regular file");
  } else if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    status =
        Status::invalid_argument(what + " '" + path + "' is " + std::to_string(st.st_size) + " bytes, more than the " +
                                 std::to_string(max_bytes) + " a " + what + " may have");
  } else {
    text.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    text.resize(got);  // a file that shrank while read: what was there
  }
  ::close(fd);
  if (!status.is_ok()) return status;
  return text;
}

std::string scenario_to_yaml(const Scenario& s) {
  YAML::Emitter out;
  out.SetIndent(2);
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << YAML::DoubleQuoted << s.name;
  out << YAML::Key << "description" << YAML::Value << YAML::DoubleQuoted << s.description;
  write_section(out, "model", s.model);
  write_section(out, "exits", s.exits);
  write_section(out, "parallel", s.parallel);
  write_cluster(out, s.cluster);
  write_section(out, "training", s.training);
  write_section(out, "inference", s.inference);
  write_section(out, "execution", s.execution);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace eellm
