// `eellm sweep SCENARIO --vary KEY=V1,V2 [--vary KEY2=...] [--metric M] [--csv out.csv] [--plot out.svg]`:
// what-if table over one or two scenario fields (sim/sweep.h); prints the chosen metric per point,
// writes every metric as CSV and the chosen one as an SVG chart.
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "model/scenario_io.h"
#include "sim/sweep.h"

namespace eellm::cli {

namespace {

struct SweepCliOptions {
  std::string scenario, metric = "iteration_time_s", csv, plot;
  std::vector<std::string> vary;
  int threads = 0;
};

// Writes `text` to `path` and says so.
Status write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) return Status::io_error("cannot write " + path);
  std::cout << "wrote " << path << "\n";
  return Status::ok();
}

Status run_sweep(const SweepCliOptions& opt) {
  auto sc = load_scenario(opt.scenario);
  if (!sc.is_ok()) return sc.status();
  SweepOptions so;
  so.metric = opt.metric;
  so.threads = opt.threads;
  for (const std::string& v : opt.vary) {
    auto axis = parse_vary(v);
    if (!axis.is_ok()) return axis.status();
    so.axes.push_back(*axis);
  }
  auto res = sweep(*sc, so);
  if (!res.is_ok()) return res.status();
  std::cout << sweep_to_text(*res);
  if (!opt.csv.empty()) EELLM_RETURN_IF_ERROR(write_file(opt.csv, sweep_to_csv(*res)));
  if (!opt.plot.empty()) EELLM_RETURN_IF_ERROR(write_file(opt.plot, sweep_to_svg(*res)));
  return Status::ok();
}

}  // namespace

void register_sweep(CLI::App& app) {
  auto opt = std::make_shared<SweepCliOptions>();
  CLI::App* cmd = app.add_subcommand("sweep", "What-if table: vary one or two scenario fields and simulate each point");
  cmd->add_option("scenario", opt->scenario, "Scenario file or shipped scenario name")->required();
  cmd->add_option(
         "--vary", opt->vary,
         "KEY=V1,V2,... with KEY a dotted scenario path (parallel.pipeline_model_parallel_size, "
         "exits.exit_layer_nums=[8,16],[12,24], cluster.inter_node.bandwidth_GBps, cluster.device); once or twice")
      ->required()
      ->take_all();
  std::string metrics;
  for (const std::string& m : sweep_metrics()) {
    if (!metrics.empty()) metrics += ", ";
    metrics += m;
  }
  cmd->add_option("--metric", opt->metric, "Metric to print and plot: " + metrics);
  cmd->add_option("--csv", opt->csv, "Write all metrics of every point as CSV");
  cmd->add_option("--plot", opt->plot, "Write an SVG chart of the metric (line for one key, heatmap for two)");
  cmd->add_option("--threads", opt->threads, "Worker threads (0: all cores)");
  cmd->callback([opt] { finish("sweep", run_sweep(*opt)); });
}

}  // namespace eellm::cli
