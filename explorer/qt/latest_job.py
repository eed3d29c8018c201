"""One background lane where only the newest request matters (superqt workers, a private pool).

Dragging an ellipse, re-selecting a point or changing a colouring asks for the same kind of
work again before the last answer is in. A lane runs one job at a time on a thread of its own
pool; a new request replaces any queued one, asks a running generator job to stop at its next
``yield``, and marks a running function job stale, so its answer is dropped. Closing waits for
this lane's thread only (``shutdown``), never for other work in the global pool.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import FunctionWorker, GeneratorWorker


class LatestJob(QObject):
    """``submit(fn, *args)`` runs ``fn`` off the GUI thread; ``done(result)`` comes only for the
    newest request, ``progress(value)`` for each value a generator ``fn`` yields."""

    done = Signal(object)
    progress = Signal(object)
    failed = Signal(str)  # "TypeName: message" of the newest request's exception

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._worker: FunctionWorker | GeneratorWorker | None = None  # kept alive while running
        self._worker_token = 0
        self._pending: tuple[int, Callable, tuple, dict] | None = None
        self._token = 0

    def submit(self, fn: Callable, *args, **kwargs) -> int:
        """Queue ``fn(*args, **kwargs)``; returns the request's token."""
        self._token += 1
        self._pending = (self._token, fn, args, kwargs)
        if self._worker is None:
            self._start_pending()
        elif isinstance(self._worker, GeneratorWorker):
            self._worker.quit()  # stops at its next yield
        return self._token

    def busy(self) -> bool:
        """True while the newest request is queued or running."""
        return self._pending is not None or (
            self._worker is not None and self._worker_token == self._token)

    def cancel(self) -> None:
        """Forget queued work and drop the running job's answer (a generator also stops)."""
        self._pending = None
        self._token += 1
        if isinstance(self._worker, GeneratorWorker):
            self._worker.quit()

    def shutdown(self, msecs: int = 30_000) -> bool:
        """Cancel, then wait for the lane's thread to end; True when it did. The lane
        can still take new requests afterwards (a dock closed and shown again)."""
        self.cancel()
        return self._pool.waitForDone(msecs)

    def _start_pending(self) -> None:
        token, fn, args, kwargs = self._pending
        self._pending = None
        self._pool.waitForDone()  # the previous worker may still be leaving run()
        cls = GeneratorWorker if inspect.isgeneratorfunction(fn) else FunctionWorker
        worker = cls(fn, *args, **kwargs)
        # Slots are methods of this GUI-thread object, so they run queued in the GUI thread.
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        if isinstance(worker, GeneratorWorker):
            worker.yielded.connect(self._on_yielded)
        self._worker, self._worker_token = worker, token
        self._pool.start(worker)

    def _current(self) -> bool:
        return self._worker is not None and self._worker_token == self._token

    def _on_yielded(self, value) -> None:
        if self._current():
            self.progress.emit(value)

    def _on_returned(self, result) -> None:
        if self._current():
            self.done.emit(result)

    def _on_errored(self, error: Exception) -> None:
        if self._current():
            self.failed.emit(f"{type(error).__name__}: {error}")

    def _on_finished(self) -> None:
        self._worker = None
        if self._pending is not None:
            self._start_pending()
