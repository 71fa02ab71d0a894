// eellm_cuda_bench_decode SCENARIO [TOKENS] [BANDWIDTH_GBps]: batch-1 greedy decoding of the
// scenario's model (random init, full depth, no early exit) on the CUDA backend through the decode
// ops of exec/backend/backend.h (embed_rows, rope_rows, kv_append, attention_cached) and the GEMMs, one
// token at a time with the argmax on the host. Prints tokens/s and the memory-bandwidth bound:
// every weight the token passes is read once, so the bound is weight bytes / HBM bandwidth
// (default 4800 GB/s, H200). A benchmark, not a test: scripts/gpu-check.sh runs it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "exec/backend/device.h"
#include "exec/gpt/gpt.h"
#include "model/scenario_io.h"

using namespace eellm;
using namespace eellm::exec;

namespace {

int fail(const std::string& msg) {
  std::fprintf(stderr, "eellm_cuda_bench_decode: %s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return fail("usage: eellm_cuda_bench_decode SCENARIO [TOKENS] [BANDWIDTH_GBps]");
  const int tokens = argc > 2 ? std::atoi(argv[2]) : 256;
  const double bandwidth = argc > 3 ? std::atof(argv[3]) * 1e9 : 4800e9;
  auto sc = load_scenario(argv[1]);
  if (!sc.is_ok()) return fail(sc.status().to_string());
  auto cfg_or = make_gpt_config(*sc);
  if (!cfg_or.is_ok()) return fail(cfg_or.status().to_string());
  const GptConfig c = *cfg_or;
  auto be_or = make_backend(::eellm::DeviceKind::kCUDA, 0);
  if (!be_or.is_ok()) return fail(be_or.status().to_string());
  std::unique_ptr<exec::Backend> be = std::move(be_or).value();
  const int max_T = c.max_T;
  if (tokens + 8 > max_T) return fail("TOKENS + 8 warm-up tokens must fit max_position_embeddings");

  GptParams p;
  p.allocate(c);
  init_params(p, c, 1);
  const AttentionShape s{1, 1, c.NH, c.G, c.HS};
  std::vector<Tensor> K, V;
  for (int l = 0; l < c.L; ++l)
    K.emplace_back(std::vector<int64_t>{static_cast<int64_t>(max_T) * c.KV()}),
        V.emplace_back(std::vector<int64_t>{static_cast<int64_t>(max_T) * c.KV()});
  Tensor x({c.C}), h({c.C}), mean({1}), rstd({1}), qkv({c.qkv_dim()}), att({c.Q()}), tmp({c.C}), fc({c.fc_dim()}),
      act({c.F}), logits({c.Vp});
  const Tensor& out_w = c.untie_final ? p.lm_head : p.wte;
  std::vector<float> host_logits(static_cast<size_t>(c.Vp));
  const int32_t zero = 0, seq = 0;

  int32_t tok = 0;
  auto step = [&](int32_t pos) {
    be->embed_rows(x.ptr(), &zero, &tok, &pos, 1, p.wte.ptr(), c.rope ? nullptr : p.wpe.ptr(), c.C);
    for (int l = 0; l < c.L; ++l) {
      const LayerParams& lp = p.layers[static_cast<size_t>(l)];
      be->norm_forward(c.norm, h.ptr(), mean.ptr(), rstd.ptr(), x.ptr(), lp.ln1_w.ptr(), opt(lp.ln1_b), 1, c.C, c.eps);
      be->matmul_forward(qkv.ptr(), h.ptr(), lp.qkv_w.ptr(), opt(lp.qkv_b), 1, c.C, c.qkv_dim());
      if (c.rope) be->rope_rows(qkv.ptr(), &pos, 1, s, c.rope_base);
      be->kv_append(K[static_cast<size_t>(l)].ptr(), V[static_cast<size_t>(l)].ptr(), qkv.ptr(), &seq, &pos, 1, max_T,
                    s);
      be->attention_cached(att.ptr(), qkv.ptr(), K[static_cast<size_t>(l)].ptr(), V[static_cast<size_t>(l)].ptr(), &seq,
                           &pos, 1, max_T, s);
      be->matmul_forward(tmp.ptr(), att.ptr(), lp.proj_w.ptr(), opt(lp.proj_b), 1, c.Q(), c.C);
      be->add_inplace(x.ptr(), tmp.ptr(), static_cast<size_t>(c.C));
      be->norm_forward(c.norm, h.ptr(), mean.ptr(), rstd.ptr(), x.ptr(), lp.ln2_w.ptr(), opt(lp.ln2_b), 1, c.C, c.eps);
      be->matmul_forward(fc.ptr(), h.ptr(), lp.fc_w.ptr(), opt(lp.fc_b), 1, c.C, c.fc_dim());
      if (c.swiglu)
        be->swiglu_forward(act.ptr(), fc.ptr(), 1, c.F);
      else
        be->gelu_forward(act.ptr(), fc.ptr(), static_cast<size_t>(c.F));
      be->matmul_forward(tmp.ptr(), act.ptr(), lp.fcproj_w.ptr(), opt(lp.fcproj_b), 1, c.F, c.C);
      be->add_inplace(x.ptr(), tmp.ptr(), static_cast<size_t>(c.C));
    }
    be->norm_forward(c.norm, h.ptr(), mean.ptr(), rstd.ptr(), x.ptr(), p.lnf_w.ptr(), opt(p.lnf_b), 1, c.C, c.eps);
    be->matmul_forward(logits.ptr(), h.ptr(), out_w.ptr(), nullptr, 1, c.C, c.Vp);
    be->download(host_logits.data(), logits.ptr(), host_logits.size());
    tok = static_cast<int32_t>(std::max_element(host_logits.begin(), host_logits.begin() + c.V) - host_logits.begin());
  };
  for (int32_t pos = 0; pos < 8; ++pos) step(pos);  // warm-up: page migration, cuBLAS heuristics
  const auto t0 = std::chrono::steady_clock::now();
  for (int32_t pos = 8; pos < 8 + tokens; ++pos) step(pos);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  double bytes = 0;  // weights one token reads: every layer, the final norm, the output projection
  for (const LayerParams& lp : p.layers)
    for (const Tensor* t : {&lp.ln1_w, &lp.ln1_b, &lp.qkv_w, &lp.qkv_b, &lp.proj_w, &lp.proj_b, &lp.ln2_w, &lp.ln2_b,
                            &lp.fc_w, &lp.fc_b, &lp.fcproj_w, &lp.fcproj_b})
      bytes += 4.0 * static_cast<double>(t->numel());
  bytes += 4.0 * static_cast<double>(p.lnf_w.numel() + p.lnf_b.numel() + out_w.numel());
  const double tps = tokens / secs, bound = bandwidth / bytes;
  std::printf("decode batch 1 (%s, %s): %d tokens in %.3f s = %.1f tokens/s (%.3f ms/token)\n", sc->name.c_str(),
              be->name().c_str(), tokens, secs, tps, 1e3 * secs / tokens);
  std::printf(
      "memory-bandwidth bound: %.3f GB of fp32 weights per token / %.0f GB/s = %.1f tokens/s; "
      "measured is %.2fx the bound's time per token\n",
      bytes / 1e9, bandwidth / 1e9, bound, bound / tps);
  return 0;
}
