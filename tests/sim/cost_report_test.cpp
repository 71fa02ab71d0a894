// The cost block's text: figures with significant digits (a CPU profile's run is 0.0012 GPU-hours,
// not "0"), and "no price in the profile" instead of 0 USD.
#include "sim/cost_report.h"

#include <gtest/gtest.h>

namespace eellm {
namespace {

TrainingCost tiny_run() {
  TrainingCost c;
  c.iterations = 100;
  c.useful_s = 4.3;
  c.wall_s = 4.3;
  c.gpu_hours = 0.0012;
  c.cost_usd = 0.0024;
  c.energy_kWh = 0.00031;
  c.energy_gpu_busy_kWh = 0.00025;
  return c;
}

TEST(CostReport, SmallFiguresKeepTheirSignificantDigits) {
  CostSpec k;
  k.price_per_gpu_hour_usd = 2;
  const std::string text = training_cost_to_text(tiny_run(), k);
  EXPECT_NE(text.find("GPU-hours          0.0012\n"), std::string::npos) << text;
  EXPECT_NE(text.find("cost               0.0024 USD at 2.00 USD per GPU-hour"), std::string::npos) << text;
  EXPECT_NE(text.find("energy             0.00031 kWh (GPUs busy 0.00025, idle 0"), std::string::npos) << text;
  EXPECT_EQ(text.find("GPU-hours          0\n"), std::string::npos) << text;
}

TEST(CostReport, NoPriceIsSaidNotPrintedAsZeroUsd) {
  const std::string text = training_cost_to_text(tiny_run(), CostSpec{});
  EXPECT_NE(text.find("cost               no price in the profile (cluster.cost.price_per_gpu_hour_usd)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("USD"), std::string::npos) << text;
}

}  // namespace
}  // namespace eellm
