// The CPU backend's GEMM libraries (exec/backend/gemm.h): each BLAS library — OpenBLAS, oneDNN,
// BLIS, loaded at run time with the right kernels, called on row slices by the backend's threads —
// gives the products of Eigen within fp32 rounding (forward, both backward GEMMs, the fused
// classifier), bitwise the same results run to run at a fixed thread count (a library that is not
// installed is skipped, saying why); the choice is parsed, validated, measured and cached per machine.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "exec/backend/backend.h"
#include "exec/backend/device.h"
#include "exec/backend/gemm.h"
#include "exec/backend/gemm_choice.h"
#include "model/scenario_io.h"
#include "test_util.h"

namespace eellm::exec {
namespace {

using testing::rel_diff;

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

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

// One test per BLAS library; skipped (naming the reason) where it is not installed.
class CpuGemmLibs : public ::testing::TestWithParam<CpuGemm> {
 protected:
  void SetUp() override {
    const GemmLibInfo& info = cpu_gemm_info(GetParam());
    if (!info.available) GTEST_SKIP() << cpu_gemm_name(GetParam()) << " not loadable: " << info.error;
  }
};

TEST_P(CpuGemmLibs, MatchesEigenOnLinearLayersOfOddAndTrainingShapes) {
  for (auto [N, C, OC] : {std::tuple{2048, 256, 768}, std::tuple{300, 37, 13}, std::tuple{129, 1024, 256}}) {
    for (int threads : {1, 2, 3}) {
      auto eigen = make_cpu_backend(threads, CpuGemm::kEigen);
      auto blas = make_cpu_backend(threads, GetParam());
      EXPECT_EQ(eigen->gemm_name(), "eigen");
      EXPECT_EQ(blas->gemm_name(),
                std::string(cpu_gemm_name(GetParam())) + " (" + cpu_gemm_info(GetParam()).kernel + ")");
      const MatmulOut e = run_linear(*eigen, N, C, OC), o = run_linear(*blas, N, C, OC);
      EXPECT_LT(rel_diff(o.y, e.y), 2e-6) << N << "×" << C << "→" << OC << ", " << threads << " threads";
      EXPECT_LT(rel_diff(o.dx, e.dx), 2e-6) << N << "×" << C << "→" << OC;
      EXPECT_LT(rel_diff(o.dw, e.dw), 2e-6) << N << "×" << C << "→" << OC;
      EXPECT_EQ(o.db, e.db);  // column sums: the same code whatever the GEMM
    }
  }
}

// The backend gives each of its pool's threads one slice of a product and calls the library there, so
// a call must not start threads of its own. Debian's oneDNN did (OpenMP, a team of all the CPUs per
// calling thread): with several ranks per core the spinning teams turned a 1-s plan into 10 s. Here:
// a call from a fresh thread leaves the process's thread count unchanged, and computes right.
TEST_P(CpuGemmLibs, EachCallRunsOnTheCallingThreadAlone) {
  auto threads = [] {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
    return n;
  };
  const int n = 256;
  std::vector<float> a(static_cast<size_t>(n) * n, 1.0f), b(a.size(), 0.5f), c(a.size(), 0.0f);
  size_t before = 0, after = 0;
  std::thread caller([&] {
    before = threads();
    blas_sgemm(GetParam(), false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    after = threads();
  });
  caller.join();
  EXPECT_EQ(after, before) << cpu_gemm_name(GetParam()) << " started threads during a call";
  EXPECT_EQ(c[0], 128.0f);
  EXPECT_EQ(c.back(), 128.0f);
}

TEST_P(CpuGemmLibs, ResultsAreBitwiseReproducibleAtAFixedThreadCount) {
  auto blas = make_cpu_backend(2, GetParam());
  const MatmulOut a = run_linear(*blas, 2048, 256, 1024), b = run_linear(*blas, 2048, 256, 1024);
  EXPECT_EQ(a.y, b.y);
  EXPECT_EQ(a.dx, b.dx);
  EXPECT_EQ(a.dw, b.dw);
}

TEST_P(CpuGemmLibs, ClassifierMatchesEigen) {
  auto run = [&](CpuGemm g) {
    return testing::run_classifier(*make_cpu_backend(2, g), 600, 64, 250, 256, 5, 0.5f, -0.25f);
  };
  const auto e = run(CpuGemm::kEigen), o = run(GetParam());
  EXPECT_LT(rel_diff(o.loss, e.loss), 2e-6);
  EXPECT_LT(rel_diff(o.dx, e.dx), 2e-6);
  EXPECT_LT(rel_diff(o.dw, e.dw), 2e-6);
}

// The attention's per-head products go through the backend's GEMM library too: forward (output
// and log-sum-exp) and backward (dq, dk, dv) agree with Eigen's within fp32 rounding, at tiny-ee's
// head shape over several causal blocks and at an odd grouped-query shape.
TEST_P(CpuGemmLibs, AttentionMatchesEigen) {
  for (const AttentionShape s : {AttentionShape{2, 256, 8, 8, 32}, AttentionShape{3, 77, 6, 2, 24}}) {
    const auto e = testing::run_attention(*make_cpu_backend(2, CpuGemm::kEigen), s),
               o = testing::run_attention(*make_cpu_backend(2, GetParam()), s);
    const std::string shape = std::to_string(s.T) + " positions, head size " + std::to_string(s.HS);
    EXPECT_LT(rel_diff(o.y, e.y), 2e-6) << "output, " << shape;
    EXPECT_LT(rel_diff(o.lse, e.lse), 2e-6) << "log-sum-exp, " << shape;
    EXPECT_LT(rel_diff(o.dqkv, e.dqkv), 2e-6) << "dqkv, " << shape;
  }
}

// accumulate false (a layer's backward passes it for buffers it would otherwise zero first): the
// input gradient overwrites whatever the buffer held — bitwise the result of accumulating into
// zeros — for the matmul with every GEMM library (Eigen too) and for GELU; weight and bias
// gradients still accumulate.
TEST(CpuBackendOverwrite, InputGradientsOverwriteInsteadOfAccumulating) {
  const int N = 300, C = 64, OC = 96;
  std::mt19937 rng(11);
  const auto x = testing::randn(static_cast<size_t>(N) * C, rng), w = testing::randn(static_cast<size_t>(OC) * C, rng);
  const auto dy = testing::randn(static_cast<size_t>(N) * OC, rng), dw0 = testing::randn(w.size(), rng);
  const std::vector<float> garbage(x.size(), std::numeric_limits<float>::quiet_NaN());
  int libraries = 0;
  for (CpuGemm g : all_cpu_gemms()) {
    if (!cpu_gemm_info(g).available) continue;
    ++libraries;
    auto be = make_cpu_backend(2, g);
    std::vector<float> dx_acc(x.size(), 0.0f), dx_set = garbage, dw_acc = dw0, dw_set = dw0;
    be->matmul_backward(dx_acc.data(), dw_acc.data(), nullptr, dy.data(), x.data(), w.data(), N, C, OC);
    be->matmul_backward(dx_set.data(), dw_set.data(), nullptr, dy.data(), x.data(), w.data(), N, C, OC, false);
    EXPECT_EQ(dx_set, dx_acc) << cpu_gemm_name(g);
    EXPECT_EQ(dw_set, dw_acc) << cpu_gemm_name(g) << ": the weight gradient still accumulates";
    EXPECT_NE(dw_set, dw0);
  }
  EXPECT_GE(libraries, 1);  // Eigen is always there
  auto be = make_cpu_backend(2);
  const size_t n = 10000 + 7;  // a partial vector at the end
  const auto gx = testing::randn(n, rng), gy = testing::randn(n, rng);
  std::vector<float> acc(n, 0.0f), set(n, std::numeric_limits<float>::quiet_NaN()), twice(n, 0.0f);
  be->gelu_backward(acc.data(), gy.data(), gx.data(), n);
  be->gelu_backward(set.data(), gy.data(), gx.data(), n, false);
  EXPECT_EQ(set, acc);
  be->gelu_backward(twice.data(), gy.data(), gx.data(), n);
  be->gelu_backward(twice.data(), gy.data(), gx.data(), n);  // accumulating by default
  for (size_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(twice[i], 2 * acc[i]) << i;
}

// The contract the trainer's and the gradient sync's finiteness checks rely on (backend.h): the sum
// of squares stays finite for the largest finite floats and is non-finite for one inf or NaN.
TEST(CpuBackendSumSquares, NonFiniteExactlyWhenAnElementIs) {
  auto be = make_cpu_backend(2);
  std::vector<float> big(100000, std::numeric_limits<float>::max());
  const double sq = be->sum_squares(big.data(), big.size());
  EXPECT_TRUE(std::isfinite(sq));
  EXPECT_NEAR(sq, 1e5 * static_cast<double>(std::numeric_limits<float>::max()) * std::numeric_limits<float>::max(),
              1e-9 * sq);
  for (float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN()}) {
    big[77777] = bad;
    EXPECT_FALSE(std::isfinite(be->sum_squares(big.data(), big.size()))) << bad;
    EXPECT_FALSE(be->all_finite(big.data(), big.size())) << bad;
  }
}

// The kernels are the current ones for this CPU although Debian 12's libraries predate it: this
// host's environment even exports OPENBLAS_CORETYPE=Haswell, which eellm overrides on AVX-512.
TEST_P(CpuGemmLibs, UsesTheCurrentKernelsForThisCpu) {
  const std::string k = cpu_gemm_info(GetParam()).kernel;
  EXPECT_FALSE(k.empty());
  if (!cpu_has_avx512()) GTEST_SKIP() << "no AVX-512 on this CPU: the detected kernels (" << k << ") are kept";
  bool current = false;
  if (GetParam() == CpuGemm::kOpenBLAS) current = k == "SkylakeX" || k == "Cooperlake" || k == "SapphireRapids";
  if (GetParam() == CpuGemm::kOneDNN) current = k.starts_with("avx512_core");
  if (GetParam() == CpuGemm::kBLIS) current = k == "skx" || k.starts_with("zen");
  EXPECT_TRUE(current) << cpu_gemm_name(GetParam()) << " runs the " << k << " kernels";
}

INSTANTIATE_TEST_SUITE_P(Blas, CpuGemmLibs, ::testing::Values(CpuGemm::kOpenBLAS, CpuGemm::kOneDNN, CpuGemm::kBLIS),
                         [](const auto& p) { return std::string(cpu_gemm_name(p.param)); });

// A cache file in a fresh temporary folder.
std::string temp_cache_file(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("eellm_gemm_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return (dir / "sub" / "cpu_gemm.json").string();
}

TEST(CpuGemmChoice, MeasuresEveryLibraryOncePerMachineAndKeepsTheFastest) {
  const auto shapes = gpt_gemm_shapes(256, 64, 192, 256, 256);
  ASSERT_EQ(shapes.size(), 4u);
  EXPECT_EQ(shapes[3].C, 256);  // fcproj: F → C
  EXPECT_EQ(shapes[3].OC, 64);
  const std::string file = temp_cache_file("choice");
  const GemmChoice c = choose_cpu_gemm(2, shapes, file);
  EXPECT_EQ(c.source, "measured");
  EXPECT_EQ(c.threads, 2);
  size_t available = 0;
  for (CpuGemm g : all_cpu_gemms()) {
    available += cpu_gemm_info(g).available ? 1 : 0;
    EXPECT_EQ(c.gflops_of(g) > 0, cpu_gemm_info(g).available) << cpu_gemm_name(g);
    EXPECT_LE(c.gflops_of(g), c.gflops_of(c.gemm)) << cpu_gemm_name(g);  // the fastest is kept
  }
  EXPECT_EQ(c.gflops.size(), available);
  EXPECT_TRUE(c.log_line().starts_with("gemm: " + cpu_gemm_label(c.gemm) + ", 2 threads, measured ")) << c.log_line();
  EXPECT_TRUE(std::filesystem::exists(file));

  // Another process on this machine (here: the same call again) reads the file, not the clock.
  const GemmChoice again = choose_cpu_gemm(2, shapes, file);
  EXPECT_EQ(again.source, "cached in " + file);
  EXPECT_EQ(again.gemm, c.gemm);
  for (CpuGemm g : all_cpu_gemms()) EXPECT_NEAR(again.gflops_of(g), c.gflops_of(g), 1e-9 * c.gflops_of(g));
  EXPECT_NE(again.log_line().find("(cached in " + file + ")"), std::string::npos) << again.log_line();
  EXPECT_EQ(gemm_run_note(cpu_gemm_label(again.gemm)), again.log_line());  // the run's metadata
  EXPECT_EQ(gemm_run_note("cublas"), "gemm: cublas");

  // Other threads → another entry; a garbled file is measured again and rewritten.
  EXPECT_EQ(choose_cpu_gemm(1, shapes, file).source, "measured");
  { std::ofstream(file) << "{not json"; }
  EXPECT_EQ(choose_cpu_gemm(2, shapes, file).source, "measured");
  EXPECT_EQ(choose_cpu_gemm(2, shapes, file).source, "cached in " + file);
  std::filesystem::remove_all(std::filesystem::path(file).parent_path().parent_path());
}

TEST(CpuGemmChoice, ProfileFieldSelectsTheLibraryAutoByDefaultAndRejectsUnknownNames) {
  for (CpuGemm g : all_cpu_gemms()) EXPECT_EQ(parse_cpu_gemm(cpu_gemm_name(g)).value(), g);
  auto bad = parse_cpu_gemm("mkl", "cluster.device.cpu_gemm");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().to_string().find("cluster.device.cpu_gemm"), std::string::npos);
  EXPECT_NE(bad.status().to_string().find("mkl"), std::string::npos);

  auto sc = load_scenario("tiny-ee");
  ASSERT_TRUE(sc.is_ok()) << sc.status().to_string();
  Scenario s = *sc;
  EXPECT_EQ(s.cluster.device.cpu_gemm, "auto");  // the default profile value
  const std::string file = temp_cache_file("profile");
  const std::filesystem::path xdg = std::filesystem::path(file).parent_path().parent_path();
  const char* old = std::getenv("XDG_CACHE_HOME");
  const std::string old_value = old ? old : "";
  ::setenv("XDG_CACHE_HOME", xdg.c_str(), 1);
  EXPECT_EQ(default_cpu_gemm_cache_file(), (xdg / "eellm" / "cpu_gemm.json").string());
  auto be = make_backend(s, 1);
  ASSERT_TRUE(be.is_ok());
  EXPECT_EQ((*be)->gemm_name(), cpu_gemm_label(last_cpu_gemm_choice().gemm));
  EXPECT_TRUE(std::filesystem::exists(xdg / "eellm" / "cpu_gemm.json"));
  old ? (void)::setenv("XDG_CACHE_HOME", old_value.c_str(), 1) : (void)::unsetenv("XDG_CACHE_HOME");
  std::filesystem::remove_all(xdg);
  s.cluster.device.cpu_gemm = "eigen";
  EXPECT_EQ(make_backend(s, 1).value()->gemm_name(), "eigen");  // pinned
  s.cluster.device.cpu_gemm = "mkl";
  auto err = make_backend(s, 1);
  ASSERT_FALSE(err.is_ok());
  EXPECT_NE(err.status().to_string().find("cluster.device.cpu_gemm"), std::string::npos);
}

}  // namespace
}  // namespace eellm::exec
