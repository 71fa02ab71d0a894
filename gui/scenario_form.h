// ScenarioForm: the editable face of a Scenario — model, exits (add / remove / move), parallel
// layout, schedule, cluster and batch sizes, the what-if cost inputs (price per GPU-hour, node MTBF,
// checkpoint write bandwidth) — with the validation messages of validate_scenario
// shown under the field they name (the longest registered field path that prefixes the
// diagnostic's field; anything else in a general box at the top). Fields the form does not show are
// kept from the scenario given to setScenario. Emits scenarioEdited() on every user edit (the main
// window debounces and re-simulates). GUI thread only.
//
// A scenario with invalid values is shown as it is: the spin boxes' ranges are the validation's
// bounds and a value outside them is kept, not clamped (Unclamped); setDiagnostics marks every
// field with an error (red border, the message as its tooltip and under it) and lists the errors at
// the top, so nothing typed or read is lost while the user fixes them.
#pragma once

#include <QDoubleSpinBox>
#include <QHash>
#include <QSpinBox>
#include <QWidget>

#include "gui/unclamped_spin.h"
#include "model/scenario.h"
#include "model/validate.h"

class QLabel;
class QTableView;
class QComboBox;
class QVBoxLayout;
class QCheckBox;
class QLineEdit;
class QFormLayout;

namespace eellm::gui {

class ExitsModel;
class ExitRuler;

class ScenarioForm : public QWidget {
  Q_OBJECT
 public:
  explicit ScenarioForm(QWidget* parent = nullptr);

  void setScenario(const Scenario& scenario);
  Scenario scenario() const;
  void setDiagnostics(const Diagnostics& diagnostics);

  // The message shown next to a field ("" when none); field paths as in Diagnostic::field.
  QString errorText(const QString& field) const;
  QString generalErrors() const;
  // The error list at the top of the form ("" when the scenario has no error).
  QString errorSummary() const;
  // Every error and warning shown in the form, one per line ("" when none).
  QString problems() const;
  // The editor of a field (QSpinBox, QComboBox, QCheckBox, QLineEdit or the exits table).
  QWidget* editor(const QString& field) const;
  ExitsModel* exitsModel() const { return exits_; }
  ExitRuler* exitRuler() const { return ruler_; }

 signals:
  void scenarioEdited();

 private:
  struct Field {
    QWidget* editor = nullptr;
    QLabel* error = nullptr;
  };
  using IntSpin = Unclamped<QSpinBox>;
  using RealSpin = Unclamped<QDoubleSpinBox>;
  IntSpin* addSpin(QFormLayout* form, const QString& field, const QString& label, int64_t lo, int64_t hi);
  QComboBox* addCombo(QFormLayout* form, const QString& field, const QString& label, const QStringList& items);
  QCheckBox* addCheck(QFormLayout* form, const QString& field, const QString& label);
  RealSpin* addDoubleSpin(QFormLayout* form, const QString& field, const QString& label, double hi, int decimals);
  // Marks (or unmarks) the editor of a field: red border and the messages as its tooltip.
  static void markEditor(QWidget* editor, const QStringList& messages, bool error);
  // The longest registered field that prefixes a diagnostic's field ("" when none).
  QString registeredField(const QString& field) const;
  void showSummary(const QStringList& errors);
  // What-if cost: price per GPU-hour, node MTBF, checkpoint write bandwidth (cluster.cost.*).
  void addCostGroup(QVBoxLayout* top);
  void showCost(const CostSpec& cost);
  void addErrorRow(QFormLayout* form, const QString& field, QWidget* editor);
  void edited();
  void clusterChosen(const QString& name);
  void addExitClicked();
  void removeExitClicked();
  void refreshRuler();

  Scenario base_;
  bool loading_ = false;
  QHash<QString, Field> fields_;
  QLabel* summary_ = nullptr;  // every error, at the top
  QLabel* general_ = nullptr;  // the diagnostics no shown field takes
  ExitsModel* exits_ = nullptr;
  QTableView* exits_view_ = nullptr;
  ExitRuler* ruler_ = nullptr;
  IntSpin *num_layers_, *hidden_, *heads_, *seq_, *vocab_;
  IntSpin *tp_, *pp_, *vp_, *world_, *mbs_, *gbs_, *nodes_, *gpus_per_node_;
  QComboBox *schedule_, *recompute_, *cluster_, *dtype_;
  QCheckBox *fill_, *sp_, *pre_exit_, *dist_opt_;
  QLineEdit* partition_;
  RealSpin *price_ = nullptr, *mtbf_ = nullptr, *ckpt_bw_ = nullptr;  // cluster.cost
};

}  // namespace eellm::gui
