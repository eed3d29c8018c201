"""The GUI's Reset with a new seed keeps the held-out split, and a saved session (.lexp)
reopens with exactly that split, training on none of it."""

from __future__ import annotations

import numpy as np

WAIT_MS = 20_000


def steps(window) -> int:
    session = window.trainers.current.worker.session
    return -1 if session is None else session.step_count


def test_reset_new_seed_save_and_reopen_keeps_the_split(qtbot, make_window, tmp_path,
                                                        monkeypatch):
    first = make_window()
    qtbot.waitUntil(lambda: first.state.current.snapshot is not None and steps(first) > 5,
                    timeout=WAIT_MS)
    heldout = first.trainers.current.worker.session.split.heldout.copy()
    first.controls.seed.setValue(7)
    # Reset asks first now.
    monkeypatch.setattr(first.sessions, "ask_unsaved", lambda *args: "discard")
    first.current_run.reset_training()
    qtbot.waitUntil(lambda: first.trainers.current.worker.session.config.seed == 7
                    and steps(first) > 5,
                    timeout=WAIT_MS)
    np.testing.assert_array_equal(first.trainers.current.worker.session.split.heldout, heldout)
    first.current_run.toggle_running()
    qtbot.waitUntil(lambda: first.trainers.current.worker.session.paused, timeout=WAIT_MS)
    path = tmp_path / "run.lexp"
    for window in (first,):
        monkeypatch.setattr(window, "save_file_name", lambda *args: str(path))
    first.actions["save"].trigger()
    assert path.is_file()
    first.close()

    second = make_window(start=False)
    monkeypatch.setattr(second, "open_file_name", lambda *args: str(path))
    monkeypatch.setattr(second.sessions, "ask_unsaved", lambda *args: "discard")
    second.actions["open"].trigger()
    qtbot.waitUntil(lambda: second.trainers.current.worker.session is not None
                    and second.trainers.current.worker.session.config.seed == 7, timeout=WAIT_MS)
    session = second.trainers.current.worker.session
    np.testing.assert_array_equal(session.split.heldout, heldout)
    # The order it trains by (this epoch's, as restored) holds no held-out image.
    order = session.engine_state()[0]["order"]
    assert not np.isin(order.numpy(), heldout).any()
    assert not np.isin(session.split.train, heldout).any()
