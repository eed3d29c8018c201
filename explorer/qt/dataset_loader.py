"""Loading a dataset (built in, downloaded, a folder or a file) without freezing the window.

``trainer.load_source`` runs on a worker thread (superqt's ``FunctionWorker`` in a pool of
its own, so closing the window waits for this load only). Its progress callback fires in
that thread; the signal it emits is queued to the GUI thread because the receiving slot is a
method of this GUI-thread object. Cancel is a flag that ``load_source`` polls between
download chunks and folder files, ending in ``trainer.LoadCancelled``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import FunctionWorker

from trainer import DataError, ImageDataset, LoadCancelled, load_source


def source_title(source: str) -> str:
    """What messages call a source: the built-in names by name, paths as given."""
    return {"digits": "Built-in digits", "mnist": "MNIST",
            "fashion-mnist": "Fashion-MNIST", "sprites-grey": "Sprites (grey)",
            "sprites": "Sprites (colour)"}.get(source, source)


def colour_refusal(dataset) -> str | None:
    """Why the app cannot show ``dataset`` (its views draw grey images only, for now), in one
    line, or None when it can."""
    if not isinstance(dataset, ImageDataset) or dataset.channels == 1:
        return None
    return (f"{dataset.name}: colour images ({dataset.channels} channels) cannot be shown "
            "by the app yet; train on them headless (python -m trainer train), or use "
            "grey images (the built-in sprites-grey)")


class DatasetLoader(QObject):
    """One load at a time. Exactly one of ``loaded``, ``failed`` or ``cancelled`` ends it."""

    progress = Signal(int, int)  # done, total (bytes for downloads, files for folders)
    loaded = Signal(object)  # trainer.ImageDataset (or what a job returned)
    failed = Signal(str)  # one line naming the source and the reason
    cancelled = Signal(str)
    _reported = Signal(int, int)  # emitted in the worker thread, delivered queued

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._worker: FunctionWorker | None = None  # kept until the pool is done with it
        self._cancel = threading.Event()
        self._running = False
        self.source: str | None = None
        self._reported.connect(self._on_reported)

    def start(self, source: str, job: Callable | None = None) -> None:
        """Load ``source``; or, with ``job``, run ``job(progress=, cancelled=)`` instead
        (e.g. finding a session's dataset), its result coming as ``loaded``."""
        if self._running:
            raise RuntimeError(f"already loading {self.source}")
        self._pool.waitForDone()  # the last worker's thread may still be leaving run()
        self._cancel = threading.Event()
        self.source = str(source)
        cancel = self._cancel
        if job is None:
            worker = FunctionWorker(load_source, self.source, progress=self._reported.emit,
                                    cancelled=cancel.is_set)
        else:
            worker = FunctionWorker(job, progress=self._reported.emit, cancelled=cancel.is_set)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        self._worker, self._running = worker, True
        self._pool.start(worker)

    def is_running(self) -> bool:
        return self._running

    def cancel(self) -> None:
        self._cancel.set()

    def cancel_and_wait(self, msecs: int = 30_000) -> bool:
        """Stop and wait for the thread (closing the window mid-load); True when it ended."""
        self.cancel()
        return self._pool.waitForDone(msecs)

    def _on_reported(self, done: int, total: int) -> None:
        if self._running:
            self.progress.emit(done, total)

    def _on_returned(self, dataset: ImageDataset) -> None:
        self._running = False
        if self._cancel.is_set():  # cancelled after the last poll: the user said no
            self.cancelled.emit(f"{source_title(self.source)}: loading cancelled")
        elif (refusal := colour_refusal(dataset)) is not None:
            self.failed.emit(refusal)
        else:
            self.loaded.emit(dataset)

    def _on_errored(self, error: Exception) -> None:
        self._running = False
        if isinstance(error, LoadCancelled):
            self.cancelled.emit(f"{source_title(self.source)}: loading cancelled")
        elif isinstance(error, (DataError, OSError)):  # their messages name the file already
            self.failed.emit(str(error))
        else:  # a loader bug must not end the app: say what happened, in one line
            self.failed.emit(f"{self.source}: could not load ({type(error).__name__}: {error})")
