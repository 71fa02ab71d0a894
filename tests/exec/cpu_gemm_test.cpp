// The CPU backend's GEMM libraries (exec/backend/gemm.h): OpenBLAS — loaded at run time with the
// right core type, called on row slices by the backend's threads — gives the products of Eigen
// within fp32 rounding (forward, both backward GEMMs, the fused classifier), bitwise the same
// results run to run at a fixed thread count; the choice is parsed, validated and measured.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/backend/device.h"
#include "exec/backend/gemm_choice.h"
#include "model/scenario_io.h"
#include "test_util.h"

namespace eellm::exec {
namespace {

// max |a − b| / max |b| (entries near 0 would make a per-entry relative error noise).
double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, static_cast<double>(std::fabs(a[i] - b[i])));
    m = std::max(m, static_cast<double>(std::fabs(b[i])));
  }
  return d / std::max(m, 1e-30);
}

struct MatmulOut {
  std::vector<float> y, dx, dw, db;
};

// Forward and backward of one linear layer (N×C → N×OC, bias) on `be`; the gradients accumulate
// onto fixed non-zero starting values.
MatmulOut run_linear(Backend& be, int N, int C, int OC) {
  std::mt19937 rng(3);
  const auto x = testing::randn(static_cast<size_t>(N) * C, rng);
  const auto w = testing::randn(static_cast<size_t>(OC) * C, rng, 0.1f);
  const auto b = testing::randn(static_cast<size_t>(OC), rng);
  const auto dy = testing::randn(static_cast<size_t>(N) * OC, rng);
  MatmulOut o{std::vector<float>(static_cast<size_t>(N) * OC), testing::randn(x.size(), rng),
              testing::randn(w.size(), rng), testing::randn(b.size(), rng)};
  be.matmul_forward(o.y.data(), x.data(), w.data(), b.data(), N, C, OC);
  be.matmul_backward(o.dx.data(), o.dw.data(), o.db.data(), dy.data(), x.data(), w.data(), N, C, OC);
  return o;
}

class CpuGemmLibs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!openblas_info().available) GTEST_SKIP() << "OpenBLAS not loadable: " << openblas_info().error;
  }
};

TEST_F(CpuGemmLibs, OpenBlasMatchesEigenOnLinearLayersOfOddAndTrainingShapes) {
  for (auto [N, C, OC] : {std::tuple{2048, 256, 768}, std::tuple{300, 37, 13}, std::tuple{129, 1024, 256}}) {
    for (int threads : {1, 2, 3}) {
      auto eigen = make_cpu_backend(threads, exec::CpuGemm::kEigen);
      auto blas = make_cpu_backend(threads, exec::CpuGemm::kOpenBLAS);
      EXPECT_EQ(eigen->gemm_name(), "eigen");
      EXPECT_EQ(blas->gemm_name(), "openblas (" + openblas_info().corename + ")");
      const MatmulOut e = run_linear(*eigen, N, C, OC), o = run_linear(*blas, N, C, OC);
      EXPECT_LT(rel_diff(o.y, e.y), 2e-6) << N << "×" << C << "→" << OC << ", " << threads << " threads";
      EXPECT_LT(rel_diff(o.dx, e.dx), 2e-6) << N << "×" << C << "→" << OC;
      EXPECT_LT(rel_diff(o.dw, e.dw), 2e-6) << N << "×" << C << "→" << OC;
      EXPECT_EQ(o.db, e.db);  // column sums: the same code whatever the GEMM
    }
  }
}

TEST_F(CpuGemmLibs, OpenBlasResultsAreBitwiseReproducibleAtAFixedThreadCount) {
  auto blas = make_cpu_backend(2, exec::CpuGemm::kOpenBLAS);
  const MatmulOut a = run_linear(*blas, 2048, 256, 1024), b = run_linear(*blas, 2048, 256, 1024);
  EXPECT_EQ(a.y, b.y);
  EXPECT_EQ(a.dx, b.dx);
  EXPECT_EQ(a.dw, b.dw);
}

TEST_F(CpuGemmLibs, ClassifierThroughOpenBlasMatchesEigen) {
  const int N = 600, C = 64, V = 250, Vp = 256;
  std::mt19937 rng(5);
  const auto x = testing::randn(static_cast<size_t>(N) * C, rng);
  const auto w = testing::randn(static_cast<size_t>(Vp) * C, rng, 0.2f);
  std::vector<int32_t> tgt(N);
  for (int i = 0; i < N; ++i) tgt[static_cast<size_t>(i)] = (i * 37) % V;
  auto run = [&](exec::CpuGemm g) {
    auto be = make_cpu_backend(2, g);
    MatmulOut o{std::vector<float>(N), std::vector<float>(x.size(), 0.5f), std::vector<float>(w.size(), -0.25f), {}};
    be->classifier_fused(o.y.data(), o.dx.data(), o.dw.data(), nullptr, x.data(), w.data(), tgt.data(), N, C, V, Vp,
                         1.0f / N);
    return o;
  };
  const MatmulOut e = run(exec::CpuGemm::kEigen), o = run(exec::CpuGemm::kOpenBLAS);
  EXPECT_LT(rel_diff(o.y, e.y), 2e-6);
  EXPECT_LT(rel_diff(o.dx, e.dx), 2e-6);
  EXPECT_LT(rel_diff(o.dw, e.dw), 2e-6);
}

TEST_F(CpuGemmLibs, ChoiceMeasuresBothLibrariesOnceAndKeepsTheFaster) {
  const auto shapes = gpt_gemm_shapes(256, 64, 192, 256, 256);
  ASSERT_EQ(shapes.size(), 4u);
  EXPECT_EQ(shapes[3].C, 256);  // fcproj: F → C
  EXPECT_EQ(shapes[3].OC, 64);
  const GemmChoice c = choose_cpu_gemm(2, shapes), again = choose_cpu_gemm(2, shapes);
  EXPECT_GT(c.eigen_gflops, 0);
  EXPECT_GT(c.openblas_gflops, 0);
  EXPECT_EQ(c.gemm, c.openblas_gflops > c.eigen_gflops ? exec::CpuGemm::kOpenBLAS : exec::CpuGemm::kEigen);
  EXPECT_EQ(again.eigen_gflops, c.eigen_gflops);  // cached, not measured again
  EXPECT_EQ(again.openblas_gflops, c.openblas_gflops);
  EXPECT_NE(c.summary().find(cpu_gemm_label(c.gemm)), std::string::npos) << c.summary();
}

TEST(CpuGemmChoice, ProfileFieldSelectsTheLibraryAndRejectsUnknownNames) {
  EXPECT_EQ(parse_cpu_gemm("eigen").value(), exec::CpuGemm::kEigen);
  EXPECT_EQ(parse_cpu_gemm("openblas").value(), exec::CpuGemm::kOpenBLAS);
  auto bad = parse_cpu_gemm("mkl", "cluster.device.cpu_gemm");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().to_string().find("cluster.device.cpu_gemm"), std::string::npos);
  EXPECT_NE(bad.status().to_string().find("mkl"), std::string::npos);

  auto sc = load_scenario("tiny-ee");
  ASSERT_TRUE(sc.is_ok()) << sc.status().to_string();
  Scenario s = *sc;
  auto be = make_backend(s, 1);
  ASSERT_TRUE(be.is_ok());
  EXPECT_EQ((*be)->gemm_name(), "eigen");  // the default profile value
  s.cluster.device.cpu_gemm = "mkl";
  auto err = make_backend(s, 1);
  ASSERT_FALSE(err.is_ok());
  EXPECT_NE(err.status().to_string().find("cluster.device.cpu_gemm"), std::string::npos);
}

}  // namespace
}  // namespace eellm::exec
