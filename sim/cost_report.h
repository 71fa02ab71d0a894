// The what-if cost block of `eellm simulate` (training and --mode inference), the GUI's metrics
// panel and `eellm plan --objective`: fills model/training_cost.h's input from what a simulation
// or a planner entry already holds, and renders the result (text, JSON, CSV columns).
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "model/scenario.h"
#include "model/status.h"
#include "model/training_cost.h"
#include "sim/inference_sim.h"
#include "sim/plan.h"
#include "sim/simulate.h"

namespace eellm {

// Training: the cost fields are validated first (validate_cost_fields: an error names the field);
// busy/idle per stage from the summary (tp × dp GPUs per stage), checkpoint size from
// the memory model, the job's GPUs and nodes from the layout.
TrainingCostInput training_cost_input(const SimulationResult& result);
StatusOr<TrainingCost> training_cost_of(const SimulationResult& result);

// Renderings of a training cost: indented text lines (after summary_to_text), a JSON object
// (the "cost" member of simulate's JSON) as text, and CSV header / value columns.
std::string training_cost_to_text(const TrainingCost& c, const CostSpec& spec);
std::string training_cost_to_json(const TrainingCost& c);  // one JSON object
const std::vector<std::string>& training_cost_csv_header();
std::vector<double> training_cost_csv_values(const TrainingCost& c);

// Adds `columns` to every line of a CSV table: `header` to the first, values[i] (or values[0] for
// all when only one is given) to data row i.
std::string append_csv_columns(const std::string& csv, const std::vector<std::string>& header,
                               const std::vector<std::vector<double>>& values);
// Adds member `key` (a JSON text) to the top-level object of the JSON text `json`.
std::string add_json_member(const std::string& json, const std::string& key, const std::string& value_json);

// Inference: cost per million generated tokens for each method of the result (tp × pp GPUs).
StatusOr<std::vector<InferenceCost>> inference_costs(const Scenario& scenario, const InferenceSimResult& result);
std::string inference_cost_to_text(const InferenceSimResult& result, const std::vector<InferenceCost>& costs,
                                   const CostSpec& spec);

// ---- planner objective ----
enum class PlanObjective { kTime, kCost, kEnergy, kGoodput };
StatusOr<PlanObjective> parse_plan_objective(const std::string& name);
const char* to_string(PlanObjective o);

struct PlanLimits {
  double max_cost_usd = 0;  // 0 → no limit
  double deadline_days = 0;
  int max_gpus = 0;
};

struct CostRankedPlan {
  PlanEntry entry;
  TrainingCost cost;
};

struct CostRanking {
  PlanObjective objective = PlanObjective::kTime;
  PlanLimits limits;
  int considered = 0;               // planner results costed
  int over_limits = 0;              // dropped by a limit
  std::vector<std::string> errors;  // plans the cost model could not cost (first few messages)
  std::vector<CostRankedPlan> ranked;
};

// The planner's results costed for the run of `base` (its training budget; with train_iters only,
// the budget becomes train_iters × global batch × seq_length backbone tokens so ee-fill plans
// compare fairly), filtered by the limits and ranked by the objective (time: wall time to train;
// cost: USD; energy: kWh; goodput: highest first), ties by simulated time then enumeration order.
// Fails when no plan meets the limits (the message names the tightest one).
StatusOr<CostRanking> rank_plans_by_cost(const Scenario& base, const std::vector<PlanEntry>& plans,
                                         PlanObjective objective, const PlanLimits& limits, int top_k);

std::string cost_ranking_to_text(const CostRanking& r);
std::string cost_ranking_to_json(const CostRanking& r);
std::string cost_ranking_to_csv(const CostRanking& r);

}  // namespace eellm
