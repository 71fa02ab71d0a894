// MetricsPanel: the headline figures of a simulated iteration (iteration time, backbone tokens/s,
// tokens/s of EE bubble-filling microbatches shown apart, MFU,
// bubble fraction with its attribution, exit overhead vs the same run without exits, peak memory,
// layout), the what-if cost of the training budget (time to train, GPU-hours and cost, energy,
// failures and checkpoints, goodput; sim/cost_report.h) above the per-stage table (StageModel). MemoryCharts: per-stage
// peak and static memory as bars against the device capacity, and memory over time per stage (Qt Charts). GUI thread
// only.
#pragma once

#include <QHash>
#include <QWidget>

#include "sim/simulate.h"

class QLabel;
class QTableView;
class QChartView;
class QChart;

namespace eellm::gui {

class StageModel;

class MetricsPanel : public QWidget {
  Q_OBJECT
 public:
  explicit MetricsPanel(QWidget* parent = nullptr);
  void setResult(const SimulationResult& result);
  void clear();
  // "iteration", "tokens_per_s" (backbone), "fill_tokens_per_s" (EE bubble filling, apart),
  // "mfu", "bubble", "exit_overhead", "memory", "layout", "critical_path"; cost: "time_to_train",
  // "cost", "energy", "failures", "checkpoints"
  QString value(const QString& key) const;
  StageModel* stageModel() const { return stages_; }

 private:
  void setCost(const SimulationResult& result);
  QHash<QString, QLabel*> values_;
  StageModel* stages_ = nullptr;
  QTableView* table_ = nullptr;
};

class MemoryCharts : public QWidget {
  Q_OBJECT
 public:
  explicit MemoryCharts(QWidget* parent = nullptr);
  void setResult(const SimulationResult& result);
  void clear();
  // Number of bar sets / line series drawn (tests).
  int barCount() const;
  int lineSeriesCount() const;

 private:
  QChartView* bars_view_ = nullptr;
  QChartView* time_view_ = nullptr;
};

}  // namespace eellm::gui
