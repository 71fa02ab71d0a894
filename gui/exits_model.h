// ExitsModel: the exits of a scenario as an editable table (layer number, loss weight, initial
// weight), for the scenario form's add / remove / move. Keeps exit_layer_nums, exit_layer_weight
// and exit_layer_weight_init the same length while editing (a single shared weight is expanded).
// Rows stay in the order of the ExitSpec; validation (layers in range, increasing) is left to
// validate_scenario so its messages show next to the table. GUI thread only.
#pragma once

#include <QAbstractTableModel>

#include "model/scenario.h"

namespace eellm::gui {

class ExitsModel : public QAbstractTableModel {
  Q_OBJECT
 public:
  enum Column { kLayer = 0, kWeight = 1, kInitWeight = 2, kNumColumns = 3 };

  explicit ExitsModel(QObject* parent = nullptr);

  void setExits(const ExitSpec& exits);
  // The exits as edited (the other ExitSpec fields are those given to setExits).
  const ExitSpec& exits() const { return exits_; }

  // Adds an exit after layer `layer` with weight `weight` (kept sorted by layer).
  void addExit(int layer, double weight);
  bool removeExit(int row);
  // Moves an exit to another layer (re-sorted).
  bool moveExit(int row, int layer);

  int rowCount(const QModelIndex& parent = {}) const override;
  int columnCount(const QModelIndex& parent = {}) const override;
  QVariant data(const QModelIndex& index, int role) const override;
  bool setData(const QModelIndex& index, const QVariant& value, int role) override;
  QVariant headerData(int section, Qt::Orientation orientation, int role) const override;
  Qt::ItemFlags flags(const QModelIndex& index) const override;

 signals:
  void exitsEdited();

 private:
  void normalise();  // weights and inits per exit
  void sortByLayer();
  ExitSpec exits_;
};

}  // namespace eellm::gui
