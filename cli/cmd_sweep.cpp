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

void register_sweep(CLI::App& app) {
  struct Options {
    std::string scenario, metric = "iteration_time_s", csv, plot;
    std::vector<std::string> vary;
    int threads = 0;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("sweep", "What-if table: vary one or two scenario fields and simulate each point");
  cmd->add_option("scenario", opt->scenario, "Scenario file or shipped scenario name")->required();
  cmd->add_option("--vary", opt->vary,
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
  cmd->callback([opt] {
    auto sc = load_scenario(opt->scenario);
    if (!sc.is_ok()) return finish("sweep", sc.status());
    SweepOptions so;
    so.metric = opt->metric;
    so.threads = opt->threads;
    for (const std::string& v : opt->vary) {
      auto axis = parse_vary(v);
      if (!axis.is_ok()) return finish("sweep", axis.status());
      so.axes.push_back(*axis);
    }
    auto res = sweep(*sc, so);
    if (!res.is_ok()) return finish("sweep", res.status());
    std::cout << sweep_to_text(*res);
    auto write = [&](const std::string& path, const std::string& text) {
      std::ofstream out(path);
      out << text;
      if (!out) {
        finish("sweep", Status::io_error("cannot write " + path));
        return false;
      }
      std::cout << "wrote " << path << "\n";
      return true;
    };
    if (!opt->csv.empty() && !write(opt->csv, sweep_to_csv(*res))) return;
    if (!opt->plot.empty()) write(opt->plot, sweep_to_svg(*res));
  });
}

}  // namespace eellm::cli
