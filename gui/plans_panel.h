// The planner in the GUI (sim/plan.h).
//
// PlansModel: ranked plans as a read-only table (layout, schedule, the ranking key kRankingKey —
// ee-fill rows show the iteration time beside it —, tokens/s, MFU, bubble, exit overhead, peak memory,
// the systems that can launch the plan); Qt::UserRole gives raw numbers so a QSortFilterProxyModel
// sorts numerically; the table opens sorted by # (the planner's ranking), which the time column agrees with.
// PlansPanel: GPU budget, Plan / Cancel, a progress bar fed from the planner's progress callback, the sortable table,
// and buttons to use a plan or pin it as A / B for comparison. plan() runs on a worker thread; progress and the result
// come back as queued calls. Cancel stops the search: the planner polls PlanOptions::cancelled (the panel's generation
// counter) before each block of candidates and each simulation, so the worker ends within one
// simulation per thread; a new search can start at once (a late result of the old one is
// discarded by generation). GUI thread only (except the worker's own closure).
#pragma once

#include <QAbstractTableModel>
#include <QWidget>
#include <atomic>
#include <memory>

#include "gui/format.h"
#include "model/scenario.h"
#include "sim/plan.h"

class QComboBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTableView;
class QSortFilterProxyModel;

namespace eellm::gui {

class PlansModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column {
    kRank,
    kGpus,
    kTp,
    kPp,
    kDp,
    kVp,
    kMicroBatch,
    kSchedule,
    kRecompute,
    kIteration,
    kTokens,
    kMfu,
    kBubble,
    kExitOverhead,
    kMemory,
    kRunsOn,
    kLabel,
    kNumColumns
  };
  explicit PlansModel(QObject* parent = nullptr);
  void setPlans(std::vector<PlanEntry> plans);
  const std::vector<PlanEntry>& plans() const { return plans_; }

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

 private:
  std::vector<PlanEntry> plans_;
  ColumnUnit time_unit_;  // the time column's unit, from its largest value
};

class PlansPanel : public QWidget {
  Q_OBJECT
 public:
  explicit PlansPanel(QWidget* parent = nullptr);
  ~PlansPanel() override;
  void setBase(const Scenario& base);
  // Starts a search (false when the planner is not built in or a search runs).
  bool startPlanning();
  void cancel();
  bool planning() const { return running_; }
  // While `why` is not empty (the scenario has errors) Plan is disabled and startPlanning refuses.
  void setBlocked(const QString& why);
  QString blocked() const { return blocked_; }
  int planCount() const;
  QString statusText() const;
  // Planner threads that have not returned yet (a cancelled one returns at its next poll), and
  // how the latest one to return ended: "ok" or its status ("cancelled: ..."); lastCancelled():
  // whether that status was StatusCode::kCancelled.
  int threadsInFlight() const { return threads_in_flight_; }
  QString lastOutcome() const { return last_outcome_; }
  bool lastCancelled() const { return last_cancelled_; }
  PlansModel* model() const { return model_; }
  // "launchable with": any (index 0) or one of kLaunchTargets (index 1…), as plan --launchable-with.
  QComboBox* launchTarget() const { return launch_; }
  QSortFilterProxyModel* proxy() const { return proxy_; }
  // The scenario of the plan in proxy row `row`.
  Scenario planScenario(int proxy_row) const;

 signals:
  void useScenario(const eellm::Scenario& scenario, const QString& label);
  void pinScenario(int slot, const eellm::Scenario& scenario, const QString& label);
  void planningFinished(bool ok);

 private:
  void emitForSelection(int slot);  // -1 = use
  Scenario base_;
  bool running_ = false;
  QString blocked_;
  int threads_in_flight_ = 0;
  QString last_outcome_;
  bool last_cancelled_ = false;
  std::shared_ptr<std::atomic<int>> generation_;
  QSpinBox* gpus_ = nullptr;
  QComboBox* launch_ = nullptr;
  QPushButton* plan_ = nullptr;
  QPushButton* cancel_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* status_ = nullptr;
  QTableView* table_ = nullptr;
  PlansModel* model_ = nullptr;
  QSortFilterProxyModel* proxy_ = nullptr;
};

}  // namespace eellm::gui
