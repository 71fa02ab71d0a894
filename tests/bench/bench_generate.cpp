// bench_generate: early-exit decoding on tiny-ee (CPU backend, 2 threads, one sequence at a time as
// EE-LLM decodes): a threshold sweep of KV recomputation — decode tokens/s against the full model,
// agreement with the full model's greedy tokens, layers per token, and the perplexity of the
// generated continuation under the full model — and self-speculative decoding (draft exit × draft
// length), whose tokens must agree 100 %.
// Run: build/<dir>/tests/bench/bench_generate [--checkpoint DIR] [--train-steps N] [--prompts N]
//      [--new-tokens N] [--threads N (default 2)]. Without --checkpoint it trains tiny-ee for
// --train-steps (default 150, global batch 4) into build/<dir>/tests/bench/bench_generate_ckpt_STEPS,
// reusing it later. Under load use --threads 1: OpenMP threads spinning on a shared core distort
// tokens/s far more than one thread does.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "exec/data.h"
#include "exec/generate.h"
#include "exec/trainer.h"
#include "model/scenario_io.h"

namespace {

using namespace eellm;
int kThreads = 2;  // --threads

struct Row {
  std::string name;
  double tps = 0, agreement = 0, layers = 0, ppl = 0, accept = -1;
  std::vector<double> rates;
};

struct Bench {
  exec::GenerationModel model;
  std::unique_ptr<exec::Backend> be;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> reference;  // full-model greedy tokens
  double full_tps = 0;
  std::vector<Row> rows;
};
Bench g;

void die(const std::string& what) {
  std::fprintf(stderr, "bench_generate: %s\n", what.c_str());
  std::exit(1);
}

std::string train_checkpoint(int steps) {
  const std::string dir = std::string(EELLM_BINARY_DIR) + "/tests/bench/bench_generate_ckpt_" + std::to_string(steps);
  if (std::filesystem::exists(dir + "/latest")) return dir;
  auto sc = load_scenario("tiny-ee");
  if (!sc.is_ok()) die(sc.status().to_string());
  // A short run (~2 minutes on a quiet core): one micro batch of 4 × 256 tokens per step, the cosine
  // schedule over `steps`. Equivalent to `eellm train` on tiny-ee with micro_batch_size: 4,
  // global_batch_size: 4 and train_iters: steps.
  sc->training.micro_batch_size = sc->training.global_batch_size = 4;
  sc->training.train_iters = steps;
  exec::TrainOptions o;
  o.steps = steps;
  o.save_dir = dir;
  o.num_threads = kThreads;
  std::fprintf(stderr, "bench_generate: training tiny-ee for %d steps into %s\n", steps, dir.c_str());
  auto tr = exec::Trainer::create(*sc, o);
  if (!tr.is_ok()) die(tr.status().to_string());
  Status st = (*tr)->train();
  if (!st.is_ok()) die(st.to_string());
  return dir;
}

// Runs every prompt alone (batch 1); returns decode tokens/s and fills tokens and stats.
double run(const exec::GenerateOptions& o, std::vector<std::vector<int32_t>>& tokens, exec::GenerateStats& total) {
  tokens.clear();
  total = {};
  total.head_counts.assign(static_cast<size_t>(g.model.config.num_exits() + 1), 0);
  double layer_rows = 0;
  for (const auto& p : g.prompts) {
    auto r = exec::generate(g.model.config, g.model.params, *g.be, {p}, o);
    if (!r.is_ok()) die(r.status().to_string());
    tokens.push_back(r->sequences[0].tokens);
    total.tokens += r->stats.tokens;
    total.decode_s += r->stats.decode_s;
    total.drafted += r->stats.drafted, total.accepted += r->stats.accepted;
    layer_rows += r->stats.layers_per_token * static_cast<double>(r->stats.tokens);
    for (size_t h = 0; h < total.head_counts.size(); ++h) total.head_counts[h] += r->stats.head_counts[h];
  }
  total.layers_per_token = layer_rows / static_cast<double>(std::max<long>(1, total.tokens));
  return total.tokens_per_s();
}

double agreement(const std::vector<std::vector<int32_t>>& t) {
  long same = 0, all = 0;
  for (size_t i = 0; i < t.size(); ++i)
    for (size_t j = 0; j < g.reference[i].size(); ++j, ++all) same += j < t[i].size() && t[i][j] == g.reference[i][j];
  return all ? static_cast<double>(same) / static_cast<double>(all) : 0.0;
}

// Perplexity of the generated continuations under the full model (final head, teacher-forced).
double perplexity(const std::vector<std::vector<int32_t>>& t) {
  const exec::GptConfig& c = g.model.config;
  double nll = 0;
  long n = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    std::vector<int32_t> seq = g.prompts[i];
    seq.insert(seq.end(), t[i].begin(), t[i].end());
    const auto logits = exec::incremental_logits(c, g.model.params, *g.be, seq, 64);
    for (size_t p = g.prompts[i].size(); p < seq.size(); ++p) {
      const float* row = logits.back().ptr() + (p - 1) * static_cast<size_t>(c.Vp);
      double mx = row[0], sum = 0;
      for (int v = 0; v < c.V; ++v) mx = std::max(mx, static_cast<double>(row[v]));
      for (int v = 0; v < c.V; ++v) sum += std::exp(row[v] - mx);
      nll += mx + std::log(sum) - row[seq[p]];
      ++n;
    }
  }
  return std::exp(nll / static_cast<double>(std::max<long>(1, n)));
}

void measure(benchmark::State& state, const std::string& name, exec::GenerateOptions o) {
  std::vector<std::vector<int32_t>> tokens;
  exec::GenerateStats s;
  double tps = 0;
  for (auto _ : state) tps = run(o, tokens, s);
  Row r{name, tps, agreement(tokens), s.layers_per_token, perplexity(tokens), -1, s.exit_rates()};
  if (s.drafted > 0) r.accept = static_cast<double>(s.accepted) / static_cast<double>(s.drafted);
  state.counters["tokens_per_s"] = tps;
  state.counters["speedup"] = g.full_tps > 0 ? tps / g.full_tps : 1.0;
  state.counters["agreement"] = r.agreement;
  g.rows.push_back(r);
}

}  // namespace

int main(int argc, char** argv) {
  std::string ckpt;
  int steps = 150, nprompts = 8, new_tokens = 64;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(std::string(argv[i]) + " needs a value");
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--checkpoint")) ckpt = next();
    else if (!std::strcmp(argv[i], "--train-steps")) steps = std::stoi(next());
    else if (!std::strcmp(argv[i], "--prompts")) nprompts = std::stoi(next());
    else if (!std::strcmp(argv[i], "--new-tokens")) new_tokens = std::stoi(next());
    else if (!std::strcmp(argv[i], "--threads")) kThreads = std::stoi(next());
    else rest.push_back(argv[i]);
  }
  if (ckpt.empty()) ckpt = train_checkpoint(steps);
  auto m = exec::load_generation_model(ckpt);
  if (!m.is_ok()) die(m.status().to_string());
  g.model = std::move(*m);
  g.be = exec::make_cpu_backend(kThreads);
  // Prompts: 48-byte windows of the fortunes corpus's last part (the validation split).
  auto text = exec::read_corpus(exec::default_corpus_files());
  if (!text.is_ok()) die(text.status().to_string());
  const std::vector<int32_t> corpus = exec::encode_bytes(*text);
  for (int i = 0; i < nprompts; ++i) {
    const size_t at = corpus.size() - 1 - static_cast<size_t>(i + 1) * 4099;
    g.prompts.emplace_back(corpus.begin() + static_cast<long>(at), corpus.begin() + static_cast<long>(at + 48));
  }
  exec::GenerateOptions base;
  base.max_new_tokens = new_tokens;
  exec::GenerateStats s;
  g.full_tps = run(base, g.reference, s);  // warm-up and the reference tokens

  benchmark::RegisterBenchmark("full", [base](benchmark::State& st) { measure(st, "full", base); })->Iterations(1);
  for (double thr : {0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3}) {
    exec::GenerateOptions o = base;
    o.method = exec::DecodeMethod::kRecompute;
    o.threshold = thr;
    char buf[64];
    std::snprintf(buf, sizeof buf, "recompute/max_prob>=%.1f", thr);
    const std::string name = buf;
    benchmark::RegisterBenchmark(name.c_str(), [o, name](benchmark::State& st) { measure(st, name, o); })
        ->Iterations(1);
  }
  for (int e = 0; e < g.model.config.num_exits(); ++e)
    for (int k : {2, 4, 6, 8}) {
      exec::GenerateOptions o = base;
      o.method = exec::DecodeMethod::kSpeculative;
      o.draft_exit = e;
      o.draft_tokens = k;
      char buf[64];
      std::snprintf(buf, sizeof buf, "speculative/exit@%d/k=%d", g.model.config.exit_layer[static_cast<size_t>(e)], k);
      const std::string name = buf;
      benchmark::RegisterBenchmark(name.c_str(), [o, name](benchmark::State& st) { measure(st, name, o); })
          ->Iterations(1);
    }
  int bargc = static_cast<int>(rest.size());
  benchmark::Initialize(&bargc, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();

  double full = 0;
  for (const Row& r : g.rows)
    if (r.name == "full") full = r.tps;
  std::printf("\ntiny-ee (%s), %zu prompts × %d new tokens, batch 1, %d threads\n", ckpt.c_str(), g.prompts.size(),
              new_tokens, kThreads);
  std::printf("%-28s %10s %8s %10s %10s %8s %8s  %s\n", "method", "tokens/s", "speedup", "agreement", "layers/tok",
              "ppl", "accept", "exit rates");
  for (const Row& r : g.rows) {
    char accept[16] = "-";
    if (r.accept >= 0) std::snprintf(accept, sizeof accept, "%.3f", r.accept);
    std::printf("%-28s %10.1f %7.2fx %9.1f%% %10.2f %8.3f %8s ", r.name.c_str(), r.tps, full > 0 ? r.tps / full : 0,
                100 * r.agreement, r.layers, r.ppl, accept);
    for (double x : r.rates) std::printf(" %.3f", x);
    std::printf("\n");
  }
  return 0;
}
