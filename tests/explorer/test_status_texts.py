"""What the first screen says matches what it does: the z panel after a click on a dot, the
reopened session's hint, the rate while paused, a checkpoint run's name."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt

from explorer.qt.app import build_window, open_startup
from trainer import Session, TrainConfig, save_checkpoint

WAIT_MS = 20_000


def test_clicking_a_dot_shows_its_mu_in_the_z_panel(qtbot, make_window):
    w = make_window(start=False)
    w.current_run.step_once()
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None, timeout=WAIT_MS)
    w.selection.decode_z(2.5, -2.5)  # some earlier z
    i = int(np.argmax(np.abs(w.state.current.snapshot.mu).sum(1)))  # an outlying dot, alone
    mu = w.state.current.snapshot.mu[i].astype(float)
    vb = w.latent_view.plotItem.vb
    qtbot.waitUntil(lambda: vb.viewRect().contains(QPointF(*mu)), timeout=WAIT_MS)
    pos = w.latent_view.mapFromScene(vb.mapViewToScene(QPointF(*mu)))
    qtbot.mouseClick(w.latent_view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert w.state.selected is not None
    shown = w.state.current.snapshot.mu[w.state.selected].astype(float)
    np.testing.assert_allclose(w.image_panel.z, shown, atol=1e-6)
    assert w.image_panel.z_label.text().startswith(f"z = ({shown[0]:.2f}, {shown[1]:.2f})")
    np.testing.assert_allclose(w.latent_view.crosshair_position(), shown, atol=1e-6)
    expected = w.state.current.model.decode_mean(shown[None].astype(np.float32))[0]
    np.testing.assert_allclose(w.image_panel.decoded.array, expected, atol=1e-6)


def test_rate_says_paused_while_paused(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.progress is not None
                    and w.state.current.progress.samples_per_second > 0,
                    timeout=WAIT_MS)
    assert w.figures.rate_label.text().endswith("samples/s")
    w.current_run.toggle_running()
    qtbot.waitUntil(lambda: w.state.current.progress.paused, timeout=WAIT_MS)
    assert w.figures.rate_label.text() == "paused"
    w.current_run.toggle_running()
    qtbot.waitUntil(lambda: not w.state.current.progress.paused, timeout=WAIT_MS)
    assert w.figures.rate_label.text().endswith("samples/s")


def test_a_reopened_session_names_the_button_it_shows(qtbot, make_window, tmp_path):
    first = make_window(start=False)
    first.current_run.step_once()
    qtbot.waitUntil(lambda: first.state.current.snapshot is not None, timeout=WAIT_MS)
    path = tmp_path / "again.lexp"
    assert first.sessions.save_session_to(path)
    first.close()
    second = make_window(start=False)
    assert second.sessions.open_session(path)
    button = second.controls.start_button.text()
    assert button == "Resume"
    assert f"press {button} to go on" in second.statusBar().currentMessage()


def test_a_checkpoint_run_is_named_after_its_folder(qtbot, digits, tmp_path):
    session = Session(digits, TrainConfig(hidden=(32,), threads=1))
    session.step()
    folder = tmp_path / "mnist-run-7"
    save_checkpoint(session, folder)
    window = build_window(open_startup(None, f"{folder}/", "cpu", 1))
    qtbot.addWidget(window)
    try:
        assert window.windowTitle().startswith("mnist-run-7[*]"), window.windowTitle()
    finally:
        window.close()
