// `eellm compare A.yaml B.yaml [--format text|json|csv]`: simulates two scenarios (two plans) and
// prints them side by side, metric by metric, with the difference B − A and the ratio B / A.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "model/scenario_io.h"
#include "sim/format.h"
#include "sim/simulate.h"

namespace eellm::cli {
namespace {

struct Row {
  std::string name;
  double a = 0, b = 0;
  bool lower_is_better = true;
  bool metric = true;  // false: a layout figure (GPUs, TP, …), which is neither better nor worse
};

std::vector<Row> rows_of(const SimulationSummary& a, const SimulationSummary& b) {
  std::vector<Row> r = {
      {"world_size", double(a.world_size), double(b.world_size), true, false},
      {"tensor_model_parallel_size", double(a.tp), double(b.tp), true, false},
      {"pipeline_model_parallel_size", double(a.pp), double(b.pp), true, false},
      {"data_parallel_size", double(a.dp), double(b.dp), true, false},
      {"virtual_pipeline_model_parallel_size", double(a.vp), double(b.vp), true, false},
      {"num_microbatches", double(a.num_microbatches), double(b.num_microbatches), true, false},
      {"iteration_time_s", a.iteration_time_s, b.iteration_time_s, true},
      {"tokens_per_s", a.tokens_per_s, b.tokens_per_s, false},
      {"model_tflops_per_gpu", a.model_tflops_per_gpu, b.model_tflops_per_gpu, false},
      {"mfu", a.mfu, b.mfu, false},
      {"bubble_fraction", a.bubble_fraction, b.bubble_fraction, true},
      {"bubble_dependency_fraction", a.bubble_dependency_fraction, b.bubble_dependency_fraction, true},
      {"bubble_exposed_comm_fraction", a.bubble_exposed_comm_fraction, b.bubble_exposed_comm_fraction, true},
      {"bubble_imbalance_fraction", a.bubble_imbalance_fraction, b.bubble_imbalance_fraction, true},
      {"bubble_exit_fraction", a.bubble_exit_fraction, b.bubble_exit_fraction, true},
      {"iteration_time_no_exits_s", a.iteration_time_no_exits_s, b.iteration_time_no_exits_s, true},
      {"exit_overhead_fraction", a.exit_overhead_fraction, b.exit_overhead_fraction, true},
      {"peak_memory_GiB", a.peak_memory_GiB, b.peak_memory_GiB, true},
  };
  return r;
}

struct CompareCliOptions {
  std::string a, b, format = "text";
};

// The two simulations side by side in `format` (text, json or csv).
void print_comparison(const std::string& format, const SimulationSummary (&sum)[2], const std::string (&names)[2]) {
  const std::vector<Row> rows = rows_of(sum[0], sum[1]);
  if (format == "json") {
    nlohmann::json j;
    j["a"] = names[0];
    j["b"] = names[1];
    j["a_schedule"] = sum[0].schedule;
    j["b_schedule"] = sum[1].schedule;
    j["a_fits_memory"] = memory_overflow(sum[0]).empty();
    j["b_fits_memory"] = memory_overflow(sum[1]).empty();
    j["a_memory_note"] = memory_overflow(sum[0]);
    j["b_memory_note"] = memory_overflow(sum[1]);
    for (const Row& r : rows)
      j["metrics"][r.name] = {{"a", r.a}, {"b", r.b}, {"diff", r.b - r.a}, {"ratio", r.a != 0 ? r.b / r.a : 0.0}};
    std::cout << j.dump(2) << "\n";
    return;
  }
  if (format == "csv") {
    std::cout << "metric,a,b,diff,ratio\n";
    for (const Row& r : rows)
      std::cout << r.name << "," << r.a << "," << r.b << "," << r.b - r.a << "," << (r.a != 0 ? r.b / r.a : 0.0)
                << "\n";
    std::cout << "fits_memory," << memory_overflow(sum[0]).empty() << "," << memory_overflow(sum[1]).empty() << ",,\n";
    return;
  }
  char line[256];
  for (int i = 0; i < 2; ++i) {
    const std::string over = memory_overflow(sum[i]);
    std::printf("%s: %s (%s)%s%s\n", i == 0 ? "A" : "B", names[i].c_str(), sum[i].schedule.c_str(),
                over.empty() ? "" : " — ", over.c_str());
  }
  std::printf("\n");
  std::snprintf(line, sizeof line, "%-38s %14s %14s %14s %9s  %s\n", "metric", "A", "B", "B - A", "B / A", "better");
  std::cout << line;
  for (const Row& r : rows) {
    const double d = r.b - r.a;
    const char* better = !r.metric                                             ? ""
                         : std::abs(d) <= 1e-12 * std::max(1.0, std::abs(r.a)) ? "="
                         : (d < 0) == r.lower_is_better                        ? "B"
                                                                               : "A";
    std::snprintf(line, sizeof line, "%-38s %14s %14s %14s %9s  %s\n", r.name.c_str(), format_significant(r.a).c_str(),
                  format_significant(r.b).c_str(), ((d > 0 ? "+" : "") + format_significant(d)).c_str(),
                  r.a != 0 ? (std::to_string(r.b / r.a).substr(0, 6) + "x").c_str() : "-", better);
    std::cout << line;
  }
}

Status run_compare(const CompareCliOptions& opt) {
  SimulationSummary sum[2];
  std::string names[2];
  const std::string paths[2] = {opt.a, opt.b};
  for (int i = 0; i < 2; ++i) {
    auto sc = load_scenario(paths[i]);
    if (!sc.is_ok()) return sc.status();
    SimulateOptions so;
    so.record_timeline = false;
    auto r = simulate(*sc, so);
    if (!r.is_ok()) return r.status().with_context(paths[i]);
    sum[i] = r->summary;
    if (const std::string over = memory_overflow(sum[i]); !over.empty())
      std::cerr << "eellm compare: warning: " << (i == 0 ? "A " : "B ") << paths[i] << " " << over << "\n";
    names[i] = sc->name.empty() ? paths[i] : sc->name;
  }
  print_comparison(opt.format, sum, names);
  return Status::ok();
}

}  // namespace

void register_compare(CLI::App& app) {
  auto opt = std::make_shared<CompareCliOptions>();
  CLI::App* cmd = app.add_subcommand("compare", "Simulate two scenarios and compare them metric by metric");
  cmd->add_option("a", opt->a, "First scenario (the reference)")->required();
  cmd->add_option("b", opt->b, "Second scenario")->required();
  cmd->add_option("--format", opt->format, "Output format")
      ->check(CLI::IsMember({"text", "json", "csv"}))
      ->capture_default_str();
  cmd->callback([opt] { finish("compare", run_compare(*opt)); });
}

}  // namespace eellm::cli
