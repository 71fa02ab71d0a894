#include "gui/metrics_panel.h"

#include <QBarSet>
#include <QChart>
#include <QChartView>
#include <QCursor>
#include <QFormLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineSeries>
#include <QSortFilterProxyModel>
#include <QStackedBarSeries>
#include <QTableView>
#include <QToolTip>
#include <QVBoxLayout>
#include <QValueAxis>

#include "gui/format.h"
#include "gui/stage_model.h"
#include "sim/cost_report.h"

namespace eellm::gui {

MetricsPanel::MetricsPanel(QWidget* parent) : QWidget(parent) {
  auto* top = new QVBoxLayout(this);
  auto* form = new QFormLayout;
  top->addLayout(form);
  auto row = [&](const QString& key, const QString& label) {
    auto* v = new QLabel(QStringLiteral("—"), this);
    v->setTextInteractionFlags(Qt::TextSelectableByMouse);
    v->setWordWrap(true);
    form->addRow(label, v);
    values_.insert(key, v);
  };
  row(QStringLiteral("layout"), tr("Layout"));
  row(QStringLiteral("iteration"), tr("Iteration time"));
  row(QStringLiteral("tokens_per_s"), tr("Throughput"));
  row(QStringLiteral("fill_tokens_per_s"), tr("Bubble filling"));
  row(QStringLiteral("mfu"), tr("MFU"));
  row(QStringLiteral("bubble"), tr("Pipeline bubble"));
  row(QStringLiteral("exit_overhead"), tr("Exit overhead"));
  row(QStringLiteral("memory"), tr("Peak memory"));
  row(QStringLiteral("critical_path"), tr("Critical path"));
  row(QStringLiteral("time_to_train"), tr("Time to train"));
  row(QStringLiteral("cost"), tr("Cost"));
  row(QStringLiteral("energy"), tr("Energy"));
  row(QStringLiteral("failures"), tr("Failures"));
  row(QStringLiteral("checkpoints"), tr("Checkpoints"));
  stages_ = new StageModel(this);
  auto* proxy = new QSortFilterProxyModel(this);
  proxy->setSourceModel(stages_);
  proxy->setSortRole(Qt::UserRole);
  table_ = new QTableView(this);
  table_->setModel(proxy);
  table_->setSortingEnabled(true);
  table_->sortByColumn(StageModel::kStage, Qt::AscendingOrder);
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  table_->verticalHeader()->hide();
  top->addWidget(table_, 1);
}

void MetricsPanel::clear() {
  for (QLabel* l : values_) l->setText(QStringLiteral("—"));
  stages_->setSummary({}, 0);
}

void MetricsPanel::setResult(const SimulationResult& r) {
  const SimulationSummary& s = r.summary;
  values_[QStringLiteral("layout")]->setText(
      QStringLiteral("%1 — tp %2 × pp %3 × dp %4, vp %5, %6 GPUs, %7 microbatches%8")
          .arg(QString::fromStdString(s.schedule))
          .arg(s.tp)
          .arg(s.pp)
          .arg(s.dp)
          .arg(s.vp)
          .arg(s.world_size)
          .arg(s.num_microbatches)
          .arg(s.num_fill_warmup + s.num_fill_cooldown > 0
                   ? QStringLiteral(" (fill: %1 warm-up, %2 cool-down)").arg(s.num_fill_warmup).arg(s.num_fill_cooldown)
                   : QString()));
  values_[QStringLiteral("iteration")]->setText(format_seconds(s.iteration_time_s));
  values_[QStringLiteral("tokens_per_s")]->setText(QStringLiteral("%1 backbone tokens/s, %2 per GPU")
                                                       .arg(s.tokens_per_s, 0, 'f', 0)
                                                       .arg(format_flop_rate(s.model_tflops_per_gpu * 1e12)));
  // EE bubble filling: the fill microbatches train exits (and later stages) only, so their tokens
  // are reported apart from the backbone throughput above, never added to it.
  const int fills = s.num_microbatches - s.num_backbone_microbatches;
  values_[QStringLiteral("fill_tokens_per_s")]->setText(
      s.fill_tokens_per_s > 0 ? tr("%1 tokens/s in %2 of %3 microbatches (warm-up fills / truncated cool-down: "
                                   "exits and partial backbone only)")
                                    .arg(s.fill_tokens_per_s, 0, 'f', 0)
                                    .arg(fills)
                                    .arg(s.num_microbatches)
                              : tr("none (%1 schedule)").arg(QString::fromStdString(s.schedule)));
  values_[QStringLiteral("mfu")]->setText(format_percent(s.mfu));
  const std::vector<std::string>& part = bubble_part_names();  // named as the CLI names them
  values_[QStringLiteral("bubble")]->setText(
      QStringLiteral("%1 of pp × iteration — %2 %3, %4 %5, %6 %7, %8 %9")
          .arg(format_percent(s.bubble_fraction), QString::fromStdString(part[0]),
               format_percent(s.bubble_dependency_fraction), QString::fromStdString(part[1]),
               format_percent(s.bubble_exposed_comm_fraction), QString::fromStdString(part[2]),
               format_percent(s.bubble_imbalance_fraction), QString::fromStdString(part[3]),
               format_percent(s.bubble_exit_fraction)));
  values_[QStringLiteral("exit_overhead")]->setText(
      s.iteration_time_no_exits_s > 0 ? QStringLiteral("%1 (%2 without exits)")
                                            .arg((s.exit_overhead_fraction >= 0 ? QStringLiteral("+") : QString()) +
                                                     format_percent(s.exit_overhead_fraction),
                                                 format_seconds(s.iteration_time_no_exits_s))
                                      : tr("n/a (no exits)"));
  const std::string over = memory_overflow(s);  // a plan that does not fit says so, in red
  values_[QStringLiteral("memory")]->setText(
      QStringLiteral("%1 GiB (device %2 GiB)%3")
          .arg(s.peak_memory_GiB, 0, 'f', 2)
          .arg(r.scenario.cluster.device.memory_GiB, 0, 'f', 0)
          .arg(over.empty() ? QString() : QStringLiteral(" — ") + QString::fromStdString(over)));
  values_[QStringLiteral("memory")]->setStyleSheet(over.empty() ? QString() : QStringLiteral("color: #c00;"));
  QString cp = QString::fromStdString(s.critical_path);
  if (cp.size() > 400) cp = cp.left(400) + QStringLiteral(" …");
  values_[QStringLiteral("critical_path")]->setText(cp);
  stages_->setSummary(s, r.scenario.cluster.device.memory_GiB);
  setCost(r);
}

void MetricsPanel::setCost(const SimulationResult& r) {
  const auto c = training_cost_of(r);
  if (!c.is_ok()) {
    values_[QStringLiteral("time_to_train")]->setText(QString::fromStdString(c.status().message()));
    for (const char* k : {"cost", "energy", "failures", "checkpoints"})
      values_[QLatin1String(k)]->setText(QStringLiteral("—"));
    return;
  }
  const CostSpec& k = r.scenario.cluster.cost;
  values_[QStringLiteral("time_to_train")]->setText(tr("%1 days for %2 iterations (goodput %3)")
                                                        .arg(c->wall_s / 86400, 0, 'f', 2)
                                                        .arg(c->iterations, 0, 'f', 0)
                                                        .arg(format_percent(c->goodput)));
  values_[QStringLiteral("cost")]->setText(tr("%1 USD: %2 GPU-hours at %3 USD")
                                               .arg(c->cost_usd, 0, 'f', 0)
                                               .arg(c->gpu_hours, 0, 'f', 0)
                                               .arg(k.price_per_gpu_hour_usd, 0, 'f', 2));
  values_[QStringLiteral("energy")]->setText(tr("%1 kWh (GPUs busy %2, idle %3, node overhead %4; PUE %5)")
                                                 .arg(c->energy_kWh, 0, 'f', 0)
                                                 .arg(c->energy_gpu_busy_kWh, 0, 'f', 0)
                                                 .arg(c->energy_gpu_idle_kWh, 0, 'f', 0)
                                                 .arg(c->energy_node_kWh, 0, 'f', 0)
                                                 .arg(k.pue, 0, 'f', 2));
  values_[QStringLiteral("failures")]->setText(
      c->job_mtbf_s > 0 ? tr("%1 expected interruptions (job MTBF %2 h): lost work %3 h, restarts %4 h")
                              .arg(c->interruptions, 0, 'f', 1)
                              .arg(c->job_mtbf_s / 3600, 0, 'f', 1)
                              .arg(c->lost_work_s / 3600, 0, 'f', 1)
                              .arg(c->restart_total_s / 3600, 0, 'f', 1)
                        : tr("not modelled (node MTBF 0)"));
  values_[QStringLiteral("checkpoints")]->setText(c->checkpoint_write_s > 0
                                                      ? tr("%1 GB, written in %2 every %3 (Young/Daly): %4 h in all")
                                                            .arg(c->checkpoint_bytes / 1e9, 0, 'f', 1)
                                                            .arg(format_seconds(c->checkpoint_write_s))
                                                            .arg(format_seconds(c->checkpoint_interval_s))
                                                            .arg(c->checkpoint_overhead_s / 3600, 0, 'f', 2)
                                                      : tr("not modelled (checkpoint bandwidth 0)"));
}

QString MetricsPanel::value(const QString& key) const {
  QLabel* l = values_.value(key);
  return l ? l->text() : QString();
}

MemoryCharts::MemoryCharts(QWidget* parent) : QWidget(parent) {
  auto* lay = new QHBoxLayout(this);
  bars_view_ = new QChartView(new QChart, this);
  time_view_ = new QChartView(new QChart, this);
  bars_view_->setRenderHint(QPainter::Antialiasing);
  time_view_->setRenderHint(QPainter::Antialiasing);
  bars_view_->chart()->setTitle(tr("Peak memory per stage"));  // short: it fits a 1280-wide window
  bars_view_->setToolTip(
      tr("static: weights, gradients and optimizer state; activations: the peak of those in flight"));
  time_view_->chart()->setTitle(tr("Memory over the iteration"));
  lay->addWidget(bars_view_, 2);
  lay->addWidget(time_view_, 3);
}

void MemoryCharts::clear() {
  bars_view_->chart()->removeAllSeries();
  time_view_->chart()->removeAllSeries();
  for (QAbstractAxis* a : bars_view_->chart()->axes()) bars_view_->chart()->removeAxis(a);
  for (QAbstractAxis* a : time_view_->chart()->axes()) time_view_->chart()->removeAxis(a);
}

void MemoryCharts::setResult(const SimulationResult& r) {
  clear();
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  const double capacity = r.scenario.cluster.device.memory_GiB;
  // Bars: static + peak activations per stage, stacked.
  QChart* bc = bars_view_->chart();
  auto* stat = new QBarSet(tr("static"));
  auto* act = new QBarSet(tr("activations"));
  QStringList cats;
  double ymax = capacity;
  for (const StageSummary& s : r.summary.stages) {
    *stat << s.static_memory_GiB;
    *act << std::max(0.0, s.peak_memory_GiB - s.static_memory_GiB);
    cats << QString::number(s.stage);  // the axis is titled "stage": labels stay legible at PP 16
    ymax = std::max(ymax, s.peak_memory_GiB);
  }
  stat->setColor(QColor(0x5b, 0x6b, 0x7d));
  act->setColor(QColor(0x3b, 0x82, 0xd6));
  auto* series = new QStackedBarSeries;
  series->append(stat);
  series->append(act);
  bc->addSeries(series);
  auto* cap = new QLineSeries;
  cap->setName(tr("capacity"));
  cap->setPen(QPen(QColor(200, 0, 0), 2, Qt::DashLine));
  cap->append(-0.5, capacity);
  cap->append(std::max<qsizetype>(1, cats.size()) - 0.5, capacity);
  bc->addSeries(cap);
  // Stages on a value axis: one tick per stage up to 8, else every 2nd, 4th, … (labels never elided).
  auto* xa = new QValueAxis;
  xa->setRange(-0.5, static_cast<double>(std::max<qsizetype>(1, cats.size())) - 0.5);
  xa->setTickType(QValueAxis::TicksDynamic);
  xa->setTickAnchor(0);
  xa->setTickInterval(std::max(1.0, nice_step(0, static_cast<double>(cats.size()), 8)));
  xa->setLabelFormat(QStringLiteral("%.0f"));
  xa->setGridLineVisible(false);
  xa->setTitleText(tr("stage"));
  auto* ya = new QValueAxis;
  set_nice_range(ya, 0, ymax * 1.05 + 1e-9);
  ya->setTitleText(tr("GiB"));
  bc->addAxis(xa, Qt::AlignBottom);
  bc->addAxis(ya, Qt::AlignLeft);
  series->attachAxis(xa);
  series->attachAxis(ya);
  cap->attachAxis(xa);
  cap->attachAxis(ya);

  // Memory over time, one step line per stage.
  QChart* tc = time_view_->chart();
  auto* tx = new QValueAxis;
  auto* ty = new QValueAxis;

  ty->setTitleText(tr("GiB"));
  tc->addAxis(tx, Qt::AlignBottom);
  tc->addAxis(ty, Qt::AlignLeft);
  const int pp = static_cast<int>(r.memory.ranks.size());
  std::vector<QLineSeries*> lines(static_cast<size_t>(pp), nullptr);
  std::vector<double> last(static_cast<size_t>(pp), 0.0);
  double tmax = ns_to_seconds(r.engine.iteration_ns), gmax = 0;
  for (const MemorySample& m : r.memory.samples) tmax = std::max(tmax, ns_to_seconds(m.t));
  const TimeUnit unit = time_unit_for(tmax);  // the axis reads in s for a long iteration, ms for a short one
  tx->setTitleText(tr("time (%1)").arg(QString::fromUtf8(unit.name)));
  for (int k = 0; k < pp; ++k) {
    lines[static_cast<size_t>(k)] = new QLineSeries;
    lines[static_cast<size_t>(k)]->setName(QStringLiteral("stage %1").arg(k));
  }
  for (const MemorySample& m : r.memory.samples) {
    if (m.rank < 0 || m.rank >= pp) continue;
    const double t = ns_to_seconds(m.t) / unit.seconds, g = static_cast<double>(m.bytes) / kGiB;
    QLineSeries* l = lines[static_cast<size_t>(m.rank)];
    if (l->count() > 0) l->append(t, last[static_cast<size_t>(m.rank)]);  // step
    l->append(t, g);
    last[static_cast<size_t>(m.rank)] = g;
    gmax = std::max(gmax, g);
  }
  // Beyond 8 stages the legend's names no longer fit: it hides and hovering a line names its stage.
  tc->legend()->setVisible(pp <= 8);
  for (QLineSeries* l : lines) {
    connect(l, &QLineSeries::hovered, l, [l](const QPointF&, bool on) {
      if (on) QToolTip::showText(QCursor::pos(), l->name());
    });
    if (l->count() > 0) l->append(tmax / unit.seconds, l->at(l->count() - 1).y());
    tc->addSeries(l);
    l->attachAxis(tx);
    l->attachAxis(ty);
  }
  set_nice_range(tx, 0, std::max(tmax / unit.seconds, 1e-6));
  set_nice_range(ty, 0, std::max(gmax, capacity) * 1.05 + 1e-9);
}

int MemoryCharts::barCount() const {
  int n = 0;
  for (QAbstractSeries* s : bars_view_->chart()->series()) {
    if (auto* b = qobject_cast<QStackedBarSeries*>(s))
      n += b->count() > 0 ? static_cast<int>(b->barSets().front()->count()) : 0;
  }
  return n;
}

int MemoryCharts::lineSeriesCount() const {
  return static_cast<int>(time_view_->chart()->series().size());
}

}  // namespace eellm::gui
