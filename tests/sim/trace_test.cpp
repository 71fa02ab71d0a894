// Traces: Chrome-trace JSON round-trips a Timeline exactly; small scenarios match checked-in golden
// traces; compare() reports iteration and per-op errors.
//
// Golden files live in tests/data/golden/sim_*.trace.json (one event per line, so diffs read
// well). After an intended change of the engine or the schedules, regenerate them with
//   EELLM_UPDATE_GOLDEN=1 build/<dir>/tests/eellm_sim_tests --gtest_filter='GoldenTrace*'
// and review the diff before committing.
#include "sim/trace.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <tuple>

#include "sim/engine.h"
#include "sim/memory.h"
#include "sim/schedule.h"

namespace eellm {
namespace {

struct Golden {
  std::string name;
  ScheduleParams params;
  SimCosts costs;
};

Golden golden_case(const std::string& name) {
  Golden g;
  g.name = name;
  ScheduleParams& p = g.params;
  p.dp_allreduce = true;
  if (name == "1f1b_pp2_m3") {
    p.kind = ScheduleKind::k1F1B;
    p.pp = 2;
    p.num_microbatches = 3;
    p.embedding_group = {0, 1};
  } else if (name == "ee_fill_pp4_m6") {
    p.kind = ScheduleKind::kEEFill;
    p.pp = 4;
    p.num_microbatches = 6;
    p.stage_has_exit = {false, true, false, false};
  } else if (name == "interleaved_pp2_vp2_m4") {
    p.kind = ScheduleKind::kInterleaved1F1B;
    p.pp = 2;
    p.vp = 2;
    p.num_microbatches = 4;
    p.overlap_grad_reduce = true;
  } else {  // zbh1_pp2_m3
    p.kind = ScheduleKind::kZBH1;
    p.pp = 2;
    p.num_microbatches = 3;
  }
  g.costs = uniform_costs(p.pp, p.vp, 2000, 3000, p.kind == ScheduleKind::kZBH1 ? 1500 : 0);
  for (size_t v = 0; v < g.costs.chunks.size(); ++v) {
    g.costs.chunks[v].p2p_bytes = 1 << 16;
    g.costs.chunks[v].fwd_flops = 1e9;
    g.costs.chunks[v].bwd_flops = 2e9;
  }
  for (size_t v = 0; v < p.stage_has_exit.size(); ++v)
    if (p.stage_has_exit[v]) {
      ChunkTimes& t = g.costs.chunks[v];
      t.exit_fwd = 1000;
      t.exit_bwd_input = 2000;
      t.fwd_partial = 1000;
      t.bwd_input_partial = 1500;
    }
  for (auto& h : g.costs.hops) h = {250, 0.005};
  for (auto& r : g.costs.ranks) {
    r.dp_allreduce = 1200;
    r.embedding_allreduce = 400;
    r.optimizer = 800;
    r.dp_bytes = 1 << 20;
  }
  return g;
}

Timeline play(const Golden& g) {
  auto s = build_schedule(g.params);
  EXPECT_TRUE(s.is_ok()) << s.status().to_string();
  auto r = simulate_schedule(*s, g.costs);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  MemoryParams mp;
  mp.static_bytes.assign(static_cast<size_t>(g.params.pp), int64_t{3} << 30);
  mp.chunks.assign(static_cast<size_t>(g.params.pp * g.params.vp),
                   ChunkMemory{int64_t{1} << 28, int64_t{1} << 27, 1 << 24});
  Timeline t = r->timeline;
  t.memory = memory_timeline(*s, *r, mp).samples;
  return t;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void expect_same(const Timeline& a, const Timeline& b) {
  ASSERT_EQ(a.num_ranks, b.num_ranks);
  ASSERT_EQ(a.events.size(), b.events.size());
  for (size_t i = 0; i < a.events.size(); ++i) {
    const TimelineEvent &x = a.events[i], &y = b.events[i];
    SCOPED_TRACE("event " + std::to_string(i) + " " + event_name(x));
    EXPECT_EQ(x.rank, y.rank);
    EXPECT_EQ(x.stream, y.stream);
    EXPECT_EQ(x.op, y.op);
    EXPECT_EQ(x.category, y.category);
    EXPECT_EQ(x.exit_part, y.exit_part);
    EXPECT_EQ(x.chunk, y.chunk);
    EXPECT_EQ(x.microbatch, y.microbatch);
    EXPECT_EQ(x.t0, y.t0);
    EXPECT_EQ(x.t1, y.t1);
    EXPECT_EQ(x.bytes, y.bytes);
    EXPECT_DOUBLE_EQ(x.flops, y.flops);
    EXPECT_EQ(x.instr, y.instr);
    EXPECT_EQ(x.peer, y.peer);
  }
  ASSERT_EQ(a.memory.size(), b.memory.size());
  for (size_t i = 0; i < a.memory.size(); ++i) {
    EXPECT_EQ(a.memory[i].rank, b.memory[i].rank);
    EXPECT_EQ(a.memory[i].t, b.memory[i].t);
    EXPECT_EQ(a.memory[i].bytes, b.memory[i].bytes);
  }
}

class GoldenTrace : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTrace, MatchesCheckedInFile) {
  const Golden g = golden_case(GetParam());
  const Timeline t = play(g);
  TraceOptions opt;
  opt.title = g.name;
  const std::string json = trace_to_json(t, opt);
  const std::string path = std::string(EELLM_TEST_DATA_DIR) + "/golden/sim_" + g.name + ".trace.json";
  if (std::getenv("EELLM_UPDATE_GOLDEN")) {
    std::ofstream(path) << json;
    GTEST_SKIP() << "rewrote " << path;
  }
  const std::string expected = read_file(path);
  ASSERT_FALSE(expected.empty()) << "missing golden file " << path << " (see the comment at the top of this test)";
  EXPECT_EQ(json, expected) << "trace of " << g.name << " changed; if intended, regenerate the golden files";
  // The golden file itself reads back into the same timeline.
  auto back = parse_trace(expected, path);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  expect_same(t, *back);
}

INSTANTIATE_TEST_SUITE_P(Sim, GoldenTrace,
                         ::testing::Values("1f1b_pp2_m3", "ee_fill_pp4_m6", "interleaved_pp2_vp2_m4", "zbh1_pp2_m3"));

TEST(Trace, HasPerfettoStructure) {
  const Timeline t = play(golden_case("ee_fill_pp4_m6"));
  const std::string json = trace_to_json(t);
  for (const char* needle :
       {"\"process_name\"", "\"thread_name\"", "\"ph\":\"X\"", "\"ph\":\"s\"", "\"ph\":\"f\"", "\"ph\":\"C\"",
        "\"name\":\"EXIT-F0\"", "\"cat\":\"fill\"", "\"name\":\"FILL-F4\"", "\"cat\":\"exit\"", "\"cat\":\"comm\""})
    EXPECT_NE(json.find(needle), std::string::npos) << needle;
}

TEST(Trace, ReadsSlicesWithoutArgsByName) {
  const std::string json = R"({"traceEvents":[
    {"ph":"X","name":"EXIT-B12.c1","pid":3,"tid":0,"ts":1.5,"dur":2.25},
    {"ph":"X","name":"W7","cat":"bwd","pid":0,"tid":0,"ts":0,"dur":1}]})";
  auto t = parse_trace(json);
  ASSERT_TRUE(t.is_ok()) << t.status().to_string();
  ASSERT_EQ(t->events.size(), 2u);
  EXPECT_EQ(t->num_ranks, 4);
  const TimelineEvent& w = t->events[0];
  EXPECT_EQ(w.op, InstrKind::kBackwardWeight);
  EXPECT_EQ(w.microbatch, 7);
  const TimelineEvent& e = t->events[1];
  EXPECT_EQ(e.op, InstrKind::kBackward);
  EXPECT_TRUE(e.exit_part);
  EXPECT_EQ(e.microbatch, 12);
  EXPECT_EQ(e.chunk, 1);
  EXPECT_EQ(e.t0, 1500);
  EXPECT_EQ(e.t1, 3750);
}

TEST(Trace, BadInputNamesTheProblem) {
  auto a = parse_trace("{\"traceEvents\": [", "x.json");
  ASSERT_FALSE(a.is_ok());
  EXPECT_NE(a.status().message().find("x.json: not valid JSON"), std::string::npos);
  auto b = parse_trace(R"({"traceEvents":[{"ph":"X","name":"F1","pid":0}]})", "y.json");
  ASSERT_FALSE(b.is_ok());
  EXPECT_NE(b.status().message().find("y.json: traceEvents[0]: slice without \"ts\""), std::string::npos)
      << b.status().message();
  auto c = read_trace("/nonexistent/trace.json");
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
}

TEST(Compare, ReportsIterationAndPerOpErrors) {
  const Timeline predicted = play(golden_case("1f1b_pp2_m3"));
  Timeline measured = predicted;
  // A "measurement" where every forward took 20 % longer and the iteration 10 % longer.
  for (TimelineEvent& e : measured.events)
    if (e.op == InstrKind::kForward) e.t1 = e.t0 + e.duration() * 6 / 5;
  const TimeNs end = predicted.end_time();
  measured.events.push_back(TimelineEvent{});
  measured.events.back().op = InstrKind::kOptimizerStep;
  measured.events.back().t0 = end;
  measured.events.back().t1 = end + end / 10;
  const TimelineComparison c = compare(predicted, measured);
  EXPECT_NEAR(c.iteration_relative_error, 1.0 / 1.1 - 1.0, 1e-4);  // end / 10 rounds to whole ns
  bool saw_fwd = false;
  for (const OpKindError& o : c.per_op)
    if (o.op == InstrKind::kForward && !o.exit_part) {
      saw_fwd = true;
      EXPECT_NEAR(o.relative_error, 1.0 / 1.2 - 1.0, 1e-9);
      EXPECT_EQ(o.count_predicted, o.count_measured);
    } else if (o.op == InstrKind::kBackward) {
      EXPECT_NEAR(o.relative_error, 0, 1e-12);
    }
  EXPECT_TRUE(saw_fwd);
  EXPECT_NE(c.to_string().find("FWD"), std::string::npos);
}

}  // namespace
// The event contract: a recording that does not time the exit heads apart (the executor's: one
// event per compute instruction) compares like for like with the simulator's split recording;
// the exit rows only the simulator has are "not measured", not 0 %.
TEST(Compare, SplitAndWholeRecordingsOfOneRunAgreeAndExitRowsAreNotMeasured) {
  const Timeline predicted = play(golden_case("ee_fill_pp4_m6"));
  const Timeline measured = whole_instructions(predicted);
  int exit_parts = 0;
  for (const TimelineEvent& e : predicted.events) exit_parts += e.exit_part;
  ASSERT_GT(exit_parts, 0);
  EXPECT_EQ(measured.events.size(), predicted.events.size() - static_cast<size_t>(exit_parts));
  const TimelineComparison c = compare(predicted, measured);
  int compared = 0, not_measured = 0;
  for (const OpKindError& o : c.per_op) {
    if (o.exit_part) {
      EXPECT_FALSE(o.comparable());
      EXPECT_EQ(o.count_measured, 0);
      EXPECT_GT(o.count_predicted, 0);
      ++not_measured;
      continue;
    }
    EXPECT_TRUE(o.comparable()) << to_string(o.op);
    EXPECT_EQ(o.count_predicted, o.count_measured) << to_string(o.op);
    EXPECT_NEAR(o.relative_error, 0, 1e-12) << to_string(o.op);
    ++compared;
  }
  EXPECT_EQ(not_measured, 2);  // EXIT-FWD, EXIT-BWD
  EXPECT_GE(compared, 5);
  const std::string text = c.to_string();
  EXPECT_NE(text.find("EXIT-FWD"), std::string::npos) << text;
  EXPECT_NE(text.find("not measured"), std::string::npos) << text;
  const size_t at = text.find("EXIT-FWD");
  const std::string exit_line = text.substr(at, text.find('\n', at) - at);
  EXPECT_EQ(exit_line.find("error"), std::string::npos) << exit_line;  // no "+0.0%" for a row never measured
}

TEST(Timeline, PackedEventsRoundTripAndBadFieldsAreNamed) {
  const Timeline t = play(golden_case("ee_fill_pp4_m6"));
  std::vector<int64_t> packed;
  pack_events(t.events, packed);
  ASSERT_EQ(packed.size(), t.events.size() * kPackedEventFields);
  std::vector<TimelineEvent> back;
  ASSERT_TRUE(unpack_events(packed.data(), t.events.size(), back).is_ok());
  ASSERT_EQ(back.size(), t.events.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].exit_part, t.events[i].exit_part);
    EXPECT_EQ(back[i].flops, t.events[i].flops);
    EXPECT_EQ(event_name(back[i]), event_name(t.events[i]));
    EXPECT_EQ(std::tie(back[i].t0, back[i].t1, back[i].instr, back[i].peer, back[i].bytes),
              std::tie(t.events[i].t0, t.events[i].t1, t.events[i].instr, t.events[i].peer, t.events[i].bytes));
  }
  packed[2] = kNumInstrKinds;  // event 0's op
  back.clear();
  const Status st = unpack_events(packed.data(), 1, back);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("event 0: op out of range"), std::string::npos) << st.message();
}

}  // namespace eellm
