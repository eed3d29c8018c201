"""Never lose work: quitting writes a recovery file, never the named session, and the next
window offers it; Reset asks first (answered through the real dialog); a failed autosave
keeps the window open; closing during a save waits for it."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton

from explorer.core.session_file import load_session
from explorer.qt.controllers.sessions import autosave_path, read_recovery

WAIT_MS = 20_000


def steps(window) -> int:
    session = window.trainers.current.worker.session
    return -1 if session is None else session.step_count


def pause_after(qtbot, window, more_than: int) -> int:
    qtbot.waitUntil(lambda: window.state.current.snapshot is not None and steps(window) > more_than,
                    timeout=WAIT_MS)
    if window.trainers.current.wants_running:
        window.current_run.toggle_running()
    qtbot.waitUntil(lambda: window.state.current.progress is not None
                    and window.state.current.progress.paused
                    and window.state.current.progress.step == steps(window), timeout=WAIT_MS)
    return steps(window)


class BoxAnswerer:
    """Answers the next modal QMessageBox that opens by clicking ``button`` on it, as a user
    would (polls for the active modal widget; records the box's texts)."""

    def __init__(self, button: QMessageBox.StandardButton):
        self.button = button
        self.texts: list[str] = []
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self._poll)
        self.timer.start()

    def _poll(self) -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            self.timer.stop()
            self.texts.append(f"{box.windowTitle()}\n{box.text()}\n{box.informativeText()}")
            box.button(self.button).click()


def test_quitting_keeps_the_named_session_and_the_next_window_restores(qtbot, make_window,
                                                                        tmp_path):
    w = make_window()
    saved_step = pause_after(qtbot, w, 10)
    run = tmp_path / "run.lexp"
    assert w.sessions.save_session_to(run)
    saved = run.read_bytes()
    w.current_run.toggle_running()
    qtbot.waitUntil(lambda: steps(w) > saved_step + 20 and w.isWindowModified(),
                    timeout=WAIT_MS)
    w.close()
    assert not w.isVisible()
    assert run.read_bytes() == saved  # a named file changes only on Save
    autosaved = int(load_session(autosave_path()).checkpoint.counters["step"])
    assert autosaved > saved_step + 20
    assert str(autosave_path().resolve()) not in w.sessions.recent_files()

    again = make_window(start=False)
    assert again.sessions.recovery_bar is not None and again.sessions.recovery_bar.isVisible()
    text = again.sessions.recovery_label.text()
    notes = read_recovery()
    assert f"Restore the unsaved run from {notes['saved_at']:%H:%M}" in text and "run.lexp" in text
    restore = next(b for b in again.sessions.recovery_bar.findChildren(QPushButton)
                   if b.text() == "Restore")
    qtbot.mouseClick(restore, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: steps(again) == autosaved, timeout=WAIT_MS)
    assert again.sessions.path == run and again.isWindowModified()
    assert again.sessions.recovery_bar is None and not autosave_path().exists()
    assert run.read_bytes() == saved


def test_discarding_the_offer_removes_the_recovery_file(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: steps(w) > 5 and w.isWindowModified(), timeout=WAIT_MS)
    w.close()
    assert autosave_path().exists()
    again = make_window(start=False)
    discard = next(b for b in again.sessions.recovery_bar.findChildren(QPushButton)
                   if b.text() == "Discard")
    qtbot.mouseClick(discard, Qt.MouseButton.LeftButton)
    assert not autosave_path().exists() and again.sessions.recovery_bar is None
    assert make_window(start=False).sessions.recovery_bar is None


def test_reset_asks_first_and_cancel_keeps_the_run(qtbot, make_window):
    w = make_window()
    before = pause_after(qtbot, w, 20)
    version = w.trainers.current.worker.session.version
    answer = BoxAnswerer(QMessageBox.StandardButton.Cancel)
    w.current_run.reset_training()
    assert len(answer.texts) == 1 and "Rebuild the model from scratch" in answer.texts[0]
    w.current_run.step_once()
    qtbot.waitUntil(lambda: steps(w) == before + 1, timeout=WAIT_MS)  # the same run goes on
    assert w.trainers.current.worker.session.version >= version

    answer = BoxAnswerer(QMessageBox.StandardButton.Discard)
    w.current_run.reset_training()
    assert len(answer.texts) == 1
    qtbot.waitUntil(lambda: steps(w) == 0 and w.state.current.progress.step == 0, timeout=WAIT_MS)


def test_reset_save_answer_saves_then_resets(qtbot, make_window, tmp_path, monkeypatch):
    w = make_window()
    before = pause_after(qtbot, w, 20)
    path = tmp_path / "kept.lexp"
    monkeypatch.setattr(w, "save_file_name", lambda *args: str(path))  # the file picker
    answer = BoxAnswerer(QMessageBox.StandardButton.Save)
    w.current_run.reset_training()
    assert len(answer.texts) == 1
    assert load_session(path).checkpoint.counters["step"] == before
    qtbot.waitUntil(lambda: steps(w) == 0, timeout=WAIT_MS)


def test_a_failed_autosave_keeps_the_window_open_and_says_so(qtbot, make_window, tmp_path,
                                                             monkeypatch):
    # A real OSError from the file system: the recovery file's name is taken by a folder
    # (chmod cannot make a folder read-only for root, who runs CI here).
    autosave_path().mkdir(parents=True)
    (autosave_path() / "in-the-way").write_text("x")
    w = make_window()
    told = []
    monkeypatch.setattr(w, "tell", lambda title, text: told.append((title, text)))
    qtbot.waitUntil(lambda: steps(w) > 10 and w.isWindowModified(), timeout=WAIT_MS)
    first_worker = w.trainers.current.worker
    assert not w.close()
    assert w.isVisible() and len(told) == 1
    title, text = told[0]
    assert title == "Could not save the unsaved run" and str(autosave_path()) in text
    assert "stays open" in text
    # The run is not lost: the same session trains on in a new thread.
    session = first_worker.session
    worker = w.trainers.current.worker
    assert worker is not first_worker and worker.session is session
    before = session.step_count
    qtbot.waitUntil(lambda: session.step_count > before + 5, timeout=WAIT_MS)
    # Quitting again asks instead (here: Discard, through the real dialog).
    answer = BoxAnswerer(QMessageBox.StandardButton.Discard)
    assert w.close()
    assert len(answer.texts) == 1 and answer.texts[0].startswith("Quit")


def test_closing_during_a_save_waits_for_it_then_autosaves(qtbot, make_window, tmp_path):
    w = make_window()
    qtbot.waitUntil(lambda: steps(w) > 10, timeout=WAIT_MS)
    run = tmp_path / "during.lexp"
    QTimer.singleShot(0, w.close)  # arrives while the save waits for the worker
    assert w.sessions.save_session_to(run)
    saved = load_session(run).checkpoint.counters["step"]
    assert saved > 10
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=WAIT_MS)
    assert not w.trainers.current.worker.isRunning()
    # The close came after the save: it autosaved exactly when training had moved on since.
    final = w.trainers.current.worker.session.step_count
    assert autosave_path().exists() == (final != saved)
    if final != saved:
        assert load_session(autosave_path()).checkpoint.counters["step"] == final


def test_a_save_stages_beside_the_session_not_in_tmpdir(qtbot, make_window, tmp_path,
                                                        monkeypatch):
    import tempfile

    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    target = tmp_path / "docs" / "run.lexp"
    target.parent.mkdir()
    w = make_window()
    qtbot.waitUntil(lambda: steps(w) > 5, timeout=WAIT_MS)
    seen = []
    timer = QTimer()
    timer.setInterval(0)
    timer.timeout.connect(lambda: seen.append((sorted(p.name for p in tmpdir.iterdir()),
                                               sorted(p.name for p in target.parent.iterdir()))))
    timer.start()
    # The window's event loop runs while the worker writes.
    assert w.sessions.save_session_to(target)
    timer.stop()
    # (torch makes its own compile-cache folder there; nothing of this app's appears)
    assert seen and all([n for n in in_tmp if not n.startswith("torchinductor")] == []
                        for in_tmp, _ in seen)
    assert any(any(n.startswith(".run.lexp.") and n.endswith(".partial") for n in beside)
               for _, beside in seen)
    assert sorted(p.name for p in target.parent.iterdir()) == ["run.lexp"]
