"""Opening a session loads its dataset in the background, with progress and Cancel, while
the window keeps handling events (a 20,000-image folder froze the window for 19.5 s)."""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QPushButton

from trainer import load_source

WAIT_MS = 20_000
N_IMAGES = 1500


def image_folder(root, n=N_IMAGES):
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"class{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def saved_session(qtbot, make_window, tmp_path):
    folder = image_folder(tmp_path / "images")
    w = make_window(dataset=load_source(str(folder)))
    qtbot.waitUntil(lambda: w.trainers.current.worker.session is not None
                    and w.trainers.current.worker.session.step_count > 5,
                    timeout=WAIT_MS)
    path = tmp_path / "folder-run.lexp"
    assert w.sessions.save_session_to(path)
    w.close()
    return path


class Ticker:
    """Counts event-loop turns and records what the window showed meanwhile."""

    def __init__(self, window, cancel: bool = False):
        self.window, self.cancel = window, cancel
        self.ticks = 0
        self.dialog_seen = False
        self.timer = QTimer()
        # Not 0: a timer firing on every turn takes the GIL back at once each time, and under
        # load starved the reading thread (one open took over 5 minutes in a full run).
        self.timer.setInterval(2)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        self.ticks += 1
        dialog = self.window.datasets.load_dialog
        if dialog is not None and self.window.datasets.loader.is_running():
            self.dialog_seen = True
            if self.cancel:
                dialog.findChild(QPushButton).click()  # the user presses Cancel

    def stop(self) -> None:
        self.timer.stop()


def test_open_session_reads_its_folder_in_the_background(qtbot, make_window, tmp_path,
                                                         monkeypatch):
    path = saved_session(qtbot, make_window, tmp_path)
    # A cold folder cache: every image is decoded, as on first opening a big folder. (From
    # the warm cache the load could end before the dialog's event loop first turned.)
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cold-cache"))
    w = make_window(start=False)
    ticker = Ticker(w)
    assert w.sessions.open_session(path)
    ticker.stop()
    assert ticker.dialog_seen and ticker.ticks > 0  # the event loop ran during the read
    assert len(w.state.current.dataset) == N_IMAGES and w.sessions.path == path
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None
                    and len(w.state.current.snapshot.mu) == N_IMAGES,
                    timeout=WAIT_MS)


def test_cancel_keeps_the_current_run(qtbot, make_window, tmp_path, digits, monkeypatch):
    path = saved_session(qtbot, make_window, tmp_path)
    w = make_window()
    qtbot.waitUntil(lambda: w.trainers.current.worker.session is not None, timeout=WAIT_MS)
    worker = w.trainers.current.worker
    monkeypatch.setattr(w.sessions, "ask_unsaved", lambda *args: "cancel")  # never reached
    ticker = Ticker(w, cancel=True)
    assert not w.sessions.open_session(path)
    ticker.stop()
    assert ticker.dialog_seen
    assert w.trainers.current.worker is worker and w.state.current.dataset is digits
    assert w.sessions.path is None
    assert "Not opened" in w.statusBar().currentMessage()
    assert not w.datasets.loader.is_running() and w.datasets.load_dialog is None
    before = worker.session.step_count
    qtbot.waitUntil(lambda: worker.session.step_count > before + 5, timeout=WAIT_MS)


def test_a_moved_dataset_is_located_and_read_in_the_background(qtbot, make_window, tmp_path,
                                                               monkeypatch):
    path = saved_session(qtbot, make_window, tmp_path)
    moved = tmp_path / "moved-images"
    (tmp_path / "images").rename(moved)
    w = make_window(start=False)
    asked = []
    monkeypatch.setattr(w.sessions, "ask_locate_dataset",
                        lambda loaded, reason: asked.append(reason) or str(moved))
    ticker = Ticker(w)
    assert w.sessions.open_session(path)
    ticker.stop()
    assert len(asked) == 1 and "no such file or folder" in asked[0]
    assert ticker.dialog_seen and len(w.state.current.dataset) == N_IMAGES
