// Analytical iteration estimate and DeviceProfile fit (see fit.h).
#include "model/fit.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <sstream>
#include <string_view>
#include <type_traits>

#include "model/layout.h"
#include "model/optimize.h"
#include "model/parse.h"
#include "model/scenario_fields.h"

namespace eellm {

// ---------------------------------------------------------------------------------------------
// Iteration estimate.
//
// Per pipeline rank i: F_i = forward of its chunks (backbone + exits), B_i = backward incl. the
// recompute forward, W_i = its weight-gradient part. With m microbatches, p ranks:
//   no pipelining          m·(F + B)
//   GPipe, 1F1B, EE-*      Σ_i (F_i + B_i) + (m − 1)·max_i (F_i + B_i)   (= (m + p − 1)(F + B) when
//   even) interleaved (v chunks) per-chunk c_i = (F_i + B_i)/v: Σ_i c_i + (m·v − 1)·max_i c_i ZB-H1
//   the 1F1B figure − (p − 1)·W of the slowest rank (W fills the bubble) EE-Tuning backbone forward
//   only, exits forward + backward
// p2p: Megatron's 1F1B blocks on each send/recv pair, so every step of the critical rank carries
// one activation and one gradient transfer: 2·(m·v + p − 2)·t_p2p.
// Gradient synchronisation is not overlapped unless overlap_grad_reduce, which hides it behind the
// last microbatch's backward.
IterationEstimate estimate_iteration(const CostModel& cost) {
  const Layout& L = cost.layout();
  const Scenario& sc = cost.scenario();
  const int p = L.pp, v = L.vp, m = L.num_microbatches;
  const bool tuning = L.schedule == ScheduleKind::kEETuning;
  double sum = 0, worst = 0, worst_w = 0, worst_b = 0, max_p2p = 0;
  for (int i = 0; i < p; ++i) {
    double f = 0, b = 0, w = 0;
    for (int c = 0; c < v; ++c) {
      const ChunkCosts cc = cost.chunk(c * p + i);
      for (const OpTimes& x : cc.exits) {
        f += x.fwd;
        b += x.bwd();
        w += x.bwd_weight;
      }
      f += cc.backbone.fwd;
      if (p > 1 && c == 0) max_p2p = std::max(max_p2p, cost.p2p_time(cc.p2p_bytes, cost.pp_hop_inter_node(i)));
      if (!tuning) {
        b += cc.backbone.bwd() + cc.recompute_fwd;
        w += cc.backbone.bwd_weight;
      }
    }
    sum += f + b;
    if (f + b > worst) {
      worst = f + b;
      worst_w = w;
      worst_b = b;
    }
  }
  IterationEstimate e;
  switch (L.schedule) {
    case ScheduleKind::kNoPipelining:
      e.pipeline_s = m * worst;
      break;
    case ScheduleKind::kInterleaved1F1B:
      e.pipeline_s = sum / v + (static_cast<double>(m) * v - 1) * worst / v;
      break;
    case ScheduleKind::kZBH1:
      e.pipeline_s = sum + (m - 1) * worst - (p - 1) * worst_w;
      break;
    default:
      e.pipeline_s = sum + (m - 1) * worst;
      break;
  }
  e.bubble_s = std::max(0.0, e.pipeline_s - m * worst);
  if (p > 1 && !tuning)
    e.p2p_s = 2.0 * (static_cast<double>(m) * v + p - 2) * max_p2p;
  else if (p > 1)
    e.p2p_s = (static_cast<double>(m) * v + p - 2) * max_p2p;
  double dp = 0, opt = 0;
  for (int i = 0; i < p; ++i) {
    dp = std::max(dp, cost.dp_sync_time(i));
    opt = std::max(opt, cost.optimizer_step_time(i));
  }
  e.dp_sync_s = sc.parallel.overlap_grad_reduce ? std::max(0.1 * dp, dp - worst_b) : dp;
  e.embedding_sync_s = cost.embedding_group_time();
  e.optimizer_s = opt;
  e.overhead_s = sc.cluster.device.per_iteration_overhead_us * 1e-6;
  e.total_s = e.pipeline_s + e.p2p_s + e.dp_sync_s + e.embedding_sync_s + e.optimizer_s + e.overhead_s;
  return e;
}

// ---------------------------------------------------------------------------------------------
// Calibration file.

StatusOr<std::vector<CalibrationRow>> read_calibration_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::not_found("calibration file " + path + " cannot be opened");
  std::vector<CalibrationRow> rows;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#' || !std::isdigit(static_cast<unsigned char>(line[0]))) {
      if (line_no == 1 || line.empty() || line[0] == '#') continue;
      return Status::invalid_argument(path + ":" + std::to_string(line_no) + ": expected 11 numbers, got '" + line +
                                      "'");
    }
    std::stringstream ss(line);
    std::string cell;
    std::vector<double> v;
    while (std::getline(ss, cell, ',')) {
      const size_t a = cell.find_first_not_of(" \t\r"), b = cell.find_last_not_of(" \t\r");
      auto x = parse_double(path + ":" + std::to_string(line_no) + ": column " + std::to_string(v.size() + 1),
                            a == std::string::npos ? std::string() : cell.substr(a, b - a + 1));
      if (!x.is_ok()) return x.status();
      v.push_back(*x);
    }
    if (v.size() != 11)
      return Status::invalid_argument(path + ":" + std::to_string(line_no) + ": has " + std::to_string(v.size()) +
                                      " columns; expected 11 (GPUs, global batch, micro batch, hidden, heads, layers, "
                                      "seq, tp, dp, pp, time ms)");
    CalibrationRow r;
    r.gpus = static_cast<int>(v[0]);
    r.global_batch = static_cast<int>(v[1]);
    r.micro_batch = static_cast<int>(v[2]);
    r.hidden = static_cast<int>(v[3]);
    r.heads = static_cast<int>(v[4]);
    r.layers = static_cast<int>(v[5]);
    r.seq = static_cast<int>(v[6]);
    r.tp = static_cast<int>(v[7]);
    r.dp = static_cast<int>(v[8]);
    r.pp = static_cast<int>(v[9]);
    r.time_ms = v[10];
    if (r.tp * r.dp * r.pp != r.gpus || r.time_ms <= 0)
      return Status::invalid_argument(path + ":" + std::to_string(line_no) + ": tp·dp·pp (" +
                                      std::to_string(r.tp * r.dp * r.pp) + ") must equal the GPU count (" +
                                      std::to_string(r.gpus) + ") and the time must be positive");
    rows.push_back(r);
  }
  if (rows.empty()) return Status::invalid_argument("calibration file " + path + " has no data rows");
  return rows;
}

Scenario calibration_scenario(const CalibrationRow& r, const DeviceProfile& device) {
  Scenario s;
  s.name = "calibration";
  ModelSpec& m = s.model;
  m.arch = "gpt2";
  m.num_layers = r.layers;
  m.hidden_size = r.hidden;
  m.num_attention_heads = r.heads;
  m.ffn_hidden_size = 4 * r.hidden;
  m.seq_length = r.seq;
  m.max_position_embeddings = r.seq;
  m.vocab_size = 50257;
  m.make_vocab_size_divisible_by = 128;
  ParallelSpec& p = s.parallel;
  p.tensor_model_parallel_size = r.tp;
  p.pipeline_model_parallel_size = r.pp;
  p.data_parallel_size = r.dp;
  p.world_size = r.gpus;
  p.schedule = r.pp > 1 ? ScheduleKind::k1F1B : ScheduleKind::kNoPipelining;
  p.recompute_granularity = RecomputeGranularity::kFull;
  s.cluster.name = "a100-node";
  s.cluster.device_name = device.name;
  s.cluster.device = device;
  s.cluster.num_nodes = 1;
  s.cluster.gpus_per_node = 8;
  s.cluster.intra_node = LinkSpec{device.nvlink_bandwidth_GBps, device.nvlink_latency_us};
  s.cluster.inter_node = LinkSpec{device.network_bandwidth_GBps, device.network_latency_us};
  s.training.micro_batch_size = r.micro_batch;
  s.training.global_batch_size = r.global_batch;
  s.training.params_dtype = DType::kFP16;
  return s;
}

bool is_validation_row(size_t index) {
  uint64_t z = static_cast<uint64_t>(index) + 0x9E3779B97F4A7C15ULL;  // splitmix64
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return z % 5 == 0;
}

// ---------------------------------------------------------------------------------------------
// Parameters.

std::vector<FitParam> all_fit_params() {
  return {FitParam::kGemmMaxEfficiency,   FitParam::kGemmHalfEfficiencyDim,  FitParam::kElementwiseEfficiency,
          FitParam::kAttentionEfficiency, FitParam::kCollectiveEfficiency,   FitParam::kKernelLaunchUs,
          FitParam::kPerLayerOverheadUs,  FitParam::kPerIterationOverheadUs, FitParam::kNvlinkLatencyUs};
}

const char* to_string(FitParam p) {
  switch (p) {
    case FitParam::kGemmMaxEfficiency:
      return "gemm_max_efficiency";
    case FitParam::kGemmHalfEfficiencyDim:
      return "gemm_half_efficiency_dim";
    case FitParam::kElementwiseEfficiency:
      return "elementwise_efficiency";
    case FitParam::kAttentionEfficiency:
      return "attention_efficiency";
    case FitParam::kCollectiveEfficiency:
      return "collective_efficiency";
    case FitParam::kKernelLaunchUs:
      return "kernel_launch_us";
    case FitParam::kPerLayerOverheadUs:
      return "per_layer_overhead_us";
    case FitParam::kPerIterationOverheadUs:
      return "per_iteration_overhead_us";
    case FitParam::kNvlinkLatencyUs:
      return "nvlink_latency_us";
  }
  return "?";
}

namespace {
double& field(DeviceProfile& d, FitParam p) {
  switch (p) {
    case FitParam::kGemmMaxEfficiency:
      return d.gemm_max_efficiency;
    case FitParam::kGemmHalfEfficiencyDim:
      return d.gemm_half_efficiency_dim;
    case FitParam::kElementwiseEfficiency:
      return d.elementwise_efficiency;
    case FitParam::kAttentionEfficiency:
      return d.attention_efficiency;
    case FitParam::kCollectiveEfficiency:
      return d.collective_efficiency;
    case FitParam::kKernelLaunchUs:
      return d.kernel_launch_us;
    case FitParam::kPerLayerOverheadUs:
      return d.per_layer_overhead_us;
    case FitParam::kPerIterationOverheadUs:
      return d.per_iteration_overhead_us;
    case FitParam::kNvlinkLatencyUs:
      return d.nvlink_latency_us;
  }
  return d.per_iteration_overhead_us;
}
bool is_fraction(FitParam p) {
  return p == FitParam::kGemmMaxEfficiency || p == FitParam::kElementwiseEfficiency ||
         p == FitParam::kAttentionEfficiency || p == FitParam::kCollectiveEfficiency;
}
// Ceilings of the efficiencies. cuBLAS reaches about 90 % of an A100's fp16 tensor-core peak on
// large GEMMs; without this bound the fit trades a 100 %-of-peak GEMM against per-layer overheads
// (nearly as good on the calibration shapes, far too optimistic for large models).
double upper_fraction(FitParam p) {
  return p == FitParam::kGemmMaxEfficiency ? 0.9 : 1.0;
}

// Offset of the log transform: log(v + unit) keeps a slope at v = 0, so an overhead that starts at
// zero can grow (a plain log is flat there), and is multiplicative for v ≫ unit.
double unit_of(FitParam p) {
  switch (p) {
    case FitParam::kGemmHalfEfficiencyDim:
      return 8;
    case FitParam::kPerIterationOverheadUs:
      return 100;
    default:
      return 1;
  }
}
// Unconstrained coordinate ↔ parameter value: logit for fractions, log(v + unit) for the others.
double to_coord(FitParam p, double v) {
  if (is_fraction(p)) {
    v = std::clamp(v / upper_fraction(p), 1e-4, 1 - 1e-4);
    return std::log(v / (1 - v));
  }
  return std::log(std::max(v, 0.0) + unit_of(p));
}
double from_coord(FitParam p, double x) {
  if (is_fraction(p)) return upper_fraction(p) / (1 + std::exp(-x));
  return std::max(0.0, std::exp(std::clamp(x, -30.0, 30.0)) - unit_of(p));
}

// Scenarios and layouts of the rows, built once; each evaluation swaps the device in.
struct Problem {
  std::vector<Scenario> scenarios;
  std::vector<Layout> layouts;
  std::vector<double> measured_s;
  std::vector<bool> validation;

  double predict(size_t i) const { return estimate_iteration(CostModel(scenarios[i], layouts[i])).total_s; }
  void set_device(const DeviceProfile& d) {
    for (Scenario& s : scenarios) {
      s.cluster.device = d;
      s.cluster.intra_node = LinkSpec{d.nvlink_bandwidth_GBps, d.nvlink_latency_us};
      s.cluster.inter_node = LinkSpec{d.network_bandwidth_GBps, d.network_latency_us};
    }
  }
};

StatusOr<Problem> make_problem(const std::vector<CalibrationRow>& rows, const DeviceProfile& device) {
  Problem pr;
  for (size_t i = 0; i < rows.size(); ++i) {
    pr.scenarios.push_back(calibration_scenario(rows[i], device));
    StatusOr<Layout> L = derive_layout(pr.scenarios.back());
    if (!L) return L.status().with_context("calibration row " + std::to_string(i + 1));
    pr.layouts.push_back(std::move(L).value());
    pr.measured_s.push_back(rows[i].time_ms * 1e-3);
    pr.validation.push_back(is_validation_row(i));
  }
  return pr;
}

}  // namespace

double get_fit_param(const DeviceProfile& d, FitParam p) {
  return field(const_cast<DeviceProfile&>(d), p);
}
void set_fit_param(DeviceProfile& d, FitParam p, double v) {
  field(d, p) = v;
}

double calibration_mape(const std::vector<CalibrationRow>& rows, const DeviceProfile& profile, int which,
                        std::vector<double>* predicted_ms) {
  StatusOr<Problem> pr = make_problem(rows, profile);
  if (!pr) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  int n = 0;
  if (predicted_ms) predicted_ms->assign(rows.size(), 0.0);
  for (size_t i = 0; i < rows.size(); ++i) {
    const double pred = pr->predict(i);
    if (predicted_ms) (*predicted_ms)[i] = pred * 1e3;
    if (which == 2 || (which == 1) == pr->validation[i]) {
      sum += absolute_percentage_error(pred, pr->measured_s[i]);
      ++n;
    }
  }
  return n > 0 ? sum / n : 0.0;
}

StatusOr<FitResult> fit_device_profile(const std::vector<CalibrationRow>& rows, const DeviceProfile& start,
                                       const FitOptions& options) {
  if (options.params.empty()) return Status::invalid_argument("fit: no parameters to fit");
  DeviceProfile dev = start;
  if (options.start_from_defaults)
    for (FitParam p : options.params) set_fit_param(dev, p, get_fit_param(DeviceProfile{}, p));
  EELLM_ASSIGN_OR_RETURN(Problem pr, make_problem(rows, dev));
  auto apply = [&](const std::vector<double>& x) {
    for (size_t j = 0; j < x.size(); ++j) set_fit_param(dev, options.params[j], from_coord(options.params[j], x[j]));
    pr.set_device(dev);
  };
  // Mean squared log error over the training rows: scale-free, so short and long iterations weigh
  // alike, and smooth for the simplex.
  auto objective = [&](const std::vector<double>& x) {
    apply(x);
    double s = 0;
    int n = 0;
    for (size_t i = 0; i < pr.scenarios.size(); ++i) {
      if (pr.validation[i]) continue;
      const double r = std::log(std::max(pr.predict(i), 1e-12) / pr.measured_s[i]);
      s += r * r;
      ++n;
    }
    return n > 0 ? s / n : 0.0;
  };
  const DeviceProfile first = dev;
  auto fitted = [&](FitParam p) {
    return std::find(options.params.begin(), options.params.end(), p) != options.params.end();
  };
  std::vector<std::pair<double, double>> starts = {{first.kernel_launch_us, first.per_layer_overhead_us}};
  if ((fitted(FitParam::kKernelLaunchUs) || fitted(FitParam::kPerLayerOverheadUs)) &&
      !options.start_launch_and_layer_us.empty())
    starts = options.start_launch_and_layer_us;
  FitResult res;
  std::vector<double> best;
  double best_value = std::numeric_limits<double>::infinity();
  for (const auto& [launch, layer] : starts) {
    DeviceProfile s0 = first;
    if (fitted(FitParam::kKernelLaunchUs)) s0.kernel_launch_us = launch;
    if (fitted(FitParam::kPerLayerOverheadUs)) s0.per_layer_overhead_us = layer;
    std::vector<double> x;
    for (FitParam p : options.params) x.push_back(to_coord(p, get_fit_param(s0, p)));
    for (int run = 0; run <= options.restarts; ++run)
      x = nelder_mead(objective, x, run % 2 == 0 ? 1.0 : 0.25, options.max_evaluations, &res.evaluations);
    const double v = objective(x);
    if (v < best_value) best_value = v, best = x;
  }
  apply(best);
  res.profile = dev;
  res.train_mape = calibration_mape(rows, dev, 0, &res.predicted_ms);
  res.validation_mape = calibration_mape(rows, dev, 1);
  for (size_t i = 0; i < rows.size(); ++i) {
    res.validation.push_back(pr.validation[i]);
    (pr.validation[i] ? res.validation_rows : res.train_rows) += 1;
  }
  return res;
}

std::string device_profile_to_yaml(const DeviceProfile& d, const std::string& comment) {
  std::ostringstream o;
  std::istringstream lines(comment);
  std::string line;
  while (std::getline(lines, line)) o << (line.empty() ? "#" : "# " + line) << "\n";
  // Every field of the profile (the one list in scenario_fields.h), doubles in their shortest
  // round-trip form so a fitted or measured profile reads back exactly.
  for_each_field(d, [&o](const char* key, const auto& v) {
    using T = std::decay_t<decltype(v)>;
    o << key << ": ";
    if constexpr (std::is_same_v<T, double>) {
      char buf[64];
      auto [ptr, ec] = std::to_chars(buf, buf + sizeof buf, v);
      (void)ec;
      o << std::string_view(buf, static_cast<size_t>(ptr - buf));
    } else {
      o << v;
    }
    o << "\n";
  });
  return o.str();
}

std::vector<ResidualGroup> residuals_by(const std::vector<CalibrationRow>& rows,
                                        const std::vector<double>& predicted_ms, const std::string& attribute) {
  auto key = [&](const CalibrationRow& r) {
    if (attribute == "gpus") return r.gpus;
    if (attribute == "tp") return r.tp;
    if (attribute == "pp") return r.pp;
    if (attribute == "dp") return r.dp;
    if (attribute == "micro_batch") return r.micro_batch;
    if (attribute == "hidden") return r.hidden;
    if (attribute == "layers") return r.layers;
    return 0;
  };
  std::vector<ResidualGroup> groups;
  for (size_t i = 0; i < rows.size() && i < predicted_ms.size(); ++i) {
    const int k = key(rows[i]);
    auto it = std::find_if(groups.begin(), groups.end(), [k](const ResidualGroup& g) { return g.value == k; });
    if (it == groups.end()) {
      groups.push_back(ResidualGroup{k, 0, 0, 0});
      it = groups.end() - 1;
    }
    const double rel = (predicted_ms[i] - rows[i].time_ms) / rows[i].time_ms;
    it->rows += 1;
    it->mape += std::abs(rel);
    it->bias += rel;
  }
  for (ResidualGroup& g : groups) {
    g.mape *= 100.0 / g.rows;
    g.bias *= 100.0 / g.rows;
  }
  std::sort(groups.begin(), groups.end(),
            [](const ResidualGroup& a, const ResidualGroup& b) { return a.value < b.value; });
  return groups;
}

}  // namespace eellm

// ---------------------------------------------------------------------------------------------
// The multi-node set.

namespace eellm {

StatusOr<std::vector<MultiNodeRow>> read_multi_node_csv(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::not_found("multi-node calibration file " + path + " cannot be opened");
  std::vector<MultiNodeRow> rows;
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.empty() || line[0] == '#' || line.rfind("source,", 0) == 0) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    const std::string where = path + ":" + std::to_string(line_no);
    if (cells.size() != 15)
      return Status::invalid_argument(where + ": has " + std::to_string(cells.size()) +
                                      " columns; expected 15 (source, parameters_billion, ..., "
                                      "iteration_time_s)");
    std::vector<double> v(15, 0.0);
    for (size_t c = 1; c < 15; ++c) {
      if (c == 12 && cells[c].empty()) continue;  // micro batch not given
      try {
        v[c] = std::stod(cells[c]);
      } catch (...) {
        return Status::invalid_argument(where + ": column " + std::to_string(c + 1) + " ('" + cells[c] +
                                        "') is not a number");
      }
    }
    MultiNodeRow r;
    r.source = cells[0];
    r.params_billion = v[1];
    r.heads = static_cast<int>(v[2]), r.hidden = static_cast<int>(v[3]), r.layers = static_cast<int>(v[4]);
    r.seq = static_cast<int>(v[5]), r.vocab = static_cast<int>(v[6]);
    r.tp = static_cast<int>(v[7]), r.pp = static_cast<int>(v[8]), r.dp = static_cast<int>(v[9]);
    r.gpus = static_cast<int>(v[10]), r.global_batch = static_cast<int>(v[11]);
    r.micro_batch = static_cast<int>(v[12]);
    r.achieved_tflops = v[13], r.time_s = v[14];
    if (r.tp * r.pp * r.dp != r.gpus || r.time_s <= 0 || r.layers % r.pp != 0)
      return Status::invalid_argument(where +
                                      ": tp·pp·dp must equal gpus, the layers must split evenly "
                                      "over pp and iteration_time_s must be positive");
    rows.push_back(r);
  }
  if (rows.empty()) return Status::invalid_argument("multi-node calibration file " + path + " has no data rows");
  return rows;
}

Scenario multi_node_scenario(const MultiNodeRow& r, const ClusterSpec& cluster, RunChoice choice) {
  CalibrationRow c{r.gpus, r.global_batch, choice.micro_batch, r.hidden, r.heads, r.layers, r.seq, r.tp,
                   r.dp,   r.pp,           r.time_s * 1e3};
  Scenario s = calibration_scenario(c, cluster.device);
  s.name = "multi-node " + r.source;
  s.model.vocab_size = r.vocab;
  s.cluster = cluster;
  s.cluster.num_nodes = (r.gpus + std::max(1, cluster.gpus_per_node) - 1) / std::max(1, cluster.gpus_per_node);
  if (choice.vp > 1) {
    s.parallel.virtual_pipeline_model_parallel_size = choice.vp;
    s.parallel.schedule = ScheduleKind::kInterleaved1F1B;
  }
  return s;
}

namespace {

bool fits_memory(const CostModel& cm) {
  const double capacity = cm.scenario().cluster.device.memory_GiB * 1024.0 * 1024.0 * 1024.0;
  for (int st = 0; st < cm.layout().pp; ++st)
    if (static_cast<double>(cm.stage_memory(st).peak_bytes()) > capacity) return false;
  return true;
}

}  // namespace

MultiNodePrediction predict_multi_node(const MultiNodeRow& r, const ClusterSpec& cluster) {
  MultiNodePrediction best;
  std::vector<int> mbs = r.micro_batch > 0 ? std::vector<int>{r.micro_batch} : std::vector<int>{1, 2, 4, 8};
  const int per_stage = r.layers / r.pp;
  for (int mb : mbs) {
    if ((r.global_batch / r.dp) % mb != 0) continue;
    for (int vp = 1; vp <= per_stage; ++vp) {
      if (per_stage % vp != 0 || (vp > 1 && r.pp <= 2)) continue;
      const Scenario s = multi_node_scenario(r, cluster, RunChoice{mb, vp});
      StatusOr<Layout> L = derive_layout(s);
      if (!L) continue;
      const CostModel cm(s, *L);
      if (!fits_memory(cm)) continue;
      const double t = estimate_iteration(cm).total_s;
      if (best.time_s < 0 || t < best.time_s) best = MultiNodePrediction{t, RunChoice{mb, vp}};
    }
  }
  return best;
}

const char* to_string(NetworkFitParam p) {
  switch (p) {
    case NetworkFitParam::kInterNodeEfficiency:
      return "inter_node_efficiency";
    case NetworkFitParam::kInterNodeLatencyUs:
      return "inter_node.latency_us";
  }
  return "?";
}

namespace {

// Stage-2 parameters ↔ unconstrained coordinates (logit for fractions, log(v + 1) for latency).
double& network_field(ClusterSpec& c, NetworkFitParam p) {
  switch (p) {
    case NetworkFitParam::kInterNodeEfficiency:
      return c.inter_node_efficiency;
    case NetworkFitParam::kInterNodeLatencyUs:
      return c.inter_node.latency_us;
  }
  return c.inter_node_efficiency;
}
double network_to_coord(NetworkFitParam p, double v) {
  if (p == NetworkFitParam::kInterNodeLatencyUs) return std::log(std::max(v, 0.0) + 1);
  v = std::clamp(v, 1e-4, 1 - 1e-4);
  return std::log(v / (1 - v));
}
double network_from_coord(NetworkFitParam p, double x) {
  if (p == NetworkFitParam::kInterNodeLatencyUs) return std::max(0.0, std::exp(std::clamp(x, -30.0, 30.0)) - 1);
  return 1 / (1 + std::exp(-x));
}

// The joint objective: mean squared log error over the single-node training rows plus the same
// over the multi-node rows with `use[i]`, each set weighing alike. The parameters: the device's
// (o.device.params) and the cluster's (o.multi_node_params). Each row's open settings are chosen
// once per round (predict_multi_node at the round's start) and held during the round's simplex,
// so the objective stays smooth.
ClusterSpec fit_joint_stage(Problem& pr, const std::vector<MultiNodeRow>& multi, const std::vector<bool>& use,
                            ClusterSpec c, const JointFitOptions& o, int evaluations, int rounds) {
  const size_t nd = o.device.params.size();
  std::vector<RunChoice> choice(multi.size());
  auto apply = [&](const std::vector<double>& x) {
    for (size_t j = 0; j < nd; ++j) set_fit_param(c.device, o.device.params[j], from_coord(o.device.params[j], x[j]));
    for (size_t j = nd; j < x.size(); ++j)
      network_field(c, o.multi_node_params[j - nd]) = network_from_coord(o.multi_node_params[j - nd], x[j]);
    c.intra_node = LinkSpec{c.device.nvlink_bandwidth_GBps, c.device.nvlink_latency_us};
    pr.set_device(c.device);
  };
  auto objective = [&](const std::vector<double>& x) {
    apply(x);
    double s = 0, q = 0;
    int n = 0, k = 0;
    for (size_t i = 0; i < multi.size(); ++i) {
      if (!use[i]) continue;
      const Scenario sc = multi_node_scenario(multi[i], c, choice[i]);
      StatusOr<Layout> L = derive_layout(sc);
      const double t = L ? estimate_iteration(CostModel(sc, *L)).total_s : -1;
      const double r = t > 0 ? std::log(t / multi[i].time_s) : 10.0;
      s += r * r, ++n;
    }
    for (size_t i = 0; i < pr.scenarios.size(); ++i) {
      if (pr.validation[i]) continue;
      const double r = std::log(std::max(pr.predict(i), 1e-12) / pr.measured_s[i]);
      q += r * r, ++k;
    }
    return (n > 0 ? s / n : 0.0) + o.single_node_weight * (k > 0 ? q / k : 0.0);
  };
  std::vector<double> x;
  for (FitParam p : o.device.params) x.push_back(to_coord(p, get_fit_param(c.device, p)));
  for (NetworkFitParam p : o.multi_node_params) x.push_back(network_to_coord(p, network_field(c, p)));
  for (int round = 0; round < rounds; ++round) {
    apply(x);
    for (size_t i = 0; i < multi.size(); ++i)
      if (use[i]) choice[i] = predict_multi_node(multi[i], c).choice;
    x = nelder_mead(objective, x, round == 0 ? 0.25 : 0.1, evaluations);
  }
  apply(x);
  return c;
}

std::vector<ScaleBucket> scale_buckets(const std::vector<int>& gpus, const std::vector<double>& rel) {
  std::vector<ScaleBucket> b = {{"<= 8", 0, 0, 0}, {"9-64", 0, 0, 0}, {"65-512", 0, 0, 0}, {"> 512", 0, 0, 0}};
  for (size_t i = 0; i < gpus.size(); ++i) {
    ScaleBucket& k = b[gpus[i] <= 8 ? 0 : gpus[i] <= 64 ? 1 : gpus[i] <= 512 ? 2 : 3];
    k.rows += 1;
    k.mape += std::abs(rel[i]);
    k.bias += rel[i];
  }
  for (ScaleBucket& k : b)
    if (k.rows > 0) k.mape *= 100.0 / k.rows, k.bias *= 100.0 / k.rows;
  return b;
}

}  // namespace

StatusOr<JointFitResult> fit_joint(const std::vector<CalibrationRow>& single, const std::vector<MultiNodeRow>& multi,
                                   const ClusterSpec& start, const JointFitOptions& o) {
  JointFitResult res;
  if (!o.stage1) {  // stage 1 skipped: stage 2 starts from the device as given
    res.single.profile = start.device;
    for (size_t i = 0; i < single.size(); ++i) {
      res.single.validation.push_back(is_validation_row(i));
      (is_validation_row(i) ? res.single.validation_rows : res.single.train_rows) += 1;
    }
  } else {
    EELLM_ASSIGN_OR_RETURN(res.single, fit_device_profile(single, start.device, o.device));
  }
  ClusterSpec c = start;
  c.device = res.single.profile;
  c.device_name = start.device_name;
  const std::vector<bool> all(multi.size(), true);
  EELLM_ASSIGN_OR_RETURN(Problem pr, make_problem(single, c.device));
  res.cluster = fit_joint_stage(pr, multi, all, c, o, o.joint_evaluations, 2);
  // The final device may differ from stage 1's (the GEMM ceiling): single-node figures anew.
  res.single.profile = res.cluster.device;
  res.single.train_mape = calibration_mape(single, res.cluster.device, 0, &res.single.predicted_ms);
  res.single.validation_mape = calibration_mape(single, res.cluster.device, 1);
  std::vector<int> gpus;
  std::vector<double> rel;
  for (size_t i = 0; i < single.size(); ++i)
    if (res.single.validation[i]) {
      gpus.push_back(single[i].gpus);
      rel.push_back((res.single.predicted_ms[i] - single[i].time_ms) / single[i].time_ms);
    }
  double fit_sum = 0, loo_sum = 0, loo_bias = 0;
  for (size_t i = 0; i < multi.size(); ++i) {
    res.fitted.push_back(predict_multi_node(multi[i], res.cluster));
    fit_sum += absolute_percentage_error(res.fitted.back().time_s, multi[i].time_s);
    std::vector<bool> use = all;
    use[i] = false;
    // Leave-one-out: the joint stage again without row i, from the joint optimum.
    const ClusterSpec loo =
        o.leave_one_out ? fit_joint_stage(pr, multi, use, res.cluster, o, o.loo_evaluations, 1) : res.cluster;
    res.held_out.push_back(predict_multi_node(multi[i], loo));
    const double r = (res.held_out.back().time_s - multi[i].time_s) / multi[i].time_s;
    loo_sum += std::abs(r) * 100, loo_bias += r * 100;
    gpus.push_back(multi[i].gpus);
    rel.push_back(r);
  }
  const double n = std::max<double>(1, static_cast<double>(multi.size()));
  res.multi_fit_mape = fit_sum / n, res.multi_loo_mape = loo_sum / n, res.multi_loo_bias = loo_bias / n;
  res.buckets = scale_buckets(gpus, rel);
  return res;
}

std::string cluster_profile_to_yaml(const ClusterSpec& c, const std::string& comment) {
  std::ostringstream o;
  std::istringstream lines(comment);
  for (std::string line; std::getline(lines, line);) o << (line.empty() ? "#" : "# " + line) << "\n";
  o << "name: " << c.name << "\ndevice: " << c.device_name << "\nnum_nodes: " << c.num_nodes
    << "\ngpus_per_node: " << c.gpus_per_node << "\nintra_node_fabric: " << to_string(c.intra_node_fabric)
    << "\nnics_per_node: " << c.nics_per_node << "\ninter_node_efficiency: " << c.inter_node_efficiency
    << "\nintra_node: {bandwidth_GBps: " << c.intra_node.bandwidth_GBps << ", latency_us: " << c.intra_node.latency_us
    << "}\ninter_node: {bandwidth_GBps: " << c.inter_node.bandwidth_GBps << ", latency_us: " << c.inter_node.latency_us
    << "}\n";
  return o.str();
}

}  // namespace eellm
