// ScenarioForm: the editable face of a Scenario — model, exits (add / remove / move), parallel
// layout, schedule, cluster and batch sizes, the what-if cost inputs (price per GPU-hour, node MTBF,
// checkpoint write bandwidth) — with the validation messages of validate_scenario
// shown under the field they name (the longest registered field path that prefixes the
// diagnostic's field; anything else in a general box at the top). Fields the form does not show are
// kept from the scenario given to setScenario. Emits scenarioEdited() on every user edit (the main
// window debounces and re-simulates). GUI thread only.
#pragma once

#include <QHash>
#include <QWidget>

#include "model/scenario.h"
#include "model/validate.h"

class QLabel;
class QTableView;
class QComboBox;
class QSpinBox;
class QDoubleSpinBox;
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
  QSpinBox* addSpin(QFormLayout* form, const QString& field, const QString& label, int lo, int hi);
  QComboBox* addCombo(QFormLayout* form, const QString& field, const QString& label, const QStringList& items);
  QCheckBox* addCheck(QFormLayout* form, const QString& field, const QString& label);
  QDoubleSpinBox* addDoubleSpin(QFormLayout* form, const QString& field, const QString& label, double hi, int decimals);
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
  QLabel* general_ = nullptr;
  ExitsModel* exits_ = nullptr;
  QTableView* exits_view_ = nullptr;
  ExitRuler* ruler_ = nullptr;
  QSpinBox *num_layers_, *hidden_, *heads_, *seq_, *vocab_;
  QSpinBox *tp_, *pp_, *vp_, *world_, *mbs_, *gbs_, *nodes_, *gpus_per_node_;
  QComboBox *schedule_, *recompute_, *cluster_, *dtype_;
  QCheckBox *fill_, *sp_, *pre_exit_, *dist_opt_;
  QLineEdit* partition_;
  QDoubleSpinBox *price_ = nullptr, *mtbf_ = nullptr, *ckpt_bw_ = nullptr;  // cluster.cost
};

}  // namespace eellm::gui
