// ComparePanel: two simulated iterations side by side (A above B) on aligned time axes — both
// views span the longer iteration and zoom/pan together — with a table of metric deltas.
// WhatIfPanel: spin boxes (microbatches, exits kept, inter-node bandwidth) applied to a base
// scenario; every change re-simulates and emits the variant (the main window shows it as B).
// GUI thread only.
#pragma once

#include <QWidget>
#include <memory>

#include "sim/simulate.h"

class QVBoxLayout;
class QLabel;
class QTableWidget;
class QSpinBox;
class QDoubleSpinBox;

namespace eellm::gui {

class TimelineView;

class ComparePanel : public QWidget {
  Q_OBJECT
 public:
  explicit ComparePanel(QWidget* parent = nullptr);
  // slot 0 = A, 1 = B.
  void setSlot(int slot, const QString& name, std::shared_ptr<const SimulationResult> result);
  const SimulationResult* slot(int slot) const { return results_[slot].get(); }
  // The label above a slot ("A: ee-llm-7b (current scenario)", "A: … (pinned)").
  QString slotName(int slot) const;
  TimelineView* view(int slot) const { return views_[slot]; }
  // The delta table: rows iteration, tokens/s, MFU, bubble, exit overhead, peak memory.
  QString cell(int row, int column) const;
  // Adds a widget under the delta table (the what-if knobs): the timelines keep the width.
  void addToSide(QWidget* widget);

 private:
  void refresh();
  std::shared_ptr<const SimulationResult> results_[2];
  TimelineView* views_[2] = {nullptr, nullptr};
  QLabel* names_[2] = {nullptr, nullptr};
  QTableWidget* deltas_ = nullptr;
  QVBoxLayout* side_ = nullptr;
};

// The what-if knobs; variant(base) applies them.
struct WhatIf {
  int microbatches = 0;                  // 0 → keep; else global_batch = m · micro_batch · dp
  int exits_kept = -1;                   // -1 → keep all; else the first k exits
  double inter_node_bandwidth_GBps = 0;  // 0 → keep
};
Scenario apply_what_if(const Scenario& base, const Layout& base_layout, const WhatIf& w);

class WhatIfPanel : public QWidget {
  Q_OBJECT
 public:
  explicit WhatIfPanel(QWidget* parent = nullptr);
  // Resets the knobs to the base scenario's values.
  void setBase(const Scenario& base, const Layout& layout);
  WhatIf whatIf() const;
  QSpinBox* microbatchesBox() const { return mb_; }
  QSpinBox* exitsBox() const { return exits_; }
  QDoubleSpinBox* bandwidthBox() const { return bw_; }

 signals:
  // A re-simulated variant (null result with a message on failure).
  void simulated(std::shared_ptr<const eellm::SimulationResult> result, const QString& error);

 private:
  void changed();
  Scenario base_;
  Layout layout_;
  bool loading_ = false;
  QSpinBox* mb_ = nullptr;
  QSpinBox* exits_ = nullptr;
  QDoubleSpinBox* bw_ = nullptr;
  QLabel* status_ = nullptr;
};

}  // namespace eellm::gui
