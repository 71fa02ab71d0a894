// The executor runs EE-LLM's early-exit schedules in the order its released code does (issue #18):
// the golden per-stage compute order at PP 4, m 6 (tests/sim/ee_llm_fill_golden.h), without and
// with bubble filling, exits on stages 1–2 and 0–1, read off the measured timeline (np 4).
#include <gtest/gtest.h>

#include <cmath>

#include "exec/train/runtime.h"
#include "tests/exec/dist_reference.h"
#include "tests/mpi/mpi_test_util.h"
#include "tests/sim/ee_llm_fill_golden.h"

namespace eellm::exec {
namespace {

using testing::RuntimeFixture;
using testing::world;

void expect_golden(const Scenario& s, const std::vector<std::string>& expected) {
  RuntimeOptions ro;
  ro.recv_timeout_s = 60;
  auto f = RuntimeFixture::create(s, ro);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  std::vector<int32_t> in, tgt;
  testing::replica_tokens(0, 0, 6, 2, 16, in, tgt);
  auto r = (*f)->rt().run_iteration(in, tgt, 0);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  if (world().rank() != 0) return;  // rank 0 holds every pipeline rank's events
  EXPECT_EQ(golden::compute_order(r->timeline, (*f)->rt().schedule()), expected);
  EXPECT_TRUE(std::isfinite(r->grad_norm));
}

TEST(EELLMGoldenExec, WithoutFilling) {
  if (world().size() != 4) GTEST_SKIP() << "needs np 4";
  expect_golden(golden::scenario({4, 6}, false), golden::kNoFill);
  expect_golden(golden::scenario({2, 4}, false), golden::kNoFill);
}

TEST(EELLMGoldenExec, WithFillingExitsOnStages12) {
  if (world().size() != 4) GTEST_SKIP() << "needs np 4";
  expect_golden(golden::scenario({4, 6}, true), golden::kFillExitsOnStages12);
}

TEST(EELLMGoldenExec, WithFillingExitsOnStages01) {
  if (world().size() != 4) GTEST_SKIP() << "needs np 4";
  expect_golden(golden::scenario({2, 4}, true), golden::kFillExitsOnStages01);
}

}  // namespace
}  // namespace eellm::exec
