// TimeAxis: the time-to-pixel mapping (zoom around a point, pan, clamping at the edges, range
// selection, resize, ticks), tested without a display.
#include <QtTest>

#include "gui/time_axis.h"

using eellm::gui::TimeAxis;

class TimeAxisTest : public QObject {
  Q_OBJECT
 private slots:
  void fitShowsEverything() {
    const TimeAxis a = TimeAxis::fit(1'000'000, 1000);
    QCOMPARE(a.start, int64_t{0});
    QCOMPARE(a.span, int64_t{1'000'000});
    QCOMPARE(a.ns_per_px(), 1000.0);
    QCOMPARE(a.to_px(0), 0.0);
    QCOMPARE(a.to_px(1'000'000), 1000.0);
    QCOMPARE(a.to_px(250'000), 250.0);
    QCOMPARE(a.to_time(250.0), int64_t{250'000});
    // Degenerate inputs are raised to a usable axis.
    const TimeAxis z = TimeAxis::fit(0, 0);
    QCOMPARE(z.total, int64_t{1});
    QCOMPARE(z.width, 1);
    QCOMPARE(z.span, int64_t{1});
  }

  void zoomKeepsTheAnchorFixed() {
    const TimeAxis a = TimeAxis::fit(1'000'000, 1000);
    const TimeAxis z = a.zoomed(4.0, 300.0);  // the time under pixel 300 is 300'000
    QCOMPARE(z.span, int64_t{250'000});
    QCOMPARE(z.to_time(300.0), int64_t{300'000});
    QCOMPARE(z.start, int64_t{300'000 - 75'000});
    // Zooming back out by the same factor returns to the fitted view.
    QCOMPARE(z.zoomed(0.25, 300.0), a);
  }

  void zoomClampsAtEdgesAndLimits() {
    TimeAxis a = TimeAxis::fit(1'000'000, 1000);
    a.min_span = 1000;
    // Zoom in far at the right edge: span stops at min_span and the view stays inside the data.
    const TimeAxis in = a.zoomed(1e9, 1000.0);
    QCOMPARE(in.span, int64_t{1000});
    QCOMPARE(in.start, int64_t{1'000'000 - 1000});
    // Zoom out past the data: the whole data, from 0.
    const TimeAxis out = in.zoomed(1e-9, 10.0);
    QCOMPARE(out.span, int64_t{1'000'000});
    QCOMPARE(out.start, int64_t{0});
    // Zooming in at the left edge keeps start at 0.
    const TimeAxis left = a.zoomed(10.0, 0.0);
    QCOMPARE(left.start, int64_t{0});
    QCOMPARE(left.span, int64_t{100'000});
    // A non-positive factor changes nothing.
    QCOMPARE(a.zoomed(0.0, 10.0), a);
    QCOMPARE(a.zoomed(-2.0, 10.0), a);
  }

  void panMovesAndClamps() {
    const TimeAxis z = TimeAxis::fit(1'000'000, 1000).zoomed(10.0, 0.0);  // [0, 100'000) over 1000 px
    QCOMPARE(z.ns_per_px(), 100.0);
    const TimeAxis p = z.panned(200.0);
    QCOMPARE(p.start, int64_t{20'000});
    QCOMPARE(p.span, z.span);
    QCOMPARE(p.panned(-100.0).start, int64_t{10'000});
    QCOMPARE(z.panned(-50.0).start, int64_t{0});                  // left edge
    QCOMPARE(z.panned(1e9).start, int64_t{1'000'000 - 100'000});  // right edge
    // A fitted view cannot pan.
    QCOMPARE(TimeAxis::fit(1'000'000, 1000).panned(300.0).start, int64_t{0});
  }

  void rangeSelection() {
    TimeAxis a = TimeAxis::fit(1'000'000, 800);
    a.min_span = 1000;
    const TimeAxis s = a.showing(200'000, 400'000);
    QCOMPARE(s.start, int64_t{200'000});
    QCOMPARE(s.span, int64_t{200'000});
    QCOMPARE(a.showing(400'000, 200'000), s);  // drag from right to left
    // Narrower than min_span: min_span centred on the request.
    const TimeAxis tiny = a.showing(500'000, 500'010);
    QCOMPARE(tiny.span, int64_t{1000});
    QCOMPARE(tiny.start, int64_t{500'005 - 500});
    // A selection past the end is clamped inside the data.
    const TimeAxis past = a.showing(950'000, 1'200'000);
    QCOMPARE(past.start + past.span, int64_t{1'000'000});
    QCOMPARE(past.span, int64_t{250'000});
  }

  void visibility() {
    const TimeAxis z = TimeAxis::fit(1'000'000, 1000).showing(100'000, 200'000);
    QVERIFY(z.visible(150'000, 160'000));
    QVERIFY(z.visible(50'000, 100'000));  // touches the left edge
    QVERIFY(z.visible(0, 1'000'000));     // spans the view
    QVERIFY(!z.visible(0, 99'999));
    QVERIFY(!z.visible(200'001, 300'000));
  }

  void resizeAndRetarget() {
    const TimeAxis z = TimeAxis::fit(1'000'000, 1000).showing(100'000, 300'000);
    const TimeAxis r = z.resized(500);
    QCOMPARE(r.start, z.start);
    QCOMPARE(r.span, z.span);
    QCOMPARE(r.ns_per_px(), 400.0);
    // A fitted view stays fitted on new data; a zoomed one keeps its range when it still fits.
    const TimeAxis f = TimeAxis::fit(1'000'000, 1000).retargeted(3'000'000);
    QCOMPARE(f.span, int64_t{3'000'000});
    const TimeAxis k = z.retargeted(3'000'000);
    QCOMPARE(k.start, int64_t{100'000});
    QCOMPARE(k.span, int64_t{200'000});
    // Shrinking data clamps the zoomed view inside it.
    const TimeAxis s = TimeAxis::fit(1'000'000, 1000).showing(800'000, 1'000'000).retargeted(500'000);
    QCOMPARE(s.start, int64_t{300'000});
    QCOMPARE(s.span, int64_t{200'000});
  }

  void ticks() {
    const TimeAxis a = TimeAxis::fit(1'000'000, 1000);         // 1000 ns per px
    QCOMPARE(eellm::gui::tick_step(a, 80), int64_t{100'000});  // ≥ 80'000 ns → 1·10^5
    QCOMPARE(eellm::gui::tick_step(a, 150), int64_t{200'000});
    QCOMPARE(eellm::gui::tick_step(a, 300), int64_t{500'000});
    QCOMPARE(eellm::gui::tick_step(TimeAxis::fit(100, 1000), 10), int64_t{1});
    QCOMPARE(QString::fromUtf8(eellm::gui::format_time_unit(100'000)), QStringLiteral("ms"));
    QCOMPARE(eellm::gui::time_in_unit(2'500'000, 100'000), 2.5);
    QCOMPARE(QString::fromUtf8(eellm::gui::format_time_unit(200)), QStringLiteral("µs"));
    QCOMPARE(QString::fromUtf8(eellm::gui::format_time_unit(1'000'000'000)), QStringLiteral("s"));
  }
};

QTEST_APPLESS_MAIN(TimeAxisTest)
#include "test_time_axis.moc"
