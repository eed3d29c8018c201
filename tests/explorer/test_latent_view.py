"""The latent plane: clicks decode or select, drags decode continuously, ellipses thin out."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QMimeData, QObject, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from explorer.qt.views.latent_view import (
    DEFAULT_ELLIPSE_BUDGET,
    MAX_RING_SAMPLES,
    LatentView,
    ring_samples,
)


@pytest.fixture
def plot(qtbot):
    view = LatentView()
    qtbot.addWidget(view)
    view.resize(600, 600)
    view.show()
    qtbot.waitExposed(view)
    return view


def show_points(plot, mu, sigma=None, view=(-4, 4, -4, 4)):
    mu = np.asarray(mu, np.float32)
    sigma = np.full_like(mu, 0.05) if sigma is None else np.asarray(sigma, np.float32)
    plot.follow_data(False)  # hold the range the test sets
    plot.set_latents(mu, sigma)
    plot.plotItem.vb.setRange(xRange=view[:2], yRange=view[2:], padding=0)
    plot.viewport().repaint()


def to_pixel(plot, x, y) -> QPoint:
    return plot.mapFromScene(plot.plotItem.vb.mapViewToScene(QPointF(x, y)))


def pixel_size(plot) -> tuple[float, float]:
    return plot.plotItem.vb.viewPixelSize()


def test_click_on_empty_plane_requests_that_z(plot, qtbot):
    show_points(plot, [[3.0, 3.0]])
    with qtbot.waitSignal(plot.zRequested) as blocker:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=to_pixel(plot, 0.7, -1.3))
    pw, ph = pixel_size(plot)
    z1, z2 = blocker.args
    assert abs(z1 - 0.7) <= pw and abs(z2 + 1.3) <= ph


def test_click_on_dot_selects_it_and_not_decode(plot, qtbot):
    mu = [[-2.0, -2.0], [1.0, 0.5], [2.0, 2.0]]
    show_points(plot, mu)
    decoded = []
    plot.zRequested.connect(lambda x, y: decoded.append((x, y)))
    # Two pixels off the dot still picks it.
    p = to_pixel(plot, 1.0, 0.5) + QPoint(2, 1)
    with qtbot.waitSignal(plot.pointSelected) as blocker:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=p)
    assert blocker.args == [1]
    assert plot.selected() == 1
    assert decoded == []
    # A click on empty plane clears the selection (-1) and decodes.
    with qtbot.waitSignals([plot.pointSelected, plot.zRequested]):
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=to_pixel(plot, -1, 1))
    assert plot.selected() is None


def test_drag_requests_z_on_every_move(plot, qtbot):
    show_points(plot, [[3.0, 3.0]])
    seen = []
    plot.zRequested.connect(lambda x, y: seen.append((x, y)))
    vp = plot.viewport()
    start = to_pixel(plot, -2.0, 0.0)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    for dx in (20, 40, 60, 80):
        pos = QPointF(start + QPoint(dx, 0))
        move = QMouseEvent(QEvent.Type.MouseMove, pos, vp.mapToGlobal(pos),
                           Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(vp, move)  # qtbot.mouseMove cannot hold a button down
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=start + QPoint(80, 0))
    assert len(seen) == 5
    xs = [x for x, _ in seen]
    assert all(b > a for a, b in zip(xs, xs[1:], strict=False))
    pw, _ = pixel_size(plot)
    assert abs(xs[-1] - (-2.0 + 80 * pw)) <= 2 * pw


def test_shift_drag_pans_instead_of_decoding(plot, qtbot):
    show_points(plot, [[3.0, 3.0]])
    seen = []
    plot.zRequested.connect(lambda x, y: seen.append((x, y)))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.ShiftModifier, pos=to_pixel(plot, 0, 0))
    assert seen == []


def test_ellipses_are_thinned_to_the_budget_and_complete_when_zoomed(plot):
    rng = np.random.default_rng(0)
    n = 70_000
    mu = rng.normal(size=(n, 2)).astype(np.float32)
    sigma = np.full((n, 2), 0.02, np.float32)
    plot.set_ellipse_budget(5000)
    show_points(plot, mu, sigma, view=(-6, 6, -6, 6))
    assert plot.ellipse_status() == (5000, n)
    assert "5,000 of 70,000" in plot.status_text()
    first = plot.ellipse_centres().copy()
    plot.set_latents(mu, sigma)  # same data: the same subset, frame to frame
    plot.viewport().repaint()
    assert np.array_equal(plot.ellipse_centres(), first)

    x0, x1, y0, y1 = 0.0, 0.3, 0.0, 0.3
    plot.plotItem.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
    plot.viewport().repaint()
    vx0, vx1, vy0, vy1 = plot.view_region()  # aspect lock may widen one axis
    in_view = ((mu[:, 0] + 0.02 >= vx0) & (mu[:, 0] - 0.02 <= vx1)
               & (mu[:, 1] + 0.02 >= vy0) & (mu[:, 1] - 0.02 <= vy1))
    expected = int(in_view.sum())
    assert 0 < expected < DEFAULT_ELLIPSE_BUDGET
    assert plot.ellipse_status() == (expected, expected)

    # At 2 sigma each outline is twice as long: all in view are drawn, or as many as
    # fit the ring-sample budget (about one sample per outline pixel).
    plot.set_sigma_level(2)
    pw, ph = plot.plotItem.vb.viewPixelSize()
    dpr = plot.devicePixelRatioF()
    per_ring = int(ring_samples(np.array([dpr * 0.04 / pw]), np.array([dpr * 0.04 / ph]))[0])
    drawn, in_view = plot.ellipse_status()
    assert in_view >= expected
    assert drawn == min(in_view, MAX_RING_SAMPLES // per_ring)


def test_drop_of_a_file_emits_its_path(plot, qtbot, tmp_path):
    path = tmp_path / "seven.png"
    path.write_bytes(b"not read by the view")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    vp = plot.viewport()
    pos = QPointF(100, 100)
    action = Qt.DropAction.CopyAction
    buttons, mods = Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(pos.toPoint(), action, mime, buttons, mods)
    QApplication.sendEvent(vp, enter)
    assert enter.isAccepted()
    move = QDragMoveEvent(pos.toPoint(), action, mime, buttons, mods)
    QApplication.sendEvent(vp, move)
    assert move.isAccepted()
    with qtbot.waitSignal(plot.filesDropped) as blocker:
        QApplication.sendEvent(vp, QDropEvent(pos, action, mime, buttons, mods))
    assert blocker.args == [[str(path)]]


def test_labels_give_a_legend_and_values_a_colour_bar(plot):
    labels = np.array([0, 1, 2, 1])
    plot.set_dataset(labels, ["zero", "one", "two"])
    show_points(plot, [[0, 0], [1, 1], [2, 2], [-1, -1]])
    assert plot.legend_names() == ["zero", "one", "two"]
    assert plot.legend.isVisible()
    assert "label one" in plot.point_info(3)

    plot.set_point_values(np.array([-100.0, -90.0, -80.0, np.nan]), "ELBO (nats, higher is better)")
    assert plot.legend_names() == []  # the colour bar says what colours mean; the prior stays
    assert plot.colour_bar() is not None and plot.colour_bar().isVisible()
    assert "ELBO (nats, higher is better) = -90" in plot.point_info(1)
    plot.viewport().repaint()
    plot.set_point_values(None, "")
    assert plot.legend.isVisible() and not plot.colour_bar().isVisible()

    plot.set_dataset(None, None)
    assert plot.legend_names() == []
    assert plot.legend.names() == ["prior p(z): 1, 2, 3 \u03c3"]


def test_hover_names_the_nearest_point(plot, qtbot):
    plot.set_dataset(np.array([4, 7]), [str(i) for i in range(10)])
    show_points(plot, [[-1.0, 0.0], [1.5, 2.0]], [[0.1, 0.2], [0.3, 0.4]])
    vp = plot.viewport()
    pos = QPointF(to_pixel(plot, 1.5, 2.0) + QPoint(1, -1))
    QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, pos, vp.mapToGlobal(pos),
                                           Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                                           Qt.KeyboardModifier.NoModifier))
    qtbot.waitUntil(lambda: plot.hovered == 1)
    info = plot.point_info(1)
    assert info.startswith("#1  label 7")
    assert "mu = (1.500, 2.000)" in info and "sigma = (0.300, 0.400)" in info


def test_markers_are_clickable(plot, qtbot):
    show_points(plot, [[3.0, 3.0]])
    plot.set_markers(np.array([[-1.0, -1.0], [1.0, -2.0]]), np.full((2, 2), 0.2),
                     ["mine.png", "yours.png"], highlighted=1)
    with qtbot.waitSignal(plot.markerSelected) as blocker:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton,
                         pos=to_pixel(plot, 1.0, -2.0))
    assert blocker.args == [1]
    plot.set_crosshair((0.5, 0.5))
    plot.set_selected(0)
    plot.viewport().repaint()
    assert plot.selection_ring_position() == (3.0, 3.0)


def test_view_follows_the_data_until_the_user_zooms(plot):
    mu = np.array([[-20.0, 1.0], [15.0, 2.0]], np.float32)
    plot.set_latents(mu, np.full_like(mu, 0.1))
    x0, x1, y0, y1 = plot.view_region()
    assert x0 <= -20 and x1 >= 15 and y0 <= -3 and y1 >= 3  # data and the prior's 3 sigma
    plot.set_latents(mu * 0.99, np.full_like(mu, 0.1))
    assert plot.view_region() == (x0, x1, y0, y1)  # small moves keep the view still
    vp = plot.viewport()
    pos = QPointF(to_pixel(plot, 0.0, 0.0))
    wheel = QWheelEvent(pos, vp.mapToGlobal(pos), QPoint(), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)  # the user zooms in
    zoomed = plot.view_region()
    assert zoomed[1] - zoomed[0] < x1 - x0
    plot.set_latents(mu * 5, np.full_like(mu, 0.1))
    assert plot.view_region() == zoomed
    plot.follow_data(True)
    assert plot.view_region()[0] <= -100


def test_non_finite_latents_are_skipped_not_fatal(plot, qtbot):
    mu = np.array([[np.nan, 0.0], [1.0, 1.0], [np.inf, 2.0]], np.float32)
    show_points(plot, mu)
    assert plot.ellipse_status() == (1, 1)
    with qtbot.waitSignal(plot.pointSelected) as blocker:
        qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=to_pixel(plot, 1, 1))
    assert blocker.args == [1]


def test_new_latents_cost_one_paint_not_two(plot, qtbot):
    # Each paint of 70,000 points is the GUI's biggest cost while training: changing items
    # inside a paint (the ellipse subset, the status text) used to queue a second one.
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(5000, 2)).astype(np.float32)
    sigma = np.full_like(mu, 0.05)
    plot.set_latents(mu, sigma)
    paints = []

    class Counter(QObject):
        def eventFilter(self, obj, ev):
            if ev.type() == QEvent.Type.Paint:
                paints.append(1)
            return False

    counter = Counter()
    plot.viewport().installEventFilter(counter)
    qtbot.waitUntil(lambda: not plot.ellipse_refresh_pending())
    for _ in range(3):
        QApplication.processEvents()
    paints.clear()
    plot.set_latents(mu + 0.01, sigma)
    qtbot.waitUntil(lambda: len(paints) >= 1)
    for _ in range(3):  # anything a paint queued runs here
        QApplication.processEvents()
    plot.viewport().removeEventFilter(counter)
    assert len(paints) == 1
    assert plot.ellipse_status() == (5000, 5000)


def test_big_ellipses_are_thinned_by_ink_and_the_subset_is_stable(plot):
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(70_000, 2)).astype(np.float32)
    show_points(plot, mu, sigma=np.ones_like(mu))  # an untrained encoder: sigma ~ 1
    drawn, in_view = plot.ellipse_status()
    assert 0 < drawn < DEFAULT_ELLIPSE_BUDGET < in_view  # outline ink, not count, limits
    first = plot.ellipse_centres().copy()
    plot.viewport().repaint()
    assert plot.ellipse_status() == (drawn, in_view)
    np.testing.assert_array_equal(plot.ellipse_centres(), first)
