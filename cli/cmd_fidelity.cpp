// `eellm fidelity [--plans DIR|default] [--np 2,4] [--profile DEVICE]`: the fidelity harness
// (fidelity/fidelity.h). Runs each plan with the executor under mpirun, fits the residual
// parameters on the fitting plans, simulates every plan with the calibrated profile and prints
// per-plan errors, the MAPE of fitting and judged plans and the error per op kind.
// `eellm fidelity --worker PLAN.yaml --steps N --metrics M --trace T` is the per-rank entry point
// the harness launches (the distributed executor of exec/train/runtime.h, as `eellm train` under mpirun).
// `eellm validate` is its deprecated alias (one notice on stderr): "validate" means scenario validation.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "exec/train/runtime.h"
#include "fidelity/fidelity.h"
#include "model/fit.h"
#include "model/scenario_io.h"

namespace eellm::cli {
namespace {

struct FidelityOptions {
  std::string plans = "default", profile = "cpu-local", workdir = "runs/fidelity", fitted_out, worker, metrics, trace;
  std::string mpirun = "mpirun --oversubscribe --allow-run-as-root --bind-to none";
  std::vector<int> nps{2, 4};
  std::vector<std::string> only;  // plan names to run (empty: all)
  std::string gemm_math;          // every plan's execution.gemm_math (empty: as the plans say)
  bool no_fit = false;            // judge every plan with the profile's residuals as they are
  bool reuse = false;             // read the measurements an earlier run left in --workdir
  int steps = 5;
};

std::string self_exe() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("eellm") : p.string();
}

StatusOr<int> run_worker(const FidelityOptions& o) {
  EELLM_ASSIGN_OR_RETURN(Scenario sc, load_scenario(o.worker));
  exec::DistributedTrainOptions d;
  d.steps = o.steps;
  d.metrics_path = o.metrics;
  d.trace_path = o.trace;
  return exec::train_distributed_main(sc, d, std::cout);
}

Status run_fidelity(const FidelityOptions& o) {
  EELLM_ASSIGN_OR_RETURN(DeviceProfile device, load_device_profile(o.profile));
  // A profile from before host_cores existed: this machine's cores (the runs happen here).
  if (device.host_cores <= 0) device.host_cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<fidelity::FidelityPlan> plans;
  if (o.plans == "default") {
    EELLM_ASSIGN_OR_RETURN(plans, fidelity::default_fidelity_plans(o.nps));
  } else {
    EELLM_ASSIGN_OR_RETURN(plans, fidelity::load_fidelity_plans(o.plans, o.nps));
  }
  if (!o.only.empty()) {
    std::vector<fidelity::FidelityPlan> kept;
    for (const std::string& name : o.only) {
      const auto it =
          std::find_if(plans.begin(), plans.end(), [&](const fidelity::FidelityPlan& p) { return p.name == name; });
      if (it == plans.end())
        return Status::invalid_argument("--only: no plan named " + name + " for the requested --np");
      kept.push_back(*it);
    }
    plans = std::move(kept);
  }
  for (fidelity::FidelityPlan& p : plans)
    if (!o.gemm_math.empty()) p.scenario.execution.gemm_math = o.gemm_math;
  // The executor derives its schedule from the scenario alone: run it on the profile the
  // simulator predicts with, so both build the same EE-fill lists.
  for (fidelity::FidelityPlan& p : plans) p.scenario = fidelity::with_device(p.scenario, device);
  const std::string exe = self_exe();
  std::vector<fidelity::PlanMeasurement> measured;
  std::vector<fidelity::FidelityPlan> ran;
  int failed = 0;
  for (const fidelity::FidelityPlan& p : plans) {
    std::printf("running %-22s np %d (%s) ... ", p.name.c_str(), p.np(), p.for_fit ? "fit" : "judged");
    std::fflush(stdout);
    auto m = o.reuse ? fidelity::load_plan_measurement(p, o.workdir)
                     : fidelity::run_plan(p, exe, o.mpirun, o.steps, o.workdir);
    if (!m.is_ok()) {  // one broken plan must not throw away the others' measurements
      std::printf("FAILED\n%s\n", m.status().to_string().c_str());
      ++failed;
      continue;
    }
    std::printf("%.1f ms\n", m->measured_s * 1e3);
    measured.push_back(std::move(*m));
    ran.push_back(p);
  }
  plans = std::move(ran);
  const bool any_fit =
      std::any_of(measured.begin(), measured.end(), [](const fidelity::PlanMeasurement& m) { return m.for_fit; });
  DeviceProfile fitted = device;
  if (o.no_fit || !any_fit) {
    std::printf(
        "no residual fit (%s): the profile's per_layer_overhead_us %.1f, per_exit_overhead_us %.1f, "
        "compute_share %.3f, oversubscribed_efficiency %.3f\n",
        o.no_fit ? "--no-fit" : "no fitting plan ran", device.per_layer_overhead_us, device.per_exit_overhead_us,
        device.compute_share, device.oversubscribed_efficiency);
    for (fidelity::PlanMeasurement& m : measured) m.for_fit = false;  // nothing was fitted: all are judged
  } else {
    EELLM_ASSIGN_OR_RETURN(fidelity::ResidualFit fit, fidelity::fit_residuals(plans, measured, device));
    fitted = fidelity::apply_residuals(device, fit);
    std::printf("residual fit on the fitting plans (");
    for (size_t i = 0; i < fit.fitted.size(); ++i) std::printf("%s%s", i ? ", " : "", fit.fitted[i].c_str());
    std::printf(
        "): per_layer_overhead_us %.1f, per_exit_overhead_us %.1f, compute_share %.3f, "
        "oversubscribed_efficiency %.3f\n",
        fit.per_layer_overhead_us, fit.per_exit_overhead_us, fit.compute_share, fit.oversubscribed_efficiency);
  }
  for (size_t i = 0; i < plans.size(); ++i) {
    EELLM_ASSIGN_OR_RETURN(measured[i].predicted_s,
                           fidelity::predict(fidelity::with_device(plans[i].scenario, fitted), &measured[i].predicted));
  }
  const fidelity::FidelityReport report = fidelity::summarize_fidelity(measured);
  std::cout << report.to_text();
  if (failed > 0) std::cout << failed << " plan(s) failed (not in the figures above)\n";
  if (!o.fitted_out.empty()) {
    // Everything the predictions above used: `eellm simulate` with this profile predicts the same.
    std::ofstream f(o.fitted_out);
    f << device_profile_to_yaml(fitted,
                                device.name + ": " + o.profile +
                                    " with per_layer/per_exit overheads, compute_share and "
                                    "oversubscribed_efficiency fitted by `eellm fidelity` on its fitting plans\n"
                                    "(judged-plan MAPE " +
                                    std::to_string(report.judged_mape).substr(0, 5) + " %).");
    if (!f) return Status::io_error("cannot write " + o.fitted_out);
    std::cout << "wrote " << o.fitted_out << "\n";
  }
  if (failed > 0) return Status::internal(std::to_string(failed) + " plan(s) failed to run");
  return Status::ok();
}

// `eellm NAME`: fidelity, or its deprecated alias validate (hidden from the help).
void add_fidelity_command(CLI::App& app, const std::string& name, bool deprecated) {
  auto o = std::make_shared<FidelityOptions>();
  CLI::App* cmd = app.add_subcommand(
      name, "Run small plans with the executor under mpirun and report the simulator's prediction error");
  if (deprecated) cmd->group("");
  cmd->add_option("--plans", o->plans, "Plan directory (*.yaml; fit-*.yaml are fitting plans) or `default`");
  cmd->add_option("--np", o->nps, "Rank counts to run (default 2,4)")->delimiter(',');
  cmd->add_option("--profile", o->profile, "Calibrated device profile (name or file; default cpu-local)");
  cmd->add_option("--steps", o->steps, "Iterations per plan (the first and the traced last are not timed)");
  cmd->add_option("--workdir", o->workdir, "Where plan files, logs, metrics and traces go");
  cmd->add_option("--mpirun", o->mpirun, "Launcher command and flags");
  cmd->add_option("--fitted-out", o->fitted_out,
                  "Write the profile with the fitted residuals (what simulate then reads)");
  cmd->add_option("--only", o->only, "Run only these plans (comma-separated names)")->delimiter(',');
  cmd->add_flag("--reuse", o->reuse,
                "Do not run: re-fit and re-predict the measurements an earlier run left in --workdir");
  cmd->add_flag("--no-fit", o->no_fit, "Judge every plan with the profile's residual figures as they are (no fit)");
  cmd->add_option("--gemm-math", o->gemm_math,
                  "Run (and predict) every plan with this execution.gemm_math, e.g. bf16 to judge bf16 runs")
      ->check(CLI::IsMember({"auto", "fp32", "bf16"}));
  cmd->add_option("--worker", o->worker, "(internal) run one plan as a rank of the distributed executor")->group("");
  cmd->add_option("--metrics", o->metrics, "(internal, --worker) metrics JSONL")->group("");
  cmd->add_option("--trace", o->trace, "(internal, --worker) measured trace of the last iteration")->group("");
  cmd->callback([o, name, deprecated] {
    if (deprecated && o->worker.empty())
      std::cerr << "eellm validate: deprecated name of `eellm fidelity` (validate means scenario validation)\n";
    if (!o->worker.empty()) {
      auto rc = run_worker(*o);
      if (rc.is_ok()) exit_code() = *rc;
      return finish(name + " --worker", rc.status());
    }
    if (o->steps < 3)
      return finish(name, Status::invalid_argument("--steps " + std::to_string(o->steps) +
                                                   " must be at least 3 (warm-up, timed, traced)"));
    finish(name, run_fidelity(*o));
  });
}

}  // namespace

void register_fidelity(CLI::App& app) {
  add_fidelity_command(app, "fidelity", false);
  add_fidelity_command(app, "validate", true);
}

}  // namespace eellm::cli
