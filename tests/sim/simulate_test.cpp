// simulate(scenario) end to end on the shipped scenarios: layout → costs → schedule → engine →
// memory → summary, the no-exit baseline in the same call, and the summary renderings.
#include "sim/simulate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "model/scenario_io.h"
#include "sim/trace.h"

namespace eellm {
namespace {

Scenario load(const std::string& name) {
  auto s = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/" + name + ".yaml");
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return s.is_ok() ? *s : Scenario{};
}

void expect_consistent(const SimulationSummary& s) {
  EXPECT_GT(s.iteration_time_s, 0);
  EXPECT_GT(s.tokens_per_s, 0);
  EXPECT_GT(s.mfu, 0);
  EXPECT_LT(s.mfu, 1);
  EXPECT_GE(s.bubble_fraction, 0);
  EXPECT_LT(s.bubble_fraction, 1);
  EXPECT_NEAR(s.bubble_dependency_fraction + s.bubble_exposed_comm_fraction + s.bubble_imbalance_fraction +
                  s.bubble_exit_fraction,
              s.bubble_fraction, 1e-9);
  for (const StageSummary& st : s.stages) {
    EXPECT_NEAR(st.busy_s + st.idle_s, s.iteration_time_s, 1e-9 + 1e-9 * s.iteration_time_s);
    EXPECT_GE(st.peak_memory_GiB, st.static_memory_GiB);
  }
}

TEST(Simulate, TinyEEOnOneProcess) {
  const Scenario sc = load("tiny-ee");
  auto r = simulate(sc);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const SimulationSummary& s = r->summary;
  expect_consistent(s);
  EXPECT_EQ(s.pp, 1);
  EXPECT_EQ(s.num_microbatches, 4);
  // One rank, no pipeline: no bubble except the optimizer's wait for nothing.
  EXPECT_NEAR(s.bubble_fraction, 0, 1e-12);
  // Two exit heads cost something; the baseline without them ran in the same call.
  EXPECT_GT(s.iteration_time_no_exits_s, 0);
  EXPECT_GT(s.exit_overhead_fraction, 0);
  EXPECT_NEAR(s.iteration_time_s / s.iteration_time_no_exits_s - 1, s.exit_overhead_fraction, 1e-12);
}

TEST(Simulate, PipelinedEEScenariosWithEveryEESchedule) {
  for (const char* name : {"tiny-ee-pp4", "ee-llm-7b"}) {
    Scenario sc = load(name);
    for (ScheduleKind k :
         {ScheduleKind::kEE1F1B, ScheduleKind::kEEFill, ScheduleKind::kEETuning, ScheduleKind::k1F1B}) {
      SCOPED_TRACE(std::string(name) + " " + to_string(k));
      sc.parallel.schedule = k;
      sc.parallel.fill_explicit_bubbles = false;
      auto r = simulate(sc);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      expect_consistent(r->summary);
      EXPECT_GT(r->summary.pp, 1);
      if (k == ScheduleKind::kEEFill) {
        EXPECT_GT(r->summary.num_fill_warmup, 0);
      }
      if (k == ScheduleKind::kEE1F1B) {
        // The FLOPs of the executed instructions equal the cost model's model FLOPs per iteration.
        const CostModel cm(r->scenario, r->layout);
        const double executed =
            r->summary.model_tflops_per_gpu * 1e12 * r->summary.iteration_time_s * r->summary.world_size;
        EXPECT_NEAR(executed / cm.model_flops_per_iteration(true), 1.0, 1e-6);
      }
      // The trace of a real scenario round-trips.
      auto back = parse_trace(trace_to_json(r->engine.timeline));
      ASSERT_TRUE(back.is_ok()) << back.status().to_string();
      EXPECT_EQ(back->events.size(), r->engine.timeline.events.size());
      EXPECT_EQ(back->end_time(), r->engine.iteration_ns);
    }
  }
}

TEST(Simulate, ExitsOnHeavierStagesShowAsExitWorkInTheBubble) {
  Scenario sc = load("tiny-ee-pp4");
  sc.parallel.schedule = ScheduleKind::kEE1F1B;
  auto r = simulate(sc);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  double exit_busy = 0;
  for (const StageSummary& st : r->summary.stages) exit_busy += st.exit_busy_s;
  EXPECT_GT(exit_busy, 0);
  EXPECT_GT(r->summary.bubble_exit_fraction, 0);
}

TEST(Simulate, SummaryRenderingsUseKeysWithUnits) {
  auto r = simulate(load("tiny-ee-pp4"));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto j = nlohmann::json::parse(summary_to_json(r->summary));
  for (const char* key : {"iteration_time_s", "tokens_per_s", "model_tflops_per_gpu", "mfu", "bubble_fraction",
                          "bubble_attribution", "exit_overhead_fraction", "peak_memory_GiB", "stages"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_TRUE(j["stages"][0].contains("peak_memory_GiB"));
  EXPECT_TRUE(j["stages"][0].contains("busy_time_s"));
  EXPECT_DOUBLE_EQ(j["iteration_time_s"].get<double>(), r->summary.iteration_time_s);
  const std::string csv = summary_to_csv(r->summary);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + r->summary.pp);
  EXPECT_NE(summary_to_text(r->summary).find("iteration time"), std::string::npos);
}

TEST(Simulate, BadScenarioIsAnErrorNamingTheField) {
  Scenario sc = load("tiny-ee-pp4");
  sc.training.global_batch_size = 7;
  auto r = simulate(sc);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("global_batch_size (7)"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace eellm
