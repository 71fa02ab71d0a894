// Megatron / EE-LLM command lines: shell expansion of launch scripts, flag import, export, and the
// round trip scenario → command line → scenario on every field a command line expresses.
#include <gtest/gtest.h>

#include "model/megatron.h"
#include "model/scenario_io.h"
#include "tests/model/scenario_compare.h"

namespace eellm {
namespace {

bool has_warning(const std::vector<std::string>& w, const std::string& part) {
  for (const std::string& x : w)
    if (x.find(part) != std::string::npos) return true;
  return false;
}

// In the style of EE-LLM's examples/ee_training/*.sh: variables, quoted multi-line groups,
// arithmetic, comments, env assignments, torchrun options before the script, a redirection.
const char* kScript = R"SH(#!/bin/bash
export CUDA_DEVICE_MAX_CONNECTIONS=1
NPROC_PER_NODE=8
NNODES=${NNODES:-2}
TP=1
PP=4
SAVE_INTERVAL=$(( 240 * 10 )) # 10B tokens
TRAIN_ITER=$(( $SAVE_INTERVAL * 30 ))
RUN_NAME=`date "+%m%d-%H%M"`
DATA_PATH="\
    0.25 /data/arxiv \
    0.75 /data/c4 \
"
GPT_ARGS="
    --tensor-model-parallel-size $TP \
    --pipeline-model-parallel-size $PP \
    --num-layers 24 --hidden-size 2048 \
    --num-attention-heads 32 --seq-length 2048 --max-position-embeddings 2048 \
    --micro-batch-size 4 --global-batch-size 2048 \
    --lr 0.0003 --min-lr 3.0e-5 --lr-decay-style cosine --lr-warmup-iters 2000 \
    --train-iters $TRAIN_ITER --weight-decay 1e-1 --adam-beta1 0.9 --adam-beta2 0.95 \
    --init-method-std 0.01 --clip-grad 1.0 --bf16 --disable-bias-linear --use-flash-attn \
    --normalization RMSNorm --position-embedding-type rope --swiglu \
    --untie-embeddings-and-output-weights --sequence-parallel
"
EE_ARGS='--exit-layer-nums 7 13 --exit-layer-weight 0.25 0.5 --pre-exit --untie-exit-output-weights'
CUR_DIR=$(cd $(dirname "$0") && pwd)
cd $CUR_DIR
torchrun --nproc_per_node $NPROC_PER_NODE --nnodes $NNODES pretrain_early_exit_gpt.py \
    $GPT_ARGS $EE_ARGS \
    --data-path $DATA_PATH --tokenizer-type SentencePieceTokenizer --split 990,9,1 \
    --log-interval 2 --save-interval $SAVE_INTERVAL --eval-interval 1200 --eval-iters 10 \
    --save /ckpt --load /ckpt --wandb-project ee --frobnicate 3 > train.log 2>&1
)SH";

TEST(Megatron, ExpandsAShellLaunchScript) {
  auto words = expand_launch_command(kScript);
  ASSERT_TRUE(words.is_ok()) << words.status().to_string();
  ASSERT_GE(words->size(), 6u);
  EXPECT_EQ((*words)[0], "torchrun");
  EXPECT_EQ((*words)[4], "2");  // ${NNODES:-2}
  EXPECT_EQ((*words)[5], "pretrain_early_exit_gpt.py");
  const std::string joined = [&] {
    std::string j;
    for (const std::string& w : *words) j += w + " ";
    return j;
  }();
  EXPECT_NE(joined.find("--train-iters 72000 "), std::string::npos) << joined;
  EXPECT_NE(joined.find("--save-interval 2400 "), std::string::npos) << joined;
  EXPECT_NE(joined.find("--data-path 0.25 /data/arxiv 0.75 /data/c4 --tokenizer-type"), std::string::npos) << joined;
  EXPECT_EQ(joined.find("train.log"), std::string::npos) << joined;  // redirection dropped
  EXPECT_EQ(joined.back(), ' ');
  EXPECT_EQ(words->back(), "3");
}

TEST(Megatron, ImportsEeLlmScript) {
  auto imp = scenario_from_megatron(kScript);
  ASSERT_TRUE(imp.is_ok()) << imp.status().to_string();
  const Scenario& s = imp->scenario;
  EXPECT_EQ(s.model.num_layers, 24);
  EXPECT_EQ(s.model.hidden_size, 2048);
  EXPECT_EQ(s.model.normalization, Normalization::kRMSNorm);
  EXPECT_EQ(s.model.position_embedding_type, PositionEmbedding::kRope);
  EXPECT_EQ(s.model.activation, Activation::kSwiGLU);
  EXPECT_FALSE(s.model.add_bias_linear);
  EXPECT_TRUE(s.model.untie_embeddings_and_output_weights);
  EXPECT_EQ(s.model.vocab_size, 32000);  // SentencePiece hint
  EXPECT_EQ(s.exits.exit_layer_nums, (std::vector<int>{7, 13}));
  EXPECT_EQ(s.exits.exit_layer_weight, (std::vector<double>{0.25, 0.5}));
  EXPECT_TRUE(s.exits.pre_exit);
  EXPECT_TRUE(s.exits.untie_exit_output_weights);
  EXPECT_EQ(s.parallel.pipeline_model_parallel_size, 4);
  EXPECT_EQ(s.parallel.schedule, ScheduleKind::kEE1F1B);
  EXPECT_EQ(s.parallel.recompute_granularity, RecomputeGranularity::kNone);  // flash is its own field
  EXPECT_TRUE(s.model.use_flash_attn);
  EXPECT_EQ(s.training.train_iters, 72000);
  EXPECT_EQ(s.training.global_batch_size, 2048);
  EXPECT_EQ(s.training.params_dtype, DType::kBF16);
  EXPECT_DOUBLE_EQ(s.training.valid_fraction, 9.0 / 1000.0);
  EXPECT_EQ(s.training.data_path, "0.25 /data/arxiv 0.75 /data/c4");
  EXPECT_EQ(s.training.save_interval, 2400);
  // torchrun's 2 × 8 with the default device is the shipped 2×8 A100-80GB cluster.
  EXPECT_EQ(s.cluster.name, "a100-80gb-2x8");
  EXPECT_EQ(s.cluster.total_gpus(), 16);
  EXPECT_TRUE(has_warning(imp->warnings, "flags eellm does not model (kept verbatim for the export): --frobnicate"))
      << imp->warnings.size();
  EXPECT_FALSE(has_warning(imp->warnings, "--wandb-project"));
  EXPECT_FALSE(has_warning(imp->warnings, "--save"));
}

TEST(Megatron, ShippedScenarioRoundTrips) {
  for (const char* name : {"ee-llm-1.3b", "ee-llm-7b", "ee-llm-13b", "ee-llm-30b", "gpt3-175b"}) {
    SCOPED_TRACE(name);
    auto s = load_scenario(name);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    const MegatronExport ex = scenario_to_megatron(*s);
    EXPECT_TRUE(ex.warnings.empty());
    auto back = scenario_from_megatron(ex.command);
    ASSERT_TRUE(back.is_ok()) << back.status().to_string() << "\n" << ex.command;
    expect_same_megatron_fields(*s, back->scenario);
    EXPECT_EQ(back->scenario.parallel.schedule, s->parallel.schedule);
    EXPECT_EQ(back->scenario.cluster.name,
              s->cluster.name);  // torchrun sizes find the same profile
  }
}

TEST(Megatron, EveryExpressibleFieldRoundTrips) {
  auto base = load_scenario("ee-llm-7b");
  ASSERT_TRUE(base.is_ok());
  Scenario s = *base;
  s.model.num_query_groups = 8;
  s.model.ffn_hidden_size = 11008;
  s.model.kv_channels = 128;
  s.model.max_position_embeddings = 4096;
  s.model.vocab_size = 32003;
  s.model.make_vocab_size_divisible_by = 64;
  s.model.rotary_base = 500000;
  s.model.layernorm_epsilon = 1e-6;
  s.model.init_method_std = 0.008;
  s.exits.exit_layer_weight_init = {0.0, 0.05};
  s.exits.exit_layer_weight_warmup_iters = 100;
  s.exits.exit_layer_weight_warmup_style = WarmupStyle::kCosine;
  s.exits.use_exit_norm = true;
  s.exits.use_exit_mlp = true;
  s.exits.use_exit_block = true;
  s.exits.pre_exit = false;  // EE-LLM refuses --use-exit-mlp with --pre-exit
  s.exits.exit_layer_temperature = {1.0, 0.7};
  s.exits.use_dynamic_exit_layer_weight = true;
  s.parallel.tensor_model_parallel_size = 2;
  s.parallel.use_distributed_optimizer = true;
  s.parallel.overlap_grad_reduce = true;
  s.parallel.fill_explicit_bubbles = true;
  s.parallel.num_fill_warmup_microbatches = 2;
  s.parallel.num_fill_cooldown_microbatches = 1;
  s.parallel.recompute_granularity = RecomputeGranularity::kFull;
  s.training.micro_batch_size = 1;
  s.training.global_batch_size = 512;
  s.training.lr_decay_iters = 150000;
  s.training.lr_decay_style = LrDecayStyle::kLinear;
  s.training.adam_eps = 1e-5;
  s.training.seed = 77;
  s.training.params_dtype = DType::kFP16;
  s.training.data_path = "/data/corpus_text_document";
  s.training.valid_fraction = 0.05;
  s.parallel.backward_forward_ratio = 2.5;
  const MegatronExport ex = scenario_to_megatron(s);
  auto back = scenario_from_megatron(ex.command);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string() << "\n" << ex.command;
  expect_same_megatron_fields(s, back->scenario);
  EXPECT_EQ(back->scenario.exits.exit_layer_temperature, s.exits.exit_layer_temperature);
  EXPECT_TRUE(back->scenario.exits.use_dynamic_exit_layer_weight);
  EXPECT_DOUBLE_EQ(back->scenario.parallel.backward_forward_ratio, 2.5);
  // Virtual stages (EE-LLM allows them only without exits).
  s.exits = ExitSpec{};
  s.parallel.fill_explicit_bubbles = false;
  s.parallel.virtual_pipeline_model_parallel_size = 2;
  s.parallel.schedule = ScheduleKind::kInterleaved1F1B;
  const MegatronExport vex = scenario_to_megatron(s);
  EXPECT_NE(vex.command.find("--num-layers-per-virtual-pipeline-stage 4"), std::string::npos) << vex.command;
  auto vback = scenario_from_megatron(vex.command);
  ASSERT_TRUE(vback.is_ok()) << vback.status().to_string() << "\n" << vex.command;
  EXPECT_EQ(vback->scenario.parallel.schedule, ScheduleKind::kInterleaved1F1B);
}

TEST(Megatron, ExportWarnsAboutWhatMegatronCannotExpress) {
  auto s = load_scenario("tiny-ee-pp4");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  s->exits.final_exit_weight = 0.5;
  const MegatronExport ex = scenario_to_megatron(*s);
  EXPECT_TRUE(has_warning(ex.warnings, "parallel.layer_partition")) << ex.command;
  EXPECT_TRUE(has_warning(ex.warnings, "exits.final_exit_weight (0.5)"));
  EXPECT_NE(ex.command.find("torchrun --nnodes 1 --nproc_per_node 4 pretrain_early_exit_gpt.py"), std::string::npos)
      << ex.command;
  EXPECT_NE(ex.command.find("--exit-layer-nums 2 4 \\\n"), std::string::npos) << ex.command;
  EXPECT_EQ(ex.command.find("--pre-exit"), std::string::npos);
  EXPECT_NE(ex.command.find("--use-exit-norm"), std::string::npos);
}

TEST(Megatron, ClusterOptionsAndErrors) {
  MegatronImportOptions opts;
  opts.gpus = 32;
  opts.gpus_per_node = 8;
  opts.device = "h100-sxm";
  auto imp = scenario_from_megatron(
      "python pretrain_gpt.py --num-layers 4 --hidden-size 256 --num-attention-heads 4 "
      "--seq-length 128 "
      "--max-position-embeddings 128 --micro-batch-size 2 --tensor-model-parallel-size 2 "
      "--padded-vocab-size 1000",
      opts);
  ASSERT_TRUE(imp.is_ok()) << imp.status().to_string();
  EXPECT_EQ(imp->scenario.cluster.num_nodes, 4);
  EXPECT_EQ(imp->scenario.cluster.device_name, "h100-sxm");
  EXPECT_EQ(imp->scenario.training.global_batch_size, 2 * 16);  // Megatron default: micro × dp
  EXPECT_EQ(imp->scenario.parallel.schedule, ScheduleKind::kNoPipelining);
  EXPECT_EQ(imp->scenario.training.params_dtype, DType::kFP32);
  // The generated cluster reads back from YAML.
  auto yaml = parse_scenario(scenario_to_yaml(imp->scenario));
  ASSERT_TRUE(yaml.is_ok()) << yaml.status().to_string();
  EXPECT_EQ(yaml->cluster.total_gpus(), 32);

  // torchrun without --nnodes is one node.
  auto one = scenario_from_megatron(
      "torchrun --nproc_per_node 4 x.py --num-layers 2 --hidden-size 64 --num-attention-heads 4 "
      "--seq-length 32 --micro-batch-size 1 --padded-vocab-size 100",
      MegatronImportOptions{.device = "h100-sxm"});
  ASSERT_TRUE(one.is_ok()) << one.status().to_string();
  EXPECT_EQ(one->scenario.cluster.num_nodes, 1);
  EXPECT_EQ(one->scenario.cluster.gpus_per_node, 4);

  auto bad = scenario_from_megatron("pretrain_gpt.py --num-layers many --hidden-size 8");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().message(), "--num-layers expects an integer, got 'many'");
  auto none = scenario_from_megatron("echo hello\nls -l\n");
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("no Megatron launch command found"), std::string::npos);
  auto choice =
      scenario_from_megatron("x.py --num-layers 2 --hidden-size 8 --num-attention-heads 2 --normalization BatchNorm");
  ASSERT_FALSE(choice.is_ok());
  EXPECT_EQ(choice.status().message(), "--normalization: unknown value 'BatchNorm'; allowed: LayerNorm, RMSNorm");
}

}  // namespace
}  // namespace eellm
