#include "gui/exit_ruler.h"

#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <algorithm>
#include <cmath>

#include "gui/exits_model.h"

namespace eellm::gui {

ExitRuler::ExitRuler(QWidget* parent) : QWidget(parent) {
  setMinimumHeight(54);
  setMouseTracking(true);
  setToolTip(tr("Drag an exit to move it, double-click to add one, right-click an exit to remove it"));
}

void ExitRuler::setModel(ExitsModel* model) {
  model_ = model;
  connect(model_, &QAbstractItemModel::modelReset, this, qOverload<>(&QWidget::update));
  connect(model_, &QAbstractItemModel::rowsRemoved, this, qOverload<>(&QWidget::update));
  connect(model_, &QAbstractItemModel::dataChanged, this, qOverload<>(&QWidget::update));
  update();
}

void ExitRuler::setLayers(int num_layers, std::vector<int> band_layers, std::vector<int> band_stage, bool pre_exit) {
  num_layers_ = std::max(1, num_layers);
  stage_layers_ = std::move(band_layers);
  band_stage_ = std::move(band_stage);
  pre_exit_ = pre_exit;
  update();
}

double ExitRuler::boundaryX(int boundary) const {
  const double w = std::max(1, width() - 2 * kMargin);
  return kMargin + w * boundary / num_layers_;
}

int ExitRuler::boundaryAt(double x) const {
  const double w = std::max(1, width() - 2 * kMargin);
  return std::clamp(static_cast<int>(std::lround((x - kMargin) * num_layers_ / w)), 0, num_layers_);
}

int ExitRuler::exitAt(double x) const {
  if (!model_) return -1;
  const auto& nums = model_->exits().exit_layer_nums;
  int best = -1;
  double best_d = 7.0;
  for (size_t i = 0; i < nums.size(); ++i) {
    const double d = std::abs(boundaryX(boundaryForLayer(nums[i])) - x);
    if (d < best_d) {
      best_d = d;
      best = static_cast<int>(i);
    }
  }
  return best;
}

void ExitRuler::paintEvent(QPaintEvent*) {
  QPainter p(this);
  p.setRenderHint(QPainter::Antialiasing);
  const int bar_y = 22, bar_h = 14;
  // Stages as alternating bands with their names.
  int first = 0;
  const std::vector<int> stages = stage_layers_.empty() ? std::vector<int>{num_layers_} : stage_layers_;
  for (size_t s = 0; s < stages.size(); ++s) {
    const double x0 = boundaryX(first), x1 = boundaryX(std::min(num_layers_, first + stages[s]));
    p.fillRect(QRectF(x0, bar_y, x1 - x0, bar_h), s % 2 ? QColor(0xdd, 0xe6, 0xf2) : QColor(0xc6, 0xd4, 0xe8));
    p.setPen(QColor(60, 60, 60));
    const int stage = s < band_stage_.size() ? band_stage_[s] : static_cast<int>(s);
    p.drawText(QRectF(x0, bar_y + bar_h, x1 - x0, 16), Qt::AlignCenter,
               x1 - x0 > 48 ? tr("stage %1").arg(stage) : QString::number(stage));
    first += stages[s];
  }
  // Layer ticks, labelled every few layers.
  const int label_every = num_layers_ <= 16 ? 1 : num_layers_ <= 48 ? 4 : 8;
  p.setPen(QColor(120, 120, 120));
  for (int b = 0; b <= num_layers_; ++b) {
    const double x = boundaryX(b);
    p.drawLine(QPointF(x, bar_y), QPointF(x, bar_y + (b % label_every == 0 ? bar_h : bar_h / 2)));
  }
  QFont small = font();
  small.setPointSizeF(small.pointSizeF() * 0.8);
  p.setFont(small);
  for (int layer = 1; layer <= num_layers_; ++layer) {
    if (layer % label_every != 0 && layer != 1) continue;
    const double x = (boundaryX(layer - 1) + boundaryX(layer)) / 2;
    p.drawText(QRectF(x - 12, bar_y - 13, 24, 12), Qt::AlignCenter, QString::number(layer));
  }
  // Exits as orange markers on their boundary.
  if (!model_) return;
  const auto& nums = model_->exits().exit_layer_nums;
  for (size_t i = 0; i < nums.size(); ++i) {
    const int b = static_cast<int>(i) == dragging_ ? drag_boundary_ : boundaryForLayer(nums[i]);
    const double x = boundaryX(b);
    QPainterPath tri;
    tri.moveTo(x, bar_y + 2);
    tri.lineTo(x - 6, bar_y - 9);
    tri.lineTo(x + 6, bar_y - 9);
    tri.closeSubpath();
    p.fillPath(tri, QColor(0xe6, 0x8a, 0x1e));
    p.setPen(QPen(QColor(0xc0, 0x4b, 0x1c), 2));
    p.drawLine(QPointF(x, bar_y), QPointF(x, bar_y + bar_h));
  }
}

void ExitRuler::mousePressEvent(QMouseEvent* event) {
  const int row = exitAt(event->position().x());
  if (row < 0 || !model_) return;
  if (event->button() == Qt::RightButton) {
    model_->removeExit(row);
    return;
  }
  if (event->button() == Qt::LeftButton) {
    dragging_ = row;
    drag_boundary_ = boundaryForLayer(model_->exits().exit_layer_nums[static_cast<size_t>(row)]);
  }
}

void ExitRuler::mouseMoveEvent(QMouseEvent* event) {
  if (dragging_ < 0) return;
  drag_boundary_ = boundaryAt(event->position().x());
  update();
}

void ExitRuler::mouseReleaseEvent(QMouseEvent* event) {
  if (dragging_ < 0 || !model_) return;
  const int row = dragging_;
  dragging_ = -1;
  const int layer = layerForBoundary(boundaryAt(event->position().x()));
  if (layer != model_->exits().exit_layer_nums[static_cast<size_t>(row)]) model_->moveExit(row, layer);
  update();
}

void ExitRuler::mouseDoubleClickEvent(QMouseEvent* event) {
  if (!model_ || exitAt(event->position().x()) >= 0) return;
  const auto& w = model_->exits().exit_layer_weight;
  model_->addExit(layerForBoundary(boundaryAt(event->position().x())), w.empty() ? 0.1 : w.back());
}

}  // namespace eellm::gui
