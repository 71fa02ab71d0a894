// Planner benchmarks (issue [plan]): candidates screened per second and the wall time of a full
// `eellm plan` of EE-LLM 7B on 64 and on 1,024 GPUs (targets: ≥ 10⁶ candidates screened in < 60 s
// on 2 cores), and how close the default search (analytical screen, then 128 event-simulated) comes
// to the best plan of an exhaustive event-simulated search on a small space (target: within 2 %).
// Figures are printed as counters; nothing here asserts.
#include <benchmark/benchmark.h>

#include "model/scenario_io.h"
#include "sim/plan.h"

namespace eellm {
namespace {

Scenario ee_llm_7b(int gpus) {
  auto s = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/ee-llm-7b.yaml");
  Scenario sc = *s;
  if (gpus > sc.cluster.total_gpus()) {
    // The 128-node A100 cluster (same nodes and links as the shipped 2-node one).
    auto c = load_cluster_profile("a100-80gb-128x8");
    sc.cluster = *c;
  }
  return sc;
}

void report(benchmark::State& state, const PlanResult& r) {
  state.counters["candidates"] = static_cast<double>(r.candidates);
  state.counters["screened_per_s"] = r.screen_seconds > 0 ? static_cast<double>(r.candidates) / r.screen_seconds : 0;
  state.counters["screen_s"] = r.screen_seconds;
  state.counters["simulate_s"] = r.simulate_seconds;
  state.counters["passed"] = static_cast<double>(r.estimated);
  state.counters["simulated"] = static_cast<double>(r.simulated);
  state.counters["best_iter_s"] = r.ranked.empty() ? 0 : r.ranked.front().metrics.iteration_time_s;
}

// `eellm plan ee-llm-7b --gpus N` with the CLI's defaults (fixed exits, top 10, 128 simulated).
void BM_PlanEeLlm7b(benchmark::State& state) {
  const int gpus = static_cast<int>(state.range(0));
  const Scenario sc = ee_llm_7b(gpus);
  PlanOptions o;
  o.gpus = gpus;
  for (auto _ : state) {
    auto r = plan(sc, o);
    if (!r.is_ok()) {
      state.SkipWithError(r.status().to_string().c_str());
      return;
    }
    report(state, *r);
  }
}
BENCHMARK(BM_PlanEeLlm7b)->Arg(64)->Arg(1024)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

// The large space: 1,024 GPUs and every power-of-two scale-down to 64, movable exits, the partition
// neighbourhood, micro-batches 1..32 and vp in {2,3,4,6,8} — over 10⁶ candidates.
void BM_PlanEeLlm7bLargeSpace(benchmark::State& state) {
  const Scenario sc = ee_llm_7b(1024);
  PlanOptions o;
  o.gpus = 1024;
  o.min_gpus = 64;
  o.movable_exits = true;
  o.partition_neighbourhood = true;
  o.micro_batch_values = {1, 2, 4, 8, 16, 32};
  o.vp_values = {2, 3, 4, 6, 8};
  for (auto _ : state) {
    auto r = plan(sc, o);
    if (!r.is_ok()) {
      state.SkipWithError(r.status().to_string().c_str());
      return;
    }
    report(state, *r);
  }
}
BENCHMARK(BM_PlanEeLlm7bLargeSpace)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

// Accuracy: on a space small enough to simulate every survivor, the default search's best vs the
// exhaustive best (gap_percent = default / exhaustive − 1, in percent). Args: GPUs, and 1 for the
// CLI's full default space at the scenario's global batch (0: a reduced space, global batch 256).
void BM_PlanVsExhaustive(benchmark::State& state) {
  const int gpus = static_cast<int>(state.range(0));
  const bool full_space = state.range(1) != 0;  // the CLI's default space and global batch
  Scenario sc = ee_llm_7b(gpus);
  PlanOptions o;
  o.gpus = gpus;
  o.exit_overhead = false;
  if (!full_space) {
    sc.training.global_batch_size = 256;
    o.micro_batch_values = {1, 2, 4};
    o.vp_values = {2, 4};
  }
  for (auto _ : state) {
    PlanOptions ex = o;
    ex.simulate_top = -1;
    auto all = plan(sc, ex);
    auto fast = plan(sc, o);
    if (!all.is_ok() || !fast.is_ok()) {
      state.SkipWithError("plan failed");
      return;
    }
    const double best = all->ranked.front().metrics.iteration_time_s;
    const double got = fast->ranked.front().metrics.iteration_time_s;
    state.counters["exhaustive_simulated"] = static_cast<double>(all->simulated);
    state.counters["default_simulated"] = static_cast<double>(fast->simulated);
    state.counters["exhaustive_best_s"] = best;
    state.counters["default_best_s"] = got;
    state.counters["gap_percent"] = (got / best - 1) * 100;
    state.counters["exhaustive_s"] = all->screen_seconds + all->simulate_seconds;
    state.counters["default_s"] = fast->screen_seconds + fast->simulate_seconds;
  }
}
BENCHMARK(BM_PlanVsExhaustive)
    ->Args({16, 0})
    ->Args({64, 0})
    ->Args({64, 1})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

}  // namespace
}  // namespace eellm

BENCHMARK_MAIN();
