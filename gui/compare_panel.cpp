#include "gui/compare_panel.h"

#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include "gui/format.h"
#include "gui/timeline_view.h"

namespace eellm::gui {

ComparePanel::ComparePanel(QWidget* parent) : QWidget(parent) {
  auto* lay = new QHBoxLayout(this);
  auto* split = new QSplitter(Qt::Vertical, this);
  for (int i = 0; i < 2; ++i) {
    auto* box = new QWidget(split);
    auto* v = new QVBoxLayout(box);
    v->setContentsMargins(0, 0, 0, 0);
    names_[i] =
        new QLabel(i == 0 ? tr("A: (pin a plan or the current scenario)") : tr("B: (pin a plan or use what-if)"), box);
    views_[i] = new TimelineView(box);
    views_[i]->setMinimumHeight(80);  // two views and the labels fit the tab at 1280×720
    views_[i]->setPlaceholderText(i == 0 ? tr("Pin a plan (Plans tab) or the current scenario as A")
                                         : tr("Pin a plan as B, or turn a what-if knob"));
    v->addWidget(names_[i]);
    v->addWidget(views_[i], 1);
    split->addWidget(box);
  }
  // Aligned axes: zooming or panning one view moves the other.
  connect(views_[0], &TimelineView::axisChanged, views_[1], &TimelineView::setAxis);
  connect(views_[1], &TimelineView::axisChanged, views_[0], &TimelineView::setAxis);
  deltas_ = new QTableWidget(6, 3, this);
  deltas_->setHorizontalHeaderLabels({tr("A"), tr("B"), tr("B − A")});
  deltas_->setVerticalHeaderLabels(
      {tr("iteration"), tr("tokens/s"), tr("MFU"), tr("bubble"), tr("exit overhead"), tr("peak memory")});
  deltas_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  deltas_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  deltas_->setMinimumWidth(280);
  // Compact rows, and the table scrolls by itself rather than making the page taller than the tab.
  deltas_->verticalHeader()->setDefaultSectionSize(deltas_->fontMetrics().height() + 6);
  deltas_->setMinimumHeight(deltas_->verticalHeader()->defaultSectionSize() * 3);
  deltas_->setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Expanding);
  lay->addWidget(split, 3);
  side_ = new QVBoxLayout;
  side_->addWidget(deltas_);
  lay->addLayout(side_, 1);
}

void ComparePanel::addToSide(QWidget* widget) {
  side_->addWidget(widget);
}

void ComparePanel::setSlot(int slot, const QString& name, std::shared_ptr<const SimulationResult> result) {
  results_[slot] = std::move(result);
  names_[slot]->setText((slot == 0 ? QStringLiteral("A: ") : QStringLiteral("B: ")) + name);
  views_[slot]->setSimulation(results_[slot]);
  refresh();
}

QString ComparePanel::slotName(int slot) const {
  return names_[slot]->text();
}

void ComparePanel::refresh() {
  TimeNs total = 0;
  for (const auto& r : results_) {
    if (r) total = std::max(total, r->engine.timeline.end_time());
  }
  for (TimelineView* v : views_) v->setAxisTotal(total);
  views_[1]->setAxis(views_[0]->axis());
  for (int row = 0; row < 6; ++row) {
    double vals[2] = {0, 0};
    for (int s = 0; s < 2; ++s) {
      if (!results_[s]) continue;
      const SimulationSummary& m = results_[s]->summary;
      const double v[6] = {m.iteration_time_s, m.tokens_per_s,           m.mfu,
                           m.bubble_fraction,  m.exit_overhead_fraction, m.peak_memory_GiB};
      vals[s] = v[row];
    }
    auto text = [row](double v) {
      switch (row) {
        case 0:
          return format_seconds(v);
        case 1:
          return QString::number(v, 'f', 0);
        case 5:
          return QStringLiteral("%1 GiB").arg(v, 0, 'f', 2);
        default:
          return format_percent(v);
      }
    };
    for (int s = 0; s < 2; ++s) {
      deltas_->setItem(row, s, new QTableWidgetItem(results_[s] ? text(vals[s]) : QString()));
    }
    QString d;
    if (results_[0] && results_[1]) {
      const double diff = vals[1] - vals[0];
      d = (diff >= 0 ? QStringLiteral("+") : QString()) + text(diff);
      if (vals[0] != 0 && (row == 0 || row == 1 || row == 5))
        d += QStringLiteral(" (%1)").arg(format_percent(diff / vals[0]));
    }
    deltas_->setItem(row, 2, new QTableWidgetItem(d));
  }
}

QString ComparePanel::cell(int row, int column) const {
  const QTableWidgetItem* it = deltas_->item(row, column);
  return it ? it->text() : QString();
}

Scenario apply_what_if(const Scenario& base, const Layout& layout, const WhatIf& w) {
  Scenario s = base;
  if (w.microbatches > 0) s.training.global_batch_size = w.microbatches * s.training.micro_batch_size * layout.dp;
  if (w.exits_kept >= 0 && static_cast<size_t>(w.exits_kept) < s.exits.exit_layer_nums.size()) {
    const auto k = static_cast<size_t>(w.exits_kept);
    s.exits.exit_layer_nums.resize(k);
    if (s.exits.exit_layer_weight.size() > k) s.exits.exit_layer_weight.resize(std::max<size_t>(k, 1));
    if (s.exits.exit_layer_weight_init.size() > k) s.exits.exit_layer_weight_init.resize(k);
    if (k == 0) s.exits.exit_layer_weight.clear();
  }
  if (w.inter_node_bandwidth_GBps > 0) s.cluster.inter_node.bandwidth_GBps = w.inter_node_bandwidth_GBps;
  return s;
}

WhatIfPanel::WhatIfPanel(QWidget* parent) : QWidget(parent) {
  auto* form = new QFormLayout(this);
  form->setRowWrapPolicy(QFormLayout::WrapLongRows);  // narrow: a box goes under its label
  mb_ = new QSpinBox(this);
  mb_->setRange(1, 1 << 20);
  exits_ = new QSpinBox(this);
  exits_->setRange(0, 0);
  bw_ = new QDoubleSpinBox(this);
  bw_->setRange(0.1, 10000);
  bw_->setDecimals(1);
  bw_->setSuffix(QStringLiteral(" GB/s"));
  status_ = new QLabel(this);
  status_->setWordWrap(true);
  form->addRow(tr("microbatches per iteration"), mb_);
  form->addRow(tr("exits kept (first k)"), exits_);
  form->addRow(tr("inter-node bandwidth"), bw_);
  form->addRow(status_);
  connect(mb_, &QSpinBox::valueChanged, this, &WhatIfPanel::changed);
  connect(exits_, &QSpinBox::valueChanged, this, &WhatIfPanel::changed);
  connect(bw_, &QDoubleSpinBox::valueChanged, this, &WhatIfPanel::changed);
}

void WhatIfPanel::setBase(const Scenario& base, const Layout& layout) {
  loading_ = true;
  base_ = base;
  layout_ = layout;
  mb_->setValue(layout.num_microbatches);
  exits_->setRange(0, static_cast<int>(base.exits.exit_layer_nums.size()));
  exits_->setValue(static_cast<int>(base.exits.exit_layer_nums.size()));
  bw_->setValue(std::max(0.1, base.cluster.inter_node.bandwidth_GBps));
  loading_ = false;
}

WhatIf WhatIfPanel::whatIf() const {
  WhatIf w;
  w.microbatches = mb_->value();
  w.exits_kept = exits_->value();
  w.inter_node_bandwidth_GBps = bw_->value();
  return w;
}

void WhatIfPanel::changed() {
  if (loading_) return;
  const Scenario s = apply_what_if(base_, layout_, whatIf());
  auto r = simulate(s);
  if (!r.is_ok()) {
    status_->setText(QString::fromStdString(r.status().to_string()));
    emit simulated(nullptr, status_->text());
    return;
  }
  status_->setText(tr("what-if: %1").arg(format_seconds(r->summary.iteration_time_s)));
  emit simulated(std::make_shared<const SimulationResult>(std::move(r).value()), QString());
}

}  // namespace eellm::gui
