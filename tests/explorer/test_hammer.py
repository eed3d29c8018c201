"""The hammer: the real window driven through many rapid cycles of start / pause / step /
reset / dataset switch (direct and through the background loader) / save and open a session /
opening a blown-up run / preferences, interleaved with clicks on the plane and decodes,
while the worker trains in its thread. pytest runs it under faulthandler (with
``faulthandler_timeout``), so a crash or a hang prints every thread's stack.

Before the paint guard and clamping, opening the run whose sigma is ~1e17 killed the process
in ``EllipseSetItem.paint`` (int(inf)); 200 random cycles with an exploding lr hit it in 2 of
3 runs."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialog
from test_crash_guards import exploded_checkpoint

from explorer.qt.preferences import Preferences
from trainer import ImageDataset, load_checkpoint

CYCLES = 240
SEED = 20261201
WAIT_MS = 20_000


def subset(dataset: ImageDataset, n: int, name: str) -> ImageDataset:
    return ImageDataset(dataset.pixels[:n].copy(), dataset.scale, name, f"{dataset.source}[:{n}]",
                        labels=None if dataset.labels is None else dataset.labels[:n].copy(),
                        label_names=dataset.label_names)


def accept_active_dialog() -> None:
    dialog = QApplication.activeModalWidget()
    if isinstance(dialog, QDialog):
        dialog.accept()


def test_hammer_the_window(qtbot, make_window, small_config, digits, tmp_path, restore_look):
    rng = np.random.default_rng(SEED)
    small = subset(digits, 300, "digits-300")
    blown = load_checkpoint(exploded_checkpoint(tmp_path / "blown"))
    window = make_window(small_config(eval_every_seconds=0.05))
    window.confirm = lambda title, question: True  # every "discard the run?" is answered yes
    # A session saved while on the 300-image subset names a source that exists nowhere:
    # "Locate the dataset" is answered Cancel.
    window.sessions.ask_locate_dataset = lambda loaded, reason: None
    qtbot.waitUntil(lambda: window.state.current.model is not None, timeout=WAIT_MS)
    view = window.latent_view
    done: dict[str, int] = {}

    def toggle():
        window.current_run.toggle_running()

    def step():
        if window.trainers.current.wants_running:
            window.current_run.toggle_running()
        window.current_run.step_once()

    def reset():
        window.controls.lr.setValue(float(rng.choice([1e-3, 1e-2, 0.5, 5.0])))
        window.current_run.reset_training()

    def switch():
        window.datasets.switch_dataset(small if window.state.current.dataset is digits else digits)

    def open_blown():
        window.datasets.switch_dataset(digits, checkpoint=blown)

    def load_in_background():
        window.datasets.open_dataset("digits", confirmed=True)  # the Datasets menu's loader thread

    saved = tmp_path / "hammer.lexp"

    def save():
        window.sessions.save_session_to(saved)  # waits for the worker in a nested event loop

    def open_saved():
        if saved.exists():
            window.sessions.open_session(saved)

    def exploding_lr():
        window.trainers.current.worker.set_lr(float(rng.choice([10.0, 1e3, 1e6])))

    def preferences():
        prefs = Preferences(curve_hz=float(rng.uniform(1, 60)),
                            latent_hz=float(rng.uniform(0.2, 20)),
                            ellipse_budget=int(rng.integers(0, 20_000)), autosave_on_quit=False)
        window.preferences.apply(prefs)

    def preferences_dialog():
        QTimer.singleShot(50, accept_active_dialog)  # the real dialog, answered OK
        window.preferences.open_dialog()

    def click():
        rect = view.viewport().rect()
        pos = QPoint(int(rng.integers(5, rect.width() - 5)),
                     int(rng.integers(5, rect.height() - 5)))
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)

    def decode():
        window.selection.decode_z(*(float(v) for v in rng.normal(0, 3, 2)))

    def zoom():
        view.plotItem.vb.scaleBy((float(rng.choice([0.05, 1.0, 20.0])),) * 2)

    actions = [toggle, step, reset, switch, open_blown, load_in_background, save, open_saved,
               exploding_lr, preferences, click, decode, zoom]
    weights = np.array([8, 6, 2, 1, 1, 1, 1, 1, 1, 2, 9, 6, 2], float)
    dialog_cycles = set(rng.choice(CYCLES, 3, replace=False).tolist())
    for cycle in range(CYCLES):
        if cycle in dialog_cycles:
            action = preferences_dialog
        elif cycle % 40 == 5:
            action = open_blown  # and every few cycles, for sure: the blown-up run
        elif cycle % 40 == 25:
            action = switch
        else:
            action = actions[rng.choice(len(actions), p=weights / weights.sum())]
        action()
        done[action.__name__] = done.get(action.__name__, 0) + 1
        qtbot.wait(int(rng.integers(0, 25)))  # let the worker's results and paints land
        if cycle % 10 == 0:
            view.viewport().repaint()  # a synchronous paint as well as the queued ones

    assert done["open_blown"] >= 6 and done["switch"] >= 6, done
    qtbot.waitUntil(lambda: not window.datasets.loader.is_running(), timeout=WAIT_MS)
    # The window still works: the current worker trains, snapshots arrive and draw.
    window.datasets.switch_dataset(digits)
    window.controls.lr.setValue(1e-3)
    window.current_run.reset_training()
    if not window.trainers.current.wants_running:
        window.current_run.toggle_running()
    session = window.trainers.current.worker
    qtbot.waitUntil(lambda: window.state.current.progress is not None
                    and window.state.current.progress.step > 20,
                    timeout=WAIT_MS)
    assert window.trainers.current.worker is session and window.trainers.current.worker.isRunning()
    assert not window.banner.isVisible() or "diverged" in window.banner.text()
    assert not view.grab().toImage().isNull()
