// The main window end to end (offscreen): every shipped scenario loads, simulates and renders a
// timeline whose forward blocks can be counted in the image; clicking an op highlights its
// dependencies; validation errors land next to their field; bad files report an error through the
// hook (no modal dialog); exports write readable files; what-if re-simulates; the planner fills
// its table from a worker thread and Cancel ends that thread with the cancelled status; ee-fill's
// fill tokens/s show apart from the backbone's; a run through a stand-in `eellm` feeds the loss
// chart and the measured-trace overlay; a generation through another shows text and --stats.
#include <QDir>
#include <QDoubleSpinBox>
#include <QFile>
#include <QLineEdit>
#include <QPainter>
#include <QPlainTextEdit>
#include <QSpinBox>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTemporaryDir>
#include <QtTest>

#include "gui/compare_panel.h"
#include "gui/exit_ruler.h"
#include "gui/exits_model.h"
#include "gui/main_window.h"
#include "gui/metrics_panel.h"
#include "gui/plans_panel.h"
#include "gui/run_panel.h"
#include "gui/scenario_form.h"
#include "gui/stage_model.h"
#include "gui/timeline_view.h"
#include "sim/cost_report.h"
#include "sim/trace.h"

using namespace eellm;
using namespace eellm::gui;

namespace {

QString scenarios_dir() {
  return QStringLiteral(EELLM_SOURCE_DIR "/scenarios");
}

// Runs of `color` along row y of the image between x0 and x1.
int count_runs(const QImage& img, int y, int x0, int x1, QRgb color) {
  int runs = 0;
  bool in = false;
  for (int x = x0; x < x1; ++x) {
    const bool c = (img.pixel(x, y) & 0xffffff) == (color & 0xffffff);
    if (c && !in) ++runs;
    in = c;
  }
  return runs;
}

struct ErrorSink {
  QStringList titles, messages;
  MainWindow::ErrorHook hook() {
    return [this](const QString& t, const QString& m) {
      titles << t;
      messages << m;
    };
  }
};

}  // namespace

class MainWindowTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

  void everyShippedScenarioRendersItsForwards() {
    const QStringList files = QDir(scenarios_dir()).entryList({QStringLiteral("*.yaml")}, QDir::Files, QDir::Name);
    QVERIFY(files.size() >= 5);
    for (const QString& f : files) {
      MainWindow w;
      ErrorSink errors;
      w.setErrorHook(errors.hook());
      const QString path = scenarios_dir() + QLatin1Char('/') + f;
      QVERIFY2(w.openScenario(path), qPrintable(f + QStringLiteral(": ") + errors.messages.join(QLatin1Char('\n')) +
                                                w.form()->generalErrors()));
      QVERIFY(errors.messages.isEmpty());
      const SimulationResult* r = w.result();
      QVERIFY(r);
      QVERIFY(!w.metrics()->value(QStringLiteral("iteration")).startsWith(QStringLiteral("—")));
      QCOMPARE(w.metrics()->stageModel()->rowCount(), r->layout.pp);
      QCOMPARE(w.memoryCharts()->barCount(), r->layout.pp);
      QCOMPARE(w.memoryCharts()->lineSeriesCount(), r->layout.pp);
      const Timeline& tl = r->engine.timeline;
      // A view from the start in which the shortest forward is 6 px wide (the whole iteration when
      // that fits 12,000 px); its right edge is moved off any forward's first pixels.
      TimeNs shortest = INT64_MAX;
      for (const TimelineEvent& e : tl.events) {
        if (op_class(e) == OpClass::kFwd) shortest = std::min(shortest, e.duration());
      }
      QVERIFY2(shortest > 0 && shortest < INT64_MAX, qPrintable(f));
      const double ns_per_px = static_cast<double>(shortest) / 6.0;
      int plot = std::min(12000, static_cast<int>(std::ceil(static_cast<double>(tl.end_time()) / ns_per_px)) + 2);
      TimeAxis ax;
      auto edge_clear = [&] {
        for (const TimelineEvent& e : tl.events) {
          const double x = ax.to_px(e.t0);
          if (op_class(e) == OpClass::kFwd && x >= plot - 4 && x < plot + 1) return false;
        }
        return true;
      };
      do {
        ax.total = tl.end_time();
        ax.width = plot;
        ax.start = 0;
        ax.span = static_cast<TimeNs>(plot * ns_per_px);
        ax.min_span = 1;
        ax = ax.clamped();
        if (edge_clear()) break;
        plot -= 5;
      } while (plot > 100);
      const int width = TimelineView::kLabelWidth + plot;
      QImage img(width, TimelineView::kHeaderHeight + w.timeline()->lanes().total_height(), QImage::Format_RGB32);
      {
        QPainter p(&img);
        w.timeline()->render(p, img.size(), ax, 0);
      }
      const QRgb fwd = op_color(OpClass::kFwd).rgb();
      for (int rank = 0; rank < r->layout.pp; ++rank) {
        const int lane = w.timeline()->lanes().lane_of(rank, Stream::kCompute);
        QVERIFY(lane >= 0);
        const QRect rect = w.timeline()->laneRect(lane, width);
        int expected = 0;
        for (const TimelineEvent& e : tl.events) {
          expected +=
              e.rank == rank && e.stream == Stream::kCompute && op_class(e) == OpClass::kFwd && ax.to_px(e.t0) < plot;
        }
        const int seen = count_runs(img, rect.top() + 2, rect.left(), rect.right() + 1, fwd);
        QVERIFY2(seen == expected, qPrintable(QStringLiteral("%1 stage %2: %3 forward blocks drawn, %4 forwards")
                                                  .arg(f)
                                                  .arg(rank)
                                                  .arg(seen)
                                                  .arg(expected)));
        QVERIFY(expected > 0);
      }
      // The whole-iteration image has the lanes' height and the requested width.
      const QImage whole = w.timeline()->renderImage(1000);
      QCOMPARE(whole.width(), 1000);
      QCOMPARE(whole.height(), TimelineView::kHeaderHeight + std::max(40, w.timeline()->lanes().total_height()));
    }
  }

  void clickHighlightsDependenciesAndTooltip() {
    MainWindow w;
    w.resize(1400, 900);
    w.show();
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp4")));
    TimelineView* v = w.timeline();
    const Timeline& tl = *v->timeline();
    // Click in the middle of the forward of microbatch 1 on stage 2.
    int32_t target = -1;
    for (size_t i = 0; i < tl.events.size(); ++i) {
      const TimelineEvent& e = tl.events[i];
      if (e.rank == 2 && e.op == InstrKind::kForward && e.microbatch == 1 && !e.exit_part &&
          e.stream == Stream::kCompute) {
        target = static_cast<int32_t>(i);
      }
    }
    QVERIFY(target >= 0);
    const TimelineEvent& e = tl.events[static_cast<size_t>(target)];
    const Lane& lane = v->lanes().lanes()[static_cast<size_t>(v->lanes().lane_of(2, Stream::kCompute))];
    const QPoint at(TimelineView::kLabelWidth + static_cast<int>(v->axis().to_px((e.t0 + e.t1) / 2)),
                    TimelineView::kHeaderHeight + lane.y + lane.height / 2);
    QCOMPARE(v->eventAt(at), target);
    QTest::mouseClick(v->viewport(), Qt::LeftButton, {}, at);
    QCOMPARE(v->selectedEvent(), target);
    QVERIFY(!v->dependencyHighlight().empty());
    QVERIFY(!v->criticalPath().empty());
    const QString tip = v->tooltipText(target);
    QVERIFY(tip.contains(QStringLiteral("microbatch 1")));
    QVERIFY(tip.contains(QStringLiteral("duration")));
    QVERIFY(tip.contains(QStringLiteral("FLOPs")));
    // Clicking a stage's label collapses its communication sub-lanes, clicking again restores them.
    const size_t lanes_before = v->lanes().lanes().size();
    const int c2 = v->lanes().lane_of(2, Stream::kCompute);
    const QPoint label(10, TimelineView::kHeaderHeight + v->lanes().lanes()[static_cast<size_t>(c2)].y + 5);
    QTest::mouseClick(v->viewport(), Qt::LeftButton, {}, label);
    QVERIFY(v->stageCollapsed(2));
    QVERIFY(v->lanes().lanes().size() < lanes_before);
    QCOMPARE(v->lanes().lane_of(2, Stream::kSend), -1);
    QTest::mouseClick(v->viewport(), Qt::LeftButton, {}, label);
    QVERIFY(!v->stageCollapsed(2));
    QCOMPARE(v->lanes().lanes().size(), lanes_before);
    v->setAllStagesCollapsed(true);
    QCOMPARE(v->lanes().lanes().size(), size_t{4});
    v->setAllStagesCollapsed(false);
    // Wheel zoom around the click keeps the time under the cursor.
    const TimeNs before = v->axis().to_time(at.x() - TimelineView::kLabelWidth);
    QWheelEvent wheel(QPointF(at), v->viewport()->mapToGlobal(QPointF(at)), QPoint(), QPoint(0, 240), Qt::NoButton,
                      Qt::NoModifier, Qt::NoScrollPhase, false);
    QApplication::sendEvent(v->viewport(), &wheel);
    QVERIFY(v->axis().span < v->axis().total);
    QVERIFY(std::abs(v->axis().to_time(at.x() - TimelineView::kLabelWidth) - before) <= 2 * v->axis().ns_per_px() + 1);
    // Drag pans to later times.
    const TimeNs start = v->axis().start;
    QTest::mousePress(v->viewport(), Qt::LeftButton, {}, at);
    QMouseEvent move(QEvent::MouseMove, QPointF(at - QPoint(100, 0)),
                     v->viewport()->mapToGlobal(QPointF(at - QPoint(100, 0))), Qt::NoButton, Qt::LeftButton,
                     Qt::NoModifier);
    QApplication::sendEvent(v->viewport(), &move);
    QTest::mouseRelease(v->viewport(), Qt::LeftButton, {}, at - QPoint(100, 0));
    QVERIFY(v->axis().start > start);
  }

  void validationErrorsNextToFields() {
    MainWindow w;
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp4")));
    auto* mbs = qobject_cast<QSpinBox*>(w.form()->editor(QStringLiteral("training.micro_batch_size")));
    QVERIFY(mbs);
    mbs->setValue(7);  // 64 is not a multiple of 7
    QVERIFY(!w.simulateNow());
    QVERIFY2(!w.form()->errorText(QStringLiteral("training.global_batch_size")).isEmpty() ||
                 !w.form()->errorText(QStringLiteral("training.micro_batch_size")).isEmpty(),
             qPrintable(w.form()->generalErrors()));
    mbs->setValue(8);
    QVERIFY(w.simulateNow());
    QVERIFY(w.form()->errorText(QStringLiteral("training.global_batch_size")).isEmpty());
    QVERIFY(w.form()->errorText(QStringLiteral("training.micro_batch_size")).isEmpty());
    // An exit past the last layer is reported at the exits table.
    w.form()->exitsModel()->addExit(40, 0.5);
    QVERIFY(!w.simulateNow());
    QVERIFY(!w.form()->errorText(QStringLiteral("exits")).isEmpty());
  }

  void exitRulerMovesAddsAndRemovesExits() {
    MainWindow w;
    w.resize(1400, 900);
    w.show();
    QVERIFY(w.openScenario(QStringLiteral("ee-llm-7b")));  // 32 layers, pre-exits before 9 and 17
    ExitRuler* ruler = w.form()->exitRuler();
    ruler->resize(32 * 10 + 2 * ExitRuler::kMargin, 54);  // 10 px per layer
    QCOMPARE(ruler->boundaryX(0), double(ExitRuler::kMargin));
    QCOMPARE(ruler->boundaryAt(ruler->boundaryX(20)), 20);
    QCOMPARE(ruler->layerForBoundary(8), 9);  // pre-exit before layer 9 = after 8 layers
    const int y = 20;
    const QPoint from(static_cast<int>(ruler->boundaryX(8)), y);
    QCOMPARE(ruler->exitAt(from.x()), 0);
    // Drag the first exit from boundary 8 to boundary 12: before layer 13.
    QTest::mousePress(ruler, Qt::LeftButton, {}, from);
    const QPoint to(static_cast<int>(ruler->boundaryX(12)), y);
    QMouseEvent move(QEvent::MouseMove, QPointF(to), ruler->mapToGlobal(QPointF(to)), Qt::NoButton, Qt::LeftButton,
                     Qt::NoModifier);
    QApplication::sendEvent(ruler, &move);
    QTest::mouseRelease(ruler, Qt::LeftButton, {}, to);
    QCOMPARE(w.form()->scenario().exits.exit_layer_nums, (std::vector<int>{13, 17}));
    // Double-click an empty boundary adds an exit; right-click removes one.
    QTest::mouseDClick(ruler, Qt::LeftButton, {}, QPoint(static_cast<int>(ruler->boundaryX(24)), y));
    QCOMPARE(w.form()->scenario().exits.exit_layer_nums, (std::vector<int>{13, 17, 25}));
    QCOMPARE(w.form()->scenario().exits.exit_layer_weight.size(), size_t{3});
    QTest::mouseClick(ruler, Qt::RightButton, {}, QPoint(static_cast<int>(ruler->boundaryX(16)), y));
    QCOMPARE(w.form()->scenario().exits.exit_layer_nums, (std::vector<int>{13, 25}));
    QVERIFY(w.simulateNow());
    QCOMPARE(w.result()->layout.exits.size(), size_t{2});
  }

  void editsResimulateAndKeepTheZoom() {
    MainWindow w;
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp4")));
    TimelineView* v = w.timeline();
    v->setAxis(v->axis().showing(0, v->axis().total / 10));
    const TimeNs span = v->axis().span;
    auto* gbs = qobject_cast<QSpinBox*>(w.form()->editor(QStringLiteral("training.global_batch_size")));
    QVERIFY(gbs);
    gbs->setValue(128);  // 16 microbatches instead of 8; simulated after the debounce
    QTRY_COMPARE_WITH_TIMEOUT(w.result()->layout.num_microbatches, 16, 10000);
    QCOMPARE(v->axis().span, span);
    QCOMPARE(v->axis().start, TimeNs{0});
    QVERIFY(v->axis().total > span * 10);  // the longer iteration, same zoomed window
  }

  void badFilesReportErrors() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    MainWindow w;
    ErrorSink errors;
    w.setErrorHook(errors.hook());
    const QString yaml = dir.filePath(QStringLiteral("broken.yaml"));
    {
      QFile f(yaml);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write("name: broken\nmodel:\n  num_layers: [1, 2\n  hidden_size: 4\n");
    }
    QVERIFY(!w.openScenario(yaml));
    QCOMPARE(errors.messages.size(), 1);
    QVERIFY2(errors.messages[0].contains(QStringLiteral("broken.yaml")), qPrintable(errors.messages[0]));
    QVERIFY(!w.result());
    QVERIFY(!w.openScenario(dir.filePath(QStringLiteral("missing.yaml"))));
    QCOMPARE(errors.messages.size(), 2);
    const QString trace = dir.filePath(QStringLiteral("bad.json"));
    {
      QFile f(trace);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write("{\"traceEvents\": [ {\"ph\": \"X\", \"name\": ");
    }
    QVERIFY(!w.openTrace(trace));
    QCOMPARE(errors.messages.size(), 3);
    QVERIFY2(errors.messages[2].contains(QStringLiteral("bad.json")), qPrintable(errors.messages[2]));
    QCOMPARE(w.lastError(), errors.messages[2]);
    // A trace from another scenario (4 stages) does not overlay a 2-stage prediction.
    MainWindow other;
    QVERIFY(other.openScenario(QStringLiteral("tiny-ee-pp4")));
    const QString pp4 = dir.filePath(QStringLiteral("pp4.json"));
    QVERIFY(other.exportTraceJson(pp4));
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp2")));
    QVERIFY(w.overlayMeasuredTrace(pp4));  // file is fine ...
    QCOMPARE(errors.messages.size(), 4);   // ... but it belongs to another scenario
    QVERIFY2(errors.messages[3].contains(QStringLiteral("4 pipeline ranks")), qPrintable(errors.messages[3]));
    QVERIFY(!w.timeline()->overlay());
    // The trace opens on its own, though.
    QVERIFY(w.openTrace(pp4));
    QCOMPARE(w.timeline()->lanes().lane_of(3, Stream::kCompute) >= 0, true);
  }

  void exportsAndOverlay() {
    QTemporaryDir dir;
    MainWindow w;
    ErrorSink errors;
    w.setErrorHook(errors.hook());
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp2")));
    const QString png = dir.filePath(QStringLiteral("t.png")), svg = dir.filePath(QStringLiteral("t.svg")),
                  csv = dir.filePath(QStringLiteral("m.csv")), json = dir.filePath(QStringLiteral("t.json"));
    QVERIFY(w.exportTimelinePng(png, 1200));
    QVERIFY(w.exportTimelineSvg(svg, 1200));
    QVERIFY(w.exportMetricsCsv(csv));
    QVERIFY(w.exportTraceJson(json));
    QImage img(png);
    QCOMPARE(img.width(), 1200);
    QFile s(svg);
    QVERIFY(s.open(QIODevice::ReadOnly));
    QVERIFY(s.readAll().contains("<svg"));
    QFile c(csv);
    QVERIFY(c.open(QIODevice::ReadOnly));
    QVERIFY(c.readAll().count('\n') >= 3);  // header + 2 stages
    auto back = read_trace(json.toStdString());
    QVERIFY(back.is_ok());
    QCOMPARE(back->events.size(), w.result()->engine.timeline.events.size());
    // Overlaying the prediction's own trace: per-op errors of zero.
    QVERIFY(w.overlayMeasuredTrace(json));
    QVERIFY(errors.messages.isEmpty());
    QVERIFY(w.timeline()->overlay());
    QVERIFY(w.opErrors()->rowCount() > 1);
    QCOMPARE(w.opErrors()->comparison().iteration_relative_error, 0.0);
    // [plan-trust] The overlay belongs to its scenario: opening another clears it and says so.
    const QString with_overlay = w.result()->scenario.name.c_str();
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee")));
    QVERIFY(!w.timeline()->overlay());
    QVERIFY(
        w.statusBar()->currentMessage().contains(QStringLiteral("measured overlay of %1 cleared").arg(with_overlay)));
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp2")));
    QVERIFY(w.overlayMeasuredTrace(json));
    QVERIFY(w.timeline()->tooltipText(0).contains(QStringLiteral("measured")));
    QVERIFY(!w.exportTimelinePng(dir.filePath(QStringLiteral("no/such/dir/x.png"))));
    QCOMPARE(errors.messages.size(), 1);
  }

  // [plan-trust] A follows the current scenario (after "Use this plan" the what-if compares against the
  // plan in use, not the scenario as first loaded) until the user pins it; the label says which.
  void compareAFollowsTheCurrentScenarioUntilPinned() {
    MainWindow w;
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp4")));
    QCOMPARE(w.compare()->slotName(0), QStringLiteral("A: tiny-ee-pp4 (current scenario)"));
    const Scenario first = w.result()->scenario;
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp2")));
    QCOMPARE(w.compare()->slot(0), w.result());
    QCOMPARE(w.compare()->slotName(0), QStringLiteral("A: tiny-ee-pp2 (current scenario)"));
    emit w.plans()->pinScenario(0, first, QStringLiteral("tiny-ee-pp4"));
    QCOMPARE(w.compare()->slotName(0), QStringLiteral("A: tiny-ee-pp4 (pinned)"));
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee")));
    QCOMPARE(w.compare()->slotName(0), QStringLiteral("A: tiny-ee-pp4 (pinned)"));  // pinned A stays
    QVERIFY(w.compare()->slot(0) != w.result());
  }

  void whatIfResimulates() {
    MainWindow w;
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp4")));
    QCOMPARE(w.whatIf()->microbatchesBox()->value(), w.result()->layout.num_microbatches);
    w.whatIf()->microbatchesBox()->setValue(16);
    const SimulationResult* b = w.compare()->slot(1);
    QVERIFY(b);
    QCOMPARE(b->layout.num_microbatches, 16);
    QVERIFY(b->summary.iteration_time_s > w.result()->summary.iteration_time_s);
    QVERIFY(w.compare()->cell(0, 2).startsWith(QLatin1Char('+')));
    w.whatIf()->exitsBox()->setValue(0);
    QVERIFY(w.compare()->slot(1)->layout.exits.empty());
    // Both compare views span the longer iteration.
    QCOMPARE(w.compare()->view(0)->axis().total, w.compare()->view(1)->axis().total);
  }

  void plannerFillsTheTable() {
    MainWindow w;
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp4")));
    QSignalSpy done(w.plans(), &PlansPanel::planningFinished);
    QVERIFY(w.plans()->startPlanning());
    QVERIFY(w.plans()->planning());
    QVERIFY(!w.plans()->startPlanning());  // one search at a time
    QTRY_VERIFY_WITH_TIMEOUT(!done.isEmpty(), 300000);
    QVERIFY2(done.front().front().toBool(), qPrintable(w.plans()->statusText()));
    QVERIFY(w.plans()->planCount() > 0);
    // Using a plan loads it into the form and simulates it.
    const Scenario s = w.plans()->planScenario(0);
    QVERIFY(s.parallel.pipeline_model_parallel_size >= 1);
    QCOMPARE(w.plans()->lastOutcome(), QStringLiteral("ok"));
    QVERIFY(!w.plans()->lastCancelled());
    const int plans_before = w.plans()->planCount();
    // Cancel: a second search is abandoned at once in the panel, and the planner thread itself
    // stops at its next poll and returns the cancelled status (not a finished search).
    QVERIFY(w.plans()->startPlanning());
    QCOMPARE(w.plans()->threadsInFlight(), 1);
    w.plans()->cancel();
    QVERIFY(!w.plans()->planning());
    QCOMPARE(w.plans()->statusText(), QStringLiteral("cancelled"));
    QTRY_COMPARE_WITH_TIMEOUT(w.plans()->threadsInFlight(), 0, 300000);
    QVERIFY2(w.plans()->lastCancelled(), qPrintable(w.plans()->lastOutcome()));  // StatusCode::kCancelled
    QVERIFY2(w.plans()->lastOutcome().startsWith(QStringLiteral("cancelled: the search was stopped")),
             qPrintable(w.plans()->lastOutcome()));
    QCOMPARE(w.plans()->planCount(), plans_before);  // the finished search's table is kept
  }

  void runThroughTheCommandLine() {
#ifdef Q_OS_UNIX
    QTemporaryDir dir;
    // The prediction's own trace plays the measured one.
    MainWindow w;
    ErrorSink errors;
    w.setErrorHook(errors.hook());
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp2")));
    const QString measured = dir.filePath(QStringLiteral("measured-src.json"));
    QVERIFY(w.exportTraceJson(measured));
    // A stand-in for `eellm`: answers --help with --trace, writes three metric lines and the trace.
    const QString fake = dir.filePath(QStringLiteral("eellm"));
    {
      QFile f(fake);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(QStringLiteral("#!/bin/sh\n"
                             "case \"$*\" in *--help*) echo '  --metrics  --trace'; exit 0;; esac\n"
                             "shift 2\n"
                             "while [ $# -gt 0 ]; do case $1 in --metrics) m=$2; shift 2;; "
                             "--trace) t=$2; shift 2;; *) shift;; esac; done\n"
                             "for i in 1 2 3; do echo "
                             "\"{\\\"step\\\":$i,\\\"loss\\\":5.$i,\\\"final\\\":5.0,\\\"exits\\\":"
                             "[6.$i,5.$i]}\" >> $m; done\n"
                             "cp %1 $t\necho done\n")
                  .arg(measured)
                  .toUtf8());
    }
    QFile::setPermissions(fake, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
    RunPanel* run = w.runPanel();
    run->setBinary(fake);
    run->setProcesses(1);  // plain `eellm train`, no mpirun
    QSignalSpy finished(run, &RunPanel::finished);
    QVERIFY(run->start());
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 30000);
    QVERIFY2(finished.front().front().toInt() == 0, qPrintable(run->findChild<QPlainTextEdit*>()->toPlainText()));
    QCOMPARE(run->metrics().records().size(), size_t{3});
    QCOMPARE(run->metrics().records()[2].exits.size(), size_t{2});
    QVERIFY2(errors.messages.isEmpty(), qPrintable(errors.messages.join(QLatin1Char('\n'))));
    QVERIFY(w.timeline()->overlay());
    QVERIFY(w.opErrors()->rowCount() > 1);
    // A binary that cannot start is an error, not a crash.
    run->setBinary(dir.filePath(QStringLiteral("no-such-eellm")));
    QSignalSpy failed(run, &RunPanel::runError);
    run->start();
    QTRY_VERIFY_WITH_TIMEOUT(!failed.isEmpty(), 30000);
#endif
  }

  // Generate mode through a stand-in `eellm generate`: the arguments reach it as given, its text
  // and --stats lines land in the log, --stats-out is parsed into the status line, and the child
  // sees OMPI_ALLOW_RUN_AS_ROOT exactly when this test runs as root.
  void generateThroughTheCommandLine() {
#ifdef Q_OS_UNIX
    QTemporaryDir dir;
    const QString fake = dir.filePath(QStringLiteral("eellm"));
    {
      QFile f(fake);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(R"(#!/bin/sh
echo "args: $*"
echo "ompi=$OMPI_ALLOW_RUN_AS_ROOT/$OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"
while [ $# -gt 0 ]; do case $1 in --stats-out) s=$2; shift 2;; *) shift;; esac; done
echo 'Once upon a time there was a pipeline.'
echo 'tokens 8, decode 0.01 s, 800.00 tokens/s (prefill 0.00 s)'
printf '{"exit_rates": [0.5, 0.125, 0.375], "exit_layers": [2, 3], "tokens": 8, "tokens_per_s": 800.0, "layers_per_token": 2.9}' > "$s"
)");
    }
    QFile::setPermissions(fake, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
    MainWindow w;
    ErrorSink errors;
    w.setErrorHook(errors.hook());
    RunPanel* run = w.runPanel();
    run->setBinary(fake);
    run->setProcesses(1);
    run->setMode(RunPanel::Mode::kGenerate);
    GenerateRequest g;
    g.checkpoint = dir.filePath(QStringLiteral("ckpt"));
    g.prompt = QStringLiteral("Once upon a time");
    g.method = QStringLiteral("speculative");
    g.threshold = QStringLiteral("0.8");
    g.max_new_tokens = 8;
    run->setGenerate(g);
    QSignalSpy finished(run, &RunPanel::finished);
    QVERIFY(run->start());
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 30000);
    QCOMPARE(finished.front().front().toInt(), 0);
    const QString log = run->logText();
    QVERIFY2(log.contains(QStringLiteral("args: generate ") + g.checkpoint +
                          QStringLiteral(" --prompt Once upon a time --method speculative --threshold 0.8 "
                                         "--max-new-tokens 8 --stats --stats-out")),
             qPrintable(log));
    QVERIFY(log.contains(QStringLiteral("Once upon a time there was a pipeline.")));
    QVERIFY(log.contains(QStringLiteral("800.00 tokens/s")));
    QVERIFY(log.contains(running_as_root() ? QStringLiteral("ompi=1/1") : QStringLiteral("ompi=/")));
    QVERIFY2(run->generateStats().ok, qPrintable(run->generateStats().error));
    QCOMPARE(run->generateStats().exit_rates, (std::vector<double>{0.5, 0.125, 0.375}));
    QVERIFY2(run->statusText().contains(QStringLiteral("exits: exit@2 50.0 %, exit@3 12.5 %, final 37.5 %")),
             qPrintable(run->statusText()));
    QVERIFY2(errors.messages.isEmpty(), qPrintable(errors.messages.join(QLatin1Char('\n'))));
    // A bad threshold is refused before anything starts, naming the field.
    g.threshold = QStringLiteral("2");
    run->setGenerate(g);
    QSignalSpy failed(run, &RunPanel::runError);
    QVERIFY(!run->start());
    QCOMPARE(failed.size(), 1);
    QVERIFY(failed.front().front().toString().contains(QStringLiteral("threshold (2)")));
#endif
  }

  // EE bubble filling: fill tokens/s shown apart from the backbone throughput.
  void metricsShowFillTokensApart() {
    QTemporaryDir dir;
    QFile src(scenarios_dir() + QStringLiteral("/tiny-ee-pp4.yaml"));
    QVERIFY(src.open(QIODevice::ReadOnly));
    QString yaml = QString::fromUtf8(src.readAll());
    QVERIFY(yaml.contains(QStringLiteral("schedule: ee-1f1b")));
    MainWindow w;
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee-pp4")));
    QVERIFY(w.metrics()->value(QStringLiteral("fill_tokens_per_s")).startsWith(QStringLiteral("none")));
    yaml.replace(QStringLiteral("schedule: ee-1f1b"), QStringLiteral("schedule: ee-fill"));
    const QString path = dir.filePath(QStringLiteral("tiny-ee-fill.yaml"));
    QFile out(path);
    QVERIFY(out.open(QIODevice::WriteOnly));
    out.write(yaml.toUtf8());
    out.close();
    QVERIFY(w.openScenario(path));
    const SimulationSummary& s = w.result()->summary;
    QVERIFY(s.fill_tokens_per_s > 0);
    QVERIFY(s.num_backbone_microbatches < s.num_microbatches);
    const QString fill = w.metrics()->value(QStringLiteral("fill_tokens_per_s"));
    QVERIFY2(fill.startsWith(QString::number(s.fill_tokens_per_s, 'f', 0) + QStringLiteral(" tokens/s in ") +
                             QString::number(s.num_microbatches - s.num_backbone_microbatches) +
                             QStringLiteral(" of ") + QString::number(s.num_microbatches)),
             qPrintable(fill));
    QVERIFY(w.metrics()
                ->value(QStringLiteral("tokens_per_s"))
                .startsWith(QString::number(s.tokens_per_s, 'f', 0) + QStringLiteral(" backbone tokens/s")));
  }

  // The what-if cost block follows the form's price, MTBF and checkpoint bandwidth live.
  void costFieldsEditLive() {
    MainWindow w;
    QVERIFY(w.openScenario(QStringLiteral("ee-llm-1.3b")));
    auto cost_usd = [&w] {
      auto c = training_cost_of(*w.result());
      return c.is_ok() ? c->cost_usd : -1.0;
    };
    const double before = cost_usd();
    QVERIFY(before > 0);
    QVERIFY2(
        w.metrics()->value(QStringLiteral("cost")).startsWith(QString::number(before, 'f', 0) + QStringLiteral(" USD")),
        qPrintable(w.metrics()->value(QStringLiteral("cost"))));
    auto spin = [&w](const char* field) {
      return qobject_cast<QDoubleSpinBox*>(w.form()->editor(QString::fromLatin1(field)));
    };
    QDoubleSpinBox* price = spin("cluster.cost.price_per_gpu_hour_usd");
    QDoubleSpinBox* mtbf = spin("cluster.cost.node_mtbf_hours");
    QDoubleSpinBox* bw = spin("cluster.cost.checkpoint_write_GBps_per_node");
    QVERIFY(price && mtbf && bw);
    QCOMPARE(price->value(), 1.79);  // a100-80gb-2x8's cost block
    price->setValue(3.58);
    QVERIFY(w.simulateNow());
    QCOMPARE(cost_usd(), 2 * before);
    QVERIFY(w.metrics()->value(QStringLiteral("cost")).contains(QStringLiteral("at 3.58 USD")));
    QVERIFY(w.metrics()->value(QStringLiteral("failures")).contains(QStringLiteral("expected interruptions")));
    mtbf->setValue(0);
    bw->setValue(0);
    QVERIFY(w.simulateNow());
    QVERIFY(w.metrics()->value(QStringLiteral("failures")).startsWith(QStringLiteral("not modelled")));
    QVERIFY(w.metrics()->value(QStringLiteral("checkpoints")).startsWith(QStringLiteral("not modelled")));
    QVERIFY(w.metrics()->value(QStringLiteral("time_to_train")).contains(QStringLiteral("goodput 100.0%")));
  }
};

QTEST_MAIN(MainWindowTest)
#include "test_main_window.moc"
