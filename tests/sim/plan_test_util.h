// Shared by the planner tests (test_plan.cpp, test_plan_trust.cpp): shipped scenarios by name and a
// small EE-LLM 1.3B search space whose candidates simulate in milliseconds.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "model/scenario_io.h"
#include "sim/plan.h"

namespace eellm::plan_testing {

inline Scenario load(const std::string& name) {
  auto s = load_scenario(std::string(EELLM_SOURCE_DIR) + "/scenarios/" + name + ".yaml");
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return *s;
}

// EE-LLM 1.3B with a small global batch so that every candidate simulates in milliseconds.
inline Scenario small_1p3b() {
  Scenario s = load("ee-llm-1.3b");
  s.training.global_batch_size = 32;
  return s;
}

inline PlanOptions small_space(int gpus) {
  PlanOptions o;
  o.gpus = gpus;
  o.micro_batch_values = {1, 2};
  o.vp_values = {2};
  o.recompute = {RecomputeGranularity::kNone, RecomputeGranularity::kSelective};
  o.exit_overhead = false;
  o.threads = 2;
  return o;
}

}  // namespace eellm::plan_testing
