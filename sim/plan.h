// Planner: searches the parallel layouts of an early-exit model on a GPU budget and ranks them.
//
// The space: world size (the budget, optionally scaled down by powers of two), TP (powers of two
// within a node), PP, DP (the rest), virtual stages, micro-batch size, schedule (1F1B / EE-1F1B,
// interleaved, ZB-H1, EE bubble filling), recompute granularity, sequence parallel, distributed
// optimizer, layer partition (even, and "balanced": a min-max partition over the cost model's
// per-layer, embedding, final-head and exit-head times, so the stages that hold exit heads get fewer
// layers — EE-LLM only splits evenly — optionally with its neighbourhood: one layer moved across
// one boundary) and, with movable exits, exits snapped to stage boundaries
// (post-exit at the end of the earlier stage or pre-exit at the start of the later one).
//
// Search: every candidate is screened — structural rules (TP within a node, redundant settings),
// derive_layout's divisibility errors, then the cost model's per-stage memory (stage_memory, with the
// margin) — and the survivors are timed by the closed-form estimate (model/fit.h,
// estimate_iteration). `simulate_top` candidates are played by the event simulator (record_timeline
// off) in rounds: first the best estimate of every (schedule, pp, vp, recompute) group and the
// overall best, then — re-ranked after each round by estimates corrected with the simulated/estimated
// ratio of the finest group seen (adding the micro-batch size), else coarser — the best corrected
// ones. These rounds run on their own for every narrower space the options contain (fixed exits when
// exits are movable, no neighbourhood partitions, each world size when min_gpus < gpus) and then for
// the whole space, sharing one cache, so a wider search simulates everything a narrower one would and
// never returns a worse plan. The ranked table is by kRankingKey (plan_types.h), and a candidate whose
// simulated peak memory exceeds the budget is dropped too, so no returned plan fails the memory model. Pruned
// candidates are counted per reason (with one example message each).
//
// Determinism: enumeration order is fixed, screening results are independent of thread count, ties
// are broken by enumeration index. Thread-safety: plan() is a pure function of its arguments (it
// runs worker threads internally); the progress callback is called from the calling thread only,
// the cancelled callback from any of its threads.
#pragma once

#include <vector>

#include "model/scenario.h"
#include "model/status.h"
#include "sim/plan_types.h"

namespace eellm {

// Enumerates the space (without screening it) in the planner's order; for tests and exhaustive
// checks. Fails on an impossible budget (gpus ≤ 0, or more than one node but not whole nodes).
StatusOr<std::vector<PlanCandidate>> enumerate_candidates(const Scenario& base, const PlanOptions& options);

// Runs the search. Fails on an impossible budget, or when no candidate survives (the message lists
// the prune counts), or with the cancelled status when options.cancelled() turned true.
StatusOr<PlanResult> plan(const Scenario& base, const PlanOptions& options);

// The plans not dominated in (ranking time, peak memory, GPUs): a plan is dropped when another is
// at least as good in all three and better in one. Equal plans all stay; input order is kept.
std::vector<PlanEntry> pareto_front(const std::vector<PlanEntry>& plans);

// Renderings. Text: header with counts, pruned-by-reason table, ranked table, Pareto front.
std::string plan_to_text(const PlanResult& r);
std::string plan_to_json(const PlanResult& r);
std::string plan_to_csv(const PlanResult& r);  // one row per ranked plan
// The name of a scenario made from a plan (plan --emit, the GUI's "Use this plan"): the base name and
// the layout, "ee-llm-7b-64gpus-tp1-pp4-dp16-mbs1-1f1b-selective", so two plans never share a name.
std::string plan_scenario_name(const std::string& base, const PlanCandidate& candidate);
// What each column of plan_to_text's tables means (printed under the table and in `plan --help`).
std::string plan_columns_legend();
// SVG plot: every simulated plan that fits at (GPUs, rank_s), the Pareto front highlighted.
std::string plan_pareto_svg(const PlanResult& r, const std::string& scenario);

}  // namespace eellm
