// MainWindow: the desktop planner. Left: the scenario form (validation messages next to the
// fields). Right: the timeline of the simulated iteration, and tabs for metrics and stages,
// memory, plans, compare / what-if, run, and prediction-vs-measured. Every edit re-simulates after
// a short debounce. File menu: open / save scenario YAML, recent files, open a trace, overlay a
// measured trace, export the timeline (PNG, SVG), metrics (CSV) and the trace (Chrome JSON).
//
// Errors a user can cause (a malformed YAML, a bad trace, a trace of another scenario, an
// unwritable file) go through reportError(): a dialog by default, or the hook set with
// setErrorHook (tests assert the message without a modal dialog). Never a crash.
// GUI thread only.
#pragma once

#include <QMainWindow>
#include <QMessageBox>
#include <QStringList>
#include <functional>
#include <memory>

#include "model/scenario.h"
#include "sim/simulate.h"

class QTabWidget;
class QTimer;
class QMenu;
class QLabel;
class QTableView;

namespace eellm::gui {

class ScenarioForm;
class TimelineView;
class MetricsPanel;
class MemoryCharts;
class PlansPanel;
class ComparePanel;
class WhatIfPanel;
class RunPanel;
class OpErrorModel;

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  using ErrorHook = std::function<void(const QString& title, const QString& message)>;

  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  // File operations; false (after reporting the error) on failure. openScenario refuses only a file
  // it cannot read or parse (wrong types, unknown keys); one with invalid values is shown in the
  // form with the fields marked (true), and Simulate, Plan and Run wait until they are fixed.
  bool openScenario(const QString& path_or_name);
  bool saveScenario(const QString& path);
  bool openTrace(const QString& path);             // shows the trace alone
  bool overlayMeasuredTrace(const QString& path);  // overlays it on the prediction
  bool exportTimelinePng(const QString& path, int width = 2400);
  bool exportTimelineSvg(const QString& path, int width = 2400);
  bool exportMetricsCsv(const QString& path);
  bool exportTraceJson(const QString& path);
  bool exportMegatronCommand(const QString& path);  // model/megatron.h's scenario_to_megatron, warnings as comments
  // The folder File → Open starts in: the current scenario's, else the shipped scenarios/.
  QString openDirectory() const;
  // Unsaved edits: asks Save / Discard / Cancel (confirm_hook in tests); false on Cancel.
  bool isModified() const { return modified_; }
  bool maybeSave();
  using ConfirmHook = std::function<QMessageBox::StandardButton(const QString& question)>;
  void setConfirmHook(ConfirmHook hook) { confirm_hook_ = std::move(hook); }
  QString shortcutsText() const;
  QString aboutText() const;
  QString measuredNote() const;

  void showTab(int index);
  // Simulates the form's scenario now (normally debounced after edits; those keep the timeline's
  // zoom). False on errors.
  bool simulateNow(bool keep_view = false);
  // Whether the form's scenario passed validation at the last simulateNow (Simulate, Plan and Run
  // are enabled only then).
  bool scenarioValid() const { return scenario_valid_; }
  QAction* simulateAction() const { return simulate_; }

  void setErrorHook(ErrorHook hook) { error_hook_ = std::move(hook); }
  QString lastError() const { return last_error_; }
  int errorCount() const { return error_count_; }

  const SimulationResult* result() const { return result_.get(); }
  ScenarioForm* form() const { return form_; }
  TimelineView* timeline() const { return timeline_; }
  MetricsPanel* metrics() const { return metrics_; }
  MemoryCharts* memoryCharts() const { return memory_; }
  PlansPanel* plans() const { return plans_; }
  ComparePanel* compare() const { return compare_; }
  WhatIfPanel* whatIf() const { return what_if_; }
  RunPanel* runPanel() const { return run_; }
  OpErrorModel* opErrors() const { return op_errors_; }
  QStringList recentFiles() const;

 protected:
  void closeEvent(QCloseEvent* event) override;

 private:
  void buildMenus();
  void buildTabs();
  void buildHelpMenu();
  void setScenarioErrors(int errors);
  QString docUrl(const QString& file) const;
  void reportError(const QString& title, const QString& message);
  void scenarioEdited();
  void showResult(std::shared_ptr<const SimulationResult> result, bool keep_view);
  void addRecent(const QString& path);
  void rebuildRecentMenu();
  void setMeasured(std::shared_ptr<const Timeline> measured, const QString& source);
  void pin(int slot, const Scenario& scenario, const QString& label);

  ErrorHook error_hook_;
  ConfirmHook confirm_hook_;
  bool modified_ = false;
  bool scenario_valid_ = false;
  QAction* simulate_ = nullptr;
  QLabel* measured_note_ = nullptr;  // why "Predicted vs measured" is empty, or what it compares
  QString last_error_;
  int error_count_ = 0;
  QString scenario_path_;
  std::shared_ptr<const SimulationResult> result_;
  // A of the comparison follows the current scenario until the user pins one (Pin current, Pin as A).
  bool a_pinned_ = false;
  // The scenario and stage count a measured overlay belongs to: a result of another clears it.
  std::string overlay_scenario_;
  int overlay_stages_ = 0;
  ScenarioForm* form_ = nullptr;
  TimelineView* timeline_ = nullptr;
  MetricsPanel* metrics_ = nullptr;
  MemoryCharts* memory_ = nullptr;
  PlansPanel* plans_ = nullptr;
  ComparePanel* compare_ = nullptr;
  WhatIfPanel* what_if_ = nullptr;
  RunPanel* run_ = nullptr;
  OpErrorModel* op_errors_ = nullptr;
  QLabel* compare_status_ = nullptr;
  QTabWidget* tabs_ = nullptr;
  QTimer* debounce_ = nullptr;
  QMenu* recent_menu_ = nullptr;
};

}  // namespace eellm::gui
