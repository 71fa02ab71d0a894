// The multi-node calibration set (data/calibration/megatron_a100_multi_node.csv): reading, the
// scenario of a row, the choice of the open settings, and the shipped A100 device + cluster
// profiles' errors on rows the fit did not see (leave-one-out), as numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "model/fit.h"
#include "model/layout.h"
#include "model/scenario_io.h"

namespace eellm {
namespace {

std::string data_file(const char* name) {
  return std::string(EELLM_SOURCE_DIR) + "/data/calibration/" + name;
}

ClusterSpec shipped_cluster() {
  auto c = load_cluster_profile("a100-80gb-128x8");
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return c.is_ok() ? *c : ClusterSpec{};
}

TEST(MultiNodeFit, ReadsTheSixteenRows) {
  const auto multi = read_multi_node_csv(data_file("megatron_a100_multi_node.csv"));
  ASSERT_TRUE(multi.is_ok()) << multi.status().to_string();
  ASSERT_EQ(multi->size(), 16u);
  const MultiNodeRow& r = (*multi)[9];  // the 1T-parameter row of Table 1
  EXPECT_EQ(r.gpus, 3072);
  EXPECT_EQ(r.tp * r.pp * r.dp, r.gpus);
  EXPECT_EQ(r.micro_batch, 0);  // not given by Table 1
  EXPECT_EQ((*multi)[10].micro_batch, 1);
  EXPECT_DOUBLE_EQ(r.time_s, 102.630);
}

TEST(MultiNodeFit, CsvErrorsNameTheLineAndColumn) {
  const std::string path = std::string(EELLM_BINARY_DIR) + "/test_multi_node_bad.csv";
  {
    std::ofstream f(path);
    f << "source,parameters_billion,...\nt1,1.7,24,2304,24,2048,51200,1,1,32,32,512,,x,3.528\n";
  }
  const auto rows = read_multi_node_csv(path);
  ASSERT_FALSE(rows.is_ok());
  EXPECT_NE(rows.status().message().find(":2: column 14 ('x') is not a number"), std::string::npos)
      << rows.status().message();
  std::filesystem::remove(path);
}

TEST(MultiNodeFit, RowScenarioSpansNodesAndChoosesFittingLayouts) {
  const auto multi = read_multi_node_csv(data_file("megatron_a100_multi_node.csv"));
  ASSERT_TRUE(multi.is_ok());
  const ClusterSpec c = shipped_cluster();
  const MultiNodeRow& r = (*multi)[13];  // 530B, TP 8, PP 35, DP 2, micro batch 1
  const MultiNodePrediction p = predict_multi_node(r, c);
  ASSERT_GT(p.time_s, 0);
  EXPECT_EQ(p.choice.micro_batch, 1);  // given by the table
  const Scenario s = multi_node_scenario(r, c, p.choice);
  EXPECT_EQ(s.cluster.num_nodes, 70);
  EXPECT_EQ(s.training.params_dtype, DType::kFP16);
  EXPECT_EQ(s.parallel.recompute_granularity, RecomputeGranularity::kFull);
  const Layout L = derive_layout(s).value();
  const CostModel cm(s, L);
  // The chosen layout fits the device as the driver reports it (79.3 GiB), every stage.
  for (int st = 0; st < L.pp; ++st)
    EXPECT_LE(static_cast<double>(cm.stage_memory(st).peak_bytes()), 79.3 * (1 << 30)) << st;
  EXPECT_NEAR(estimate_iteration(cm).total_s, p.time_s, 1e-9);
}

// The shipped A100 device + cluster (fitted on both sets, every multi-node row included) and the
// errors on rows a fit did not see: the single-node held-back rows, and leave-one-out over the
// multi-node rows (stage 2 of the joint fit re-run from the shipped profile without each row).
// Figures, not timings; the fitted-on MAPE is printed as such.
TEST(MultiNodeFit, ShippedProfileHeldOutErrors) {
  const auto single = read_calibration_csv(data_file("a100_megatron_single_node.csv"));
  const auto multi = read_multi_node_csv(data_file("megatron_a100_multi_node.csv"));
  ASSERT_TRUE(single.is_ok() && multi.is_ok());
  JointFitOptions o;
  o.stage1 = false;
  o.joint_evaluations = 1;  // the shipped profile as it is
  o.loo_evaluations = 150;
  const auto r = fit_joint(*single, *multi, shipped_cluster(), o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  std::printf(
      "single-node held-back MAPE %.2f %% (%d rows); multi-node MAPE fitted on %.2f %%, "
      "leave-one-out %.2f %% (mean signed %+.2f %%)\n",
      r->single.validation_mape, r->single.validation_rows, r->multi_fit_mape, r->multi_loo_mape, r->multi_loo_bias);
  for (const ScaleBucket& b : r->buckets)
    std::printf("  %-7s %4d rows  MAPE %5.2f %%  mean signed %+5.2f %%\n", b.label.c_str(), b.rows, b.mape, b.bias);
  EXPECT_EQ(r->single.validation_rows, 308);
  EXPECT_LT(r->single.validation_mape, 7.2);              // 7.09 % (7.11 % before the joint fit)
  EXPECT_LT(r->multi_loo_mape, 3.0);                      // 2.32 %; the target 6 %
  EXPECT_GE(r->multi_loo_mape, r->multi_fit_mape - 0.5);  // leaving a row out does not help it
  ASSERT_EQ(r->buckets.size(), 4u);
  for (const ScaleBucket& b : r->buckets) {
    EXPECT_GT(b.rows, 0) << b.label;
    EXPECT_LT(std::abs(b.bias), 3.0) << b.label;
  }
}

}  // namespace
}  // namespace eellm
