"""Opening a run that cannot be built never half-switches the window: the new run is built
before the old one stops, so a failure leaves the old run training and shows one message."""

from __future__ import annotations

import shutil

import numpy as np
from safetensors.torch import load_file, save_file

from explorer.session_file import SessionState, save_session
from trainer import ImageDataset, Session, TrainConfig, load_checkpoint, save_checkpoint

WAIT_MS = 20_000


def steps(window) -> int:
    session = window.worker.session
    return -1 if session is None else session.step_count


def checkpoint_with_short_rng_state(folder, digits):
    """A real checkpoint whose sampling RNG state is cut short: it loads, but building the
    session from it fails (RuntimeError from torch's generator)."""
    session = Session(digits, TrainConfig(hidden=(16,), threads=1))
    session.step()
    save_checkpoint(session, folder)
    state = load_file(folder / "optimizer.safetensors")
    state["engine.rng_state"] = state["engine.rng_state"][:10].clone()
    save_file(state, folder / "optimizer.safetensors")
    return folder


def assert_old_run_goes_on(qtbot, window, worker, told, count):
    assert window.worker is worker and worker.isRunning()
    assert len(told) == count and "Still training on" in told[-1][1]
    before = steps(window)
    qtbot.waitUntil(lambda: steps(window) > before + 5, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.progress.step > before, timeout=WAIT_MS)


def test_a_run_that_cannot_be_built_leaves_the_old_one_training(qtbot, make_window, digits,
                                                                 tmp_path, monkeypatch):
    w = make_window()
    qtbot.waitUntil(lambda: steps(w) > 5 and w.snapshot is not None, timeout=WAIT_MS)
    worker, title, dataset = w.worker, w.windowTitle(), w.dataset
    told = []
    monkeypatch.setattr(w, "tell", lambda t, text: told.append((t, text)))

    # 1. A checkpoint whose engine state cannot be restored.
    folder = checkpoint_with_short_rng_state(tmp_path / "short-rng", digits)
    assert not w.switch_dataset(digits, checkpoint=load_checkpoint(folder))
    assert "RuntimeError" in told[-1][1] and str(folder) in told[-1][1]
    assert_old_run_goes_on(qtbot, w, worker, told, 1)

    # 2. A good checkpoint on images of another size (8x8 weights, 10x10 images).
    good = tmp_path / "good"
    shutil.copytree(folder, good)
    save_checkpoint(Session(digits, TrainConfig(hidden=(16,), threads=1)), good)
    other = ImageDataset(np.zeros((50, 10, 10), np.uint8), 1 / 255, "ten", "ten-by-ten")
    assert not w.switch_dataset(other, checkpoint=load_checkpoint(good))
    assert "8x8" in told[-1][1]
    assert_old_run_goes_on(qtbot, w, worker, told, 2)

    # 3. The same through File > Open session: a real .lexp holding the broken checkpoint.
    lexp = tmp_path / "broken.lexp"
    save_session(lexp, SessionState(checkpoint=folder, encoded=[], selected_encoded=None,
                                    selected_point=None, view={}))
    monkeypatch.setattr(w, "_ask_unsaved", lambda *args: "discard")
    assert not w.open_session(lexp)
    assert_old_run_goes_on(qtbot, w, worker, told, 3)
    assert w.windowTitle() == title and w.dataset is dataset and w.session_path is None
    assert not w.banner.isVisible()
