"""Opening a run that cannot be built never half-switches the window: the new run is built
before the old one stops, so a failure leaves the old run training and shows one message.
(The crafted checkpoints that used to fail while building now fail on load, before anything
is switched: trainer's validation; these are the failures only building can find.)"""

from __future__ import annotations

import numpy as np

from trainer import ImageDataset, Session, TrainConfig, load_checkpoint, save_checkpoint

WAIT_MS = 20_000


def steps(window) -> int:
    session = window.trainers.current.worker.session
    return -1 if session is None else session.step_count


def assert_old_run_goes_on(qtbot, window, worker, told, count):
    assert window.trainers.current.worker is worker and worker.isRunning()
    assert len(told) == count and "Still training on" in told[-1][1]
    before = steps(window)
    qtbot.waitUntil(lambda: steps(window) > before + 5, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.state.current.progress.step > before, timeout=WAIT_MS)


def test_a_run_that_cannot_be_built_leaves_the_old_one_training(qtbot, make_window, digits,
                                                                 tmp_path, monkeypatch):
    w = make_window()
    qtbot.waitUntil(lambda: steps(w) > 5 and w.state.current.snapshot is not None, timeout=WAIT_MS)
    worker, title, dataset = w.trainers.current.worker, w.windowTitle(), w.state.current.dataset
    told = []
    monkeypatch.setattr(w, "tell", lambda t, text: told.append((t, text)))

    # 1. A dataset that loads but cannot be trained on (one image: nothing to hold out),
    #    through the Datasets menu's background loader.
    one = tmp_path / "one.npy"
    np.save(one, np.zeros((1, 8, 8), np.uint8))
    w.datasets.open_dataset(str(one), confirmed=True)
    qtbot.waitUntil(lambda: len(told) == 1, timeout=WAIT_MS)
    assert "at least 2 images" in told[-1][1] and str(one) in told[-1][1]
    assert_old_run_goes_on(qtbot, w, worker, told, 1)

    # 2. A good checkpoint on images of another size (8x8 weights, 10x10 images).
    good = tmp_path / "good"
    save_checkpoint(Session(digits, TrainConfig(hidden=(16,), threads=1)), good)
    other = ImageDataset(np.zeros((50, 10, 10), np.uint8), 1 / 255, "ten", "ten-by-ten")
    assert not w.datasets.switch_dataset(other, checkpoint=load_checkpoint(good))
    assert "8x8" in told[-1][1] and str(good) in told[-1][1]
    assert_old_run_goes_on(qtbot, w, worker, told, 2)
    assert w.windowTitle() == title and w.state.current.dataset is dataset
    assert w.sessions.path is None
    assert not w.banner.isVisible()
