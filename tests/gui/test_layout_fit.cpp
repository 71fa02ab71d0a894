// At 1280×720 the Run and Compare & what-if pages fit their tab: no vertical scrolling (offscreen).
// Also writes the screenshots to $EELLM_LAYOUT_SHOTS when set (to look at them).
#include <QScrollArea>
#include <QScrollBar>
#include <QStandardPaths>
#include <QTabWidget>
#include <QtTest>

#include "gui/main_window.h"

using namespace eellm::gui;

class LayoutFitTest : public QObject {
  Q_OBJECT
 private slots:
  void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

  void runAndComparePagesFit1280x720() {
    MainWindow w;
    w.setErrorHook([](const QString&, const QString&) {});
    w.resize(1280, 720);
    QVERIFY(w.openScenario(QStringLiteral("ee-llm-7b")));
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    auto* tabs = w.findChild<QTabWidget*>();
    QVERIFY(tabs);
    for (const QString& title : {QStringLiteral("Run"), QStringLiteral("Compare && what-if")}) {
      int index = -1;
      for (int i = 0; i < tabs->count(); ++i)
        if (tabs->tabText(i) == title) index = i;
      QVERIFY2(index >= 0, qPrintable(title));
      tabs->setCurrentIndex(index);
      QCoreApplication::processEvents();
      // A page in a scroll area must not scroll; one without must fit the tab at its minimum size.
      QWidget* page = tabs->widget(index);
      auto* area = qobject_cast<QScrollArea*>(page);
      const int overflow =
          area ? area->verticalScrollBar()->maximum() : std::max(0, page->minimumSizeHint().height() - page->height());
      QVERIFY2(overflow == 0, qPrintable(QStringLiteral("%1 overflows by %2 px at 1280x720 (tab %3 px)")
                                             .arg(title)
                                             .arg(overflow)
                                             .arg(page->height())));
      QVERIFY(page->height() > 250);  // the tab is really this small at 1280×720: the check is not vacuous
      const QString shots = qEnvironmentVariable("EELLM_LAYOUT_SHOTS");
      if (!shots.isEmpty()) w.grab().save(shots + QStringLiteral("/tab-%1.png").arg(index));
    }
  }
};

QTEST_MAIN(LayoutFitTest)
#include "test_layout_fit.moc"
