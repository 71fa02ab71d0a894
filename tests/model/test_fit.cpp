// Analytical iteration estimate, calibration CSV reading, and the device-profile fit: recovery of
// known parameters from data the estimator generated, and the shipped A100 profile's validation
// MAPE on the shared measurements.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "model/fit.h"
#include "model/layout.h"
#include "model/scenario_io.h"

namespace eellm {
namespace {

DeviceProfile a100_spec() {
  DeviceProfile d;
  d.name = "a100-spec";
  d.peak_tflops_fp32 = 19.5;
  d.peak_tflops_fp16 = 312;
  d.peak_tflops_bf16 = 312;
  d.memory_GiB = 74.5;
  d.memory_bandwidth_GBps = 2039;
  d.num_sms = 108;
  d.nvlink_bandwidth_GBps = 300;
  d.nvlink_latency_us = 5;
  d.network_bandwidth_GBps = 25;
  d.network_latency_us = 5;
  d.kernel_launch_us = 3;
  return d;
}

std::vector<CalibrationRow> synthetic_rows() {
  std::vector<CalibrationRow> rows;
  const int cfg[][3] = {{1, 1, 2}, {2, 1, 1}, {1, 2, 1}, {2, 2, 2}, {4, 1, 2},
                        {1, 8, 1}, {8, 1, 1}, {2, 1, 4}, {1, 4, 2}, {4, 2, 1}};
  for (int h : {1024, 2048})
    for (int l : {12, 24})
      for (int mb : {1, 4})
        for (const auto& c : cfg) {
          CalibrationRow r;
          r.hidden = h, r.heads = 16, r.layers = l, r.seq = 1024, r.micro_batch = mb;
          r.tp = c[0], r.dp = c[1], r.pp = c[2], r.gpus = c[0] * c[1] * c[2];
          r.global_batch = mb * r.dp * 4;
          r.time_ms = 1;
          rows.push_back(r);
        }
  return rows;
}

TEST(Fit, EstimateMatchesClosedForm1F1B) {
  CalibrationRow r{8, 32, 2, 1024, 16, 24, 1024, 2, 2, 2, 0};
  const Scenario s = calibration_scenario(r, a100_spec());
  const Layout L = derive_layout(s).value();
  const CostModel cm(s, L);
  const IterationEstimate e = estimate_iteration(cm);
  // Even stages: (m + p − 1)·(F + B) with B including the recompute forward.
  double F[2], B[2];
  for (int st = 0; st < 2; ++st) {
    const ChunkCosts c = cm.chunk(st);
    F[st] = c.backbone.fwd;
    B[st] = c.backbone.bwd() + c.recompute_fwd;
  }
  const int m = 8;
  const double worst = std::max(F[0] + B[0], F[1] + B[1]);
  EXPECT_NEAR(e.pipeline_s, F[0] + B[0] + F[1] + B[1] + (m - 1) * worst, 1e-12);
  EXPECT_NEAR(e.p2p_s, 2.0 * (m + 2 - 2) * cm.p2p_activation_time(0), 1e-12);
  EXPECT_NEAR(e.dp_sync_s, std::max(cm.dp_sync_time(0), cm.dp_sync_time(1)), 1e-12);
  EXPECT_NEAR(e.total_s, e.pipeline_s + e.p2p_s + e.dp_sync_s + e.embedding_sync_s + e.optimizer_s + e.overhead_s,
              1e-12);
  EXPECT_GT(e.bubble_s, 0);
  EXPECT_GT(e.embedding_sync_s, 0);  // tied embeddings over 2 stages
}

TEST(Fit, EstimateWithoutPipeliningIsMicrobatchesTimesWork) {
  CalibrationRow r{2, 16, 4, 1024, 16, 12, 1024, 2, 1, 1, 0};
  const Scenario s = calibration_scenario(r, a100_spec());
  const Layout L = derive_layout(s).value();
  const CostModel cm(s, L);
  const ChunkCosts c = cm.chunk(0);
  const IterationEstimate e = estimate_iteration(cm);
  EXPECT_NEAR(e.pipeline_s, 4 * (c.backbone.fwd + c.backbone.bwd() + c.recompute_fwd), 1e-12);
  EXPECT_EQ(e.p2p_s, 0);
  EXPECT_EQ(e.dp_sync_s, 0);
  EXPECT_EQ(e.bubble_s, 0);
}

TEST(Fit, SplitIsDeterministicAndAboutOneInFive) {
  int valid = 0;
  for (size_t i = 0; i < 10000; ++i) valid += is_validation_row(i);
  EXPECT_NEAR(valid / 10000.0, 0.2, 0.02);
  EXPECT_EQ(is_validation_row(17), is_validation_row(17));
}

TEST(Fit, RecoversKnownParametersFromSyntheticData) {
  DeviceProfile truth = a100_spec();
  truth.gemm_max_efficiency = 0.7;
  truth.elementwise_efficiency = 0.5;
  truth.collective_efficiency = 0.6;
  truth.per_layer_overhead_us = 2000;  // host work a layer: visible where it exceeds the kernels
  truth.per_iteration_overhead_us = 5000;
  std::vector<CalibrationRow> rows = synthetic_rows();
  std::vector<double> pred;
  calibration_mape(rows, truth, 2, &pred);
  for (size_t i = 0; i < rows.size(); ++i) rows[i].time_ms = pred[i];
  FitOptions o;
  o.params = {FitParam::kGemmMaxEfficiency, FitParam::kElementwiseEfficiency, FitParam::kCollectiveEfficiency,
              FitParam::kPerLayerOverheadUs, FitParam::kPerIterationOverheadUs};
  const StatusOr<FitResult> r = fit_device_profile(rows, a100_spec(), o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  for (FitParam p : o.params)
    EXPECT_NEAR(get_fit_param(r->profile, p) / get_fit_param(truth, p), 1.0, 0.01) << to_string(p);
  EXPECT_LT(r->train_mape, 0.1);
  EXPECT_LT(r->validation_mape, 0.1);
  EXPECT_EQ(r->train_rows + r->validation_rows, static_cast<int>(rows.size()));
}

TEST(Fit, CsvErrorsNameTheLine) {
  const std::string path = std::string(EELLM_BINARY_DIR) + "/test_fit_bad.csv";
  {
    std::ofstream f(path);
    f << "# GPUs,global batch,...\n2,16,8,1024,16,24,1024,1,1,2,372.1\n2,16,8,1024,16,24\n";
  }
  const auto rows = read_calibration_csv(path);
  ASSERT_FALSE(rows.is_ok());
  EXPECT_NE(rows.status().message().find(":3: has 6 columns"), std::string::npos) << rows.status().message();
  std::filesystem::remove(path);
  EXPECT_EQ(read_calibration_csv(path).status().code(), StatusCode::kNotFound);
}

// The shipped, fitted A100 profile on the shared measurements (a fixed number, not a timing).
TEST(Fit, ShippedA100ProfileValidationMape) {
  const std::string csv = std::string(EELLM_SOURCE_DIR) + "/data/calibration/a100_megatron_single_node.csv";
  const auto rows = read_calibration_csv(csv);
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  EXPECT_EQ(rows->size(), 1440u);
  for (const char* name : {"a100-80gb-sxm", "a100-40gb-sxm"}) {
    const auto dev = load_device_profile(name);
    ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
    const double train = calibration_mape(*rows, *dev, 0), valid = calibration_mape(*rows, *dev, 1);
    std::printf("%s: train MAPE %.2f %%, validation MAPE %.2f %%\n", name, train, valid);
    EXPECT_LT(valid, 25.0);
    EXPECT_LT(train, 25.0);
  }
}

}  // namespace
}  // namespace eellm

namespace eellm {
namespace {

// The residual terms `eellm fidelity` fits, as the cost model charges them.
TEST(CostModelResiduals, ExitOverheadIsChargedPerHeadAndMicrobatchOnly) {
  auto sc = load_scenario("tiny-ee");
  ASSERT_TRUE(sc.is_ok()) << sc.status().to_string();
  auto L = derive_layout(*sc);
  ASSERT_TRUE(L.is_ok());
  sc->cluster.device.per_exit_overhead_us = 0;  // whatever the shipped profile's figure
  Scenario with = *sc;
  with.cluster.device.per_exit_overhead_us = 1500;
  const ChunkCosts a = CostModel(*sc, *L).chunk(0), b = CostModel(with, *L).chunk(0);
  ASSERT_EQ(a.exits.size(), 2u);  // tiny-ee: exits after layers 2 and 4, one stage
  for (size_t k = 0; k < a.exits.size(); ++k) {
    EXPECT_NEAR(b.exits[k].fwd - a.exits[k].fwd, 1500e-6, 1e-12);
    EXPECT_NEAR(b.exits[k].bwd_input - a.exits[k].bwd_input, 1500e-6, 1e-12);
    EXPECT_DOUBLE_EQ(b.exits[k].bwd_weight, a.exits[k].bwd_weight);
  }
  EXPECT_DOUBLE_EQ(b.backbone.fwd, a.backbone.fwd);
  EXPECT_DOUBLE_EQ(b.backbone.bwd_input, a.backbone.bwd_input);
}

TEST(CostModelResiduals, ComputeShareScalesComputeAndTimeSharingAlsoLinks) {
  auto sc = load_scenario("tiny-ee");
  ASSERT_TRUE(sc.is_ok());
  sc->parallel.pipeline_model_parallel_size = 2;
  sc->parallel.schedule = ScheduleKind::k1F1B;
  sc->parallel.data_parallel_size = 2;
  sc->parallel.world_size = 4;
  sc->cluster.gpus_per_node = 4;
  sc->execution.num_threads = 0;
  sc->cluster.device.per_layer_overhead_us = 0;
  sc->cluster.device.compute_share = 1;  // the reference: no residual scaling at all
  sc->cluster.device.host_cores = 0;
  sc->cluster.device.oversubscribed_efficiency = 1;
  auto L = derive_layout(*sc);
  ASSERT_TRUE(L.is_ok()) << L.status().to_string();
  Scenario shared = *sc;
  shared.cluster.device.compute_share = 0.8;
  shared.cluster.device.host_cores = 2;  // 4 ranks × 1 thread on 2 cores: half a core each
  shared.cluster.device.oversubscribed_efficiency = 0.9;
  const CostModel base(*sc, *L), cm(shared, *L);
  const double share = 0.8 * 0.9 * 2.0 / 4.0;
  EXPECT_NEAR(cm.compute_share(), share, 1e-12);
  EXPECT_NEAR(cm.gemm_time(4096, 1024, 1024), base.gemm_time(4096, 1024, 1024) / share,
              1e-9 * base.gemm_time(4096, 1024, 1024));
  EXPECT_NEAR(cm.elementwise_time(1e9), base.elementwise_time(1e9) / share, 1e-9 * base.elementwise_time(1e9));
  // Shared-memory transfers are CPU copies: time-sharing halves their bandwidth (not the share).
  const double b = 1 << 20;
  EXPECT_NEAR(cm.p2p_time(1 << 20, false) - cm.p2p_time(0, false),
              2 * (base.p2p_time(1 << 20, false) - base.p2p_time(0, false)), 1e-9 * b);
  shared.cluster.device.host_cores = 4;  // enough cores: only the share, links untouched
  const CostModel roomy(shared, *L);
  EXPECT_NEAR(roomy.compute_share(), 0.8, 1e-12);
  EXPECT_DOUBLE_EQ(roomy.p2p_time(1 << 20, false), base.p2p_time(1 << 20, false));
  EXPECT_DOUBLE_EQ(roomy.allreduce_time(1 << 24, 4, false), base.allreduce_time(1 << 24, 4, false));
}

}  // namespace
}  // namespace eellm
