// StageModel: the per-stage rows of a SimulationSummary (busy, idle, bubble by cause, memory) as a
// read-only table. Display text is formatted, each time column in one unit chosen from its largest
// value; Qt::UserRole gives the raw number (seconds, GiB) for sorting (QSortFilterProxyModel with
// sortRole = Qt::UserRole). GUI thread only.
#pragma once

#include <QAbstractTableModel>
#include <array>

#include "gui/format.h"
#include "sim/simulate.h"

namespace eellm::gui {

class StageModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column {
    kStage,
    kBusy,
    kExitBusy,
    kIdle,
    kBubbleDependency,
    kBubbleComm,
    kBubbleImbalance,
    kBubbleExit,
    kPeakMemory,
    kStaticMemory,
    kInFlight,
    kNumColumns
  };
  explicit StageModel(QObject* parent = nullptr);
  void setSummary(const SimulationSummary& summary, double device_memory_GiB);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

 private:
  std::vector<StageSummary> stages_;
  double capacity_GiB_ = 0;
  std::array<ColumnUnit, kNumColumns> units_{};  // the time columns' display units
};

// OpErrorModel: compare(predicted, measured) per op kind (timeline.h), one row per op kind with the
// counts, mean durations and the relative error; the last row is the iteration.
class OpErrorModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { kOp, kCountPredicted, kCountMeasured, kPredicted, kMeasured, kError, kNumColumns };
  explicit OpErrorModel(QObject* parent = nullptr);
  void setComparison(const TimelineComparison& comparison);
  void clear();
  const TimelineComparison& comparison() const { return cmp_; }

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

 private:
  TimelineComparison cmp_;
  bool has_ = false;
  ColumnUnit unit_;  // the predicted and measured columns share one unit
};

}  // namespace eellm::gui
