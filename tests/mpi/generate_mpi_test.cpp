// Pipeline-based early-exit generation over MPI (exec/generate/pipeline_generate.h): with one stage per rank
// (PP = world size: 2 or 4) the tokens, the heads they left at and the sampled tokens equal the
// single-process KV-recomputation method with the same threshold (unbounded pending cap), and with
// the threshold off they equal the full model. Random-init 4-layer models, GPT-2 (post-exits) and
// Llama (pre-exits with exit blocks, RoPE, GQA) variants, a batch of prompts of different lengths.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "exec/generate/generate.h"
#include "exec/generate/pipeline_generate.h"
#include "exec/gpt/gpt_model.h"
#include "tests/exec/test_util.h"
#include "tests/mpi/mpi_test_util.h"

namespace eellm::exec {
namespace {

using testing::small_scenario;
using testing::Variant;
using testing::world;

struct Model {
  GptConfig cfg;
  GptParams params;
};

Model make_model(Variant v) {
  Scenario s = small_scenario(v);
  s.model.num_layers = 4;
  s.model.seq_length = 40;
  s.model.max_position_embeddings = 40;
  s.exits.exit_layer_nums = v == Variant::kLlama ? std::vector<int>{2, 3, 4} : std::vector<int>{1, 2, 3};
  s.exits.exit_layer_weight = {0.3};
  auto cfg = make_gpt_config(s);
  EXPECT_TRUE(cfg.is_ok()) << cfg.status().message();
  Model m;
  m.cfg = *cfg;
  m.params.allocate(m.cfg);
  init_params(m.params, m.cfg, 11);  // same seed on every rank: identical weights
  return m;
}

std::vector<std::vector<int32_t>> prompts(const GptConfig& cfg) {
  std::mt19937_64 rng(3);
  std::vector<std::vector<int32_t>> out;
  for (int len : {5, 1, 9}) {
    std::vector<int32_t> p(static_cast<size_t>(len));
    for (int32_t& t : p) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(cfg.V));
    out.push_back(p);
  }
  return out;
}

// A max-prob threshold at which the first exit fires for about half of the tokens.
double median_score(const Model& m, Backend& be) {
  std::vector<int32_t> toks(24);
  std::mt19937_64 rng(5);
  for (int32_t& t : toks) t = static_cast<int32_t>(rng() % static_cast<uint64_t>(m.cfg.V));
  const auto logits = incremental_logits(m.cfg, m.params, be, toks, 4);
  std::vector<double> s;
  for (int t = 0; t < 24; ++t)
    s.push_back(confidence_score(Confidence::kMaxProb, logits[0].ptr() + static_cast<size_t>(t) * m.cfg.Vp, m.cfg.V));
  std::sort(s.begin(), s.end());
  return s[s.size() / 2];
}

// Runs the pipeline on every rank (each keeping only its stage's weights) and, on rank 0, compares
// with the single-process method `ref_method` at the same options.
void expect_pipeline_matches(Variant v, GenerateOptions o, InferenceMethod ref_method, bool expect_exits) {
  const int pp = world().size();
  Model m = make_model(v);
  auto be = make_cpu_backend(1);
  if (o.threshold < 0) o.threshold = median_score(m, *be);
  auto st = even_pipeline_stages(m.cfg, pp);
  ASSERT_TRUE(st.is_ok()) << st.status().message();
  GptParams stage_params = m.params;
  keep_stage_params(m.cfg, *st, world().rank(), stage_params);
  const auto ps = prompts(m.cfg);
  o.method = InferenceMethod::kPipeline;
  auto got = generate_pipeline(m.cfg, stage_params, *be, *st, ps, o, world(), 60.0);
  ASSERT_TRUE(got.is_ok()) << got.status().message();
  if (world().rank() != 0) {
    EXPECT_TRUE(got->sequences.empty());
    return;
  }
  GenerateOptions ro = o;
  ro.method = ref_method;
  ro.max_pending = m.cfg.max_T;  // pipeline mode never defers a token's deeper layers
  auto want = generate(m.cfg, m.params, *be, ps, ro);
  ASSERT_TRUE(want.is_ok()) << want.status().message();
  ASSERT_EQ(got->sequences.size(), ps.size());
  for (size_t b = 0; b < ps.size(); ++b) {
    EXPECT_EQ(got->sequences[b].tokens, want->sequences[b].tokens) << "sequence " << b << ", pp " << pp;
    if (ref_method != InferenceMethod::kFull) {
      EXPECT_EQ(got->sequences[b].head, want->sequences[b].head) << "sequence " << b;
    }
  }
  EXPECT_EQ(got->stats.tokens, want->stats.tokens);
  const long early = got->stats.tokens - got->stats.head_counts.back();
  if (expect_exits) {
    EXPECT_GT(early, 0) << "no token left at an exit: the test would not exercise early exit";
    EXPECT_GT(got->stats.head_counts.back(), 0) << "every token exited early";
  } else {
    EXPECT_EQ(early, 0);
  }
}

TEST(PipelineGenerate, Gpt2GreedyEqualsSingleProcessEarlyExit) {
  GenerateOptions o;
  o.threshold = -1;  // median score
  o.max_new_tokens = 12;
  expect_pipeline_matches(Variant::kGpt2, o, InferenceMethod::kRecompute, true);
}

TEST(PipelineGenerate, LlamaPreExitBlocksGreedyEqualsSingleProcessEarlyExit) {
  GenerateOptions o;
  o.threshold = -1;
  o.max_new_tokens = 12;
  expect_pipeline_matches(Variant::kLlama, o, InferenceMethod::kRecompute, true);
}

TEST(PipelineGenerate, SampledTokensEqualSingleProcessWithTheSameSeed) {
  GenerateOptions o;
  o.threshold = -1;
  o.max_new_tokens = 10;
  o.sampling = {0.8f, 20, 0.95f};
  o.seed = 42;
  expect_pipeline_matches(Variant::kGpt2, o, InferenceMethod::kRecompute, true);
}

TEST(PipelineGenerate, ThresholdOffEqualsFullModel) {
  GenerateOptions o;
  o.threshold = 1.0;
  o.max_new_tokens = 12;
  expect_pipeline_matches(Variant::kGpt2, o, InferenceMethod::kFull, false);
  expect_pipeline_matches(Variant::kLlama, o, InferenceMethod::kFull, false);
}

TEST(PipelineGenerate, StagesFromTheLayoutAndBadInput) {
  Model m = make_model(Variant::kLlama);
  Scenario s = small_scenario(Variant::kLlama);
  s.model.num_layers = 4;
  s.exits.exit_layer_nums = {2, 3, 4};
  s.exits.exit_layer_weight = {0.3};
  s.parallel.pipeline_model_parallel_size = 2;
  s.parallel.world_size = 2;
  s.parallel.schedule = ScheduleKind::k1F1B;
  auto layout = derive_layout(s);
  ASSERT_TRUE(layout.is_ok()) << layout.status().message();
  auto a = pipeline_stages(*layout, m.cfg);
  auto b = even_pipeline_stages(m.cfg, 2);
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_EQ(a->first_layer, (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(a->first_layer, b->first_layer);
  EXPECT_EQ(a->exit_stage, b->exit_stage);
  EXPECT_EQ(a->exit_stage, (std::vector<int>{0, 1, 1}));  // pre-exit of layer 2 reads layer 2's input: stage 0
  EXPECT_FALSE(even_pipeline_stages(m.cfg, 5).is_ok());

  // Bad input fails the same way on every rank, before any message is sent.
  auto be = make_cpu_backend(1);
  auto st = even_pipeline_stages(m.cfg, world().size());
  ASSERT_TRUE(st.is_ok());
  GenerateOptions o;
  auto r = generate_pipeline(m.cfg, m.params, *be, *st, {{}}, o, world(), 10.0);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("prompt 1 is empty"), std::string::npos) << r.status().message();
  o.threshold = 2.0;
  r = generate_pipeline(m.cfg, m.params, *be, *st, {{1, 2}}, o, world(), 10.0);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("threshold"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace eellm::exec
