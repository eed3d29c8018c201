"""The main window with a real Session training in its worker thread (pytest-qt, offscreen)."""

from __future__ import annotations

import csv

import numpy as np
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QTextBrowser

from explorer.qt.window import MainWindow
from explorer.qt.worker import running_workers

WAIT_MS = 20_000


def n_points(curve) -> int:
    x, _ = curve.getData()
    return 0 if x is None else len(x)


def wait_for_model(qtbot, window):
    qtbot.waitUntil(lambda: window.state.current.model is not None, timeout=WAIT_MS)


def wait_for_session(qtbot, window):
    qtbot.waitUntil(lambda: window.trainers.current.worker.session is not None, timeout=WAIT_MS)
    return window.trainers.current.worker.session


def round_trip(qtbot, window, session, beta: float) -> None:
    """Send one request and wait until the worker loop has served it."""
    window.trainers.current.worker.set_beta(beta)
    qtbot.waitUntil(lambda: session.config.beta == beta, timeout=WAIT_MS)


def empty_spot(window) -> tuple[QPoint, tuple[float, float]]:
    """Viewport pixel and data z of the place in view farthest (in pixels) from every mu."""
    view = window.latent_view
    vb = view.getPlotItem().vb
    (x0, x1), (y0, y1) = vb.viewRange()
    mu = window.state.current.snapshot.mu

    def to_pixels(x, y):
        return view.mapFromScene(vb.mapViewToScene(QPointF(float(x), float(y))))

    px = np.array([[to_pixels(x, y).x(), to_pixels(x, y).y()] for x, y in mu[::4]])
    best, best_d = None, -1.0
    for fx in np.linspace(0.1, 0.9, 17):
        for fy in np.linspace(0.1, 0.9, 17):
            z = (x0 + fx * (x1 - x0), y0 + fy * (y1 - y0))
            p = to_pixels(*z)
            d = float(np.min(np.hypot(px[:, 0] - p.x(), px[:, 1] - p.y())))
            if d > best_d:
                best, best_d = (p, z), d
    assert best_d > 15, f"no empty spot in view (closest point {best_d:.1f} px away)"
    return best


def assert_shows_decoder_image(window):
    z = np.array([window.image_panel.z], np.float32)
    expected = window.state.current.model.decode_mean(z)[0]
    np.testing.assert_allclose(window.image_panel.decoded.array, expected, atol=1e-6)


def test_training_starts_and_curves_get_points(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: n_points(w.elbo_view.raw) >= 3
                    and n_points(w.elbo_view.heldout) >= 1, timeout=WAIT_MS)
    x, y = w.elbo_view.smoothed.getData()
    assert np.all(np.isfinite(y)) and np.all(np.diff(x) > 0)
    assert "higher is better" in w.elbo_view.plot.getPlotItem().getAxis("left").labelText
    assert "samples/s" in w.figures.rate_label.text() and "nats" in w.figures.train_label.text()
    assert w.state.current.snapshot.mu.shape == (len(w.state.current.dataset), 2)


def test_click_decodes_exactly_that_z(qtbot, make_window):
    w = make_window()
    wait_for_model(qtbot, w)
    pixel, z = empty_spot(w)
    qtbot.mouseClick(w.latent_view.viewport(), Qt.MouseButton.LeftButton, pos=pixel)
    assert w.image_panel.z is not None
    vb = w.latent_view.getPlotItem().vb
    (x0, x1), (y0, y1) = vb.viewRange()
    # The click lands on a whole pixel: allow a couple of pixels' worth of z.
    tol_x = 3 * (x1 - x0) / w.latent_view.viewport().width()
    tol_y = 3 * (y1 - y0) / w.latent_view.viewport().height()
    assert abs(w.image_panel.z[0] - z[0]) < tol_x and abs(w.image_panel.z[1] - z[1]) < tol_y
    assert_shows_decoder_image(w)
    assert "E[x|z]" in w.image_panel.z_label.text()


def test_dragging_updates_the_image(qtbot, make_window):
    w = make_window()
    wait_for_model(qtbot, w)
    w.current_run.toggle_running()  # pause, so the points stay where they are
    pixel, _ = empty_spot(w)
    start = pixel
    viewport = w.latent_view.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    first = w.image_panel.z
    assert first is not None
    seen = {first}
    for dx in (4, 8, 12, 16):
        qtbot.mouseMove(viewport, pos=start + QPoint(dx, dx))
        seen.add(w.image_panel.z)
        assert_shows_decoder_image(w)
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=start + QPoint(16, 16))
    assert len(seen) >= 3, f"dragging decoded only {seen}"


def test_selecting_a_point_shows_it_beside_its_reconstruction(qtbot, make_window, digits):
    w = make_window()
    wait_for_model(qtbot, w)
    w.latent_view.pointSelected.emit(5)
    np.testing.assert_allclose(w.image_panel.original.array, digits.as_float([5]).reshape(8, 8))
    expected = w.state.current.snapshot.model.decode_mean(w.state.current.snapshot.mu[5][None])[0]
    np.testing.assert_allclose(w.image_panel.reconstruction.array, expected, atol=1e-6)
    assert "#5" in w.image_panel.point_label.text()
    w.latent_view.pointSelected.emit(-1)
    assert w.image_panel.original.array is None


def test_pause_stops_steps_and_resume_continues(qtbot, make_window):
    w = make_window()
    session = wait_for_session(qtbot, w)
    qtbot.waitUntil(lambda: session.step_count > 5, timeout=WAIT_MS)
    qtbot.mouseClick(w.controls.start_button, Qt.MouseButton.LeftButton)  # Pause
    # The button shows the session's echo (Progress.paused), not the wish.
    qtbot.waitUntil(lambda: w.controls.start_button.text() == "Resume", timeout=WAIT_MS)
    round_trip(qtbot, w, session, 0.9)  # the pause request has been served
    paused_at = session.step_count
    for beta in (0.8, 0.7, 0.6):  # running, each round trip would take at least one step
        round_trip(qtbot, w, session, beta)
    assert session.step_count == paused_at
    qtbot.waitUntil(lambda: w.state.current.progress is not None
                    and w.state.current.progress.paused, timeout=WAIT_MS)
    w.current_run.step_once()
    qtbot.waitUntil(lambda: session.step_count == paused_at + 1, timeout=WAIT_MS)
    qtbot.keyClick(w, Qt.Key.Key_Space)  # the Space shortcut resumes
    qtbot.waitUntil(lambda: w.controls.start_button.text() == "Pause", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: session.step_count > paused_at + 10, timeout=WAIT_MS)


def test_changing_the_learning_rate_reaches_the_optimizer(qtbot, make_window):
    w = make_window()
    session = wait_for_session(qtbot, w)
    w.controls.lr.setValue(0.00037)
    qtbot.waitUntil(lambda: session.optimizer.param_groups[0]["lr"] == 0.00037, timeout=WAIT_MS)
    w.controls.batch.setValue(32)
    w.controls.beta.setValue(0.5)
    qtbot.waitUntil(lambda: session.config.batch_size == 32 and session.config.beta == 0.5,
                    timeout=WAIT_MS)


def test_reset_rebuilds_the_model_with_the_reset_settings(qtbot, make_window):
    w = make_window()
    session = wait_for_session(qtbot, w)
    qtbot.waitUntil(lambda: session.step_count > 20, timeout=WAIT_MS)
    w.current_run.toggle_running()  # pause first, so the step count stays at zero after the reset
    w.confirm = lambda title, question: True  # "discard the run?" (real dialog: test_lost_work)
    old_model = w.state.current.model
    w.controls.hidden.setText("32, 16")
    w.controls.seed.setValue(7)
    qtbot.mouseClick(w.controls.reset_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None
                    and w.state.current.snapshot.config.seed == 7,
                    timeout=WAIT_MS)
    assert session.step_count == 0 and session.config.hidden == (32, 16)
    first = session.model.encoder[0]
    assert first.out_features == 32
    model = w.state.current.model
    assert model is not old_model and model.model.encoder[0].out_features == 32
    assert w.state.current.snapshot.progress.step == 0
    # Bad input is refused with a message, and nothing is sent.
    w.controls.hidden.setText("32, x")
    w.current_run.reset_training()
    assert "hidden sizes" in w.statusBar().currentMessage()


def test_divergence_is_reported_and_pauses(qtbot, make_window):
    w = make_window()
    session = wait_for_session(qtbot, w)
    w.trainers.current.worker.set_lr(1e12)
    qtbot.waitUntil(lambda: w.banner.isVisible(), timeout=WAIT_MS)
    assert "diverged" in w.banner.text()
    assert w.controls.start_button.text() == "Resume"
    assert session.stopped_reason is not None
    weights = [p for p in session.model.parameters()]
    assert all(torch.isfinite(p).all() for p in weights)
    assert np.all(np.isfinite(w.state.current.model.decode_mean(np.zeros((1, 2), np.float32))))


def test_closing_mid_training_and_at_startup_leaves_no_thread(qtbot, make_window, digits,
                                                              small_config):
    early = MainWindow(digits, small_config())  # closed before its session even exists
    early.close()
    assert not early.trainers.current.worker.isRunning()
    w = make_window()
    session = wait_for_session(qtbot, w)
    qtbot.waitUntil(lambda: session.step_count > 10, timeout=WAIT_MS)
    w.close()
    assert not w.trainers.current.worker.isRunning()
    assert running_workers() == []


def test_export_history_csv(qtbot, make_window, tmp_path):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.progress is not None
                    and len(w.state.current.progress.heldout["elbo"]) >= 1
                    and len(w.state.current.progress.train["elbo"]) >= 2, timeout=WAIT_MS)
    path = tmp_path / "history.csv"
    w.exports.export_history(str(path))
    rows = list(csv.DictReader(path.open()))
    splits = {r["split"] for r in rows}
    assert {"train", "heldout"} <= splits <= {"train", "heldout", "heldout_logpx"}
    assert all(float(r["elbo"]) < 0 for r in rows)
    p = w.state.current.progress
    assert len(rows) == len(p.train["elbo"]) + len(p.heldout["elbo"]) + len(p.logpx["log_px"])


def test_window_state_and_sigma_level_are_remembered(qtbot, make_window):
    w = make_window(start=False)
    w.actions["sigma_2"].trigger()
    w.docks["manifold"].hide()
    w.close()
    again = make_window(start=False)
    assert again.actions["sigma_2"].isChecked()
    assert not again.docks["manifold"].isVisible()


def test_help_opens_with_f1(qtbot, make_window):
    w = make_window(start=False)
    actions = [a for m in w.menuBar().actions() for a in m.menu().actions()]
    help_action = next(a for a in actions if a.shortcut() == QKeySequence("F1"))
    help_action.trigger()
    text = w.help_dialog.findChild(QTextBrowser).toPlainText()
    assert "ELBO" in text and "log p" in text and "φ" in text and "θ" in text
    w.help_dialog.close()


def test_the_action_table_builds_every_menu_entry_with_a_tip(qtbot, make_window):
    w = make_window(start=False)
    top = [a.text() for a in w.menuBar().actions()]
    assert top == ["&File", "&Edit", "&Datasets", "&Training", "&View", "&Help"]
    assert [a.text() for a in w.menus["File/Export"].actions()] == [
        "Latents CSV...", "Latent plane PNG...", "Latent plane SVG...", "Manifold PNG...",
        "History CSV..."]
    for name, action in w.actions.items():
        assert action.statusTip(), name
    assert QKeySequence("Ctrl+E") in w.actions["export_history"].shortcuts()
    assert w.actions["start"].shortcut() == QKeySequence(Qt.Key.Key_Space)


def test_step_is_offered_only_while_paused(qtbot, make_window):
    w = make_window(start=False)
    step = w.actions["step"]
    assert not w.trainers.current.wants_running and step.isEnabled()
    w.actions["start"].trigger()
    # Ctrl+. does nothing while training.
    assert w.trainers.current.wants_running and not step.isEnabled()
    w.actions["start"].trigger()
    assert not w.trainers.current.wants_running and step.isEnabled()
