"""After the training worker fails, the window says so and Reset gives a working worker;
Start and Step never send requests to a thread that has ended."""

from __future__ import annotations

from trainer import Session, TrainConfig, load_checkpoint, save_checkpoint

WAIT_MS = 20_000


def failing_checkpoint(folder, digits):
    """A real checkpoint, loaded, whose epoch order is then pointed past the dataset: resuming
    it fails in the worker thread (the Session refuses the order; before that check, the
    first step raised IndexError). The order is changed after loading because load_checkpoint
    refuses such a file; the window's handling of a failed worker is what this tests."""
    session = Session(digits, TrainConfig(hidden=(64,), threads=1, batch_size=64))
    session.step()
    save_checkpoint(session, folder)
    checkpoint = load_checkpoint(folder)
    checkpoint.engine_state["order"] = checkpoint.engine_state["order"] + 10**6
    return checkpoint


def test_a_failed_worker_is_shown_and_reset_replaces_it(qtbot, make_window, digits, tmp_path,
                                                         monkeypatch):
    checkpoint = failing_checkpoint(tmp_path / "ck", digits)
    w = make_window(checkpoint.config, checkpoint=checkpoint)
    w.confirm = lambda title, question: True  # "discard the run?" (real dialog: test_lost_work)
    told = []
    monkeypatch.setattr(w, "tell", lambda title, text: told.append((title, text)))
    failed_worker = w.trainers.current.worker  # resuming the checkpoint fails in its thread
    qtbot.waitUntil(lambda: w.banner.isVisible() and "training stopped" in w.banner.text(),
                    timeout=WAIT_MS)
    reason = w.banner.text().split(". ")[0]
    qtbot.waitUntil(lambda: not failed_worker.isRunning(), timeout=WAIT_MS)
    assert "Reset" in w.banner.text() and "Nothing is training" in w.banner.text()
    assert not w.controls.start_button.isEnabled() and not w.controls.step_button.isEnabled()
    assert w.controls.reset_button.isEnabled()

    # Start and Step say plainly why nothing happens, instead of queueing into the void.
    w.current_run.toggle_running()
    w.current_run.step_once()
    assert [t for t, _ in told] == ["Start: training has stopped", "Step: training has stopped"]
    assert all(reason in text and "Reset" in text for _, text in told)
    assert w.trainers.current.worker is failed_worker and not w.trainers.current.wants_running

    w.current_run.reset_training()
    assert w.trainers.current.worker is not failed_worker
    assert not w.banner.isVisible() and w.controls.start_button.isEnabled()
    qtbot.waitUntil(lambda: w.trainers.current.worker.session is not None, timeout=WAIT_MS)
    session = w.trainers.current.worker.session
    assert session.step_count == 0  # a fresh model, not the broken run
    w.current_run.toggle_running()
    qtbot.waitUntil(lambda: session.step_count > 10, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: w.state.current.progress is not None
                    and w.state.current.progress.step > 10, timeout=WAIT_MS)
    assert w.state.current.failure is None and not w.banner.isVisible()
