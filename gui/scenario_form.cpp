#include "gui/scenario_form.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSet>
#include <QSpinBox>
#include <QTableView>
#include <QVBoxLayout>

#include "gui/exit_ruler.h"
#include "gui/exits_model.h"
#include "gui/guarded_read.h"
#include "model/layout.h"
#include "model/scenario_fields.h"
#include "model/scenario_io.h"

namespace eellm::gui {
namespace {

template <typename E>
QStringList enum_names() {
  QStringList out;
  for (E v : enum_values<E>()) out << QString::fromLatin1(to_string(v));
  return out;
}

template <typename E>
int enum_index(E v) {
  const auto& vals = enum_values<E>();
  for (size_t i = 0; i < vals.size(); ++i) {
    if (vals[i] == v) return static_cast<int>(i);
  }
  return 0;
}

template <typename E>
E enum_at(int i) {
  const auto& vals = enum_values<E>();
  return vals[static_cast<size_t>(std::clamp<int>(i, 0, static_cast<int>(vals.size()) - 1))];
}

}  // namespace

ScenarioForm::ScenarioForm(QWidget* parent) : QWidget(parent) {
  auto* top = new QVBoxLayout(this);
  auto banner = [&](const QString& style) {  // the error list, then the diagnostics no field takes
    auto* label = new QLabel(this);
    label->setWordWrap(true);
    label->setStyleSheet(style);
    label->setTextInteractionFlags(Qt::TextSelectableByMouse);
    label->hide();
    top->addWidget(label);
    return label;
  };
  summary_ = banner(QStringLiteral("color: #b00000; border: 1px solid #d00000; padding: 4px;"));
  general_ = banner(QStringLiteral("color: #b00000;"));

  auto group = [&](const QString& title) {
    auto* box = new QGroupBox(title, this);
    auto* form = new QFormLayout(box);
    form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
    top->addWidget(box);
    return form;
  };

  QFormLayout* model = group(tr("Model"));
  // Ranges: the validation's bounds (model/validate.h, docs/scenario-format.md).
  using namespace bounds;
  num_layers_ = addSpin(model, QStringLiteral("model.num_layers"), tr("layers"), 1, kMaxLayers);
  hidden_ = addSpin(model, QStringLiteral("model.hidden_size"), tr("hidden size"), 1, kMaxHidden);
  heads_ = addSpin(model, QStringLiteral("model.num_attention_heads"), tr("attention heads"), 1, kMaxHeads);
  seq_ = addSpin(model, QStringLiteral("model.seq_length"), tr("sequence length"), 1, kMaxSeqLength);
  vocab_ = addSpin(model, QStringLiteral("model.vocab_size"), tr("vocabulary"), 1, kMaxVocab);

  QFormLayout* exits = group(tr("Exits"));
  exits_ = new ExitsModel(this);
  exits_view_ = new QTableView(this);
  exits_view_->setModel(exits_);
  exits_view_->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
  exits_view_->setSelectionBehavior(QAbstractItemView::SelectRows);
  exits_view_->setMinimumHeight(90);
  exits_view_->setMaximumHeight(140);
  ruler_ = new ExitRuler(this);
  ruler_->setModel(exits_);
  exits->addRow(ruler_);
  exits->addRow(exits_view_);
  auto* buttons = new QHBoxLayout;
  auto* add = new QPushButton(tr("Add exit"), this);
  auto* remove = new QPushButton(tr("Remove exit"), this);
  buttons->addWidget(add);
  buttons->addWidget(remove);
  exits->addRow(buttons);
  fields_.insert(QStringLiteral("exits"), Field{exits_view_, nullptr});
  addErrorRow(exits, QStringLiteral("exits"), exits_view_);
  pre_exit_ = addCheck(exits, QStringLiteral("exits.pre_exit"), tr("pre-exit (before the layer)"));
  connect(add, &QPushButton::clicked, this, &ScenarioForm::addExitClicked);
  connect(remove, &QPushButton::clicked, this, &ScenarioForm::removeExitClicked);
  connect(exits_, &ExitsModel::exitsEdited, this, &ScenarioForm::edited);

  QFormLayout* par = group(tr("Parallel layout and schedule"));
  tp_ = addSpin(par, QStringLiteral("parallel.tensor_model_parallel_size"), tr("tensor parallel"), 1, kMaxParallel);
  pp_ = addSpin(par, QStringLiteral("parallel.pipeline_model_parallel_size"), tr("pipeline parallel"), 1, kMaxParallel);
  vp_ = addSpin(par, QStringLiteral("parallel.virtual_pipeline_model_parallel_size"), tr("virtual stages"), 1,
                kMaxVirtualStages);
  world_ = addSpin(par, QStringLiteral("parallel.world_size"), tr("world size (0 = cluster)"), 0, kMaxGpus);
  partition_ = new QLineEdit(this);
  partition_->setPlaceholderText(tr("even split, or e.g. 2,2,1,1"));
  par->addRow(tr("layer partition"), partition_);
  fields_.insert(QStringLiteral("parallel.layer_partition"), Field{partition_, nullptr});
  addErrorRow(par, QStringLiteral("parallel.layer_partition"), partition_);
  connect(partition_, &QLineEdit::editingFinished, this, &ScenarioForm::edited);
  schedule_ = addCombo(par, QStringLiteral("parallel.schedule"), tr("schedule"), enum_names<ScheduleKind>());
  fill_ = addCheck(par, QStringLiteral("parallel.fill_explicit_bubbles"), tr("fill explicit bubbles (EE-LLM)"));
  recompute_ = addCombo(par, QStringLiteral("parallel.recompute_granularity"), tr("recompute"),
                        enum_names<RecomputeGranularity>());
  sp_ = addCheck(par, QStringLiteral("parallel.sequence_parallel"), tr("sequence parallel"));
  dist_opt_ = addCheck(par, QStringLiteral("parallel.use_distributed_optimizer"), tr("distributed optimizer"));

  QFormLayout* cl = group(tr("Cluster and batch"));
  QStringList clusters;
  const QDir dir(QString::fromStdString(scenarios_dir()) + QStringLiteral("/clusters"));
  for (const QString& f : dir.entryList({QStringLiteral("*.yaml")}, QDir::Files, QDir::Name)) {
    clusters << f.chopped(5);
  }
  cluster_ = addCombo(cl, QStringLiteral("cluster.profile"), tr("cluster profile"), clusters);
  nodes_ = addSpin(cl, QStringLiteral("cluster.num_nodes"), tr("nodes"), 1, kMaxGpus);
  gpus_per_node_ = addSpin(cl, QStringLiteral("cluster.gpus_per_node"), tr("GPUs per node"), 1, kMaxGpusPerNode);
  mbs_ = addSpin(cl, QStringLiteral("training.micro_batch_size"), tr("micro batch"), 1, kMaxBatch);
  gbs_ = addSpin(cl, QStringLiteral("training.global_batch_size"), tr("global batch"), 1, kMaxBatch);
  dtype_ = addCombo(cl, QStringLiteral("training.params_dtype"), tr("dtype"), enum_names<DType>());
  disconnect(cluster_, nullptr, this, nullptr);
  connect(cluster_, &QComboBox::currentTextChanged, this, &ScenarioForm::clusterChosen);
  addCostGroup(top);
  top->addStretch(1);
}

void ScenarioForm::addCostGroup(QVBoxLayout* top) {
  auto* box = new QGroupBox(tr("What-if cost (docs/cost.md)"), this);
  auto* form = new QFormLayout(box);
  form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
  top->addWidget(box);
  // Validation asks these to be finite and ≥ 0 only: the ranges are wide, and a value beyond them (or
  // NaN, or negative) is kept and shown, not clamped.
  price_ = addDoubleSpin(form, QStringLiteral("cluster.cost.price_per_gpu_hour_usd"), tr("USD per GPU-hour"), 1e6, 2);
  mtbf_ =
      addDoubleSpin(form, QStringLiteral("cluster.cost.node_mtbf_hours"), tr("node MTBF, hours (0 = none)"), 1e9, 1);
  ckpt_bw_ = addDoubleSpin(form, QStringLiteral("cluster.cost.checkpoint_write_GBps_per_node"),
                           tr("checkpoint write GB/s per node"), bounds::kMaxBandwidthGBps, 2);
}

void ScenarioForm::showCost(const CostSpec& cost) {
  price_->setRawValue(cost.price_per_gpu_hour_usd);
  mtbf_->setRawValue(cost.node_mtbf_hours);
  ckpt_bw_->setRawValue(cost.checkpoint_write_GBps_per_node);
}

ScenarioForm::RealSpin* ScenarioForm::addDoubleSpin(QFormLayout* form, const QString& field, const QString& label,
                                                    double hi, int decimals) {
  auto* s = new RealSpin(this);
  s->setRange(0, hi);
  s->setDecimals(decimals);
  s->setObjectName(field);
  form->addRow(label, s);
  addErrorRow(form, field, s);
  connect(s, &QDoubleSpinBox::valueChanged, this, &ScenarioForm::edited);
  return s;
}

void ScenarioForm::addErrorRow(QFormLayout* form, const QString& field, QWidget* editor) {
  auto* err = new QLabel(this);
  err->setWordWrap(true);
  err->setStyleSheet(QStringLiteral("color: #b00000; font-size: small;"));
  err->setObjectName(QStringLiteral("error:") + field);
  err->hide();
  form->addRow(QString(), err);
  fields_[field] = Field{editor, err};
}

ScenarioForm::IntSpin* ScenarioForm::addSpin(QFormLayout* form, const QString& field, const QString& label, int64_t lo,
                                             int64_t hi) {
  auto* s = new IntSpin(this);
  s->setRange(static_cast<int>(lo), static_cast<int>(hi));
  s->setObjectName(field);
  form->addRow(label, s);
  addErrorRow(form, field, s);
  connect(s, &QSpinBox::valueChanged, this, &ScenarioForm::edited);
  return s;
}

QComboBox* ScenarioForm::addCombo(QFormLayout* form, const QString& field, const QString& label,
                                  const QStringList& items) {
  auto* c = new QComboBox(this);
  c->addItems(items);
  c->setObjectName(field);
  form->addRow(label, c);
  addErrorRow(form, field, c);
  connect(c, &QComboBox::currentIndexChanged, this, &ScenarioForm::edited);
  return c;
}

QCheckBox* ScenarioForm::addCheck(QFormLayout* form, const QString& field, const QString& label) {
  auto* c = new QCheckBox(label, this);
  c->setObjectName(field);
  form->addRow(QString(), c);
  addErrorRow(form, field, c);
  connect(c, &QCheckBox::toggled, this, &ScenarioForm::edited);
  return c;
}

void ScenarioForm::edited() {
  if (loading_) return;
  refreshRuler();
  emit scenarioEdited();
}

void ScenarioForm::refreshRuler() {
  const Scenario s = scenario();
  std::vector<int> layers, stages;
  // The form shows invalid scenarios too: derive_layout's int arithmetic (and the ruler's loop over
  // the layers) only within the validation's bounds (a product that overflows used to be SIGFPE).
  if (validate_bounds(s).has_errors()) {
    ruler_->setLayers(1, {}, {}, s.exits.pre_exit);
    return;
  }
  auto lay = derive_layout(s);
  if (lay.is_ok()) {
    for (const ChunkLayout& c : lay->chunks) {
      layers.push_back(c.num_layers);
      stages.push_back(c.stage);
    }
  }
  ruler_->setLayers(s.model.num_layers, std::move(layers), std::move(stages), s.exits.pre_exit);
}

void ScenarioForm::clusterChosen(const QString& name) {
  if (loading_ || name.isEmpty()) return;
  auto cl = guarded_read([&] { return load_cluster_profile(name.toStdString()); });
  Field& f = fields_[QStringLiteral("cluster.profile")];
  if (!cl.is_ok()) {
    f.error->setText(QString::fromStdString(cl.status().to_string()));
    f.error->show();
    return;
  }
  base_.cluster = *cl;
  loading_ = true;
  nodes_->setRawValue(cl->num_nodes);
  gpus_per_node_->setRawValue(cl->gpus_per_node);
  showCost(cl->cost);
  loading_ = false;
  emit scenarioEdited();
}

void ScenarioForm::addExitClicked() {
  // A new exit halfway between the last exit (or the input) and the output.
  const auto& nums = exits_->exits().exit_layer_nums;
  const int last = nums.empty() ? 0 : nums.back();
  const int layer = std::max(1, (last + num_layers_->value()) / 2);
  exits_->addExit(layer, nums.empty() ? 0.1 : exits_->exits().exit_layer_weight.back());
}

void ScenarioForm::removeExitClicked() {
  const QModelIndex cur = exits_view_->currentIndex();
  exits_->removeExit(cur.isValid() ? cur.row() : exits_->rowCount() - 1);
}

void ScenarioForm::setScenario(const Scenario& s) {
  loading_ = true;
  base_ = s;
  num_layers_->setRawValue(s.model.num_layers);
  hidden_->setRawValue(s.model.hidden_size);
  heads_->setRawValue(s.model.num_attention_heads);
  seq_->setRawValue(s.model.seq_length);
  vocab_->setRawValue(s.model.vocab_size);
  exits_->setExits(s.exits);
  pre_exit_->setChecked(s.exits.pre_exit);
  tp_->setRawValue(s.parallel.tensor_model_parallel_size);
  pp_->setRawValue(s.parallel.pipeline_model_parallel_size);
  vp_->setRawValue(s.parallel.virtual_pipeline_model_parallel_size);
  world_->setRawValue(s.parallel.world_size);
  QStringList parts;
  for (int n : s.parallel.layer_partition) parts << QString::number(n);
  partition_->setText(parts.join(QLatin1Char(',')));
  schedule_->setCurrentIndex(enum_index(s.parallel.schedule));
  fill_->setChecked(s.parallel.fill_explicit_bubbles);
  recompute_->setCurrentIndex(enum_index(s.parallel.recompute_granularity));
  sp_->setChecked(s.parallel.sequence_parallel);
  dist_opt_->setChecked(s.parallel.use_distributed_optimizer);
  const int ci = cluster_->findText(QString::fromStdString(s.cluster.name));
  if (ci < 0 && !s.cluster.name.empty()) cluster_->addItem(QString::fromStdString(s.cluster.name));
  cluster_->setCurrentIndex(cluster_->findText(QString::fromStdString(s.cluster.name)));
  nodes_->setRawValue(s.cluster.num_nodes);
  gpus_per_node_->setRawValue(s.cluster.gpus_per_node);
  mbs_->setRawValue(s.training.micro_batch_size);
  gbs_->setRawValue(s.training.global_batch_size);
  dtype_->setCurrentIndex(enum_index(s.training.params_dtype));
  showCost(s.cluster.cost);
  setDiagnostics({});
  loading_ = false;
  refreshRuler();
}

Scenario ScenarioForm::scenario() const {
  Scenario s = base_;
  s.model.num_layers = num_layers_->rawValue();
  s.model.hidden_size = hidden_->rawValue();
  s.model.num_attention_heads = heads_->rawValue();
  s.model.seq_length = seq_->rawValue();
  s.model.vocab_size = vocab_->rawValue();
  s.exits = exits_->exits();
  s.exits.pre_exit = pre_exit_->isChecked();
  s.parallel.tensor_model_parallel_size = tp_->rawValue();
  s.parallel.pipeline_model_parallel_size = pp_->rawValue();
  s.parallel.virtual_pipeline_model_parallel_size = vp_->rawValue();
  s.parallel.world_size = world_->rawValue();
  s.parallel.layer_partition.clear();
  for (const QString& p : partition_->text().split(QLatin1Char(','), Qt::SkipEmptyParts)) {
    bool ok = false;
    const int n = p.trimmed().toInt(&ok);
    // A non-number is kept as 0 so validation names the entry instead of silently dropping it.
    s.parallel.layer_partition.push_back(ok ? n : 0);
  }
  s.parallel.schedule = enum_at<ScheduleKind>(schedule_->currentIndex());
  s.parallel.fill_explicit_bubbles = fill_->isChecked();
  s.parallel.recompute_granularity = enum_at<RecomputeGranularity>(recompute_->currentIndex());
  s.parallel.sequence_parallel = sp_->isChecked();
  s.parallel.use_distributed_optimizer = dist_opt_->isChecked();
  s.cluster.num_nodes = nodes_->rawValue();
  s.cluster.gpus_per_node = gpus_per_node_->rawValue();
  s.training.micro_batch_size = mbs_->rawValue();
  s.training.global_batch_size = gbs_->rawValue();
  s.training.params_dtype = enum_at<DType>(dtype_->currentIndex());
  s.cluster.cost.price_per_gpu_hour_usd = price_->rawValue();
  s.cluster.cost.node_mtbf_hours = mtbf_->rawValue();
  s.cluster.cost.checkpoint_write_GBps_per_node = ckpt_bw_->rawValue();
  return s;
}

QString ScenarioForm::registeredField(const QString& field) const {
  // Longest registered field that is a prefix of the diagnostic's field
  // ("exits.exit_layer_nums[1]" → "exits"; "parallel.layer_partition[2]" →
  // "parallel.layer_partition").
  QString best;
  for (auto it = fields_.cbegin(); it != fields_.cend(); ++it) {
    const QString& k = it.key();
    if (it->error && field.startsWith(k) &&
        (field.size() == k.size() || field[k.size()] == QLatin1Char('.') || field[k.size()] == QLatin1Char('[')) &&
        k.size() > best.size()) {
      best = k;
    }
  }
  return best;
}

void ScenarioForm::markEditor(QWidget* editor, const QStringList& messages, bool error) {
  if (!editor) return;
  editor->setStyleSheet(error ? QStringLiteral("border: 2px solid #d00000;") : QString());
  editor->setToolTip(messages.join(QLatin1Char('\n')));
}

void ScenarioForm::showSummary(const QStringList& errors) {
  constexpr int kShown = 20;
  QStringList lines{tr("%n error(s): fix the marked fields (Simulate, Plan and Run wait until they are fixed)", nullptr,
                       static_cast<int>(errors.size()))};
  for (int i = 0; i < errors.size() && i < kShown; ++i) lines << QStringLiteral("• ") + errors[i];
  if (errors.size() > kShown) lines << tr("… and %1 more").arg(errors.size() - kShown);
  summary_->setText(errors.isEmpty() ? QString() : lines.join(QLatin1Char('\n')));
  summary_->setVisible(!errors.isEmpty());
}

void ScenarioForm::setDiagnostics(const Diagnostics& diagnostics) {
  QHash<QString, QStringList> by_field;
  QSet<QString> with_errors;
  QStringList general, errors;
  for (const Diagnostic& d : diagnostics.items) {
    const QString field = QString::fromStdString(d.field);
    const bool error = d.severity == Diagnostic::Severity::kError;
    const QString message = QString::fromStdString(d.message);
    const QString text = (error ? tr("error: ") : tr("warning: ")) + message;
    if (error) errors << (message.startsWith(field) ? message : field + QStringLiteral(": ") + message);
    const QString best = registeredField(field);
    if (best.isEmpty()) {
      general << (field.isEmpty() ? text : field + QStringLiteral(": ") + text);
    } else {
      by_field[best] << text;
      if (error) with_errors.insert(best);
    }
  }
  for (auto it = fields_.begin(); it != fields_.end(); ++it) {
    if (!it->error) continue;
    const QStringList msgs = by_field.value(it.key());
    it->error->setText(msgs.join(QLatin1Char('\n')));
    it->error->setVisible(!msgs.isEmpty());
    markEditor(it->editor, msgs, with_errors.contains(it.key()));
  }
  general_->setText(general.join(QLatin1Char('\n')));
  general_->setVisible(!general.isEmpty());
  showSummary(errors);
}

QString ScenarioForm::errorText(const QString& field) const {
  auto it = fields_.find(field);
  return it == fields_.end() || !it->error ? QString() : it->error->text();
}

QString ScenarioForm::generalErrors() const {
  return general_->text();
}

QString ScenarioForm::errorSummary() const {
  return summary_->text();
}

QString ScenarioForm::problems() const {
  QStringList out;
  if (!summary_->text().isEmpty()) out << summary_->text();
  if (!general_->text().isEmpty()) out << general_->text();
  for (auto it = fields_.cbegin(); it != fields_.cend(); ++it)
    if (it->error && !it->error->text().isEmpty()) out << it.key() + QStringLiteral(": ") + it->error->text();
  return out.join(QLatin1Char('\n'));
}

QWidget* ScenarioForm::editor(const QString& field) const {
  auto it = fields_.find(field);
  return it == fields_.end() ? nullptr : it->editor;
}

}  // namespace eellm::gui
