// The training log's cadence: by step count, and also by time (a slow step is not minutes of silence).
#include <gtest/gtest.h>

#include "exec/train/trainer.h"

namespace eellm::exec {
namespace {

TEST(TrainLog, EveryLogIntervalStepsTheFirstAndTheLast) {
  EXPECT_TRUE(log_line_due(1, 0, 1000, 100, 0.5));  // the first step of the run
  EXPECT_FALSE(log_line_due(2, 0, 1000, 100, 0.5));
  EXPECT_TRUE(log_line_due(200, 0, 1000, 100, 0.5));   // the cadence
  EXPECT_TRUE(log_line_due(1000, 0, 1000, 100, 0.5));  // the last
  EXPECT_TRUE(log_line_due(51, 50, 1000, 100, 0.5));   // the first after a resume
  EXPECT_FALSE(log_line_due(52, 50, 1000, 100, 0.5));
}

TEST(TrainLog, AlsoWhenMoreThanTenSecondsPassedSinceTheLastLine) {
  EXPECT_FALSE(log_line_due(7, 0, 1000, 100, kLogQuietSeconds));
  EXPECT_TRUE(log_line_due(7, 0, 1000, 100, kLogQuietSeconds + 0.001));
  EXPECT_TRUE(log_line_due(7, 0, 1000, 100, 65.0));  // one step of a minute prints its line
  EXPECT_EQ(kLogQuietSeconds, 10.0);
}

}  // namespace
}  // namespace eellm::exec
