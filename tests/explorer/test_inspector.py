"""The inference inspector, its overlay on the latent plane, and the whole-dataset views, on a
real (tiny, briefly trained) VAE."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

from explorer.qt.views.dataset_views import (
    AggregateDensityLayer,
    PointColouring,
    Trails,
    colouring_values,
)
from explorer.qt.views.inspector import GRID_N, Inspector, fmt, fmt_se, input_note
from explorer.qt.views.latent_view import LatentView
from trainer import Session, TrainConfig, gaussian_fit, inspect_point
from trainer.evidence import dataset_evidence

GRID_TOL = 0.05  # nats: how far below 0 the grid's error may put a KL


@pytest.fixture(scope="module")
def trained(digits):
    session = Session(digits, TrainConfig(hidden=(48, 48), threads=1))
    for _ in range(300):
        session.step()
    return session.snapshot()


@pytest.fixture
def plane(qtbot, trained):
    view = LatentView()
    view.set_latents(trained.mu, trained.sigma)
    view.resize(500, 500)
    view.show()
    qtbot.addWidget(view)
    qtbot.waitExposed(view)
    return view


@pytest.fixture
def inspector(qtbot, plane):
    widget = Inspector(plane.plotItem)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.close()


def inspect_first(qtbot, inspector, trained, digits, index=0):
    h, w = digits.image_shape
    image = digits.as_float([index]).reshape(h, w)
    x = dataset_evidence(digits, trained.model.binarization, [index])[0]
    with qtbot.waitSignal(inspector.inspected, timeout=20_000):
        inspector.inspect(trained.model, x, image, f"datapoint #{index}",
                          trained.mu[index], trained.sigma[index])
    return x


def test_inspect_shows_the_trainer_numbers_and_the_overlay(qtbot, inspector, trained, digits):
    x = inspect_first(qtbot, inspector, trained, digits)
    assert set(np.unique(x)) <= {0.0, 1.0}
    assert inspector.note_label.text() == input_note("dynamic")
    assert inspector.tiles["scored"].isVisible()  # the binary x beside the grey image
    expected = inspect_point(trained.model, x, n=GRID_N, iwae_k=1000)  # adaptive
    v = inspector.values()
    assert v["log_px"] == pytest.approx(expected.log_px, abs=1e-6)
    assert v["elbo"] == pytest.approx(expected.encoder.elbo, abs=1e-6)
    assert v["recon"] - v["kl"] == pytest.approx(v["elbo"], abs=1e-6)
    assert v["iwae"] == pytest.approx(expected.iwae, abs=1e-6)
    assert v["iwae_se"] == pytest.approx(expected.iwae_se, abs=1e-9) and v["iwae_se"] > 0
    assert inspector.value_labels["iwae"].text() == fmt_se(expected.iwae, expected.iwae_se)
    assert "\u00b1" in inspector.value_labels["iwae"].text()
    assert "on average" in inspector.caption_labels["iwae"].text()
    assert v["inference_gap"] >= -GRID_TOL
    assert inspector.value_labels["log_px"].text() == fmt(expected.log_px)
    assert inspector.value_labels["inference_gap"].text() == fmt(expected.inference_gap)
    assert inspector.shape_label.text()  # words, or "close to a single Gaussian"

    overlay = inspector.overlay
    assert overlay.image in overlay.visible_items() and overlay.q_curve.isVisible()
    rect = overlay.image.mapRectToParent(overlay.image.boundingRect())
    x0, x1, y0, y1 = expected.grid.extent
    assert (rect.left(), rect.right(), rect.top(), rect.bottom()) == pytest.approx(
        (x0, x1, y0, y1), abs=1e-6)
    # The 50 / 90 / 99 % outlines exist, and the image lies beneath the q ellipse.
    assert all(not c.boundingRect().isEmpty() for c in overlay.isocurves)
    # Traced on a coarser copy, the outlines are scaled into the image's cells: inside it,
    # and the 99 % outline spans a good part of it (not a quarter, as unscaled).
    cells = overlay.image.boundingRect()
    for curve in overlay.isocurves:
        r = curve.mapRectToParent(curve.boundingRect())
        assert cells.adjusted(-1, -1, 1, 1).contains(r), (r, cells)
    widest = max(c.mapRectToParent(c.boundingRect()).width() for c in overlay.isocurves)
    assert widest > 0.3 * cells.width()
    assert overlay.image.zValue() < overlay.q_curve.zValue()

    inspector.copy_numbers()
    copied = json.loads(QApplication.clipboard().text())
    assert copied["values"]["log_px"] == pytest.approx(expected.log_px)
    assert "nats" in copied["units"]


def test_optimise_draws_the_optimum_and_splits_the_gap(qtbot, inspector, trained, digits):
    inspect_first(qtbot, inspector, trained, digits, index=5)
    assert not inspector.overlay.full_curve.isVisible()
    with qtbot.waitSignal(inspector.optimised, timeout=20_000):
        qtbot.mouseClick(inspector.optimise_button, Qt.MouseButton.LeftButton)
    v = inspector.values()
    assert v["elbo_star"] >= v["elbo"] - 1e-3
    assert v["elbo_full"] >= v["elbo_star"] - 0.02  # the full family contains the diagonal
    assert v["amortisation_gap"] + v["approximation_gap"] == pytest.approx(
        v["inference_gap"], abs=1e-6)
    assert inspector.overlay.full_curve.isVisible()
    assert inspector.overlay.optimum_curve.isVisible()
    assert inspector.value_labels["amortisation_gap"].text() == fmt(v["amortisation_gap"])


def test_dragging_the_centre_rescored_live(qtbot, inspector, trained, digits):
    x = inspect_first(qtbot, inspector, trained, digits, index=3)
    v0 = inspector.values()
    mean = np.array([v0["mu1"] + 0.4, v0["mu2"] - 0.3])
    sigma = np.array([v0["sigma1"], v0["sigma2"]])
    with qtbot.waitSignal(inspector.dragScored, timeout=10_000):
        inspector.overlay.centre_handle.setPos(float(mean[0]), float(mean[1]))
    expected = gaussian_fit(trained.model, x, mean, sigma=sigma).elbo
    qtbot.waitUntil(lambda: inspector.values()["dragged_elbo"] == pytest.approx(expected,
                                                                               abs=1e-4))
    v = inspector.values()
    assert v["dragged_minus_elbo"] == pytest.approx(expected - v0["elbo"], abs=1e-4)
    assert fmt(expected) in inspector.value_labels["dragged"].text()


def test_a_real_mouse_drag_on_an_axis_handle_changes_sigma(qtbot, inspector, plane, trained,
                                                           digits):
    inspect_first(qtbot, inspector, trained, digits, index=3)
    v0 = inspector.values()
    handle = inspector.overlay.axis_handles[0]
    vb = plane.plotItem.vb
    vb.setRange(xRange=(v0["mu1"] - 2, v0["mu1"] + 2), yRange=(v0["mu2"] - 2, v0["mu2"] + 2),
                padding=0)

    def to_viewport(x, y):
        return plane.mapFromScene(vb.mapViewToScene(QPointF(x, y)))

    start = to_viewport(handle.pos().x(), handle.pos().y())
    target_sigma = v0["sigma1"] + 0.5
    end = to_viewport(v0["mu1"] + target_sigma, v0["mu2"])
    viewport = plane.viewport()
    with qtbot.waitSignal(inspector.dragScored, timeout=10_000):
        qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
        for t in np.linspace(0.2, 1.0, 5):
            qtbot.mouseMove(viewport, start + (end - start) * t)
        qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)
    qtbot.waitUntil(lambda: inspector.values()["dragged_sigma1"] == pytest.approx(
        target_sigma, abs=0.05))
    assert inspector.values()["dragged_mu1"] == pytest.approx(v0["mu1"])
    assert plane.selected() is None  # the press went to the handle, not to picking


def test_closing_mid_optimisation_leaves_no_thread(qtbot, plane, trained, digits):
    widget = Inspector(plane.plotItem)
    qtbot.addWidget(widget)
    inspect_first(qtbot, widget, trained, digits, index=7)
    widget.toggle_optimise()
    assert widget.is_optimising()
    widget.close()  # the conftest guard fails the test if a thread is left running
    assert not widget.is_optimising()


def test_clear_hides_the_overlay(qtbot, inspector, trained, digits):
    inspect_first(qtbot, inspector, trained, digits)
    inspector.clear()
    assert inspector.overlay.visible_items() == []
    assert inspector.values()["log_px"] is None


# ------------------------------------------------------------------ whole-dataset views

def test_colouring_by_inference_gap_fills_the_plane(qtbot, plane, trained, digits):
    x = dataset_evidence(digits, "dynamic")[:300]
    values = None
    for update in colouring_values(trained.model, x, "inference_gap", chunk=128):
        values = update.values
    assert values is not None and np.isfinite(values).all()
    assert values.min() >= -GRID_TOL

    chooser = PointColouring(plane, labels=digits.labels)
    qtbot.addWidget(chooser)
    chooser.set_data(trained.model, dataset_evidence(digits, "dynamic"))
    with qtbot.waitSignal(chooser.computed, timeout=30_000):
        chooser.choose("elbo")
    assert plane.point_values() is not None and np.isfinite(plane.point_values()).all()
    chooser.choose("label")
    assert plane.point_values() is None
    chooser.shutdown()


def test_aggregate_density_integrates_to_about_one(qtbot, plane, trained):
    layer = AggregateDensityLayer(plane)
    plane.plotItem.vb.setRange(xRange=(-8, 8), yRange=(-8, 8), padding=0)
    with qtbot.waitSignal(layer.computed, timeout=10_000):
        layer.set_latents(trained.mu, trained.sigma)
        layer.set_visible(True)
    xs, ys, density = layer.xs, layer.ys, layer.density
    mass = density.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])
    inside = np.all(np.abs(trained.mu) < 6, axis=1).mean()
    assert mass == pytest.approx(1.0, abs=0.05) or mass >= 0.9 * inside
    assert layer.image.isVisible() and len(layer.prior_curve.xData) > 0
    layer.shutdown()


def test_trails_keep_the_last_k_positions(qtbot, plane):
    trails = Trails(plane.plotItem, length=4)
    trails.set_tracked([0, 2])
    rng = np.random.default_rng(0)
    for _ in range(7):
        trails.add_snapshot(rng.normal(size=(5, 2)))
    assert [len(t) for t in trails.trails.values()] == [4, 4]
    x, y = trails.curve.getData()
    assert len(x) == 8
    trails.set_tracked([])
    assert trails.curve.getData()[0] is None or len(trails.curve.getData()[0]) == 0


def test_amortisation_gap_colouring_covers_a_fixed_sample(trained, digits):
    x = dataset_evidence(digits, "dynamic")[:50]
    updates = list(colouring_values(trained.model, x, "amortisation_gap", sample=3))
    assert [u.done for u in updates] == [1, 2, 3]
    values = updates[-1].values
    done = np.isfinite(values)
    assert done.sum() == 3 and np.all(values[done] >= -0.02)  # ELBO* >= ELBO_i
