"""Latents above 2-D in the window: the plane's chosen 2-D view (PCA with rotated exact
ellipses, or two coordinates), a click decoding the lifted z, the inspector's IWAE, the
per-dimension panel, and the sprites in the Datasets menu."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage, QPainter

from explorer.core.plane_view import ViewChoice, plane_data
from explorer.qt.views.dimensions_view import DimensionsView
from explorer.qt.views.latent_view import EllipseSetItem
from tests.explorer.conftest import fast_config
from trainer import Session
from trainer.latent_stats import per_dim_kl

WAIT_MS = 60_000


def random_latents(n=4000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    mu = rng.standard_normal((n, d)) @ A
    sigma = np.exp(rng.uniform(-1.5, 0.5, (n, d)))
    return mu, sigma


def test_pca_ellipse_is_the_one_sigma_contour_of_the_projected_gaussian():
    mu, sigma = random_latents()
    plane = plane_data(ViewChoice("pca"), mu, sigma)
    i = 7
    rng = np.random.default_rng(1)
    z = mu[i] + sigma[i] * rng.standard_normal((200_000, mu.shape[1]))
    v = plane.to_view(z)
    np.testing.assert_allclose(v.mean(0), plane.means[i], atol=0.02)
    np.testing.assert_allclose(np.cov(v.T), plane.cov[i], rtol=0.02, atol=2e-3)
    # The drawn contour c + a cos t e1 + b sin t e2: every point at Mahalanobis radius 1.
    axes, angles = plane.ellipses()
    t = np.linspace(0, 2 * np.pi, 50)
    e1 = np.array([np.cos(angles[i]), np.sin(angles[i])])
    e2 = np.array([-np.sin(angles[i]), np.cos(angles[i])])
    pts = axes[i, 0] * np.cos(t)[:, None] * e1 + axes[i, 1] * np.sin(t)[:, None] * e2
    r2 = np.einsum("na,ab,nb->n", pts, np.linalg.inv(plane.cov[i]), pts)
    np.testing.assert_allclose(r2, 1.0, rtol=1e-9)
    # Its bounding box, which decides what is in view: sqrt of the diagonal.
    np.testing.assert_allclose(plane.extents[i], np.abs(pts).max(0), rtol=2e-3)


def test_an_axes_view_shows_exact_marginals_and_a_2d_latent_stays_as_it_is():
    mu, sigma = random_latents(d=5)
    plane = plane_data(ViewChoice("axes", (1, 3)), mu, sigma)
    np.testing.assert_allclose(plane.means, mu[:, [1, 3]])
    np.testing.assert_allclose(plane.extents, sigma[:, [1, 3]])
    # The shortcut agrees with the general P diag(sigma^2) P^T, and the click's base is
    # the aggregate mean.
    np.testing.assert_allclose(plane.extents ** 2, np.diagonal(plane.cov, axis1=1, axis2=2),
                               rtol=1e-12)
    np.testing.assert_allclose(plane.cov[:, 0, 1], 0.0)
    np.testing.assert_allclose(plane.base, mu.mean(axis=0), rtol=1e-12, atol=1e-12)
    assert not plane.rotated and plane.axis_titles == ("z2", "z4")
    flat = plane_data(ViewChoice("pca"), mu[:, :2], sigma[:, :2])  # 2-D: never rotated
    np.testing.assert_allclose(flat.means, mu[:, :2])
    assert flat.text == "the 2-D latent as it is"


def test_rotated_raster_rings_lie_on_the_ellipse(qtbot):
    item = EllipseSetItem(pg_pen(), raster=True)
    centre, (a, b), theta = np.array([100.0, 80.0]), (40.0, 15.0), 0.6
    item.set_ellipses(centre[None], np.array([[a, b]]), np.array([theta]))
    target = QImage(200, 160, QImage.Format.Format_ARGB32_Premultiplied)  # identity transform
    target.fill(0)
    painter = QPainter(target)
    item.paint(painter, None)
    painter.end()
    assert item.image is not None  # the raster path, not drawLines
    pixels = np.frombuffer(target.constBits(), np.uint32).reshape(160, 200)
    ys, xs = np.nonzero(pixels)
    assert len(xs) > 100
    d = np.stack((xs - centre[0], ys - centre[1]), 1)
    c, s = np.cos(theta), np.sin(theta)
    u, v = d @ np.array([c, s]), d @ np.array([-s, c])
    radius = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    assert np.all(np.abs(radius - 1.0) * b < 1.0)  # within a pixel of the true contour


def pg_pen():
    import pyqtgraph as pg

    return pg.mkPen((200, 200, 200, 120), width=0)


@pytest.fixture(scope="module")
def session8(digits):
    session = Session(digits, fast_config(latent_dim=8))
    for _ in range(30):
        session.step()
    return session


def open_paused(qtbot, make_window, session):
    w = make_window(session.config, start=False)
    # The paused worker's own first snapshot first, so that none replaces this one after.
    qtbot.waitUntil(lambda: w.state.current.model is not None, timeout=WAIT_MS)
    w.trainers.of(w.state.current).deliver(session.snapshot(latent_seconds=None))
    return w


def test_an_8d_run_shows_its_pca_view_and_a_click_decodes_the_lifted_z(
        qtbot, make_window, digits, session8):
    w = open_paused(qtbot, make_window, session8)
    view = w.latent_view
    assert view.rotation() is not None and "PCA of 8-D" in view.status_text()
    assert view.getPlotItem().getAxis("bottom").labelText.startswith("PC1")
    vb = view.getPlotItem().vb
    z = empty_view_point(w.current_run.plane.means, vb.viewRange())
    pixel = view.mapFromScene(vb.mapViewToScene(QPointF(*z)))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pixel)
    x, y = w.image_panel.z
    lifted = w.current_run.plane.lift((x, y))
    np.testing.assert_allclose(w.current_run.plane.to_view(lifted), (x, y), atol=1e-9)
    # Hidden directions at the aggregate mean: lifted - mean lies in the view's plane.
    rest = lifted - w.state.current.snapshot.mu.mean(0)
    P = w.current_run.plane.view.P
    np.testing.assert_allclose(rest - (rest @ P.T) @ P, 0, atol=1e-6)
    expected = w.state.current.model.decode_mean(lifted[None].astype(np.float32))[0]
    np.testing.assert_allclose(w.image_panel.decoded.array, expected, atol=1e-6)
    assert "aggregate mean" in w.image_panel.z_label.text()


def empty_view_point(means, view_range):
    """The view point, on a grid over the view, farthest from every dot (not a pick)."""
    (x0, x1), (y0, y1) = view_range
    grid = np.array([(x0 + fx * (x1 - x0), y0 + fy * (y1 - y0))
                     for fx in np.linspace(0.1, 0.9, 17) for fy in np.linspace(0.1, 0.9, 17)])
    d = np.min(np.linalg.norm(grid[:, None] - means[None, ::4], axis=2), axis=1)
    return tuple(grid[int(np.argmax(d))])


def test_choosing_two_coordinates_redraws_the_plane_axis_aligned(
        qtbot, make_window, digits, session8):
    w = open_paused(qtbot, make_window, session8)
    box = w.dimensions.view_box
    index = box.findText("z1 vs z3")
    assert index > 0
    box.setCurrentIndex(index)
    box.activated.emit(index)
    assert w.state.plane_view == ViewChoice("axes", (0, 2))
    assert w.latent_view.rotation() is None
    np.testing.assert_allclose(w.latent_view.point_mu(), w.state.current.snapshot.mu[:, [0, 2]])
    assert w.latent_view.getPlotItem().getAxis("left").labelText == "z3"


def test_the_inspector_above_2d_shows_iwae_with_its_se_and_says_why_no_grid(
        qtbot, make_window, digits, session8):
    w = open_paused(qtbot, make_window, session8)
    with qtbot.waitSignal(w.inspector.inspected, timeout=WAIT_MS):
        w.selection.select_point(5)
    v = w.inspector.values()
    assert np.isfinite(v["iwae"]) and v["iwae_se"] > 0 and v["log_px"] is None
    assert "2-D latent" in w.inspector.value_labels["grid"].text()
    assert "8 dimensions" in w.inspector.value_labels["grid"].text()
    # The selected point decodes its own 8-D mu, not a lifted view point.
    mu = w.state.current.snapshot.mu[5]
    np.testing.assert_allclose(w.image_panel.decoded.array,
                               w.state.current.model.decode_mean(mu[None])[0], atol=1e-6)


def test_the_dimensions_panel_names_a_collapsed_dimension(qtbot):
    panel = DimensionsView()
    qtbot.addWidget(panel)
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((500, 4))
    mu[:, 2] = 0.001 * rng.standard_normal(500)  # collapsed: the mean does not move
    sigma = np.full((500, 4), 0.5)
    sigma[:, 2] = 1.0
    panel.set_latents(mu, sigma)
    assert panel.collapsed() == [2]
    assert "Collapsed" in panel.summary.text() and "z3" in panel.summary.text()
    assert "3 of 4 dimensions active" in panel.summary.text()
    heights = panel.kl_bars.opts["height"]
    np.testing.assert_allclose(heights, per_dim_kl(mu, 2 * np.log(sigma)))
    assert heights[2] == pytest.approx(0.0, abs=1e-5)


def test_a_hidden_dimensions_panel_draws_nothing_and_shows_the_newest_q_when_shown(qtbot):
    panel = DimensionsView()
    qtbot.addWidget(panel)  # never shown yet: what it holds waits
    rng = np.random.default_rng(1)
    sigma = np.full((300, 3), 0.5)
    for scale in (1.0, 3.0):  # two snapshots while hidden: the newer one is drawn
        mu = scale * rng.standard_normal((300, 3))
        panel.set_latents(mu, sigma)
    assert panel.summary.text() == "No model yet"
    assert len(panel.kl_bars.opts["height"]) == 0
    assert panel.view_box.count() > 1  # the view chooser follows at once
    panel.show()
    qtbot.waitExposed(panel)
    np.testing.assert_allclose(panel.kl_bars.opts["height"], per_dim_kl(mu, 2 * np.log(sigma)))
    assert "3 of 3 dimensions active" in panel.summary.text()


def test_the_dimensions_panel_behind_a_tab_catches_up_when_its_tab_is_chosen(
        qtbot, make_window, digits, session8):
    w = open_paused(qtbot, make_window, session8)
    # The first window shows Manifold in front of Dimensions: the panel has drawn nothing.
    assert not w.dimensions.shown()
    assert w.dimensions.summary.text() == "No model yet"
    w.docks["dimensions"].raise_()
    qtbot.waitUntil(lambda: w.dimensions.shown(), timeout=WAIT_MS)
    mu, sigma = w.state.current.snapshot.mu, w.state.current.snapshot.sigma
    np.testing.assert_allclose(w.dimensions.kl_bars.opts["height"],
                               per_dim_kl(mu, 2 * np.log(sigma)), rtol=1e-6)
    assert "of 8 dimensions active" in w.dimensions.summary.text()


def test_the_datasets_menu_lists_sprites_and_sessions_treat_them_as_built_in(
        qtbot, make_window):
    from explorer.core.session_file import LoadedSession, _candidates

    w = make_window(start=False)
    for name in ("dataset_digits", "dataset_sprites-grey", "dataset_sprites"):
        assert name in w.actions
    loaded = LoadedSession(path=Path("/somewhere/s.lexp"), checkpoint=None, encoded=[],
                           selected_encoded=None, selected_point=None, view={}, meta={})
    for name in ("sprites", "sprites-grey", "digits"):
        assert _candidates(loaded, name) == [name]
    assert len(_candidates(loaded, "my-images")) == 2  # a path: also beside the session


def test_the_command_line_sets_arch_and_latent_dim():
    from explorer.qt.app import open_startup, parse_args

    args = parse_args(["sprites-grey", "--arch", "conv", "--latent-dim", "8"])
    startup = open_startup(args.source, None, "cpu", 1, args.arch, args.latent_dim)
    assert (startup.config.arch, startup.config.latent_dim) == ("conv", 8)
    with pytest.raises(SystemExit):
        parse_args(["--latent-dim", "65"])


def test_traversal_rows_sweep_one_dimension_over_the_aggregate_range():
    from explorer.core.latent_paths import traversal_z
    from trainer.latent_stats import aggregate_range

    mu, sigma = random_latents(n=300, d=5)
    grid, values = traversal_z(mu[3], mu, sigma, steps=7)
    r = aggregate_range(mu, sigma)
    assert grid.shape == (5, 7, 5)
    for d in range(5):
        np.testing.assert_allclose(grid[d, :, d], np.linspace(r.low[d], r.high[d], 7))
        others = np.delete(grid[d], d, axis=1)
        np.testing.assert_allclose(others, np.broadcast_to(np.delete(mu[3], d), others.shape))


def test_selecting_a_point_shows_its_traversal_and_shift_clicks_an_interpolation(
        qtbot, make_window, session8, tmp_path):
    from PIL import Image

    from explorer.core.latent_paths import interpolation_z, traversal_z

    w = open_paused(qtbot, make_window, session8)
    w.selection.select_point(5)
    strip = w.strips.traversal
    # Behind the Manifold tab the strips decode nothing; their tab chosen, they show #5.
    assert not w.strips.shown() and strip.mosaic is None
    w.docks["strips"].raise_()
    qtbot.waitUntil(lambda: strip.mosaic is not None, timeout=WAIT_MS)
    assert w.strips.shown() and "#5" in strip.caption.text()
    snapshot = w.state.current.snapshot
    mu, sigma, model = snapshot.mu, snapshot.sigma, snapshot.model
    grid, _ = traversal_z(mu[5], mu, sigma)
    h, wd = w.state.current.dataset.image_shape
    row3 = model.decode_mean(grid[3].astype(np.float32))
    np.testing.assert_allclose(strip.mosaic[3 * h:4 * h, 2 * wd:3 * wd], row3[2], atol=1e-6)
    assert strip.mosaic.shape == (8 * h, 9 * wd)
    out = strip.export(str(tmp_path / "traversal.png"), scale=2)
    assert Image.open(out).size == (2 * 9 * wd, 2 * 8 * h)

    # Shift-click two dots on the plane (real mouse events): the strip between them.
    view, vb = w.latent_view, w.latent_view.getPlotItem().vb
    means = w.current_run.plane.means
    ends = [int(np.argmin(means[:, 0])), int(np.argmax(means[:, 0]))]
    for i in ends:
        pixel = view.mapFromScene(vb.mapViewToScene(QPointF(*means[i])))
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         Qt.KeyboardModifier.ShiftModifier, pos=pixel)
    assert len(w.strips.ends) == 2
    a, b = w.strips.ends
    paths = interpolation_z(mu[a], mu[b])
    qtbot.waitUntil(lambda: w.strips.interpolation.mosaic is not None, timeout=WAIT_MS)
    inter = w.strips.interpolation.mosaic
    assert inter.shape == (2 * h, 10 * wd)
    spherical = model.decode_mean(paths["spherical"].astype(np.float32))
    np.testing.assert_allclose(inter[h:, 4 * wd:5 * wd], spherical[4], atol=1e-6)
    assert w.strips.interpolation.export_button.isEnabled()


def test_the_plane_view_round_trips_through_a_session_record_and_bad_ones_are_skipped():
    from explorer.core.plane_view import plane_view_from_record, plane_view_record

    for choice in (ViewChoice("pca"), ViewChoice("axes", (2, 5))):
        assert plane_view_from_record(plane_view_record(choice)) == choice
    for bad in (None, [], {"kind": "tsne"}, {"kind": "axes", "dims": [1, 1]},
                {"kind": "axes", "dims": [True, 2]}, {"kind": "axes", "dims": [-1, 2]}):
        assert plane_view_from_record(bad) is None


def test_points_can_be_coloured_by_a_ground_truth_factor(qtbot):
    from explorer.qt.views.dataset_views import PointColouring
    from explorer.qt.views.latent_view import LatentView

    view = LatentView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(0)
    view.set_latents(rng.standard_normal((50, 2)), np.full((50, 2), 0.3))
    colouring = PointColouring(view, labels=np.zeros(50, int))
    qtbot.addWidget(colouring)
    x = rng.uniform(0, 1, 50)
    colouring.set_factors({"x": x, "rotation": rng.uniform(0, 6, 50)})
    assert colouring.combo.findText("factor x (ground truth)") >= 0
    colouring.choose("factor:x")
    np.testing.assert_array_equal(view.point_values(), x)
    colouring.set_factors(None)  # another dataset: its factors go
    assert colouring.combo.findData("factor:x") < 0


def test_an_8d_session_with_encoded_images_saves_and_reopens_with_its_view(
        qtbot, make_window, digits, tmp_path, monkeypatch):
    from tests.explorer.test_sessions_gui import add_encoded, answer_file, train_then_pause

    first = make_window(fast_config(latent_dim=8))
    add_encoded(first, digits)
    train_then_pause(qtbot, first, more_than=5)
    first.state.set_plane_view(ViewChoice("axes", (1, 4)))
    qtbot.waitUntil(lambda: len(first.latent_view.marker_mu()) == 2, timeout=WAIT_MS)
    entry = first.encoded_panel.model.entries[0]
    np.testing.assert_allclose(first.latent_view.marker_mu()[0], entry.mu[[1, 4]], rtol=1e-6)
    path = tmp_path / "eight.lexp"
    answer_file(monkeypatch, first, path)
    first.actions["save"].trigger()
    assert path.is_file()
    first.close()

    second = make_window(start=False)
    monkeypatch.setattr(second.sessions, "ask_unsaved", lambda *a: "discard")
    answer_file(monkeypatch, second, path)
    second.actions["open"].trigger()
    qtbot.waitUntil(lambda: second.state.current.snapshot is not None
                    and second.state.current.snapshot.mu.shape[1] == 8, timeout=WAIT_MS)
    assert second.state.plane_view == ViewChoice("axes", (1, 4))
    assert second.latent_view.getPlotItem().getAxis("bottom").labelText == "z2"


def test_thumbnails_on_the_plane_draw_a_stable_subset_in_view(qtbot, make_window, session8):
    from explorer.qt.views.thumbnails import MAX_THUMBNAILS

    w = open_paused(qtbot, make_window, session8)
    w.actions["thumbnails"].trigger()
    assert w.thumbnails.isVisible()
    w.latent_view.grab()  # paint
    first = w.thumbnails.drawn.copy()
    assert 0 < len(first) <= MAX_THUMBNAILS
    (x0, x1), (y0, y1) = w.latent_view.getPlotItem().vb.viewRange()
    pos = w.current_run.plane.means[first]
    assert np.all((pos[:, 0] >= x0) & (pos[:, 0] <= x1) & (pos[:, 1] >= y0) & (pos[:, 1] <= y1))
    w.latent_view.getPlotItem().vb.translateBy(x=0.05 * (x1 - x0))
    w.latent_view.grab()
    kept = np.intersect1d(first, w.thumbnails.drawn)
    assert len(kept) > 0.7 * len(first)  # a small pan keeps most of the same images
