// Early-exit generation: incremental decoding through the KV cache against the training forward,
// KV recomputation against the full model's K/V, every method against the full model's tokens,
// batches whose sequences exit at different layers, confidence rules, sampling, stop strings and
// the errors users can cause. Random-init small models (three architecture variants).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "exec/generate/generate.h"
#include "exec/gpt/gpt_model.h"
#include "model/yaml_reader.h"
#include "tests/exec/test_util.h"

namespace eellm::exec {
namespace {

using testing::small_scenario;
using testing::Variant;

struct Model {
  GptConfig cfg;
  std::unique_ptr<Backend> be;
  std::unique_ptr<GptModel> model;
  const GptParams& params() const { return model->params(); }
};

Model make_model(Variant v, int seq_length = 32, uint64_t seed = 7) {
  Scenario s = small_scenario(v);
  s.model.seq_length = seq_length;
  s.model.max_position_embeddings = seq_length;
  Model m;
  auto cfg = make_gpt_config(s);
  EXPECT_TRUE(cfg.is_ok()) << cfg.status().message();
  m.cfg = *cfg;
  m.be = make_cpu_backend(2);
  m.model = std::make_unique<GptModel>(m.cfg, *m.be);
  init_params(m.model->params(), m.cfg, seed);
  return m;
}

std::vector<std::vector<int32_t>> random_prompts(int n, int max_len, int V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> p(1 + rng() % static_cast<uint64_t>(max_len));
    for (int32_t& t : p) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(V));
    out.push_back(p);
  }
  return out;
}

std::vector<std::vector<int32_t>> tokens_of(const GenerateResult& r) {
  std::vector<std::vector<int32_t>> out;
  for (const auto& s : r.sequences) out.push_back(s.tokens);
  return out;
}

GenerateResult run(const Model& m, const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o) {
  auto r = generate(m.cfg, m.params(), *m.be, prompts, o);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? *r : GenerateResult{};
}

// The median max-prob score of exit 0 over a few positions: a threshold at which exits fire for
// some tokens and not for others on a random-init model.
double median_exit_score(const Model& m, Confidence rule) {
  std::vector<int32_t> toks = random_prompts(1, 1, m.cfg.V, 99)[0];
  toks.resize(24);
  std::mt19937_64 rng(5);
  for (int32_t& t : toks) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(m.cfg.V));
  const auto logits = incremental_logits(m.cfg, m.params(), *m.be, toks, 4);
  std::vector<double> scores;
  for (int t = 0; t < 24; ++t)
    scores.push_back(confidence_score(rule, logits[0].ptr() + static_cast<size_t>(t) * m.cfg.Vp, m.cfg.V));
  std::sort(scores.begin(), scores.end());
  return scores[scores.size() / 2];
}

const Variant kVariants[] = {Variant::kGpt2, Variant::kLlama, Variant::kGpt2Mlp};

TEST(Generate, IncrementalLogitsEqualTrainingForward) {
  for (Variant v : kVariants) {
    Model m = make_model(v, 16);
    std::vector<int32_t> tokens = random_prompts(1, 1, m.cfg.V, 3)[0];
    tokens.resize(16);
    std::mt19937_64 rng(11);
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(m.cfg.V));
    HeadWeights w;
    w.exits.assign(static_cast<size_t>(m.cfg.num_exits()), 1.0f);
    std::vector<Tensor> ref;
    m.model->run_microbatch(tokens.data(), tokens.data(), 1, 16, w, false, &ref);
    ASSERT_EQ(ref.size(), static_cast<size_t>(m.cfg.num_exits() + 1));
    for (int chunk : {1, 5, 16}) {
      const auto got = incremental_logits(m.cfg, m.params(), *m.be, tokens, chunk);
      for (size_t h = 0; h < ref.size(); ++h) {
        double max_diff = 0, max_abs = 0;
        for (size_t i = 0; i < ref[h].numel(); ++i) {
          max_diff = std::max(max_diff, static_cast<double>(std::fabs(ref[h].data[i] - got[h].data[i])));
          max_abs = std::max(max_abs, static_cast<double>(std::fabs(ref[h].data[i])));
        }
        EXPECT_GT(max_abs, 1e-3) << "logits are not all zero";
        EXPECT_LT(max_diff, 2e-5 * std::max(1.0, max_abs))
            << "variant " << static_cast<int>(v) << " chunk " << chunk << " head " << h;
      }
    }
  }
}

TEST(KvCache, LengthsTruncateAndMonotonicity) {
  KvCache c(3, 1, 2, 8, 4);
  EXPECT_EQ(c.num_slots(), 4);
  for (int p = 0; p < 5; ++p) c.mark(0, 1, p);
  for (int p = 0; p < 3; ++p) c.mark(1, 1, p);
  EXPECT_EQ(c.length(0, 1), 5);
  EXPECT_EQ(c.length(1, 1), 3);
  EXPECT_EQ(c.length(0, 0), 0);
  EXPECT_TRUE(c.monotone(1));
  c.mark(2, 1, 0), c.mark(2, 1, 1), c.mark(2, 1, 2), c.mark(2, 1, 3);  // deeper than layer 1
  EXPECT_FALSE(c.monotone(1));
  c.truncate(1, 2);
  EXPECT_EQ(c.length(0, 1), 2);
  EXPECT_EQ(c.length(2, 1), 2);
  EXPECT_TRUE(c.monotone(1));
  *c.k(3, 1, 7) = 1.5f;  // the exit-block slot is addressable at the last position
  EXPECT_EQ(*c.k(3, 1, 7), 1.5f);
}

TEST(Generate, ThresholdOffGivesTheFullModelForEveryMethod) {
  for (Variant v : kVariants) {
    Model m = make_model(v);
    const auto prompts = random_prompts(6, 8, m.cfg.V, 21);
    GenerateOptions full;
    full.max_new_tokens = 16;
    const auto ref = tokens_of(run(m, prompts, full));
    for (InferenceMethod method : {InferenceMethod::kRecompute, InferenceMethod::kSpeculative}) {
      GenerateOptions o = full;
      o.method = method;
      o.threshold = 1.0;
      const auto r = run(m, prompts, o);
      EXPECT_EQ(tokens_of(r), ref) << to_string(method) << " variant " << static_cast<int>(v);
      if (method == InferenceMethod::kRecompute) {
        EXPECT_EQ(r.stats.head_counts.back(), r.stats.tokens);
      }
    }
  }
}

TEST(Generate, SelfSpeculativeGreedyEqualsFullGreedyOnManyPrompts) {
  for (Variant v : kVariants) {
    Model m = make_model(v);
    const auto prompts = random_prompts(24, 12, m.cfg.V, 33);
    GenerateOptions full;
    full.max_new_tokens = 18;
    const auto ref = tokens_of(run(m, prompts, full));
    for (int e = 0; e < m.cfg.num_exits(); ++e) {
      for (int k : {1, 3, 6}) {
        GenerateOptions o = full;
        o.method = InferenceMethod::kSpeculative;
        o.draft_exit = e;
        o.draft_tokens = k;
        const auto r = run(m, prompts, o);
        EXPECT_EQ(tokens_of(r), ref) << "variant " << static_cast<int>(v) << " exit " << e << " k " << k;
        EXPECT_GT(r.stats.drafted, 0);
        EXPECT_LE(r.stats.accepted, r.stats.drafted);
      }
    }
    // Confidence-limited drafting (rounds end at the first unconfident draft) is lossless too, and
    // computes fewer layer rows than always drafting k (the random test model is never confident).
    GenerateOptions fixed = full, adaptive = full;
    fixed.method = adaptive.method = InferenceMethod::kSpeculative;
    fixed.draft_tokens = adaptive.draft_tokens = 6;
    adaptive.draft_threshold = 0.3;
    const auto ra = run(m, prompts, adaptive), rf = run(m, prompts, fixed);
    EXPECT_EQ(tokens_of(ra), ref) << "variant " << static_cast<int>(v) << " draft_threshold 0.3";
    EXPECT_LT(ra.stats.layers_per_token, rf.stats.layers_per_token) << "variant " << static_cast<int>(v);
    // One prompt at a time gives the same tokens as the batch (sequences accept different counts).
    GenerateOptions o = full;
    o.method = InferenceMethod::kSpeculative;
    o.draft_tokens = 4;
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(tokens_of(run(m, {prompts[i]}, o))[0], ref[i]);
  }
}

// Self-speculative SAMPLING keeps the full model's distribution: over many seeded draws of a
// fixed prompt, the first two generated tokens follow p_full(t1 | prompt) and p_full(t2 | prompt,
// t1) (total variation within sampling noise), although the draft exit's q differs a lot from p
// (untied exit projection + exit MLP), so plain acceptance of drafts would fail the check.
TEST(Generate, SelfSpeculativeSamplingMatchesTheFullModelDistribution) {
  Model m = make_model(Variant::kGpt2Mlp, 16);
  const std::vector<int32_t> prompt = {5, 17, 42, 8};
  const SamplingOptions sampling{0.5f, 6, 1.0f};
  auto dist_after = [&](const std::vector<int32_t>& toks, int head) {
    const auto logits = incremental_logits(m.cfg, m.params(), *m.be, toks, 8);
    const float* row = logits[static_cast<size_t>(head)].ptr() + (toks.size() - 1) * static_cast<size_t>(m.cfg.Vp);
    return sampling_distribution(row, m.cfg.V, sampling);
  };
  auto tv = [](const std::vector<double>& a, const std::vector<double>& b) {
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i) d += std::abs(a[i] - b[i]);
    return d / 2;
  };
  const std::vector<double> p1 = dist_after(prompt, m.cfg.num_exits()), q1 = dist_after(prompt, 0);
  ASSERT_GT(tv(p1, q1), 0.25) << "draft and full distributions too close for a meaningful test";

  const int N = 3000;
  GenerateOptions o;
  o.method = InferenceMethod::kSpeculative;
  o.draft_exit = 0;
  o.draft_tokens = 3;
  o.max_new_tokens = 2;
  o.sampling = sampling;
  o.seed = 1234;
  const auto r = run(m, std::vector<std::vector<int32_t>>(N, prompt), o);  // sequence b seeds with seed + b
  ASSERT_EQ(static_cast<int>(r.sequences.size()), N);
  EXPECT_GT(r.stats.accepted, 0);
  EXPECT_LT(r.stats.accepted, r.stats.drafted);  // some drafts rejected: the residual path ran
  std::vector<double> f1(static_cast<size_t>(m.cfg.V), 0.0);
  std::map<int32_t, std::vector<double>> f2;
  for (const auto& s : r.sequences) {
    ASSERT_EQ(s.tokens.size(), 2u);
    f1[static_cast<size_t>(s.tokens[0])] += 1.0 / N;
    auto& row = f2[s.tokens[0]];
    row.resize(static_cast<size_t>(m.cfg.V), 0.0);
    row[static_cast<size_t>(s.tokens[1])] += 1.0;
  }
  // With ≤ 6 supported tokens and 3000 draws the expected TV is about 0.02.
  EXPECT_LT(tv(f1, p1), 0.05) << "first token";
  EXPECT_GT(tv(f1, q1), 0.15) << "first token follows the draft exit, not the full model";
  // Second token, conditioned on the most frequent first token.
  const int32_t t1 = static_cast<int32_t>(std::max_element(f1.begin(), f1.end()) - f1.begin());
  std::vector<double> c2 = f2[t1];
  double n2 = 0;
  for (double x : c2) n2 += x;
  ASSERT_GT(n2, 500);
  for (double& x : c2) x /= n2;
  std::vector<int32_t> ctx = prompt;
  ctx.push_back(t1);
  EXPECT_LT(tv(c2, dist_after(ctx, m.cfg.num_exits())), 0.08) << "second token after " << t1;

  // Greedy speculative stays identical to full greedy (temperature 0 takes the argmax path).
  GenerateOptions g = o, full;
  g.sampling = {};
  full.max_new_tokens = 8;
  g.max_new_tokens = 8;
  EXPECT_EQ(tokens_of(run(m, {prompt}, g)), tokens_of(run(m, {prompt}, full)));
}

// Every token generated with early exit is the argmax of the head that produced it, recomputed by
// a teacher-forced full pass over the final sequence: this is what early exit means, and it holds
// only if the recomputed K/V that later tokens attended to were right.
TEST(Generate, RecomputeTokensAreTheirHeadsArgmaxAndBatchesMixExits) {
  for (Variant v : kVariants) {
    Model m = make_model(v);
    const auto prompts = random_prompts(5, 6, m.cfg.V, 44);
    GenerateOptions o;
    o.method = InferenceMethod::kRecompute;
    o.threshold = median_exit_score(m, Confidence::kMaxProb);
    o.max_new_tokens = 20;
    o.max_pending = 3;
    auto g = Generator::create(m.cfg, m.params(), *m.be, prompts, o);
    ASSERT_TRUE(g.is_ok()) << g.status().message();
    while (!(*g)->done()) {
      (*g)->step();
      for (int b = 0; b < 5; ++b) ASSERT_TRUE((*g)->decoder().cache().monotone(b));
    }
    const GenerateResult r = (*g)->result();
    std::vector<long> per_head(static_cast<size_t>(m.cfg.num_exits() + 1), 0);
    for (int b = 0; b < 5; ++b) {
      const auto& seq = (*g)->sequence(b);
      const auto& out = r.sequences[static_cast<size_t>(b)];
      const auto logits = incremental_logits(m.cfg, m.params(), *m.be, seq, 7);
      const size_t P = prompts[static_cast<size_t>(b)].size();
      std::set<int> heads_here;
      for (size_t i = 0; i < out.tokens.size(); ++i) {
        const int h = out.head[i];
        heads_here.insert(h);
        ++per_head[static_cast<size_t>(h)];
        const float* row = logits[static_cast<size_t>(h)].ptr() + (P - 1 + i) * static_cast<size_t>(m.cfg.Vp);
        EXPECT_EQ(out.tokens[i], argmax_token(row, m.cfg.V))
            << "variant " << static_cast<int>(v) << " seq " << b << " token " << i << " head " << h;
        if (h < m.cfg.num_exits()) {
          EXPECT_GE(confidence_score(Confidence::kMaxProb, row, m.cfg.V), o.threshold);
        }
      }
      EXPECT_GT(heads_here.size(), 1u) << "sequence " << b << " should leave at more than one head";
    }
    long early = 0;
    for (int e = 0; e < m.cfg.num_exits(); ++e) early += per_head[static_cast<size_t>(e)];
    EXPECT_GT(early, 0) << "some tokens should exit early";
    EXPECT_GT(per_head.back(), 0) << "some tokens should reach the final head";
    EXPECT_LT(r.stats.avg_exit_layers, m.cfg.L);
  }
}

TEST(Generate, RecomputedKvEqualsFullModelKv) {
  for (Variant v : kVariants) {
    Model m = make_model(v);
    const auto prompts = random_prompts(3, 5, m.cfg.V, 55);
    GenerateOptions o;
    o.method = InferenceMethod::kRecompute;
    o.threshold = median_exit_score(m, Confidence::kMaxProb);
    o.max_new_tokens = 16;
    auto g = Generator::create(m.cfg, m.params(), *m.be, prompts, o);
    ASSERT_TRUE(g.is_ok());
    while (!(*g)->done()) (*g)->step();
    (*g)->flush_pending();
    const KvCache& got = (*g)->decoder().cache();
    for (int b = 0; b < 3; ++b) {
      const auto& seq = (*g)->sequence(b);
      const int n = got.length(0, b);
      ASSERT_EQ(n, static_cast<int>(seq.size()) - 1);
      // Reference: the whole sequence through every layer in one pass of a fresh decoder.
      Decoder ref(m.cfg, m.params(), *m.be, 1);
      std::vector<DecodeRow> rows;
      for (int p = 0; p < n; ++p) ref.embed(0, p, seq[static_cast<size_t>(p)]), rows.push_back({0, p});
      for (int l = 0; l < m.cfg.L; ++l) ref.layer(l, rows);
      double max_diff = 0;
      for (int l = 0; l < m.cfg.L; ++l) {
        ASSERT_EQ(got.length(l, b), n) << "layer " << l;
        for (int p = 0; p < n; ++p)
          for (int i = 0; i < m.cfg.KV(); ++i) {
            max_diff =
                std::max(max_diff, static_cast<double>(std::fabs(got.k(l, b, p)[i] - ref.cache().k(l, 0, p)[i])));
            max_diff =
                std::max(max_diff, static_cast<double>(std::fabs(got.v(l, b, p)[i] - ref.cache().v(l, 0, p)[i])));
          }
      }
      EXPECT_LT(max_diff, 1e-5) << "variant " << static_cast<int>(v) << " seq " << b;
    }
  }
}

TEST(Generate, PendingCapZeroForcesFullPasses) {
  Model m = make_model(Variant::kGpt2);
  GenerateOptions o;
  o.method = InferenceMethod::kRecompute;
  o.threshold = 0.0;  // every exit would fire
  o.max_pending = 0;
  o.max_new_tokens = 8;
  const auto r = run(m, random_prompts(2, 4, m.cfg.V, 1), o);
  EXPECT_EQ(r.stats.head_counts.back(), r.stats.tokens);
  o.max_pending = 100;
  const auto r2 = run(m, random_prompts(2, 4, m.cfg.V, 1), o);
  EXPECT_EQ(r2.stats.head_counts[0], r2.stats.tokens);  // threshold 0: all leave at the first exit
  EXPECT_DOUBLE_EQ(r2.stats.avg_exit_layers, m.cfg.exit_depth[0]);
  EXPECT_DOUBLE_EQ(r2.stats.exit_rates()[0], 1.0);
}

TEST(Generate, ConfidenceRulesAndSubsetsOfExits) {
  const float logits[4] = {2.0f, 1.0f, 0.0f, -100.0f};
  const double z = std::exp(2.0) + std::exp(1.0) + 1.0 + std::exp(-100.0);
  EXPECT_NEAR(confidence_score(Confidence::kMaxProb, logits, 4), std::exp(2.0) / z, 1e-9);
  EXPECT_NEAR(confidence_score(Confidence::kMargin, logits, 4), (std::exp(2.0) - std::exp(1.0)) / z, 1e-9);
  const float uniform[4] = {1, 1, 1, 1}, onehot[4] = {0, 0, 500, 0};
  EXPECT_NEAR(confidence_score(Confidence::kEntropy, uniform, 4), 0.0, 1e-9);
  EXPECT_NEAR(confidence_score(Confidence::kEntropy, onehot, 4), 1.0, 1e-9);
  EXPECT_EQ(argmax_token(logits, 3), 0);

  Model m = make_model(Variant::kGpt2);
  GenerateOptions o;
  o.method = InferenceMethod::kRecompute;
  o.threshold = 0.0;
  o.exits = {1};  // only the second exit may fire
  o.max_new_tokens = 6;
  for (Confidence rule : {Confidence::kMaxProb, Confidence::kMargin, Confidence::kEntropy}) {
    o.confidence = rule;
    const auto r = run(m, random_prompts(2, 3, m.cfg.V, 2), o);
    EXPECT_EQ(r.stats.head_counts[0], 0);
    EXPECT_EQ(r.stats.head_counts[1], r.stats.tokens);
  }
}

TEST(Generate, SamplingIsSeededAndTopKOneIsGreedy) {
  Model m = make_model(Variant::kLlama);
  const auto prompts = random_prompts(3, 4, m.cfg.V, 8);
  GenerateOptions greedy;
  greedy.max_new_tokens = 10;
  GenerateOptions o = greedy;
  o.sampling.temperature = 1.0f;
  o.sampling.top_k = 1;
  EXPECT_EQ(tokens_of(run(m, prompts, o)), tokens_of(run(m, prompts, greedy)));
  o.sampling.top_k = 0;
  o.sampling.top_p = 0.9f;
  o.seed = 42;
  const auto a = tokens_of(run(m, prompts, o)), b = tokens_of(run(m, prompts, o));
  EXPECT_EQ(a, b);
  o.seed = 43;
  EXPECT_NE(tokens_of(run(m, prompts, o)), a);  // near-uniform random model: other draws
  std::mt19937_64 rng(1);
  const float lg[5] = {0.0f, 3.0f, 2.9f, -1.0f, -2.0f};
  SamplingOptions s{1.0f, 2, 1.0f};
  for (int i = 0; i < 50; ++i) {
    const int32_t t = pick_token(lg, 5, s, rng);
    EXPECT_TRUE(t == 1 || t == 2);
  }
}

TEST(Generate, StopStringEndsTheSequence) {
  Model m = make_model(Variant::kGpt2);
  GenerateOptions o;
  o.max_new_tokens = 12;
  const std::vector<std::vector<int32_t>> prompts = {{40, 41, 42}};
  const auto ref = run(m, prompts, o).sequences[0];
  ASSERT_EQ(ref.tokens.size(), 12u);
  o.stop = {ref.text.substr(4, 2)};
  const auto cut = run(m, prompts, o).sequences[0];
  EXPECT_TRUE(cut.stopped);
  EXPECT_EQ(cut.text, ref.text.substr(0, ref.text.find(o.stop[0])));
  EXPECT_EQ(cut.tokens.size(), cut.text.size());
}

TEST(Generate, ContextLimitEndsGeneration) {
  Model m = make_model(Variant::kGpt2, 16);
  GenerateOptions o;
  o.max_new_tokens = 100;
  for (InferenceMethod method : {InferenceMethod::kFull, InferenceMethod::kSpeculative}) {
    o.method = method;
    const auto r = run(m, {std::vector<int32_t>(10, 3)}, o);
    EXPECT_EQ(r.sequences[0].tokens.size(), 6u) << to_string(method);
  }
}

// Teacher forcing: the fed-back tokens come from the given text, and each reported token is the
// full model's greedy prediction after that text (the final head's argmax at that position of a
// teacher-forced forward); recompute with an exit that always fires reports the exit's argmax.
TEST(Generate, ForcedTokensGivePerPositionPredictions) {
  Model m = make_model(Variant::kGpt2, 32);
  const std::vector<int32_t> prompt = random_prompts(1, 1, m.cfg.V, 5)[0];
  std::vector<int32_t> text = random_prompts(1, 20, m.cfg.V, 6)[0];
  text.resize(12, 1);
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), text.begin(), text.end());
  const auto ref = incremental_logits(m.cfg, m.params(), *m.be, all, 1);
  GenerateOptions o;
  o.max_new_tokens = static_cast<int>(text.size());
  o.forced = {text};
  for (auto [method, head] :
       {std::pair{InferenceMethod::kFull, m.cfg.num_exits()}, std::pair{InferenceMethod::kRecompute, 0}}) {
    o.method = method;
    o.threshold = method == InferenceMethod::kFull ? 1.0 : 0.0;
    const auto r = run(m, {prompt}, o);
    ASSERT_EQ(r.sequences[0].tokens.size(), text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      const float* row = ref[static_cast<size_t>(head)].ptr() + (prompt.size() - 1 + i) * static_cast<size_t>(m.cfg.Vp);
      EXPECT_EQ(r.sequences[0].tokens[i], argmax_token(row, m.cfg.V)) << to_string(method) << " i " << i;
    }
  }
  o.method = InferenceMethod::kSpeculative;
  EXPECT_FALSE(generate(m.cfg, m.params(), *m.be, {prompt}, o).is_ok());
  o.method = InferenceMethod::kFull;
  o.forced = {text, text};
  EXPECT_FALSE(generate(m.cfg, m.params(), *m.be, {prompt}, o).is_ok());
}

TEST(Generate, ClearErrors) {
  Model m = make_model(Variant::kGpt2, 16);
  GenerateOptions o;
  auto expect_error = [&](const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& opt,
                          const std::string& needle) {
    auto r = generate(m.cfg, m.params(), *m.be, prompts, opt);
    ASSERT_FALSE(r.is_ok()) << needle;
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  expect_error({{}}, o, "prompt 1 is empty");
  expect_error({{1, 2}, std::vector<int32_t>(16, 1)}, o, "prompt 2 has 16 tokens");
  expect_error({}, o, "no prompt");
  expect_error({{1, 99}}, o, "outside the vocabulary");
  GenerateOptions bad = o;
  bad.threshold = 1.5;
  expect_error({{1}}, bad, "threshold (1.5");
  bad = o, bad.exits = {2};
  expect_error({{1}}, bad, "exit index 2");
  bad = o, bad.method = InferenceMethod::kSpeculative, bad.draft_tokens = 0;
  expect_error({{1}}, bad, "draft_tokens");
  bad = o, bad.method = InferenceMethod::kPipeline;
  expect_error({{1}}, bad, "pipeline");
  bad = o, bad.sampling.top_p = 0.0f;
  expect_error({{1}}, bad, "top_p");

  EXPECT_DOUBLE_EQ(*parse_threshold("off"), 1.0);
  EXPECT_DOUBLE_EQ(*parse_threshold("0.8"), 0.8);
  EXPECT_FALSE(parse_threshold("1.01").is_ok());
  EXPECT_FALSE(parse_threshold("-0.1").is_ok());
  EXPECT_FALSE(parse_threshold("0.8x").is_ok());
  EXPECT_FALSE(parse_threshold("nan").is_ok());
  auto bad_rule = parse_enum_value<Confidence>("--confidence", "sigmoid");
  ASSERT_FALSE(bad_rule.is_ok());
  EXPECT_EQ(bad_rule.status().message(), "--confidence: unknown value 'sigmoid'; allowed: max_prob, margin, entropy");
  auto bad_method = parse_enum_value<InferenceMethod>("--method", "fast");
  ASSERT_FALSE(bad_method.is_ok());
  EXPECT_EQ(bad_method.status().message(),
            "--method: unknown value 'fast'; allowed: full, recompute, pipeline, speculative");

  auto missing = load_generation_model("/nonexistent/eellm/ckpt");
  ASSERT_FALSE(missing.is_ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/eellm/ckpt"), std::string::npos);
}

}  // namespace
}  // namespace eellm::exec
