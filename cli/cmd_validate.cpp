// `eellm validate [--plans DIR|default] [--np 2,4] [--profile DEVICE]`: the fidelity harness
// (exec/validate_fidelity.h). Runs each plan with the executor under mpirun, fits the residual
// parameters on the fitting plans, simulates every plan with the calibrated profile and prints
// per-plan errors, the MAPE of fitting and judged plans and the error per op kind.
// `eellm validate --worker PLAN.yaml --steps N --metrics M --trace T` is the per-rank entry point
// the harness launches (the distributed executor of exec/runtime.h, as `eellm train` under mpirun).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "exec/runtime.h"
#include "exec/validate_fidelity.h"
#include "model/fit.h"
#include "model/scenario_io.h"

namespace eellm::cli {
namespace {

struct ValidateOptions {
  std::string plans = "default", profile = "cpu-local", workdir = "runs/validate", fitted_out, worker, metrics, trace;
  std::string mpirun = "mpirun --oversubscribe --allow-run-as-root --bind-to none";
  std::vector<int> nps{2, 4};
  int steps = 5;
};

std::string self_exe() {
  std::error_code ec;
  const auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("eellm") : p.string();
}

int run_worker(const ValidateOptions& o) {
  auto sc = load_scenario(o.worker);
  if (!sc.is_ok()) {
    std::cerr << "eellm validate --worker: " << sc.status().to_string() << "\n";
    return 1;
  }
  exec::DistributedTrainOptions d;
  d.steps = o.steps;
  d.metrics_path = o.metrics;
  d.trace_path = o.trace;
  return exec::train_distributed_main(*sc, d, std::cout);
}

Status run_validate(const ValidateOptions& o) {
  EELLM_ASSIGN_OR_RETURN(DeviceProfile device, load_device_profile(o.profile));
  std::vector<exec::FidelityPlan> plans;
  if (o.plans == "default") {
    EELLM_ASSIGN_OR_RETURN(plans, exec::default_fidelity_plans(o.nps));
  } else {
    EELLM_ASSIGN_OR_RETURN(plans, exec::load_fidelity_plans(o.plans, o.nps));
  }
  const std::string exe = self_exe();
  std::vector<exec::PlanMeasurement> measured;
  std::vector<exec::FidelityPlan> ran;
  int failed = 0;
  for (const exec::FidelityPlan& p : plans) {
    std::printf("running %-22s np %d (%s) ... ", p.name.c_str(), p.np(), p.for_fit ? "fit" : "judged");
    std::fflush(stdout);
    auto m = exec::run_plan(p, exe, o.mpirun, o.steps, o.workdir);
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
  EELLM_ASSIGN_OR_RETURN(exec::ResidualFit fit, exec::fit_residuals(plans, measured, device));
  std::printf("residual fit on the fitting plans: per_layer_overhead_us %.1f", fit.per_layer_overhead_us);
  for (const auto& [np, share] : fit.compute_share) std::printf(", compute share np %d %.3f", np, share);
  std::printf("\n");
  for (size_t i = 0; i < plans.size(); ++i) {
    const DeviceProfile d = exec::apply_residuals(device, fit, plans[i].np());
    EELLM_ASSIGN_OR_RETURN(measured[i].predicted_s,
                           exec::predict(exec::with_device(plans[i].scenario, d), &measured[i].predicted));
  }
  const exec::FidelityReport report = exec::summarize_fidelity(measured);
  std::cout << report.to_text();
  if (failed > 0) std::cout << failed << " plan(s) failed (not in the figures above)\n";
  if (!o.fitted_out.empty()) {
    // The profile with the fitted per-layer overhead at the smallest rank count measured.
    const int np = fit.compute_share.empty() ? 1 : fit.compute_share.begin()->first;
    DeviceProfile d = device;
    d.per_layer_overhead_us = exec::apply_residuals(device, fit, np).per_layer_overhead_us;
    std::ofstream f(o.fitted_out);
    f << device_profile_to_yaml(d, device.name + " with per_layer_overhead_us fitted by `eellm validate` (np " +
                                       std::to_string(np) + ")");
    if (!f) return Status::io_error("cannot write " + o.fitted_out);
    std::cout << "wrote " << o.fitted_out << "\n";
  }
  if (failed > 0) return Status::internal(std::to_string(failed) + " plan(s) failed to run");
  return Status::ok();
}

}  // namespace

void register_validate(CLI::App& app) {
  auto o = std::make_shared<ValidateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "validate", "Run small plans with the executor under mpirun and report the simulator's prediction error");
  cmd->add_option("--plans", o->plans, "Plan directory (*.yaml; fit-*.yaml are fitting plans) or `default`");
  cmd->add_option("--np", o->nps, "Rank counts to run (default 2,4)")->delimiter(',');
  cmd->add_option("--profile", o->profile, "Calibrated device profile (name or file; default cpu-local)");
  cmd->add_option("--steps", o->steps, "Iterations per plan (the first and the traced last are not timed)");
  cmd->add_option("--workdir", o->workdir, "Where plan files, logs, metrics and traces go");
  cmd->add_option("--mpirun", o->mpirun, "Launcher command and flags");
  cmd->add_option("--fitted-out", o->fitted_out, "Write the profile with the fitted per-layer overhead");
  cmd->add_option("--worker", o->worker, "(internal) run one plan as a rank of the distributed executor")->group("");
  cmd->add_option("--metrics", o->metrics, "(internal, --worker) metrics JSONL")->group("");
  cmd->add_option("--trace", o->trace, "(internal, --worker) measured trace of the last iteration")->group("");
  cmd->callback([o] {
    if (!o->worker.empty()) {
      exit_code() = run_worker(*o);
      return;
    }
    if (o->steps < 3) {
      std::cerr << "eellm validate: --steps " << o->steps << " must be at least 3 (warm-up, timed, traced)\n";
      exit_code() = 1;
      return;
    }
    const Status st = run_validate(*o);
    if (!st.is_ok()) {
      std::cerr << "eellm validate: " << st.to_string() << "\n";
      exit_code() = 1;
    }
  });
}

}  // namespace eellm::cli
