// Scenario YAML: parsing, profile resolution, error messages, and the writer's exact round trip.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/layout.h"
#include "model/scenario_io.h"
#include "tests/model/scenario_compare.h"

namespace eellm {
namespace {

const std::string kData = EELLM_TEST_DATA_DIR;

std::string minimal_yaml(const std::string& extra_model = "", const std::string& extra = "") {
  return "name: t\n"
         "model:\n  num_layers: 4\n  hidden_size: 64\n  num_attention_heads: 4\n  seq_length: 32\n "
         " vocab_size: 100\n" +
         extra_model + "cluster:\n  profile: " + kData + "/clusters/test-2x8.yaml\n" + extra;
}

TEST(ScenarioIo, ParsesSectionsEnumsAndResolvesClusterAndDevice) {
  auto s = parse_scenario(minimal_yaml("  normalization: rmsnorm\n  activation: SwiGLU\n",
                                       "parallel:\n  schedule: 1F1B\n  pipeline_model_parallel_size: 2\n"
                                       "exits:\n  exit_layer_nums: [1, 3]\n  exit_layer_weight: [0.25, 0.5]\n"
                                       "training:\n  params_dtype: BFloat16\n  lr: 3.0e-4\n  seed: 42\n"),
                          "mem.yaml");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->name, "t");
  EXPECT_EQ(s->model.num_layers, 4);
  EXPECT_EQ(s->model.normalization, Normalization::kRMSNorm);
  EXPECT_EQ(s->model.activation, Activation::kSwiGLU);
  EXPECT_EQ(s->parallel.schedule, ScheduleKind::k1F1B);
  EXPECT_EQ(s->exits.exit_layer_nums, (std::vector<int>{1, 3}));
  EXPECT_EQ(s->exits.exit_layer_weight, (std::vector<double>{0.25, 0.5}));
  EXPECT_EQ(s->training.params_dtype, DType::kBF16);
  EXPECT_DOUBLE_EQ(s->training.lr, 3e-4);
  EXPECT_EQ(s->training.seed, 42u);
  EXPECT_EQ(s->cluster.name, "test-2x8");
  EXPECT_EQ(s->cluster.device.name, "test-gpu");
  EXPECT_EQ(s->cluster.device_name, "../devices/test-gpu.yaml");
  EXPECT_DOUBLE_EQ(s->cluster.device.memory_GiB, 80);
  EXPECT_EQ(s->cluster.total_gpus(), 16);
  EXPECT_DOUBLE_EQ(s->cluster.intra_node.bandwidth_GBps, 300);
  EXPECT_DOUBLE_EQ(s->cluster.inter_node.latency_us, 5);
  EXPECT_EQ(s->source_path, "mem.yaml");
}

TEST(ScenarioIo, ClusterOverridesApplyOnTopOfTheProfile) {
  auto s = parse_scenario(
      "model: {num_layers: 2, hidden_size: 8, num_attention_heads: 2, seq_length: 4, vocab_size: "
      "8}\n"
      "cluster:\n  profile: " +
      kData +
      "/clusters/test-2x8.yaml\n  num_nodes: 4\n"
      "  inter_node: {bandwidth_GBps: 50}\n"
      "  device: {base: " +
      kData + "/devices/test-gpu.yaml, memory_GiB: 141}\n");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->cluster.num_nodes, 4);
  EXPECT_EQ(s->cluster.gpus_per_node, 8);
  EXPECT_DOUBLE_EQ(s->cluster.inter_node.bandwidth_GBps, 50);
  EXPECT_DOUBLE_EQ(s->cluster.inter_node.latency_us, 5);  // kept from the profile
  EXPECT_DOUBLE_EQ(s->cluster.device.memory_GiB, 141);
  EXPECT_DOUBLE_EQ(s->cluster.device.peak_tflops_bf16, 312);  // kept from the base device
}

TEST(ScenarioIo, UnknownKeySuggestsTheNearestField) {
  auto s = parse_scenario(minimal_yaml("  num_atention_heads: 4\n"), "typo.yaml");
  ASSERT_FALSE(s.is_ok());
  const std::string msg = s.status().message();
  EXPECT_NE(msg.find("typo.yaml:8:3: model.num_atention_heads: unknown key"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'num_attention_heads'?"), std::string::npos) << msg;
}

TEST(ScenarioIo, UnknownSectionIsReported) {
  auto s = parse_scenario(minimal_yaml("", "trainig:\n  lr: 1\n"), "x.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("unknown key 'trainig'; did you mean 'training'?"), std::string::npos)
      << s.status().message();
}

TEST(ScenarioIo, WrongTypeNamesFieldValueAndExpectedType) {
  auto s = parse_scenario(minimal_yaml("",
                                       "training:\n  micro_batch_size: four\n  lr: fast\n  "
                                       "seed: -3\nexits:\n  pre_exit: maybe\n  exit_layer_nums: [1, x]\n"),
                          "types.yaml");
  ASSERT_FALSE(s.is_ok());
  const std::string msg = s.status().message();
  // Every error is collected, not just the first.
  EXPECT_NE(msg.find("training.micro_batch_size: expected an integer, got 'four'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("training.lr: expected a number, got 'fast'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("training.seed: expected a non-negative integer, got '-3'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("exits.pre_exit: expected a boolean (true/false), got 'maybe'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("exits.exit_layer_nums[1]: expected an integer, got 'x'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("types.yaml:11:"), std::string::npos) << msg;  // line of micro_batch_size
}

TEST(ScenarioIo, DuplicateKeyIsAnError) {
  auto s = parse_scenario("model:\n  num_layers: 2\n  hidden_size: 8\n  num_layers: 3\n", "dup.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().message(), "dup.yaml:4:3: model.num_layers: duplicate key 'num_layers' (first given on line 2)");
}

TEST(ScenarioIo, SectionOfWrongShapeIsAnError) {
  auto s = parse_scenario("model: [1, 2]\n", "shape.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("model: expected a mapping of keys, got a list"), std::string::npos)
      << s.status().message();
}

TEST(ScenarioIo, BadEnumListsAllowedValues) {
  auto s = parse_scenario(minimal_yaml("", "parallel:\n  schedule: zigzag\n"), "enum.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("parallel.schedule: unknown value 'zigzag'; allowed: none, gpipe, 1f1b, "
                                      "interleaved, zb-h1, ee-1f1b, ee-fill, ee-tuning"),
            std::string::npos)
      << s.status().message();
}

TEST(ScenarioIo, MalformedYamlReportsLine) {
  auto s = parse_scenario("model:\n  num_layers: [1, 2\n  hidden_size: 3\n", "bad.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("bad.yaml:"), std::string::npos);
  EXPECT_NE(s.status().message().find("malformed YAML"), std::string::npos) << s.status().message();
}

TEST(ScenarioIo, MissingFilesAreNotFound) {
  auto s = load_scenario("/nonexistent/dir/x.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  auto shipped = load_scenario("tiny-eee");
  ASSERT_FALSE(shipped.is_ok());
  EXPECT_NE(shipped.status().message().find("did you mean 'tiny-ee'?"), std::string::npos)
      << shipped.status().message();
  auto d = load_device_profile("a100-80gb-sxn");
  ASSERT_FALSE(d.is_ok());
  EXPECT_EQ(d.status().code(), StatusCode::kNotFound);
  auto c = parse_scenario("cluster:\n  profile: no-such-cluster\n", "c.yaml");
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("c.yaml:2:12: cluster.profile: cluster profile 'no-such-cluster' not found"),
            std::string::npos)
      << c.status().message();
}

TEST(ScenarioIo, LoadByNameUsesTheShippedFolderAndChecksLayout) {
  auto s = load_scenario("tiny-ee");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->model.num_layers, 6);
  EXPECT_EQ(s->cluster.device.name, "cpu-local");
  EXPECT_NE(s->source_path.find("tiny-ee.yaml"), std::string::npos);

  // A file whose sizes do not divide fails on load with the file name in the message.
  const std::filesystem::path tmp = std::filesystem::temp_directory_path() / "eellm_io_layout.yaml";
  {
    std::ofstream out(tmp);
    out << minimal_yaml("", "parallel:\n  pipeline_model_parallel_size: 3\n  world_size: 3\n");
  }
  auto bad = load_scenario(tmp.string());
  std::filesystem::remove(tmp);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("eellm_io_layout.yaml: model.num_layers (4) is not divisible"),
            std::string::npos)
      << bad.status().message();
}

// Every field set away from its default, so a field the writer forgets cannot pass unnoticed.
Scenario everything_changed() {
  auto base = parse_scenario("cluster: {profile: local-cpu}\n", "base.yaml");
  EXPECT_TRUE(base.is_ok()) << base.status().to_string();
  Scenario s = *base;
  s.name = "round: trip \"quoted\"";
  s.description = "two\nlines, with: colons # and a hash";
  ModelSpec& m = s.model;
  m.arch = "llama";
  m.num_layers = 12;
  m.hidden_size = 768;
  m.num_attention_heads = 12;
  m.num_query_groups = 4;
  m.ffn_hidden_size = 2048;
  m.kv_channels = 64;
  m.seq_length = 1024;
  m.max_position_embeddings = 2048;
  m.vocab_size = 50257;
  m.make_vocab_size_divisible_by = 64;
  m.normalization = Normalization::kRMSNorm;
  m.position_embedding_type = PositionEmbedding::kRope;
  m.activation = Activation::kSwiGLU;
  m.add_bias_linear = false;
  m.untie_embeddings_and_output_weights = true;
  m.init_method_std = 0.006;
  m.layernorm_epsilon = 1e-6;
  m.rotary_base = 500000;
  ExitSpec& e = s.exits;
  e.exit_layer_nums = {3, 7};
  e.exit_layer_weight = {0.1, 1.0 / 3.0};
  e.exit_layer_weight_init = {0.0, 0.05};
  e.exit_layer_weight_warmup_iters = 500;
  e.exit_layer_weight_warmup_style = WarmupStyle::kCosine;
  e.final_exit_weight = 0.9;
  e.pre_exit = true;
  e.use_exit_norm = true;
  e.use_exit_mlp = true;
  e.use_exit_block = true;
  e.untie_exit_output_weights = true;
  ParallelSpec& p = s.parallel;
  p.tensor_model_parallel_size = 2;
  p.pipeline_model_parallel_size = 2;
  p.data_parallel_size = 4;
  p.world_size = 16;
  p.virtual_pipeline_model_parallel_size = 2;
  p.layer_partition = {4, 2, 2, 4};
  p.schedule = ScheduleKind::kInterleaved1F1B;
  p.sequence_parallel = true;
  p.use_distributed_optimizer = true;
  p.overlap_grad_reduce = true;
  p.fill_explicit_bubbles = true;
  p.num_fill_warmup_microbatches = 3;
  p.num_fill_cooldown_microbatches = 2;
  p.recompute_granularity = RecomputeGranularity::kSelective;
  ClusterSpec& c = s.cluster;
  c.num_nodes = 3;
  c.intra_node.latency_us = 1.75;
  c.device.memory_GiB = 96;
  c.device.gemm_tile_n = 256;
  TrainingSpec& t = s.training;
  t.micro_batch_size = 3;
  t.global_batch_size = 96;
  t.train_iters = 12345;
  t.lr = 6e-5;
  t.min_lr = 6e-6;
  t.lr_warmup_iters = 77;
  t.lr_decay_style = LrDecayStyle::kLinear;
  t.lr_decay_iters = 10000;
  t.weight_decay = 0.01;
  t.adam_beta1 = 0.8;
  t.adam_beta2 = 0.999;
  t.adam_eps = 1e-6;
  t.clip_grad = 0.5;
  t.seed = 18446744073709551615ull;
  t.params_dtype = DType::kFP16;
  t.data_path = "/data/corpus.bin";
  t.valid_fraction = 0.1;
  t.eval_interval = 100;
  t.eval_iters = 5;
  t.save_interval = 1000;
  t.log_interval = 7;
  InferenceSpec& i = s.inference;
  i.batch_size = 4;
  i.prompt_length = 17;
  i.max_new_tokens = 33;
  i.method = InferenceMethod::kSpeculative;
  i.early_exit_thres = 0.6;
  i.confidence = Confidence::kEntropy;
  i.exit_rates = {0.2, 0.3};
  i.speculative_draft_tokens = 6;
  i.draft_exit = 1;
  i.max_pending_recompute = 3;
  s.execution.device = DeviceKind::kCUDA;
  s.execution.num_threads = 2;
  s.execution.recv_timeout_s = 12.5;
  return s;
}

TEST(ScenarioIo, WriterRoundTripsEveryField) {
  const Scenario s = everything_changed();
  const std::string yaml = scenario_to_yaml(s);
  auto back = parse_scenario(yaml, "roundtrip.yaml");
  ASSERT_TRUE(back.is_ok()) << back.status().to_string() << "\n" << yaml;
  expect_same_scenario(s, *back, /*compare_cluster=*/true);
  // Only the overridden cluster fields are written inline; the rest comes from the profile.
  EXPECT_EQ(yaml.find("gpus_per_node"), std::string::npos) << yaml;
  EXPECT_NE(yaml.find("num_nodes: 3"), std::string::npos) << yaml;
}

TEST(ScenarioIo, WriterRoundTripsAClusterBuiltInCode) {
  Scenario s = everything_changed();
  s.cluster.name = "made-up";
  s.cluster.device_name = "imaginary-gpu";
  s.cluster.device.name = "imaginary-gpu";
  auto back = parse_scenario(scenario_to_yaml(s), "inline.yaml");
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  expect_same_scenario(s, *back, /*compare_cluster=*/true);
}

TEST(ScenarioIo, ShippedScenarioRoundTrips) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(scenarios_dir())) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    auto s = load_scenario(entry.path().string());
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    const std::string yaml = scenario_to_yaml(*s);
    // Shipped clusters are written by profile name, not inline.
    EXPECT_NE(yaml.find("profile: " + s->cluster.name), std::string::npos) << yaml;
    auto back = parse_scenario(yaml);
    ASSERT_TRUE(back.is_ok()) << back.status().to_string();
    expect_same_scenario(*s, *back, /*compare_cluster=*/true);
    ++count;
  }
  EXPECT_GE(count, 10);
}

}  // namespace
}  // namespace eellm
