// `eellm calibrate [--out profile.yaml] [--cluster-out cluster.yaml] [--quick]`: micro-benchmarks of
// this machine through the CPU backend and, under mpirun, the MPI communicator (fidelity/calibrate.h);
// writes a DeviceProfile YAML (scenarios/devices format) and, with --cluster-out, a cluster file
// whose intra_node link is the fitted alpha-beta pair and whose device is the written profile.
// Under mpirun every rank takes part in the communication benchmarks; world rank 0 then runs the
// compute benchmarks with the threads one rank of that job gets, and writes the files.
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "exec/backend/gemm_choice.h"
#include "exec/io/safetensors.h"
#include "exec/train/runtime.h"
#include "fidelity/calibrate.h"
#include "model/fit.h"
#include "model/scenario_io.h"
#ifdef EELLM_HAVE_MPI
#include "exec/comm/mpi/mpi_comm.h"
#endif

namespace eellm::cli {
namespace {

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

// The 1-minute load average (/proc/loadavg): benchmarks on a shared machine are only as good as it.
std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string one;
  if (!(f >> one)) return "unknown";
  return one;
}

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  if (!f) return Status::io_error("cannot write " + path);
  f << text;
  if (!f) return Status::io_error("error writing " + path);
  return Status::ok();
}

struct CalibrateOptions {
  std::string out, cluster_out, name = "cpu-local", base = "cpu-local";
  bool quick = false;
  int threads = 0;
};

// What must hold before anything is measured: the --base profile loads, --out/--cluster-out can be written.
Status check_calibrate_options(const CalibrateOptions& o) {
  if (auto base = load_device_profile(o.base); !base.is_ok()) return base.status().with_context("--base " + o.base);
  if (!o.out.empty()) EELLM_RETURN_IF_ERROR(exec::check_writable_file(o.out, "--out"));
  if (!o.cluster_out.empty()) EELLM_RETURN_IF_ERROR(exec::check_writable_file(o.cluster_out, "--cluster-out"));
  return Status::ok();
}

// Links not measured in this run keep the base profile's figures (checked before the benchmarks), and
// so do the residuals fitted by `eellm fidelity` (re-run it after a calibration).
void keep_base_figures(const std::string& base_name, DeviceProfile& d) {
  if (auto base = load_device_profile(base_name); base.is_ok()) {
    d.nvlink_bandwidth_GBps = base->nvlink_bandwidth_GBps, d.nvlink_latency_us = base->nvlink_latency_us;
    d.network_bandwidth_GBps = base->network_bandwidth_GBps, d.network_latency_us = base->network_latency_us;
    d.collective_efficiency = base->collective_efficiency, d.p2p_efficiency = base->p2p_efficiency;
    d.collective_latency_us = base->collective_latency_us, d.large_message_KiB = base->large_message_KiB;
    d.large_message_p2p_efficiency = base->large_message_p2p_efficiency;
    d.large_message_collective_efficiency = base->large_message_collective_efficiency;
    d.per_layer_overhead_us = base->per_layer_overhead_us;
    d.per_exit_overhead_us = base->per_exit_overhead_us;
    d.per_iteration_overhead_us = base->per_iteration_overhead_us;
    d.compute_share = base->compute_share;
    d.oversubscribed_efficiency = base->oversubscribed_efficiency;
  }
}

Status run_calibrate(const CalibrateOptions& o, exec::Communicator* world) {
  EELLM_RETURN_IF_ERROR(check_calibrate_options(o));
  const bool root = !world || world->rank() == 0;
  const int ranks = world ? world->size() : 1;
  fidelity::CalibrationOptions co;
  co.quick = o.quick;
  co.min_time_s = o.quick ? 0.02 : 0.1;
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  co.num_threads = o.threads > 0 ? o.threads : std::max(1, hw / ranks);

  fidelity::CommCalibration comm;
  fidelity::LinkFit link;
  bool have_link = false;
  if (world && ranks >= 2) {
    EELLM_ASSIGN_OR_RETURN(comm, fidelity::calibrate_comm(*world, co));
    if (root) {
      EELLM_ASSIGN_OR_RETURN(link, fidelity::fit_link(comm.p2p, comm.allreduce, ranks));
      have_link = true;
    }
  }
  if (!root) return world->barrier(600);  // wait (polling with sleeps) while rank 0 benchmarks compute

  // The GEMM library first (the fastest of Eigen and the loadable BLAS libraries, at GPT shapes of hidden 256 and 512,
  // one microbatch of 2,048 tokens): the compute calibration then measures the executor as it will run.
  std::vector<exec::GemmShape> shapes = exec::gpt_gemm_shapes(2048, 256, 768, 1024, 1024);
  if (!o.quick)
    for (const exec::GemmShape& s : exec::gpt_gemm_shapes(2048, 512, 1536, 2048, 2048)) shapes.push_back(s);
  const exec::GemmChoice gemm = exec::measure_cpu_gemm(co.num_threads, shapes);
  std::cout << gemm.log_line() << "\n";
  auto be = exec::make_cpu_backend(co.num_threads, gemm.gemm);
  const auto t0 = std::chrono::steady_clock::now();
  EELLM_ASSIGN_OR_RETURN(fidelity::ComputeCalibration cc, fidelity::calibrate_compute(*be, co));
  // The GEMM grid and the attention again in bf16 math (execution.gemm_math bf16) where oneDNN's
  // bf16 GEMM runs.
  const bool bf16 = exec::bf16_gemm_info().available;
  if (bf16) {
    auto be16 = exec::make_cpu_backend(co.num_threads, gemm.gemm, exec::GemmMath::kBf16);
    fidelity::calibrate_bf16_math(*be16, co, cc);
  }
  fidelity::GemmFit gfit, bfit;
  EELLM_ASSIGN_OR_RETURN(DeviceProfile d, fidelity::device_profile_from_calibration(cc, o.name, &gfit, &bfit));
  keep_base_figures(o.base, d);
  d.host_cores = hw;
  d.cpu_gemm = exec::cpu_gemm_name(gemm.gemm);
  if (have_link) fidelity::apply_link_fit(link, d);
  std::cout << fidelity::calibration_report(cc, gfit, d, bf16 ? &bfit : nullptr);
  if (have_link) std::cout << fidelity::comm_report(comm, link);
  std::cout << "compute benchmarks took "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";

  const std::string cmd = std::string(ranks > 1 ? "mpirun -np " + std::to_string(ranks) + " " : "") +
                          "eellm calibrate" + (o.quick ? " --quick" : "") +
                          (o.threads > 0 ? " --threads " + std::to_string(o.threads) : "");
  const std::string comment =
      o.name + ": measured by `" + cmd + "` on " + utc_now() + ", " + std::to_string(co.num_threads) +
      " backend thread(s) per rank, load average " + load_average() + " on " + std::to_string(hw) + " cores.\n" +
      "GEMM fit MAPE " + std::to_string(std::lround(gfit.mape)) + " % over " + std::to_string(cc.gemm.size()) +
      " shapes; peak_tflops_fp32/fp16 = the fitted fp32 GEMM peak; peak_tflops_bf16 = " +
      (bf16 ? "the same grid in bf16 GEMM math (oneDNN " + exec::bf16_gemm_info().kernel + "), peak fitted, MAPE " +
                  std::to_string(std::lround(bfit.heldout_mape)) + " % on the held-out shapes (checkerboard)"
            : "the fp32 one (no bf16 GEMM here: " + exec::bf16_gemm_info().error + ")") +
      ".\n" + "cpu_gemm = the fastest at GPT training shapes: " + gemm.summary() + ".\n" +
      (have_link ? "nvlink_*, p2p/collective efficiencies and latency, large_message_* = MPI "
                   "shared-memory fit over " +
                       std::to_string(ranks) + " ranks (p2p and all-reduce apart, piecewise in size).\n"
                 : "nvlink_*/network_* kept from " + o.base + " (run under mpirun to measure).\n") +
      "per_layer/per_exit overheads, compute_share and oversubscribed_efficiency are fitted by `eellm fidelity`\n"
      "on its fitting plans (kept from " +
      o.base + " until then).";
  const std::string yaml = device_profile_to_yaml(d, comment);
  if (o.out.empty()) {
    std::cout << "\n" << yaml;
  } else {
    EELLM_RETURN_IF_ERROR(write_file(o.out, yaml));
    std::cout << "wrote " << o.out << "\n";
  }
  if (!o.cluster_out.empty()) {
    namespace fs = std::filesystem;
    std::string device_ref = o.name;
    if (!o.out.empty()) {
      const fs::path dir = fs::absolute(o.cluster_out).parent_path();
      device_ref = fs::relative(fs::absolute(o.out), dir).string();
    }
    const LinkSpec intra{d.nvlink_bandwidth_GBps, d.nvlink_latency_us};
    std::string text = "# Cluster of " + std::to_string(ranks) + " process(es) on this machine, written by `" + cmd +
                       "` on " + utc_now() + ".\nname: local-cpu-calibrated\ndevice: " + device_ref +
                       "\nnum_nodes: 1\ngpus_per_node: " + std::to_string(std::max(ranks, 4)) +
                       "\nintra_node: {bandwidth_GBps: " + std::to_string(intra.bandwidth_GBps) +
                       ", latency_us: " + std::to_string(intra.latency_us) +
                       "}\ninter_node: {bandwidth_GBps: " + std::to_string(d.network_bandwidth_GBps) +
                       ", latency_us: " + std::to_string(d.network_latency_us) + "}\n";
    EELLM_RETURN_IF_ERROR(write_file(o.cluster_out, text));
    std::cout << "wrote " << o.cluster_out << "\n";
  }
  if (world) return world->barrier(600);
  return Status::ok();
}

}  // namespace

void register_calibrate(CLI::App& app) {
  auto o = std::make_shared<CalibrateOptions>();
  CLI::App* cmd = app.add_subcommand("calibrate",
                                     "Measure this machine (GEMM, element-wise, attention, dispatch; MPI links under "
                                     "mpirun) and write a device profile");
  cmd->add_option("--out", o->out, "Device profile YAML to write (default: print it)");
  cmd->add_option("--cluster-out", o->cluster_out,
                  "Also write a cluster file (intra_node = the fitted link, device = --out)");
  cmd->add_option("--name", o->name, "Profile name (default cpu-local)");
  cmd->add_option("--base", o->base, "Profile whose link figures are kept when not measured (default cpu-local)");
  default_elsewhere(
      cmd->add_option("--threads", o->threads, "Backend threads for the compute benchmarks (default: cores / ranks)")
          ->check(int_in(1, kMaxThreads)));
  cmd->add_flag("--quick", o->quick, "Fewer shapes and shorter timing (about 10-20 s)");
  cmd->callback([o] {
    Status st;
#ifdef EELLM_HAVE_MPI
    if (exec::launched_by_mpi()) {
      auto env = exec::MpiEnvironment::init(nullptr, nullptr);
      if (!env.is_ok()) {
        st = env.status();
      } else {
        st = run_calibrate(*o, &(*env)->world());
      }
    } else {
      st = run_calibrate(*o, nullptr);
    }
#else
    st = run_calibrate(*o, nullptr);
#endif
    finish("calibrate", st);
  });
}

}  // namespace eellm::cli
