// The Run panel's Slurm mode: the command it runs (`eellm launch ... --slurm -o job.sbatch`), and
// through the real eellm binary the job script for tiny-ee-pp2 written into the run folder (with
// the scenario beside it) and shown in the log.
#include <QFile>
#include <QFileInfo>
#include <QPlainTextEdit>
#include <QtTest>

#include "gui/run_panel.h"

using eellm::gui::RunPanel;
using eellm::gui::SlurmRequest;

class RunPanelSlurmTest : public QObject {
  Q_OBJECT
 private slots:
  void commandLine() {
    SlurmRequest r;
    r.eellm = QStringLiteral("/bin/eellm");
    r.scenario_path = QStringLiteral("/runs/s.yaml");
    r.script_path = QStringLiteral("/runs/job.sbatch");
    r.launcher = QStringLiteral("mpirun");
    r.time = QStringLiteral("00:10:00");
    QCOMPARE(
        eellm::gui::slurm_command(r).join(QLatin1Char(' ')),
        QStringLiteral("/bin/eellm launch /runs/s.yaml --slurm -o /runs/job.sbatch --launcher mpirun --time 00:10:00"));
    r.steps = 7;
    QVERIFY(eellm::gui::slurm_command(r).join(QLatin1Char(' ')).endsWith(QStringLiteral("--steps 7")));
  }

  void writesAndShowsTheScript() {
    const QString eellm = QStringLiteral(EELLM_BINARY_DIR "/cli/eellm");
    QVERIFY2(QFileInfo::exists(eellm), qPrintable(eellm + " is not built"));
    QFile yaml(QStringLiteral(EELLM_SOURCE_DIR "/scenarios/tiny-ee-pp2.yaml"));
    QVERIFY(yaml.open(QIODevice::ReadOnly));
    RunPanel panel;
    QSignalSpy errors(&panel, &RunPanel::runError);
    panel.setMode(RunPanel::Mode::kSlurm);
    QVERIFY(!panel.start());  // no scenario yet: an error, no process
    QCOMPARE(errors.size(), 1);
    panel.setBinary(eellm);
    panel.setScenario(QString::fromUtf8(yaml.readAll()), QStringLiteral("tiny-ee-pp2"), 2, 300);
    panel.setSteps(5);
    QSignalSpy finished(&panel, &RunPanel::finished);
    QVERIFY(panel.start());
    QTRY_VERIFY_WITH_TIMEOUT(!finished.isEmpty(), 60000);
    const QString log = panel.findChild<QPlainTextEdit*>()->toPlainText();
    QVERIFY2(finished.front().front().toInt() == 0, qPrintable(log));
    const QString script = panel.slurmScript();
    QVERIFY2(script.contains(QStringLiteral("#SBATCH --ntasks-per-node=2\n")), qPrintable(script));
    QVERIFY(script.contains(QStringLiteral("#SBATCH --signal=B:USR1@120\n")));
    QVERIFY(script.contains(QStringLiteral("#SBATCH --time=01:00:00\n")));
    QVERIFY(script.contains(QStringLiteral("srun --mpi=pmix --ntasks=2")));
    QVERIFY(script.contains(QStringLiteral("--steps 5")));
    QVERIFY(log.contains(QStringLiteral("#SBATCH --requeue")));  // shown in the panel's log
    QVERIFY(QFileInfo::exists(panel.runDirectory() + QStringLiteral("/job.sbatch")));
    QVERIFY(QFileInfo::exists(panel.runDirectory() + QStringLiteral("/job.yaml")));
    QVERIFY(panel.statusText().contains(QStringLiteral("sbatch")));
  }
};

QTEST_MAIN(RunPanelSlurmTest)
#include "test_run_panel_slurm.moc"
