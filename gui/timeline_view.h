// TimelineView: the pipeline schedule of one iteration as lanes of coloured blocks. One lane per
// pipeline rank (= stage) with its streams as sub-lanes, a time ruler, a legend, microbatch numbers
// on the blocks. Wheel zooms around the cursor, drag pans, shift- or right-drag selects a range to
// zoom to, double-click fits; hovering shows the op, microbatch, start, duration, bytes and FLOPs;
// clicking an op of a simulated iteration highlights what it waited for and the critical path.
// A measured timeline can be overlaid under the prediction (thin bars) with the per-op error in the
// tooltip.
//
// Painting culls: only lanes in the viewport and, per lane, the events found by binary search over
// the visible time range are visited, and blocks that fall in an already painted pixel are skipped,
// so a 1,024-rank trace costs at most (visible lanes x width) fills per frame and allocates nothing
// per event. render() paints the same picture into any QPainter (PNG/SVG export, tests).
// GUI thread only.
#pragma once

#include <QAbstractScrollArea>
#include <QImage>
#include <QString>
#include <array>
#include <memory>
#include <unordered_map>
#include <vector>

#include "gui/time_axis.h"
#include "gui/timeline_lanes.h"
#include "sim/simulate.h"

namespace eellm::gui {

class TimelineView : public QAbstractScrollArea {
  Q_OBJECT
 public:
  static constexpr int kLabelWidth = 96;
  static constexpr int kLegendHeight = 22;
  static constexpr int kRulerHeight = 22;
  static constexpr int kHeaderHeight = kLegendHeight + kRulerHeight;

  explicit TimelineView(QWidget* parent = nullptr);

  // A simulated iteration (dependencies and critical path available). keep_view keeps the zoom
  // and collapsed stages (a re-simulation after an edit); otherwise the view fits the new data.
  void setSimulation(std::shared_ptr<const SimulationResult> result, bool keep_view = false);
  // A timeline without a schedule (a trace file).
  void setTimeline(std::shared_ptr<const Timeline> timeline);
  // A measured timeline drawn under the prediction; null removes it.
  void setOverlay(std::shared_ptr<const Timeline> measured);
  void clear();
  // What an empty view says.
  void setPlaceholderText(const QString& text);

  const Timeline* timeline() const { return timeline_.get(); }
  const Timeline* overlay() const { return overlay_.get(); }
  const SimulationResult* simulation() const { return sim_.get(); }
  const TimelineLanes& lanes() const { return lanes_; }
  const TimeAxis& axis() const { return axis_; }
  // Shows this time range (e.g. from a compared view); the total is kept at least the data length.
  void setAxis(const TimeAxis& axis);
  // Forces the axis length (aligning two views on the longer iteration); 0 → the data's own.
  void setAxisTotal(TimeNs total);

  // Hides (or shows) the communication sub-lanes of a stage; clicking a stage's label toggles it.
  void setStageCollapsed(int rank, bool collapsed);
  void setAllStagesCollapsed(bool collapsed);
  bool stageCollapsed(int rank) const;

  void selectEvent(int32_t index);
  int32_t selectedEvent() const { return selected_; }
  const std::vector<int32_t>& dependencyHighlight() const { return deps_; }
  const std::vector<int32_t>& criticalPath() const { return critical_; }

  // Event under a viewport position (-1 if none) and its tooltip text.
  int32_t eventAt(QPoint viewport_pos) const;
  QString tooltipText(int32_t index) const;

  // Paints legend, ruler, labels and lanes into `size` with the given axis (its width is the plot
  // width) and vertical scroll offset.
  void render(QPainter& painter, QSize size, const TimeAxis& axis, int y_offset) const;
  // The whole iteration over `width` pixels, all lanes (height from the lanes).
  QImage renderImage(int width) const;
  // Blocks filled by the last render() (culling check: at most visible lanes x plot width).
  int lastPaintedBlocks() const { return painted_blocks_; }
  // Where lane `lane` lies in an image from renderImage (x spans the plot area).
  QRect laneRect(int lane, int image_width) const;

 signals:
  void axisChanged(const eellm::gui::TimeAxis& axis);
  void eventSelected(int32_t index);

 protected:
  void paintEvent(QPaintEvent* event) override;
  void resizeEvent(QResizeEvent* event) override;
  void wheelEvent(QWheelEvent* event) override;
  void mousePressEvent(QMouseEvent* event) override;
  void mouseMoveEvent(QMouseEvent* event) override;
  void mouseReleaseEvent(QMouseEvent* event) override;
  void mouseDoubleClickEvent(QMouseEvent* event) override;
  void scrollContentsBy(int dx, int dy) override;

 private:
  void rebuild(bool keep_view = false);
  void rebuildLanes();
  void applyAxis(const TimeAxis& axis, bool notify);
  void updateScrollBars();
  void paintLane(QPainter& p, const Timeline& tl, const TimelineLanes& lanes, const Lane& lane, const TimeAxis& ax,
                 int y, int h, bool labels) const;
  void paintOutlines(QPainter& p, const std::vector<int32_t>& events, const TimeAxis& ax, int top, int y_offset,
                     const QColor& color, qreal width) const;
  int plotWidth() const;
  uint64_t eventKey(const TimelineEvent& e) const;

  std::shared_ptr<const SimulationResult> sim_;
  std::shared_ptr<const Timeline> timeline_;
  std::shared_ptr<const Timeline> overlay_;
  TimelineLanes lanes_, overlay_lanes_;
  std::unordered_map<uint64_t, int32_t> overlay_by_key_;
  TimeAxis axis_;
  TimeNs forced_total_ = 0;
  std::array<QColor, kNumOpClasses> colors_;
  std::vector<QString> mb_labels_;  // "0".."max": built once, painting reuses them
  std::vector<int> mb_label_width_;
  std::vector<QString> lane_labels_;
  std::vector<bool> collapsed_;
  int32_t selected_ = -1;
  std::vector<int32_t> deps_, critical_;

  enum class Drag { kNone, kPan, kSelect };
  Drag drag_ = Drag::kNone;
  QPoint press_pos_, drag_pos_;
  TimeAxis press_axis_;
  bool syncing_scrollbar_ = false;
  mutable int painted_blocks_ = 0;
  QString placeholder_ = QStringLiteral("No timeline: open a scenario or a trace");
};

}  // namespace eellm::gui
