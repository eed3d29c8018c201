"""Loading a dataset (built in, downloaded, a folder or a file) without freezing the window.

``trainer.load_source`` runs in a lane of its own (explorer.qt.jobs), so closing the window
waits for this load only. Its progress callback is reported in the GUI thread; cancel is a
flag that ``load_source`` polls between download chunks and folder files.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from explorer.qt.jobs import JobLane, one_line
from trainer import DataError, FolderListing, load_folder, load_source


def source_title(source: str) -> str:
    """What messages call a source: the built-in names by name, paths as given."""
    return {"digits": "Built-in digits", "mnist": "MNIST",
            "fashion-mnist": "Fashion-MNIST", "sprites-grey": "Sprites (grey)",
            "sprites": "Sprites (colour)"}.get(source, source)


class DatasetLoader(QObject):
    """One load at a time. Exactly one of ``loaded``, ``failed`` or ``cancelled`` ends it."""

    progress = Signal(int, int)  # done, total (bytes for downloads, files for folders)
    loaded = Signal(object)  # trainer.ImageDataset (or what a job returned)
    failed = Signal(str)  # one line naming the source and the reason
    cancelled = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._lane = JobLane(self, describe=self._describe)
        self._lane.progress.connect(self._on_progress)
        self._lane.done.connect(self._on_loaded)
        self._lane.failed.connect(self._on_failed)
        self._lane.cancelled.connect(self._on_cancelled)
        self._running = False
        self.source: str | None = None

    def start(self, source: str, job: Callable | None = None,
              listing: FolderListing | None = None) -> None:
        """Load ``source``; or, with ``job``, run ``job(progress=, cancelled=)`` instead
        (e.g. finding a session's dataset), its result coming as ``loaded``; ``listing``:
        the folder ``source`` already walked (a drop), so it is not walked again."""
        if self._running:
            raise RuntimeError(f"already loading {self.source}")
        self.source = str(source)
        self._running = True
        if job is not None:
            self._lane.submit_polling(job)
        elif listing is not None:
            self._lane.submit_polling(load_folder, listing.root, listing=listing)
        else:
            self._lane.submit_polling(load_source, self.source)

    def is_running(self) -> bool:
        return self._running

    def cancel(self) -> None:
        self._lane.cancel()  # load_source polls it between download chunks and files

    def cancel_and_wait(self, msecs: int = 30_000) -> bool:
        """Stop and wait for the thread (closing the window mid-load); True when it ended."""
        return self._lane.cancel_and_wait(msecs)

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, (DataError, OSError)):  # their messages name the file already
            return one_line(error)
        # A loader bug must not end the app: say what happened, in one line.
        return f"{self.source}: could not load ({one_line(error)})"

    def _on_progress(self, values: tuple) -> None:
        self.progress.emit(*values)

    def _on_loaded(self, dataset) -> None:
        self._running = False
        self.loaded.emit(dataset)

    def _on_failed(self, message: str) -> None:
        self._running = False
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self._running = False
        self.cancelled.emit(f"{source_title(self.source)}: loading cancelled")
