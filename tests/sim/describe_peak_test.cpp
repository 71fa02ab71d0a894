// `eellm describe` (the cost model's analytical per-stage memory) and `eellm simulate` (the memory
// timeline of the executed schedule) agree on every stage's peak, for every shipped scenario and
// for interleaved variants (whose chunks differ in size: embedding, final head, exits).
#include <gtest/gtest.h>

#include <filesystem>

#include "model/describe.h"
#include "model/layout.h"
#include "model/scenario_io.h"
#include "sim/simulate.h"

namespace eellm {
namespace {

void expect_same_peaks(const Scenario& sc, const std::string& what) {
  const auto d = describe_scenario(sc);
  ASSERT_TRUE(d.is_ok()) << what << ": " << d.status().to_string();
  const auto r = simulate(sc);
  ASSERT_TRUE(r.is_ok()) << what << ": " << r.status().to_string();
  ASSERT_EQ(r->memory.ranks.size(), d->stages.size()) << what;
  for (size_t s = 0; s < d->stages.size(); ++s)
    EXPECT_EQ(d->stages[s].total_bytes, r->memory.ranks[s].peak_bytes) << what << " stage " << s;
}

TEST(DescribePeak, EqualsSimulatedPeakForShippedScenarios) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(EELLM_SOURCE_DIR) + "/scenarios")) {
    if (e.path().extension() != ".yaml") continue;
    const auto sc = load_scenario(e.path().string());
    ASSERT_TRUE(sc.is_ok()) << sc.status().to_string();
    expect_same_peaks(*sc, e.path().stem().string());
    ++n;
  }
  EXPECT_GE(n, 10);
}

TEST(DescribePeak, EqualsSimulatedPeakInterleaved) {
  int n = 0;
  for (const char* name : {"gpt3-175b", "tiny-ee-pp4", "ee-llm-7b"}) {
    auto sc = load_scenario(name);
    ASSERT_TRUE(sc.is_ok()) << sc.status().to_string();
    const int pp = sc->parallel.pipeline_model_parallel_size;
    if (pp < 2 || sc->model.num_layers % (2 * pp) != 0) continue;
    const auto base = derive_layout(*sc);
    ASSERT_TRUE(base.is_ok()) << base.status().to_string();
    sc->parallel.schedule = ScheduleKind::kInterleaved1F1B;
    sc->parallel.virtual_pipeline_model_parallel_size = 2;
    sc->parallel.layer_partition.clear();
    sc->training.global_batch_size = sc->training.micro_batch_size * 2 * pp * base->dp;
    expect_same_peaks(*sc, std::string(name) + " interleaved");
    ++n;
  }
  EXPECT_GE(n, 2);
}

}  // namespace
}  // namespace eellm
