// ExitRuler: the model's layers as a ruler, with pipeline-stage boundaries and the exits as
// markers on it — drag a marker to move an exit, double-click to add one, right-click a marker to
// remove it. Edits go through ExitsModel (which keeps the weights in step). An exit "after layer n"
// sits on the boundary after layer n; a pre-exit "before layer n" on the boundary before it, i.e.
// the same boundary index n-1 — so the ruler works in boundaries (0..num_layers) and converts.
// GUI thread only.
#pragma once

#include <QWidget>
#include <vector>

namespace eellm::gui {

class ExitsModel;

class ExitRuler : public QWidget {
  Q_OBJECT
 public:
  static constexpr int kMargin = 14;

  explicit ExitRuler(QWidget* parent = nullptr);
  void setModel(ExitsModel* model);
  // Layers and the model chunks in model order: layers per chunk and the pipeline stage holding it
  // (empty → one band). With virtual stages a stage appears more than once.
  void setLayers(int num_layers, std::vector<int> band_layers, std::vector<int> band_stage, bool pre_exit);

  // Boundary b (0..num_layers, after b layers) ↔ x in widget pixels.
  double boundaryX(int boundary) const;
  int boundaryAt(double x) const;
  // The exit layer number for a boundary, and back (pre_exit shifts by one).
  int layerForBoundary(int boundary) const { return pre_exit_ ? boundary + 1 : boundary; }
  int boundaryForLayer(int layer) const { return pre_exit_ ? layer - 1 : layer; }
  // Row of the exit whose marker is at x (within a few pixels), or -1.
  int exitAt(double x) const;

  QSize sizeHint() const override { return {320, 54}; }

 protected:
  void paintEvent(QPaintEvent*) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void mouseDoubleClickEvent(QMouseEvent* event) override;

 private:
  ExitsModel* model_ = nullptr;
  int num_layers_ = 1;
  std::vector<int> stage_layers_;
  std::vector<int> band_stage_;
  bool pre_exit_ = false;
  int dragging_ = -1;  // exit row being dragged
  int drag_boundary_ = -1;
};

}  // namespace eellm::gui
