"""The progress dialogs' updates process no events: a modal QProgressDialog.setValue does,
so a job's end arriving meanwhile deleted the dialog beneath its own update (a segfault)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMainWindow, QProgressDialog

from explorer.qt.progress_dialog import progress_dialog, set_progress


def test_an_update_of_a_shown_modal_dialog_processes_no_events(qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    window.show()
    dialog = progress_dialog("Reading...", "Load", 0, window, minimum_ms=50)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    qtbot.waitUntil(dialog.isVisible, timeout=5000)  # shown by its own timer, no setValue

    ran = []
    QTimer.singleShot(0, lambda: ran.append("a queued event"))
    set_progress(dialog, 3, 10)
    assert ran == [] and (dialog.value(), dialog.maximum()) == (3, 10)
    set_progress(dialog, 25)  # clamped to the maximum
    assert dialog.value() == 10 and ran == []

    # What the helper avoids: Qt's own update of a shown modal dialog runs the queued event.
    QTimer.singleShot(0, lambda: ran.append("inside setValue"))
    QProgressDialog.setValue(dialog, 4)
    assert ran == ["a queued event", "inside setValue"]
    dialog.close()


def test_a_quick_job_never_shows_its_dialog(qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    dialog = progress_dialog("Reading...", "Load", 5, window, minimum_ms=10_000)
    set_progress(dialog, 5)
    qtbot.wait(50)
    assert not dialog.isVisible()
    dialog.close()
