#include "gui/run_panel.h"

#include <QChart>
#include <QChartView>
#include <QComboBox>
#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QFontDatabase>
#include <QFormLayout>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QLineEdit>
#include <QLineSeries>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QStackedWidget>
#include <QStandardPaths>
#include <QThread>
#include <QTimer>
#include <QVBoxLayout>
#include <QValueAxis>

#include "gui/format.h"
#include "sim/trace.h"

#ifdef Q_OS_UNIX
#include <unistd.h>
#endif

namespace eellm::gui {

QStringList run_command(const RunRequest& r) {
  QStringList cmd;
  if (r.processes > 1) cmd << r.mpirun << QStringLiteral("-np") << QString::number(r.processes);
  cmd << r.eellm << QStringLiteral("train") << r.scenario_path << QStringLiteral("--metrics") << r.metrics_path;
  if (!r.trace_path.isEmpty()) cmd << QStringLiteral("--trace") << r.trace_path;
  if (r.steps > 0) cmd << QStringLiteral("--steps") << QString::number(r.steps);
  return cmd;
}

QStringList slurm_command(const SlurmRequest& r) {
  QStringList cmd{
      r.eellm,       QStringLiteral("launch"),     r.scenario_path, QStringLiteral("--slurm"), QStringLiteral("-o"),
      r.script_path, QStringLiteral("--launcher"), r.launcher,      QStringLiteral("--time"),  r.time};
  if (r.steps > 0) cmd << QStringLiteral("--steps") << QString::number(r.steps);
  return cmd;
}

QString validate_generate(const GenerateRequest& r) {
  if (r.checkpoint.trimmed().isEmpty())
    return QObject::tr("checkpoint: empty (a directory written by eellm train --save)");
  if (r.prompt.isEmpty()) return QObject::tr("prompt: empty");
  static const QStringList methods{QStringLiteral("full"), QStringLiteral("recompute"), QStringLiteral("speculative"),
                                   QStringLiteral("pipeline")};
  if (!methods.contains(r.method))
    return QObject::tr("method (%1): must be one of %2").arg(r.method, methods.join(QStringLiteral(", ")));
  const QString t = r.threshold.trimmed();
  if (!t.isEmpty() && t != QStringLiteral("off")) {
    bool ok = false;
    const double v = t.toDouble(&ok);
    if (!ok || v < 0 || v > 1) return QObject::tr("threshold (%1): must be a number in [0, 1], off, or empty").arg(t);
  }
  if (r.max_new_tokens < 1) return QObject::tr("max new tokens (%1): must be at least 1").arg(r.max_new_tokens);
  if (r.processes < 1) return QObject::tr("processes (%1): must be at least 1").arg(r.processes);
  return {};
}

bool generate_uses_mpirun(const GenerateRequest& r) {
  return r.method == QStringLiteral("pipeline") && r.processes > 1;
}

QStringList generate_command(const GenerateRequest& r) {
  QStringList cmd;
  if (generate_uses_mpirun(r)) cmd << r.mpirun << QStringLiteral("-np") << QString::number(r.processes);
  cmd << r.eellm << QStringLiteral("generate") << r.checkpoint << QStringLiteral("--prompt") << r.prompt
      << QStringLiteral("--method") << r.method;
  if (!r.threshold.trimmed().isEmpty()) cmd << QStringLiteral("--threshold") << r.threshold.trimmed();
  cmd << QStringLiteral("--max-new-tokens") << QString::number(r.max_new_tokens) << QStringLiteral("--stats");
  if (!r.stats_path.isEmpty()) cmd << QStringLiteral("--stats-out") << r.stats_path;
  return cmd;
}

QString shell_join(const QStringList& command) {
  QStringList out;
  static const QString plain = QStringLiteral("@%+=:,./-_");
  for (const QString& a : command) {
    bool safe = !a.isEmpty();
    for (const QChar c : a) safe = safe && (c.isLetterOrNumber() || plain.contains(c));
    const QString quoted = QString(a).replace(QStringLiteral("'"), QStringLiteral("'\\''"));
    out << (safe ? a : QStringLiteral("'%1'").arg(quoted));
  }
  return out.join(QLatin1Char(' '));
}

QString machine_shortfall(int ranks, int gpus_needed, int cores, int gpus_here) {
  QStringList why;
  if (gpus_needed > gpus_here)
    why << QObject::tr("it needs %1 GPUs and this machine has %2").arg(gpus_needed).arg(gpus_here);
  if (ranks > cores) why << QObject::tr("%1 ranks on %2 CPU cores will be oversubscribed").arg(ranks).arg(cores);
  return why.isEmpty() ? QString() : QObject::tr("This plan may not run here: %1.").arg(why.join(QStringLiteral("; ")));
}

int gpus_on_this_machine() {
  int n = 0;
  while (QFileInfo::exists(QStringLiteral("/dev/nvidia%1").arg(n))) ++n;
  return n;
}

GenerateStats parse_generate_stats(const QByteArray& json) {
  GenerateStats st;
  QJsonParseError err{};
  const QJsonDocument doc = QJsonDocument::fromJson(json, &err);
  if (err.error != QJsonParseError::NoError || !doc.isObject()) {
    st.error = QObject::tr("statistics are not a JSON object: %1").arg(err.errorString());
    return st;
  }
  const QJsonObject o = doc.object();
  if (!o.value(QStringLiteral("exit_rates")).isArray()) {
    st.error = QObject::tr("statistics have no exit_rates array");
    return st;
  }
  for (const QJsonValue& v : o.value(QStringLiteral("exit_rates")).toArray()) st.exit_rates.push_back(v.toDouble());
  for (const QJsonValue& v : o.value(QStringLiteral("exit_layers")).toArray()) st.exit_layers.push_back(v.toInt());
  st.tokens = o.value(QStringLiteral("tokens")).toInt();
  st.tokens_per_s = o.value(QStringLiteral("tokens_per_s")).toDouble();
  st.layers_per_token = o.value(QStringLiteral("layers_per_token")).toDouble();
  st.ok = true;
  return st;
}

QString format_generate_stats(const GenerateStats& s) {
  if (!s.ok) return s.error;
  QStringList heads;
  for (size_t e = 0; e < s.exit_rates.size(); ++e) {
    const QString name =
        e < s.exit_layers.size() ? QString::fromStdString(exit_label(s.exit_layers[e])) : QStringLiteral("final");
    heads << QStringLiteral("%1 %2 %").arg(name).arg(100.0 * s.exit_rates[e], 0, 'f', 1);
  }
  return QObject::tr("%1 tokens, %2 tokens/s, %3 layers per token; exits: %4")
      .arg(s.tokens)
      .arg(s.tokens_per_s, 0, 'f', 1)
      .arg(s.layers_per_token, 0, 'f', 2)
      .arg(heads.join(QStringLiteral(", ")));
}

QProcessEnvironment run_environment(const QProcessEnvironment& base, bool as_root) {
  QProcessEnvironment env = base;
  if (as_root) {
    for (const QString& k :
         {QStringLiteral("OMPI_ALLOW_RUN_AS_ROOT"), QStringLiteral("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM")})
      if (!env.contains(k)) env.insert(k, QStringLiteral("1"));
  }
  return env;
}

bool running_as_root() {
#ifdef Q_OS_UNIX
  return geteuid() == 0;
#else
  return false;
#endif
}

QString find_eellm_binary() {
  const QString env = qEnvironmentVariable("EELLM_BIN");
  if (!env.isEmpty()) return env;
  const QString here = QCoreApplication::applicationDirPath();
  for (const QString& rel : {QStringLiteral("/eellm"), QStringLiteral("/../cli/eellm"),
                             QStringLiteral("/../../cli/eellm"), QStringLiteral("/../bin/eellm")}) {
    const QFileInfo f(here + rel);
    if (f.isExecutable() && f.isFile()) return f.canonicalFilePath();
  }
  const QString in_path = QStandardPaths::findExecutable(QStringLiteral("eellm"));
  return in_path.isEmpty() ? QStringLiteral("eellm") : in_path;
}

void MetricsLog::clear() {
  pending_.clear();
  records_.clear();
  malformed_ = 0;
}

std::vector<MetricsRecord> MetricsLog::feed(const QByteArray& bytes) {
  pending_ += bytes;
  std::vector<MetricsRecord> out;
  qsizetype nl;
  while ((nl = pending_.indexOf('\n')) >= 0) {
    const QByteArray line = pending_.left(nl).trimmed();
    pending_.remove(0, nl + 1);
    if (line.isEmpty()) continue;
    QJsonParseError err{};
    const QJsonDocument doc = QJsonDocument::fromJson(line, &err);
    if (err.error != QJsonParseError::NoError || !doc.isObject() || !doc.object().contains(QStringLiteral("step"))) {
      ++malformed_;
      continue;
    }
    const QJsonObject o = doc.object();
    MetricsRecord r;
    r.step = o.value(QStringLiteral("step")).toInt();
    if (o.contains(QStringLiteral("eval"))) {
      r.eval = true;
      const QJsonObject ev = o.value(QStringLiteral("eval")).toObject();
      for (auto it = ev.begin(); it != ev.end(); ++it) r.eval_losses.emplace_back(it.key(), it.value().toDouble());
    } else {
      r.loss = o.value(QStringLiteral("loss")).toDouble();
      r.final_loss = o.value(QStringLiteral("final")).toDouble();
      r.lr = o.value(QStringLiteral("lr")).toDouble();
      r.tokens_per_s = o.value(QStringLiteral("tokens_per_s")).toDouble();
      for (const QJsonValue& v : o.value(QStringLiteral("exits")).toArray()) r.exits.push_back(v.toDouble());
    }
    records_.push_back(r);
    out.push_back(std::move(r));
  }
  return out;
}

// Generate mode's fields: a checkpoint, prompt, method, threshold and token count.
QWidget* RunPanel::buildGeneratePage() {
  auto* gen_page = new QWidget(mode_pages_);
  auto* gen_form = new QFormLayout(gen_page);
  gen_form->setContentsMargins(0, 0, 0, 0);
  checkpoint_ = new QLineEdit(gen_page);
  checkpoint_->setPlaceholderText(tr("directory written by eellm train --save"));
  prompt_ = new QLineEdit(gen_page);
  method_ = new QComboBox(gen_page);
  method_->addItems(
      {QStringLiteral("recompute"), QStringLiteral("full"), QStringLiteral("speculative"), QStringLiteral("pipeline")});
  method_->setToolTip(
      tr("recompute: EE-LLM KV recomputation; speculative: draft through an exit, verify "
         "with the rest; pipeline: one stage per process under mpirun"));
  threshold_ = new QLineEdit(gen_page);
  threshold_->setPlaceholderText(tr("scenario's early_exit_thres (or 0…1, off)"));
  max_new_ = new QSpinBox(gen_page);
  max_new_->setRange(1, 100000);
  max_new_->setValue(64);
  gen_form->addRow(tr("checkpoint"), checkpoint_);
  gen_form->addRow(tr("prompt"), prompt_);
  gen_form->addRow(tr("method"), method_);
  gen_form->addRow(tr("confidence threshold"), threshold_);
  gen_form->addRow(tr("max new tokens"), max_new_);
  return gen_page;
}

RunPanel::RunPanel(QWidget* parent) : QWidget(parent) {
  auto* lay = new QHBoxLayout(this);
  auto* left = new QVBoxLayout;
  auto* form = new QFormLayout;
  binary_ = new QLineEdit(find_eellm_binary(), this);
  np_ = new QSpinBox(this);
  np_->setRange(1, 4096);
  steps_ = new QSpinBox(this);
  steps_->setRange(0, 10'000'000);
  steps_->setSpecialValueText(tr("scenario's train_iters"));
  mode_ = new QComboBox(this);
  mode_->addItem(tr("train (eellm train)"));
  mode_->addItem(tr("generate (eellm generate)"));
  mode_->addItem(tr("Slurm job script (eellm launch --slurm)"));
  form->addRow(tr("run"), mode_);
  form->addRow(tr("eellm binary"), binary_);
  form->addRow(tr("processes (mpirun -np)"), np_);
  left->addLayout(form);
  // Per-mode fields: train takes steps; generate a checkpoint, prompt, method and threshold.
  mode_pages_ = new QStackedWidget(this);
  auto* train_page = new QWidget(mode_pages_);
  auto* train_form = new QFormLayout(train_page);
  train_form->setContentsMargins(0, 0, 0, 0);
  train_form->addRow(tr("steps"), steps_);
  QWidget* gen_page = buildGeneratePage();
  // Slurm: the launcher and time limit of the job script (steps come from the train page's field).
  auto* slurm_page = new QWidget(mode_pages_);
  auto* slurm_form = new QFormLayout(slurm_page);
  slurm_form->setContentsMargins(0, 0, 0, 0);
  slurm_launcher_ = new QComboBox(slurm_page);
  slurm_launcher_->addItems({QStringLiteral("srun"), QStringLiteral("mpirun")});
  slurm_time_ = new QLineEdit(QStringLiteral("01:00:00"), slurm_page);
  slurm_form->addRow(tr("ranks started by"), slurm_launcher_);
  slurm_form->addRow(tr("time limit"), slurm_time_);
  mode_pages_->addWidget(train_page);
  mode_pages_->addWidget(gen_page);
  mode_pages_->addWidget(slurm_page);
  left->addWidget(mode_pages_);
  // The stack is as tall as the page shown, not the tallest (at 1280×720 the page fits without scrolling).
  auto fit_page = [this](int shown) {
    for (int i = 0; i < mode_pages_->count(); ++i)
      mode_pages_->widget(i)->setSizePolicy(QSizePolicy::Preferred,
                                            i == shown ? QSizePolicy::Preferred : QSizePolicy::Ignored);
    mode_pages_->setCurrentIndex(shown);
    mode_pages_->adjustSize();
  };
  fit_page(0);
  connect(mode_, &QComboBox::currentIndexChanged, mode_pages_, fit_page);
  connect(mode_, &QComboBox::currentIndexChanged, this, [this](int i) {
    start_->setText(i == 0 ? tr("Run this plan") : i == 1 ? tr("Generate") : tr("Write Slurm script"));
  });
  auto* buttons = new QHBoxLayout;
  start_ = new QPushButton(tr("Run this plan"), this);
  stop_ = new QPushButton(tr("Stop"), this);
  stop_->setEnabled(false);
  buttons->addWidget(start_);
  buttons->addWidget(stop_);
  left->addLayout(buttons);
  progress_ = new QProgressBar(this);
  left->addWidget(progress_);
  left->addStretch(1);
  lay->addLayout(left, 2);
  // Three columns (settings | status and log | loss chart) so that the page fits 1280×720 unscrolled.
  auto* middle = new QVBoxLayout;
  status_ = new QLabel(tr("idle"), this);
  status_->setWordWrap(true);
  middle->addWidget(status_);
  output_ = new QPlainTextEdit(this);
  output_->setReadOnly(true);
  output_->setMaximumBlockCount(5000);
  output_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));  // tables and progress lines line up
  output_->setMinimumHeight(60);
  middle->addWidget(output_, 1);
  lay->addLayout(middle, 2);
  chart_ = new QChartView(new QChart, this);
  chart_->chart()->setTitle(tr("Training loss per exit"));
  chart_->setRenderHint(QPainter::Antialiasing);
  lay->addWidget(chart_, 3);
  timer_ = new QTimer(this);
  timer_->setInterval(500);
  connect(timer_, &QTimer::timeout, this, &RunPanel::pollMetrics);
  connect(start_, &QPushButton::clicked, this, [this] { start(); });
  connect(stop_, &QPushButton::clicked, this, &RunPanel::stop);
}

RunPanel::~RunPanel() {
  if (proc_ && proc_->state() != QProcess::NotRunning) {
    proc_->kill();
    proc_->waitForFinished(2000);
  }
}

void RunPanel::setScenario(const QString& yaml, const QString& name, int world_size, int train_iters) {
  yaml_ = yaml;
  name_ = name;
  train_iters_ = train_iters;
  if (!running()) np_->setValue(std::max(1, world_size));
}

void RunPanel::setExits(const std::vector<int>& layers) {
  exit_layers_ = layers;
}

void RunPanel::setNeedsGpus(bool gpus) {
  needs_gpus_ = gpus;
}

void RunPanel::setBinary(const QString& path) {
  binary_->setText(path);
}
void RunPanel::setProcesses(int n) {
  np_->setValue(n);
}
void RunPanel::setSteps(int n) {
  steps_->setValue(n);
}

bool RunPanel::running() const {
  return proc_ && proc_->state() != QProcess::NotRunning;
}

void RunPanel::appendLog(const QString& text) {
  output_->appendPlainText(text.trimmed());
}

void RunPanel::setMode(Mode mode) {
  mode_->setCurrentIndex(mode == Mode::kTrain ? 0 : mode == Mode::kGenerate ? 1 : 2);
}

RunPanel::Mode RunPanel::mode() const {
  const int i = mode_->currentIndex();
  return i == 0 ? Mode::kTrain : i == 1 ? Mode::kGenerate : Mode::kSlurm;
}

void RunPanel::setGenerate(const GenerateRequest& r) {
  checkpoint_->setText(r.checkpoint);
  prompt_->setText(r.prompt);
  const int m = method_->findText(r.method);
  if (m >= 0) method_->setCurrentIndex(m);
  threshold_->setText(r.threshold);
  max_new_->setValue(r.max_new_tokens);
}

GenerateRequest RunPanel::generateRequest() const {
  GenerateRequest r;
  r.eellm = binary_->text();
  r.checkpoint = checkpoint_->text().trimmed();
  r.prompt = prompt_->text();
  r.method = method_->currentText();
  r.threshold = threshold_->text().trimmed();
  r.max_new_tokens = max_new_->value();
  r.processes = np_->value();
  return r;
}

QString RunPanel::statusText() const {
  return status_->text();
}

QString RunPanel::logText() const {
  return output_->toPlainText();
}

QString RunPanel::makeRunDirectory(const QString& name) {
  const QString base = QStandardPaths::writableLocation(QStandardPaths::TempLocation) +
                       QStringLiteral("/eellm-gui-runs/") + name + QStringLiteral("-") +
                       QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-hhmmss-zzz"));
  if (!QDir().mkpath(base)) {
    emit runError(tr("Cannot create the run folder %1").arg(base));
    return {};
  }
  return base;
}

void RunPanel::setBlocked(const QString& why) {
  blocked_ = why;
  start_->setEnabled(!running() && why.isEmpty());
  start_->setToolTip(why);
}

bool RunPanel::start() {
  if (running() || !blocked_.isEmpty()) return false;
  const Mode m = mode();
  return m == Mode::kTrain ? startTrain() : m == Mode::kGenerate ? startGenerate() : startSlurm();
}

bool RunPanel::startGenerate() {
  GenerateRequest req = generateRequest();
  if (const QString why = validate_generate(req); !why.isEmpty()) {
    appendLog(tr("cannot generate: %1").arg(why));
    status_->setText(why);
    emit runError(tr("Cannot generate: %1").arg(why));
    return false;
  }
  const QString base = makeRunDirectory(QStringLiteral("generate"));
  if (base.isEmpty()) return false;
  run_dir_ = base;
  req.stats_path = stats_path_ = base + QStringLiteral("/stats.json");
  metrics_path_.clear();
  trace_path_.clear();
  gen_stats_ = GenerateStats{};
  running_mode_ = Mode::kGenerate;
  progress_->setRange(0, 0);  // busy: generation reports no steps
  launch(generate_command(req), base);
  return true;
}

QString RunPanel::writeScenario(const QString& base) {
  const QString scenario_path = base + QStringLiteral("/scenario.yaml");
  QFile f(scenario_path);
  if (!f.open(QIODevice::WriteOnly) || f.write(yaml_.toUtf8()) < 0) {
    emit runError(tr("Cannot write %1: %2").arg(scenario_path, f.errorString()));
    return QString();
  }
  return scenario_path;
}

bool RunPanel::startSlurm() {
  if (yaml_.isEmpty()) {
    appendLog(tr("no scenario: open or edit a scenario first"));
    emit runError(tr("No scenario to write a job script for."));
    return false;
  }
  const QString base = makeRunDirectory(name_ + QStringLiteral("-slurm"));
  if (base.isEmpty()) return false;
  SlurmRequest req;
  req.eellm = binary_->text();
  req.scenario_path = writeScenario(base);
  if (req.scenario_path.isEmpty()) return false;
  run_dir_ = base;
  running_mode_ = Mode::kSlurm;
  metrics_path_.clear(), trace_path_.clear(), stats_path_.clear(), slurm_script_.clear();
  req.script_path = script_path_ = base + QStringLiteral("/job.sbatch");
  req.launcher = slurm_launcher_->currentText();
  req.time = slurm_time_->text().trimmed();
  req.steps = steps_->value();
  progress_->setRange(0, 0);
  launch(slurm_command(req), base);
  return true;
}

bool RunPanel::startTrain() {
  if (yaml_.isEmpty()) {
    appendLog(tr("no scenario to run: open or edit a scenario first"));
    emit runError(tr("No scenario to run."));
    return false;
  }
  const QString base = makeRunDirectory(name_);
  if (base.isEmpty()) return false;
  const QString scenario_path = writeScenario(base);
  if (scenario_path.isEmpty()) return false;
  run_dir_ = base;
  running_mode_ = Mode::kTrain;
  stats_path_.clear();
  RunRequest req;
  req.eellm = binary_->text();
  req.scenario_path = scenario_path;
  req.metrics_path = metrics_path_ = base + QStringLiteral("/metrics.jsonl");
  req.processes = np_->value();
  req.steps = steps_->value();
  // Ask the binary whether it can record a trace (older builds of `eellm train` cannot).
  QProcess help;
  help.start(req.eellm, {QStringLiteral("train"), QStringLiteral("--help")});
  if (help.waitForFinished(5000) && help.readAllStandardOutput().contains("--trace")) {
    req.trace_path = base + QStringLiteral("/measured.json");
  }
  trace_path_ = req.trace_path;
  const QStringList cmd = run_command(req);
  const QString shortfall = machine_shortfall(req.processes, needs_gpus_ ? req.processes : 0,
                                              QThread::idealThreadCount(), gpus_on_this_machine());
  log_.clear();
  metrics_offset_ = 0;
  chart_->chart()->removeAllSeries();
  for (QAbstractAxis* a : chart_->chart()->axes()) chart_->chart()->removeAxis(a);
  progress_->setRange(0, req.steps > 0 ? req.steps : std::max(1, train_iters_));
  progress_->setValue(0);
  launch(cmd, base);
  if (!shortfall.isEmpty()) {  // started anyway (mpirun may oversubscribe); said in the log and the status
    appendLog(tr("warning: %1").arg(shortfall));
    status_->setText(tr("%1 — running in %2").arg(shortfall, base));
  }
  return true;
}

void RunPanel::launch(const QStringList& cmd, const QString& base) {
  delete proc_;
  proc_ = new QProcess(this);
  proc_->setProcessChannelMode(QProcess::MergedChannels);
  proc_->setWorkingDirectory(base);
  proc_->setProcessEnvironment(run_environment(QProcessEnvironment::systemEnvironment(), running_as_root()));
  connect(proc_, &QProcess::readyRead, this, [this] { appendLog(QString::fromUtf8(proc_->readAll())); });
  connect(proc_, &QProcess::finished, this, &RunPanel::processFinished);
  connect(proc_, &QProcess::errorOccurred, this, [this](QProcess::ProcessError e) {
    if (e == QProcess::FailedToStart) {
      const QString msg = tr("Cannot start %1: %2").arg(proc_->program(), proc_->errorString());
      status_->setText(msg);
      start_->setEnabled(blocked_.isEmpty());
      stop_->setEnabled(false);
      timer_->stop();
      emit runError(msg);
    }
  });
  appendLog(QStringLiteral("$ ") + shell_join(cmd));
  status_->setText(tr("running in %1").arg(base));
  start_->setEnabled(false);
  stop_->setEnabled(true);
  proc_->start(cmd.front(), cmd.mid(1));
  if (running_mode_ == Mode::kTrain) timer_->start();
}

void RunPanel::stop() {
  if (running()) proc_->terminate();
}

void RunPanel::pollMetrics() {
  if (metrics_path_.isEmpty()) return;
  QFile f(metrics_path_);
  if (!f.open(QIODevice::ReadOnly)) return;
  if (f.size() < metrics_offset_) metrics_offset_ = 0;  // truncated: start over
  f.seek(metrics_offset_);
  const QByteArray bytes = f.readAll();
  metrics_offset_ += bytes.size();
  addPoints(log_.feed(bytes));
}

void RunPanel::addPoints(const std::vector<MetricsRecord>& records) {
  QChart* c = chart_->chart();
  for (const MetricsRecord& r : records) {
    if (r.eval) continue;
    progress_->setValue(std::min(progress_->maximum(), r.step));
    const size_t n = r.exits.size() + 1;
    if (c->series().size() != static_cast<qsizetype>(n)) {
      c->removeAllSeries();
      for (QAbstractAxis* a : c->axes()) c->removeAxis(a);
      auto* x = new QValueAxis;
      auto* y = new QValueAxis;
      x->setTitleText(tr("step"));
      y->setTitleText(tr("loss"));
      c->addAxis(x, Qt::AlignBottom);
      c->addAxis(y, Qt::AlignLeft);
      for (size_t e = 0; e < n; ++e) {
        auto* s = new QLineSeries;
        s->setName(e + 1 == n                ? tr("final")
                   : e < exit_layers_.size() ? QString::fromStdString(exit_label(exit_layers_[e]))
                                             : tr("exit %1").arg(e + 1));
        c->addSeries(s);
        s->attachAxis(x);
        s->attachAxis(y);
      }
    }
    double ymax = 0;
    for (size_t e = 0; e < n; ++e) {
      auto* s = static_cast<QLineSeries*>(c->series()[static_cast<qsizetype>(e)]);
      const double v = e + 1 == n ? r.final_loss : r.exits[e];
      s->append(r.step, v);
      ymax = std::max(ymax, v);
    }
    auto* x = static_cast<QValueAxis*>(c->axes(Qt::Horizontal).front());
    auto* y = static_cast<QValueAxis*>(c->axes(Qt::Vertical).front());
    set_nice_range(x, 0, std::max<double>(progress_->maximum(), r.step), true);  // whole steps, no 0.75
    if (ymax > y->max()) set_nice_range(y, 0, ymax * 1.05);
    status_->setText(
        tr("step %1: loss %2, %3 tokens/s").arg(r.step).arg(r.loss, 0, 'f', 4).arg(r.tokens_per_s, 0, 'f', 0));
  }
}

void RunPanel::processFinished(int code, QProcess::ExitStatus status) {
  timer_->stop();
  pollMetrics();
  start_->setEnabled(blocked_.isEmpty());
  stop_->setEnabled(false);
  if (running_mode_ != Mode::kTrain) {
    progress_->setRange(0, 1);
    progress_->setValue(1);
  }
  if (status != QProcess::NormalExit || code != 0) {
    const QString msg = tr("the run ended with exit code %1%2; see the log")
                            .arg(code)
                            .arg(status == QProcess::CrashExit ? tr(" (crashed or stopped)") : QString());
    status_->setText(msg);
    emit runError(msg);
    emit finished(code == 0 ? 1 : code);
    return;
  }
  if (running_mode_ == Mode::kSlurm) {  // show the script that was written
    QFile f(script_path_);
    if (!f.open(QIODevice::ReadOnly)) {
      emit runError(tr("eellm launch finished but %1 cannot be read: %2").arg(script_path_, f.errorString()));
      emit finished(1);
      return;
    }
    slurm_script_ = QString::fromUtf8(f.readAll());
    appendLog(slurm_script_);
    status_->setText(tr("wrote %1; submit it with: sbatch %1").arg(script_path_));
    emit succeeded(status_->text());
    emit finished(0);
    return;
  }
  if (running_mode_ == Mode::kGenerate) {
    QFile f(stats_path_);
    gen_stats_ = f.open(QIODevice::ReadOnly) ? parse_generate_stats(f.readAll()) : GenerateStats{};
    if (!gen_stats_.ok && gen_stats_.error.isEmpty())
      gen_stats_.error = tr("no statistics file %1: %2").arg(stats_path_, f.errorString());
    status_->setText(tr("generated: %1").arg(format_generate_stats(gen_stats_)));
    if (!gen_stats_.ok)
      emit runError(tr("Generation finished but its statistics cannot be read: %1").arg(gen_stats_.error));
    else
      emit succeeded(status_->text());
    emit finished(0);
    return;
  }
  status_->setText(tr("finished: %1 iterations logged").arg(log_.records().size()));
  emit succeeded(status_->text());
  if (trace_path_.isEmpty() || !QFileInfo::exists(trace_path_)) {
    emit noMeasuredTrace(trace_path_.isEmpty() ? tr("this eellm train cannot record a trace (no --trace in its --help)")
                         : np_->value() <= 1
                             ? tr("a single-process run records no measured trace: eellm train writes --trace under "
                                  "mpirun only; run with 2 or more processes to compare")
                             : tr("the run wrote no trace file %1").arg(trace_path_));
  } else {
    auto tl = read_trace(trace_path_.toStdString());
    if (tl.is_ok()) {
      emit measuredTrace(std::make_shared<const Timeline>(std::move(tl).value()), trace_path_);
    } else {
      emit runError(tr("The measured trace %1 cannot be read: %2")
                        .arg(trace_path_, QString::fromStdString(tl.status().to_string())));
    }
  }
  emit finished(0);
}

}  // namespace eellm::gui
