// eellm-gui: the desktop planner. Thin: everything lives in eellm_gui (MainWindow and below).
// Usage: eellm-gui [SCENARIO.yaml | NAME] [--trace TRACE.json] [--zoom FRACTION] [--tab N]
// [--size WxH] [--screenshot OUT.png]
#include <QApplication>
#include <QCommandLineParser>
#include <QTimer>
#include <cstdio>

#include "gui/main_window.h"
#include "gui/timeline_view.h"

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QApplication::setApplicationName(QStringLiteral("eellm-gui"));
  QApplication::setOrganizationName(QStringLiteral("eellm"));
  QCommandLineParser cli;
  cli.setApplicationDescription(QStringLiteral("Early-exit LLM pipeline planner"));
  cli.addHelpOption();
  cli.addPositionalArgument(QStringLiteral("scenario"), QStringLiteral("scenario YAML file or shipped name"));
  QCommandLineOption trace_opt(QStringLiteral("trace"), QStringLiteral("open a Chrome trace"), QStringLiteral("file"));
  QCommandLineOption shot_opt(QStringLiteral("screenshot"), QStringLiteral("save a PNG of the window and quit"),
                              QStringLiteral("file"));
  QCommandLineOption zoom_opt(QStringLiteral("zoom"), QStringLiteral("show the first FRACTION of the iteration"),
                              QStringLiteral("fraction"));
  QCommandLineOption tab_opt(QStringLiteral("tab"),
                             QStringLiteral("open this tab (0 metrics, 1 memory, 2 plans, 3 compare, 4 run)"),
                             QStringLiteral("index"));
  QCommandLineOption size_opt(QStringLiteral("size"), QStringLiteral("window size (default 1600x1000)"),
                              QStringLiteral("WxH"), QStringLiteral("1600x1000"));
  cli.addOption(size_opt);
  cli.addOption(tab_opt);
  cli.addOption(trace_opt);
  cli.addOption(zoom_opt);
  cli.addOption(shot_opt);
  cli.process(app);

  const QStringList size = cli.value(size_opt).split(QLatin1Char('x'));
  const int w = size.size() == 2 ? size[0].toInt() : 0, h = size.size() == 2 ? size[1].toInt() : 0;
  if (w < 200 || h < 200) {
    std::fprintf(stderr, "eellm-gui: --size %s: expected WIDTHxHEIGHT, each at least 200\n",
                 qPrintable(cli.value(size_opt)));
    return 2;
  }
  eellm::gui::MainWindow window;
  window.resize(w, h);
  if (!cli.positionalArguments().isEmpty()) window.openScenario(cli.positionalArguments().front());
  if (cli.isSet(trace_opt)) window.openTrace(cli.value(trace_opt));
  if (cli.isSet(tab_opt)) window.showTab(cli.value(tab_opt).toInt());
  window.show();
  if (cli.isSet(zoom_opt)) {
    const double f = cli.value(zoom_opt).toDouble();
    QTimer::singleShot(0, &window, [&window, f] {
      eellm::gui::TimelineView* v = window.timeline();
      if (f > 0 && f < 1)
        v->setAxis(v->axis().showing(0, static_cast<int64_t>(static_cast<double>(v->axis().total) * f)));
    });
  }
  if (cli.isSet(shot_opt)) {
    const QString out = cli.value(shot_opt);
    QTimer::singleShot(500, &window, [&window, out] {
      const bool ok = window.grab().save(out);
      QApplication::exit(ok ? 0 : 1);
    });
  }
  return QApplication::exec();
}
