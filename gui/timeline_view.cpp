#include "gui/timeline_view.h"

#include <QMouseEvent>
#include <QPainter>
#include <QScrollBar>
#include <QToolTip>
#include <QWheelEvent>
#include <algorithm>
#include <cmath>

#include "gui/format.h"

namespace eellm::gui {
namespace {

constexpr TimeNs kMinSpanNs = 100;
constexpr int kOverlayHeight = 7;  // measured bars at the bottom of a compute lane

}  // namespace

TimelineView::TimelineView(QWidget* parent) : QAbstractScrollArea(parent) {
  for (int c = 0; c < kNumOpClasses; ++c) colors_[static_cast<size_t>(c)] = op_color(static_cast<OpClass>(c));
  viewport()->setMouseTracking(true);
  setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOn);
  setVerticalScrollBarPolicy(Qt::ScrollBarAsNeeded);
  setMinimumSize(320, 160);
  connect(horizontalScrollBar(), &QScrollBar::valueChanged, this, [this](int v) {
    if (syncing_scrollbar_) return;
    const int64_t unit = std::max<int64_t>(1, axis_.total / 100000);
    TimeAxis a = axis_;
    a.start = static_cast<int64_t>(v) * unit;
    applyAxis(a.clamped(), true);
  });
}

void TimelineView::setSimulation(std::shared_ptr<const SimulationResult> result, bool keep_view) {
  keep_view = keep_view && timeline_ != nullptr;
  sim_ = std::move(result);
  timeline_ = sim_ ? std::shared_ptr<const Timeline>(sim_, &sim_->engine.timeline) : nullptr;
  critical_ = sim_ ? critical_path_events(*sim_) : std::vector<int32_t>{};
  rebuild(keep_view);
}

void TimelineView::setPlaceholderText(const QString& text) {
  placeholder_ = text;
  viewport()->update();
}

void TimelineView::setTimeline(std::shared_ptr<const Timeline> timeline) {
  sim_.reset();
  timeline_ = std::move(timeline);
  critical_.clear();
  rebuild();
}

void TimelineView::clear() {
  sim_.reset();
  timeline_.reset();
  overlay_.reset();
  critical_.clear();
  rebuild();
}

uint64_t TimelineView::eventKey(const TimelineEvent& e) const {
  // rank 24 bits | stream 2 | op 4 | exit 1 | chunk 8 | microbatch 24 (+1 so -1 fits).
  return (static_cast<uint64_t>(e.rank & 0xffffff) << 40) | (static_cast<uint64_t>(e.stream) << 38) |
         (static_cast<uint64_t>(e.op) << 34) | (static_cast<uint64_t>(e.exit_part) << 33) |
         (static_cast<uint64_t>(e.chunk & 0xff) << 25) | static_cast<uint64_t>((e.microbatch + 1) & 0xffffff);
}

void TimelineView::setOverlay(std::shared_ptr<const Timeline> measured) {
  overlay_ = std::move(measured);
  overlay_by_key_.clear();
  overlay_lanes_.clear();
  if (overlay_) {
    overlay_lanes_.build(*overlay_);
    for (size_t i = 0; i < overlay_->events.size(); ++i) {
      overlay_by_key_.emplace(eventKey(overlay_->events[i]), static_cast<int32_t>(i));
    }
  }
  viewport()->update();
}

void TimelineView::rebuild(bool keep_view) {
  selected_ = -1;
  deps_.clear();
  if (!keep_view) collapsed_.clear();
  mb_labels_.clear();
  mb_label_width_.clear();
  if (timeline_) {
    int max_mb = 0;
    for (const TimelineEvent& e : timeline_->events) max_mb = std::max(max_mb, e.microbatch);
    const QFontMetrics fm(font());
    for (int m = 0; m <= max_mb; ++m) {
      mb_labels_.push_back(QString::number(m));
      mb_label_width_.push_back(fm.horizontalAdvance(mb_labels_.back()));
    }
  }
  rebuildLanes();
  const TimeNs total = std::max<TimeNs>({1, forced_total_, timeline_ ? timeline_->end_time() : 0});
  TimeAxis a = keep_view ? axis_.resized(plotWidth()).retargeted(total) : TimeAxis::fit(total, plotWidth());
  a.min_span = kMinSpanNs;
  applyAxis(a.clamped(), true);
}

void TimelineView::rebuildLanes() {
  lanes_.clear();
  lane_labels_.clear();
  if (timeline_) {
    LaneGeometry g;
    g.collapsed = collapsed_;
    lanes_.build(*timeline_, g);
    for (const Lane& l : lanes_.lanes()) {
      const bool c = stageCollapsed(l.rank);
      lane_labels_.push_back(
          l.stream == Stream::kCompute
              ? QStringLiteral("%1 stage %2").arg(c ? QStringLiteral("▸") : QStringLiteral("▾")).arg(l.rank)
          : l.stream == Stream::kSend ? QStringLiteral("    p2p")
                                      : QStringLiteral("    collective"));
    }
  }
  updateScrollBars();
  viewport()->update();
}

bool TimelineView::stageCollapsed(int rank) const {
  return rank >= 0 && static_cast<size_t>(rank) < collapsed_.size() && collapsed_[static_cast<size_t>(rank)];
}

void TimelineView::setStageCollapsed(int rank, bool collapsed) {
  if (rank < 0) return;
  if (collapsed_.size() <= static_cast<size_t>(rank)) collapsed_.resize(static_cast<size_t>(rank) + 1, false);
  collapsed_[static_cast<size_t>(rank)] = collapsed;
  rebuildLanes();
}

void TimelineView::setAllStagesCollapsed(bool collapsed) {
  int n = timeline_ ? timeline_->num_ranks : 0;
  if (timeline_) {
    for (const TimelineEvent& e : timeline_->events) n = std::max(n, e.rank + 1);
  }
  collapsed_.assign(static_cast<size_t>(n), collapsed);
  rebuildLanes();
}

int TimelineView::plotWidth() const {
  return std::max(1, viewport()->width() - kLabelWidth);
}

void TimelineView::setAxisTotal(TimeNs total) {
  forced_total_ = total;
  const TimeNs t = std::max<TimeNs>({1, forced_total_, timeline_ ? timeline_->end_time() : 0});
  applyAxis(axis_.retargeted(t), true);
}

void TimelineView::setAxis(const TimeAxis& axis) {
  TimeAxis a = axis;
  a.width = plotWidth();
  a.total = std::max<TimeNs>({1, forced_total_, axis.total, timeline_ ? timeline_->end_time() : 0});
  a.min_span = kMinSpanNs;
  applyAxis(a.clamped(), false);
}

void TimelineView::applyAxis(const TimeAxis& axis, bool notify) {
  const bool changed = !(axis == axis_);
  axis_ = axis;
  updateScrollBars();
  viewport()->update();
  if (changed && notify) emit axisChanged(axis_);
}

void TimelineView::updateScrollBars() {
  syncing_scrollbar_ = true;
  const int64_t unit = std::max<int64_t>(1, axis_.total / 100000);
  horizontalScrollBar()->setRange(0, static_cast<int>((axis_.total - axis_.span) / unit));
  horizontalScrollBar()->setPageStep(static_cast<int>(std::max<int64_t>(1, axis_.span / unit)));
  horizontalScrollBar()->setValue(static_cast<int>(axis_.start / unit));
  const int content = kHeaderHeight + lanes_.total_height();
  verticalScrollBar()->setRange(0, std::max(0, content - viewport()->height()));
  verticalScrollBar()->setPageStep(viewport()->height());
  verticalScrollBar()->setSingleStep(20);
  syncing_scrollbar_ = false;
}

void TimelineView::resizeEvent(QResizeEvent* event) {
  QAbstractScrollArea::resizeEvent(event);
  applyAxis(axis_.resized(plotWidth()), false);
}

void TimelineView::scrollContentsBy(int, int) {
  viewport()->update();
}

void TimelineView::paintEvent(QPaintEvent*) {
  QPainter p(viewport());
  render(p, viewport()->size(), axis_, verticalScrollBar()->value());
  if (drag_ == Drag::kSelect) {
    const int x0 = std::min(press_pos_.x(), drag_pos_.x()), x1 = std::max(press_pos_.x(), drag_pos_.x());
    p.fillRect(QRect(x0, kHeaderHeight, x1 - x0, viewport()->height()), QColor(60, 120, 220, 50));
    p.setPen(QColor(60, 120, 220));
    p.drawLine(x0, kHeaderHeight, x0, viewport()->height());
    p.drawLine(x1, kHeaderHeight, x1, viewport()->height());
  }
}

void TimelineView::paintLane(QPainter& p, const Timeline& tl, const TimelineLanes& lanes, const Lane& lane,
                             const TimeAxis& ax, int y, int h, bool labels) const {
  const auto [first, last] = lanes.visible(lane, ax.start, ax.end());
  const double plot_w = ax.width;
  double painted_to = -1e18;  // right edge (px) already painted in this lane
  for (size_t i = first; i < last; ++i) {
    const TimelineEvent& e = tl.events[static_cast<size_t>(lane.events[i])];
    double x0 = std::max(-2.0, ax.to_px(e.t0));
    double x1 = std::min(plot_w + 2, ax.to_px(e.t1));
    if (x1 <= painted_to) continue;  // inside a pixel already painted: culled
    if (x1 - x0 < 1) x1 = x0 + 1;
    const double w = x1 - x0 >= 4 ? x1 - x0 - 1 : x1 - x0;  // 1 px gap between wide blocks
    const OpClass cls = op_class(e);
    p.fillRect(QRectF(kLabelWidth + x0, y, w, h), colors_[static_cast<size_t>(cls)]);
    ++painted_blocks_;
    painted_to = std::ceil(x0 + w);
    if (labels && e.microbatch >= 0 && static_cast<size_t>(e.microbatch) < mb_labels_.size() && h >= 12 &&
        cls != OpClass::kComm && w >= mb_label_width_[static_cast<size_t>(e.microbatch)] + 4) {
      p.drawText(QRectF(kLabelWidth + x0, y, w, h), Qt::AlignCenter, mb_labels_[static_cast<size_t>(e.microbatch)]);
    }
  }
}

void TimelineView::paintOutlines(QPainter& p, const std::vector<int32_t>& events, const TimeAxis& ax, int top,
                                 int y_offset, const QColor& color, qreal width) const {
  if (!timeline_ || events.empty()) return;
  p.setPen(QPen(color, width));
  p.setBrush(Qt::NoBrush);
  for (int32_t idx : events) {
    const TimelineEvent& e = timeline_->events[static_cast<size_t>(idx)];
    if (!ax.visible(e.t0, e.t1)) continue;
    const int li = lanes_.lane_of(e.rank, e.stream);
    if (li < 0) continue;
    const Lane& lane = lanes_.lanes()[static_cast<size_t>(li)];
    const double x0 = std::max(-2.0, ax.to_px(e.t0)), x1 = std::min(ax.width + 2.0, ax.to_px(e.t1));
    p.drawRect(QRectF(kLabelWidth + x0, top + lane.y - y_offset, std::max(1.0, x1 - x0 - 1), lane.height - 1));
  }
}

void TimelineView::render(QPainter& p, QSize size, const TimeAxis& ax, int y_offset) const {
  const int w = size.width(), h = size.height();
  painted_blocks_ = 0;
  p.fillRect(QRect(0, 0, w, h), Qt::white);
  p.setFont(font());
  const QFontMetrics fm(font());

  // Legend: full names when they fit the width, else short ones (the compare panel's narrow views).
  static const char* kShort[kNumOpClasses] = {"fwd",  "bwd",  "bwd-W", "exit fwd", "exit bwd",
                                              "fill", "comm", "opt",   "idle"};
  QFont small = font();  // the last resort: short names in a smaller font
  small.setPointSizeF(font().pointSizeF() * 0.8);
  auto legend_width = [&](bool brief, const QFontMetrics& m) {
    int total = 6;
    for (int c = 0; c < kNumOpClasses; ++c)
      total += 16 +
               m.horizontalAdvance(QString::fromLatin1(brief ? kShort[c] : op_class_name(static_cast<OpClass>(c)))) +
               (brief ? 8 : 14);
    return total;
  };
  const bool brief = legend_width(false, fm) > w;
  if (brief && legend_width(true, fm) > w) p.setFont(small);
  const QFontMetrics lfm(p.font());
  int lx = 6;
  p.setPen(Qt::black);
  for (int c = 0; c < kNumOpClasses; ++c) {
    const QString name = QString::fromLatin1(brief ? kShort[c] : op_class_name(static_cast<OpClass>(c)));
    p.fillRect(QRect(lx, 5, 12, 12), colors_[static_cast<size_t>(c)]);
    p.drawRect(QRect(lx, 5, 12, 12));
    p.drawText(QPoint(lx + 16, 15), name);
    lx += 16 + lfm.horizontalAdvance(name) + (brief ? 8 : 14);
  }
  if (overlay_) {
    p.fillRect(QRect(lx, 11, 12, 6), Qt::darkGray);
    p.drawText(QPoint(lx + 16, 15), QStringLiteral("measured (overlay)"));
  }

  p.setFont(font());

  // Ruler.
  const int ruler_y = kLegendHeight;
  p.setPen(QColor(90, 90, 90));
  p.drawLine(kLabelWidth, ruler_y + kRulerHeight - 1, w, ruler_y + kRulerHeight - 1);
  if (timeline_) {
    const int64_t step = tick_step(ax, 90);
    const char* unit = format_time_unit(step);
    for (int64_t t = (ax.start + step - 1) / step * step; t <= ax.end(); t += step) {
      const int x = kLabelWidth + static_cast<int>(std::lround(ax.to_px(t)));
      p.drawLine(x, ruler_y + kRulerHeight - 6, x, ruler_y + kRulerHeight - 1);
      p.drawText(QPoint(x + 2, ruler_y + kRulerHeight - 8),
                 QStringLiteral("%1 %2").arg(time_in_unit(t, step), 0, 'g', 6).arg(QString::fromUtf8(unit)));
    }
  }
  if (!timeline_) {
    p.drawText(QRect(0, kHeaderHeight, w, std::max(0, h - kHeaderHeight)), Qt::AlignCenter, placeholder_);
    return;
  }

  // Lanes.
  const int top = kHeaderHeight;
  p.save();
  p.setClipRect(QRect(0, top, w, std::max(0, h - top)));
  const auto [l0, l1] = lanes_.lanes_between(y_offset, y_offset + h - top);
  for (size_t li = l0; li < l1; ++li) {
    const Lane& lane = lanes_.lanes()[li];
    const int y = top + lane.y - y_offset;
    const bool compute = lane.stream == Stream::kCompute;
    p.fillRect(QRect(kLabelWidth, y, ax.width, lane.height),
               compute ? colors_[static_cast<size_t>(OpClass::kIdle)] : QColor(0xf7, 0xf7, 0xf7));
    const bool with_overlay = overlay_ && compute;
    const int pred_h = with_overlay ? lane.height - kOverlayHeight - 1 : lane.height;
    p.setPen(Qt::white);
    paintLane(p, *timeline_, lanes_, lane, ax, y, pred_h, compute);
    if (with_overlay) {
      const int oi = overlay_lanes_.lane_of(lane.rank, Stream::kCompute);
      if (oi >= 0) {
        paintLane(p, *overlay_, overlay_lanes_, overlay_lanes_.lanes()[static_cast<size_t>(oi)], ax, y + pred_h + 1,
                  kOverlayHeight, false);
      }
    }
    p.setPen(compute ? Qt::black : QColor(100, 100, 100));
    p.fillRect(QRect(0, y, kLabelWidth, lane.height), Qt::white);
    p.drawText(QRect(4, y, kLabelWidth - 8, lane.height), Qt::AlignVCenter | Qt::AlignLeft, lane_labels_[li]);
  }
  // Highlights: critical path (when an op is selected), dependencies, the selection.
  if (selected_ >= 0) {
    paintOutlines(p, critical_, ax, top, y_offset, QColor(220, 30, 30), 1.5);
    paintOutlines(p, deps_, ax, top, y_offset, QColor(20, 20, 20), 2.5);
    paintOutlines(p, std::vector<int32_t>{selected_}, ax, top, y_offset, QColor(255, 215, 0), 3.0);
  }
  p.restore();
}

QImage TimelineView::renderImage(int width) const {
  TimeAxis ax = TimeAxis::fit(std::max<TimeNs>({1, forced_total_, timeline_ ? timeline_->end_time() : 0}),
                              std::max(1, width - kLabelWidth));
  ax.min_span = kMinSpanNs;
  const int height = kHeaderHeight + std::max(40, lanes_.total_height());
  QImage img(width, height, QImage::Format_RGB32);
  QPainter p(&img);
  render(p, img.size(), ax.clamped(), 0);
  return img;
}

QRect TimelineView::laneRect(int lane, int image_width) const {
  const Lane& l = lanes_.lanes()[static_cast<size_t>(lane)];
  return QRect(kLabelWidth, kHeaderHeight + l.y, image_width - kLabelWidth, l.height);
}

int32_t TimelineView::eventAt(QPoint pos) const {
  if (!timeline_ || pos.x() < kLabelWidth || pos.y() < kHeaderHeight) return -1;
  const int li = lanes_.lane_at(pos.y() - kHeaderHeight + verticalScrollBar()->value());
  if (li < 0) return -1;
  const TimeNs t = axis_.to_time(pos.x() - kLabelWidth);
  const TimeNs slack = static_cast<TimeNs>(std::ceil(axis_.ns_per_px()));
  return lanes_.event_at(*timeline_, lanes_.lanes()[static_cast<size_t>(li)], t, slack);
}

QString TimelineView::tooltipText(int32_t index) const {
  if (!timeline_ || index < 0 || static_cast<size_t>(index) >= timeline_->events.size()) return {};
  const TimelineEvent& e = timeline_->events[static_cast<size_t>(index)];
  QString s = QStringLiteral("<b>%1</b> (%2) — stage %3, %4 stream")
                  .arg(QString::fromStdString(event_name(e)), QString::fromLatin1(op_class_name(op_class(e))))
                  .arg(e.rank)
                  .arg(QString::fromLatin1(to_string(e.stream)));
  if (e.microbatch >= 0) s += QStringLiteral("<br>microbatch %1").arg(e.microbatch);
  if (e.chunk > 0) s += QStringLiteral(", chunk %1").arg(e.chunk);
  s += QStringLiteral("<br>start %1, duration %2").arg(format_duration_ns(e.t0), format_duration_ns(e.duration()));
  if (e.bytes > 0) s += QStringLiteral("<br>bytes %1").arg(format_bytes(static_cast<double>(e.bytes)));
  if (e.flops > 0) s += QStringLiteral("<br>FLOPs %1 per GPU").arg(format_flops(e.flops));
  if (e.peer >= 0) s += QStringLiteral("<br>peer stage %1").arg(e.peer);
  if (overlay_) {
    auto it = overlay_by_key_.find(eventKey(e));
    if (it != overlay_by_key_.end()) {
      const TimelineEvent& m = overlay_->events[static_cast<size_t>(it->second)];
      const double err = m.duration() > 0 ? static_cast<double>(e.duration() - m.duration()) / m.duration() : 0;
      s += QStringLiteral("<br>measured %1 (prediction error %2%3)")
               .arg(format_duration_ns(m.duration()), err >= 0 ? QStringLiteral("+") : QString(), format_percent(err));
    } else {
      s += QStringLiteral("<br>no matching measured op");
    }
  }
  return s;
}

void TimelineView::selectEvent(int32_t index) {
  selected_ = timeline_ && index >= 0 && static_cast<size_t>(index) < timeline_->events.size() ? index : -1;
  deps_ = selected_ >= 0 && sim_ ? dependency_events(*sim_, selected_) : std::vector<int32_t>{};
  viewport()->update();
  emit eventSelected(selected_);
}

void TimelineView::wheelEvent(QWheelEvent* event) {
  if (event->modifiers() & Qt::ShiftModifier) {
    verticalScrollBar()->setValue(verticalScrollBar()->value() - event->angleDelta().y() / 2);
    event->accept();
    return;
  }
  const double factor = std::pow(1.2, event->angleDelta().y() / 120.0);
  applyAxis(axis_.zoomed(factor, event->position().x() - kLabelWidth), true);
  event->accept();
}

void TimelineView::mousePressEvent(QMouseEvent* event) {
  press_pos_ = drag_pos_ = event->position().toPoint();
  press_axis_ = axis_;
  const bool select = event->button() == Qt::RightButton ||
                      (event->button() == Qt::LeftButton && (event->modifiers() & Qt::ShiftModifier));
  drag_ = select ? Drag::kSelect : event->button() == Qt::LeftButton ? Drag::kPan : Drag::kNone;
}

void TimelineView::mouseMoveEvent(QMouseEvent* event) {
  const QPoint pos = event->position().toPoint();
  drag_pos_ = pos;
  if (drag_ == Drag::kPan) {
    applyAxis(press_axis_.panned(press_pos_.x() - pos.x()), true);
    const int dy = press_pos_.y() - pos.y();
    (void)dy;
  } else if (drag_ == Drag::kSelect) {
    viewport()->update();
  } else {
    const QString tip = tooltipText(eventAt(pos));
    if (tip.isEmpty()) {
      QToolTip::hideText();
    } else {
      QToolTip::showText(event->globalPosition().toPoint(), tip, viewport());
    }
  }
}

void TimelineView::mouseReleaseEvent(QMouseEvent* event) {
  const QPoint pos = event->position().toPoint();
  const int moved = std::abs(pos.x() - press_pos_.x()) + std::abs(pos.y() - press_pos_.y());
  if (drag_ == Drag::kSelect && std::abs(pos.x() - press_pos_.x()) > 3) {
    applyAxis(axis_.showing(axis_.to_time(press_pos_.x() - kLabelWidth), axis_.to_time(pos.x() - kLabelWidth)), true);
  } else if (drag_ == Drag::kPan && moved <= 3 && pos.x() < kLabelWidth && pos.y() >= kHeaderHeight) {
    const int li = lanes_.lane_at(pos.y() - kHeaderHeight + verticalScrollBar()->value());
    if (li >= 0) {
      const Lane& l = lanes_.lanes()[static_cast<size_t>(li)];
      setStageCollapsed(l.rank, !stageCollapsed(l.rank));
    }
  } else if (drag_ == Drag::kPan && moved <= 3) {
    selectEvent(eventAt(pos));
  }
  drag_ = Drag::kNone;
  viewport()->update();
}

void TimelineView::mouseDoubleClickEvent(QMouseEvent*) {
  TimeAxis a = TimeAxis::fit(axis_.total, plotWidth());
  a.min_span = kMinSpanNs;
  applyAxis(a.clamped(), true);
}

}  // namespace eellm::gui
