// EE-LLM's own launch scripts in and out without loss (issue #18). The scripts under
// tests/data/megatron are written for these tests from EE-LLM's flag list (megatron/arguments.py);
// together they use every early-exit and EE-Tuning flag. Each is imported, written as YAML, read
// back and exported: the flags after the script name must come back exactly as given.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

#include "model/cost_model.h"
#include "model/layout.h"
#include "model/megatron.h"
#include "model/scenario_io.h"
#include "model/validate.h"

namespace eellm {
namespace {

const char* const kScripts[] = {"ee_train_fill.sh", "ee_train_pre_exit.sh", "ee_tune_8_exits.sh", "ee_tune_1_exit.sh"};

// Every early-exit flag of EE-LLM's _add_multi_exit_args, and EE-Tuning's.
const char* const kEarlyExitFlags[] = {"--exit-layer-nums",
                                       "--exit-layer-weight",
                                       "--exit-layer-weight-warmup-iters",
                                       "--exit-layer-weight-warmup-style",
                                       "--exit-layer-weight-init",
                                       "--exit-layer-temperature",
                                       "--use-exit-mlp",
                                       "--use-exit-block",
                                       "--use-exit-norm",
                                       "--untie-exit-output-weights",
                                       "--pre-exit",
                                       "--fill-explicit-bubbles",
                                       "--num-fill-warmup-microbatches",
                                       "--num-fill-cooldown-microbatches",
                                       "--backward-forward-ratio",
                                       "--use-dynamic-exit-layer-weight",
                                       "--tune-exit",
                                       "--tune-exit-pipeline-parallel-size"};

std::string read_script(const std::string& name) {
  std::ifstream in(std::string(EELLM_TEST_DATA_DIR) + "/megatron/" + name);
  EXPECT_TRUE(in.good()) << name;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The script's flags (after the .py), each with its values, in order.
std::vector<std::vector<std::string>> script_flags(const std::string& text) {
  auto words = expand_launch_command(text);
  EXPECT_TRUE(words.is_ok()) << words.status().to_string();
  std::vector<std::vector<std::string>> flags;
  bool after = false;
  for (const std::string& w : words.is_ok() ? *words : std::vector<std::string>{}) {
    if (!after) {
      after = w.ends_with(".py");
      continue;
    }
    if (w.starts_with("--"))
      flags.push_back({w});
    else if (!flags.empty())
      flags.back().push_back(w);
  }
  return flags;
}

MegatronImport import_script(const std::string& name) {
  MegatronImportOptions o;
  o.device = "a100-80gb";  // a prefix of the shipped a100-80gb-sxm
  auto imp = scenario_from_megatron(read_script(name), o);
  EXPECT_TRUE(imp.is_ok()) << name << ": " << imp.status().to_string();
  return imp.is_ok() ? *imp : MegatronImport{};
}

bool has_warning(const std::vector<std::string>& w, const std::string& part) {
  for (const std::string& x : w)
    if (x.find(part) != std::string::npos) return true;
  return false;
}

TEST(MegatronInterop, TheScriptsUseEveryEarlyExitFlag) {
  std::set<std::string> used;
  for (const char* name : kScripts)
    for (const auto& f : script_flags(read_script(name))) used.insert(f[0]);
  for (const char* flag : kEarlyExitFlags) EXPECT_TRUE(used.count(flag)) << flag << " is in no script";
}

TEST(MegatronInterop, EveryScriptComesBackWithItsFlagsAsGiven) {
  for (const char* name : kScripts) {
    SCOPED_TRACE(name);
    const MegatronImport imp = import_script(name);
    const Diagnostics d = validate_scenario(imp.scenario);
    EXPECT_FALSE(d.has_errors()) << d.to_string();
    // Through the YAML file, as `eellm convert` writes it and `--to-megatron` reads it.
    auto back = parse_scenario(scenario_to_yaml(imp.scenario));
    ASSERT_TRUE(back.is_ok()) << back.status().to_string();
    const MegatronExport ex = scenario_to_megatron(*back);
    EXPECT_EQ(script_flags(ex.command), script_flags(read_script(name))) << ex.command;
  }
}

TEST(MegatronInterop, AChangedFieldIsWrittenAndTheRestKeepTheirSpelling) {
  MegatronImport imp = import_script("ee_train_fill.sh");
  imp.scenario.exits.exit_layer_weight = {0.3, 0.5};
  imp.scenario.training.train_iters = 500;
  imp.scenario.parallel.sequence_parallel = true;  // not given: appended
  const std::string cmd = scenario_to_megatron(imp.scenario).command;
  EXPECT_NE(cmd.find("--exit-layer-weight 0.3 0.5 \\"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("--train-iters 500 \\"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("--sequence-parallel"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("--split 990,9,1 \\"), std::string::npos) << cmd;
  EXPECT_NE(cmd.find("--lr-warmup-fraction .01 \\"), std::string::npos) << cmd;
  EXPECT_EQ(cmd.find("--exit-layer-weight 0.25"), std::string::npos) << cmd;
}

TEST(MegatronInterop, OmittedFlagsAreNotInvented) {
  const MegatronImport imp = import_script("ee_tune_1_exit.sh");
  const std::string cmd = scenario_to_megatron(imp.scenario).command;
  for (const char* flag : {"--eval-interval", "--log-interval", "--weight-decay", "--seed", "--clip-grad"})
    EXPECT_EQ(cmd.find(flag), std::string::npos) << flag << " invented:\n" << cmd;
  EXPECT_DOUBLE_EQ(imp.scenario.training.valid_fraction, 0.009);
}

TEST(MegatronInterop, EETuningIsImportedWithItsStagesAndFrozenBackbone) {
  const MegatronImport one = import_script("ee_tune_1_exit.sh");
  EXPECT_EQ(one.scenario.parallel.schedule, ScheduleKind::kEETuning);
  EXPECT_EQ(one.scenario.parallel.tune_exit_pipeline_parallel_size, 1);
  const MegatronImport eight = import_script("ee_tune_8_exits.sh");
  EXPECT_EQ(eight.scenario.parallel.tune_exit_pipeline_parallel_size, 4);
  ASSERT_EQ(eight.scenario.exits.exit_layer_nums.back(), 40);  // after the last layer: its own head
  auto L = derive_layout(eight.scenario);
  ASSERT_TRUE(L.is_ok()) << L.status().to_string();
  EXPECT_EQ(L->exits.back().stage, 3);
  EXPECT_EQ(L->exits.back().depth, 40);
  // Frozen backbone: gradients and optimizer state only for the two exit heads on stage 0 (norm,
  // MLP, untied output weights), not for its 10 layers and the embedding.
  const CostModel cm(eight.scenario, *L);
  const StageMemory mem = cm.stage_memory(0);
  Scenario full = eight.scenario;
  full.parallel.schedule = ScheduleKind::kEE1F1B;
  auto LF = derive_layout(full);
  ASSERT_TRUE(LF.is_ok());
  const StageMemory trained = CostModel(full, *LF).stage_memory(0);
  EXPECT_EQ(trained.weights_bytes, mem.weights_bytes);
  EXPECT_LT(mem.grads_bytes * 2, trained.grads_bytes);
  EXPECT_LT(mem.optimizer_bytes * 2, trained.optimizer_bytes);
  // --tune-exit-pipeline-parallel-size 1: the stages after the first load nothing.
  auto L1 = derive_layout(one.scenario);
  ASSERT_TRUE(L1.is_ok());
  EXPECT_EQ(CostModel(one.scenario, *L1).stage_memory(1).static_bytes(), 0);
}

TEST(MegatronInterop, TheEarlyExitFlagsTravelAsFields) {
  const MegatronImport imp = import_script("ee_train_fill.sh");
  const Scenario& s = imp.scenario;
  EXPECT_EQ(s.exits.exit_layer_temperature, (std::vector<double>{1.0, 0.8}));
  EXPECT_TRUE(s.exits.use_dynamic_exit_layer_weight);
  EXPECT_DOUBLE_EQ(s.parallel.backward_forward_ratio, 3.0);
  EXPECT_EQ(s.parallel.num_fill_warmup_microbatches, 2);
  EXPECT_EQ(s.parallel.num_fill_cooldown_microbatches, 1);
  EXPECT_TRUE(s.model.use_flash_attn);
  EXPECT_EQ(s.parallel.recompute_granularity, RecomputeGranularity::kFull);
  // uniform with one layer a checkpoint is what eellm models: no warning about it.
  EXPECT_FALSE(has_warning(imp.warnings, "--recompute-method")) << imp.warnings.size();
  EXPECT_FALSE(has_warning(imp.warnings, "--vocab-size"));
  EXPECT_EQ(s.cluster.total_gpus(), 16);
}

TEST(MegatronInterop, LauncherVariablesComeFromTheEnvironmentOrAreWarnedAbout) {
  ::unsetenv("WORLD_SIZE");
  const MegatronImport unset = import_script("ee_train_pre_exit.sh");
  EXPECT_TRUE(has_warning(unset.warnings, "--nnodes")) << "no warning naming --nnodes";
  EXPECT_EQ(unset.scenario.cluster.total_gpus(), 8);
  ::setenv("WORLD_SIZE", "3", 1);
  const MegatronImport set = import_script("ee_train_pre_exit.sh");
  ::unsetenv("WORLD_SIZE");
  EXPECT_FALSE(has_warning(set.warnings, "--nnodes"));
  EXPECT_EQ(set.scenario.cluster.total_gpus(), 24);
}

StatusOr<MegatronImport> import_text(const std::string& flags) {
  return scenario_from_megatron(
      "torchrun --nproc_per_node 8 --nnodes 1 pretrain_early_exit_gpt.py --num-layers 16 --hidden-size 512 "
      "--num-attention-heads 8 --seq-length 256 --max-position-embeddings 256 --micro-batch-size 1 "
      "--global-batch-size 32 --pipeline-model-parallel-size 4 " +
      flags);
}

TEST(MegatronInterop, WhatEELLMRefusesIsRefusedAndWhatItCapsIsCapped) {
  auto one_weight = import_text("--exit-layer-nums 4 8 --exit-layer-weight 0.5");
  ASSERT_FALSE(one_weight.is_ok());
  EXPECT_NE(one_weight.status().message().find("--exit-layer-weight has 1 value(s) for 2 exit(s)"), std::string::npos);
  auto mlp_pre = import_text("--exit-layer-nums 4 --use-exit-mlp --pre-exit");
  ASSERT_FALSE(mlp_pre.is_ok());
  EXPECT_NE(mlp_pre.status().message().find("--pre-exit"), std::string::npos);
  auto virt = import_text("--exit-layer-nums 4 --num-layers-per-virtual-pipeline-stage 2");
  ASSERT_FALSE(virt.is_ok());
  EXPECT_NE(virt.status().message().find("virtual pipeline"), std::string::npos);
  // PP 4 at ratio 2: at most int(3·2/3) = 2 fill microbatches each; EE-LLM sets 5 to 2.
  auto capped = import_text("--exit-layer-nums 6 10 --fill-explicit-bubbles --num-fill-warmup-microbatches 5");
  ASSERT_TRUE(capped.is_ok()) << capped.status().to_string();
  EXPECT_EQ(capped->scenario.parallel.num_fill_warmup_microbatches, 2);
  EXPECT_TRUE(has_warning(capped->warnings, "--num-fill-warmup-microbatches 5 is above EE-LLM's optimum 2"));
}

TEST(MegatronInterop, DevicePrefixesAreAcceptedWhenUnambiguous) {
  MegatronImportOptions o;
  o.device = "h100";
  auto h100 = scenario_from_megatron(read_script("ee_tune_1_exit.sh"), o);
  ASSERT_TRUE(h100.is_ok()) << h100.status().to_string();
  EXPECT_EQ(h100->scenario.cluster.device_name, "h100-sxm");
  o.device = "a100";
  auto a100 = scenario_from_megatron(read_script("ee_tune_1_exit.sh"), o);
  ASSERT_FALSE(a100.is_ok());
  EXPECT_NE(a100.status().message().find("a100-40gb-sxm, a100-80gb-sxm"), std::string::npos)
      << a100.status().to_string();
}

}  // namespace
}  // namespace eellm
