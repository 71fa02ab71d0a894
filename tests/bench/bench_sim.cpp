// Simulator benchmarks (issue [sim]): engine events per second on one core (target ≥ 20 M/s; the
// prematched rows hand the engine the schedule's message match, the others match in every run;
// pp 64 × m 128 next to pp 16 × m 128 and pp 64 × m 1024 separates the cost of more ranks in the
// event queue from that of a working set beyond the L2 cache) and
// the wall time of simulating one iteration of a 1,024-GPU job — GPT-3 175B, TP 8 × PP 16 × DP 8,
// 128 microbatches — (target < 50 ms), both as the engine alone and as the whole simulate() call
// (cost model, schedule, engine, memory, bubbles, and the no-exit baseline when exits exist).
#include <benchmark/benchmark.h>

#include "model/scenario_io.h"
#include "sim/engine.h"
#include "sim/simulate.h"

namespace eellm {
namespace {

Schedule schedule_1f1b(int pp, int m) {
  ScheduleParams p;
  p.kind = ScheduleKind::k1F1B;
  p.pp = pp;
  p.num_microbatches = m;
  p.dp_allreduce = true;
  return *build_schedule(p);
}

void BM_EngineEvents(benchmark::State& state) {
  const int pp = static_cast<int>(state.range(0)), m = static_cast<int>(state.range(1));
  const Schedule s = schedule_1f1b(pp, m);
  SimCosts c = uniform_costs(pp, 1, 1000, 2000);
  for (auto& h : c.hops) h = {500, 0.02};
  for (auto& ch : c.chunks) ch.p2p_bytes = 1 << 20;
  EngineOptions opt;
  opt.record_timeline = state.range(2) != 0;
  // Arg 3: 1 → the message match computed once outside the loop (EngineOptions::messages), as a
  // caller that replays one schedule does; 0 → matched inside every run (the cost before).
  if (state.range(3) != 0) opt.messages = std::make_shared<const MessageMap>(*match_messages(s));
  int64_t events = 0, instrs = 0;
  for (auto _ : state) {
    auto r = simulate_schedule(s, c, opt);
    benchmark::DoNotOptimize(r.value().iteration_ns);
    events += r->events_processed;
    instrs += static_cast<int64_t>(s.num_instructions());
  }
  state.counters["events_per_s"] = benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.counters["instructions_per_s"] = benchmark::Counter(static_cast<double>(instrs), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_EngineEvents)
    ->ArgNames({"pp", "m", "timeline", "prematched"})
    ->Args({16, 128, 0, 0})
    ->Args({16, 128, 0, 1})
    ->Args({16, 128, 1, 0})
    ->Args({16, 128, 1, 1})
    ->Args({64, 128, 0, 1})  // pp 64 on a small schedule (~1 MiB): the queue's cost apart from the data's
    ->Args({64, 1024, 0, 0})
    ->Args({64, 1024, 0, 1})
    ->Unit(benchmark::kMicrosecond);

Scenario gpt3_1024(bool exits) {
  Scenario sc = *load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/gpt3-175b.yaml");
  sc.training.global_batch_size = 1024;  // 128 microbatches of 1 per DP replica (DP 8)
  if (exits) {
    sc.exits.exit_layer_nums = {24, 48};
    sc.parallel.schedule = ScheduleKind::kEE1F1B;
  }
  return sc;
}

void BM_Simulate1024Gpus(benchmark::State& state) {
  const Scenario sc = gpt3_1024(state.range(0) != 0);
  SimulateOptions opt;
  opt.record_timeline = false;
  SimulationSummary last;
  for (auto _ : state) {
    auto r = simulate(sc, opt);
    if (!r.is_ok()) {
      state.SkipWithError(r.status().to_string().c_str());
      return;
    }
    // (DoNotOptimize on an integer: benchmark 1.7's "+r,m" constraint garbles doubles under GCC.)
    benchmark::DoNotOptimize(r->engine.iteration_ns);
    last = r->summary;
  }
  state.SetLabel(std::to_string(last.world_size) + " GPUs, " + std::to_string(last.num_microbatches) +
                 " microbatches, simulated iteration " + std::to_string(last.iteration_time_s) + " s");
}
BENCHMARK(BM_Simulate1024Gpus)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

void BM_Engine1024Gpus(benchmark::State& state) {
  const Scenario sc = gpt3_1024(false);
  const Layout L = *derive_layout(sc);
  const CostModel cm(sc, L);
  const SimCosts c = sim_costs_from_model(cm);
  const Schedule s = *make_schedule(sc, L);
  EngineOptions opt;
  opt.record_timeline = false;
  for (auto _ : state) {
    auto r = simulate_schedule(s, c, opt);
    benchmark::DoNotOptimize(r.value().iteration_ns);
  }
}
BENCHMARK(BM_Engine1024Gpus)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace eellm

BENCHMARK_MAIN();
