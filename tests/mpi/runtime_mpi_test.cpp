// The distributed runtime under mpirun: for every schedule of sim/schedule at PP=2, PP=4, DP=2 and
// PP=2×DP=2, and with tensor parallelism at TP=2, PP=2×TP=2 and TP=2×DP=2 (plus a model that uses
// every TP sharding rule; with and without sequence parallelism), two training iterations give the single-process
// losses (every exit), gradient norm and updated parameters (each rank's shards of them) within fp32 tolerance. Cases
// whose world size differs from the job's are skipped (the binary runs at np 2 and np 4). Fault tests run only with
// EELLM_TEST_FAULT set.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "exec/gpt/tp_shard.h"
#include "exec/io/data.h"
#include "exec/train/runtime.h"
#include "sim/simulate.h"
#include "sim/trace.h"
#include "tests/exec/dist_reference.h"
#include "tests/mpi/mpi_test_util.h"

namespace eellm::exec {
namespace {

using testing::RuntimeFixture;
using testing::world;

struct Case {
  const char* name;
  int pp, dp, vp;
  ScheduleKind kind;
  int m;  // microbatches per replica
  bool overlap = false;
  int tp = 1;
  bool every_rule = false;  // testing::every_tp_rule's model
  bool sp = false;          // sequence parallelism
  int world() const { return tp * pp * dp; }
};

std::ostream& operator<<(std::ostream& os, const Case& c) {
  return os << c.name;
}

const Case kCases[] = {
    // np 2
    {"pp2_gpipe", 2, 1, 1, ScheduleKind::kGPipe, 4},
    {"pp2_1f1b", 2, 1, 1, ScheduleKind::k1F1B, 4},
    {"pp2_interleaved", 2, 1, 2, ScheduleKind::kInterleaved1F1B, 4},
    {"pp2_zbh1", 2, 1, 1, ScheduleKind::kZBH1, 4},
    {"pp2_ee1f1b", 2, 1, 1, ScheduleKind::kEE1F1B, 4},
    {"pp2_eetuning", 2, 1, 1, ScheduleKind::kEETuning, 4},
    {"dp2_none", 1, 2, 1, ScheduleKind::kNoPipelining, 3},
    {"dp2_none_overlap", 1, 2, 1, ScheduleKind::kNoPipelining, 3, true},
    // np 4
    {"pp4_gpipe", 4, 1, 1, ScheduleKind::kGPipe, 8},
    {"pp4_1f1b", 4, 1, 1, ScheduleKind::k1F1B, 8},
    {"pp4_interleaved", 4, 1, 2, ScheduleKind::kInterleaved1F1B, 4},
    {"pp4_zbh1", 4, 1, 1, ScheduleKind::kZBH1, 8},
    {"pp4_ee1f1b", 4, 1, 1, ScheduleKind::kEE1F1B, 8},
    {"pp4_eefill", 4, 1, 1, ScheduleKind::kEEFill, 8},
    {"pp4_eetuning", 4, 1, 1, ScheduleKind::kEETuning, 8},
    {"pp2dp2_1f1b", 2, 2, 1, ScheduleKind::k1F1B, 4},
    {"pp2dp2_interleaved_overlap", 2, 2, 2, ScheduleKind::kInterleaved1F1B, 4, true},
    {"pp2dp2_ee1f1b", 2, 2, 1, ScheduleKind::kEE1F1B, 4},
    {"pp2dp2_eetuning", 2, 2, 1, ScheduleKind::kEETuning, 4},
};

// Tensor parallelism (ctest mpi.tp.np2 / mpi.tp.np4).
const Case kTpCases[] = {
    // np 2
    {"tp2_none", 1, 1, 1, ScheduleKind::kNoPipelining, 3, false, 2},
    {"tp2_none_every_rule", 1, 1, 1, ScheduleKind::kNoPipelining, 3, false, 2, true},
    {"tp2_sp_none", 1, 1, 1, ScheduleKind::kNoPipelining, 3, false, 2, false, true},
    {"tp2_sp_none_every_rule", 1, 1, 1, ScheduleKind::kNoPipelining, 3, false, 2, true, true},
    // np 4
    {"pp2tp2_gpipe", 2, 1, 1, ScheduleKind::kGPipe, 4, false, 2},
    {"pp2tp2_1f1b", 2, 1, 1, ScheduleKind::k1F1B, 4, false, 2},
    {"pp2tp2_interleaved", 2, 1, 2, ScheduleKind::kInterleaved1F1B, 4, false, 2},
    {"pp2tp2_zbh1", 2, 1, 1, ScheduleKind::kZBH1, 4, false, 2},
    {"pp2tp2_sp_zbh1", 2, 1, 1, ScheduleKind::kZBH1, 4, false, 2, false, true},
    {"pp2tp2_ee1f1b", 2, 1, 1, ScheduleKind::kEE1F1B, 4, false, 2},
    {"pp2tp2_eetuning", 2, 1, 1, ScheduleKind::kEETuning, 4, false, 2},
    {"pp2tp2_ee1f1b_every_rule", 2, 1, 1, ScheduleKind::kEE1F1B, 4, false, 2, true},
    {"tp2dp2_none", 1, 2, 1, ScheduleKind::kNoPipelining, 3, false, 2},
    {"tp2dp2_none_overlap", 1, 2, 1, ScheduleKind::kNoPipelining, 3, true, 2},
    {"pp2tp2_sp_1f1b", 2, 1, 1, ScheduleKind::k1F1B, 4, false, 2, false, true},
    {"pp2tp2_sp_interleaved_every_rule", 2, 1, 2, ScheduleKind::kInterleaved1F1B, 4, false, 2, true, true},
    {"tp2dp2_sp_none", 1, 2, 1, ScheduleKind::kNoPipelining, 3, false, 2, false, true},
};

Scenario scenario_of(const Case& c) {
  Scenario s = testing::tiny_dist_scenario(c.pp, c.dp, c.vp, c.kind, c.m, c.tp);
  s.parallel.overlap_grad_reduce = c.overlap;
  s.parallel.sequence_parallel = c.sp;
  return c.every_rule ? testing::every_tp_rule(s) : s;
}

StatusOr<IterationResult> run(PipelineRuntime& rt, const Case& c, int dp_rank, int iters) {
  std::vector<int32_t> in, tgt;
  StatusOr<IterationResult> r = Status::internal("no iteration");
  for (int it = 0; it < iters; ++it) {
    testing::replica_tokens(it, dp_rank, c.m, 2, 16, in, tgt);
    r = rt.run_iteration(in, tgt, it);
    if (!r.is_ok()) return r;
  }
  return r;
}

// The losses, gradient norm and this rank's updated tensors (its TP shards) of a distributed run
// against the single-process reference.
void expect_matches(RuntimeFixture& f, const IterationResult& r, const testing::ReferenceRun& ref, bool tuning) {
  PipelineRuntime& rt = f.rt();
  ASSERT_EQ(r.exit_loss.size(), ref.exit_loss.size());
  for (size_t e = 0; e < ref.exit_loss.size(); ++e)
    EXPECT_NEAR(r.exit_loss[e], ref.exit_loss[e], 1e-5 * ref.exit_loss[e]) << "exit " << e;
  if (!tuning) {
    EXPECT_NEAR(r.final_loss, ref.final_loss, 1e-5 * ref.final_loss);
  }
  if (!rt.owned_names().empty()) {
    EXPECT_NEAR(r.grad_norm, ref.grad_norm, 1e-4 * ref.grad_norm);
  }
  std::map<std::string, const Tensor*> want;
  for (auto& [n, t] : ref.params.named()) want[n] = t;
  std::map<std::string, const Tensor*> got;
  for (auto& [n, t] : rt.params().named()) got[n] = t;
  const int tp = rt.layout().tp;
  for (const std::string& n : rt.owned_names()) {
    const Tensor& a = *got.at(n);
    // This rank's shard of the single-process tensor (the whole tensor without TP).
    auto spec = shard_spec(rt.full_config(), n, tp, f.coords().tp);
    ASSERT_TRUE(spec.is_ok()) << spec.status().to_string();
    const Tensor b = extract_shard(*want.at(n), *spec);
    ASSERT_EQ(a.shape, b.shape) << n;
    double worst = 0;
    size_t at = 0;
    for (size_t k = 0; k < a.numel(); ++k)
      if (std::abs(a.data[k] - b.data[k]) > worst) worst = std::abs(a.data[k] - b.data[k]), at = k;
    EXPECT_LE(worst, 1e-5) << "rank " << world().rank() << " tensor " << n << "[" << at << "]: " << a.data[at] << " vs "
                           << b.data[at];
  }
}

class Equivalence : public ::testing::TestWithParam<Case> {};

TEST_P(Equivalence, TwoStepsMatchTheSingleProcessRun) {
  const Case c = GetParam();
  if (c.world() != world().size()) GTEST_SKIP() << "needs np " << c.world();
  const Scenario s = scenario_of(c);
  RuntimeOptions ro;
  ro.recv_timeout_s = 60;
  auto f = RuntimeFixture::create(s, ro);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  PipelineRuntime& rt = (*f)->rt();
  const int iters = 2;
  auto r = run(rt, c, (*f)->coords().dp, iters);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();

  const bool fill = c.kind == ScheduleKind::kEEFill, tuning = c.kind == ScheduleKind::kEETuning;
  const testing::ReferenceRun ref =
      fill ? testing::reference_from_schedule(s, iters) : testing::reference_full(s, iters, tuning);
  expect_matches(**f, *r, ref, tuning);
  // EE-Tuning: stages without exits train nothing (no OPT, no tensors, grad norm 0).
  const bool idle = rt.owned_names().empty();
  EXPECT_EQ(idle, tuning && (c.pp == 4 && rt.pp_rank() % 2 == 1));
  // The measured timeline on world rank 0 holds every instruction of every pipeline rank.
  if (world().rank() == 0) {
    size_t expect = rt.schedule().num_instructions();
    if (c.overlap) expect += static_cast<size_t>(c.pp);  // the overlapped AR-DP: posted + executed
    EXPECT_EQ(r->timeline.events.size(), expect);
    EXPECT_EQ(r->timeline.num_ranks, c.pp);
    // Activations between stages: B·T·C floats, this tp rank's B·T/tp rows with sequence parallelism.
    for (const TimelineEvent& e : r->timeline.events) {
      if (e.op == InstrKind::kSendAct) {
        EXPECT_EQ(e.bytes, 2 * 16 * 32 * 4 / (c.sp ? c.tp : 1));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Schedules, Equivalence, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });
INSTANTIATE_TEST_SUITE_P(TensorParallel, Equivalence, ::testing::ValuesIn(kTpCases),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// EE-LLM bubble filling: which microbatches train which stages, read off the schedule, is what
// the runtime executes — and it differs from plain 1F1B (the fill and cool-down microbatches
// train only some stages), so the equivalence above is not vacuous.
TEST(EEFill, FillMicrobatchesStopAtTheirDeepestExitAndCooldownSkipsEarlyStages) {
  if (world().size() != 4) GTEST_SKIP() << "needs np 4";
  const Scenario s = testing::tiny_dist_scenario(4, 1, 1, ScheduleKind::kEEFill, 8);
  const Layout lay = derive_layout(s).value();
  const Schedule sched = make_schedule(s, lay).value();
  ASSERT_GT(sched.num_fill_warmup, 0);
  const int mfull = sched.num_microbatches - sched.num_fill_warmup;
  // Exits sit on stages 0 (after layer 2) and 2 (after layer 5): fill microbatches run forward on
  // stages ≤ 2 at most, truncated on their last stage, and never reach the final head.
  for (int r = 0; r < 4; ++r)
    for (const Instr& x : sched.ranks[static_cast<size_t>(r)])
      if (x.kind == InstrKind::kForward && x.microbatch >= mfull) {
        EXPECT_TRUE(x.has(kFill));
        EXPECT_LE(r, 2) << to_string(x);
      }
  const auto full = testing::reference_full(s, 1, false);
  const auto filled = testing::reference_from_schedule(s, 1);
  EXPECT_NE(full.final_loss, filled.final_loss);  // fill microbatches contribute no final loss
  double diff = 0;
  const auto a = full.params.named(), b = filled.params.named();
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t k = 0; k < a[i].second->numel(); ++k)
      diff = std::max(diff, static_cast<double>(std::abs(a[i].second->data[k] - b[i].second->data[k])));
  EXPECT_GT(diff, 1e-5);
}

// The runtime runs EE fill with the fill counts `eellm simulate` plans (the schedule is a function
// of the scenario alone: the cost model's backward/forward ratio, not EE-LLM's 2), and the run
// still equals the single-process reference of that schedule.
TEST(EEFill, TheRuntimeRunsTheSimulatorsScheduleAndMatchesTheReference) {
  if (world().size() != 4) GTEST_SKIP() << "needs np 4";
  const Case c{"pp4_eefill_sim_ratio", 4, 1, 1, ScheduleKind::kEEFill, 8};
  const Scenario s = scenario_of(c);
  SimulateOptions so;
  so.record_timeline = false;
  so.compare_without_exits = false;
  auto sim = simulate(s, so);
  ASSERT_TRUE(sim.is_ok()) << sim.status().to_string();
  RuntimeOptions ro;
  ro.recv_timeout_s = 60;
  auto f = RuntimeFixture::create(s, ro);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  const Schedule& sched = (*f)->rt().schedule();
  EXPECT_EQ(sched.ranks, sim->schedule.ranks);
  EXPECT_EQ(sched.num_fill_warmup, sim->summary.num_fill_warmup);
  EXPECT_EQ(sched.num_fill_cooldown, sim->summary.num_fill_cooldown);
  // Not EE-LLM's default ratio 2 in disguise: at 2, PP 4 fills 2 + 2 microbatches.
  EXPECT_EQ(std::make_pair(sched.num_fill_warmup, sched.num_fill_cooldown), std::make_pair(1, 1));
  const int iters = 2;
  auto r = run((*f)->rt(), c, 0, iters);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  // The reference reads the simulator's schedule: which stages train which microbatch.
  expect_matches(**f, *r, testing::reference_from_schedule(s, iters, &sim->schedule), false);
}

// The `eellm train` path under mpirun: the same data on every rank, a measured trace of the last
// iteration with every pipeline rank, and one metrics line per iteration (world rank 0 writes).
TEST(DistributedTraining, TrainsFromATokenFileAndWritesTraceAndMetrics) {
  const int np = world().size();
  const Scenario s = testing::tiny_dist_scenario(np, 1, 1, ScheduleKind::kEE1F1B, 4);
  const std::string dir = std::string(EELLM_BINARY_DIR) + "/mpi_dist_train_np" + std::to_string(np);
  const std::string tokens = dir + "_tokens_rank" + std::to_string(world().rank()) + ".bin";
  std::vector<int32_t> text;
  for (int i = 0; i < 20000; ++i) text.push_back('a' + (i * 7 + i / 13) % 26);
  ASSERT_TRUE(write_token_file(tokens, text, kByteVocab).is_ok());
  DistributedTrainOptions o;
  o.steps = 3;
  o.data_path = tokens;
  o.trace_path = dir + "_trace.json";
  o.metrics_path = dir + "_metrics.jsonl";
  o.runtime.recv_timeout_s = 60;
  std::remove(o.metrics_path.c_str());
  ASSERT_TRUE(world().barrier(60).is_ok());
  std::ostringstream log;
  const Status st = run_distributed_training(s, world(), o, &log);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  if (world().rank() != 0) {
    EXPECT_TRUE(log.str().empty());  // only rank 0 prints
    return;
  }
  EXPECT_NE(log.str().find("iter 3 | loss"), std::string::npos) << log.str();
  auto t = read_trace(o.trace_path);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  EXPECT_EQ(t->num_ranks, np);
  const Layout lay = derive_layout(s).value();
  EXPECT_EQ(t->events.size(), make_schedule(s, lay).value().num_instructions());
  std::ifstream m(o.metrics_path);
  int lines = 0;
  for (std::string l; std::getline(m, l);) lines += l.find("\"grad_norm\"") != std::string::npos;
  EXPECT_EQ(lines, 3);
  // The wrong process count is refused with the numbers before any message is exchanged.
  Scenario wrong = testing::tiny_dist_scenario(np, 2, 1, ScheduleKind::k1F1B, 4);
  const Status bad = run_distributed_training(wrong, world(), o, nullptr);
  EXPECT_NE(bad.message().find("mpirun -np " + std::to_string(2 * np)), std::string::npos) << bad.message();
}

// The event contract (sim/timeline.h), run for real: at PP = np the executor and the simulator
// record the same set of (rank, op, microbatch) events, SEND and RECV included, and compare()
// reports every SEND and RECV kind with one measured and one predicted event per instruction.
TEST(EventContract, ExecutorAndSimulatorRecordTheSameEvents) {
  const int np = world().size();
  const Case c{"event_contract", np, 1, 1, ScheduleKind::kEE1F1B, 2 * np};
  const Scenario s = scenario_of(c);
  SimulateOptions so;
  so.compare_without_exits = false;
  auto sim = simulate(s, so);
  ASSERT_TRUE(sim.is_ok()) << sim.status().to_string();
  RuntimeOptions ro;
  ro.recv_timeout_s = 60;
  auto f = RuntimeFixture::create(s, ro);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  auto r = run((*f)->rt(), c, 0, 2);  // the first iteration's timeline messages stay out of the second's SENDs
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  if (world().rank() != 0) return;
  using Key = std::tuple<int, InstrKind, int>;
  auto keys = [](const Timeline& t) {
    std::set<Key> out;
    for (const TimelineEvent& e : t.events) out.insert({e.rank, e.op, e.microbatch});
    return out;
  };
  const Timeline& predicted = sim->engine.timeline;
  const Timeline& measured = r->timeline;
  EXPECT_EQ(keys(measured), keys(predicted));
  std::map<InstrKind, int> instrs;
  for (const auto& list : sim->schedule.ranks)
    for (const Instr& in : list) ++instrs[in.kind];
  for (const TimelineEvent& e : measured.events) EXPECT_GE(e.t1, e.t0) << event_name(e);
  const TimelineComparison cmp = compare(predicted, measured);
  for (InstrKind k : {InstrKind::kSendAct, InstrKind::kSendGrad, InstrKind::kRecvAct, InstrKind::kRecvGrad}) {
    auto row = std::find_if(cmp.per_op.begin(), cmp.per_op.end(),
                            [k](const OpKindError& o) { return o.op == k && !o.exit_part; });
    ASSERT_NE(row, cmp.per_op.end()) << to_string(k);
    EXPECT_GT(instrs[k], 0) << to_string(k);
    EXPECT_EQ(row->count_predicted, instrs[k]) << to_string(k);
    EXPECT_EQ(row->count_measured, instrs[k]) << to_string(k);
  }
  EXPECT_EQ(cmp.to_string().find(std::string(to_string(InstrKind::kSendAct)) + " not measured"), std::string::npos);
}

// Run by ctest through tests/mpi/expect_failure.cmake with EELLM_TEST_FAULT=kill|hang: world rank
// 1 dies (or hangs) at its first instruction; the job must fail naming the rank, never hang.
TEST(Fault, ARankThatDiesOrHangsStopsTheJob) {
  const char* mode = std::getenv("EELLM_TEST_FAULT");
  if (!mode) GTEST_SKIP() << "set EELLM_TEST_FAULT=kill|hang";
  const Case c{"pp2_1f1b", 2, 1, 1, ScheduleKind::k1F1B, 4};
  if (world().size() != 2) GTEST_SKIP() << "needs np 2";
  const Scenario s = scenario_of(c);
  RuntimeOptions ro;
  ro.recv_timeout_s = 2;
  ro.fault = std::string(mode) == "kill" ? FaultKind::kExit : FaultKind::kHang;
  ro.fault_world_rank = 1;
  ro.fault_instruction = 0;
  auto f = RuntimeFixture::create(s, ro);
  ASSERT_TRUE(f.is_ok());
  auto r = run((*f)->rt(), c, 0, 1);
  if (!r.is_ok()) {
    std::fprintf(stderr, "eellm: %s\n", r.status().message().c_str());
    std::fflush(stderr);
    world().abort(3);
  }
  ADD_FAILURE() << "the iteration completed although rank 1 failed";
}

}  // namespace
}  // namespace eellm::exec
