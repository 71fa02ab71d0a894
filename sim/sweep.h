// What-if sweeps: one or two scenario fields varied over given values (the grid of all
// combinations), each point simulated; results as a text table, CSV and a hand-written SVG chart
// (a line chart for one axis, a heatmap for two).
//
// Keys are dotted scenario paths as in the YAML: "parallel.pipeline_model_parallel_size",
// "exits.exit_layer_nums", "training.micro_batch_size", "cluster.inter_node.bandwidth_GBps",
// "cluster.device" (a device profile name), "cluster.device.memory_GiB", "cluster.profile" (a
// cluster profile name), "cluster.num_nodes". A key that does not exist is an error with the
// closest valid keys. Values are parsed by the field's type (int, float, bool, enum by its YAML
// name, lists as "[8,16]" or "8 16"); a bad value is an error naming key and value. Changing the
// number of exits (exits.exit_layer_nums) collapses per-exit loss weights of another length to
// their mean and drops measured exit rates of another length.
//
// Determinism: points are evaluated in grid order (first axis outermost) and their results do not
// depend on thread count. Thread-safety: pure functions (sweep() runs worker threads internally).
#pragma once

#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"

namespace eellm {

struct SweepAxis {
  std::string key;
  std::vector<std::string> values;
};

// Parses "KEY=V1,V2,..." (commas inside [...] belong to a list value).
StatusOr<SweepAxis> parse_vary(const std::string& arg);

// Sets one field by its dotted key. Unknown keys: not_found with a did-you-mean; bad values:
// invalid_argument naming the key.
Status set_scenario_value(Scenario& scenario, const std::string& key, const std::string& value);

// Every dotted key set_scenario_value accepts (for messages and completion).
std::vector<std::string> sweep_keys();

// Metrics a sweep reports for each point (the first is the default plotted one).
const std::vector<std::string>& sweep_metrics();

struct SweepOptions {
  std::vector<SweepAxis> axes;  // one or two
  std::string metric = "iteration_time_s";
  int threads = 0;  // 0 → hardware concurrency
};

struct SweepPoint {
  std::vector<std::string> values;  // one per axis
  bool ok = false;
  std::string error;            // why the point could not be simulated
  std::vector<double> metrics;  // in sweep_metrics() order
  // memory_overflow of the point's simulation: "" when every stage fits the GPU, else which stage
  // needs how much more (the table's note, the CSV and the chart show it).
  std::string memory_note;
  double memory_excess_GiB = 0;  // the worst stage's excess (0 when it fits)
};

struct SweepResult {
  std::string scenario;
  std::vector<SweepAxis> axes;
  std::string metric;
  std::vector<SweepPoint> points;  // grid order
  double metric_of(const SweepPoint& p) const;
};

// Validates keys, values and the metric first (no simulation runs when one is wrong).
StatusOr<SweepResult> sweep(const Scenario& base, const SweepOptions& options);

std::string sweep_to_text(const SweepResult& r);
std::string sweep_to_csv(const SweepResult& r);
std::string sweep_to_svg(const SweepResult& r);

}  // namespace eellm
