#include "gui/stage_model.h"

#include <QBrush>
#include <QColor>
#include <algorithm>
#include <cmath>
#include <limits>

#include "gui/format.h"

namespace eellm::gui {

namespace {

// The raw figure of a column (seconds for the time columns); *seconds says which.
double stage_value(const StageSummary& s, int column, bool* seconds) {
  *seconds = true;
  switch (column) {
    case StageModel::kBusy:
      return s.busy_s;
    case StageModel::kExitBusy:
      return s.exit_busy_s;
    case StageModel::kIdle:
      return s.idle_s;
    case StageModel::kBubbleDependency:
      return s.bubble_dependency_s;
    case StageModel::kBubbleComm:
      return s.bubble_exposed_comm_s;
    case StageModel::kBubbleImbalance:
      return s.bubble_imbalance_s;
    case StageModel::kBubbleExit:
      return s.bubble_exit_s;
    default:
      break;
  }
  *seconds = false;
  switch (column) {
    case StageModel::kStage:
      return s.stage;
    case StageModel::kPeakMemory:
      return s.peak_memory_GiB;
    case StageModel::kStaticMemory:
      return s.static_memory_GiB;
    case StageModel::kInFlight:
      return s.max_microbatches_in_flight;
    default:
      return 0;
  }
}

}  // namespace

StageModel::StageModel(QObject* parent) : QAbstractTableModel(parent) {}

void StageModel::setSummary(const SimulationSummary& summary, double device_memory_GiB) {
  beginResetModel();
  stages_ = summary.stages;
  capacity_GiB_ = device_memory_GiB;
  for (int c = 0; c < kNumColumns; ++c) {
    double largest = 0;
    bool seconds = false;
    for (const StageSummary& st : stages_) largest = std::max(largest, std::abs(stage_value(st, c, &seconds)));
    units_[static_cast<size_t>(c)] = ColumnUnit::for_largest(largest);
  }
  endResetModel();
}

int StageModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(stages_.size());
}
int StageModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kNumColumns;
}

QVariant StageModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount() || index.column() >= kNumColumns) return {};
  const StageSummary& s = stages_[static_cast<size_t>(index.row())];
  bool seconds = false;
  const double v = stage_value(s, index.column(), &seconds);
  if (role == Qt::UserRole) return v;
  if (role == Qt::TextAlignmentRole) return QVariant(Qt::AlignRight | Qt::AlignVCenter);
  if (role == Qt::ForegroundRole && index.column() == kPeakMemory && capacity_GiB_ > 0 &&
      s.peak_memory_GiB > capacity_GiB_) {
    return QBrush(QColor(200, 0, 0));
  }
  if (role != Qt::DisplayRole) return {};
  if (seconds) return units_[static_cast<size_t>(index.column())].format(v);
  if (index.column() == kPeakMemory || index.column() == kStaticMemory)
    return QStringLiteral("%1 GiB").arg(v, 0, 'f', 2);
  return static_cast<int>(v);
}

QVariant StageModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole) return {};
  if (orientation == Qt::Vertical) return section;
  static const char* names[kNumColumns] = {"stage", "busy",  "exit work",   "idle",          nullptr,    nullptr,
                                           nullptr, nullptr, "peak memory", "static memory", "in flight"};
  if (section < 0 || section >= kNumColumns) return {};
  if (section >= kBubbleDependency && section <= kBubbleExit)  // named as the CLI names them
    return tr("bubble: %1")
        .arg(QString::fromStdString(bubble_part_names()[static_cast<size_t>(section - kBubbleDependency)]));
  return tr(names[section]);
}

OpErrorModel::OpErrorModel(QObject* parent) : QAbstractTableModel(parent) {}

void OpErrorModel::setComparison(const TimelineComparison& comparison) {
  beginResetModel();
  cmp_ = comparison;
  has_ = true;
  double largest = 0;  // the ops set the unit; the iteration row reads in it too
  for (const OpKindError& o : cmp_.per_op) largest = std::max({largest, o.mean_predicted_s, o.mean_measured_s});
  unit_ = ColumnUnit::for_largest(largest > 0 ? largest : cmp_.predicted_iteration_s);
  endResetModel();
}

void OpErrorModel::clear() {
  beginResetModel();
  cmp_ = {};
  has_ = false;
  endResetModel();
}

int OpErrorModel::rowCount(const QModelIndex& parent) const {
  if (parent.isValid() || !has_) return 0;
  return static_cast<int>(cmp_.per_op.size()) + 1;
}
int OpErrorModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kNumColumns;
}

QVariant OpErrorModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount()) return {};
  const bool iteration = static_cast<size_t>(index.row()) == cmp_.per_op.size();
  // An op one side did not record is "not measured" (grey, NaN for sorting), never a perfect 0 %.
  const bool unmeasured = !iteration && (cmp_.per_op[static_cast<size_t>(index.row())].count_measured == 0 ||
                                         cmp_.per_op[static_cast<size_t>(index.row())].count_predicted == 0);
  if (role == Qt::ForegroundRole && index.column() == kError) {
    if (unmeasured) return QBrush(QColor(128, 128, 128));
    const double e =
        iteration ? cmp_.iteration_relative_error : cmp_.per_op[static_cast<size_t>(index.row())].relative_error;
    return QBrush(std::abs(e) > 0.2 ? QColor(200, 0, 0) : QColor(0, 120, 0));
  }
  if (unmeasured && (index.column() == kMeasured || index.column() == kError) &&
      (role == Qt::DisplayRole || role == Qt::UserRole)) {
    const OpKindError& o = cmp_.per_op[static_cast<size_t>(index.row())];
    if (role == Qt::UserRole) return std::numeric_limits<double>::quiet_NaN();
    if (o.count_measured == 0) return tr("not measured");
    return index.column() == kMeasured ? QVariant(unit_.format(o.mean_measured_s)) : QVariant(tr("not predicted"));
  }
  if (role != Qt::DisplayRole && role != Qt::UserRole) return {};
  const bool raw = role == Qt::UserRole;
  if (iteration) {
    switch (index.column()) {
      case kOp:
        return tr("iteration");
      case kCountPredicted:
      case kCountMeasured:
        return raw ? QVariant(1) : QVariant(QString());
      case kPredicted:
        return raw ? QVariant(cmp_.predicted_iteration_s) : QVariant(unit_.format(cmp_.predicted_iteration_s));
      case kMeasured:
        return raw ? QVariant(cmp_.measured_iteration_s) : QVariant(unit_.format(cmp_.measured_iteration_s));
      case kError:
        return raw ? QVariant(cmp_.iteration_relative_error) : QVariant(format_percent(cmp_.iteration_relative_error));
      default:
        return {};
    }
  }
  const OpKindError& o = cmp_.per_op[static_cast<size_t>(index.row())];
  switch (index.column()) {
    case kOp:
      return QString::fromLatin1(to_string(o.op)) + (o.exit_part ? QStringLiteral(" (exit)") : QString());
    case kCountPredicted:
      return o.count_predicted;
    case kCountMeasured:
      return o.count_measured;
    case kPredicted:
      return raw ? QVariant(o.mean_predicted_s) : QVariant(unit_.format(o.mean_predicted_s));
    case kMeasured:
      return raw ? QVariant(o.mean_measured_s) : QVariant(unit_.format(o.mean_measured_s));
    case kError:
      return raw ? QVariant(o.relative_error) : QVariant(format_percent(o.relative_error));
    default:
      return {};
  }
}

QVariant OpErrorModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole) return {};
  if (orientation == Qt::Vertical) return section + 1;
  static const char* names[kNumColumns] = {"op",   "# predicted", "# measured", "mean predicted", "mean measured",
                                           "error"};
  return section >= 0 && section < kNumColumns ? tr(names[section]) : QVariant();
}

}  // namespace eellm::gui
