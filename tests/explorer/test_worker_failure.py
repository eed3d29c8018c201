"""After the training worker fails, the window says so and Reset gives a working worker;
Start and Step never send requests to a thread that has ended."""

from __future__ import annotations

from safetensors.torch import load_file, save_file

from trainer import Session, TrainConfig, load_checkpoint, save_checkpoint

WAIT_MS = 20_000


def failing_checkpoint(folder, digits):
    """A real checkpoint whose saved epoch order points past the dataset: the resumed run
    fails at its first step (IndexError in the worker thread)."""
    session = Session(digits, TrainConfig(hidden=(64,), threads=1, batch_size=64))
    session.step()
    save_checkpoint(session, folder)
    state = load_file(folder / "optimizer.safetensors")
    state["engine.order"] = state["engine.order"] + 10**6
    save_file(state, folder / "optimizer.safetensors")
    return load_checkpoint(folder)


def test_a_failed_worker_is_shown_and_reset_replaces_it(qtbot, make_window, digits, tmp_path,
                                                         monkeypatch):
    checkpoint = failing_checkpoint(tmp_path / "ck", digits)
    w = make_window(checkpoint.config, checkpoint=checkpoint)
    w.confirm = lambda title, question: True  # "discard the run?" (real dialog: test_lost_work)
    told = []
    monkeypatch.setattr(w, "tell", lambda title, text: told.append((title, text)))
    qtbot.waitUntil(lambda: w.worker.session is not None, timeout=WAIT_MS)
    failed_worker = w.worker
    w.toggle_running()  # Resume: the first step fails
    qtbot.waitUntil(lambda: w.banner.isVisible() and "IndexError" in w.banner.text(),
                    timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not failed_worker.isRunning(), timeout=WAIT_MS)
    assert "Reset" in w.banner.text() and "Nothing is training" in w.banner.text()
    assert not w.controls.start_button.isEnabled() and not w.controls.step_button.isEnabled()
    assert w.controls.reset_button.isEnabled()

    # Start and Step say plainly why nothing happens, instead of queueing into the void.
    w.toggle_running()
    w.step_once()
    assert [t for t, _ in told] == ["Start: training has stopped", "Step: training has stopped"]
    assert all("IndexError" in text and "Reset" in text for _, text in told)
    assert w.worker is failed_worker and not w._running

    w.reset_training()
    assert w.worker is not failed_worker
    assert not w.banner.isVisible() and w.controls.start_button.isEnabled()
    qtbot.waitUntil(lambda: w.worker.session is not None, timeout=WAIT_MS)
    session = w.worker.session
    assert session.step_count == 0  # a fresh model, not the broken run
    w.toggle_running()
    qtbot.waitUntil(lambda: session.step_count > 10, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: w.progress is not None and w.progress.step > 10, timeout=WAIT_MS)
    assert w._failure is None and not w.banner.isVisible()
