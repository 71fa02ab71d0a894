// Item models of eellm_gui under QAbstractItemModelTester (exits, stages, per-op errors, plans),
// the timeline lanes' culling and hit-testing against brute force, culled painting of a 1,024-rank
// timeline, dependency look-ups, the metrics-file reader and the run command line.
#include <QAbstractItemModelTester>
#include <QElapsedTimer>
#include <QPainter>
#include <QSortFilterProxyModel>
#include <QtTest>

#include "gui/exits_model.h"
#include "gui/plans_panel.h"
#include "gui/run_panel.h"
#include "gui/stage_model.h"
#include "gui/timeline_lanes.h"
#include "gui/timeline_view.h"
#include "model/scenario_io.h"
#include "sim/simulate.h"

using namespace eellm;
using namespace eellm::gui;

namespace {
SimulationResult simulate_named(const char* name) {
  auto sc = load_scenario(name);
  if (!sc.is_ok()) qFatal("%s", sc.status().to_string().c_str());
  auto r = simulate(*sc);
  if (!r.is_ok()) qFatal("%s", r.status().to_string().c_str());
  return std::move(r).value();
}
}  // namespace

class GuiModelsTest : public QObject {
  Q_OBJECT
 private slots:
  void exitsModel() {
    ExitsModel m;
    QAbstractItemModelTester tester(&m, QAbstractItemModelTester::FailureReportingMode::QtTest);
    ExitSpec e;
    e.exit_layer_nums = {9, 17};
    e.exit_layer_weight = {0.25};  // one weight for all
    m.setExits(e);
    QCOMPARE(m.rowCount(), 2);
    QCOMPARE(m.data(m.index(1, ExitsModel::kWeight), Qt::DisplayRole).toDouble(), 0.25);
    QSignalSpy edited(&m, &ExitsModel::exitsEdited);
    m.addExit(4, 0.1);  // sorted in first
    QCOMPARE(m.exits().exit_layer_nums, (std::vector<int>{4, 9, 17}));
    QCOMPARE(m.exits().exit_layer_weight, (std::vector<double>{0.1, 0.25, 0.25}));
    QVERIFY(m.setData(m.index(0, ExitsModel::kLayer), 20, Qt::EditRole));  // move exit 4 → 20
    QCOMPARE(m.exits().exit_layer_nums, (std::vector<int>{9, 17, 20}));
    QCOMPARE(m.exits().exit_layer_weight, (std::vector<double>{0.25, 0.25, 0.1}));
    QVERIFY(m.setData(m.index(1, ExitsModel::kInitWeight), 0.0, Qt::EditRole));
    QCOMPARE(m.exits().exit_layer_weight_init, (std::vector<double>{0.25, 0.0, 0.1}));
    QVERIFY(!m.setData(m.index(1, ExitsModel::kWeight), QStringLiteral("abc"), Qt::EditRole));
    QVERIFY(m.removeExit(1));
    QVERIFY(!m.removeExit(5));
    QCOMPARE(m.exits().exit_layer_nums, (std::vector<int>{9, 20}));
    QCOMPARE(m.exits().exit_layer_weight_init.size(), size_t{2});
    QCOMPARE(edited.count(), 4);
  }

  void stageAndErrorModels() {
    const SimulationResult r = simulate_named("tiny-ee-pp4");
    StageModel stages;
    QAbstractItemModelTester t1(&stages, QAbstractItemModelTester::FailureReportingMode::QtTest);
    stages.setSummary(r.summary, r.scenario.cluster.device.memory_GiB);
    QCOMPARE(stages.rowCount(), 4);
    QCOMPARE(stages.data(stages.index(2, StageModel::kStage), Qt::UserRole).toInt(), 2);
    QCOMPARE(stages.data(stages.index(1, StageModel::kBusy), Qt::UserRole).toDouble(), r.summary.stages[1].busy_s);
    QSortFilterProxyModel proxy;
    proxy.setSourceModel(&stages);
    proxy.setSortRole(Qt::UserRole);
    QAbstractItemModelTester t2(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    proxy.sort(StageModel::kPeakMemory, Qt::DescendingOrder);
    for (int row = 1; row < proxy.rowCount(); ++row) {
      QVERIFY(proxy.data(proxy.index(row - 1, StageModel::kPeakMemory), Qt::UserRole).toDouble() >=
              proxy.data(proxy.index(row, StageModel::kPeakMemory), Qt::UserRole).toDouble());
    }
    OpErrorModel errors;
    QAbstractItemModelTester t3(&errors, QAbstractItemModelTester::FailureReportingMode::QtTest);
    QCOMPARE(errors.rowCount(), 0);
    errors.setComparison(compare(r.engine.timeline, r.engine.timeline));
    QVERIFY(errors.rowCount() >= 3);  // forward, backward, ... + the iteration row
    const int last = errors.rowCount() - 1;
    QCOMPARE(errors.data(errors.index(last, OpErrorModel::kOp), Qt::DisplayRole).toString(),
             QStringLiteral("iteration"));
    QCOMPARE(errors.data(errors.index(last, OpErrorModel::kError), Qt::UserRole).toDouble(), 0.0);
    // [plan-trust] An op the executor did not record (exit forward, 8 predicted / 0 measured) reads
    // "not measured" in grey, never a green +0.0 %.
    TimelineComparison unmeasured;
    OpKindError exit_fwd;
    exit_fwd.exit_part = true;
    exit_fwd.count_predicted = 8;
    exit_fwd.mean_predicted_s = 1e-3;
    unmeasured.per_op = {exit_fwd};
    errors.setComparison(unmeasured);
    QCOMPARE(errors.data(errors.index(0, OpErrorModel::kError), Qt::DisplayRole).toString(),
             QStringLiteral("not measured"));
    QCOMPARE(errors.data(errors.index(0, OpErrorModel::kMeasured), Qt::DisplayRole).toString(),
             QStringLiteral("not measured"));
    QVERIFY(std::isnan(errors.data(errors.index(0, OpErrorModel::kError), Qt::UserRole).toDouble()));
    QCOMPARE(errors.data(errors.index(0, OpErrorModel::kError), Qt::ForegroundRole).value<QBrush>().color(),
             QColor(128, 128, 128));
    const std::string text = unmeasured.to_string();
    QVERIFY(text.find("EXIT-") != std::string::npos);
    const std::string exit_line = text.substr(text.find("EXIT-"));
    QVERIFY(exit_line.find("not measured") != std::string::npos);
    QVERIFY(exit_line.find("error") == std::string::npos);
    errors.clear();
    QCOMPARE(errors.rowCount(), 0);
  }

  void lanesCullLikeBruteForce() {
    const SimulationResult r = simulate_named("tiny-ee-pp4");
    const Timeline& tl = r.engine.timeline;
    TimelineLanes lanes;
    lanes.build(tl);
    QVERIFY(lanes.lanes().size() >= 4);
    QCOMPARE(lanes.lanes().front().stream, Stream::kCompute);
    size_t total = 0;
    for (const Lane& l : lanes.lanes()) total += l.events.size();
    QCOMPARE(total, tl.events.size());
    const TimeNs end = tl.end_time();
    // Several windows: the culled range must contain exactly the events overlapping the window.
    for (int w = 0; w < 7; ++w) {
      const TimeNs t0 = end * w / 8, t1 = t0 + end / 5;
      for (const Lane& l : lanes.lanes()) {
        const auto [first, last] = lanes.visible(l, t0, t1);
        size_t brute = 0;
        for (int32_t idx : l.events) {
          const TimelineEvent& e = tl.events[static_cast<size_t>(idx)];
          brute += e.t1 >= t0 && e.t0 <= t1;
        }
        size_t culled = 0;
        for (size_t i = first; i < last; ++i) {
          const TimelineEvent& e = tl.events[static_cast<size_t>(l.events[i])];
          culled += e.t1 >= t0 && e.t0 <= t1;
        }
        QCOMPARE(culled, brute);
      }
    }
    // Hit-testing finds the event under a time; lane_at / lane_of agree.
    const Lane& c1 = lanes.lanes()[static_cast<size_t>(lanes.lane_of(1, Stream::kCompute))];
    const TimelineEvent& e = tl.events[static_cast<size_t>(c1.events[3])];
    QCOMPARE(lanes.event_at(tl, c1, (e.t0 + e.t1) / 2, 0), c1.events[3]);
    QCOMPARE(lanes.lane_at(c1.y + 1), lanes.lane_of(1, Stream::kCompute));
    QCOMPARE(lanes.lane_at(-5), -1);
    const auto [a, b] = lanes.lanes_between(c1.y, c1.y + c1.height);
    QCOMPARE(static_cast<int>(a), lanes.lane_of(1, Stream::kCompute));
    QCOMPARE(b, a + 1);
  }

  void dependenciesAndCriticalPath() {
    const SimulationResult r = simulate_named("tiny-ee-pp4");
    const Timeline& tl = r.engine.timeline;
    // The forward of microbatch 0 on stage 1 waited for stage 0's forward of microbatch 0.
    int32_t f = -1;
    for (size_t i = 0; i < tl.events.size(); ++i) {
      const TimelineEvent& e = tl.events[i];
      if (e.rank == 1 && e.stream == Stream::kCompute && e.op == InstrKind::kForward && e.microbatch == 0 &&
          !e.exit_part) {
        f = static_cast<int32_t>(i);
      }
    }
    QVERIFY(f >= 0);
    const std::vector<int32_t> deps = dependency_events(r, f);
    bool producer = false;
    for (int32_t d : deps) {
      const TimelineEvent& e = tl.events[static_cast<size_t>(d)];
      producer |= e.rank == 0 && e.op == InstrKind::kForward && e.microbatch == 0;
      QVERIFY(e.t0 <= tl.events[static_cast<size_t>(f)].t0);  // nothing from the future
    }
    QVERIFY(producer);
    QVERIFY(dependency_events(r, -1).empty());
    const std::vector<int32_t> crit = critical_path_events(r);
    QVERIFY(!crit.empty());
    TimeNs last = 0;
    for (int32_t c : crit) last = std::max(last, tl.events[static_cast<size_t>(c)].t1);
    QCOMPARE(last, r.engine.iteration_ns);
    // Colour classes: the timeline has forwards, backwards and exits.
    QVERIFY(count_events(tl, 0, Stream::kCompute, OpClass::kFwd) == r.layout.num_microbatches);
    QVERIFY(count_events(tl, 0, Stream::kCompute, OpClass::kExitFwd) > 0);
  }

  void metricsLogReadsPartialLines() {
    MetricsLog log;
    auto a = log.feed(
        R"({"step":1,"loss":5.5,"final":5.0,"exits":[6.0,5.8],"lr":0.001,"tokens_per_s":1200}
{"step":2,"loss":5.)");
    QCOMPARE(a.size(), size_t{1});
    QCOMPARE(a[0].step, 1);
    QCOMPARE(a[0].exits, (std::vector<double>{6.0, 5.8}));
    QCOMPARE(a[0].final_loss, 5.0);
    auto b = log.feed(
        "4,\"final\":4.9,\"exits\":[5.9,5.7]}\nnot "
        "json\n{\"step\":2,\"eval\":{\"exit@2\":5.1,\"final\":4.8}}\n");
    QCOMPARE(b.size(), size_t{2});
    QCOMPARE(b[0].loss, 5.4);
    QVERIFY(b[1].eval);
    QCOMPARE(b[1].eval_losses.size(), size_t{2});
    QCOMPARE(log.malformed(), 1);
    QCOMPARE(log.records().size(), size_t{3});
  }

  void runCommandLine() {
    RunRequest r;
    r.eellm = QStringLiteral("/opt/eellm");
    r.scenario_path = QStringLiteral("s.yaml");
    r.metrics_path = QStringLiteral("m.jsonl");
    QCOMPARE(run_command(r), (QStringList{"/opt/eellm", "train", "s.yaml", "--metrics", "m.jsonl"}));
    r.processes = 4;
    r.trace_path = QStringLiteral("t.json");
    r.steps = 20;
    QCOMPARE(run_command(r), (QStringList{"mpirun", "-np", "4", "/opt/eellm", "train", "s.yaml", "--metrics", "m.jsonl",
                                          "--trace", "t.json", "--steps", "20"}));
  }

  void generateCommandLine() {
    GenerateRequest g;
    g.eellm = QStringLiteral("/opt/eellm");
    g.checkpoint = QStringLiteral("ckpt");
    g.prompt = QStringLiteral("Once upon a time");
    QVERIFY(validate_generate(g).isEmpty());
    QCOMPARE(generate_command(g), (QStringList{"/opt/eellm", "generate", "ckpt", "--prompt", "Once upon a time",
                                               "--method", "recompute", "--max-new-tokens", "64", "--stats"}));
    g.method = QStringLiteral("pipeline");
    g.processes = 2;
    g.threshold = QStringLiteral(" 0.8 ");
    g.max_new_tokens = 16;
    g.stats_path = QStringLiteral("s.json");
    QCOMPARE(generate_command(g), (QStringList{"mpirun", "-np", "2", "/opt/eellm", "generate", "ckpt", "--prompt",
                                               "Once upon a time", "--method", "pipeline", "--threshold", "0.8",
                                               "--max-new-tokens", "16", "--stats", "--stats-out", "s.json"}));
    // Each bad field is named with its value.
    GenerateRequest bad = g;
    bad.threshold = QStringLiteral("1.5");
    QVERIFY2(validate_generate(bad).startsWith(QStringLiteral("threshold (1.5)")), qPrintable(validate_generate(bad)));
    bad.threshold = QStringLiteral("off");
    QVERIFY(validate_generate(bad).isEmpty());
    bad.method = QStringLiteral("greedy");
    QVERIFY(validate_generate(bad).startsWith(QStringLiteral("method (greedy)")));
    bad = g;
    bad.checkpoint.clear();
    QVERIFY(validate_generate(bad).startsWith(QStringLiteral("checkpoint")));
    bad = g;
    bad.prompt.clear();
    QVERIFY(validate_generate(bad).startsWith(QStringLiteral("prompt")));
  }

  void generateStatsParse() {
    const GenerateStats s =
        parse_generate_stats(R"({"exit_rates":[0.25,0.15,0.6],"exit_layers":[2,3],"method":"recompute","tokens":20,)"
                             R"("tokens_per_s":412.5,"avg_exit_layers":3.1,"layers_per_token":3.4})");
    QVERIFY2(s.ok, qPrintable(s.error));
    QCOMPARE(s.tokens, 20);
    QCOMPARE(s.exit_rates.size(), size_t{3});
    QCOMPARE(s.exit_layers, (std::vector<int>{2, 3}));
    QCOMPARE(
        format_generate_stats(s),
        QStringLiteral(
            "20 tokens, 412.5 tokens/s, 3.40 layers per token; exits: exit@2 25.0 %, exit@3 15.0 %, final 60.0 %"));
    QVERIFY(!parse_generate_stats("{").ok);
    QVERIFY(!parse_generate_stats(R"({"tokens": 3})").ok);
  }

  void rootEnvironmentForMpirun() {
    QProcessEnvironment base;
    base.insert(QStringLiteral("PATH"), QStringLiteral("/usr/bin"));
    const QProcessEnvironment user = run_environment(base, false);
    QVERIFY(!user.contains(QStringLiteral("OMPI_ALLOW_RUN_AS_ROOT")));
    const QProcessEnvironment root = run_environment(base, true);
    QCOMPARE(root.value(QStringLiteral("OMPI_ALLOW_RUN_AS_ROOT")), QStringLiteral("1"));
    QCOMPARE(root.value(QStringLiteral("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM")), QStringLiteral("1"));
    QCOMPARE(root.value(QStringLiteral("PATH")), QStringLiteral("/usr/bin"));
    base.insert(QStringLiteral("OMPI_ALLOW_RUN_AS_ROOT"), QStringLiteral("0"));  // the user's choice stays
    QCOMPARE(run_environment(base, true).value(QStringLiteral("OMPI_ALLOW_RUN_AS_ROOT")), QStringLiteral("0"));
  }

  // A 1,024-rank timeline paints only what is visible: per frame at most (visible lanes x plot
  // width) blocks, whatever the number of events. The frame time is printed, not asserted.
  void thousandRankTimelineIsCulled() {
    auto tl = std::make_shared<Timeline>();
    tl->num_ranks = 1024;
    constexpr int kPerRank = 400;
    tl->events.reserve(1024 * (kPerRank + kPerRank / 4));
    for (int r = 0; r < 1024; ++r) {
      TimeNs t = r * 500;
      for (int i = 0; i < kPerRank; ++i) {
        TimelineEvent e;
        e.rank = r;
        e.op = i % 2 ? InstrKind::kBackward : InstrKind::kForward;
        e.category = i % 2 ? Category::kBwd : Category::kFwd;
        e.microbatch = i / 2;
        e.t0 = t;
        e.t1 = t + 1000 + (r % 7) * 10;
        t = e.t1 + 50;
        tl->events.push_back(e);
        if (i % 4 == 0) {  // overlapping transfers on the send stream
          TimelineEvent c = e;
          c.stream = Stream::kSend;
          c.op = InstrKind::kSendAct;
          c.category = Category::kComm;
          c.t1 = e.t0 + 3000;
          tl->events.push_back(c);
        }
      }
    }
    TimelineView view;
    view.resize(1600, 1000);
    view.setTimeline(tl);
    QCOMPARE(view.lanes().lanes().size(), size_t{2048});
    QImage img(1600, 1000, QImage::Format_RGB32);
    const int plot = 1600 - TimelineView::kLabelWidth;
    auto frame = [&](const TimeAxis& ax) {
      QPainter p(&img);
      view.render(p, img.size(), ax, 0);
    };
    const auto [l0, l1] = view.lanes().lanes_between(0, 1000 - TimelineView::kHeaderHeight);
    const int visible_lanes = static_cast<int>(l1 - l0);
    QVERIFY(visible_lanes > 20 && visible_lanes < 80);
    TimeAxis all = TimeAxis::fit(tl->end_time(), plot);
    frame(all);
    QVERIFY(view.lastPaintedBlocks() <= visible_lanes * plot);
    QVERIFY(view.lastPaintedBlocks() >= visible_lanes);
    // Zoomed to 1%: only the few events in the window are visited.
    const TimeAxis zoom = all.showing(tl->end_time() / 10, tl->end_time() / 10 + tl->end_time() / 100);
    frame(zoom);
    QVERIFY(view.lastPaintedBlocks() > 0);
    QVERIFY(view.lastPaintedBlocks() <= visible_lanes * (kPerRank / 100 + 6));
    QElapsedTimer timer;
    timer.start();
    constexpr int kFrames = 20;
    for (int i = 0; i < kFrames; ++i) frame(i % 2 ? zoom : all);
    qInfo("1,024-rank timeline (%zu events): %.2f ms per 1600x1000 frame", tl->events.size(),
          static_cast<double>(timer.nsecsElapsed()) * 1e-6 / kFrames);
  }

  void plansModel() {
    auto sc = load_scenario("tiny-ee-pp4");
    QVERIFY(sc.is_ok());
    PlanOptions opt;
    opt.gpus = 4;
    opt.top_k = 8;
    opt.threads = 1;
    auto res = plan(*sc, opt);
    QVERIFY2(res.is_ok(), res.status().to_string().c_str());
    PlansModel m;
    QAbstractItemModelTester tester(&m, QAbstractItemModelTester::FailureReportingMode::QtTest);
    m.setPlans(res->ranked);
    QCOMPARE(m.rowCount(), static_cast<int>(res->ranked.size()));
    QVERIFY(m.rowCount() > 0);
    QSortFilterProxyModel proxy;
    proxy.setSourceModel(&m);
    proxy.setSortRole(Qt::UserRole);
    QAbstractItemModelTester t2(&proxy, QAbstractItemModelTester::FailureReportingMode::QtTest);
    proxy.sort(PlansModel::kMemory, Qt::AscendingOrder);
    for (int row = 1; row < proxy.rowCount(); ++row) {
      QVERIFY(proxy.data(proxy.index(row - 1, PlansModel::kMemory), Qt::UserRole).toDouble() <=
              proxy.data(proxy.index(row, PlansModel::kMemory), Qt::UserRole).toDouble());
    }
    QCOMPARE(m.data(m.index(0, PlansModel::kGpus), Qt::UserRole).toInt(), res->ranked[0].candidate.world_size);
  }

  // [plan-trust] The # column, the time column and the planner agree on one key (kRankingKey); ee-fill
  // rows show both figures; "runs on" names the systems that can launch each plan.
  void plansRankAgreesWithTheTimeColumnAndRunsOnIsMarked() {
    auto sc = load_scenario("tiny-ee-pp4");
    QVERIFY(sc.is_ok());
    PlanOptions opt;
    opt.gpus = 4;
    opt.top_k = 40;
    opt.threads = 1;
    auto res = plan(*sc, opt);
    QVERIFY2(res.is_ok(), res.status().to_string().c_str());
    PlansModel m;
    m.setPlans(res->ranked);
    QVERIFY(m.rowCount() > 1);
    bool saw_zb = false;
    for (int row = 0; row < m.rowCount(); ++row) {
      const PlanEntry& e = res->ranked[static_cast<size_t>(row)];
      QCOMPARE(m.data(m.index(row, PlansModel::kRank), Qt::UserRole).toInt(), row + 1);
      QCOMPARE(m.data(m.index(row, PlansModel::kIteration), Qt::UserRole).toDouble(), e.metrics.ranking_time_s());
      if (row > 0)
        QVERIFY(m.data(m.index(row - 1, PlansModel::kIteration), Qt::UserRole).toDouble() <=
                m.data(m.index(row, PlansModel::kIteration), Qt::UserRole).toDouble());
      const QString shown = m.data(m.index(row, PlansModel::kIteration), Qt::DisplayRole).toString();
      QCOMPARE(shown.contains(QStringLiteral("(iteration ")), e.metrics.backbone_fraction < 1.0);
      const QString on = m.data(m.index(row, PlansModel::kRunsOn), Qt::DisplayRole).toString();
      QVERIFY(on.startsWith(QStringLiteral("eellm")));
      if (e.candidate.schedule == ScheduleKind::kZBH1) {
        saw_zb = true;
        QCOMPARE(on, QStringLiteral("eellm"));
        const std::string why = launch_problem(LaunchTarget::kEELLM, e.candidate);
        QVERIFY(why == "no zb-h1 schedule" || why == "no flag for an uneven layer split");
        QVERIFY(m.data(m.index(row, PlansModel::kRunsOn), Qt::ToolTipRole)
                    .toString()
                    .contains(QStringLiteral("ee-llm: ") + QString::fromStdString(why)));
      }
    }
    QVERIFY(saw_zb);
    QCOMPARE(m.headerData(PlansModel::kIteration, Qt::Horizontal, Qt::DisplayRole).toString(),
             QStringLiteral("s per backbone batch"));
  }
};

QTEST_MAIN(GuiModelsTest)
#include "test_gui_models.moc"
