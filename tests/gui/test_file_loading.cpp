// [reliability] The GUI's file loading under hostile files (offscreen): scenarios whose products
// overflow or whose values are beyond the bounds open with those fields marked (the real value
// shown, never clamped; Simulate, Plan and Run disabled until fixed); 100,000 keys, a trace with
// pid 10^8 and a reader that throws are errors through the hook, and the window keeps running.
#include <QAction>
#include <QComboBox>
#include <QFile>
#include <QSpinBox>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>
#include <cstdlib>

#include "gui/main_window.h"
#include "gui/plans_panel.h"
#include "gui/run_panel.h"
#include "gui/scenario_form.h"

using namespace eellm::gui;

namespace {

QString tiny_with(const QString& from, const QString& to) {
  QFile f(QStringLiteral(EELLM_SOURCE_DIR "/scenarios/tiny-ee.yaml"));
  if (!f.open(QIODevice::ReadOnly)) return {};
  QString text = QString::fromUtf8(f.readAll());
  text.replace(from, to);
  return text;
}

bool write(const QString& path, const QByteArray& bytes) {
  QFile f(path);
  return f.open(QIODevice::WriteOnly) && f.write(bytes) == bytes.size();
}

}  // namespace

class FileLoadingTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

  // [reliability] fields, not files: a file with invalid values opens with the offending fields
  // marked (red border, the message as tooltip and under the field, the list at the top), the value
  // shown as written (never clamped), and Simulate, Plan and Run disabled until it is fixed.
  void invalidValuesAreShownInTheirFields() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const struct {
      const char* file;
      QString yaml;
      const char* field;
      const char* expect;
    } cases[] = {
        {"tp_pp.yaml",
         tiny_with(QStringLiteral("tensor_model_parallel_size: 1\n  pipeline_model_parallel_size: 1"),
                   QStringLiteral("tensor_model_parallel_size: 65536\n  pipeline_model_parallel_size: 65536")),
         "parallel.tensor_model_parallel_size", "(65536 × 65536) is larger than 1048576"},
        {"vocab.yaml", tiny_with(QStringLiteral("vocab_size: 256 "), QStringLiteral("vocab_size: 2147483647 ")),
         "model.vocab_size", "model.vocab_size (2147483647) is larger than 16777216"},
        {"batch.yaml",
         tiny_with(QStringLiteral("global_batch_size: 32"), QStringLiteral("global_batch_size: 1073741824")),
         "training.global_batch_size", "training.global_batch_size (1073741824)"},
        {"negative.yaml", tiny_with(QStringLiteral("num_layers: 6"), QStringLiteral("num_layers: -3")),
         "model.num_layers", "model.num_layers (-3) must be positive"},
    };
    for (const auto& c : cases) {
      QVERIFY(!c.yaml.isEmpty());
      const QString path = dir.filePath(QString::fromLatin1(c.file));
      QVERIFY(write(path, c.yaml.toUtf8()));
      MainWindow w;
      QStringList errors;
      w.setErrorHook([&errors](const QString&, const QString& m) { errors << m; });
      QVERIFY(w.openScenario(path));  // opened, not refused
      QVERIFY2(errors.isEmpty(), qPrintable(errors.join(QLatin1Char('\n'))));
      QVERIFY(!w.scenarioValid());
      QVERIFY(!w.result());
      const QString field = QString::fromLatin1(c.field);
      QVERIFY2(w.form()->errorText(field).contains(QString::fromUtf8(c.expect)), qPrintable(w.form()->problems()));
      QVERIFY2(w.form()->errorSummary().contains(QString::fromUtf8(c.expect)), qPrintable(w.form()->errorSummary()));
      QWidget* editor = w.form()->editor(field);
      QVERIFY(editor->styleSheet().contains(QStringLiteral("border")));
      QVERIFY(editor->toolTip().contains(QString::fromUtf8(c.expect)));
      QVERIFY(!w.simulateAction()->isEnabled());
      QVERIFY(!w.plans()->blocked().isEmpty());
      QVERIFY(!w.runPanel()->blocked().isEmpty());
      QVERIFY(!w.plans()->startPlanning());
      QVERIFY(!w.runPanel()->start());
    }
  }

  void aValueBeyondTheSpinBoxIsKeptNotClamped() {
    QTemporaryDir dir;
    const QString path = dir.filePath(QStringLiteral("vocab.yaml"));
    QVERIFY(
        write(path, tiny_with(QStringLiteral("vocab_size: 256 "), QStringLiteral("vocab_size: 2147483647 ")).toUtf8()));
    MainWindow w;
    w.setErrorHook([](const QString&, const QString&) {});
    QVERIFY(w.openScenario(path));
    auto* vocab = qobject_cast<QSpinBox*>(w.form()->editor(QStringLiteral("model.vocab_size")));
    QVERIFY(vocab);
    QCOMPARE(vocab->maximum(), 16777216);  // the validation's bound (model/validate.h)
    QCOMPARE(vocab->text(), QStringLiteral("2147483647"));
    QCOMPARE(w.form()->scenario().model.vocab_size, 2147483647);  // what is saved is what was read
    // Fixing the field enables everything again; the other fields were kept.
    vocab->setValue(256);
    QCOMPARE(w.form()->scenario().model.vocab_size, 256);
    QVERIFY(w.simulateNow());
    QVERIFY(w.scenarioValid());
    QVERIFY(w.result());
    QVERIFY(w.simulateAction()->isEnabled());
    QVERIFY(w.plans()->blocked().isEmpty());
    QVERIFY(w.runPanel()->blocked().isEmpty());
    QVERIFY(w.form()->errorSummary().isEmpty());
    QVERIFY(w.form()->editor(QStringLiteral("model.vocab_size"))->styleSheet().isEmpty());
    QCOMPARE(w.form()->scenario().model.num_layers, 6);
  }

  void aTypedInvalidValueMarksTheFieldAndKeepsTheForm() {
    MainWindow w;
    w.setErrorHook([](const QString&, const QString&) {});
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee")));
    QVERIFY(w.scenarioValid());
    auto* tp = qobject_cast<QSpinBox*>(w.form()->editor(QStringLiteral("parallel.tensor_model_parallel_size")));
    QCOMPARE(tp->maximum(), 65536);
    tp->setValue(3);  // 8 heads are not divisible by 3, and the world has 1 GPU
    QVERIFY(!w.simulateNow());
    QVERIFY(!w.scenarioValid());
    QVERIFY(!w.form()->errorSummary().isEmpty());
    QVERIFY(!w.simulateAction()->isEnabled());
    QCOMPARE(tp->value(), 3);  // nothing typed is lost
    QVERIFY(w.result());       // the last valid timeline stays
    tp->setValue(1);
    QVERIFY(w.simulateNow());
    QVERIFY(w.simulateAction()->isEnabled());
  }

  void hostileFilesAreErrorsNotCrashes() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    MainWindow w;
    QStringList errors;
    w.setErrorHook([&errors](const QString&, const QString& m) { errors << m; });
    QByteArray keys = tiny_with(QString(), QString()).toUtf8();
    for (int i = 0; i < 100000; ++i) keys += "  k" + QByteArray::number(i) + ": 1\n";
    QVERIFY(write(dir.filePath(QStringLiteral("keys.yaml")), keys));
    QVERIFY(!w.openScenario(dir.filePath(QStringLiteral("keys.yaml"))));
    QVERIFY2(errors.last().contains(QStringLiteral("99980 more error(s)")), qPrintable(errors.last()));
    const QString pid = dir.filePath(QStringLiteral("pid.json"));
    QVERIFY(write(pid, R"([{"ph":"X","name":"F0","pid":100000000,"ts":0,"dur":1}])"));
    QVERIFY(!w.openTrace(pid));
    QVERIFY2(errors.last().contains(QStringLiteral("pid 100000000 is not a pipeline rank")), qPrintable(errors.last()));
    QCOMPARE(errors.size(), 2);
    QVERIFY(!w.result());
  }

  void aReaderThatThrowsIsAnError() {
    MainWindow w;
    QStringList errors;
    w.setErrorHook([&errors](const QString&, const QString& m) { errors << m; });
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee")));
    auto* profile = qobject_cast<QComboBox*>(w.form()->editor(QStringLiteral("cluster.profile")));
    QVERIFY(profile);
    const int other = profile->findText(QStringLiteral("a100-80gb-2x8"));
    QVERIFY(other >= 0);
    ::setenv("EELLM_FAULT_INJECT", "reader", 1);
    const bool opened = w.openScenario(QStringLiteral(EELLM_SOURCE_DIR "/scenarios/tiny-ee.yaml"));
    const bool traced = w.openTrace(QStringLiteral(EELLM_SOURCE_DIR "/tests/fuzz/corpus/trace/tiny-ee.json"));
    profile->setCurrentIndex(other);  // the form loads the profile (it used to let the exception escape: abort)
    ::unsetenv("EELLM_FAULT_INJECT");
    QVERIFY2(w.form()->errorText(QStringLiteral("cluster.profile")).contains(QStringLiteral("injected fault")),
             qPrintable(w.form()->problems()));
    QVERIFY(!opened);
    QVERIFY(!traced);
    QCOMPARE(errors.size(), 2);
    QVERIFY2(errors[0].contains(QStringLiteral("injected fault")), qPrintable(errors[0]));
    QVERIFY2(errors[1].contains(QStringLiteral("injected fault")), qPrintable(errors[1]));
    QVERIFY(w.openScenario(QStringLiteral("tiny-ee")));  // and the window still works
  }
};

QTEST_MAIN(FileLoadingTest)
#include "test_file_loading.moc"
