// model/parse.h: the one number parser (whole text, from_chars, field named in the error) and
// parse_enum_value (the scenario's enum names and aliases, the accepted names in the error).
#include <gtest/gtest.h>

#include <limits>

#include "model/parse.h"
#include "model/yaml_reader.h"

namespace eellm {
namespace {

TEST(Parse, NumbersTakeTheWholeTextOrNameTheField) {
  EXPECT_EQ(*parse_int("--threads", "12"), 12);
  EXPECT_EQ(*parse_int("--threads", "+3"), 3);
  EXPECT_EQ(*parse_int("--threads", "-4"), -4);
  EXPECT_DOUBLE_EQ(*parse_double("threshold", "0.25"), 0.25);
  EXPECT_DOUBLE_EQ(*parse_double("threshold", "1e-3"), 1e-3);
  EXPECT_EQ(*parse_uint64("seed", "18446744073709551615"), std::numeric_limits<uint64_t>::max());
  for (const char* bad : {"", "4x", " 4", "4 ", "++4", "0x10", "1.5"}) {
    auto r = parse_int("--threads", bad);
    ASSERT_FALSE(r.is_ok()) << "'" << bad << "'";
    EXPECT_EQ(r.status().message(), std::string("--threads expects an integer, got '") + bad + "'");
  }
  EXPECT_FALSE(parse_int("n", "99999999999").is_ok());  // out of range
  EXPECT_EQ(parse_uint64("seed", "-1").status().message(), "seed expects a non-negative integer, got '-1'");
  for (const char* bad : {"nan", "inf", "-inf", "1e999", "0.5.1", "."}) {
    auto r = parse_double("threshold", bad);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().message(), std::string("threshold expects a number, got '") + bad + "'");
  }
}

TEST(Parse, EnumValuesUseTheScenarioNamesAndAliases) {
  EXPECT_EQ(*parse_enum_value<Confidence>("--confidence", "max_prob"), Confidence::kMaxProb);
  EXPECT_EQ(*parse_enum_value<Confidence>("--confidence", "Entropy"), Confidence::kEntropy);
  EXPECT_EQ(*parse_enum_value<InferenceMethod>("--method", "speculative"), InferenceMethod::kSpeculative);
  EXPECT_EQ(*parse_enum_value<Normalization>("norm", "rmsnorm"), Normalization::kRMSNorm);
  auto bad = parse_enum_value<InferenceMethod>("--method", "fast");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message(), "--method: unknown value 'fast'; allowed: full, recompute, pipeline, speculative");
}

}  // namespace
}  // namespace eellm
