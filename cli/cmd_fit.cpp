// `eellm fit --data CSV [--device NAME] [--out FILE]`: fits a device profile's free parameters
// (GEMM efficiency model, element-wise and collective efficiencies, launch and overhead figures) to
// measured Megatron iterations (model/fit.h) and prints train/validation MAPE and the residuals.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "model/fit.h"
#include "model/scenario_io.h"

namespace eellm::cli {

void register_fit(CLI::App& app) {
  struct Options {
    std::string data;
    std::string device = "a100-80gb-sxm";
    std::string out;
    int max_evaluations = 4000;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "fit", "Fit a device profile to measured iteration times (e.g. the shared A100 file)");
  cmd->add_option("--data", opt->data, "CSV of measured iterations (vTrain/Megatron columns)")
      ->required();
  cmd->add_option("--device", opt->device,
                  "Start profile: a file or a name under scenarios/devices/")
      ->capture_default_str();
  cmd->add_option("--out", opt->out, "Write the fitted profile (YAML) here");
  cmd->add_option("--max-evaluations", opt->max_evaluations, "Nelder-Mead evaluations per run")
      ->capture_default_str();
  cmd->callback([opt] {
    auto dev = load_device_profile(opt->device);
    if (!dev.is_ok()) return finish("fit", dev.status());
    auto rows = read_calibration_csv(opt->data);
    if (!rows.is_ok()) return finish("fit", rows.status());
    FitOptions fo;
    fo.max_evaluations = opt->max_evaluations;
    const double start_train = calibration_mape(*rows, *dev, 0),
                 start_valid = calibration_mape(*rows, *dev, 1);
    auto res = fit_device_profile(*rows, *dev, fo);
    if (!res.is_ok()) return finish("fit", res.status());
    std::printf("fit of %s on %s: %d train rows, %d validation rows (hash split), %d evaluations\n",
                dev->name.c_str(), opt->data.c_str(), res->train_rows, res->validation_rows,
                res->evaluations);
    std::printf("MAPE        given    fitted   (given: the --device profile as loaded)\n");
    std::printf("train     %6.2f %%  %6.2f %%\n", start_train, res->train_mape);
    std::printf("validation%6.2f %%  %6.2f %%\n", start_valid, res->validation_mape);
    std::printf(
        "\nparameter                      given       fitted   (the fit starts from DeviceProfile "
        "defaults)\n");
    for (FitParam p : fo.params)
      std::printf("%-28s %10.4g %12.4g\n", to_string(p), get_fit_param(*dev, p),
                  get_fit_param(res->profile, p));
    for (const char* attr : {"gpus", "tp", "pp", "dp", "micro_batch", "hidden"}) {
      std::printf("\nresiduals by %-12s rows   MAPE %%   bias %%\n", attr);
      for (const ResidualGroup& g : residuals_by(*rows, res->predicted_ms, attr))
        std::printf("  %-22d %5d %8.2f %8.2f\n", g.value, g.rows, g.mape, g.bias);
    }
    if (!opt->out.empty()) {
      std::ofstream out(opt->out);
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "train MAPE %.2f %% (%d rows), validation MAPE %.2f %% (%d rows)",
                    res->train_mape, res->train_rows, res->validation_mape, res->validation_rows);
      out << device_profile_to_yaml(res->profile, "Fitted by: eellm fit --data " + opt->data +
                                                      " --device " + opt->device + "\n" + buf);
      if (!out) return finish("fit", Status::io_error("cannot write " + opt->out));
      std::printf("\nfitted profile written to %s\n", opt->out.c_str());
    }
  });
}

}  // namespace eellm::cli
