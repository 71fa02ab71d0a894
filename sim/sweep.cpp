// What-if sweeps (see sweep.h): dotted-key setter over the scenario field lists, grid evaluation,
// text/CSV renderings. The SVG chart is in sweep_svg.cpp.
#include "sim/sweep.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <thread>
#include <type_traits>

#include "model/cost_model.h"
#include "model/fit.h"
#include "model/scenario_fields.h"
#include "model/scenario_io.h"
#include "model/yaml_reader.h"
#include "sim/cost_report.h"
#include "sim/inference_sim.h"
#include "sim/simulate.h"

namespace eellm {
namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Status bad_value(const std::string& key, const std::string& value, const std::string& want) {
  return Status::invalid_argument("--vary " + key + ": value '" + value + "' is not " + want);
}

template <typename T>
Status parse_number(const std::string& key, const std::string& v, T& out) {
  const std::string s = trim(v);
  try {
    size_t used = 0;
    if constexpr (std::is_floating_point_v<T>) {
      const double x = std::stod(s, &used);
      if (used != s.size()) return bad_value(key, v, "a number");
      out = x;
    } else {
      const long long x = std::stoll(s, &used);
      if (used != s.size()) return bad_value(key, v, "an integer");
      if (x < static_cast<long long>(std::numeric_limits<T>::min()) ||
          x > static_cast<long long>(std::numeric_limits<T>::max()))
        return bad_value(key, v, "an integer in range");
      out = static_cast<T>(x);
    }
  } catch (const std::exception&) {
    return bad_value(key, v, std::is_floating_point_v<T> ? "a number" : "an integer");
  }
  return Status::ok();
}

template <typename T>
Status parse_value(const std::string& key, const std::string& v, T& out) {
  if constexpr (std::is_same_v<T, bool>) {
    const std::string s = lower(trim(v));
    if (s == "true" || s == "1" || s == "yes" || s == "on")
      out = true;
    else if (s == "false" || s == "0" || s == "no" || s == "off")
      out = false;
    else
      return bad_value(key, v, "a boolean (true/false)");
    return Status::ok();
  } else if constexpr (std::is_same_v<T, std::string>) {
    out = trim(v);
    return Status::ok();
  } else if constexpr (std::is_enum_v<T>) {
    const std::string s = lower(trim(v));
    std::string names;
    for (T e : enum_values<T>()) {
      if (lower(to_string(e)) == s) {
        out = e;
        return Status::ok();
      }
      if (!names.empty()) names += ", ";
      names += to_string(e);
    }
    return bad_value(key, v, "one of " + names);
  } else if constexpr (std::is_arithmetic_v<T>) {
    return parse_number(key, v, out);
  } else {
    // std::vector<int> / std::vector<double>: "[8,16]", "8 16", "8", "[]".
    std::string s = trim(v);
    if (!s.empty() && s.front() == '[') {
      if (s.back() != ']') return bad_value(key, v, "a list like [8,16]");
      s = s.substr(1, s.size() - 2);
    }
    for (char& c : s)
      if (c == ',') c = ' ';
    std::istringstream is(s);
    T list;
    std::string tok;
    while (is >> tok) {
      typename T::value_type x{};
      EELLM_RETURN_IF_ERROR(parse_number(key, tok, x));
      list.push_back(x);
    }
    out = std::move(list);
    return Status::ok();
  }
}

// Sets `field` of a struct with a field list; false when the struct has no such field.
template <typename S>
bool set_field(S& spec, const std::string& field, const std::string& key, const std::string& value, Status& st) {
  bool found = false;
  for_each_field(spec, [&](const char* name, auto& member) {
    if (!found && field == name) {
      found = true;
      st = parse_value(key, value, member);
    }
  });
  return found;
}

template <typename S>
void collect(const S& spec, const std::string& prefix, std::vector<std::string>& out) {
  for_each_field(spec, [&](const char* name, const auto&) { out.push_back(prefix + name); });
}

// Splits "a,b,[c,d]" at commas outside brackets.
std::vector<std::string> split_values(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : s) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) {
      out.push_back(trim(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(trim(cur));
  return out;
}

const double kNaN = std::numeric_limits<double>::quiet_NaN();

SweepPoint evaluate(const Scenario& base, const std::vector<SweepAxis>& axes, const std::vector<size_t>& idx) {
  SweepPoint p;
  Scenario s = base;
  for (size_t a = 0; a < axes.size(); ++a) {
    p.values.push_back(axes[a].values[idx[a]]);
    Status st = set_scenario_value(s, axes[a].key, p.values.back());
    if (!st.is_ok()) {
      p.error = st.message();
      return p;
    }
  }
  p.metrics.assign(sweep_metrics().size(), kNaN);
  if (Status st = check_scenario(s); !st.is_ok()) {  // what simulate refuses, before any arithmetic
    p.error = st.message();
    return p;
  }
  SimulateOptions so;
  so.record_timeline = false;
  so.compare_without_exits = true;
  auto r = simulate(s, so);
  if (!r.is_ok()) {
    p.error = r.status().message();
    return p;
  }
  const SimulationSummary& m = r->summary;
  const CostModel cm(r->scenario, r->layout);
  p.metrics[0] = m.iteration_time_s;
  p.metrics[1] = m.tokens_per_s;
  p.metrics[2] = m.mfu;
  p.metrics[3] = m.model_tflops_per_gpu;
  p.metrics[4] = m.bubble_fraction;
  p.metrics[5] = m.exit_overhead_fraction;
  p.metrics[6] = m.peak_memory_GiB;
  p.metrics[7] = estimate_iteration(cm).total_s;
  p.memory_note = memory_overflow(m);
  p.memory_excess_GiB = std::max(0.0, memory_excess_GiB(m));
  InferenceSimOptions io;
  io.methods = {InferenceMethod::kFull, InferenceMethod::kRecompute};
  auto inf = simulate_inference(s, io);
  if (inf.is_ok()) {
    p.metrics[8] = inf->methods[1].tokens_per_s;
    p.metrics[9] = inf->methods[1].speedup_vs_full;
  }
  if (auto cost = training_cost_of(*r); cost.is_ok()) {  // what-if cost of the training budget
    p.metrics[10] = cost->wall_s / 86400;
    p.metrics[11] = cost->cost_usd;
    p.metrics[12] = cost->energy_kWh;
    p.metrics[13] = cost->goodput;
  }
  p.ok = true;
  return p;
}

}  // namespace

const std::vector<std::string>& sweep_metrics() {
  static const std::vector<std::string> m = {"iteration_time_s",
                                             "tokens_per_s",
                                             "mfu",
                                             "model_tflops_per_gpu",
                                             "bubble_fraction",
                                             "exit_overhead_fraction",
                                             "peak_memory_GiB",
                                             "estimated_time_s",
                                             "inference_tokens_per_s",
                                             "inference_speedup",
                                             "time_to_train_days",
                                             "cost_usd",
                                             "energy_kWh",
                                             "goodput"};
  return m;
}

double SweepResult::metric_of(const SweepPoint& p) const {
  const auto& names = sweep_metrics();
  const size_t i = static_cast<size_t>(std::find(names.begin(), names.end(), metric) - names.begin());
  return p.ok && i < p.metrics.size() ? p.metrics[i] : kNaN;
}

std::vector<std::string> sweep_keys() {
  std::vector<std::string> k;
  const Scenario s;
  collect(s.model, "model.", k);
  collect(s.exits, "exits.", k);
  collect(s.parallel, "parallel.", k);
  collect(s.training, "training.", k);
  collect(s.inference, "inference.", k);
  collect(s.execution, "execution.", k);
  k.insert(k.end(), {"cluster.profile", "cluster.device", "cluster.num_nodes", "cluster.gpus_per_node"});
  collect(s.cluster.intra_node, "cluster.intra_node.", k);
  collect(s.cluster.inter_node, "cluster.inter_node.", k);
  collect(s.cluster.device, "cluster.device.", k);
  collect(s.cluster.cost, "cluster.cost.", k);
  return k;
}

StatusOr<SweepAxis> parse_vary(const std::string& arg) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 >= arg.size())
    return Status::invalid_argument("--vary '" + arg +
                                    "': expected KEY=V1,V2,... (e.g. parallel.pipeline_model_parallel_size=2,4,8)");
  SweepAxis a;
  a.key = trim(arg.substr(0, eq));
  a.values = split_values(arg.substr(eq + 1));
  for (const std::string& v : a.values)
    if (v.empty()) return Status::invalid_argument("--vary '" + arg + "': empty value in the list");
  return a;
}

Status set_scenario_value(Scenario& s, const std::string& key, const std::string& value) {
  const size_t dot = key.find('.');
  const std::string section = dot == std::string::npos ? key : key.substr(0, dot);
  const std::string field = dot == std::string::npos ? "" : key.substr(dot + 1);
  Status st = Status::ok();
  bool found = false;
  if (section == "model")
    found = set_field(s.model, field, key, value, st);
  else if (section == "exits")
    found = set_field(s.exits, field, key, value, st);
  else if (section == "parallel")
    found = set_field(s.parallel, field, key, value, st);
  else if (section == "training")
    found = set_field(s.training, field, key, value, st);
  else if (section == "inference")
    found = set_field(s.inference, field, key, value, st);
  else if (section == "execution")
    found = set_field(s.execution, field, key, value, st);
  else if (section == "cluster") {
    if (field == "device") {
      auto d = load_device_profile(trim(value));
      if (!d.is_ok()) return Status::invalid_argument("--vary " + key + "=" + value + ": " + d.status().message());
      s.cluster.device = *d;
      s.cluster.device_name = trim(value);
      return Status::ok();
    }
    if (field == "profile") {
      auto c = load_cluster_profile(trim(value));
      if (!c.is_ok()) return Status::invalid_argument("--vary " + key + "=" + value + ": " + c.status().message());
      s.cluster = *c;
      return Status::ok();
    }
    if (field == "num_nodes") {
      found = true;
      st = parse_value(key, value, s.cluster.num_nodes);
    } else if (field == "gpus_per_node") {
      found = true;
      st = parse_value(key, value, s.cluster.gpus_per_node);
    } else if (field.rfind("intra_node.", 0) == 0) {
      found = set_field(s.cluster.intra_node, field.substr(11), key, value, st);
    } else if (field.rfind("inter_node.", 0) == 0) {
      found = set_field(s.cluster.inter_node, field.substr(11), key, value, st);
    } else if (field.rfind("device.", 0) == 0) {
      found = set_field(s.cluster.device, field.substr(7), key, value, st);
    } else if (field.rfind("cost.", 0) == 0) {  // what-if cost block (sim/cost_report.h)
      found = set_field(s.cluster.cost, field.substr(5), key, value, st);
    }
  }
  if (found && st.is_ok() && key == "exits.exit_layer_nums") {
    // Per-exit lists that no longer match the number of exits follow it: loss weights collapse to
    // their mean (one weight for all), measured exit rates no longer apply and are dropped.
    const size_t n = s.exits.exit_layer_nums.size();
    for (std::vector<double>* w : {&s.exits.exit_layer_weight, &s.exits.exit_layer_weight_init})
      if (w->size() > 1 && w->size() != n) {
        double mean = 0;
        for (double x : *w) mean += x / static_cast<double>(w->size());
        *w = {mean};
      }
    if (!s.inference.exit_rates.empty() && s.inference.exit_rates.size() != n) s.inference.exit_rates.clear();
    if (s.inference.draft_exit >= static_cast<int>(n)) s.inference.draft_exit = 0;
  }
  if (!found) {
    std::vector<std::pair<int, std::string>> near;
    for (const std::string& k : sweep_keys()) {
      const size_t kd = k.rfind('.');
      const int d = std::min(edit_distance(key, k),
                             edit_distance(field.empty() ? key : key.substr(key.rfind('.') + 1), k.substr(kd + 1)) + 1);
      near.emplace_back(d, k);
    }
    std::stable_sort(near.begin(), near.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string msg = "--vary: unknown scenario key '" + key + "'";
    if (!near.empty() && near[0].first <= std::max<int>(3, static_cast<int>(key.size()) / 3)) {
      msg += "; did you mean '" + near[0].second + "'";
      if (near.size() > 1 && near[1].first == near[0].first) msg += " or '" + near[1].second + "'";
      msg += "?";
    }
    msg +=
        " (keys are dotted YAML paths: model.*, exits.*, parallel.*, training.*, inference.*, cluster.device, "
        "cluster.profile, cluster.num_nodes, cluster.intra_node.*, cluster.inter_node.*, cluster.device.*, "
        "cluster.cost.*)";
    return Status::not_found(msg);
  }
  return st;
}

StatusOr<SweepResult> sweep(const Scenario& base, const SweepOptions& o) {
  if (o.axes.empty() || o.axes.size() > 2)
    return Status::invalid_argument("a sweep varies one or two keys (got " + std::to_string(o.axes.size()) +
                                    " --vary)");
  const auto& names = sweep_metrics();
  if (std::find(names.begin(), names.end(), o.metric) == names.end()) {
    std::string list;
    for (const std::string& n : names) {
      if (!list.empty()) list += ", ";
      list += n;
    }
    return Status::invalid_argument("--metric '" + o.metric + "' is not one of " + list);
  }
  // Keys and values are checked up front, on a scratch copy.
  for (const SweepAxis& a : o.axes)
    for (const std::string& v : a.values) {
      Scenario scratch = base;
      EELLM_RETURN_IF_ERROR(set_scenario_value(scratch, a.key, v));
    }
  SweepResult r;
  r.scenario = base.name;
  r.axes = o.axes;
  r.metric = o.metric;
  std::vector<std::vector<size_t>> grid;
  const size_t n0 = o.axes[0].values.size(), n1 = o.axes.size() > 1 ? o.axes[1].values.size() : 1;
  for (size_t i = 0; i < n0; ++i)
    for (size_t j = 0; j < n1; ++j)
      grid.push_back(o.axes.size() > 1 ? std::vector<size_t>{i, j} : std::vector<size_t>{i});
  r.points.resize(grid.size());
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < grid.size();) r.points[i] = evaluate(base, o.axes, grid[i]);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return r;
}

std::string sweep_to_text(const SweepResult& r) {
  std::ostringstream os;
  char buf[64];
  for (const SweepAxis& a : r.axes) os << a.key << "\t";
  os << r.metric << "\tnote\n";
  for (const SweepPoint& p : r.points) {
    for (const std::string& v : p.values) os << v << "\t";
    if (p.ok) {
      std::snprintf(buf, sizeof buf, "%.6g", r.metric_of(p));
      os << buf << "\t" << p.memory_note << "\n";
    } else {
      os << "-\t" << p.error << "\n";
    }
  }
  return os.str();
}

std::string sweep_to_csv(const SweepResult& r) {
  std::ostringstream os;
  auto quote = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string q = "\"";
    for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  for (const SweepAxis& a : r.axes) os << quote(a.key) << ",";
  for (const std::string& m : sweep_metrics()) os << m << ",";
  os << "fits_memory,memory_excess_GiB,memory_note,error\n";
  char buf[64];
  for (const SweepPoint& p : r.points) {
    for (const std::string& v : p.values) os << quote(v) << ",";
    for (size_t i = 0; i < sweep_metrics().size(); ++i) {
      const double x = p.ok && i < p.metrics.size() ? p.metrics[i] : kNaN;
      if (!std::isnan(x)) {
        std::snprintf(buf, sizeof buf, "%.6g", x);
        os << buf;
      }
      os << ",";
    }
    if (p.ok) {
      std::snprintf(buf, sizeof buf, "%.6g", p.memory_excess_GiB);
      os << (p.memory_note.empty() ? 1 : 0) << "," << buf;
    } else {
      os << ",";
    }
    os << "," << quote(p.memory_note) << "," << quote(p.error) << "\n";
  }
  return os.str();
}

}  // namespace eellm
