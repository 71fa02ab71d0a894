#include "gui/plans_panel.h"

#include <QComboBox>
#include <QCoreApplication>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QSortFilterProxyModel>
#include <QSpinBox>
#include <QTableView>
#include <QThread>
#include <QVBoxLayout>
#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

#include "gui/format.h"

namespace eellm::gui {

namespace {
// Worker threads of all panels; joined at exit so none outlives the objects it posts to.
struct Workers {
  std::mutex mu;
  std::vector<std::thread> threads;
  ~Workers() {
    for (std::thread& t : threads) {
      if (t.joinable()) t.join();
    }
  }
};
Workers& workers() {
  static Workers w;
  return w;
}
}  // namespace

PlansModel::PlansModel(QObject* parent) : QAbstractTableModel(parent) {}

void PlansModel::setPlans(std::vector<PlanEntry> plans) {
  beginResetModel();
  plans_ = std::move(plans);
  double largest = 0;  // the time column in one unit (the CLI's table: seconds throughout)
  for (const PlanEntry& e : plans_) largest = std::max({largest, e.metrics.ranking_time_s(), e.metrics.time_s()});
  time_unit_ = ColumnUnit::for_largest(largest);
  endResetModel();
}

int PlansModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(plans_.size());
}
int PlansModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kNumColumns;
}

QVariant PlansModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount()) return {};
  const PlanEntry& p = plans_[static_cast<size_t>(index.row())];
  const PlanCandidate& c = p.candidate;
  const PlanMetrics& m = p.metrics;
  const bool raw = role == Qt::UserRole;
  if (role == Qt::ToolTipRole && index.column() == kRunsOn) {
    QStringList why;
    for (LaunchTarget t : kLaunchTargets)
      if (const std::string w = launch_problem(t, c); !w.empty())
        why << QStringLiteral("%1: %2").arg(QString::fromLatin1(to_string(t)), QString::fromStdString(w));
    return why.isEmpty() ? tr("every target can launch this plan") : why.join(QLatin1Char('\n'));
  }
  if (role == Qt::ToolTipRole && index.column() == kIteration) return QString::fromLatin1(kRankingKey);
  if (role == Qt::ToolTipRole) return QString::fromStdString(to_string(c));
  if (role == Qt::TextAlignmentRole) {
    return index.column() == kSchedule || index.column() == kRecompute || index.column() == kLabel
               ? QVariant(Qt::AlignLeft | Qt::AlignVCenter)
               : QVariant(Qt::AlignRight | Qt::AlignVCenter);
  }
  if (role != Qt::DisplayRole && !raw) return {};
  switch (index.column()) {
    case kRank:
      return index.row() + 1;
    case kGpus:
      return c.world_size;
    case kTp:
      return c.tp;
    case kPp:
      return c.pp;
    case kDp:
      return c.dp;
    case kVp:
      return c.vp;
    case kMicroBatch:
      return c.micro_batch_size;
    case kSchedule:
      return QString::fromLatin1(to_string(c.schedule));
    case kRecompute:
      return QString::fromLatin1(to_string(c.recompute));
    case kIteration:  // the ranking key; ee-fill trains the backbone on fewer microbatches: both figures
      if (raw) return m.ranking_time_s();
      return m.backbone_fraction < 1.0
                 ? tr("%1 (iteration %2)").arg(time_unit_.format(m.ranking_time_s()), time_unit_.format(m.time_s()))
                 : time_unit_.format(m.ranking_time_s());
    case kTokens:
      return raw ? QVariant(m.tokens_per_s) : QVariant(QString::number(m.tokens_per_s, 'f', 0));
    case kMfu:
      return raw ? QVariant(m.mfu) : QVariant(format_percent(m.mfu));
    case kBubble:
      return raw ? QVariant(m.bubble_fraction) : QVariant(format_percent(m.bubble_fraction));
    case kExitOverhead:
      return raw ? QVariant(m.exit_overhead_fraction) : QVariant(format_percent(m.exit_overhead_fraction));
    case kMemory:
      return raw ? QVariant(m.peak_memory_GiB) : QVariant(QStringLiteral("%1 GiB").arg(m.peak_memory_GiB, 0, 'f', 1));
    case kRunsOn: {
      QStringList on;
      for (LaunchTarget t : kLaunchTargets)
        if (launch_problem(t, c).empty()) on << QString::fromLatin1(to_string(t));
      return on.join(QLatin1Char(','));
    }
    case kLabel:
      return QString::fromStdString(to_string(c));
    default:
      return {};
  }
}

QVariant PlansModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole) return {};
  if (orientation == Qt::Vertical) return section + 1;
  static const char* names[kNumColumns] = {"#",           "GPUs",
                                           "TP",          "PP",
                                           "DP",          "VP",
                                           "mbs",         "schedule",
                                           "recompute",   "s per backbone batch",
                                           "tokens/s",    "MFU",
                                           "bubble",      "exit overhead",
                                           "peak memory", "runs on",
                                           "plan"};
  return section >= 0 && section < kNumColumns ? tr(names[section]) : QVariant();
}

PlansPanel::PlansPanel(QWidget* parent) : QWidget(parent), generation_(std::make_shared<std::atomic<int>>(0)) {
  auto* lay = new QVBoxLayout(this);
  auto* bar = new QHBoxLayout;
  gpus_ = new QSpinBox(this);
  gpus_->setRange(1, 1 << 20);
  gpus_->setPrefix(tr("GPU budget: "));
  plan_ = new QPushButton(tr("Plan"), this);
  cancel_ = new QPushButton(tr("Cancel"), this);
  cancel_->setEnabled(false);
  progress_ = new QProgressBar(this);
  progress_->setRange(0, 1000);
  progress_->setValue(0);
  launch_ = new QComboBox(this);
  launch_->addItem(tr("launchable with: any"));
  for (LaunchTarget t : kLaunchTargets)
    launch_->addItem(tr("launchable with: %1").arg(QString::fromLatin1(to_string(t))));
  launch_->setToolTip(
      tr("Only plans this system can launch (eellm runs every schedule; EE-LLM: 1F1B/EE-1F1B and "
         "bubble filling, even layer splits; Megatron-LM: no early exits)"));
  bar->addWidget(gpus_);
  bar->addWidget(launch_);
  bar->addWidget(plan_);
  bar->addWidget(cancel_);
  bar->addWidget(progress_, 1);
  lay->addLayout(bar);
  status_ = new QLabel(this);
  status_->setWordWrap(true);
  lay->addWidget(status_);
  table_ = new QTableView(this);
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setSelectionMode(QAbstractItemView::SingleSelection);
  table_->setSortingEnabled(true);
  table_->horizontalHeader()->setStretchLastSection(true);
  lay->addWidget(table_, 1);
  auto* actions = new QHBoxLayout;
  auto* use = new QPushButton(tr("Use this plan"), this);
  auto* pin_a = new QPushButton(tr("Pin as A"), this);
  auto* pin_b = new QPushButton(tr("Pin as B"), this);
  actions->addWidget(use);
  actions->addWidget(pin_a);
  actions->addWidget(pin_b);
  actions->addStretch(1);
  lay->addLayout(actions);
  connect(plan_, &QPushButton::clicked, this, [this] { startPlanning(); });
  connect(cancel_, &QPushButton::clicked, this, &PlansPanel::cancel);
  connect(use, &QPushButton::clicked, this, [this] { emitForSelection(-1); });
  connect(pin_a, &QPushButton::clicked, this, [this] { emitForSelection(0); });
  connect(pin_b, &QPushButton::clicked, this, [this] { emitForSelection(1); });
  model_ = new PlansModel(this);
  proxy_ = new QSortFilterProxyModel(this);
  proxy_->setSourceModel(model_);
  proxy_->setSortRole(Qt::UserRole);
  table_->setModel(proxy_);
  table_->sortByColumn(PlansModel::kRank, Qt::AscendingOrder);  // the planner's ranking (kRankingKey)
  connect(table_, &QTableView::doubleClicked, this, [this] { emitForSelection(-1); });
  status_->setText(tr("Search the parallel layouts of this model on the GPU budget."));
}

PlansPanel::~PlansPanel() {
  generation_->fetch_add(1);  // whatever still runs is discarded
}

void PlansPanel::setBase(const Scenario& base) {
  base_ = base;
  gpus_->setValue(std::max(1, base.parallel.world_size > 0 ? base.parallel.world_size : base.cluster.total_gpus()));
}

int PlansPanel::planCount() const {
  return model_->rowCount();
}

QString PlansPanel::statusText() const {
  return status_->text();
}

void PlansPanel::cancel() {
  if (!running_) return;
  generation_->fetch_add(1);
  running_ = false;
  plan_->setEnabled(blocked_.isEmpty());
  cancel_->setEnabled(false);
  progress_->setValue(0);
  status_->setText(tr("cancelled"));
  emit planningFinished(false);
}

void PlansPanel::setBlocked(const QString& why) {
  blocked_ = why;
  plan_->setEnabled(!running_ && why.isEmpty());
  plan_->setToolTip(why);
}

bool PlansPanel::startPlanning() {
  if (running_ || !blocked_.isEmpty()) return false;
  running_ = true;
  plan_->setEnabled(false);
  cancel_->setEnabled(true);
  progress_->setValue(0);
  status_->setText(tr("planning on %1 GPUs…").arg(gpus_->value()));
  const int gen = generation_->fetch_add(1) + 1;
  auto generation = generation_;
  QPointer<PlansPanel> self(this);
  const Scenario base = base_;
  PlanOptions opt;
  opt.gpus = gpus_->value();
  opt.top_k = 20;
  if (launch_->currentIndex() > 0) opt.launchable_with = {kLaunchTargets[launch_->currentIndex() - 1]};
  opt.threads = std::max(1, QThread::idealThreadCount() - 1);  // leave a core to the GUI
  // Cancel (or a newer search, or closing the panel) bumps the generation: the planner's threads
  // see it before their next block or simulation and plan() returns the cancelled status.
  opt.cancelled = [generation, gen] { return generation->load() != gen; };
  ++threads_in_flight_;
  std::lock_guard<std::mutex> lock(workers().mu);
  workers().threads.emplace_back([self, generation, gen, base, opt]() mutable {
    int last_permille = -1;
    std::string last_phase;
    opt.progress = [&](const char* phase, int64_t done, int64_t total) {
      if (generation->load() != gen) return;
      const int permille = total > 0 ? static_cast<int>(1000 * done / total) : 0;
      if (permille == last_permille && last_phase == phase) return;
      last_permille = permille;
      last_phase = phase;
      const QString ph = QString::fromLatin1(phase);
      QMetaObject::invokeMethod(
          qApp,
          [self, generation, gen, ph, permille, done, total] {
            if (!self || generation->load() != gen) return;
            self->progress_->setValue(permille);
            self->status_->setText(tr("%1: %2 / %3").arg(ph).arg(done).arg(total));
          },
          Qt::QueuedConnection);
    };
    auto result = std::make_shared<StatusOr<PlanResult>>(plan(base, opt));
    QMetaObject::invokeMethod(
        qApp,
        [self, generation, gen, result] {
          if (!self) return;
          --self->threads_in_flight_;
          self->last_outcome_ =
              result->is_ok() ? QStringLiteral("ok") : QString::fromStdString(result->status().to_string());
          self->last_cancelled_ = result->status().is_cancelled();  // the code, never the text
          if (generation->load() != gen) return;
          self->running_ = false;
          self->plan_->setEnabled(self->blocked_.isEmpty());
          self->cancel_->setEnabled(false);
          self->progress_->setValue(1000);
          if (!result->is_ok()) {
            // A search cancelled through the hook without the panel's Cancel reads as one.
            self->status_->setText(result->status().is_cancelled()
                                       ? tr("cancelled")
                                       : QString::fromStdString(result->status().to_string()));
            emit self->planningFinished(false);
            return;
          }
          const PlanResult& r = result->value();
          self->model_->setPlans(r.ranked);
          self->status_->setText(tr("%1 candidates, %2 passed the constraints, %3 simulated (closed-form "
                                    "error on them: mean %7, max %8); %4 plans ranked by time per backbone "
                                    "batch (device %5, budget %6 GiB)")
                                     .arg(r.candidates)
                                     .arg(r.estimated)
                                     .arg(r.simulated)
                                     .arg(r.ranked.size())
                                     .arg(QString::fromStdString(r.device))
                                     .arg(r.memory_budget_GiB, 0, 'f', 1)
                                     .arg(format_percent(r.estimate_error_mean), format_percent(r.estimate_error_max)));
          emit self->planningFinished(true);
        },
        Qt::QueuedConnection);
  });
  return true;
}

Scenario PlansPanel::planScenario(int proxy_row) const {
  const QModelIndex src = proxy_->mapToSource(proxy_->index(proxy_row, 0));
  return apply_candidate(base_, model_->plans()[static_cast<size_t>(src.row())].candidate);
}

void PlansPanel::emitForSelection(int slot) {
  const QModelIndex cur = table_->currentIndex();
  if (!cur.isValid()) return;
  Scenario s = planScenario(cur.row());
  const QModelIndex src = proxy_->mapToSource(cur);
  s.name = plan_scenario_name(base_.name, model_->plans()[static_cast<size_t>(src.row())].candidate);  // as --emit
  const QString label = QString::fromStdString(to_string(model_->plans()[static_cast<size_t>(src.row())].candidate));
  if (slot < 0) {
    emit useScenario(s, label);
  } else {
    emit pinScenario(slot, s, label);
  }
}

}  // namespace eellm::gui
