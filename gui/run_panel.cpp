#include "gui/run_panel.h"

#include <QChart>
#include <QChartView>
#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
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
#include <QStandardPaths>
#include <QTimer>
#include <QVBoxLayout>
#include <QValueAxis>

#include "sim/trace.h"

namespace eellm::gui {

QStringList run_command(const RunRequest& r) {
  QStringList cmd;
  if (r.processes > 1) cmd << r.mpirun << QStringLiteral("-np") << QString::number(r.processes);
  cmd << r.eellm << QStringLiteral("train") << r.scenario_path << QStringLiteral("--metrics")
      << r.metrics_path;
  if (!r.trace_path.isEmpty()) cmd << QStringLiteral("--trace") << r.trace_path;
  if (r.steps > 0) cmd << QStringLiteral("--steps") << QString::number(r.steps);
  return cmd;
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
    if (err.error != QJsonParseError::NoError || !doc.isObject() ||
        !doc.object().contains(QStringLiteral("step"))) {
      ++malformed_;
      continue;
    }
    const QJsonObject o = doc.object();
    MetricsRecord r;
    r.step = o.value(QStringLiteral("step")).toInt();
    if (o.contains(QStringLiteral("eval"))) {
      r.eval = true;
      const QJsonObject ev = o.value(QStringLiteral("eval")).toObject();
      for (auto it = ev.begin(); it != ev.end(); ++it)
        r.eval_losses.emplace_back(it.key(), it.value().toDouble());
    } else {
      r.loss = o.value(QStringLiteral("loss")).toDouble();
      r.final_loss = o.value(QStringLiteral("final")).toDouble();
      r.lr = o.value(QStringLiteral("lr")).toDouble();
      r.tokens_per_s = o.value(QStringLiteral("tokens_per_s")).toDouble();
      for (const QJsonValue& v : o.value(QStringLiteral("exits")).toArray())
        r.exits.push_back(v.toDouble());
    }
    records_.push_back(r);
    out.push_back(std::move(r));
  }
  return out;
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
  form->addRow(tr("eellm binary"), binary_);
  form->addRow(tr("processes (mpirun -np)"), np_);
  form->addRow(tr("steps"), steps_);
  left->addLayout(form);
  auto* buttons = new QHBoxLayout;
  start_ = new QPushButton(tr("Run this plan"), this);
  stop_ = new QPushButton(tr("Stop"), this);
  stop_->setEnabled(false);
  buttons->addWidget(start_);
  buttons->addWidget(stop_);
  left->addLayout(buttons);
  progress_ = new QProgressBar(this);
  status_ = new QLabel(tr("idle"), this);
  status_->setWordWrap(true);
  left->addWidget(progress_);
  left->addWidget(status_);
  output_ = new QPlainTextEdit(this);
  output_->setReadOnly(true);
  output_->setMaximumBlockCount(5000);
  left->addWidget(output_, 1);
  lay->addLayout(left, 2);
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

void RunPanel::setScenario(const QString& yaml, const QString& name, int world_size,
                           int train_iters) {
  yaml_ = yaml;
  name_ = name;
  train_iters_ = train_iters;
  if (!running()) np_->setValue(std::max(1, world_size));
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

bool RunPanel::start() {
  if (running()) return false;
  if (yaml_.isEmpty()) {
    appendLog(tr("no scenario to run: open or edit a scenario first"));
    emit runError(tr("No scenario to run."));
    return false;
  }
  const QString base = QStandardPaths::writableLocation(QStandardPaths::TempLocation) +
                       QStringLiteral("/eellm-gui-runs/") + name_ + QStringLiteral("-") +
                       QDateTime::currentDateTime().toString(QStringLiteral("yyyyMMdd-hhmmss-zzz"));
  if (!QDir().mkpath(base)) {
    emit runError(tr("Cannot create the run folder %1").arg(base));
    return false;
  }
  run_dir_ = base;
  const QString scenario_path = base + QStringLiteral("/scenario.yaml");
  QFile f(scenario_path);
  if (!f.open(QIODevice::WriteOnly) || f.write(yaml_.toUtf8()) < 0) {
    emit runError(tr("Cannot write %1: %2").arg(scenario_path, f.errorString()));
    return false;
  }
  f.close();
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
  log_.clear();
  metrics_offset_ = 0;
  chart_->chart()->removeAllSeries();
  for (QAbstractAxis* a : chart_->chart()->axes()) chart_->chart()->removeAxis(a);
  progress_->setRange(0, req.steps > 0 ? req.steps : std::max(1, train_iters_));
  progress_->setValue(0);
  delete proc_;
  proc_ = new QProcess(this);
  proc_->setProcessChannelMode(QProcess::MergedChannels);
  proc_->setWorkingDirectory(base);
  connect(proc_, &QProcess::readyRead, this,
          [this] { appendLog(QString::fromUtf8(proc_->readAll())); });
  connect(proc_, &QProcess::finished, this, &RunPanel::processFinished);
  connect(proc_, &QProcess::errorOccurred, this, [this](QProcess::ProcessError e) {
    if (e == QProcess::FailedToStart) {
      const QString msg = tr("Cannot start %1: %2").arg(proc_->program(), proc_->errorString());
      status_->setText(msg);
      start_->setEnabled(true);
      stop_->setEnabled(false);
      timer_->stop();
      emit runError(msg);
    }
  });
  appendLog(QStringLiteral("$ ") + cmd.join(QLatin1Char(' ')));
  status_->setText(tr("running in %1").arg(base));
  start_->setEnabled(false);
  stop_->setEnabled(true);
  proc_->start(cmd.front(), cmd.mid(1));
  timer_->start();
  return true;
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
        s->setName(e + 1 == n ? tr("final") : tr("exit %1").arg(e + 1));
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
    x->setRange(0, std::max<double>(progress_->maximum(), r.step));
    if (ymax > y->max()) y->setRange(0, ymax * 1.1);
    status_->setText(tr("step %1: loss %2, %3 tokens/s")
                         .arg(r.step)
                         .arg(r.loss, 0, 'f', 4)
                         .arg(r.tokens_per_s, 0, 'f', 0));
  }
}

void RunPanel::processFinished(int code, QProcess::ExitStatus status) {
  timer_->stop();
  pollMetrics();
  start_->setEnabled(true);
  stop_->setEnabled(false);
  if (status != QProcess::NormalExit || code != 0) {
    const QString msg =
        tr("the run ended with exit code %1%2; see the log")
            .arg(code)
            .arg(status == QProcess::CrashExit ? tr(" (crashed or stopped)") : QString());
    status_->setText(msg);
    emit runError(msg);
    emit finished(code == 0 ? 1 : code);
    return;
  }
  status_->setText(tr("finished: %1 iterations logged").arg(log_.records().size()));
  if (!trace_path_.isEmpty() && QFileInfo::exists(trace_path_)) {
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
