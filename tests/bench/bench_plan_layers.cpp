// Planner scaling in the layer count (issue [reliability]): `eellm plan` of EE-LLM 1.3B with 24 to
// 4,096 layers (the most validation accepts) on 16 GPUs, and on 1,024 GPUs (pipelines of up to
// 1,024 × 8 virtual stages, the widest partition search). The cost-balanced partitions were an
// O(chunks × layers²) search: 2,048 layers on 16 GPUs took 53 s of CPU, now under a second
// (docs/reliability.md). Figures are printed as counters; nothing here asserts.
#include <benchmark/benchmark.h>

#include "model/scenario_io.h"
#include "sim/plan.h"

namespace eellm {
namespace {

void BM_PlanLayers(benchmark::State& state) {
  auto s = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/ee-llm-1.3b.yaml");
  if (!s.is_ok()) {
    state.SkipWithError(s.status().to_string().c_str());
    return;
  }
  Scenario sc = *s;
  sc.model.num_layers = static_cast<int>(state.range(0));
  PlanOptions o;
  o.gpus = static_cast<int>(state.range(1));
  o.simulate_top = 16;  // the search space is what scales with layers, not the simulations
  o.exit_overhead = false;
  o.threads = 1;
  for (auto _ : state) {
    auto r = plan(sc, o);
    // No layout of a deep model fits: the search still enumerates and screens the whole space.
    if (!r.is_ok() && r.status().is_cancelled()) {
      state.SkipWithError(r.status().to_string().c_str());
      return;
    }
    state.counters["candidates"] = r.is_ok() ? static_cast<double>(r->candidates) : 0;
    state.counters["fits"] = r.is_ok() ? 1 : 0;
  }
}
BENCHMARK(BM_PlanLayers)
    ->ArgsProduct({{24, 256, 1024, 2048, 4096}, {16}})
    ->Args({2048, 1024})
    ->Args({4096, 1024})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->MeasureProcessCPUTime();

}  // namespace
}  // namespace eellm

BENCHMARK_MAIN();
