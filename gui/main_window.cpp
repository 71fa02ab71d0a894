#include "gui/main_window.h"

#include <QAction>
#include <QCloseEvent>
#include <QCoreApplication>
#include <QDesktopServices>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QPainter>
#include <QPushButton>
#include <QScrollArea>
#include <QSettings>
#include <QSortFilterProxyModel>
#include <QSplitter>
#include <QStatusBar>
#include <QSvgGenerator>
#include <QTabWidget>
#include <QTableView>
#include <QTimer>
#include <QUrl>
#include <QVBoxLayout>
#include <filesystem>

#include "gui/compare_panel.h"
#include "gui/format.h"
#include "gui/guarded_read.h"
#include "gui/metrics_panel.h"
#include "gui/plans_panel.h"
#include "gui/run_panel.h"
#include "gui/scenario_form.h"
#include "gui/stage_model.h"
#include "gui/timeline_view.h"
#include "model/megatron.h"
#include "model/scenario_io.h"
#include "model/validate.h"
#include "sim/trace.h"

namespace eellm::gui {
namespace {
constexpr int kMaxRecent = 8;
const QString kRecentKey = QStringLiteral("recentFiles");

bool write_file(const QString& path, const QByteArray& bytes, QString* error) {
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) || f.write(bytes) != bytes.size()) {
    *error = f.errorString();
    return false;
  }
  return true;
}

// A tab page in a scroll area: at 1280×720 the tabs get a third of the height, and a page taller than
// that scrolls instead of being cut off.
QWidget* scrolled(QWidget* page, QWidget* parent) {
  auto* area = new QScrollArea(parent);
  area->setWidget(page);
  area->setWidgetResizable(true);
  area->setFrameShape(QFrame::NoFrame);
  return area;
}

// A scenario file as it is, for the form: read and parsed (a file of the wrong kind, malformed YAML,
// wrong types or unknown keys are refused here) but not validated, so that invalid values are shown
// in their fields instead of refusing the file. A name that is no file is a shipped scenario
// (valid) or the not-found message of load_scenario.
StatusOr<Scenario> parse_scenario_file(const std::string& path) {
  constexpr uint64_t kMaxYamlBytes = uint64_t{16} << 20;  // as load_scenario
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) return load_scenario(path);
  EELLM_ASSIGN_OR_RETURN(const std::string text, read_regular_file(path, "scenario", kMaxYamlBytes));
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return parse_scenario(text, path, dir.empty() ? std::string(".") : dir);
}
}  // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(tr("eellm — early-exit pipeline planner"));
  auto* split = new QSplitter(Qt::Horizontal, this);
  auto* scroll = new QScrollArea(split);
  form_ = new ScenarioForm(scroll);
  scroll->setWidget(form_);
  scroll->setWidgetResizable(true);
  scroll->setMinimumWidth(370);  // the form without a horizontal scroll bar
  auto* right = new QSplitter(Qt::Vertical, split);
  timeline_ = new TimelineView(right);
  tabs_ = new QTabWidget(right);
  buildTabs();
  right->addWidget(timeline_);
  right->addWidget(tabs_);
  right->setStretchFactor(0, 3);
  right->setStretchFactor(1, 2);
  split->addWidget(scroll);
  split->addWidget(right);
  split->setStretchFactor(1, 1);
  split->setSizes({390, 1200});
  setCentralWidget(split);

  debounce_ = new QTimer(this);
  debounce_->setSingleShot(true);
  debounce_->setInterval(250);
  connect(debounce_, &QTimer::timeout, this, [this] { simulateNow(true); });
  connect(form_, &ScenarioForm::scenarioEdited, this, &MainWindow::scenarioEdited);
  connect(timeline_, &TimelineView::eventSelected, this, [this](int32_t i) {
    if (i >= 0)
      statusBar()->showMessage(timeline_->tooltipText(i)
                                   .replace(QStringLiteral("<br>"), QStringLiteral(" · "))
                                   .remove(QStringLiteral("<b>"))
                                   .remove(QStringLiteral("</b>")));
  });
  connect(plans_, &PlansPanel::useScenario, this, [this](const Scenario& s, const QString& label) {
    form_->setScenario(s);
    modified_ = true;  // the form now differs from the file
    statusBar()->showMessage(tr("plan: %1").arg(label));
    simulateNow();
  });
  connect(plans_, &PlansPanel::pinScenario, this, &MainWindow::pin);
  connect(run_, &RunPanel::measuredTrace, this,
          [this](std::shared_ptr<const Timeline> t, const QString& path) { setMeasured(std::move(t), path); });
  connect(run_, &RunPanel::runError, this, [this](const QString& m) { reportError(tr("Run"), m); });
  connect(run_, &RunPanel::succeeded, this, [this](const QString& m) { statusBar()->showMessage(m); });
  connect(run_, &RunPanel::noMeasuredTrace, this,
          [this](const QString& why) { measured_note_->setText(tr("Nothing measured to compare: %1.").arg(why)); });
  buildMenus();
  statusBar()->showMessage(tr("Open a scenario (File → Open scenario) to see its pipeline."));
}

void MainWindow::buildTabs() {
  metrics_ = new MetricsPanel(tabs_);
  memory_ = new MemoryCharts(tabs_);
  plans_ = new PlansPanel(tabs_);
  tabs_->addTab(scrolled(metrics_, tabs_), tr("Metrics"));
  tabs_->addTab(memory_, tr("Memory"));
  tabs_->addTab(scrolled(plans_, tabs_), tr("Plans"));

  auto* cmp_page = new QWidget(tabs_);
  auto* cmp_lay = new QHBoxLayout(cmp_page);
  cmp_lay->setContentsMargins(0, 0, 0, 0);
  compare_ = new ComparePanel(cmp_page);
  auto* side_box = new QWidget(compare_);  // under the delta table, so the timelines keep the width
  auto* side = new QVBoxLayout(side_box);
  side->setContentsMargins(0, 0, 0, 0);
  what_if_ = new WhatIfPanel(cmp_page);
  auto* pin_current = new QPushButton(tr("Pin current as A"), cmp_page);
  pin_current->setToolTip(tr("Keep the current scenario as A while you edit (A follows the scenario until pinned)"));
  compare_status_ = new QLabel(cmp_page);
  compare_status_->setWordWrap(true);
  side->addWidget(pin_current);
  auto* what_if_title = new QLabel(tr("<b>What-if</b> (shown as B, re-simulated live)"), cmp_page);
  what_if_title->setWordWrap(true);
  side->addWidget(what_if_title);
  side->addWidget(what_if_);
  side->addWidget(compare_status_);
  side->addStretch(1);
  compare_->addToSide(side_box);
  cmp_lay->addWidget(compare_, 1);
  // Not in a scroll area: its wrapped labels made the area size the page to its preferred height
  // (it scrolled at 1280×720); unscrolled it shrinks to its minimum, and the timelines and the delta
  // table scroll by themselves.
  tabs_->addTab(cmp_page, tr("Compare && what-if"));
  connect(what_if_, &WhatIfPanel::simulated, this,
          [this](std::shared_ptr<const SimulationResult> r, const QString& err) {
            if (r) {
              compare_->setSlot(1, tr("what-if"), std::move(r));
              compare_status_->clear();
            } else {
              compare_status_->setText(err);
            }
          });
  connect(pin_current, &QPushButton::clicked, this, [this] {
    if (!result_) return;
    a_pinned_ = true;
    compare_->setSlot(0, tr("%1 (pinned)").arg(QString::fromStdString(result_->scenario.name)), result_);
  });

  run_ = new RunPanel(tabs_);
  tabs_->addTab(scrolled(run_, tabs_), tr("Run"));
  op_errors_ = new OpErrorModel(this);
  auto* err_page = new QWidget(tabs_);
  auto* err_lay = new QVBoxLayout(err_page);
  measured_note_ = new QLabel(tr("Nothing measured yet: run the plan with 2 or more processes (Run tab), or File → "
                                 "Overlay measured trace."),
                              err_page);
  measured_note_->setWordWrap(true);
  auto* err_view = new QTableView(err_page);
  auto* err_proxy = new QSortFilterProxyModel(this);
  err_proxy->setSourceModel(op_errors_);
  err_proxy->setSortRole(Qt::UserRole);
  err_view->setModel(err_proxy);
  err_view->setSortingEnabled(true);
  err_view->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  err_lay->addWidget(measured_note_);
  err_lay->addWidget(err_view, 1);
  tabs_->addTab(err_page, tr("Predicted vs measured"));
}

MainWindow::~MainWindow() = default;

void MainWindow::buildMenus() {
  QMenu* file = menuBar()->addMenu(tr("&File"));
  auto ask_open = [this](const QString& title, const QString& filter, auto fn, QString dir = {}) {
    return [this, title, filter, fn, dir] {
      const QString p = QFileDialog::getOpenFileName(this, title, dir, filter);
      if (!p.isEmpty()) (this->*fn)(p);
    };
  };
  auto ask_save = [this](const QString& title, const QString& filter, auto fn) {
    return [this, title, filter, fn] {
      const QString p = QFileDialog::getSaveFileName(this, title, QString(), filter);
      if (!p.isEmpty()) (this->*fn)(p);
    };
  };
  QAction* open = file->addAction(tr("&Open scenario…"));
  open->setShortcut(QKeySequence::Open);
  connect(open, &QAction::triggered, this, [this, ask_open] {
    if (maybeSave())  // Open starts in the shipped scenarios (scenarios/) until a file has been opened
      ask_open(tr("Open scenario"), tr("Scenarios (*.yaml *.yml)"), &MainWindow::openScenario, openDirectory())();
  });
  recent_menu_ = file->addMenu(tr("Open &recent"));
  QAction* save = file->addAction(tr("&Save scenario"));
  save->setShortcut(QKeySequence::Save);
  connect(save, &QAction::triggered, this, [this] {
    if (scenario_path_.isEmpty()) {
      const QString p = QFileDialog::getSaveFileName(this, tr("Save scenario"), QString(), tr("Scenarios (*.yaml)"));
      if (!p.isEmpty()) saveScenario(p);
    } else {
      saveScenario(scenario_path_);
    }
  });
  connect(file->addAction(tr("Save scenario &as…")), &QAction::triggered, this,
          ask_save(tr("Save scenario"), tr("Scenarios (*.yaml)"), &MainWindow::saveScenario));
  file->addSeparator();
  connect(file->addAction(tr("Open &trace…")), &QAction::triggered, this,
          ask_open(tr("Open trace"), tr("Chrome traces (*.json)"), &MainWindow::openTrace));
  connect(file->addAction(tr("Overlay &measured trace…")), &QAction::triggered, this,
          ask_open(tr("Overlay measured trace"), tr("Chrome traces (*.json)"), &MainWindow::overlayMeasuredTrace));
  file->addSeparator();
  connect(file->addAction(tr("Export timeline as &PNG…")), &QAction::triggered, this, [this] {
    const QString p = QFileDialog::getSaveFileName(this, tr("Export PNG"), QString(), tr("PNG (*.png)"));
    if (!p.isEmpty()) exportTimelinePng(p);
  });
  connect(file->addAction(tr("Export timeline as S&VG…")), &QAction::triggered, this, [this] {
    const QString p = QFileDialog::getSaveFileName(this, tr("Export SVG"), QString(), tr("SVG (*.svg)"));
    if (!p.isEmpty()) exportTimelineSvg(p);
  });
  connect(file->addAction(tr("Export metrics as &CSV…")), &QAction::triggered, this,
          ask_save(tr("Export metrics"), tr("CSV (*.csv)"), &MainWindow::exportMetricsCsv));
  connect(file->addAction(tr("Export trace as &JSON…")), &QAction::triggered, this,
          ask_save(tr("Export trace"), tr("Chrome trace (*.json)"), &MainWindow::exportTraceJson));
  connect(
      file->addAction(tr("Export as &Megatron/EE-LLM command…")), &QAction::triggered, this,
      ask_save(tr("Export Megatron/EE-LLM command"), tr("Shell scripts (*.sh)"), &MainWindow::exportMegatronCommand));
  file->addSeparator();
  QAction* quit = file->addAction(tr("&Quit"));
  quit->setShortcut(QKeySequence::Quit);
  connect(quit, &QAction::triggered, this, &QWidget::close);
  QMenu* scenario = menuBar()->addMenu(tr("&Scenario"));  // edits re-simulate by themselves; F5 does it now
  simulate_ = scenario->addAction(tr("&Simulate"));
  simulate_->setShortcut(Qt::Key_F5);
  simulate_->setEnabled(false);  // until a valid scenario is shown
  connect(simulate_, &QAction::triggered, this, [this] { simulateNow(true); });
  rebuildRecentMenu();
  buildHelpMenu();
}

void MainWindow::buildHelpMenu() {
  QMenu* help = menuBar()->addMenu(tr("&Help"));
  connect(help->addAction(tr("&Keyboard shortcuts")), &QAction::triggered, this,
          [this] { QMessageBox::information(this, tr("Keyboard shortcuts"), shortcutsText()); });
  struct Doc {
    const char* title;
    const char* file;
  };
  for (const Doc& d : {Doc{"The &GUI (docs/gui.md)", "docs/gui.md"}, Doc{"&Scenario format", "docs/scenario-format.md"},
                       Doc{"&Cost model", "docs/cost.md"}, Doc{"&README", "README.md"}})
    connect(help->addAction(tr(d.title)), &QAction::triggered, this, [this, file = QString::fromLatin1(d.file)] {
      const QString url = docUrl(file);
      if (!QDesktopServices::openUrl(QUrl(url))) statusBar()->showMessage(tr("Documentation: %1").arg(url));
    });
  help->addSeparator();
  connect(help->addAction(tr("&About eellm")), &QAction::triggered, this,
          [this] { QMessageBox::about(this, tr("About eellm"), aboutText()); });
}

QString MainWindow::shortcutsText() const {
  return tr("<table>"
            "<tr><td><b>%1</b></td><td>open a scenario</td></tr>"
            "<tr><td><b>%2</b></td><td>save the scenario</td></tr>"
            "<tr><td><b>%3</b></td><td>quit</td></tr>"
            "<tr><td colspan=2><br><b>Timeline</b></td></tr>"
            "<tr><td>wheel</td><td>zoom around the cursor</td></tr>"
            "<tr><td>drag</td><td>pan</td></tr>"
            "<tr><td>shift-drag, right-drag</td><td>zoom to the selected range</td></tr>"
            "<tr><td>double-click</td><td>fit</td></tr>"
            "<tr><td>shift-wheel, scroll bar</td><td>scroll stages</td></tr>"
            "<tr><td>click an op</td><td>what it waited for; the critical path in red</td></tr>"
            "</table>")
      .arg(QKeySequence(QKeySequence::Open).toString(QKeySequence::NativeText),
           QKeySequence(QKeySequence::Save).toString(QKeySequence::NativeText),
           QKeySequence(QKeySequence::Quit).toString(QKeySequence::NativeText));
}

QString MainWindow::aboutText() const {
  return tr("<b>eellm</b> — plan, simulate and run early-exit LLMs under 3D parallelism.<br>"
            "One schedule, two interpreters: the simulator's timeline and the executor's measured one.<br>"
            "Shipped scenarios: %1<br>Documentation: %2")
      .arg(QString::fromStdString(scenarios_dir()), docUrl(QStringLiteral("docs/gui.md")));
}

// A document of the project: the installed or source copy when there is one, else its name.
QString MainWindow::docUrl(const QString& file) const {
  for (const QString& root : {QString::fromStdString(scenarios_dir()) + QStringLiteral("/.."),
                              QCoreApplication::applicationDirPath() + QStringLiteral("/../share/doc/eellm")}) {
    const QFileInfo f(root + QLatin1Char('/') + file);
    if (f.exists()) return QUrl::fromLocalFile(f.canonicalFilePath()).toString();
  }
  return file;
}

QString MainWindow::measuredNote() const {
  return measured_note_->text();
}

QString MainWindow::openDirectory() const {
  if (!scenario_path_.isEmpty()) return QFileInfo(scenario_path_).absolutePath();
  return QString::fromStdString(scenarios_dir());
}

bool MainWindow::maybeSave() {
  if (!modified_) return true;
  const QString q = tr("The scenario has unsaved changes. Save them?");
  const QMessageBox::StandardButton b =
      confirm_hook_ ? confirm_hook_(q)
                    : QMessageBox::question(this, tr("Unsaved changes"), q,
                                            QMessageBox::Save | QMessageBox::Discard | QMessageBox::Cancel);
  if (b == QMessageBox::Cancel) return false;
  if (b == QMessageBox::Discard) return true;
  if (!scenario_path_.isEmpty()) return saveScenario(scenario_path_);
  const QString p = QFileDialog::getSaveFileName(this, tr("Save scenario"), openDirectory(), tr("Scenarios (*.yaml)"));
  return !p.isEmpty() && saveScenario(p);
}

void MainWindow::closeEvent(QCloseEvent* event) {
  if (maybeSave())
    event->accept();
  else
    event->ignore();
}

bool MainWindow::exportMegatronCommand(const QString& path) {
  if (!scenario_valid_) {
    reportError(tr("Export"), tr("%1 not written: the scenario has errors; fix the marked fields first").arg(path));
    return false;
  }
  const MegatronExport e = scenario_to_megatron(form_->scenario());
  std::string text =
      "#!/bin/bash\n# " + form_->scenario().name + ", exported by eellm-gui (eellm convert --to-megatron)\n";
  for (const std::string& w : e.warnings) text += "# warning: " + w + "\n";
  text += e.command;
  if (!text.empty() && text.back() != '\n') text += '\n';
  QString err;
  if (!write_file(path, QByteArray::fromStdString(text), &err)) {
    reportError(tr("Export"), tr("%1: %2").arg(path, err));
    return false;
  }
  statusBar()->showMessage(tr("wrote %1 (%n warning(s))", nullptr, static_cast<int>(e.warnings.size())).arg(path));
  return true;
}

void MainWindow::reportError(const QString& title, const QString& message) {
  last_error_ = message;
  ++error_count_;
  statusBar()->showMessage(message);
  if (error_hook_) {
    error_hook_(title, message);
  } else {
    QMessageBox::warning(this, title, message);
  }
}

QStringList MainWindow::recentFiles() const {
  return QSettings().value(kRecentKey).toStringList();
}

void MainWindow::addRecent(const QString& path) {
  const QString abs = QFileInfo(path).exists() ? QFileInfo(path).absoluteFilePath() : path;
  QStringList list = recentFiles();
  list.removeAll(abs);
  list.prepend(abs);
  while (list.size() > kMaxRecent) list.removeLast();
  QSettings().setValue(kRecentKey, list);
  rebuildRecentMenu();
}

void MainWindow::rebuildRecentMenu() {
  recent_menu_->clear();
  const QStringList list = recentFiles();
  for (const QString& p : list) {
    connect(recent_menu_->addAction(p), &QAction::triggered, this, [this, p] {
      if (maybeSave()) openScenario(p);
    });
  }
  recent_menu_->setEnabled(!list.isEmpty());
}

bool MainWindow::openScenario(const QString& path) {
  auto sc = guarded_read([&] { return parse_scenario_file(path.toStdString()); });  // validated by simulateNow
  if (!sc.is_ok()) {
    reportError(tr("Cannot open scenario"), QString::fromStdString(sc.status().to_string()));
    return false;
  }
  scenario_path_ = QFileInfo::exists(path) ? path : QString::fromStdString(sc->source_path);
  form_->setScenario(*sc);
  modified_ = false;
  addRecent(scenario_path_.isEmpty() ? path : scenario_path_);
  setWindowTitle(tr("eellm — %1").arg(QString::fromStdString(sc->name)));
  if (!simulateNow() && !scenario_valid_)  // shown with its fields marked, not refused
    statusBar()->showMessage(tr("%1: the scenario has errors; fix the marked fields").arg(scenario_path_));
  return true;
}

bool MainWindow::saveScenario(const QString& path) {
  const Scenario s = form_->scenario();
  QString err;
  if (!write_file(path, QByteArray::fromStdString(scenario_to_yaml(s)), &err)) {
    reportError(tr("Cannot save scenario"), tr("%1: %2").arg(path, err));
    return false;
  }
  scenario_path_ = path;
  modified_ = false;
  addRecent(path);
  statusBar()->showMessage(tr("saved %1").arg(path));
  return true;
}

void MainWindow::showTab(int index) {
  tabs_->setCurrentIndex(index);
}

void MainWindow::scenarioEdited() {
  modified_ = true;
  debounce_->start();
}

bool MainWindow::simulateNow(bool keep_view) {
  debounce_->stop();
  const Scenario s = form_->scenario();
  Diagnostics diags = validate_scenario(s);
  int errors = 0;
  for (const Diagnostic& d : diags.items) errors += d.severity == Diagnostic::Severity::kError;
  setScenarioErrors(errors);
  if (errors > 0) {
    form_->setDiagnostics(diags);
    statusBar()->showMessage(tr("%n error(s) in the scenario; the timeline shows the last valid one", nullptr, errors));
    return false;
  }
  auto r = simulate(s);
  if (!r.is_ok()) {
    diags.items.push_back({Diagnostic::Severity::kError, "", "simulation: " + r.status().to_string()});
    form_->setDiagnostics(diags);
    statusBar()->showMessage(QString::fromStdString(r.status().to_string()));
    return false;
  }
  if (const std::string over = memory_overflow(r->summary); !over.empty())
    diags.items.push_back({Diagnostic::Severity::kWarning, "", "memory: " + over});
  form_->setDiagnostics(diags);  // warnings stay visible
  showResult(std::make_shared<const SimulationResult>(std::move(r).value()), keep_view);
  return true;
}

void MainWindow::setScenarioErrors(int errors) {
  scenario_valid_ = errors == 0;
  const QString why =
      scenario_valid_ ? QString() : tr("The scenario has %n error(s): fix the marked fields first", nullptr, errors);
  plans_->setBlocked(why);
  run_->setBlocked(why);
  simulate_->setEnabled(scenario_valid_);
  simulate_->setToolTip(why);
}

void MainWindow::showResult(std::shared_ptr<const SimulationResult> result, bool keep_view) {
  result_ = std::move(result);
  const SimulationResult& r = *result_;
  timeline_->setSimulation(result_, keep_view);
  metrics_->setResult(r);
  memory_->setResult(r);
  what_if_->setBase(r.scenario, r.layout);
  plans_->setBase(r.scenario);
  run_->setScenario(QString::fromStdString(scenario_to_yaml(r.scenario)), QString::fromStdString(r.scenario.name),
                    r.layout.world_size, r.scenario.training.train_iters);
  run_->setExits(r.scenario.exits.exit_layer_nums);
  run_->setNeedsGpus(r.scenario.execution.device == DeviceKind::kCUDA);
  op_errors_->clear();
  QString overlay_note;
  if (const Timeline* ov = timeline_->overlay()) {  // a measured overlay is tied to its scenario
    if (r.scenario.name != overlay_scenario_ || r.layout.pp != overlay_stages_) {
      timeline_->setOverlay(nullptr);
      overlay_note =
          tr(" · measured overlay of %1 cleared: the scenario changed").arg(QString::fromStdString(overlay_scenario_));
      measured_note_->setText(tr("Nothing measured for this scenario: the%1").arg(overlay_note.mid(2)));
    } else {
      op_errors_->setComparison(eellm::compare(r.engine.timeline, *ov));
    }
  }
  if (!a_pinned_ || !compare_->slot(0))  // A follows the current scenario until pinned (no stale baseline)
    compare_->setSlot(0, tr("%1 (current scenario)").arg(QString::fromStdString(r.scenario.name)), result_);
  statusBar()->showMessage(tr("%1: iteration %2, %3 tokens/s, MFU %4, bubble %5")
                               .arg(QString::fromStdString(r.scenario.name), format_seconds(r.summary.iteration_time_s))
                               .arg(r.summary.tokens_per_s, 0, 'f', 0)
                               .arg(format_percent(r.summary.mfu), format_percent(r.summary.bubble_fraction)) +
                           overlay_note);
}

void MainWindow::pin(int slot, const Scenario& scenario, const QString& label) {
  auto r = simulate(scenario);
  if (!r.is_ok()) {
    reportError(tr("Cannot simulate the plan"), QString::fromStdString(r.status().to_string()));
    return;
  }
  if (slot == 0) a_pinned_ = true;
  compare_->setSlot(slot, slot == 0 ? tr("%1 (pinned)").arg(label) : label,
                    std::make_shared<const SimulationResult>(std::move(r).value()));
}

bool MainWindow::openTrace(const QString& path) {
  auto tl = guarded_read([&] { return read_trace(path.toStdString()); });
  if (!tl.is_ok()) {
    reportError(tr("Cannot open trace"), QString::fromStdString(tl.status().to_string()));
    return false;
  }
  if (tl->events.empty()) {
    reportError(tr("Cannot open trace"), tr("%1: the trace holds no events").arg(path));
    return false;
  }
  timeline_->setTimeline(std::make_shared<const Timeline>(std::move(tl).value()));
  statusBar()->showMessage(tr("trace %1").arg(path));
  return true;
}

bool MainWindow::overlayMeasuredTrace(const QString& path) {
  auto tl = guarded_read([&] { return read_trace(path.toStdString()); });
  if (!tl.is_ok()) {
    reportError(tr("Cannot open trace"), QString::fromStdString(tl.status().to_string()));
    return false;
  }
  setMeasured(std::make_shared<const Timeline>(std::move(tl).value()), path);
  return true;
}

void MainWindow::setMeasured(std::shared_ptr<const Timeline> measured, const QString& source) {
  if (!result_) {
    reportError(tr("Cannot overlay trace"),
                tr("%1: simulate a scenario first, then overlay its measured trace").arg(source));
    return;
  }
  const int ranks = std::max(measured->num_ranks, [&] {
    int n = 0;
    for (const TimelineEvent& e : measured->events) n = std::max(n, e.rank + 1);
    return n;
  }());
  if (ranks != result_->layout.pp) {
    reportError(tr("Trace of another scenario"), tr("%1 has %2 pipeline ranks but scenario %3 has %4 stages "
                                                    "(pipeline_model_parallel_size); it was not "
                                                    "overlaid")
                                                     .arg(source)
                                                     .arg(ranks)
                                                     .arg(QString::fromStdString(result_->scenario.name))
                                                     .arg(result_->layout.pp));
    return;
  }
  timeline_->setOverlay(measured);
  overlay_scenario_ = result_->scenario.name;
  overlay_stages_ = result_->layout.pp;
  const TimelineComparison cmp = eellm::compare(result_->engine.timeline, *measured);
  op_errors_->setComparison(cmp);
  measured_note_->setText(tr("Measured trace %1 against the prediction of %2.")
                              .arg(source, QString::fromStdString(result_->scenario.name)));
  statusBar()->showMessage(tr("measured %1: iteration %2 measured vs %3 predicted (%4)")
                               .arg(source, format_seconds(cmp.measured_iteration_s),
                                    format_seconds(cmp.predicted_iteration_s),
                                    format_percent(cmp.iteration_relative_error)));
}

bool MainWindow::exportTimelinePng(const QString& path, int width) {
  if (!timeline_->timeline()) {
    reportError(tr("Export"), tr("There is no timeline to export."));
    return false;
  }
  if (!timeline_->renderImage(width).save(path, "PNG")) {
    reportError(tr("Export"), tr("Cannot write %1").arg(path));
    return false;
  }
  return true;
}

bool MainWindow::exportTimelineSvg(const QString& path, int width) {
  if (!timeline_->timeline()) {
    reportError(tr("Export"), tr("There is no timeline to export."));
    return false;
  }
  const QSize size(width, TimelineView::kHeaderHeight + std::max(40, timeline_->lanes().total_height()));
  QSvgGenerator gen;
  gen.setFileName(path);
  gen.setSize(size);
  gen.setViewBox(QRect(QPoint(0, 0), size));
  gen.setTitle(tr("eellm timeline"));
  QPainter p;
  if (!p.begin(&gen)) {
    reportError(tr("Export"), tr("Cannot write %1").arg(path));
    return false;
  }
  TimeAxis ax = TimeAxis::fit(std::max<TimeNs>(1, timeline_->axis().total), width - TimelineView::kLabelWidth);
  timeline_->render(p, size, ax, 0);
  p.end();
  return QFileInfo::exists(path);
}

bool MainWindow::exportMetricsCsv(const QString& path) {
  if (!result_) {
    reportError(tr("Export"), tr("Simulate a scenario first."));
    return false;
  }
  QString err;
  if (!write_file(path, QByteArray::fromStdString(summary_to_csv(result_->summary)), &err)) {
    reportError(tr("Export"), tr("%1: %2").arg(path, err));
    return false;
  }
  return true;
}

bool MainWindow::exportTraceJson(const QString& path) {
  const Timeline* tl = timeline_->timeline();
  if (!tl) {
    reportError(tr("Export"), tr("There is no timeline to export."));
    return false;
  }
  TraceOptions opt;
  opt.title = result_ ? result_->scenario.name : std::string("trace");
  const Status st = write_trace(*tl, path.toStdString(), opt);
  if (!st.is_ok()) {
    reportError(tr("Export"), QString::fromStdString(st.to_string()));
    return false;
  }
  return true;
}

}  // namespace eellm::gui
