"""Progress dialogs whose updates never re-enter the event loop.

``QProgressDialog.setValue`` on a modal dialog calls ``QCoreApplication.processEvents()``.
Progress posted by a worker is then handled inside the previous update, and a job that ends
there closes and deletes the dialog beneath its own ``setValue``: a segfault, seen once in three
runs of a folder dataset loading while two windows trained. Here ``setValue(0)`` only arms the
dialog's show-after-minimum-duration timer; later values go straight to its progress bar.
"""

from __future__ import annotations

from PySide6.QtWidgets import QProgressBar, QProgressDialog, QWidget


def progress_dialog(label: str, title: str, maximum: int, parent: QWidget,
                    minimum_ms: int = 300) -> QProgressDialog:
    """A dialog with a Cancel button that shows itself after ``minimum_ms`` (quick jobs
    never flash one), stays open at 100 % until closed, and is updated by ``set_progress``."""
    dialog = QProgressDialog(label, "Cancel", 0, maximum, parent)
    dialog.setWindowTitle(title)
    dialog.setMinimumDuration(minimum_ms)
    dialog.setAutoClose(False)
    dialog.setAutoReset(False)
    dialog.setValue(0)  # not shown yet: starts the show timer, processes no events
    return dialog


def set_progress(dialog: QProgressDialog, done: int, total: int | None = None) -> None:
    """``done`` of ``total`` (0 .. maximum; total 0 is a busy bar), never processing events."""
    bar = dialog.findChild(QProgressBar)
    if total is not None and bar.maximum() != total:
        bar.setMaximum(total)
    bar.setValue(max(bar.minimum(), min(done, bar.maximum())))
