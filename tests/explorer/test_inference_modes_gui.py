"""The inference mode in the window, with real widgets and real workers: chosen in the
Training controls (on Reset) and in the New run dialog, stated on the plane, its optimised
parameters counted, semi-amortized refinement drawn as lines, a new x's q in free mode an
optimisation timed against one encoder pass, and two modes side by side."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage

from explorer.qt.views.encoded_images import EncodedImagesPanel
from explorer.qt.views.latent_view import LatentView
from explorer.qt.views.new_run_dialog import NewRunDialog
from tests.explorer.conftest import add_run_from_dialog, fast_config
from trainer import Session, TrainConfig

WAIT_MS = 30_000


def test_reset_applies_the_chosen_mode_and_the_panel_counts_its_parameters(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None, timeout=WAIT_MS)
    assert w.latent_view.caption() == "every dot is f_\u03c6(x_i)"
    assert "|\u03c6|, encoder weights" in w.controls.parameters.text()
    w.confirm = lambda title, question: True  # "discard the run?" (real dialog: test_lost_work)
    w.controls.inference.setCurrentText("free")
    qtbot.mouseClick(w.controls.reset_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None
                    and w.state.current.snapshot.config.inference == "free",
                    timeout=WAIT_MS)
    assert "every dot is a free parameter \u03bb_i" in w.latent_view.caption()
    rows = int(np.isfinite(w.state.current.snapshot.mu).all(axis=1).sum())  # held-out points: none
    assert 0 < rows < len(w.state.current.dataset)
    text = w.controls.parameters.text()
    decoder = sum(p.numel() for p in w.state.current.model.model.decoder.parameters())
    assert f"{rows:,} training points \u00d7 2 \u00d7 2: {rows * 4:,}" in text
    assert f"decoder weights: {decoder:,}" in text and "|\u03c6|" not in text
    assert "variational EM" in text
    # A held-out point has no lambda_i: selecting it decodes nothing and raises nothing.
    heldout = int(np.flatnonzero(~np.isfinite(w.state.current.snapshot.mu).all(axis=1))[0])
    w.latent_view.pointSelected.emit(heldout)
    qtbot.waitUntil(lambda: w.state.selected == heldout, timeout=WAIT_MS)
    assert "held out: a free-form run has no \u03bb_i" in w.image_panel.point_label.text()


def test_the_dialog_changes_only_the_mode(qtbot):
    base = TrainConfig(hidden=(64,), seed=3)
    dialog = NewRunDialog(base, "run 1", "one")
    qtbot.addWidget(dialog)
    assert dialog.inference.currentText() == "amortized"
    dialog.inference.setCurrentText("semi")
    assert dialog.changes() == {"seed": 4, "inference": "semi"}
    assert dialog.config().inference == "semi" and "inference=semi" in dialog.name()


def test_semi_lines_follow_the_ellipses_level_of_detail(qtbot):
    view = LatentView()
    qtbot.addWidget(view)
    rng = np.random.default_rng(0)
    starts = rng.normal(size=(500, 2))
    mu = starts + 0.1
    view.set_ellipse_budget(40)
    view.set_latents(mu, np.full((500, 2), 0.05), starts=starts)
    assert view.refinement_lines() == 40
    pairs = view.refinement_segments()  # (start, end) per line, as drawn
    assert pairs.shape == (40, 2, 2)
    assert np.allclose(pairs[:, 1] - pairs[:, 0], 0.1)
    assert "40 lines from f_\u03c6(x_i)" in view.status_text()
    view.set_latents(mu, np.full((500, 2), 0.05))  # not semi: no lines
    assert view.refinement_lines() == 0 and len(view.refinement_segments()) == 0


@pytest.fixture(scope="module")
def frozen(digits):
    session = Session(digits, TrainConfig(hidden=(64,), threads=1, batch_size=64, seed=0))
    for _ in range(100):
        session.step()
    return session.snapshot().model


def test_a_dropped_image_in_free_mode_is_fitted_and_its_cost_stated(qtbot, digits, frozen):
    panel = EncodedImagesPanel()
    qtbot.addWidget(panel)
    panel.set_dataset(digits)
    image = QImage(32, 32, QImage.Format.Format_Grayscale8)
    image.fill(0)
    for k in range(6, 26):
        image.setPixel(16, k, 0xFFFFFFFF)  # a vertical stroke: a "1"
    panel.model.add_qimage(image)
    base = TrainConfig(hidden=(64,), threads=1)
    panel.model.set_inference(base)
    panel.model.reencode(frozen)
    assert "one encoder pass" in panel.cost.text()
    encoded = panel.model.entries[0].mu

    panel.model.set_inference(base.replace(inference="free"))
    panel.model.reencode(frozen)
    text = panel.cost.text()
    assert "Free-form: a new x has no \u03bb" in text and "optimisation" in text
    assert "against one encoder pass" in text
    cost = panel.model.q_cost
    assert cost.mode == "free" and cost.seconds > cost.encoder_seconds
    fitted = panel.model.entries[0].mu
    assert not np.allclose(fitted, encoded)
    # The next snapshot within the duty interval keeps the fit: no optimisation per frame.
    panel.model.reencode(frozen)
    assert panel.model.q_cost is cost


def test_two_runs_of_different_modes_side_by_side(qtbot, make_window):
    w = make_window()

    first, second = add_run_from_dialog(
        qtbot, w, lambda dialog: dialog.inference.setCurrentText("semi"), WAIT_MS)
    assert second.config.inference == "semi" and first.config.inference == "amortized"
    primary, other = w.planes.planes()
    assert other.run is second and "refined by 10 steps" in other.view.caption()
    assert other.view.refinement_lines() > 0
    assert primary.view.caption() == "every dot is f_\u03c6(x_i)"
    assert primary.view.refinement_lines() == 0

    view = other.view  # a click on the semi plane makes it current
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(view.viewport().width() // 2, view.viewport().height() // 2))
    qtbot.waitUntil(lambda: w.state.current is second, timeout=WAIT_MS)
    assert w.controls.inference.currentText() == "semi"
    assert "refined by 10 steps" in w.latent_view.caption()
    assert w.latent_view.refinement_lines() > 0
    assert "Semi-amortized" in w.controls.parameters.text()



def test_semi_mode_above_2d_draws_each_line_through_the_planes_view(qtbot, make_window):
    w = make_window(fast_config(inference="semi", latent_dim=4), start=False)
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None
                    and w.state.current.snapshot.refined_mu is not None, timeout=WAIT_MS)
    snapshot, plane = w.state.current.snapshot, w.current_run.plane
    segments = w.latent_view.refinement_segments()  # (n, 2, 2): f_phi(x_i) -> refined mu_i
    assert len(segments) > 0 and "PCA of 4-D" in w.latent_view.status_text()
    starts, ends = plane.to_view(snapshot.mu), plane.to_view(snapshot.refined_mu)
    for start, end in segments:
        i = int(np.argmin(np.abs(ends - end).sum(axis=1)))
        np.testing.assert_allclose(end, ends[i], atol=1e-4)
        np.testing.assert_allclose(start, starts[i], atol=1e-4)
