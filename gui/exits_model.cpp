#include "gui/exits_model.h"

#include <algorithm>
#include <numeric>

namespace eellm::gui {

ExitsModel::ExitsModel(QObject* parent) : QAbstractTableModel(parent) {}

void ExitsModel::normalise() {
  const size_t n = exits_.exit_layer_nums.size();
  auto expand = [n](std::vector<double>& v, double fill) {
    if (v.size() == 1 && n > 1) v.assign(n, v.front());
    v.resize(n, v.empty() ? fill : v.back());
  };
  expand(exits_.exit_layer_weight, 1.0);
  if (!exits_.exit_layer_weight_init.empty()) expand(exits_.exit_layer_weight_init, 0.0);
}

void ExitsModel::sortByLayer() {
  const size_t n = exits_.exit_layer_nums.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return exits_.exit_layer_nums[a] < exits_.exit_layer_nums[b]; });
  auto permute = [&](auto& v) {
    if (v.size() != n) return;
    auto copy = v;
    for (size_t i = 0; i < n; ++i) v[i] = copy[order[i]];
  };
  permute(exits_.exit_layer_nums);
  permute(exits_.exit_layer_weight);
  permute(exits_.exit_layer_weight_init);
}

void ExitsModel::setExits(const ExitSpec& exits) {
  beginResetModel();
  exits_ = exits;
  normalise();
  endResetModel();
}

void ExitsModel::addExit(int layer, double weight) {
  beginResetModel();
  exits_.exit_layer_nums.push_back(layer);
  exits_.exit_layer_weight.push_back(weight);
  if (!exits_.exit_layer_weight_init.empty()) exits_.exit_layer_weight_init.push_back(weight);
  sortByLayer();
  endResetModel();
  emit exitsEdited();
}

bool ExitsModel::removeExit(int row) {
  if (row < 0 || row >= rowCount()) return false;
  beginRemoveRows({}, row, row);
  const auto r = static_cast<ptrdiff_t>(row);
  exits_.exit_layer_nums.erase(exits_.exit_layer_nums.begin() + r);
  exits_.exit_layer_weight.erase(exits_.exit_layer_weight.begin() + r);
  if (!exits_.exit_layer_weight_init.empty())
    exits_.exit_layer_weight_init.erase(exits_.exit_layer_weight_init.begin() + r);
  endRemoveRows();
  emit exitsEdited();
  return true;
}

bool ExitsModel::moveExit(int row, int layer) {
  if (row < 0 || row >= rowCount()) return false;
  beginResetModel();
  exits_.exit_layer_nums[static_cast<size_t>(row)] = layer;
  sortByLayer();
  endResetModel();
  emit exitsEdited();
  return true;
}

int ExitsModel::rowCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : static_cast<int>(exits_.exit_layer_nums.size());
}

int ExitsModel::columnCount(const QModelIndex& parent) const {
  return parent.isValid() ? 0 : kNumColumns;
}

QVariant ExitsModel::data(const QModelIndex& index, int role) const {
  if (!index.isValid() || index.row() >= rowCount()) return {};
  if (role != Qt::DisplayRole && role != Qt::EditRole) return {};
  const auto r = static_cast<size_t>(index.row());
  switch (index.column()) {
    case kLayer:
      return exits_.exit_layer_nums[r];
    case kWeight:
      return exits_.exit_layer_weight[r];
    case kInitWeight:
      return exits_.exit_layer_weight_init.empty() ? exits_.exit_layer_weight[r] : exits_.exit_layer_weight_init[r];
    default:
      return {};
  }
}

bool ExitsModel::setData(const QModelIndex& index, const QVariant& value, int role) {
  if (!index.isValid() || role != Qt::EditRole || index.row() >= rowCount()) return false;
  const auto r = static_cast<size_t>(index.row());
  bool ok = false;
  switch (index.column()) {
    case kLayer: {
      const int layer = value.toInt(&ok);
      if (!ok) return false;
      return moveExit(index.row(), layer);
    }
    case kWeight: {
      const double w = value.toDouble(&ok);
      if (!ok) return false;
      exits_.exit_layer_weight[r] = w;
      break;
    }
    case kInitWeight: {
      const double w = value.toDouble(&ok);
      if (!ok) return false;
      if (exits_.exit_layer_weight_init.empty()) exits_.exit_layer_weight_init = exits_.exit_layer_weight;
      exits_.exit_layer_weight_init[r] = w;
      break;
    }
    default:
      return false;
  }
  emit dataChanged(index, index, {Qt::DisplayRole, Qt::EditRole});
  emit exitsEdited();
  return true;
}

QVariant ExitsModel::headerData(int section, Qt::Orientation orientation, int role) const {
  if (role != Qt::DisplayRole) return {};
  if (orientation == Qt::Vertical) return section + 1;
  switch (section) {
    case kLayer:
      return tr("layer");
    case kWeight:
      return tr("loss weight");
    case kInitWeight:
      return tr("initial weight");
    default:
      return {};
  }
}

Qt::ItemFlags ExitsModel::flags(const QModelIndex& index) const {
  if (!index.isValid()) return Qt::NoItemFlags;
  return Qt::ItemIsSelectable | Qt::ItemIsEnabled | Qt::ItemIsEditable;
}

}  // namespace eellm::gui
