// [plan-trust] items 11, 12 and 14 in the GUI (offscreen): generate with a one-process method never
// runs under mpirun; the logged command is shell-quoted; a stale error leaves the status bar after a
// good run; "Predicted vs measured" says why it is empty; one unit per table column, FLOP rates that
// never read 0.0, round chart ticks; the Help menu, Open in scenarios/, the unsaved-changes prompt,
// the Megatron/EE-LLM export, a fixed-width run log, "Run this plan" warning about this machine, and
// the window at 1280×720 with every stage reachable at PP 16.
#include <QChart>
#include <QChartView>
#include <QFile>
#include <QFontInfo>
#include <QMenuBar>
#include <QPlainTextEdit>
#include <QScrollBar>
#include <QSpinBox>
#include <QStandardPaths>
#include <QStatusBar>
#include <QTableView>
#include <QTemporaryDir>
#include <QThread>
#include <QValueAxis>
#include <QtTest>
#include <cmath>

#include "gui/main_window.h"
#include "gui/metrics_panel.h"
#include "gui/run_panel.h"
#include "gui/scenario_form.h"
#include "gui/stage_model.h"
#include "gui/timeline_view.h"
#include "model/scenario_io.h"

using namespace eellm;
using namespace eellm::gui;

namespace {

QString scenario_file(const char* name) {
  return QStringLiteral(EELLM_SOURCE_DIR "/scenarios/%1.yaml").arg(QLatin1String(name));
}

// A stand-in `eellm` (shell script) in dir: `body` runs after the --help answer (no --trace).
QString stand_in(const QTemporaryDir& dir, const QString& name, const QString& body) {
  const QString path = dir.filePath(name);
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly)) return {};
  f.write((QStringLiteral("#!/bin/sh\ncase \"$*\" in *--help*) echo '  --metrics'; exit 0;; esac\n") + body).toUtf8());
  f.close();
  QFile::setPermissions(path, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
  return path;
}

// Is the step 1, 2 or 5 × 10^k?
bool round_step(double step) {
  if (!(step > 0)) return false;
  const double m = step / std::pow(10.0, std::floor(std::log10(step) + 1e-9));
  return std::abs(m - 1) < 1e-6 || std::abs(m - 2) < 1e-6 || std::abs(m - 5) < 1e-6;
}

}  // namespace

class GuiTrustTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

  void generateOneProcessMethodsNeverUnderMpirun() {
    GenerateRequest g;
    g.checkpoint = QStringLiteral("ckpt");
    g.prompt = QStringLiteral("hi");
    g.processes = 2;
    for (const char* m : {"recompute", "full", "speculative"}) {
      g.method = QLatin1String(m);
      QVERIFY(!generate_uses_mpirun(g));
      QCOMPARE(generate_command(g).front(), g.eellm);
    }
    g.method = QStringLiteral("pipeline");
    QVERIFY(generate_uses_mpirun(g));
    QCOMPARE(generate_command(g).mid(0, 3), (QStringList{g.mpirun, QStringLiteral("-np"), QStringLiteral("2")}));
  }

  void loggedCommandIsShellQuoted() {
    QCOMPARE(shell_join({QStringLiteral("eellm"), QStringLiteral("generate"), QStringLiteral("/tmp/a b"),
                         QStringLiteral("--prompt"), QStringLiteral("it's $HOME"), QStringLiteral("--threshold"),
                         QStringLiteral("0.8"), QString()}),
             QStringLiteral("eellm generate '/tmp/a b' --prompt 'it'\\''s $HOME' --threshold 0.8 ''"));
  }

  // A failed run leaves its error in the status bar; the next good run replaces it, and a
  // single-process run says why "Predicted vs measured" is empty.
  void staleErrorClearedAndEmptyComparisonExplained() {
    QTemporaryDir dir;
    MainWindow w;
    QStringList errors;
    w.setErrorHook([&errors](const QString&, const QString& m) { errors << m; });
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee")));
    QVERIFY(w.measuredNote().contains(QStringLiteral("Nothing measured yet")));
    RunPanel* run = w.runPanel();
    run->setProcesses(1);
    run->setBinary(stand_in(dir, QStringLiteral("bad"), QStringLiteral("echo broken; exit 3\n")));
    QSignalSpy finished(run, &RunPanel::finished);
    QVERIFY(run->start());
    QTRY_VERIFY_WITH_TIMEOUT(finished.size() == 1, 30000);
    QVERIFY(w.statusBar()->currentMessage().contains(QStringLiteral("exit code 3")));
    run->setBinary(stand_in(dir, QStringLiteral("good"),
                            QStringLiteral("shift 2\nwhile [ $# -gt 0 ]; do case $1 in --metrics) m=$2; shift 2;; "
                                           "*) shift;; esac; done\n"
                                           "echo '{\"step\":1,\"loss\":5,\"final\":5,\"exits\":[6,5]}' > $m\n")));
    QVERIFY(run->start());
    QTRY_VERIFY_WITH_TIMEOUT(finished.size() == 2, 30000);
    QCOMPARE(finished.back().front().toInt(), 0);
    QVERIFY2(!w.statusBar()->currentMessage().contains(QStringLiteral("exit code")),
             qPrintable(w.statusBar()->currentMessage()));
    QVERIFY(w.statusBar()->currentMessage().contains(QStringLiteral("finished")));
    QVERIFY2(w.measuredNote().contains(QStringLiteral("cannot record a trace")), qPrintable(w.measuredNote()));
    QCOMPARE(w.opErrors()->rowCount(), 0);
    // The loss chart names the exits as the CLI does (exit@L) and steps along whole numbers.
    auto* chart = run->findChild<QChartView*>()->chart();
    QCOMPARE(chart->series().front()->name(), QStringLiteral("exit@2"));
    auto* x = qobject_cast<QValueAxis*>(chart->axes(Qt::Horizontal).front());
    QVERIFY(x);
    QCOMPARE(x->labelFormat(), QStringLiteral("%.0f"));
    QVERIFY(std::abs((x->max() - x->min()) / (x->tickCount() - 1) -
                     std::round((x->max() - x->min()) / (x->tickCount() - 1))) < 1e-9);
  }

  void runLogIsFixedWidthAndRunWarnsAboutThisMachine() {
    QVERIFY(machine_shortfall(1, 0, 4, 0).isEmpty());
    QVERIFY(machine_shortfall(16, 16, 32, 0).contains(QStringLiteral("needs 16 GPUs and this machine has 0")));
    QVERIFY(machine_shortfall(8, 0, 2, 0).contains(QStringLiteral("8 ranks on 2 CPU cores")));
    QTemporaryDir dir;
    MainWindow w;
    w.setErrorHook([](const QString&, const QString&) {});
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee")));
    RunPanel* run = w.runPanel();
    QVERIFY(QFontInfo(run->findChild<QPlainTextEdit*>()->font()).fixedPitch());
    const int ranks = QThread::idealThreadCount() + 1;
    run->setProcesses(ranks);
    run->setBinary(stand_in(dir, QStringLiteral("eellm"), QStringLiteral("exit 0\n")));
    QSignalSpy finished(run, &RunPanel::finished);
    QVERIFY(run->start());
    QVERIFY2(run->logText().contains(QStringLiteral("warning: This plan may not run here: %1 ranks on").arg(ranks)),
             qPrintable(run->logText()));
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 30000);
  }

  // One unit per column (stage 0 does no exit work: 0.000 s beside 3.661 s), the FLOP rate in a unit
  // that does not read 0.0, the bubble parts named as in the CLI, and round memory-chart ticks.
  void unitsAndTicks() {
    MainWindow w;
    QVERIFY(w.openScenario(scenario_file("ee-llm-7b")));
    StageModel stages;
    stages.setSummary(w.result()->summary, 80);
    QCOMPARE(stages.data(stages.index(0, StageModel::kExitBusy), Qt::DisplayRole).toString(),
             QStringLiteral("0.000 s"));
    QVERIFY(
        stages.data(stages.index(1, StageModel::kExitBusy), Qt::DisplayRole).toString().endsWith(QStringLiteral(" s")));
    QCOMPARE(stages.headerData(StageModel::kBubbleDependency, Qt::Horizontal, Qt::DisplayRole).toString(),
             QStringLiteral("bubble: fill/drain"));
    QVERIFY(w.metrics()->value(QStringLiteral("bubble")).contains(QStringLiteral("exit work")));
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee")));
    const QString rate = w.metrics()->value(QStringLiteral("tokens_per_s"));
    QVERIFY2(rate.contains(QStringLiteral("GFLOP/s per GPU")) && !rate.contains(QStringLiteral("0.0 TFLOP")),
             qPrintable(rate));
    for (QChartView* v : w.memoryCharts()->findChildren<QChartView*>())
      for (QAbstractAxis* a : v->chart()->axes()) {
        auto* va = qobject_cast<QValueAxis*>(a);
        if (!va) continue;
        const double step = va->tickType() == QValueAxis::TicksDynamic
                                ? va->tickInterval()
                                : (va->max() - va->min()) / (va->tickCount() - 1);
        QVERIFY2(round_step(step), qPrintable(QStringLiteral("%1: %2 to %3 in %4 ticks")
                                                  .arg(va->titleText())
                                                  .arg(va->min())
                                                  .arg(va->max())
                                                  .arg(va->tickCount())));
      }
  }

  void helpMenuOpenDirectoryAndExport() {
    QTemporaryDir dir;
    MainWindow w;
    QStringList menus;
    for (QAction* a : w.menuBar()->actions()) menus << a->text();
    QVERIFY2(menus.contains(QStringLiteral("&Help")), qPrintable(menus.join(QLatin1Char(','))));
    QMenu* help = w.menuBar()->actions().back()->menu();
    QStringList items;
    for (QAction* a : help->actions()) items << a->text();
    QVERIFY2(items.contains(QStringLiteral("&About eellm")) && items.contains(QStringLiteral("&Keyboard shortcuts")),
             qPrintable(items.join(QLatin1Char(','))));
    QVERIFY(w.shortcutsText().contains(QKeySequence(QKeySequence::Open).toString(QKeySequence::NativeText)));
    QVERIFY(w.aboutText().contains(QStringLiteral("docs/gui.md")));
    QCOMPARE(w.openDirectory(), QString::fromStdString(scenarios_dir()));  // Open starts in scenarios/
    QVERIFY(w.openScenario(scenario_file("ee-llm-7b")));
    QCOMPARE(QDir(w.openDirectory()).canonicalPath(),
             QDir(QStringLiteral(EELLM_SOURCE_DIR "/scenarios")).canonicalPath());
    const QString sh = dir.filePath(QStringLiteral("megatron.sh"));
    QVERIFY(w.exportMegatronCommand(sh));
    QFile f(sh);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(f.readAll());
    QVERIFY2(text.contains(QStringLiteral("--exit-layer-nums 9 17")) && text.startsWith(QStringLiteral("#!/bin/bash")),
             qPrintable(text));
  }

  void unsavedChangesPrompt() {
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("s.yaml"));
    QVERIFY(QFile::copy(scenario_file("tiny-ee"), path));
    MainWindow w;
    QVERIFY(w.openScenario(path));
    QVERIFY(!w.isModified());
    QStringList asked;
    QMessageBox::StandardButton answer = QMessageBox::Cancel;
    w.setConfirmHook([&](const QString& q) {
      asked << q;
      return answer;
    });
    w.show();
    QVERIFY(w.close());  // nothing edited: no question
    QVERIFY(asked.isEmpty());
    w.show();
    auto* spin = w.form()->findChild<QSpinBox*>();
    QVERIFY(spin);
    spin->setValue(spin->value() + 1 <= spin->maximum() ? spin->value() + 1 : spin->value() - 1);
    QVERIFY(w.isModified());
    QVERIFY(!w.close());  // Cancel keeps the window
    QCOMPARE(asked.size(), 1);
    QVERIFY(w.isVisible());
    answer = QMessageBox::Save;  // Save writes the file it came from
    QVERIFY(w.close());
    QVERIFY(!w.isModified());
    auto back = load_scenario(path.toStdString());
    QVERIFY(back.is_ok());
  }

  // 1280×720: the window's layout fits (nothing forced past the edge) and at PP 16 every stage can be
  // scrolled to in the timeline and the per-stage table.
  void smallWindowReachesEveryStage() {
    QTemporaryDir dir;
    QFile src(scenario_file("ee-llm-7b"));
    QVERIFY(src.open(QIODevice::ReadOnly));
    QString yaml = QString::fromUtf8(src.readAll());
    yaml.replace(QStringLiteral("pipeline_model_parallel_size: 4"), QStringLiteral("pipeline_model_parallel_size: 16"));
    const QString path = dir.filePath(QStringLiteral("pp16.yaml"));
    QFile out(path);
    QVERIFY(out.open(QIODevice::WriteOnly));
    out.write(yaml.toUtf8());
    out.close();
    MainWindow w;
    w.setErrorHook([](const QString&, const QString&) {});
    for (const QSize size : {QSize(1280, 720), QSize(1600, 1000)}) {
      QVERIFY2(w.minimumSizeHint().width() <= size.width() && w.minimumSizeHint().height() <= size.height(),
               qPrintable(
                   QStringLiteral("minimum %1x%2").arg(w.minimumSizeHint().width()).arg(w.minimumSizeHint().height())));
    }
    w.resize(1280, 720);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    QVERIFY(w.openScenario(path));
    QCOMPARE(w.result()->layout.pp, 16);
    TimelineView* tl = w.timeline();
    QVERIFY(tl->verticalScrollBar()->maximum() > 0);  // lanes below the fold are reachable
    tl->verticalScrollBar()->setValue(tl->verticalScrollBar()->maximum());
    QCOMPARE(tl->verticalScrollBar()->value(), tl->verticalScrollBar()->maximum());
    QCOMPARE(w.metrics()->findChild<QTableView*>()->model()->rowCount(), 16);
  }
};

QTEST_MAIN(GuiTrustTest)
#include "test_gui_trust.moc"
