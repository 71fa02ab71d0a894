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
// In generate mode it runs `eellm generate CHECKPOINT --prompt … --method … [--threshold …] --stats
// --stats-out S.json` instead and shows the text and the statistics (GenerateRequest). Children
// get OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)=1 when the GUI runs as root (run_environment), since Open
// MPI's mpirun refuses root otherwise. In Slurm mode it writes a job script for the plan with `eellm
// launch --slurm` (SlurmRequest) and shows the script. GUI thread only.
#pragma once

#include <QByteArray>
#include <QProcess>
#include <QProcessEnvironment>
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
class QComboBox;
class QStackedWidget;
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

// A Slurm job script for the plan: `eellm launch SCENARIO --slurm -o SCRIPT --launcher L --time T
// [--steps N]` (cli/cmd_launch.cpp; docs/cluster.md) writes SCRIPT and the scenario beside it.
struct SlurmRequest {
  QString eellm;
  QString scenario_path;
  QString script_path;
  QString launcher = QStringLiteral("srun");  // srun | mpirun
  QString time = QStringLiteral("01:00:00");
  int steps = 0;  // 0 → the scenario's train_iters
};
QStringList slurm_command(const SlurmRequest& request);

// Early-exit generation from a checkpoint (`eellm generate`, exec/generate/generate.h).
struct GenerateRequest {
  QString eellm;
  QString mpirun = QStringLiteral("mpirun");
  QString checkpoint;  // directory written by eellm train --save
  QString prompt;
  QString method = QStringLiteral("recompute");  // full | recompute | speculative | pipeline
  QString threshold;  // empty → the checkpoint scenario's early_exit_thres; "off" or a number in [0, 1]
  int max_new_tokens = 64;
  int processes = 1;   // > 1 → under mpirun -np (the pipeline method: one stage per process)
  QString stats_path;  // --stats-out file (empty → none); --stats is always passed
};
// Empty when the request can run, else the reason naming the field and value.
QString validate_generate(const GenerateRequest& request);
// Only the `pipeline` method runs one stage per process; the others are one process (never under
// mpirun, which would print the text once per rank).
bool generate_uses_mpirun(const GenerateRequest& request);
QStringList generate_command(const GenerateRequest& request);
// A command as a shell reads it: arguments with spaces or shell characters in single quotes.
QString shell_join(const QStringList& command);
// Why this machine cannot run `ranks` processes (`cores` CPU cores) on `gpus_needed` GPUs when it has
// `gpus_here`: the warning "Run this plan" shows; empty when it can.
QString machine_shortfall(int ranks, int gpus_needed, int cores, int gpus_here);
int gpus_on_this_machine();  // /dev/nvidia0, /dev/nvidia1, …
// What --stats-out writes: {"exit_rates": [...], "exit_layers": [...], "tokens", "tokens_per_s",
// "layers_per_token", ...}; ok = false (and the reason in error) for a missing or malformed file.
struct GenerateStats {
  bool ok = false;
  QString error;
  int tokens = 0;
  double tokens_per_s = 0, layers_per_token = 0;
  std::vector<int> exit_layers;
  std::vector<double> exit_rates;  // per exit, then the final head
};
GenerateStats parse_generate_stats(const QByteArray& json);
// One line for the status label: "24 tokens, 310.5 tokens/s; exits: @2 40.0 %, final 60.0 % ...".
QString format_generate_stats(const GenerateStats& stats);

// The child environment: `base` plus OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
// when `as_root` (never overriding values already set).
QProcessEnvironment run_environment(const QProcessEnvironment& base, bool as_root);
bool running_as_root();
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
  // The exits' layer numbers (the loss chart names its lines exit@L as the CLI does) and whether the
  // scenario runs on GPUs (Run warns when this machine lacks them).
  void setExits(const std::vector<int>& layers);
  void setNeedsGpus(bool gpus);
  bool running() const;
  void setBinary(const QString& path);
  void setProcesses(int n);
  void setSteps(int n);
  const MetricsLog& metrics() const { return log_; }
  QString runDirectory() const { return run_dir_; }
  enum class Mode { kTrain, kGenerate, kSlurm };
  void setMode(Mode mode);
  Mode mode() const;
  // Generate mode's fields (what the form holds).
  void setGenerate(const GenerateRequest& request);
  GenerateRequest generateRequest() const;
  // Statistics of the last finished generation (ok = false before one).
  const GenerateStats& generateStats() const { return gen_stats_; }
  // The job script the last Slurm-mode run wrote (empty before one).
  QString slurmScript() const { return slurm_script_; }
  QString statusText() const;
  QString logText() const;
  // Starts the run (train or generate, by mode); false (with the reason in the log and
  // runError) when it cannot start.
  bool start();
  void stop();
  // While `why` is not empty (the scenario has errors) Run is disabled and start refuses.
  void setBlocked(const QString& why);
  QString blocked() const { return blocked_; }
  // Reads new metrics now (also done by a timer while running).
  void pollMetrics();

 signals:
  void measuredTrace(std::shared_ptr<const eellm::Timeline> trace, const QString& path);
  // A run finished without a measured trace (why: a single process records none, …).
  void noMeasuredTrace(const QString& why);
  // A run finished well: clear stale errors.
  void succeeded(const QString& message);
  void runError(const QString& message);
  void finished(int exit_code);

 private:
  bool startTrain();
  bool startGenerate();
  bool startSlurm();
  // Writes the scenario YAML into a new run folder; returns its path (empty on failure).
  QString writeScenario(const QString& base);
  // Runs cmd in dir with run_environment; wires output, errors and the finish handler.
  void launch(const QStringList& cmd, const QString& dir);
  QString makeRunDirectory(const QString& name);
  void processFinished(int code, QProcess::ExitStatus status);
  void appendLog(const QString& text);
  void addPoints(const std::vector<MetricsRecord>& records);

  QString yaml_, name_;
  int train_iters_ = 0;
  std::vector<int> exit_layers_;
  bool needs_gpus_ = false;
  QString run_dir_;
  QProcess* proc_ = nullptr;
  MetricsLog log_;
  qint64 metrics_offset_ = 0;
  QString metrics_path_, trace_path_, stats_path_, script_path_, slurm_script_;
  Mode running_mode_ = Mode::kTrain;
  QWidget* buildGeneratePage();
  GenerateStats gen_stats_;
  QString blocked_;
  QComboBox* mode_ = nullptr;
  QStackedWidget* mode_pages_ = nullptr;
  QLineEdit* checkpoint_ = nullptr;
  QLineEdit* prompt_ = nullptr;
  QComboBox* method_ = nullptr;
  QLineEdit* threshold_ = nullptr;
  QSpinBox* max_new_ = nullptr;
  QComboBox* slurm_launcher_ = nullptr;
  QLineEdit* slurm_time_ = nullptr;
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
