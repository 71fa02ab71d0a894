// Cost model against published formulas (Narayanan et al. 2021; Korthikanti et al. 2022, Table 2),
// exit-head increments, bytes per parameter, alpha-beta collectives and Megatron rank order.
#include <gtest/gtest.h>

#include <cmath>

#include "model/cost_model.h"
#include "model/layout.h"

namespace eellm {
namespace {

DeviceProfile test_device() {
  DeviceProfile d;
  d.name = "test";
  d.peak_tflops_fp32 = 19.5;
  d.peak_tflops_fp16 = 312;
  d.peak_tflops_bf16 = 312;
  d.memory_GiB = 80;
  d.memory_bandwidth_GBps = 2000;
  d.kernel_launch_us = 4;
  d.collective_efficiency = 0.5;
  return d;
}

// GPT-3 175B as in Narayanan et al. 2021 (V = 51200 padded), TP 8 × PP 16 × DP 8.
Scenario gpt3(int tp = 8, int pp = 16, int dp = 8) {
  Scenario s;
  s.model.num_layers = 96;
  s.model.hidden_size = 12288;
  s.model.num_attention_heads = 96;
  s.model.seq_length = 2048;
  s.model.vocab_size = 51200;
  s.parallel.tensor_model_parallel_size = tp;
  s.parallel.pipeline_model_parallel_size = pp;
  s.parallel.data_parallel_size = dp;
  s.parallel.world_size = tp * pp * dp;
  s.cluster.device = test_device();
  s.cluster.num_nodes = tp * pp * dp / 8;
  s.cluster.gpus_per_node = 8;
  s.cluster.intra_node = {300, 2};
  s.cluster.inter_node = {25, 5};
  s.training.micro_batch_size = 1;
  s.training.global_batch_size = 1536;
  s.training.params_dtype = DType::kFP16;
  return s;
}

Layout layout_of(const Scenario& s) {
  StatusOr<Layout> L = derive_layout(s);
  EXPECT_TRUE(L.is_ok()) << L.status().to_string();
  return L.value();
}

TEST(CostModel, Gpt3ParameterCountMatchesNarayanan) {
  const Scenario s = gpt3();
  const Layout L = layout_of(s);
  const ParamCounts c = CostModel(s, L).param_counts();
  const double l = 96, h = 12288, V = 51200, seq = 2048;
  // P = 12·l·h²·(1 + 13/(12h) + (V + s)/(12·l·h)) = 12lh² + 13lh + (V + s)·h; the formula leaves
  // out the final LayerNorm (2h), which the count includes.
  const int64_t formula = static_cast<int64_t>(12 * l * h * h + 13 * l * h + (V + seq) * h);
  EXPECT_EQ(c.backbone(), formula + 2 * 12288);
  EXPECT_EQ(c.total(), c.backbone());
  EXPECT_NEAR(c.total() / 1e9, 174.6, 0.05);
  EXPECT_EQ(c.per_layer, static_cast<int64_t>(12 * h * h + 13 * h));
}

// The GEMMs run at execution.gemm_math's peak when it is explicit (what the executor multiplies in),
// else at the params_dtype's; the attention's products too, on a CPU profile (eellm's own executor
// runs them in bf16 in bf16 math) as on a GPU one.
TEST(CostModel, GemmPeakFollowsTheExecutorsGemmMath) {
  Scenario s = gpt3();
  s.training.params_dtype = DType::kFP32;
  s.cluster.device.peak_tflops_fp32 = 100;
  s.cluster.device.peak_tflops_bf16 = 300;
  const Layout layout = derive_layout(s).value();
  EXPECT_EQ(CostModel(s, layout).gemm_peak_flops(), 100e12);
  const double t_auto = CostModel(s, layout).gemm_time(8192, 8192, 8192);
  s.execution.gemm_math = "bf16";
  EXPECT_EQ(CostModel(s, layout).gemm_peak_flops(), 300e12);
  EXPECT_EQ(CostModel(s, layout).peak_flops(), 100e12);
  EXPECT_NEAR(CostModel(s, layout).gemm_time(8192, 8192, 8192), t_auto / 3, t_auto * 1e-9);
  s.training.params_dtype = DType::kBF16;
  s.execution.gemm_math = "fp32";
  EXPECT_EQ(CostModel(s, layout).gemm_peak_flops(), 100e12);
  s.execution.gemm_math = "auto";
  EXPECT_EQ(CostModel(s, layout).gemm_peak_flops(), 300e12);
  // A CPU profile without tensor parallelism, with element-wise work, launches and per-layer
  // overheads free: a layer's forward (linear layers and attention) is all GEMM work, so bf16 math
  // prices it at a third of fp32's.
  Scenario c = gpt3(1, 16, 64);
  c.training.params_dtype = DType::kFP32;
  c.cluster.device.peak_tflops_fp32 = 100;
  c.cluster.device.peak_tflops_bf16 = 300;
  c.cluster.device.host_cores = 2;
  c.cluster.device.memory_bandwidth_GBps = 1e12;
  c.cluster.device.kernel_launch_us = 0;
  c.cluster.device.per_layer_overhead_us = 0;
  const Layout cpu_layout = derive_layout(c).value();
  c.execution.gemm_math = "fp32";
  const double fp32_layer = CostModel(c, cpu_layout).chunk(0).per_layer.fwd;
  c.execution.gemm_math = "bf16";
  EXPECT_NEAR(CostModel(c, cpu_layout).chunk(0).per_layer.fwd, fp32_layer / 3, fp32_layer * 1e-6);
}

// eellm's CPU executor in bf16 math rounds every GEMM operand to bf16 in a pass of its own (read 4
// bytes, write 2 per element); the cost model adds those passes, and only there: with the GEMMs
// made free, a tiny-ee-sized layer's forward in bf16 costs its fp32 forward plus the rounding of
// x and W of its four linear layers, q/k/v and the causal blocks of probabilities (64-row blocks).
TEST(CostModel, CpuBf16PricesTheRoundingPasses) {
  Scenario s = gpt3(1, 1, 1);
  s.model.num_layers = 6, s.model.hidden_size = 256, s.model.num_attention_heads = 8, s.model.seq_length = 256;
  s.model.vocab_size = 256;
  s.training.micro_batch_size = 8, s.training.global_batch_size = 8;
  s.training.params_dtype = DType::kFP32;
  s.cluster.num_nodes = 1;
  DeviceProfile& d = s.cluster.device;
  d.peak_tflops_fp32 = d.peak_tflops_bf16 = 1e9;  // GEMMs free
  d.host_cores = 2, d.kernel_launch_us = 0, d.per_layer_overhead_us = 0;
  d.memory_bandwidth_GBps = 50, d.elementwise_efficiency = 1;
  const Layout layout = derive_layout(s).value();
  Scenario s_fp = s, s_bf = s;  // a CostModel keeps a pointer to its scenario
  s_fp.execution.gemm_math = "fp32";
  s_bf.execution.gemm_math = "bf16";
  const CostModel fp(s_fp, layout), bf(s_bf, layout);
  EXPECT_FALSE(fp.rounds_gemm_operands());
  ASSERT_TRUE(bf.rounds_gemm_operands());
  const double M = 8 * 256, h = 256, f = 1024;
  const double gemms =
      M * h + 3 * h * h + M * h + h * h + M * h + f * h + M * f + f * h;  // x and W: qkv, proj, fc, fcproj
  const double attention = M * 3 * h + 8 * 8 * 256 * (256 + 64) / 2.0;    // q/k/v, probability blocks
  const double pass = 6 / (50e9 * bf.compute_share());
  EXPECT_NEAR(bf.chunk(0).per_layer.fwd - fp.chunk(0).per_layer.fwd, (gemms + attention) * pass, 1e-9);
  EXPECT_GT(bf.chunk(0).per_layer.bwd_input, fp.chunk(0).per_layer.bwd_input);
  EXPECT_GT(bf.chunk(0).per_layer.bwd_weight, fp.chunk(0).per_layer.bwd_weight);
  // The profile's bf16 attention figures replace the fp32 ones in bf16 math only; 0 falls back.
  Scenario s_att = s_bf;
  s_att.cluster.device.attention_efficiency_bf16 = d.attention_efficiency / 2;
  s_att.cluster.device.peak_tflops_bf16 = 1e-3;  // attention GEMM time dominant, and visible
  Scenario s_ref = s_att;
  s_ref.cluster.device.attention_efficiency_bf16 = 0;
  const double halved = CostModel(s_att, layout).chunk(0).per_layer.fwd,
               ref = CostModel(s_ref, layout).chunk(0).per_layer.fwd;
  EXPECT_GT(halved, ref * 1.05);
  s_att.execution.gemm_math = "fp32";
  s_ref.execution.gemm_math = "fp32";
  EXPECT_EQ(CostModel(s_att, layout).chunk(0).per_layer.fwd, CostModel(s_ref, layout).chunk(0).per_layer.fwd);
  // A GPU profile (no host_cores) converts inside its GEMM kernels: no passes.
  s_bf.cluster.device.host_cores = 0;
  EXPECT_FALSE(CostModel(s_bf, layout).rounds_gemm_operands());
}

TEST(CostModel, ModelFlopsPerIterationWithoutRecompute) {
  // The 72 form (no recompute): fwd + bwd = 3 × forward. Narayanan's 96·B·s·l·h² form adds the
  // recompute forward and is not what MFU counts.
  for (int tp : {1, 8}) {
    const Scenario s = gpt3(tp, 16, 64 / tp);
    const Layout L = layout_of(s);
    const double B = 1536, seq = 2048, l = 96, h = 12288, V = 51200;
    const double expected = 72 * B * seq * l * h * h * (1 + seq / (6 * h) + V / (12 * l * h));
    EXPECT_NEAR(CostModel(s, L).model_flops_per_iteration(false) / expected, 1.0, 1e-12);
  }
}

TEST(CostModel, ChunkFlopsSplitForwardBackward) {
  const Scenario s = gpt3();
  const Layout L = layout_of(s);
  const CostModel cm(s, L);
  const ChunkCosts mid = cm.chunk(5);
  const double b = 1, seq = 2048, h = 12288, t = 8, layers = 6;
  const double gemm = 24 * b * seq * h * h / t * layers, core = 4 * b * seq * seq * h / t * layers;
  EXPECT_NEAR(mid.backbone_flops.fwd / (gemm + core), 1.0, 1e-12);
  EXPECT_NEAR(mid.backbone_flops.bwd_input / (gemm + 2 * core), 1.0, 1e-12);
  EXPECT_NEAR(mid.backbone_flops.bwd_weight / gemm, 1.0, 1e-12);
  EXPECT_GT(mid.backbone.fwd, 0);
  EXPECT_GT(mid.backbone.bwd(), mid.backbone.fwd);
}

// Korthikanti et al. 2022, Table 2, per layer: s·b·h·(...) bytes with 16-bit activations.
TEST(CostModel, KorthikantiTable2EveryRow) {
  struct Row {
    RecomputeGranularity r;
    bool sp;
    int t;
    double expected;  // bytes
  };
  const double seq = 2048, b = 2, h = 12288, a = 96;
  const double sbh = seq * b * h;
  const std::vector<Row> rows = {
      {RecomputeGranularity::kNone, false, 1, sbh * (34 + 5 * a * seq / h)},                   // no parallelism
      {RecomputeGranularity::kNone, false, 8, sbh * (10 + 24.0 / 8 + 5 * a * seq / (h * 8))},  // TP
      {RecomputeGranularity::kNone, true, 8, sbh / 8 * (34 + 5 * a * seq / h)},                // TP + SP
      {RecomputeGranularity::kSelective, false, 8, sbh * (10 + 24.0 / 8)},                     // TP + selective
      {RecomputeGranularity::kSelective, true, 8, sbh / 8 * 34},                               // TP + SP + selective
      {RecomputeGranularity::kFull, false, 8, 2 * sbh},                                        // full recompute
      {RecomputeGranularity::kFull, true, 8, 2 * sbh / 8},                                     // full + SP
      {RecomputeGranularity::kSelective, false, 1, sbh * 34},
  };
  for (const Row& row : rows) {
    Scenario s = gpt3(row.t, 16, 8);
    s.training.micro_batch_size = 2;
    s.parallel.sequence_parallel = row.sp;
    s.parallel.recompute_granularity = row.r;
    const Layout L = layout_of(s);
    EXPECT_EQ(CostModel(s, L).layer_activation_bytes(), static_cast<int64_t>(row.expected))
        << to_string(row.r) << " sp=" << row.sp << " t=" << row.t;
  }
}

TEST(CostModel, BytesPerParameter) {
  struct Case {
    DType dtype;
    bool dist;
    double weights, grads, optimizer;
  };
  const int dp = 8;
  for (const Case& c : {Case{DType::kBF16, false, 2, 4, 12}, Case{DType::kFP16, false, 2, 2, 12},
                        Case{DType::kBF16, true, 2, 4, 12.0 / dp}, Case{DType::kFP32, false, 4, 4, 8},
                        Case{DType::kFP32, true, 4, 4, 8.0 / dp}}) {
    Scenario s = gpt3(8, 16, dp);
    s.training.params_dtype = c.dtype;
    s.parallel.use_distributed_optimizer = c.dist;
    const Layout L = layout_of(s);
    const StageMemory m = CostModel(s, L).stage_memory(3);
    const double P = static_cast<double>(m.params);
    EXPECT_EQ(m.weights_bytes, static_cast<int64_t>(P * c.weights));
    EXPECT_EQ(m.grads_bytes, static_cast<int64_t>(P * c.grads));
    EXPECT_EQ(m.optimizer_bytes, static_cast<int64_t>(std::ceil(P * c.optimizer)));
    // A middle stage of GPT-3 holds 6 layers sharded 8 ways (norms and row-parallel biases whole).
    const int64_t h = 12288;
    EXPECT_EQ(m.params, 6 * ((12 * h * h + 7 * h) / 8 + 2 * h + 4 * h));
  }
}

// Megatron's accounting by hand: GPT-3 175B, TP 8, PP 16, fp16, micro batch 1, full recompute,
// 1F1B. Stage 3 holds 6 layers; fp16 without --accumulate-allreduce-grads-in-fp32 keeps 2-byte
// grads: 2 + 2 + 12 = 16 bytes a parameter (the optimizer's fp32 copy of the grads exists only
// during the step, when no activations are held); with the flag 18. Full recompute stores each
// layer's 2-byte input (2·s·b·h), for pp − 3 = 13 microbatches in flight.
TEST(CostModel, MegatronMemoryByHand) {
  Scenario s = gpt3(8, 16, 8);
  s.training.params_dtype = DType::kFP16;
  s.training.micro_batch_size = 1;
  s.parallel.recompute_granularity = RecomputeGranularity::kFull;
  s.parallel.sequence_parallel = false;
  s.parallel.use_distributed_optimizer = false;
  const Layout L = layout_of(s);
  const int64_t h = 12288, seq = 2048;
  const int64_t P = 6 * ((12 * h * h + 7 * h) / 8 + 6 * h);  // 1,360,343,040 parameters
  const StageMemory m = CostModel(s, L).stage_memory(3);
  EXPECT_EQ(m.params, P);
  EXPECT_EQ(m.static_bytes(), 16 * P);
  EXPECT_EQ(m.activation_bytes_per_microbatch, 6 * 2 * seq * h);
  EXPECT_EQ(m.max_microbatches_in_flight, 13);
  EXPECT_EQ(m.peak_bytes(), 16 * P + 13 * 6 * 2 * seq * h);  // 24.3 GB
  s.training.accumulate_allreduce_grads_in_fp32 = true;
  EXPECT_EQ(CostModel(s, layout_of(s)).stage_memory(3).static_bytes(), 18 * P);
  s.training.params_dtype = DType::kBF16;  // bf16 always keeps fp32 main grads
  s.training.accumulate_allreduce_grads_in_fp32 = false;
  EXPECT_EQ(CostModel(s, layout_of(s)).stage_memory(3).static_bytes(), 18 * P);
}

// One exit on a middle stage: each head variant adds exactly its parameters, FLOPs and memory.
TEST(CostModel, ExitsAddExactlyTheirHeadCosts) {
  const int64_t h = 1024, V = 51200, seq = 1024, b = 2, t = 2;
  for (int variant = 0; variant < 16; ++variant) {
    Scenario base;
    base.model.num_layers = 8;
    base.model.hidden_size = static_cast<int>(h);
    base.model.num_attention_heads = 16;
    base.model.seq_length = static_cast<int>(seq);
    base.model.vocab_size = static_cast<int>(V);
    base.parallel.tensor_model_parallel_size = static_cast<int>(t);
    base.parallel.pipeline_model_parallel_size = 2;
    base.parallel.world_size = 4;
    base.cluster.device = test_device();
    base.cluster.gpus_per_node = 8;
    base.cluster.intra_node = {300, 2};
    base.training.micro_batch_size = static_cast<int>(b);
    base.training.global_batch_size = 8;
    Scenario ee = base;
    ee.exits.exit_layer_nums = {2};
    ee.exits.use_exit_block = variant & 1;
    ee.exits.use_exit_norm = variant & 2;
    ee.exits.use_exit_mlp = variant & 4;
    ee.exits.untie_exit_output_weights = variant & 8;
    const Layout L0 = layout_of(base), L1 = layout_of(ee);
    const CostModel c0(base, L0), c1(ee, L1);
    const int64_t block = 12 * h * h + 13 * h, norm = 2 * h, mlp = 8 * h * h + 5 * h, proj = V * h;
    const int64_t head = (ee.exits.use_exit_block ? block : 0) + (ee.exits.use_exit_norm ? norm : 0) +
                         (ee.exits.use_exit_mlp ? mlp : 0) + (ee.exits.untie_exit_output_weights ? proj : 0);
    const ParamCounts p1 = c1.param_counts();
    ASSERT_EQ(p1.exit_heads.size(), 1u);
    EXPECT_EQ(p1.exit_heads[0], head) << "variant " << variant;
    EXPECT_EQ(p1.total() - c0.param_counts().total(), head);

    const double m = static_cast<double>(b * seq);
    const double head_fwd = (ee.exits.use_exit_block ? 24 * m * h * h + 4 * b * seq * seq * h : 0) +
                            (ee.exits.use_exit_mlp ? 16 * m * h * h : 0) + 2 * m * h * V;
    const double iters = L1.num_microbatches * L1.dp;
    EXPECT_NEAR(c1.model_flops_per_iteration(true) - c0.model_flops_per_iteration(true), 3 * head_fwd * iters,
                1e-9 * c1.model_flops_per_iteration(true));
    EXPECT_EQ(c1.model_flops_per_iteration(false), c0.model_flops_per_iteration(false));
    const ChunkCosts ch = c1.chunk(0);
    ASSERT_EQ(ch.exit_flops.size(), 1u);
    EXPECT_NEAR(ch.exit_flops[0].fwd, head_fwd / t, 1e-6 * head_fwd);
    EXPECT_EQ(ch.backbone_flops.fwd, c0.chunk(0).backbone_flops.fwd);

    // Memory of stage 0 (holds the embedding, so a tied head needs no extra copy).
    const StageMemory m0 = c0.stage_memory(0), m1 = c1.stage_memory(0);
    const int64_t head_gpu = (ee.exits.use_exit_block ? (block - 2 * h - 4 * h) / t + 2 * h + 4 * h : 0) +
                             (ee.exits.use_exit_norm ? norm : 0) + (ee.exits.use_exit_mlp ? (mlp - h) / t + h : 0) +
                             (ee.exits.untie_exit_output_weights ? proj / t : 0);
    EXPECT_EQ(m1.params - m0.params, head_gpu) << "variant " << variant;
    EXPECT_EQ(m1.exit_logits_bytes_per_microbatch - m0.exit_logits_bytes_per_microbatch, b * seq * V / t * 4);
    const double sbh = static_cast<double>(seq * b * h);
    const int64_t act =
        (ee.exits.use_exit_block ? static_cast<int64_t>(sbh * (10 + 24.0 / t + 5.0 * 16 * seq / (h * t))) : 0) +
        static_cast<int64_t>((ee.exits.use_exit_norm ? 2 * sbh : 0) +
                             (ee.exits.use_exit_mlp ? 2 * sbh + 16 * sbh / t : 0) + 2 * sbh);
    EXPECT_EQ(m1.activation_bytes_per_microbatch - m0.activation_bytes_per_microbatch, act) << "variant " << variant;
    EXPECT_GT(ch.exits[0].fwd, 0);
  }
}

TEST(CostModel, TiedExitOnStageWithoutEmbeddingHoldsACopyAndJoinsTheGroup) {
  Scenario s = gpt3(8, 4, 2);
  s.model.num_layers = 8;
  s.training.global_batch_size = 16;
  s.exits.exit_layer_nums = {5};  // stage 2
  const Layout L = layout_of(s);
  const CostModel cm(s, L);
  Scenario untied = s;
  untied.exits.untie_exit_output_weights = true;
  const Layout Lu = layout_of(untied);
  EXPECT_EQ(cm.embedding_group_stages(), (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(CostModel(untied, Lu).embedding_group_stages(), (std::vector<int>{0, 3}));
  EXPECT_EQ(cm.embedding_group_bytes(), int64_t{51200} * 12288 / 8 * 2);  // fp16 grads
  EXPECT_EQ(cm.stage_params(2) - cm.stage_params(1), int64_t{51200} * 12288 / 8);
}

TEST(CostModel, CollectivesMatchAlphaBeta) {
  const Scenario s = gpt3();
  const Layout L = layout_of(s);
  const CostModel cm(s, L);
  const double B = 1e9, bw_intra = 300e9 * 0.5, a_intra = 2e-6, bw_inter = 25e9 * 0.5, a_inter = 5e-6;
  EXPECT_NEAR(cm.allreduce_time(1000000000, 8, false), 2 * 7.0 / 8 * B / bw_intra + 2 * 7 * a_intra, 1e-12);
  EXPECT_NEAR(cm.allreduce_time(1000000000, 16, true), 2 * 15.0 / 16 * B / bw_inter + 2 * 15 * a_inter, 1e-12);
  EXPECT_NEAR(cm.allreduce_time(1000000000, 8, false, CollectiveAlgo::kTree), 2 * 3 * a_intra + 2 * B / bw_intra,
              1e-12);
  EXPECT_NEAR(cm.reduce_scatter_time(1000000000, 8, false), 7.0 / 8 * B / bw_intra + 7 * a_intra, 1e-12);
  EXPECT_NEAR(cm.allgather_time(1000000000, 8, true), 7.0 / 8 * B / bw_inter + 7 * a_inter, 1e-12);
  EXPECT_NEAR(cm.p2p_time(1000000, true), a_inter + 1e6 / bw_inter, 1e-15);
  EXPECT_NEAR(cm.p2p_time(0, false), a_intra, 1e-15);
  EXPECT_EQ(cm.allreduce_time(1000, 1, false), 0.0);
}

TEST(CostModel, MegatronRankOrderDecidesLinks) {
  // tp 8 fills a node: every dp group and every pipeline hop crosses nodes.
  {
    const Scenario s = gpt3(8, 16, 8);
    const Layout L = layout_of(s);
    const CostModel cm(s, L);
    EXPECT_FALSE(cm.tp_group_inter_node());
    EXPECT_TRUE(cm.dp_group_inter_node());
    EXPECT_TRUE(cm.pp_hop_inter_node(0));
  }
  // tp 2 × dp 2 = 4 ranks per stage, 8 per node: hop 0→1 stays inside, 1→2 crosses.
  {
    Scenario s = gpt3(2, 4, 2);
    s.model.num_layers = 8;
    s.training.global_batch_size = 16;
    s.cluster.num_nodes = 2;
    const Layout L = layout_of(s);
    const CostModel cm(s, L);
    EXPECT_FALSE(cm.dp_group_inter_node());
    EXPECT_FALSE(cm.pp_hop_inter_node(0));
    EXPECT_TRUE(cm.pp_hop_inter_node(1));
    EXPECT_FALSE(cm.pp_hop_inter_node(2));
  }
}

TEST(CostModel, MicrobatchesInFlightPerSchedule) {
  Scenario s = gpt3(8, 4, 2);
  s.model.num_layers = 8;
  s.training.global_batch_size = 16;  // 8 microbatches
  Layout L = layout_of(s);
  for (int st = 0; st < 4; ++st) EXPECT_EQ(CostModel(s, L).stage_memory(st).max_microbatches_in_flight, 4 - st);
  s.parallel.schedule = ScheduleKind::kGPipe;
  L = layout_of(s);
  EXPECT_EQ(CostModel(s, L).max_microbatches_in_flight(3), 8);
  s.parallel.schedule = ScheduleKind::k1F1B;
  s.training.global_batch_size = 4;  // 2 microbatches < pp
  L = layout_of(s);
  EXPECT_EQ(CostModel(s, L).max_microbatches_in_flight(0), 2);
  s.parallel.schedule = ScheduleKind::kInterleaved1F1B;
  s.parallel.virtual_pipeline_model_parallel_size = 2;
  s.training.global_batch_size = 16;
  L = layout_of(s);
  // Megatron warm-up: (4 − 0 − 1)·2 + (2 − 1)·4 = 10 chunk-microbatches + 1 → 11 chunks = 5.5
  // stages.
  EXPECT_EQ(CostModel(s, L).max_microbatches_in_flight(0), 6);
}

TEST(CostModel, GemmEfficiencyModel) {
  Scenario s = gpt3();
  DeviceProfile& d = s.cluster.device;
  d.gemm_max_efficiency = 0.8;
  d.gemm_half_efficiency_dim = 64;
  d.gemm_tile_m = d.gemm_tile_n = 128;
  d.num_sms = 108;
  d.kernel_launch_us = 0;
  const Layout L = layout_of(s);
  const CostModel cm(s, L);
  // 54 × 2 tiles of 128² on 108 SMs → exactly one full wave; compute-bound (k = 8192).
  const double m = 128 * 54, n = 256, k = 8192;
  const double eff = 0.8 * (n / (n + 64));
  EXPECT_NEAR(cm.gemm_time(m, n, k), 2 * m * n * k / (312e12 * eff), 1e-12);
  // One tile row more spills into a second wave: utilisation = useful area / (2 waves · 108 tiles).
  const double m2 = 128 * 55;
  const double eff2 = 0.8 * (m2 * n / (2 * 108 * 128.0 * 128)) * (n / (n + 64));
  EXPECT_NEAR(cm.gemm_time(m2, n, k), 2 * m2 * n * k / (312e12 * eff2), 1e-12);
  EXPECT_NEAR(cm.elementwise_time(1e9), 1e9 / (2000e9 * d.elementwise_efficiency), 1e-15);
}

}  // namespace
}  // namespace eellm
