// The fidelity harness of fidelity/fidelity.h: plan sets, subprocess runs under mpirun,
// the residual fit and the error summary.
#include "fidelity/fidelity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

#include "fidelity/calibrate.h"
#include "model/cost_model.h"
#include "model/layout.h"
#include "model/optimize.h"
#include "model/scenario_io.h"
#include "sim/simulate.h"
#include "sim/trace.h"

namespace eellm::fidelity {
namespace fs = std::filesystem;

namespace {

// One plan of the default set: a variation of tiny-ee.
struct PlanSpec {
  const char* name;
  int np, pp, dp;
  ScheduleKind schedule;
  bool exits;
  int microbatches_per_replica;
  bool for_fit;
  int micro_batch = 4;  // sequences per microbatch
};

// Fitting plans: per rank count a plain 1F1B run and one with 1-sequence microbatches (so the
// per-layer overhead, which does not scale with the microbatch, and the compute share, which does,
// are both identifiable). Everything else (EE schedules, GPipe, fill, ZB-H1, other layouts) is judged.
// A third np-2 fitting plan (EE-1F1B, 1-sequence microbatches) has exits on a pipeline, so the
// per-exit overhead is identifiable apart from the per-layer one.
constexpr PlanSpec kPlans[] = {
    {"np2-pp2-1f1b", 2, 2, 1, ScheduleKind::k1F1B, false, 4, true},
    {"np2-dp2-nopipe-mb1", 2, 1, 2, ScheduleKind::kNoPipelining, true, 4, true, 1},
    {"np2-pp2-ee1f1b-mb1", 2, 2, 1, ScheduleKind::kEE1F1B, true, 4, true, 1},
    {"np2-pp2-ee1f1b", 2, 2, 1, ScheduleKind::kEE1F1B, true, 4, false},
    {"np2-pp2-gpipe", 2, 2, 1, ScheduleKind::kGPipe, true, 4, false},
    {"np2-pp2-eefill", 2, 2, 1, ScheduleKind::kEEFill, true, 4, false},
    {"np2-pp2-ee1f1b-m8", 2, 2, 1, ScheduleKind::kEE1F1B, true, 8, false},
    {"np2-pp2-zbh1", 2, 2, 1, ScheduleKind::kZBH1, false, 4, false},
    {"np4-pp4-1f1b", 4, 4, 1, ScheduleKind::k1F1B, false, 8, true},
    {"np4-pp2dp2-1f1b-mb1", 4, 2, 2, ScheduleKind::k1F1B, false, 4, true, 1},
    {"np4-pp4-ee1f1b", 4, 4, 1, ScheduleKind::kEE1F1B, true, 8, false},
    {"np4-pp4-eefill", 4, 4, 1, ScheduleKind::kEEFill, true, 8, false},
    {"np4-pp4-gpipe", 4, 4, 1, ScheduleKind::kGPipe, true, 8, false},
    {"np4-pp2dp2-ee1f1b", 4, 2, 2, ScheduleKind::kEE1F1B, true, 4, false},
    {"np4-dp4-nopipe", 4, 1, 4, ScheduleKind::kNoPipelining, true, 2, false},
};

bool wanted(int np, const std::vector<int>& nps) {
  return nps.empty() || std::find(nps.begin(), nps.end(), np) != nps.end();
}

double log_error_sq(double predicted, double measured) {
  const double r = std::log(std::max(1e-12, predicted) / measured);
  return r * r;
}

}  // namespace

StatusOr<std::vector<FidelityPlan>> default_fidelity_plans(const std::vector<int>& nps) {
  EELLM_ASSIGN_OR_RETURN(Scenario base, load_scenario("tiny-ee"));
  base.model.seq_length = 128;
  base.model.max_position_embeddings = 128;
  base.training.micro_batch_size = 4;
  base.training.eval_interval = 0;
  base.training.save_interval = 0;
  base.training.log_interval = 1;
  base.execution.num_threads = 0;
  std::vector<FidelityPlan> out;
  for (const PlanSpec& p : kPlans) {
    if (!wanted(p.np, nps)) continue;
    FidelityPlan f;
    f.name = p.name;
    f.for_fit = p.for_fit;
    Scenario& s = f.scenario;
    s = base;
    s.name = p.name;
    s.description = "eellm fidelity plan " + f.name;
    s.parallel.pipeline_model_parallel_size = p.pp;
    s.parallel.data_parallel_size = p.dp;
    s.parallel.world_size = p.np;
    s.parallel.schedule = p.schedule;
    s.parallel.fill_explicit_bubbles = p.schedule == ScheduleKind::kEEFill;
    if (!p.exits) {
      s.exits.exit_layer_nums.clear();
      s.exits.exit_layer_weight.clear();
      s.exits.exit_layer_weight_init.clear();
    }
    s.model.num_layers = p.pp == 4 ? 8 : 6;  // whole layers per stage (exits stay after 2 and 4)
    s.training.micro_batch_size = p.micro_batch;
    s.training.global_batch_size = s.training.micro_batch_size * p.dp * p.microbatches_per_replica;
    // Round-trip through YAML so a plan is exactly what a file would give (and is checked).
    auto parsed = parse_scenario(scenario_to_yaml(s), f.name, scenarios_dir());
    if (!parsed.is_ok()) return parsed.status().with_context("default plan " + f.name);
    s = *parsed;
    if (auto layout = derive_layout(s); !layout.is_ok()) return layout.status().with_context("default plan " + f.name);
    out.push_back(std::move(f));
  }
  if (out.empty()) return Status::invalid_argument("no default plan for the requested rank counts (have 2 and 4)");
  return out;
}

StatusOr<std::vector<FidelityPlan>> load_fidelity_plans(const std::string& dir, const std::vector<int>& nps) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::not_found("plans directory " + dir + " does not exist");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<FidelityPlan> out;
  for (const fs::path& p : files) {
    EELLM_ASSIGN_OR_RETURN(Scenario s, load_scenario(p.string()));
    FidelityPlan f;
    f.name = p.stem().string();
    f.for_fit = f.name.rfind("fit-", 0) == 0;
    f.scenario = s;
    if (f.scenario.parallel.world_size <= 0)
      return Status::invalid_argument(p.string() + ": parallel.world_size must be set (the ranks to launch)");
    if (wanted(f.np(), nps)) out.push_back(std::move(f));
  }
  if (out.empty()) return Status::invalid_argument("no *.yaml plan in " + dir + " for the requested rank counts");
  return out;
}

StatusOr<std::vector<double>> read_iteration_seconds(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::io_error("cannot read metrics file " + path);
  std::vector<double> out;
  std::string line;
  int lineno = 0;
  while (std::getline(f, line)) {
    ++lineno;
    const size_t k = line.find("\"seconds\":");
    if (k == std::string::npos) continue;
    char* end = nullptr;
    const double v = std::strtod(line.c_str() + k + 10, &end);
    if (end == line.c_str() + k + 10 || !(v > 0))
      return Status::corruption(path + ":" + std::to_string(lineno) + ": \"seconds\" is not a positive number");
    out.push_back(v);
  }
  if (out.empty()) return Status::corruption(path + ": no iteration with \"seconds\"");
  return out;
}

double measured_iteration_seconds(const std::vector<double>& s) {
  if (s.size() < 3) return s.empty() ? 0 : s.back();
  std::vector<double> mid(s.begin() + 1, s.end() - 1);
  std::sort(mid.begin(), mid.end());
  const size_t n = mid.size();
  return n % 2 ? mid[n / 2] : 0.5 * (mid[n / 2 - 1] + mid[n / 2]);
}

StatusOr<PlanMeasurement> run_plan(const FidelityPlan& plan, const std::string& exe, const std::string& mpirun,
                                   int steps, const std::string& workdir) {
  fs::create_directories(workdir);
  const fs::path dir = fs::path(workdir) / plan.name;
  fs::create_directories(dir);
  const std::string yaml = (dir / "plan.yaml").string(), metrics = (dir / "metrics.jsonl").string(),
                    trace = (dir / "measured.json").string(), log = (dir / "run.log").string();
  {
    std::ofstream f(yaml);
    f << scenario_to_yaml(plan.scenario);
    if (!f) return Status::io_error("cannot write " + yaml);
  }
  fs::remove(metrics);
  fs::remove(trace);
  const std::string cmd = mpirun + " -np " + std::to_string(plan.np()) + " '" + exe + "' fidelity --worker '" + yaml +
                          "' --steps " + std::to_string(steps) + " --metrics '" + metrics + "' --trace '" + trace +
                          "' > '" + log + "' 2>&1";
  const int rc = std::system(cmd.c_str());
  if (rc != 0)
    return Status::internal("plan " + plan.name + ": `" + cmd + "` exited with status " + std::to_string(rc) +
                            " (see " + log + ")");
  return load_plan_measurement(plan, workdir);
}

StatusOr<PlanMeasurement> load_plan_measurement(const FidelityPlan& plan, const std::string& workdir) {
  const fs::path dir = fs::path(workdir) / plan.name;
  EELLM_ASSIGN_OR_RETURN(std::vector<double> secs, read_iteration_seconds((dir / "metrics.jsonl").string()));
  PlanMeasurement m;
  m.name = plan.name;
  m.np = plan.np();
  m.for_fit = plan.for_fit;
  m.measured_s = measured_iteration_seconds(secs);
  EELLM_ASSIGN_OR_RETURN(m.measured, read_trace((dir / "measured.json").string()));
  return m;
}

DeviceProfile apply_residuals(const DeviceProfile& device, const ResidualFit& fit) {
  DeviceProfile d = device;
  d.per_layer_overhead_us = fit.per_layer_overhead_us;
  d.per_exit_overhead_us = fit.per_exit_overhead_us;
  d.compute_share = fit.compute_share;
  d.oversubscribed_efficiency = fit.oversubscribed_efficiency;
  return d;
}

Scenario with_device(const Scenario& scenario, const DeviceProfile& device) {
  Scenario s = scenario;
  s.cluster.device = device;
  s.cluster.device_name = device.name;
  if (device.nvlink_bandwidth_GBps > 0)
    s.cluster.intra_node = LinkSpec{device.nvlink_bandwidth_GBps, device.nvlink_latency_us};
  s.cluster.gpus_per_node = std::max(s.cluster.gpus_per_node, s.parallel.world_size);
  return s;
}

StatusOr<double> predict(const Scenario& scenario, Timeline* timeline) {
  SimulateOptions o;
  o.record_timeline = timeline != nullptr;
  o.compare_without_exits = false;
  EELLM_ASSIGN_OR_RETURN(SimulationResult r, simulate(scenario, o));
  if (timeline) *timeline = std::move(r.engine.timeline);
  return r.summary.iteration_time_s;
}

namespace {
// Whether the plan's ranks time-share the host's cores on `device` (CostModel::compute_share rule).
bool oversubscribed(const Scenario& sc, const DeviceProfile& device) {
  const Scenario s = with_device(sc, device);
  auto L = derive_layout(s);
  if (!L.is_ok()) return false;
  Scenario a = s, b = s;
  a.cluster.device.oversubscribed_efficiency = 1;
  b.cluster.device.oversubscribed_efficiency = 0.5;
  return CostModel(a, *L).compute_share() != CostModel(b, *L).compute_share();
}
}  // namespace

StatusOr<ResidualFit> fit_residuals(const std::vector<FidelityPlan>& plans,
                                    const std::vector<PlanMeasurement>& measured, const DeviceProfile& device) {
  std::vector<std::pair<const FidelityPlan*, double>> rows;
  bool with_exits = false, without_exits = false, over = false, under = false;
  for (const PlanMeasurement& m : measured) {
    if (!m.for_fit) continue;
    const auto it = std::find_if(plans.begin(), plans.end(), [&](const FidelityPlan& p) { return p.name == m.name; });
    if (it == plans.end()) return Status::invalid_argument("measurement of unknown plan " + m.name);
    if (!(m.measured_s > 0)) return Status::invalid_argument("plan " + m.name + ": measured time must be > 0");
    rows.push_back({&*it, m.measured_s});
    (it->scenario.exits.exit_layer_nums.empty() ? without_exits : with_exits) = true;
    (oversubscribed(it->scenario, device) ? over : under) = true;
  }
  if (rows.empty()) return Status::invalid_argument("no fitting plan among the measurements");
  // Free coordinates: ±log(1 + overhead/10 µs) for the per-layer (and, with plans with and without
  // exits, the per-exit) overhead; 1.5·logistic for the compute share (a rank may beat the
  // single-thread micro-benchmark when its caches are warmer) and, when some fitting plan time-shares
  // the cores and some does not, the oversubscribed efficiency.
  const bool fit_exit = with_exits && without_exits, fit_over = over && under;
  ResidualFit base;
  base.per_layer_overhead_us = device.per_layer_overhead_us;
  base.per_exit_overhead_us = fit_exit ? 0 : device.per_exit_overhead_us;
  base.compute_share = device.compute_share;
  base.oversubscribed_efficiency = device.oversubscribed_efficiency;
  base.fitted = {"per_layer_overhead_us", "compute_share"};
  if (fit_exit) base.fitted.push_back("per_exit_overhead_us");
  if (fit_over) base.fitted.push_back("oversubscribed_efficiency");
  // |x|, not a clamp at 0: below 0 a clamp is flat, and a simplex vertex that strays there cannot find
  // its way back (the per-exit overhead stuck at 0 while the per-layer one took its share).
  auto overhead = [](double x) { return 10.0 * std::expm1(std::min(std::fabs(x), 12.0)); };
  auto fraction = [](double x) { return 1.5 / (1.0 + std::exp(-x)); };
  auto decode = [&](const std::vector<double>& x) {
    ResidualFit f = base;
    size_t i = 0;
    f.per_layer_overhead_us = overhead(x[i++]);
    f.compute_share = fraction(x[i++]);
    if (fit_exit) f.per_exit_overhead_us = overhead(x[i++]);
    if (fit_over) f.oversubscribed_efficiency = fraction(x[i++]);
    return f;
  };
  Status error = Status::ok();
  auto objective = [&](const std::vector<double>& x) {
    const DeviceProfile d = apply_residuals(device, decode(x));
    double e = 0;
    for (const auto& [plan, t] : rows) {
      auto p = predict(with_device(plan->scenario, d));
      if (!p.is_ok()) {
        error = p.status();
        return 1e300;
      }
      e += log_error_sq(*p, t);
    }
    return e / static_cast<double>(rows.size());
  };
  std::vector<double> x0(base.fitted.size(), std::log(2.0));  // fractions 1.5/(1+0.5) = 1
  x0[0] = 0;                                                  // no per-layer overhead
  if (fit_exit) x0[2] = 0;
  int evals = 0;
  std::vector<double> x = nelder_mead(objective, x0, 0.5, 400, &evals);
  x = nelder_mead(objective, x, 0.1, 300, &evals);
  if (!error.is_ok()) return error;
  ResidualFit fit = decode(x);
  const DeviceProfile d = apply_residuals(device, fit);
  double sum = 0;
  for (const auto& [plan, t] : rows) {
    EELLM_ASSIGN_OR_RETURN(double p, predict(with_device(plan->scenario, d)));
    sum += absolute_percentage_error(p, t);
  }
  fit.fit_mape = sum / static_cast<double>(rows.size());
  return fit;
}

FidelityReport summarize_fidelity(const std::vector<PlanMeasurement>& plans) {
  FidelityReport r;
  r.plans = plans;
  int nfit = 0, njudged = 0;
  std::map<int, int> count_by_np;
  std::map<std::tuple<int, bool, std::string>, OpKindFidelity> ops;
  for (const PlanMeasurement& m : plans) {
    const double ape = absolute_percentage_error(m.predicted_s, m.measured_s);
    if (m.for_fit) {
      r.fit_mape += ape, ++nfit;
      continue;
    }
    r.judged_mape += ape, ++njudged;
    r.judged_mape_by_np[m.np] += ape, ++count_by_np[m.np];
    if (m.predicted.events.empty() || m.measured.events.empty()) continue;
    for (const OpRow& e : compare_ops(m.predicted, m.measured)) {
      if (e.count_measured == 0 && e.count_predicted > 0) {
        if (std::find(r.not_measured.begin(), r.not_measured.end(), e.name()) == r.not_measured.end())
          r.not_measured.push_back(e.name());
        continue;
      }
      if (!e.comparable()) continue;
      // Work the executor does not do as a separate step (ZB-H1's W: BWD_INPUT runs the whole
      // backward, W is an empty timed step) has no meaningful relative error; it is listed apart.
      // (Not for communication: a wait or send the run did not have is an error.)
      if (e.part.empty() && !Instr{e.op}.is_send() && !(e.mean_measured_s > 1e-3 * e.mean_predicted_s)) {
        const std::string name = e.name();
        if (std::find(r.not_executed.begin(), r.not_executed.end(), name) == r.not_executed.end())
          r.not_executed.push_back(name);
        continue;
      }
      if (!(e.mean_measured_s > 0)) continue;  // no relative error against nothing measured
      OpKindFidelity& o = ops[{static_cast<int>(e.op), e.exit_part, e.part}];
      o.op = e.op, o.exit_part = e.exit_part, o.part = e.part;
      ++o.plans;
      o.mape += 100.0 * std::fabs(e.relative_error);
      o.mean_signed += 100.0 * e.relative_error;
    }
  }
  if (nfit) r.fit_mape /= nfit;
  if (njudged) r.judged_mape /= njudged;
  for (auto& [np, v] : r.judged_mape_by_np) v /= count_by_np[np];
  for (auto& [k, o] : ops) {
    o.mape /= o.plans, o.mean_signed /= o.plans;
    r.per_op.push_back(o);
  }
  return r;
}

std::string FidelityReport::to_text() const {
  std::ostringstream os;
  char line[200];
  std::snprintf(line, sizeof line, "%-22s %3s %-6s %12s %12s %9s\n", "plan", "np", "role", "measured ms",
                "predicted ms", "error %");
  os << line;
  for (const PlanMeasurement& m : plans) {
    std::snprintf(line, sizeof line, "%-22s %3d %-6s %12.1f %12.1f %+9.1f\n", m.name.c_str(), m.np,
                  m.for_fit ? "fit" : "judged", m.measured_s * 1e3, m.predicted_s * 1e3,
                  100.0 * (m.predicted_s - m.measured_s) / m.measured_s);
    os << line;
  }
  std::snprintf(line, sizeof line, "MAPE fitting plans %.1f %%, judged plans %.1f %%", fit_mape, judged_mape);
  os << line;
  for (const auto& [np, v] : judged_mape_by_np) {
    std::snprintf(line, sizeof line, "; np %d: %.1f %%", np, v);
    os << line;
  }
  os << "\nper op kind (judged plans, mean per op; RECV: the receiver's wait, AR-EMB split into wait and "
        "transfer; SEND not comparable, see docs/accuracy.md): MAPE / mean signed error\n";
  for (const OpKindFidelity& o : per_op) {
    OpRow row;
    row.op = o.op, row.exit_part = o.exit_part, row.part = o.part;
    std::snprintf(line, sizeof line, "  %-28s %3d plans %7.1f %% %+8.1f %%\n", row.name().c_str(), o.plans, o.mape,
                  o.mean_signed);
    os << line;
  }
  if (!not_measured.empty()) {
    os << "  not measured (the executor does not record them):";
    for (const std::string& n : not_measured) os << " " << n;
    os << "\n";
  }
  if (!not_executed.empty()) {
    os << "  not separate steps in the executor (predicted > 0, measured ~0):";
    for (const std::string& n : not_executed) os << " " << n;
    os << "\n";
  }
  return os.str();
}

}  // namespace eellm::fidelity
