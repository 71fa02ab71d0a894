// `eellm plan SCENARIO --gpus N [--device NAME] [--top K] [--exits fixed|movable] [--memory-margin F]
// [--launchable-with T,…] [--schedules S,…] [--format text|json|csv] [--emit best.yaml]
// [--pareto-svg front.svg]`: searches layouts of the scenario's model on N GPUs (sim/plan.h) and
// prints the ranked table, prune counts and the Pareto front; --emit writes the best plan as a
// scenario that simulate/train/the GUI accept. A progress bar goes to stderr when it is a terminal
// (or with --progress). Ctrl-C (SIGINT) stops the search through PlanOptions::cancelled in every phase
// (enumeration, screening, simulation): the planner stops within one partition, one block of
// screened candidates or one simulation per thread and returns the best plans found so far (partial_on_cancel), which
// are printed before the command exits with 130 (128 + SIGINT, as a shell reports an interrupted command); a second
// Ctrl-C kills it at once.
// --objective time|cost|energy|goodput with --max-cost / --deadline-days / --max-gpus ranks the
// simulated plans by the what-if cost of the scenario's training budget instead (sim/cost_report.h).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "model/scenario_fields.h"
#include "model/scenario_io.h"
#include "model/validate.h"
#include "sim/cost_report.h"
#include "sim/plan.h"

namespace eellm::cli {
namespace {

void progress_bar(const char* phase, int64_t done, int64_t total) {
  const int width = 40;
  const double f = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const int fill = static_cast<int>(f * width);
  std::fprintf(stderr, "\r%-9s [%s%s] %5.1f%% %lld/%lld", phase, std::string(static_cast<size_t>(fill), '#').c_str(),
               std::string(static_cast<size_t>(width - fill), '.').c_str(), f * 100, static_cast<long long>(done),
               static_cast<long long>(total));
  if (done >= total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

// Set by the SIGINT handler, polled by the planner's threads (lock-free, async-signal-safe).
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_sigint(int) {
  g_interrupted.store(true);
  std::signal(SIGINT, SIG_DFL);  // the next Ctrl-C ends the process
}

// --objective and its limits (kept apart from the search options).
struct ObjectiveOptions {
  std::string objective;
  PlanLimits limits;
  bool active() const {
    return !objective.empty() || limits.max_cost_usd > 0 || limits.deadline_days > 0 || limits.max_gpus > 0;
  }
};

void add_objective_options(CLI::App* cmd, ObjectiveOptions& o) {
  cmd->add_option("--objective", o.objective,
                  "Rank by the cost of the training budget: time (to train), cost, energy, goodput")
      ->check(CLI::IsMember({"time", "cost", "energy", "goodput"}));
  cmd->add_option("--max-cost", o.limits.max_cost_usd, "Drop plans whose training costs more (USD)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--deadline-days", o.limits.deadline_days, "Drop plans that take longer to train (days, wall clock)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-gpus", o.limits.max_gpus, "Cap on the GPUs of a plan (below --gpus: the budget searched)")
      ->check(CLI::PositiveNumber);
}

// The planner's simulated plans ranked by the objective, printed in `format`; the best one.
StatusOr<PlanCandidate> print_cost_ranking(const Scenario& sc, const PlanResult& res, const ObjectiveOptions& o,
                                           int top, const std::string& format) {
  EELLM_ASSIGN_OR_RETURN(const PlanObjective objective,
                         parse_plan_objective(o.objective.empty() ? "time" : o.objective));
  std::vector<PlanEntry> simulated;
  for (const PlanEntry& e : res.ranked)
    if (e.metrics.simulated) simulated.push_back(e);
  EELLM_ASSIGN_OR_RETURN(const CostRanking r, rank_plans_by_cost(sc, simulated, objective, o.limits, top));
  if (format == "json")
    std::cout << cost_ranking_to_json(r);
  else if (format == "csv")
    std::cout << cost_ranking_to_csv(r);
  else
    std::cout << "searched " << res.candidates << " candidates, simulated " << res.simulated << "\n"
              << cost_ranking_to_text(r);
  return r.ranked.front().entry.candidate;
}

struct PlanCliOptions {
  std::string scenario, device, exits = "fixed", format = "text", emit, pareto_svg;
  std::vector<std::string> launchable_with, schedules;
  int gpus = 0, min_gpus = 0, top = 10, simulate_top = 128, threads = 0;
  double margin = 0.1;
  bool no_progress = false, progress = false, neighbourhood = false;
  ObjectiveOptions objective;
};

// --schedules names (as in scenarios: 1f1b, interleaved-1f1b, zb-h1, ee-1f1b, ee-fill, …).
StatusOr<std::vector<ScheduleKind>> parse_schedules(const std::vector<std::string>& names) {
  std::vector<ScheduleKind> out;
  for (const std::string& n : names) {
    bool found = false;
    for (ScheduleKind k : EnumValues<ScheduleKind>::values)
      if (n == to_string(k)) {
        out.push_back(k);
        found = true;
      }
    if (!found) {
      std::string all;
      for (ScheduleKind k : EnumValues<ScheduleKind>::values)
        all += std::string(all.empty() ? "" : ", ") + to_string(k);
      return Status::invalid_argument("--schedules: '" + n + "' is not a schedule (one of " + all + ")");
    }
  }
  return out;
}

// Numeric options within what a real search has (validate.h's bounds), before any arithmetic on them.
Status check_plan_numbers(const PlanCliOptions& opt) {
  auto out_of = [](const char* flag, int64_t v, int64_t lo, int64_t hi) {
    if (v >= lo && v <= hi) return Status::ok();
    return Status::invalid_argument(std::string(flag) + " (" + std::to_string(v) + ") must be in " +
                                    std::to_string(lo) + ".." + std::to_string(hi));
  };
  EELLM_RETURN_IF_ERROR(out_of("--gpus", opt.gpus, 1, bounds::kMaxGpus));
  EELLM_RETURN_IF_ERROR(out_of("--min-gpus", opt.min_gpus, 0, opt.gpus));
  EELLM_RETURN_IF_ERROR(out_of("--top", opt.top, 1, 1000000));
  EELLM_RETURN_IF_ERROR(out_of("--simulate-top", opt.simulate_top, -1, 1000000));
  EELLM_RETURN_IF_ERROR(out_of("--threads", opt.threads, 0, bounds::kMaxThreads));
  EELLM_RETURN_IF_ERROR(out_of("--max-gpus", opt.objective.limits.max_gpus, 0, bounds::kMaxGpus));
  if (!(opt.margin >= 0 && opt.margin < 1))
    return Status::invalid_argument("--memory-margin (" + std::to_string(opt.margin) + ") must be in [0, 1)");
  return Status::ok();
}

StatusOr<PlanOptions> plan_options(const PlanCliOptions& opt) {
  EELLM_RETURN_IF_ERROR(check_plan_numbers(opt));
  PlanOptions po;
  if (!opt.schedules.empty()) {
    EELLM_ASSIGN_OR_RETURN(po.schedules, parse_schedules(opt.schedules));
  }
  for (const std::string& t : opt.launchable_with) {
    EELLM_ASSIGN_OR_RETURN(LaunchTarget target, parse_launch_target(t));
    po.launchable_with.push_back(target);
  }
  po.partial_on_cancel = true;
  po.gpus = opt.gpus;
  po.min_gpus = opt.min_gpus;
  po.top_k = opt.top;
  po.simulate_top = opt.simulate_top;
  po.movable_exits = opt.exits == "movable";
  po.memory_margin = opt.margin;
  po.threads = opt.threads;
  po.partition_neighbourhood = opt.neighbourhood;
  if (opt.objective.active()) {  // cost every simulated plan, then rank by the objective
    po.top_k = opt.simulate_top < 0 ? INT_MAX : std::max(opt.top, opt.simulate_top);
    po.exit_overhead = false;
    const int max_gpus = opt.objective.limits.max_gpus;  // the cap is the budget searched
    if (max_gpus > 0 && max_gpus < opt.gpus) po.gpus = max_gpus;
  }
  if (opt.progress || (!opt.no_progress && isatty(STDERR_FILENO))) po.progress = progress_bar;
  po.cancelled = [] { return g_interrupted.load(std::memory_order_relaxed); };
  return po;
}

// The ranked plans in opt.format (by the --objective when one is given) and the Pareto plot; the best
// plan of the ranking printed.
StatusOr<PlanCandidate> write_outputs(const PlanCliOptions& opt, const Scenario& sc, const PlanResult& res) {
  PlanCandidate best = res.ranked.front().candidate;
  if (opt.objective.active()) {
    EELLM_ASSIGN_OR_RETURN(best, print_cost_ranking(sc, res, opt.objective, opt.top, opt.format));
  } else if (opt.format == "json") {
    std::cout << plan_to_json(res);
  } else if (opt.format == "csv") {
    std::cout << plan_to_csv(res);
  } else {
    std::cout << plan_to_text(res);
  }
  if (!opt.pareto_svg.empty()) {
    std::ofstream out(opt.pareto_svg);
    out << plan_pareto_svg(res, sc.name);
    if (!out) return Status::io_error("cannot write " + opt.pareto_svg);
    if (opt.format == "text") std::cout << "Pareto plot written to " << opt.pareto_svg << "\n";
  }
  return best;
}

// Writes the best plan as a scenario (--emit).
Status emit_best(const PlanCliOptions& opt, const Scenario& sc, const PlanCandidate& candidate) {
  Scenario best = apply_candidate(sc, candidate);
  best.name = plan_scenario_name(sc.name, candidate);
  best.description =
      "Planned by eellm plan from " + sc.name + " on " + std::to_string(opt.gpus) + " GPUs: " + to_string(candidate);
  std::ofstream out(opt.emit);
  out << scenario_to_yaml(best);
  if (!out) return Status::io_error("cannot write " + opt.emit);
  if (opt.format == "text") std::cout << "\nbest plan written to " << opt.emit << " as scenario " << best.name << "\n";
  return Status::ok();
}

Status run_plan(const PlanCliOptions& opt) {
  auto sc = load_scenario(opt.scenario);
  if (!sc.is_ok()) return sc.status();
  if (!opt.device.empty()) {
    auto dev = load_device_profile(opt.device);
    if (!dev.is_ok()) return dev.status();
    sc->cluster.device = *dev;
    sc->cluster.device_name = opt.device;
    EELLM_RETURN_IF_ERROR(check_scenario(*sc).with_context("--device " + opt.device));
  }
  EELLM_ASSIGN_OR_RETURN(const PlanOptions po, plan_options(opt));
  g_interrupted = false;
  auto previous = std::signal(SIGINT, on_sigint);
  auto res = plan(*sc, po);
  std::signal(SIGINT, previous == SIG_ERR ? SIG_DFL : previous);
  if (!res.is_ok() && res.status().is_cancelled()) {  // the code, not the text; main exits 130
    std::cerr << "\n";                                // end the progress line
    return Status::cancelled(res.status().message() + " (no plan had been screened yet)");
  }
  if (!res.is_ok()) return res.status();
  if (!res->interrupted.empty()) {  // Ctrl-C: the best so far, then 130 as a shell reports it
    std::cerr << "\neellm plan: cancelled: " << res->interrupted << "; printing the best plans found so far\n";
    EELLM_RETURN_IF_ERROR(write_outputs(opt, *sc, *res).status());
    exit_code() = 130;
    return Status::ok();
  }
  EELLM_ASSIGN_OR_RETURN(const PlanCandidate best, write_outputs(opt, *sc, *res));
  return opt.emit.empty() ? Status::ok() : emit_best(opt, *sc, best);
}

}  // namespace

void register_plan(CLI::App& app) {
  auto opt = std::make_shared<PlanCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Search parallel layouts (TP/PP/DP, schedule, recompute, partition, exits) on a GPU budget");
  cmd->add_option("scenario", opt->scenario, "Scenario file or shipped scenario name (e.g. ee-llm-7b)")->required();
  cmd->add_option("--gpus", opt->gpus, "GPU budget (whole nodes when more than one node)")->required();
  cmd->add_option("--min-gpus", opt->min_gpus, "Also try budget/2, /4, … down to this many GPUs");
  cmd->add_option("--device", opt->device, "Device profile to plan for (name under scenarios/devices or a file)");
  cmd->add_option("--top", opt->top, "Plans in the ranked table")->capture_default_str();
  cmd->add_option("--simulate-top", opt->simulate_top,
                  "Candidates the event simulator plays per searched space after the analytical screen (-1: all)")
      ->capture_default_str();
  cmd->add_option("--launchable-with", opt->launchable_with,
                  "Only plans these systems can launch (eellm: every schedule; ee-llm: 1F1B/EE-1F1B/ee-fill, even "
                  "splits; megatron: no exits); rows show which can run them")
      ->check(CLI::IsMember({"eellm", "ee-llm", "megatron"}))
      ->delimiter(',');
  cmd->add_option("--schedules", opt->schedules,
                  "Schedules to search, comma-separated (default: 1f1b,interleaved-1f1b,zb-h1,ee-fill)")
      ->delimiter(',');
  cmd->add_option("--pareto-svg", opt->pareto_svg, "Write the Pareto front (rank_s vs GPUs, memory) as an SVG plot");
  cmd->add_option("--exits", opt->exits, "fixed: exits stay; movable: also snap exits to stage boundaries (pre/post)")
      ->check(CLI::IsMember({"fixed", "movable"}));
  cmd->add_option("--memory-margin", opt->margin, "Fraction of device memory kept free")
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  cmd->add_option("--format", opt->format, "Output format")
      ->check(CLI::IsMember({"text", "json", "csv"}))
      ->capture_default_str();
  cmd->add_option("--emit", opt->emit, "Write the best plan as a scenario YAML file");
  cmd->add_option("--threads", opt->threads, "Worker threads (0: all cores)");
  cmd->add_flag("--partition-neighbourhood", opt->neighbourhood,
                "Also try every layer split one layer away from the balanced one (larger search)");
  cmd->add_flag("--no-progress", opt->no_progress, "No progress bar on stderr");
  cmd->add_flag("--progress", opt->progress, "The progress bar on stderr even when it is not a terminal");
  add_objective_options(cmd, opt->objective);
  cmd->footer("\nThe ranked table's " + plan_columns_legend());
  cmd->callback([opt] { finish("plan", run_plan(*opt)); });
}

}  // namespace eellm::cli
