// validate_scenario and the loader's errors: one test per class of user mistake, plus every shipped
// scenario loading and validating without errors.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "model/cost_model.h"
#include "model/layout.h"
#include "model/scenario_io.h"
#include "model/validate.h"

namespace eellm {
namespace {

const std::string kData = EELLM_TEST_DATA_DIR;

// A 7B-like early-exit model on the 2×8 test cluster: valid as written.
Scenario valid_scenario() {
  auto s = parse_scenario(
      "model: {num_layers: 32, hidden_size: 4096, num_attention_heads: 32, seq_length: 2048, "
      "vocab_size: 32000,\n"
      "        normalization: RMSNorm, position_embedding_type: rope, activation: swiglu, "
      "add_bias_linear: false,\n"
      "        untie_embeddings_and_output_weights: true}\n"
      "exits: {exit_layer_nums: [9, 17], exit_layer_weight: [0.1, 0.2], pre_exit: true, "
      "untie_exit_output_weights: true}\n"
      "parallel: {tensor_model_parallel_size: 1, pipeline_model_parallel_size: 4, schedule: "
      "ee-1f1b,\n"
      "           recompute_granularity: selective}\n"
      "cluster: {profile: " +
          kData +
          "/clusters/test-2x8.yaml}\n"
          "training: {micro_batch_size: 2, global_batch_size: 2048, params_dtype: bf16}\n",
      "valid.yaml");
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  return *s;
}

std::vector<Diagnostic> of(const Diagnostics& d, Diagnostic::Severity sev) {
  std::vector<Diagnostic> out;
  for (const Diagnostic& x : d.items)
    if (x.severity == sev) out.push_back(x);
  return out;
}
const Diagnostic* find_field(const Diagnostics& d, const std::string& field) {
  for (const Diagnostic& x : d.items)
    if (x.field == field) return &x;
  return nullptr;
}

TEST(Validate, ValidScenarioHasNoDiagnostics) {
  const Diagnostics d = validate_scenario(valid_scenario());
  EXPECT_FALSE(d.has_errors()) << d.to_string();
  EXPECT_TRUE(d.items.empty()) << d.to_string();
  EXPECT_TRUE(d.first_error().is_ok());
}

TEST(Validate, NonDivisibleSizesNameTheNumbers) {
  Scenario s = valid_scenario();
  s.training.global_batch_size = 100;
  s.training.micro_batch_size = 3;
  const Diagnostics d = validate_scenario(s);
  ASSERT_TRUE(d.has_errors());
  EXPECT_EQ(d.first_error().message(),
            "training.global_batch_size (100) is not divisible by micro_batch_size (3) × "
            "data_parallel_size (4)");
  EXPECT_EQ(d.items[0].field, "training.global_batch_size");

  Scenario h = valid_scenario();
  h.parallel.tensor_model_parallel_size = 3;
  h.parallel.world_size = 12;
  const Diagnostics dh = validate_scenario(h);
  ASSERT_TRUE(dh.has_errors());
  EXPECT_EQ(dh.first_error().message(),
            "model.num_attention_heads (32) is not divisible by tensor_model_parallel_size (3)");
}

TEST(Validate, ExitOutOfRange) {
  Scenario s = valid_scenario();
  s.exits.exit_layer_nums = {9, 40};
  const Diagnostics d = validate_scenario(s);
  const Diagnostic* x = find_field(d, "exits.exit_layer_nums[1]");
  ASSERT_NE(x, nullptr) << d.to_string();
  EXPECT_EQ(x->message, "exits.exit_layer_nums[1] (40) is out of range: layers are numbered 1..32");
  EXPECT_EQ(of(d, Diagnostic::Severity::kError).size(), 1u) << d.to_string();  // not repeated by derive_layout
}

TEST(Validate, NegativeAndZeroSizesAreAllReported) {
  Scenario s = valid_scenario();
  s.model.num_layers = 0;
  s.model.hidden_size = -4096;
  s.training.lr = -1e-4;
  s.training.min_lr = 0;
  s.exits.exit_layer_weight = {0.1, -0.2};
  s.inference.early_exit_thres = 1.5;
  s.training.adam_beta2 = 1.0;
  s.cluster.gpus_per_node = 0;
  const Diagnostics d = validate_scenario(s);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"model.num_layers", "model.num_layers (0) must be positive"},
      {"model.hidden_size", "model.hidden_size (-4096) must be positive"},
      {"training.lr", "training.lr (-0.0001) must not be negative"},
      {"exits.exit_layer_weight[1]", "exits.exit_layer_weight[1] (-0.2) must not be negative"},
      {"inference.early_exit_thres", "inference.early_exit_thres (1.5) must be in (0, 1]"},
      {"training.adam_beta2", "training.adam_beta2 (1) must be in [0, 1)"},
      {"cluster.gpus_per_node", "cluster.gpus_per_node (0) must be positive"},
  };
  for (const auto& [field, message] : expected) {
    const Diagnostic* x = find_field(d, field);
    ASSERT_NE(x, nullptr) << field << "\n" << d.to_string();
    EXPECT_EQ(x->message, message);
    EXPECT_EQ(x->severity, Diagnostic::Severity::kError);
  }
}

// The bf16 attention figures of a CPU profile: 0 means "the fp32 ones", a negative or out-of-range
// value is an error naming the field and what 0 means.
TEST(Validate, Bf16AttentionFiguresAreCheckedAndZeroFallsBack) {
  Scenario s = valid_scenario();
  EXPECT_FALSE(validate_scenario(s).has_errors());
  s.cluster.device.attention_efficiency_bf16 = 1.5;
  s.cluster.device.attention_backward_ratio_bf16 = -1;
  const Diagnostics d = validate_scenario(s);
  const Diagnostic* e = find_field(d, "cluster.device.attention_efficiency_bf16");
  ASSERT_NE(e, nullptr) << d.to_string();
  EXPECT_EQ(e->message, "cluster.device.attention_efficiency_bf16 (1.5) must be in [0, 1] (0: attention_efficiency)");
  const Diagnostic* r = find_field(d, "cluster.device.attention_backward_ratio_bf16");
  ASSERT_NE(r, nullptr) << d.to_string();
  EXPECT_NE(r->message.find("(0: attention_backward_ratio)"), std::string::npos) << r->message;
}

TEST(Validate, MemoryWarningGivesThePerStageFigure) {
  Scenario s = valid_scenario();
  s.cluster.device.memory_GiB = 24;
  const Diagnostics d = validate_scenario(s);
  EXPECT_FALSE(d.has_errors()) << d.to_string();
  auto layout = derive_layout(s);
  ASSERT_TRUE(layout.is_ok());
  const CostModel cost(s, *layout);
  int over = 0;
  for (int stage = 0; stage < layout->pp; ++stage) {
    const double need = static_cast<double>(cost.stage_memory(stage).peak_bytes()) / (1024.0 * 1024 * 1024);
    const Diagnostic* x = find_field(d, "memory.stage[" + std::to_string(stage) + "]");
    if (need <= 24) {
      EXPECT_EQ(x, nullptr) << "stage " << stage << " fits (" << need << " GiB) but was flagged";
      continue;
    }
    ++over;
    ASSERT_NE(x, nullptr) << "stage " << stage << " needs " << need << " GiB\n" << d.to_string();
    char figure[96];
    std::snprintf(figure, sizeof figure, "stage %d needs %.1f GiB of 24.0 GiB on test-gpu", stage, need);
    EXPECT_EQ(x->message.rfind(figure, 0), 0u) << x->message;
    EXPECT_EQ(x->severity, Diagnostic::Severity::kWarning);
  }
  // A 7B model with pp 4 and 1F1B needs well over 24 GiB on its first stage.
  EXPECT_GE(over, 1);
  // With 80 GiB it fits everywhere.
  EXPECT_TRUE(validate_scenario(valid_scenario()).items.empty());
}

TEST(Validate, UnknownKeyWithDidYouMean) {
  auto s = parse_scenario("exits:\n  exit_layer_num: [2]\n", "k.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().message(),
            "k.yaml:2:3: exits.exit_layer_num: unknown key 'exit_layer_num'; did you mean "
            "'exit_layer_nums'?");
}

TEST(Validate, WrongType) {
  auto s = parse_scenario("parallel:\n  sequence_parallel: 2\n", "t.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().message(), "t.yaml:2:22: parallel.sequence_parallel: expected a boolean (true/false), got '2'");
}

TEST(Validate, BadEnum) {
  auto s = parse_scenario("model:\n  normalization: batchnorm\n", "e.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().message(),
            "e.yaml:2:18: model.normalization: unknown value 'batchnorm'; allowed: LayerNorm, RMSNorm");
}

TEST(Validate, MissingFile) {
  auto s = load_scenario(kData + "/no-such-scenario.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
  EXPECT_NE(s.status().message().find("no-such-scenario.yaml"), std::string::npos);
}

TEST(Validate, MalformedYaml) {
  auto s = parse_scenario("model: {num_layers: 2\n", "m.yaml");
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().message().rfind("m.yaml:", 0), 0u) << s.status().message();
  EXPECT_NE(s.status().message().find("malformed YAML"), std::string::npos);
}

TEST(Validate, InferenceAndClusterChecks) {
  Scenario s = valid_scenario();
  s.inference.exit_rates = {0.7, 0.6};
  s.inference.method = InferenceMethod::kSpeculative;
  s.inference.draft_exit = 2;
  s.parallel.world_size = 32;
  const Diagnostics d = validate_scenario(s);
  ASSERT_NE(find_field(d, "inference.exit_rates"), nullptr) << d.to_string();
  EXPECT_EQ(find_field(d, "inference.exit_rates")->message,
            "inference.exit_rates sum to 1.3; at most 1 of the tokens can exit early");
  ASSERT_NE(find_field(d, "inference.draft_exit"), nullptr);
  ASSERT_NE(find_field(d, "parallel.world_size"), nullptr);
  EXPECT_EQ(find_field(d, "parallel.world_size")->message,
            "parallel.world_size (32) exceeds the cluster's 16 GPUs (2 nodes × 8)");
}

TEST(Validate, EveryShippedDeviceAndClusterProfileLoads) {
  const std::filesystem::path dir(scenarios_dir());
  int devices = 0, clusters = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "devices")) {
    auto d = load_device_profile(entry.path().stem().string());
    ASSERT_TRUE(d.is_ok()) << d.status().to_string();
    EXPECT_EQ(d->name, entry.path().stem().string());
    EXPECT_GT(d->memory_GiB, 0);
    EXPECT_GT(d->peak_tflops_fp32, 0);
    ++devices;
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir / "clusters")) {
    auto c = load_cluster_profile(entry.path().stem().string());
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    EXPECT_EQ(c->name, entry.path().stem().string());
    EXPECT_GT(c->intra_node.bandwidth_GBps, 0);
    ++clusters;
  }
  EXPECT_GE(devices, 4);
  EXPECT_GE(clusters, 5);
}

TEST(Validate, EveryShippedScenarioLoadsAndValidates) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(scenarios_dir())) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    auto s = load_scenario(entry.path().string());
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    const Diagnostics d = validate_scenario(*s);
    EXPECT_FALSE(d.has_errors()) << entry.path() << "\n" << d.to_string();
    // The shipped set-ups are meant to fit their devices.
    EXPECT_TRUE(d.items.empty()) << entry.path() << "\n" << d.to_string();
  }
  EXPECT_GE(count, 10);
}

}  // namespace
}  // namespace eellm
