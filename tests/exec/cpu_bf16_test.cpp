// bf16 GEMM math on the CPU (execution.gemm_math bf16, exec/backend/gemm.h): the fp32 → bf16
// rounding (to nearest, ties to even; the AVX512_BF16 path and the scalar path give the same bits),
// the backend's linear layers equal fp32 products of the bf16-rounded operands (fp32 accumulation)
// and differ from exact fp32 by bf16's rounding, and a shrunk tiny-ee trains to the same validation
// loss as in fp32; the attention in bf16 stays within bf16 rounding of fp32. Skipped, saying why,
// where oneDNN's bf16 GEMM cannot run (no libdnnl2, no AVX-512).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/backend/device.h"
#include "exec/backend/gemm.h"
#include "exec/train/trainer.h"
#include "model/scenario_io.h"
#include "model/validate.h"
#include "test_util.h"

namespace eellm::exec {
namespace {

uint16_t bits_of(float f) {
  uint16_t b;
  to_bf16(&f, &b, 1);
  return b;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

TEST(Bf16Rounding, RoundsToNearestTiesToEvenAndKeepsSpecials) {
  EXPECT_EQ(bits_of(1.0f), 0x3f80);
  EXPECT_EQ(bits_of(-2.0f), 0xc000);
  EXPECT_EQ(bits_of(from_bits(0x3f808000)), 0x3f80);  // tie, even below: down
  EXPECT_EQ(bits_of(from_bits(0x3f818000)), 0x3f82);  // tie, odd below: up
  EXPECT_EQ(bits_of(from_bits(0x3f808001)), 0x3f81);  // above the tie: up
  EXPECT_EQ(bits_of(from_bits(0x3f807fff)), 0x3f80);  // below the tie: down
  EXPECT_EQ(bits_of(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(bits_of(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(bits_of(std::numeric_limits<float>::max()), 0x7f80);  // rounds up to Inf, as IEEE does
  EXPECT_TRUE(std::isnan(from_bf16(bits_of(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(from_bf16(bits_of(from_bits(0x7f800001)))));  // a NaN whose top bits look like Inf
  EXPECT_EQ(bits_of(from_bits(0x00000001)), 0x0000);                   // denormals flush, keeping the sign
  EXPECT_EQ(bits_of(from_bits(0x80400000)), 0x8000);
  EXPECT_EQ(from_bf16(0x3f80), 1.0f);
  EXPECT_EQ(from_bf16(0xc0a0), -5.0f);
}

TEST(Bf16Rounding, LongArraysGiveTheBitsOfOneByOne) {
  std::mt19937 rng(5);
  std::vector<float> x = testing::randn(1000, rng, 3.0f);
  x[7] = std::numeric_limits<float>::quiet_NaN();
  x[40] = -std::numeric_limits<float>::infinity();
  x[41] = from_bits(0x3f818000);
  x[42] = from_bits(0x00000010);
  std::vector<uint16_t> all(x.size());
  to_bf16(x.data(), all.data(), x.size());  // the vector path where the CPU has AVX512_BF16
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(from_bf16(all[i]))) << i;
      continue;
    }
    ASSERT_EQ(all[i], bits_of(x[i])) << i << ": " << x[i];
    if (i == 40 || i == 42) continue;  // -Inf, a denormal
    EXPECT_LE(std::fabs(from_bf16(all[i]) - x[i]), std::fabs(x[i]) * (1.0f / 256)) << i;
  }
}

TEST(Bf16Rounding, GemmMathNamesParseAndOthersNameTheField) {
  EXPECT_EQ(parse_gemm_math("bf16").value(), GemmMath::kBf16);
  EXPECT_EQ(parse_gemm_math("fp32").value(), GemmMath::kFp32);
  EXPECT_EQ(std::string(to_string(GemmMath::kTf32)), "tf32");
  const auto bad = parse_gemm_math("fp16", "execution.gemm_math");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("execution.gemm_math"), std::string::npos) << bad.status().message();
}

class Bf16Gemm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!bf16_gemm_info().available) GTEST_SKIP() << "bf16 GEMM unavailable: " << bf16_gemm_info().error;
  }
};

std::vector<float> rounded(const std::vector<float>& x) {
  std::vector<uint16_t> b(x.size());
  to_bf16(x.data(), b.data(), x.size());
  std::vector<float> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) r[i] = from_bf16(b[i]);
  return r;
}

using testing::rel_diff;

// The linear layer's three products in bf16 math equal the fp32 backend's products of the
// bf16-rounded operands (what fp32 accumulation of exact bf16 products gives, up to summation
// order), and differ from the unrounded fp32 ones by about bf16's precision: the bf16 path really ran.
TEST_F(Bf16Gemm, LinearLayersAreFp32ProductsOfRoundedOperands) {
  for (auto [N, C, OC] : {std::tuple{2048, 256, 768}, std::tuple{300, 37, 13}, std::tuple{129, 1024, 256}}) {
    for (int threads : {1, 3}) {
      std::mt19937 rng(11);
      const auto x = testing::randn(static_cast<size_t>(N) * C, rng);
      const auto w = testing::randn(static_cast<size_t>(OC) * C, rng, 0.1f);
      const auto b = testing::randn(static_cast<size_t>(OC), rng);
      const auto dy = testing::randn(static_cast<size_t>(N) * OC, rng);
      auto bf = make_cpu_backend(threads, CpuGemm::kEigen, GemmMath::kBf16);
      auto fp = make_cpu_backend(threads, CpuGemm::kEigen, GemmMath::kFp32);
      EXPECT_NE(bf->gemm_name().find("bf16"), std::string::npos) << bf->gemm_name();
      struct Out {
        std::vector<float> y, dx, dw, db;
      };
      auto run = [&](Backend& be, const std::vector<float>& xx, const std::vector<float>& ww,
                     const std::vector<float>& dd) {
        Out o{std::vector<float>(static_cast<size_t>(N) * OC), std::vector<float>(x.size(), 0.5f),
              std::vector<float>(w.size(), 0.25f), std::vector<float>(b.size(), 0.0f)};
        be.matmul_forward(o.y.data(), xx.data(), ww.data(), b.data(), N, C, OC);
        be.matmul_backward(o.dx.data(), o.dw.data(), o.db.data(), dd.data(), xx.data(), ww.data(), N, C, OC);
        return o;
      };
      const Out got = run(*bf, x, w, dy);
      const Out want = run(*fp, rounded(x), rounded(w), rounded(dy));
      const Out exact = run(*fp, x, w, dy);
      const std::string at = std::to_string(N) + "×" + std::to_string(C) + "→" + std::to_string(OC) + ", " +
                             std::to_string(threads) + " threads";
      EXPECT_LT(rel_diff(got.y, want.y), 2e-6) << at;
      EXPECT_LT(rel_diff(got.dx, want.dx), 2e-6) << at;
      EXPECT_LT(rel_diff(got.dw, want.dw), 2e-6) << at;
      EXPECT_EQ(got.db, exact.db) << at;  // the bias gradient is a column sum, fp32
      const double e = rel_diff(got.y, exact.y);
      EXPECT_GT(e, 1e-4) << at << ": no bf16 rounding seen";
      EXPECT_LT(e, 2e-2) << at;
    }
  }
}

// The fused classifier (logits, cross-entropy, dx, dweight) in bf16 math: within bf16's rounding of
// fp32, and not equal to it (the bf16 path ran), at a vocabulary that needs several row blocks.
TEST_F(Bf16Gemm, ClassifierIsWithinBf16RoundingOfFp32) {
  auto run = [&](GemmMath math) {
    return testing::run_classifier(*make_cpu_backend(2, CpuGemm::kEigen, math), 600, 96, 2000, 2048, 4);
  };
  const auto bf = run(GemmMath::kBf16), fp = run(GemmMath::kFp32);
  for (const auto& [name, a, b] : {std::tuple{"loss", &bf.loss, &fp.loss}, std::tuple{"dx", &bf.dx, &fp.dx},
                                   std::tuple{"dweight", &bf.dw, &fp.dw}}) {
    const double e = rel_diff(*a, *b);
    EXPECT_GT(e, 1e-5) << name << ": no bf16 rounding seen";
    EXPECT_LT(e, 3e-2) << name;
  }
}

// The attention in bf16 math (q, k, v, dout and the probabilities rounded to bf16; scores, softmax
// and accumulation fp32): output, log-sum-exp and dqkv within bf16's rounding of fp32 and not equal
// to it (the bf16 products ran), over several causal blocks and at an odd grouped-query shape; the
// same bits at 1 and 3 threads (one item per head or group, whatever thread takes it).
TEST_F(Bf16Gemm, AttentionIsWithinBf16RoundingOfFp32) {
  for (const AttentionShape s : {AttentionShape{2, 256, 8, 8, 32}, AttentionShape{3, 77, 6, 2, 24}}) {
    auto run = [&](GemmMath math, int threads) {
      return testing::run_attention(*make_cpu_backend(threads, CpuGemm::kOpenBLAS, math), s);
    };
    const auto bf = run(GemmMath::kBf16, 1), bf3 = run(GemmMath::kBf16, 3), fp = run(GemmMath::kFp32, 1);
    const std::string shape = std::to_string(s.T) + " positions, head size " + std::to_string(s.HS);
    for (const auto& [name, a, b] : {std::tuple{"output", &bf.y, &fp.y}, std::tuple{"log-sum-exp", &bf.lse, &fp.lse},
                                     std::tuple{"dqkv", &bf.dqkv, &fp.dqkv}}) {
      const double e = rel_diff(*a, *b);
      EXPECT_GT(e, 1e-4) << name << ", " << shape << ": no bf16 rounding seen";  // measured 7e-4 … 3e-3
      EXPECT_LT(e, 1e-2) << name << ", " << shape;
    }
    EXPECT_EQ(bf.y, bf3.y) << shape;
    EXPECT_EQ(bf.lse, bf3.lse) << shape;
    EXPECT_EQ(bf.dqkv, bf3.dqkv) << shape;
  }
}

TEST_F(Bf16Gemm, ResultsAreBitwiseReproducibleAtAFixedThreadCount) {
  std::mt19937 rng(2);
  const int N = 1024, C = 256, OC = 512;
  const auto x = testing::randn(static_cast<size_t>(N) * C, rng);
  const auto w = testing::randn(static_cast<size_t>(OC) * C, rng, 0.1f);
  auto be = make_cpu_backend(2, CpuGemm::kOneDNN, GemmMath::kBf16);
  std::vector<float> a(static_cast<size_t>(N) * OC), b(a.size());
  be->matmul_forward(a.data(), x.data(), w.data(), nullptr, N, C, OC);
  be->matmul_forward(b.data(), x.data(), w.data(), nullptr, N, C, OC);
  EXPECT_EQ(a, b);
}

// Mixed precision as the GPU backends do it: a shrunk tiny-ee (40 steps) ends at the validation
// loss of fp32 training within 0.03 nats at every head, far below where it started.
TEST_F(Bf16Gemm, TinyEeTrainsToTheLossOfFp32) {
  std::vector<EvalResult> before, after;
  for (const char* math : {"fp32", "bf16"}) {
    TrainOptions o;
    o.num_threads = 2;
    auto sc = testing::shrunk_tiny_ee(40);
    ASSERT_TRUE(sc.is_ok()) << sc.status().to_string();
    sc->execution.gemm_math = math;
    auto tr = Trainer::create(*sc, o);
    ASSERT_TRUE(tr.is_ok()) << tr.status().to_string();
    EXPECT_EQ((*tr)->backend().gemm_name().find("bf16") != std::string::npos, std::string(math) == "bf16")
        << (*tr)->backend().gemm_name();
    before.push_back((*tr)->evaluate(4));
    ASSERT_TRUE((*tr)->train().is_ok());
    after.push_back((*tr)->evaluate(4));
  }
  ASSERT_EQ(after[0].loss.size(), after[1].loss.size());
  for (size_t i = 0; i < after[0].loss.size(); ++i) {
    std::printf("%-8s validation loss fp32 %.4f → %.4f, bf16 %.4f → %.4f\n", after[0].names[i].c_str(),
                before[0].loss[i], after[0].loss[i], before[1].loss[i], after[1].loss[i]);
    EXPECT_NEAR(before[1].loss[i], before[0].loss[i], 1e-2) << after[0].names[i];  // same init
    EXPECT_LT(after[0].loss[i], before[0].loss[i] - 1.5) << after[0].names[i];
    EXPECT_NEAR(after[1].loss[i], after[0].loss[i], 0.03) << after[0].names[i];
  }
}

TEST(GemmMathField, ValidatedAndRefusedWhereItCannotRun) {
  Scenario s = load_scenario("tiny-ee").value();
  s.execution.gemm_math = "fp16";
  Diagnostics d = validate_scenario(s);
  ASSERT_TRUE(d.has_errors());
  EXPECT_NE(d.to_string().find("execution.gemm_math ('fp16') must be auto, fp32, tf32 or bf16"), std::string::npos)
      << d.to_string();
  s.execution.gemm_math = "tf32";
  d = validate_scenario(s);
  EXPECT_NE(d.to_string().find("execution.gemm_math tf32 needs execution.device cuda"), std::string::npos)
      << d.to_string();
  auto be = make_backend(s, 1);
  ASSERT_FALSE(be.is_ok());
  EXPECT_NE(be.status().message().find("execution.gemm_math tf32"), std::string::npos) << be.status().message();
  s.execution.gemm_math = "bf16";
  EXPECT_FALSE(validate_scenario(s).has_errors()) << validate_scenario(s).to_string();
  auto bf = make_backend(s, 1);
  if (bf16_gemm_info().available) {
    ASSERT_TRUE(bf.is_ok()) << bf.status().to_string();
    EXPECT_NE((*bf)->gemm_name().find("bf16"), std::string::npos);
  } else {
    ASSERT_FALSE(bf.is_ok());
    EXPECT_NE(bf.status().message().find("execution.gemm_math bf16"), std::string::npos);
  }
}

// gemm_math auto follows training.params_dtype (what the simulator prices): bf16 → bf16 GEMMs here.
TEST(GemmMathField, AutoFollowsTheScenariosDtypeOnTheCpu) {
  Scenario s = load_scenario("tiny-ee").value();
  ASSERT_EQ(s.training.params_dtype, DType::kFP32);
  auto fp = make_backend(s, 1);
  ASSERT_TRUE(fp.is_ok()) << fp.status().to_string();
  EXPECT_EQ((*fp)->gemm_name().find("bf16"), std::string::npos) << (*fp)->gemm_name();
  s.training.params_dtype = DType::kBF16;
  const Diagnostics d = validate_scenario(s);
  EXPECT_NE(d.to_string().find("for CPU runs use params_dtype fp32 with execution.gemm_math bf16"), std::string::npos)
      << d.to_string();
  auto bf = make_backend(s, 1);
  ASSERT_TRUE(bf.is_ok()) << bf.status().to_string();
  EXPECT_EQ((*bf)->gemm_name().find("bf16") != std::string::npos, bf16_gemm_info().available) << (*bf)->gemm_name();
  s.training.params_dtype = DType::kFP16;  // no fp16 GEMM on CPUs: fp32
  auto f16 = make_backend(s, 1);
  ASSERT_TRUE(f16.is_ok()) << f16.status().to_string();
  EXPECT_EQ((*f16)->gemm_name().find("bf16"), std::string::npos) << (*f16)->gemm_name();
}

}  // namespace
}  // namespace eellm::exec
