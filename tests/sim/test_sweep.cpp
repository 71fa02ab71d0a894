// Sweeps: dotted keys with did-you-mean, value parsing, determinism, agreement with simulate(), SVG.
#include <gtest/gtest.h>

#include "model/scenario_io.h"
#include "sim/simulate.h"
#include "sim/sweep.h"

namespace eellm {
namespace {

Scenario small_1p3b() {
  auto s = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/ee-llm-1.3b.yaml");
  EXPECT_TRUE(s.is_ok());
  s->training.global_batch_size = 64;
  return *s;
}

TEST(Sweep, ParsesVaryWithListValues) {
  auto a = parse_vary("exits.exit_layer_nums=[8,16],[12],[]");
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->key, "exits.exit_layer_nums");
  EXPECT_EQ(a->values, (std::vector<std::string>{"[8,16]", "[12]", "[]"}));
  Scenario s = small_1p3b();
  ASSERT_TRUE(set_scenario_value(s, a->key, a->values[0]).is_ok());
  EXPECT_EQ(s.exits.exit_layer_nums, (std::vector<int>{8, 16}));
  // Four exits: the scenario's two per-exit weights (0.25, 0.5) collapse to their mean for all.
  ASSERT_TRUE(set_scenario_value(s, a->key, "[4,8,12,16]").is_ok());
  EXPECT_EQ(s.exits.exit_layer_weight, (std::vector<double>{0.375}));
  ASSERT_TRUE(set_scenario_value(s, "parallel.schedule", "zb-h1").is_ok());
  EXPECT_EQ(s.parallel.schedule, ScheduleKind::kZBH1);
  ASSERT_TRUE(set_scenario_value(s, "cluster.inter_node.bandwidth_GBps", "50").is_ok());
  EXPECT_EQ(s.cluster.inter_node.bandwidth_GBps, 50);
  ASSERT_TRUE(set_scenario_value(s, "cluster.device", "h100-sxm").is_ok());
  EXPECT_EQ(s.cluster.device.name.find("H100") != std::string::npos || s.cluster.device_name == "h100-sxm", true);
  EXPECT_FALSE(parse_vary("parallel.pipeline_model_parallel_size").is_ok());
  EXPECT_FALSE(parse_vary("parallel.pipeline_model_parallel_size=2,,4").is_ok());
}

TEST(Sweep, BadKeysAndValuesGetClearErrors) {
  Scenario s = small_1p3b();
  Status st = set_scenario_value(s, "parallel.pipeline_model_paralel_size", "2");
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("did you mean 'parallel.pipeline_model_parallel_size'"), std::string::npos)
      << st.message();
  st = set_scenario_value(s, "pipeline_model_parallel_size", "2");
  EXPECT_NE(st.message().find("did you mean 'parallel.pipeline_model_parallel_size'"), std::string::npos)
      << st.message();
  st = set_scenario_value(s, "parallel.pipeline_model_parallel_size", "two");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'two' is not an integer"), std::string::npos) << st.message();
  st = set_scenario_value(s, "parallel.schedule", "2f2b");
  EXPECT_NE(st.message().find("one of none, gpipe, 1f1b"), std::string::npos) << st.message();

  SweepOptions o;
  o.axes = {{"training.micro_batch_sise", {"1", "2"}}};
  auto r = sweep(s, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("training.micro_batch_size"), std::string::npos);
  o.axes = {{"training.micro_batch_size", {"1"}}};
  o.metric = "speed";
  r = sweep(s, o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("iteration_time_s"), std::string::npos);
}

TEST(Sweep, MatchesSimulateAndIsDeterministic) {
  const Scenario s = small_1p3b();
  SweepOptions o;
  o.axes = {{"parallel.pipeline_model_parallel_size", {"2", "4", "5"}}};
  o.threads = 2;
  auto a = sweep(s, o);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  ASSERT_EQ(a->points.size(), 3u);
  // pp 5 does not divide 24 layers (nor 16 GPUs): the point fails with derive_layout's message.
  EXPECT_FALSE(a->points[2].ok);
  EXPECT_NE(a->points[2].error.find("not divisible"), std::string::npos) << a->points[2].error;
  Scenario pp4 = s;
  pp4.parallel.pipeline_model_parallel_size = 4;
  SimulateOptions so;
  so.record_timeline = false;
  auto direct = simulate(pp4, so);
  ASSERT_TRUE(direct.is_ok());
  EXPECT_DOUBLE_EQ(a->metric_of(a->points[1]), direct->summary.iteration_time_s);
  o.threads = 1;
  auto b = sweep(s, o);
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(sweep_to_csv(*a), sweep_to_csv(*b));
}

TEST(Sweep, TwoKeysGiveAGridAndAHeatmap) {
  const Scenario s = small_1p3b();
  SweepOptions o;
  o.axes = {{"training.micro_batch_size", {"1", "2"}}, {"cluster.inter_node.bandwidth_GBps", {"12.5", "25", "50"}}};
  o.metric = "tokens_per_s";
  auto r = sweep(s, o);
  ASSERT_TRUE(r.is_ok());
  ASSERT_EQ(r->points.size(), 6u);
  EXPECT_EQ(r->points[1].values, (std::vector<std::string>{"1", "25"}));
  for (const SweepPoint& p : r->points) EXPECT_TRUE(p.ok) << p.error;
  // More inter-node bandwidth never slows an iteration down.
  EXPECT_GE(r->metric_of(r->points[2]), r->metric_of(r->points[0]));
  const std::string svg = sweep_to_svg(*r);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  size_t cells = 0;
  for (size_t at = svg.find("<title>"); at != std::string::npos; at = svg.find("<title>", at + 1)) ++cells;
  EXPECT_EQ(cells, 6u);
  const std::string csv = sweep_to_csv(*r);
  EXPECT_EQ(csv.substr(0, csv.find('\n'))
                .rfind("training.micro_batch_size,cluster.inter_node.bandwidth_GBps,iteration_time_s", 0),
            0u);
}

// [plan-trust] EE-LLM 7B on A100-80GB (79.3 GiB as the driver reports it): PP1 needs 135 GiB on
// stage 0 and does not fit; every rendering of the sweep marks it. PP2 (76.3 GiB), PP4 and PP8 fit.
TEST(Sweep, PointsThatDoNotFitInMemoryAreMarkedEverywhere) {
  auto base = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/ee-llm-7b.yaml");
  ASSERT_TRUE(base.is_ok());
  SweepOptions o;
  o.axes = {*parse_vary("parallel.pipeline_model_parallel_size=1,2,4,8")};
  o.threads = 2;
  auto r = sweep(*base, o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r->points.size(), 4u);
  EXPECT_NEAR(r->points[0].memory_excess_GiB, 135.07 - 79.3, 0.1);
  EXPECT_EQ(r->points[1].memory_excess_GiB, 0.0);
  EXPECT_TRUE(r->points[1].memory_note.empty());
  EXPECT_EQ(r->points[0].memory_note.rfind("does not fit: stage 0 needs 135.1 GiB", 0), 0u) << r->points[0].memory_note;
  EXPECT_TRUE(r->points[2].memory_note.empty());
  EXPECT_TRUE(r->points[3].memory_note.empty());
  EXPECT_EQ(r->points[2].memory_excess_GiB, 0.0);
  const std::string text = sweep_to_text(*r), csv = sweep_to_csv(*r), svg = sweep_to_svg(*r);
  const size_t row = text.find("\n1\t");  // the PP1 row
  ASSERT_NE(row, std::string::npos) << text;
  EXPECT_NE(text.substr(row, text.find('\n', row + 1) - row).find("does not fit: stage 0"), std::string::npos) << text;
  EXPECT_NE(csv.find("fits_memory,memory_excess_GiB,memory_note,error"), std::string::npos);
  EXPECT_NE(csv.find(",0,55.7"), std::string::npos) << csv;
  EXPECT_NE(svg.find("over memory +55.77 GiB"), std::string::npos) << svg;
  EXPECT_NE(svg.find("red: does not fit in GPU memory"), std::string::npos);
}

}  // namespace
}  // namespace eellm
