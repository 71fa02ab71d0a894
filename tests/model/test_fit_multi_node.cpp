// The multi-node calibration set (data/calibration/megatron_a100_multi_node.csv): reading, the
// scenario of a row, the choice of the open settings, and the shipped A100 device + cluster
// profiles' errors on rows the fit did not see (leave-one-out), as numbers.
#include <gtest/gtest.h>

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

TEST(MultiNodeFit, ExperimentPrintsRows) {
  const auto multi = read_multi_node_csv(data_file("megatron_a100_multi_node.csv"));
  ASSERT_TRUE(multi.is_ok()) << multi.status().to_string();
  const ClusterSpec c = shipped_cluster();
  for (const MultiNodeRow& r : *multi) {
    const MultiNodePrediction p = predict_multi_node(r, c);
    const Scenario s = multi_node_scenario(r, c, p.choice);
    const Layout L = derive_layout(s).value();
    const IterationEstimate e = estimate_iteration(CostModel(s, L));
    std::printf("%5d tp%d pp%2d dp%2d mb%d vp%d  meas %8.3f pred %8.3f  %+6.1f%%  pipe %.3f bub %.3f p2p %.3f dp %.3f emb %.3f opt %.3f\n",
                r.gpus, r.tp, r.pp, r.dp, p.choice.micro_batch, p.choice.vp, r.time_s, p.time_s,
                100 * (p.time_s - r.time_s) / r.time_s, e.pipeline_s, e.bubble_s, e.p2p_s, e.dp_sync_s,
                e.embedding_sync_s, e.optimizer_s);
  }
}

}  // namespace
}  // namespace eellm
