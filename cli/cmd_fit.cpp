// `eellm fit --data CSV [--multi-node CSV] [--device NAME] [--cluster NAME] [--out FILE]
// [--out-cluster FILE]`: fits a device profile's free parameters (GEMM efficiency model,
// element-wise and collective efficiencies, launch and overhead figures) to measured Megatron
// iterations (model/fit.h) and prints train/validation MAPE and the residuals. With --multi-node,
// the joint fit of device + cluster on both sets (fit_joint): per multi-node row the prediction,
// the error when fitted on and when left out, and the held-out errors by scale.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "model/fit.h"
#include "model/scenario_io.h"

namespace eellm::cli {

namespace {

struct FitCmdOptions {
  std::string data;
  std::string device = "a100-80gb-sxm";
  std::string out;
  std::string multi_node;
  std::string cluster = "a100-80gb-128x8";
  std::string out_cluster;
  int max_evaluations = 4000;
};

// The one failure path (cli/commands.h): main prints "eellm fit: <status>" and exits 1.
int fail(const Status& st) {
  finish("fit", st);
  return 1;
}

void print_multi_node(const std::vector<MultiNodeRow>& multi, const JointFitResult& r) {
  std::printf("\nmulti-node rows: predicted with every row fitted on, and leave-one-out (fitted without it)\n");
  std::printf("  %-22s %5s %3s %3s %3s  %-8s %10s %10s %8s %10s %8s\n", "source", "gpus", "tp", "pp", "dp", "mb/vp",
              "measured_s", "fitted_s", "err %", "held_out_s", "err %");
  for (size_t i = 0; i < multi.size(); ++i) {
    const MultiNodeRow& m = multi[i];
    const MultiNodePrediction& f = r.fitted[i];
    const MultiNodePrediction& h = r.held_out[i];
    std::printf("  %-22s %5d %3d %3d %3d  %2d/%-5d %10.3f %10.3f %+8.2f %10.3f %+8.2f\n", m.source.c_str(), m.gpus,
                m.tp, m.pp, m.dp, h.choice.micro_batch, h.choice.vp, m.time_s, f.time_s,
                100 * (f.time_s - m.time_s) / m.time_s, h.time_s, 100 * (h.time_s - m.time_s) / m.time_s);
  }
  std::printf("multi-node MAPE: fitted on all rows %.2f %%, leave-one-out %.2f %% (mean signed %+.2f %%)\n",
              r.multi_fit_mape, r.multi_loo_mape, r.multi_loo_bias);
  std::printf("\nheld-out error by scale (single-node held-back rows + multi-node leave-one-out)\n");
  std::printf("  %-8s %5s %8s %12s\n", "GPUs", "rows", "MAPE %", "mean signed %");
  for (const ScaleBucket& b : r.buckets)
    std::printf("  %-8s %5d %8.2f %+12.2f\n", b.label.c_str(), b.rows, b.mape, b.bias);
}

void run_joint_fit(const FitCmdOptions& opt) {
  auto cluster = load_cluster_profile(opt.cluster);
  if (!cluster.is_ok()) return (void)fail(cluster.status());
  auto dev = load_device_profile(opt.device);
  if (!dev.is_ok()) return (void)fail(dev.status());
  cluster->device = *dev;
  cluster->device_name = dev->name;
  auto single = read_calibration_csv(opt.data);
  if (!single.is_ok()) return (void)fail(single.status());
  auto multi = read_multi_node_csv(opt.multi_node);
  if (!multi.is_ok()) return (void)fail(multi.status());
  JointFitOptions jo;
  jo.device.max_evaluations = opt.max_evaluations;
  auto r = fit_joint(*single, *multi, *cluster, jo);
  if (!r.is_ok()) return (void)fail(r.status());
  std::printf("joint fit of %s + %s on %s (%zu rows) and %s (%zu rows)\n", dev->name.c_str(), cluster->name.c_str(),
              opt.data.c_str(), single->size(), opt.multi_node.c_str(), multi->size());
  std::printf("single-node MAPE: train %.2f %% (%d rows), held-back %.2f %% (%d rows)\n", r->single.train_mape,
              r->single.train_rows, r->single.validation_mape, r->single.validation_rows);
  std::printf("\nparameter                      fitted\n");
  for (FitParam p : jo.device.params) std::printf("%-28s %12.4g\n", to_string(p), get_fit_param(r->cluster.device, p));
  std::printf("%-28s %12.4g\n%-28s %12.4g\n", "inter_node_efficiency", r->cluster.inter_node_efficiency,
              "inter_node.latency_us", r->cluster.inter_node.latency_us);
  print_multi_node(*multi, *r);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "single-node MAPE train %.2f %%, held-back %.2f %%; multi-node MAPE fitted %.2f %%, "
                "leave-one-out %.2f %%",
                r->single.train_mape, r->single.validation_mape, r->multi_fit_mape, r->multi_loo_mape);
  const std::string how = "Fitted by: eellm fit --data " + opt.data + " --multi-node " + opt.multi_node + " --device " +
                          opt.device + " --cluster " + opt.cluster + "\n" + buf;
  if (!opt.out.empty()) {
    std::ofstream out(opt.out);
    out << device_profile_to_yaml(r->cluster.device, how);
    if (!out) return (void)fail(Status::io_error("cannot write " + opt.out));
  }
  if (!opt.out_cluster.empty()) {
    std::ofstream out(opt.out_cluster);
    out << cluster_profile_to_yaml(r->cluster, how);
    if (!out) return (void)fail(Status::io_error("cannot write " + opt.out_cluster));
  }
}

}  // namespace

void register_fit(CLI::App& app) {
  using Options = FitCmdOptions;
  auto opt = std::make_shared<Options>();
  CLI::App* cmd =
      app.add_subcommand("fit", "Fit a device profile to measured iteration times (e.g. the shared A100 file)");
  cmd->add_option("--data", opt->data, "CSV of measured iterations (vTrain/Megatron columns)")->required();
  cmd->add_option("--device", opt->device, "Start profile: a file or a name under scenarios/devices/")
      ->capture_default_str();
  cmd->add_option("--out", opt->out, "Write the fitted profile (YAML) here");
  cmd->add_option("--max-evaluations", opt->max_evaluations, "Nelder-Mead evaluations per run")->capture_default_str();
  cmd->add_option("--multi-node", opt->multi_node,
                  "CSV of multi-node Megatron-LM runs (data/calibration/megatron_a100_multi_node.csv): fit "
                  "device + cluster on both sets, leave-one-out over its rows");
  cmd->add_option("--cluster", opt->cluster, "Start cluster profile for --multi-node")->capture_default_str();
  cmd->add_option("--out-cluster", opt->out_cluster, "Write the fitted cluster profile (YAML) here");
  cmd->callback([opt] {
    if (!opt->multi_node.empty()) return run_joint_fit(*opt);
    auto dev = load_device_profile(opt->device);
    if (!dev.is_ok()) return finish("fit", dev.status());
    auto rows = read_calibration_csv(opt->data);
    if (!rows.is_ok()) return finish("fit", rows.status());
    FitOptions fo;
    fo.max_evaluations = opt->max_evaluations;
    const double start_train = calibration_mape(*rows, *dev, 0), start_valid = calibration_mape(*rows, *dev, 1);
    auto res = fit_device_profile(*rows, *dev, fo);
    if (!res.is_ok()) return finish("fit", res.status());
    std::printf("fit of %s on %s: %d train rows, %d validation rows (hash split), %d evaluations\n", dev->name.c_str(),
                opt->data.c_str(), res->train_rows, res->validation_rows, res->evaluations);
    std::printf("MAPE        given    fitted   (given: the --device profile as loaded)\n");
    std::printf("train     %6.2f %%  %6.2f %%\n", start_train, res->train_mape);
    std::printf("validation%6.2f %%  %6.2f %%\n", start_valid, res->validation_mape);
    std::printf(
        "\nparameter                      given       fitted   (the fit starts from DeviceProfile "
        "defaults)\n");
    for (FitParam p : fo.params)
      std::printf("%-28s %10.4g %12.4g\n", to_string(p), get_fit_param(*dev, p), get_fit_param(res->profile, p));
    for (const char* attr : {"gpus", "tp", "pp", "dp", "micro_batch", "hidden"}) {
      std::printf("\nresiduals by %-12s rows   MAPE %%   bias %%\n", attr);
      for (const ResidualGroup& g : residuals_by(*rows, res->predicted_ms, attr))
        std::printf("  %-22d %5d %8.2f %8.2f\n", g.value, g.rows, g.mape, g.bias);
    }
    if (!opt->out.empty()) {
      std::ofstream out(opt->out);
      char buf[256];
      std::snprintf(buf, sizeof buf, "train MAPE %.2f %% (%d rows), validation MAPE %.2f %% (%d rows)", res->train_mape,
                    res->train_rows, res->validation_mape, res->validation_rows);
      out << device_profile_to_yaml(
          res->profile, "Fitted by: eellm fit --data " + opt->data + " --device " + opt->device + "\n" + buf);
      if (!out) return finish("fit", Status::io_error("cannot write " + opt->out));
      std::printf("\nfitted profile written to %s\n", opt->out.c_str());
    }
  });
}

}  // namespace eellm::cli
