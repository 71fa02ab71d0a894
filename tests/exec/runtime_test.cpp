// Process-group arithmetic and the runtime on one process (self communicator): the schedule
// interpreter must reproduce exec/trainer's numbers exactly and time every instruction.
#include "exec/train/runtime.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "exec/comm/comm.h"
#include "model/scenario_io.h"
#include "sim/simulate.h"
#include "sim/trace.h"
#include "tests/exec/dist_reference.h"

namespace eellm::exec {
namespace {

TEST(ProcessGroups, MegatronRankOrderTensorFastestThenDataThenPipeline) {
  const ParallelDims d{2, 2, 2};  // tp, pp, dp
  auto g = make_process_groups(d, 8, 5, {0, 1});
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_EQ(g->coords.tp, 1);
  EXPECT_EQ(g->coords.dp, 0);
  EXPECT_EQ(g->coords.pp, 1);
  EXPECT_EQ(g->tensor, (std::vector<int>{4, 5}));
  EXPECT_EQ(g->pipeline, (std::vector<int>{1, 5}));
  EXPECT_EQ(g->data, (std::vector<int>{5, 7}));
  EXPECT_EQ(g->embedding, (std::vector<int>{1, 5}));
  for (int r = 0; r < 8; ++r) EXPECT_EQ(world_rank_of(d, coords_of(d, r)), r);
}

TEST(ProcessGroups, EmbeddingGroupHoldsFirstLastAndTiedExitStagesOnly) {
  const ParallelDims d{1, 4, 1};
  EXPECT_EQ(make_process_groups(d, 4, 2, {0, 2, 3})->embedding, (std::vector<int>{0, 2, 3}));
  EXPECT_TRUE(make_process_groups(d, 4, 1, {0, 2, 3})->embedding.empty());
  EXPECT_TRUE(make_process_groups(d, 4, 0, {0})->embedding.empty());  // one copy: no group
}

TEST(ProcessGroups, WrongWorldSizeNamesTheNumbers) {
  auto g = make_process_groups({1, 2, 2}, 3, 0, {});
  ASSERT_FALSE(g.is_ok());
  EXPECT_NE(g.status().message().find("3 processes"), std::string::npos) << g.status().message();
  EXPECT_NE(g.status().message().find("mpirun -np 4"), std::string::npos) << g.status().message();
  EXPECT_FALSE(make_process_groups({1, 2, 1}, 2, 0, {0, 2}).is_ok());  // stage 2 of a 2-stage pipeline
}

// One schedule, two interpreters: the lists the executor builds for a scenario are simulate()'s,
// instruction for instruction, for every shipped scenario and the test scenarios (every schedule
// kind, EE fill at PP 4 where the cost model's backward/forward ratio sets the fill counts).
TEST(Runtime, ScheduleEqualsTheSimulatorsForEveryScenario) {
  std::vector<Scenario> all;
  for (const auto& e : std::filesystem::directory_iterator(scenarios_dir()))
    if (e.path().extension() == ".yaml") all.push_back(load_scenario(e.path().string()).value());
  all.push_back(load_scenario(std::string(EELLM_SOURCE_DIR) + "/tests/cli/data/ee-llm-7b-1024-gpus.yaml").value());
  ASSERT_GE(all.size(), 12u);
  for (ScheduleKind k : {ScheduleKind::k1F1B, ScheduleKind::kGPipe, ScheduleKind::kEE1F1B, ScheduleKind::kEEFill,
                         ScheduleKind::kZBH1, ScheduleKind::kEETuning})
    all.push_back(testing::tiny_dist_scenario(4, 2, 1, k, 8));
  all.push_back(testing::tiny_dist_scenario(2, 1, 2, ScheduleKind::kInterleaved1F1B, 4));
  int fills = 0;
  for (const Scenario& s : all) {
    SimulateOptions o;
    o.record_timeline = false;
    o.compare_without_exits = false;
    auto sim = simulate(s, o);
    ASSERT_TRUE(sim.is_ok()) << s.name << ": " << sim.status().to_string();
    auto executed = runtime_schedule(s);
    ASSERT_TRUE(executed.is_ok()) << s.name << ": " << executed.status().to_string();
    EXPECT_EQ(executed->ranks, sim->schedule.ranks) << s.name;
    EXPECT_EQ(executed->num_fill_warmup, sim->schedule.num_fill_warmup) << s.name;
    EXPECT_EQ(executed->num_fill_cooldown, sim->schedule.num_fill_cooldown) << s.name;
    EXPECT_GT(executed->num_instructions(), 0u) << s.name;
    fills += executed->num_fill_warmup > 0;
  }
  EXPECT_GE(fills, 1);  // the fill counts were exercised, not all zero
}

// The runtime on one process against the single-process trainer. Bitwise with Eigen's GEMM; a BLAS
// library (cpu_gemm auto picks OpenBLAS or oneDNN on most machines) may sum a gradient accumulated
// over microbatches in another order than the trainer's, so with the machine's choice the weights
// agree within float rounding.
void one_process_matches_the_trainer(const std::string& cpu_gemm, bool bitwise);

TEST(Runtime, OneProcessMatchesTheSingleProcessTrainerStepForStep) {
  one_process_matches_the_trainer("eigen", true);
}

TEST(Runtime, OneProcessMatchesTheTrainerWithTheMachinesGemm) {
  one_process_matches_the_trainer("auto", false);
}

void one_process_matches_the_trainer(const std::string& cpu_gemm, bool bitwise) {
  Scenario s = testing::tiny_dist_scenario(1, 1, 1, ScheduleKind::kNoPipelining, 4);
  s.cluster.device.cpu_gemm = cpu_gemm;
  auto world = make_self_communicator("world");
  auto comms = make_communicators(*world, {1, 1, 1}, {});
  ASSERT_TRUE(comms.is_ok()) << comms.status().to_string();
  auto rt = PipelineRuntime::create(s, *comms, RuntimeOptions{});
  ASSERT_TRUE(rt.is_ok()) << rt.status().to_string();
  const int iters = 2;
  const testing::ReferenceRun ref = testing::reference_full(s, iters, false);
  std::vector<int32_t> in, tgt;
  IterationResult r;
  for (int it = 0; it < iters; ++it) {
    testing::replica_tokens(it, 0, 4, 2, 16, in, tgt);
    auto res = (*rt)->run_iteration(in, tgt, it);
    ASSERT_TRUE(res.is_ok()) << res.status().to_string();
    r = std::move(res).value();
  }
  // Same chunk, same op order: bitwise equal, except the loss sums (double vs float order).
  ASSERT_EQ(r.exit_loss.size(), 2u);
  for (size_t e = 0; e < 2; ++e) EXPECT_NEAR(r.exit_loss[e], ref.exit_loss[e], 1e-6);
  EXPECT_NEAR(r.final_loss, ref.final_loss, 1e-6);
  EXPECT_NEAR(r.grad_norm, ref.grad_norm, 1e-6 * ref.grad_norm);
  EXPECT_EQ((*rt)->owned_names().size(), ref.params.named().size());  // one stage owns everything
  const auto want = ref.params.named();
  const auto got = (*rt)->params().named();
  for (size_t i = 0; i < want.size(); ++i)
    for (size_t k = 0; k < want[i].second->numel(); ++k)
      if (bitwise)
        ASSERT_EQ(got[i].second->data[k], want[i].second->data[k]) << want[i].first << "[" << k << "]";
      else
        ASSERT_NEAR(got[i].second->data[k], want[i].second->data[k], 1e-6f + 1e-5f * std::abs(want[i].second->data[k]))
            << want[i].first << "[" << k << "]";
  // Every instruction of the list is one timed event of the measured timeline.
  EXPECT_EQ(r.timeline.events.size(), (*rt)->instructions().size());
  for (const TimelineEvent& e : r.timeline.events) EXPECT_LE(e.t0, e.t1);
}

TEST(Runtime, MeasuredTimelineRoundTripsThroughTheTraceFormat) {
  const Scenario s = testing::tiny_dist_scenario(1, 1, 1, ScheduleKind::kNoPipelining, 2);
  auto world = make_self_communicator("world");
  auto comms = make_communicators(*world, {1, 1, 1}, {});
  auto rt = PipelineRuntime::create(s, *comms, RuntimeOptions{});
  ASSERT_TRUE(rt.is_ok()) << rt.status().to_string();
  std::vector<int32_t> in, tgt;
  testing::replica_tokens(0, 0, 2, 2, 16, in, tgt);
  auto r = (*rt)->run_iteration(in, tgt, 0);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto back = parse_trace(trace_to_json(r->timeline), "measured");
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_EQ(back->events.size(), r->timeline.events.size());
  EXPECT_EQ(back->end_time(), r->timeline.end_time());
  const TimelineComparison c = compare(r->timeline, *back);
  EXPECT_EQ(c.iteration_relative_error, 0.0);
  // F0 F1 B0 B1 ... OPT: forward and backward counted per microbatch.
  int fwd = 0, bwd = 0;
  for (const OpKindError& k : c.per_op) {
    if (k.op == InstrKind::kForward && !k.exit_part) fwd = k.count_measured;
    if (k.op == InstrKind::kBackward && !k.exit_part) bwd = k.count_measured;
  }
  EXPECT_EQ(fwd, 2);
  EXPECT_EQ(bwd, 2);
}

// The zero-bubble split: backward_input leaves the backbone matmul weights' gradients untouched
// and gives backward()'s input gradient; backward_weight then completes backward()'s gradients.
TEST(Runtime, ZeroBubbleSplitEqualsTheFullBackward) {
  const Scenario s = testing::every_tp_rule(testing::tiny_dist_scenario(2, 1, 1, ScheduleKind::kZBH1, 4));
  const GptConfig cfg = make_gpt_config(s).value();
  auto be = make_cpu_backend(1);
  GptParams p, g_full, g_split;
  p.allocate(cfg), g_full.allocate(cfg), g_split.allocate(cfg);
  init_params(p, cfg, 5);
  GptChunk ch(cfg, 4, 4, false, true);  // the second half: exit 5 and the final head
  ch.set_backend(be.get());
  const int B = 2, T = 16, N = B * T;
  std::vector<int32_t> in(static_cast<size_t>(N)), tgt(in.size());
  testing::microbatch_tokens(0, 0, B, T, in.data(), tgt.data());
  std::vector<float> x(static_cast<size_t>(N) * cfg.C), dout(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * std::sin(0.37f * i), dout[i] = 1e-3f * std::cos(0.11f * i);
  HeadWeights w{{0.5f, 0.25f}, 1.0f};
  std::vector<float> din_full(x.size(), 0.0f), din_split(x.size(), 0.0f);
  ChunkState a, b;
  ch.forward(a, p, g_full, nullptr, x.data(), tgt.data(), B, T, w, true);
  ch.backward(a, p, g_full, dout.data(), din_full.data());
  ch.forward(b, p, g_split, nullptr, x.data(), tgt.data(), B, T, w, true);
  ch.backward_input(b, p, g_split, dout.data(), din_split.data());
  EXPECT_EQ(din_split, din_full);
  for (int l = 4; l < 8; ++l) {
    const LayerParams& lg = g_split.layers[static_cast<size_t>(l)];
    for (const Tensor* t : {&lg.qkv_w, &lg.proj_w, &lg.fc_w, &lg.fcproj_w})
      EXPECT_TRUE(std::all_of(t->data.begin(), t->data.end(), [](float v) { return v == 0.0f; })) << "layer " << l;
  }
  ch.backward_weight(b, p, g_split);
  const auto f = g_full.named(), sp = g_split.named();
  ASSERT_EQ(f.size(), sp.size());
  for (size_t i = 0; i < f.size(); ++i)
    for (size_t k = 0; k < f[i].second->numel(); ++k)
      ASSERT_NEAR(sp[i].second->data[k], f[i].second->data[k], 1e-7) << f[i].first << "[" << k << "]";
}

TEST(Runtime, RejectsWrongBatchSizeAndCommunicatorsOfAnotherLayout) {
  Scenario s = testing::tiny_dist_scenario(1, 1, 1, ScheduleKind::kNoPipelining, 2);
  auto world = make_self_communicator("world");
  auto comms = make_communicators(*world, {1, 1, 1}, {});
  auto rt = PipelineRuntime::create(s, *comms, RuntimeOptions{});
  ASSERT_TRUE(rt.is_ok());
  std::vector<int32_t> in(5), tgt(5);
  auto r = (*rt)->run_iteration(in, tgt, 0);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("2 microbatches of 2×16"), std::string::npos) << r.status().message();

  s.parallel.tensor_model_parallel_size = 2;
  s.parallel.world_size = 2;
  Communicators c2;  // one process cannot run a tp 2 layout: refused before any message
  c2.groups.dims = {1, 1, 1};
  auto tp = PipelineRuntime::create(s, c2, RuntimeOptions{});
  ASSERT_FALSE(tp.is_ok());
  EXPECT_NE(tp.status().message().find("built for tp 1, pp 1, dp 1 but the scenario's layout is tp 2"),
            std::string::npos)
      << tp.status().message();
}

}  // namespace
}  // namespace eellm::exec
