// The planner's cost-balanced layer partitions (sim/plan_space.cpp): the same partitions as the
// O(chunks × layers²) search they replaced, on shipped scenarios and on uneven layer counts with exits
// at the edges. tests/data/golden/plan_partitions.txt holds what that search found (one line per
// case, unit costs and chunk count: the partition, run-length coded); to regenerate it after an intended change:
//   EELLM_UPDATE_GOLDEN=1 build/<dir>/tests/eellm_sim_tests --gtest_filter='PlanPartition*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "sim/plan.h"
#include "tests/sim/plan_test_util.h"

namespace eellm {
namespace {

using plan_testing::load;

struct Case {
  std::string name;
  Scenario scenario;
  PlanOptions options;
};

PlanOptions wide(int gpus, int min_gpus) {
  PlanOptions o;
  o.gpus = gpus;
  o.min_gpus = min_gpus;
  o.movable_exits = true;  // neighbourhoods (one layer moved) follow from the balanced split: not searched
  o.vp_values = {2, 3, 4, 6, 8};
  return o;
}

// A shipped scenario with `layers` layers and these exits (1-based; pre-exits when `pre`).
Scenario reshaped(const std::string& name, int layers, std::vector<int> exits, bool pre) {
  Scenario s = load(name);
  s.model.num_layers = layers;
  s.exits.exit_layer_nums = std::move(exits);
  s.exits.exit_layer_weight.assign(s.exits.exit_layer_nums.size(), 0.5);
  s.exits.pre_exit = pre;
  return s;
}

std::vector<Case> cases() {
  std::vector<Case> c;
  c.push_back({"ee-llm-1.3b/16", load("ee-llm-1.3b"), wide(16, 2)});
  c.push_back({"ee-llm-7b/64", load("ee-llm-7b"), wide(64, 8)});
  c.push_back({"ee-llm-13b/64", load("ee-llm-13b"), wide(64, 16)});
  c.push_back({"ee-llm-30b/128", load("ee-llm-30b"), wide(128, 64)});
  c.push_back({"tiny-ee-pp4/4", load("tiny-ee-pp4"), wide(4, 1)});
  c.push_back({"gpt3-175b/64", load("gpt3-175b"), wide(64, 64)});
  c.push_back({"37-layers-post/32", reshaped("ee-llm-1.3b", 37, {1, 5, 30, 36}, false), wide(32, 1)});
  c.push_back({"37-layers-pre/32", reshaped("ee-llm-1.3b", 37, {2, 19, 37}, true), wide(32, 1)});
  c.push_back({"300-layers/64", reshaped("ee-llm-7b", 300, {1, 150, 299}, false), wide(64, 16)});
  return c;
}

// Every cost-balanced partition the enumeration holds, one line each, keyed by what it depends on.
std::string balanced_partitions(const Case& k) {
  auto cands = enumerate_candidates(k.scenario, k.options);
  EXPECT_TRUE(cands.is_ok()) << k.name << ": " << cands.status().to_string();
  if (!cands.is_ok()) return "";
  std::set<std::string> lines;
  for (const PlanCandidate& c : *cands) {
    if (!c.balanced_partition) continue;
    std::ostringstream os;
    os << k.name << " tp" << c.tp << " mbs" << c.micro_batch_size << (c.sequence_parallel ? " sp " : " ")
       << to_string(c.recompute) << " chunks" << c.pp * c.vp << ":";
    // Run-length coded: "12x3 11" is 12, 12, 12, 11.
    for (size_t i = 0; i < c.layer_partition.size();) {
      size_t j = i;
      while (j < c.layer_partition.size() && c.layer_partition[j] == c.layer_partition[i]) ++j;
      os << " " << c.layer_partition[i];
      if (j - i > 1) os << "x" << j - i;
      i = j;
    }
    lines.insert(os.str());
  }
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

TEST(PlanPartition, SameAsTheQuadraticSearch) {
  std::string all;
  size_t uneven = 0;
  for (const Case& k : cases()) {
    const std::string lines = balanced_partitions(k);
    EXPECT_FALSE(lines.empty()) << k.name << " has no balanced partition";
    uneven += static_cast<size_t>(std::count(lines.begin(), lines.end(), '\n'));
    all += lines;
  }
  EXPECT_GT(uneven, 100u);
  const std::string path = std::string(EELLM_TEST_DATA_DIR) + "/golden/plan_partitions.txt";
  if (std::getenv("EELLM_UPDATE_GOLDEN")) {
    std::ofstream(path) << all;
    GTEST_SKIP() << "rewrote " << path;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing golden file " << path;
  std::stringstream expected;
  expected << in.rdbuf();
  // Line by line, so that a difference names its case.
  std::istringstream a(all), b(expected.str());
  std::string got, want;
  size_t n = 0;
  while (std::getline(b, want)) {
    ASSERT_TRUE(std::getline(a, got)) << "missing line " << n + 1 << ": " << want;
    ASSERT_EQ(got, want) << "line " << n + 1;
    ++n;
  }
  EXPECT_FALSE(std::getline(a, got)) << "extra line " << n + 1 << ": " << got;
  EXPECT_GT(n, 100u);
}

// Pipelines deeper than 32,767 stages (--gpus up to 2^20): the candidate's sizes used to be 16-bit,
// so PP 65,536 wrapped to 0 and DP = world / (TP × PP) raised SIGFPE.
TEST(PlanSpace, PipelineSizesBeyondSixteenBits) {
  PlanOptions o;
  o.gpus = 1048576;
  o.tp_values = {1};
  o.micro_batch_values = {1};
  o.schedules = {ScheduleKind::k1F1B};
  o.recompute = {RecomputeGranularity::kNone};
  o.search_sequence_parallel = false;
  o.search_distributed_optimizer = false;
  o.search_partition = false;
  auto cands = enumerate_candidates(load("ee-llm-1.3b"), o);
  ASSERT_TRUE(cands.is_ok()) << cands.status().to_string();
  ASSERT_EQ(cands->size(), 21u);  // PP = 2^0 … 2^20
  for (size_t k = 0; k < cands->size(); ++k) {
    const PlanCandidate& c = (*cands)[k];
    EXPECT_EQ(c.pp, 1 << k);
    EXPECT_EQ(c.dp, 1048576 >> k);
    EXPECT_EQ(c.world_size, 1048576);
  }
  // The whole search answers (no layout of a 24-layer model fills 2^20 GPUs) instead of a signal.
  o.simulate_top = 4;
  o.threads = 1;
  auto r = plan(load("ee-llm-1.3b"), o);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition) << r.status().to_string();
}

}  // namespace
}  // namespace eellm
