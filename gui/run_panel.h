// Launching a real run of the scenario through the `eellm` command line and following it.
//
// RunRequest / run_command: the command for a run — `eellm train SCENARIO --metrics M.jsonl
// [--trace T.json] [--steps N]`, under `mpirun -np N` when more than one process is asked for.
// MetricsLog: an incremental reader of the JSON-lines metrics file `eellm train --metrics` appends
// ({"step", "loss", "final", "exits": [...], "lr", "grad_norm", "tokens_per_s", "step_s"} per
// iteration, {"step", "eval": {name: loss}} per evaluation); partial trailing lines wait for the
// next feed; malformed lines are counted, never fatal.
// RunPanel: the widget — QProcess, live loss per exit (Qt Charts), the process log, and when the
// run ends the measured trace (sim/trace.h read_trace) handed to the main window to overlay.
// GUI thread only.
#pragma once

#include <QByteArray>
#include <QProcess>
#include <QStringList>
#include <QWidget>
#include <memory>
#include <vector>

#include "sim/timeline.h"

class QLabel;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;
class QLineEdit;
class QChartView;
class QProgressBar;

namespace eellm::gui {

struct RunRequest {
  QString eellm;  // path of the eellm binary
  QString mpirun = QStringLiteral("mpirun");
  QString scenario_path;
  QString metrics_path;
  QString trace_path;  // empty → no --trace
  int processes = 1;
  int steps = 0;  // 0 → the scenario's train_iters
};
// {program, arguments...}
QStringList run_command(const RunRequest& request);
// The eellm binary next to this program (build tree or install), else "eellm" from PATH;
// $EELLM_BIN wins when set.
QString find_eellm_binary();

struct MetricsRecord {
  int step = 0;
  bool eval = false;
  double loss = 0, final_loss = 0, lr = 0, tokens_per_s = 0;
  std::vector<double> exits;  // per exit, in exit order
  std::vector<std::pair<QString, double>> eval_losses;
};

class MetricsLog {
 public:
  // Feeds newly read bytes; returns the records completed by them.
  std::vector<MetricsRecord> feed(const QByteArray& bytes);
  const std::vector<MetricsRecord>& records() const { return records_; }
  int malformed() const { return malformed_; }
  void clear();

 private:
  QByteArray pending_;
  std::vector<MetricsRecord> records_;
  int malformed_ = 0;
};

class RunPanel : public QWidget {
  Q_OBJECT
 public:
  explicit RunPanel(QWidget* parent = nullptr);
  ~RunPanel() override;
  // The scenario YAML the run uses (written to a run folder at launch) and its world size.
  void setScenario(const QString& yaml, const QString& name, int world_size, int train_iters);
  bool running() const;
  void setBinary(const QString& path);
  void setProcesses(int n);
  void setSteps(int n);
  const MetricsLog& metrics() const { return log_; }
  QString runDirectory() const { return run_dir_; }
  // Starts the run; false (with the reason in the log) when it cannot start.
  bool start();
  void stop();
  // Reads new metrics now (also done by a timer while running).
  void pollMetrics();

 signals:
  void measuredTrace(std::shared_ptr<const eellm::Timeline> trace, const QString& path);
  void runError(const QString& message);
  void finished(int exit_code);

 private:
  void processFinished(int code, QProcess::ExitStatus status);
  void appendLog(const QString& text);
  void addPoints(const std::vector<MetricsRecord>& records);

  QString yaml_, name_;
  int train_iters_ = 0;
  QString run_dir_;
  QProcess* proc_ = nullptr;
  MetricsLog log_;
  qint64 metrics_offset_ = 0;
  QString metrics_path_, trace_path_;
  QLineEdit* binary_ = nullptr;
  QSpinBox* np_ = nullptr;
  QSpinBox* steps_ = nullptr;
  QPushButton* start_ = nullptr;
  QPushButton* stop_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QLabel* status_ = nullptr;
  QPlainTextEdit* output_ = nullptr;
  QChartView* chart_ = nullptr;
  class QTimer* timer_ = nullptr;
};

}  // namespace eellm::gui
