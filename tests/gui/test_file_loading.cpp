// [reliability] The GUI's file loading under hostile files (offscreen): scenarios whose products
// overflow, a vocabulary beyond the bounds (refused with its real value, never clamped), 100,000
// keys, a trace with pid 10^8, and a reader that throws: each is an error through the hook and
// the window keeps running.
#include <QFile>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QtTest>
#include <cstdlib>

#include "gui/main_window.h"

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

  void hostileFilesAreErrorsNotCrashes() {
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    MainWindow w;
    QStringList errors;
    w.setErrorHook([&errors](const QString&, const QString& m) { errors << m; });
    const struct {
      const char* file;
      QString yaml;
      const char* expect;
    } cases[] = {
        {"tp_pp.yaml",
         tiny_with(QStringLiteral("tensor_model_parallel_size: 1\n  pipeline_model_parallel_size: 1"),
                   QStringLiteral("tensor_model_parallel_size: 65536\n  pipeline_model_parallel_size: 65536")),
         "(65536 × 65536) is larger than 1048576"},
        {"vocab.yaml", tiny_with(QStringLiteral("vocab_size: 256 "), QStringLiteral("vocab_size: 2147483647 ")),
         "model.vocab_size (2147483647) is larger than 16777216"},
        {"batch.yaml",
         tiny_with(QStringLiteral("global_batch_size: 32"), QStringLiteral("global_batch_size: 1073741824")),
         "training.global_batch_size (1073741824)"},
    };
    for (const auto& c : cases) {
      QVERIFY(!c.yaml.isEmpty());
      const QString path = dir.filePath(QString::fromLatin1(c.file));
      QVERIFY(write(path, c.yaml.toUtf8()));
      QVERIFY(!w.openScenario(path));
      QVERIFY2(errors.last().contains(QString::fromUtf8(c.expect)), qPrintable(errors.last()));
    }
    QByteArray keys = tiny_with(QString(), QString()).toUtf8();
    for (int i = 0; i < 100000; ++i) keys += "  k" + QByteArray::number(i) + ": 1\n";
    QVERIFY(write(dir.filePath(QStringLiteral("keys.yaml")), keys));
    QVERIFY(!w.openScenario(dir.filePath(QStringLiteral("keys.yaml"))));
    QVERIFY2(errors.last().contains(QStringLiteral("99980 more error(s)")), qPrintable(errors.last()));
    const QString pid = dir.filePath(QStringLiteral("pid.json"));
    QVERIFY(write(pid, R"([{"ph":"X","name":"F0","pid":100000000,"ts":0,"dur":1}])"));
    QVERIFY(!w.openTrace(pid));
    QVERIFY2(errors.last().contains(QStringLiteral("pid 100000000 is not a pipeline rank")), qPrintable(errors.last()));
    QCOMPARE(errors.size(), 5);
    QVERIFY(!w.result());
  }

  void aReaderThatThrowsIsAnError() {
    MainWindow w;
    QStringList errors;
    w.setErrorHook([&errors](const QString&, const QString& m) { errors << m; });
    ::setenv("EELLM_FAULT_INJECT", "reader", 1);
    const bool opened = w.openScenario(QStringLiteral(EELLM_SOURCE_DIR "/scenarios/tiny-ee.yaml"));
    const bool traced = w.openTrace(QStringLiteral(EELLM_SOURCE_DIR "/tests/fuzz/corpus/trace/tiny-ee.json"));
    ::unsetenv("EELLM_FAULT_INJECT");
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
