// bench_train: training tokens/s of tiny-ee (6 layers, hidden 256, 8 heads, seq 256, micro batch 8,
// byte vocabulary, exits after 2 and 4 with norm, tied) on the CPU backend with 2 threads, side by
// side in the same run with the same model in PyTorch on 2 threads
// (tests/exec/torch/bench_train.py via /usr/bin/python3), plus the fraction of the measured GEMM
// peak that training reaches, and the same GEMMs through OpenBLAS (cblas_sgemm, Debian
// libopenblas-dev, openblas_set_num_threads(2): the same 2 threads as Eigen) when it is found at
// build time — the measurement behind choosing Eigen for the CPU backend.
// Run: build/<dir>/tests/bench/bench_train (--benchmark_filter=Gemm for the GEMM rows alone)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#ifdef EELLM_BENCH_OPENBLAS
#include <cblas.h>
#endif

#include "exec/backend/backend.h"
#include "exec/train/trainer.h"
#include "model/scenario_io.h"

namespace {

using namespace eellm;
constexpr int kThreads = 2;
double g_train_tps = 0, g_gemm_peak = 0, g_model_flops_per_token = 0, g_openblas_peak = 0;
double g_openblas_max_rel_diff = 0;

struct GemmInputs {
  std::vector<float> x, w, y;
  GemmInputs(int N, int C, int OC)
      : x(static_cast<size_t>(N) * C), w(static_cast<size_t>(OC) * C), y(static_cast<size_t>(N) * OC) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> d(-1, 1);
    for (float& v : x) v = d(rng);
    for (float& v : w) v = d(rng);
  }
};

Scenario tiny_ee() {
  auto sc = load_scenario("tiny-ee");
  if (!sc.is_ok()) {
    std::fprintf(stderr, "bench_train: %s\n", sc.status().to_string().c_str());
    std::exit(1);
  }
  Scenario s = *sc;
  s.training.global_batch_size = s.training.micro_batch_size;  // one microbatch of 8 per step
  return s;
}

// Training FLOPs per token as usually counted (6·N matmul + attention, forward+backward = 3× forward):
// per layer 12·C² weights and 4·T·C attention (full T×T, as computed), plus one C·Vp projection
// per head (exits and final).
double flops_per_token(const exec::GptConfig& c, int T) {
  // Multiply-adds per token: qkv, proj, fc (F or 2F wide) and fcproj.
  const double mm = c.L * (static_cast<double>(c.C) * c.qkv_dim() + static_cast<double>(c.C) * c.Q() +
                           static_cast<double>(c.C) * c.fc_dim() + static_cast<double>(c.F) * c.C);
  const double heads = static_cast<double>(c.num_exits() + 1) * c.C * c.Vp;
  const double attn = c.L * 2.0 * T * c.Q();  // QKᵀ and PV, multiply-adds
  return 3.0 * 2.0 * (mm + heads + attn);
}

void BM_TrainTinyEe(benchmark::State& state) {
  const Scenario s = tiny_ee();
  exec::TrainOptions o;
  o.num_threads = kThreads;
  o.steps = 1 << 30;
  auto tr = exec::Trainer::create(s, o);
  if (!tr.is_ok()) {
    state.SkipWithError(tr.status().to_string().c_str());
    return;
  }
  const double tokens = static_cast<double>(s.training.micro_batch_size) * s.model.seq_length;
  g_model_flops_per_token = flops_per_token((*tr)->config(), s.model.seq_length);
  for (int i = 0; i < 2; ++i) (void)(*tr)->step();  // warm-up
  double seconds = 0;
  for (auto _ : state) {
    auto r = (*tr)->step();
    if (!r.is_ok()) {
      state.SkipWithError(r.status().to_string().c_str());
      return;
    }
    seconds += r->seconds;
  }
  g_train_tps = tokens * static_cast<double>(state.iterations()) / seconds;
  state.counters["tokens_per_s"] = g_train_tps;
  state.counters["GFLOP/s"] = g_train_tps * g_model_flops_per_token / 1e9;
}
BENCHMARK(BM_TrainTinyEe)->Unit(benchmark::kMillisecond)->Iterations(8)->UseRealTime();

// GEMM peak on the training shapes: (B·T = 2048) × 256 → 768 / 1024 and 1024 → 256.
void BM_Gemm(benchmark::State& state) {
  const int N = static_cast<int>(state.range(0)), C = static_cast<int>(state.range(1)),
            OC = static_cast<int>(state.range(2));
  auto be = exec::make_cpu_backend(kThreads);
  GemmInputs in(N, C, OC);
  for (auto _ : state) {
    be->matmul_forward(in.y.data(), in.x.data(), in.w.data(), nullptr, N, C, OC);
    benchmark::DoNotOptimize(in.y.data());
  }
  const double flops = 2.0 * N * C * OC * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Gemm)->Args({2048, 256, 768})->Args({2048, 256, 1024})->Args({2048, 1024, 256})->UseRealTime();

#ifdef EELLM_BENCH_OPENBLAS
// The same product y[N×OC] = x[N×C] · w[OC×C]ᵀ through OpenBLAS with as many threads as Eigen; the
// result is checked against the CPU backend's once (max relative difference printed at the end).
void BM_GemmOpenBLAS(benchmark::State& state) {
  const int N = static_cast<int>(state.range(0)), C = static_cast<int>(state.range(1)),
            OC = static_cast<int>(state.range(2));
  openblas_set_num_threads(kThreads);
  GemmInputs in(N, C, OC);
  auto gemm = [&](float* y) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, in.x.data(), C, in.w.data(), C, 0.0f, y, OC);
  };
  std::vector<float> ref(in.y.size());
  exec::make_cpu_backend(kThreads)->matmul_forward(ref.data(), in.x.data(), in.w.data(), nullptr, N, C, OC);
  gemm(in.y.data());
  double max_diff = 0, max_ref = 0;  // relative to the largest entry (entries near 0 are noise)
  for (size_t i = 0; i < ref.size(); ++i) {
    max_diff = std::max(max_diff, static_cast<double>(std::abs(in.y[i] - ref[i])));
    max_ref = std::max(max_ref, static_cast<double>(std::abs(ref[i])));
  }
  g_openblas_max_rel_diff = std::max(g_openblas_max_rel_diff, max_diff / std::max(max_ref, 1e-30));
  for (auto _ : state) {
    gemm(in.y.data());
    benchmark::DoNotOptimize(in.y.data());
  }
  const double flops = 2.0 * N * C * OC * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(std::string("OpenBLAS core ") + openblas_get_corename());
}
BENCHMARK(BM_GemmOpenBLAS)->Args({2048, 256, 768})->Args({2048, 256, 1024})->Args({2048, 1024, 256})->UseRealTime();
#endif

class PeakReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      auto it = r.counters.find("GFLOP/s");
      if (it == r.counters.end()) continue;
      if (r.benchmark_name().starts_with("BM_GemmOpenBLAS"))
        g_openblas_peak = std::max(g_openblas_peak, static_cast<double>(it->second.value));
      else if (r.benchmark_name().starts_with("BM_Gemm"))
        g_gemm_peak = std::max(g_gemm_peak, static_cast<double>(it->second.value));
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  PeakReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  if (g_gemm_peak > 0 && g_openblas_peak > 0) {
#ifdef EELLM_BENCH_OPENBLAS
    std::printf(
        "\nGEMM at the training shapes, %d threads each: Eigen (CPU backend) %.1f GFLOP/s, OpenBLAS %.1f "
        "GFLOP/s (core %s; OPENBLAS_CORETYPE overrides) → Eigen is %.2f× OpenBLAS; results agree to %.1e rel\n",
        kThreads, g_gemm_peak, g_openblas_peak, openblas_get_corename(), g_gemm_peak / g_openblas_peak,
        g_openblas_max_rel_diff);
#endif
  }
  if (g_train_tps <= 0) return 0;

  const Scenario s = tiny_ee();
  const std::string cmd = "/usr/bin/python3 " EELLM_SOURCE_DIR "/tests/exec/torch/bench_train.py --layers " +
                          std::to_string(s.model.num_layers) + " --hidden " + std::to_string(s.model.hidden_size) +
                          " --heads " + std::to_string(s.model.num_attention_heads) + " --seq " +
                          std::to_string(s.model.seq_length) + " --vocab " + std::to_string(s.model.vocab_size) +
                          " --micro " + std::to_string(s.training.micro_batch_size) + " --exits 2,4 --threads " +
                          std::to_string(kThreads) + " --steps 5 --warmup 2 2>/dev/null";
  double torch_tps = 0;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[512] = {0};
    std::string out;
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (!j.is_discarded() && j.contains("tokens_per_s")) torch_tps = j["tokens_per_s"].get<double>();
  }
  const double achieved = g_train_tps * g_model_flops_per_token / 1e9;
  std::printf("\ntiny-ee training, micro batch %d × seq %d, %d threads\n", s.training.micro_batch_size,
              s.model.seq_length, kThreads);
  std::printf("  eellm CPU backend : %10.0f tokens/s  (%.1f GFLOP/s model FLOPs, %.2f MFLOP/token)\n", g_train_tps,
              achieved, g_model_flops_per_token / 1e6);
  if (torch_tps > 0)
    std::printf("  PyTorch (fp32)    : %10.0f tokens/s  → eellm is %.2f× PyTorch (target ≥ 3×)\n", torch_tps,
                g_train_tps / torch_tps);
  else
    std::printf("  PyTorch           : not measured (/usr/bin/python3 with torch unavailable)\n");
  std::printf("  GEMM peak measured: %.1f GFLOP/s → training reaches %.0f%% of it\n", g_gemm_peak,
              100.0 * achieved / std::max(g_gemm_peak, 1e-9));
  return 0;
}
