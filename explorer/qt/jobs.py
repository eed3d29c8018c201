"""Background jobs, one helper for every lane: the image reader, the dataset loader, a drop's
folder scan, the inspector's computations, the colourings, the aggregate density, exports.

A ``JobLane`` runs one job at a time on a thread of a pool of its own, so closing waits for
this lane only (``cancel_and_wait``), never for other work. Each job is a superqt worker
(``create_worker``): a generator reports every value it yields as ``progress`` and, once
cancelled, stops at its next ``yield``; a plain function runs to its end and its answer is
dropped. ``submit_polling`` serves the trainer's own long jobs, written with ``progress=`` and
``cancelled=`` callbacks (``trainer.load_source``): they poll the flag a cancel sets.

Latest wins by default: a new request replaces a queued one, and the running one is cancelled
and forgotten (no signal comes for it). With ``latest_wins=False`` requests queue and each one
ends. Every request that is not replaced ends with exactly one of ``done(result)``,
``failed(one line)`` or ``cancelled()``, in the GUI thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import GeneratorWorker, WorkerBase, create_worker

from trainer import DataError


def one_line(error: BaseException) -> str:
    """What the user reads about a failed job: the trainer's errors and OSErrors as they are
    (they name the file and the reason), anything else with its type (a bug); one line."""
    text = str(error) if isinstance(error, (DataError, OSError)) and str(error) else \
        f"{type(error).__name__}: {error}"
    return " ".join(text.split())


@dataclass
class _Request:
    fn: Callable
    args: tuple
    kwargs: dict
    polling: bool
    stop: threading.Event = field(default_factory=threading.Event)  # polled by the job
    cancelled: bool = False  # by cancel(): it ends with ``cancelled``
    replaced: bool = False  # by a newer request: it ends silently
    outcome: tuple[str, object] | None = None  # ("returned", value) or ("errored", exc)


class JobLane(QObject):
    """``submit(fn, *args, **kwargs)`` runs ``fn`` off the GUI thread; see the module."""

    progress = Signal(object)  # a value the current job yielded or reported
    done = Signal(object)  # its result
    failed = Signal(str)  # its exception, as ``describe`` puts it
    cancelled = Signal()
    _polled = Signal(object)  # emitted in the job's thread, delivered queued

    def __init__(self, parent: QObject | None = None, latest_wins: bool = True,
                 describe: Callable[[BaseException], str] = one_line):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._latest_wins = latest_wins
        self._describe = describe
        self._queue: deque[_Request] = deque()
        self._running: _Request | None = None
        self._worker: WorkerBase | None = None  # kept alive until it has finished
        self._polled.connect(self._on_progress)

    def submit(self, fn: Callable, *args, **kwargs) -> None:
        """Queue ``fn(*args, **kwargs)`` (a function or a generator function)."""
        self._add(_Request(fn, args, kwargs, polling=False))

    def submit_polling(self, fn: Callable, *args, **kwargs) -> None:
        """Queue ``fn(*args, progress=, cancelled=, **kwargs)``: ``progress(*values)`` comes
        out as ``progress(values)`` and ``cancelled()`` turns True on cancel."""
        self._add(_Request(fn, args, kwargs, polling=True))

    def busy(self) -> bool:
        """True while a request is queued or running and not cancelled or replaced."""
        return bool(self._queue) or self._live(self._running)

    def cancel(self) -> None:
        """Forget queued requests; the running one stops as soon as it can and ends with
        ``cancelled`` (a function's answer is dropped)."""
        self._queue.clear()
        if self._live(self._running):
            self._running.cancelled = True
            self._stop(self._running)

    def cancel_and_wait(self, msecs: int = 30_000) -> bool:
        """Cancel, then wait for the lane's thread to end (closing a window); True when it
        did. The lane takes new requests afterwards."""
        self.cancel()
        return self._pool.waitForDone(msecs)

    # ------------------------------------------------------------------ the lane itself
    def _add(self, request: _Request) -> None:
        if self._latest_wins:
            self._queue.clear()
            if self._live(self._running):
                self._running.replaced = True
                self._stop(self._running)
        self._queue.append(request)
        if self._running is None:
            self._start_next()

    @staticmethod
    def _live(request: _Request | None) -> bool:
        return request is not None and not (request.cancelled or request.replaced)

    def _stop(self, request: _Request) -> None:
        request.stop.set()
        if self._worker is not None:
            self._worker.quit()  # a generator stops at its next yield

    def _start_next(self) -> None:
        request = self._queue.popleft()
        kwargs = dict(request.kwargs)
        if request.polling:
            kwargs.update(progress=lambda *values: self._polled.emit(values),
                          cancelled=request.stop.is_set)
        self._pool.waitForDone()  # the last worker may still be leaving run()
        # Slots are methods of this GUI-thread object, so they run queued in the GUI thread.
        worker = create_worker(request.fn, *request.args, _start_thread=False,
                               _ignore_errors=True, **kwargs)  # errors come to _on_errored
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        if isinstance(worker, GeneratorWorker):
            worker.yielded.connect(self._on_progress)
        self._running, self._worker = request, worker
        self._pool.start(worker)

    def _on_progress(self, value) -> None:
        if self._live(self._running):
            self.progress.emit(value)

    def _on_returned(self, value) -> None:
        self._running.outcome = ("returned", value)

    def _on_errored(self, error: Exception) -> None:
        self._running.outcome = ("errored", error)

    def _on_finished(self) -> None:
        request, self._running, self._worker = self._running, None, None
        if request.replaced:
            pass
        elif request.cancelled:  # whatever it returned or raised: the user said stop
            self.cancelled.emit()
        elif request.outcome is not None and request.outcome[0] == "errored":
            self.failed.emit(self._describe(request.outcome[1]))
        else:
            self.done.emit(None if request.outcome is None else request.outcome[1])
        if self._queue and self._running is None:
            self._start_next()
