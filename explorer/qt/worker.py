"""The bridge: a QThread that owns a ``trainer.Session``, loops ``step()`` and serves requests.

The only module that touches both a thread and the trainer. Requests from the GUI are
callables queued with ``put(lambda s: s.set_lr(lr))`` and applied to the session between
steps, so the optimiser is never touched from two threads. "Training is running" has one
owner, the session's ``paused`` flag: pausing goes down as a request and comes back in
``Progress.paused``, which is all the GUI shows. Workers that share a ``Turns`` step one at a
time, round-robin, so several runs training together leave a core for the window.
Results go the other way as Qt signals carrying numpy copies, throttled by elapsed
time (never per step): Progress ~10 Hz, Snapshots a few times a second, less often
for big datasets, because re-encoding the latents costs training time.

Why a QThread subclass rather than superqt's ``thread_worker``: its GeneratorWorker
emits a signal on every yield and blocks inside its own pause loop, while this loop
must serve requests while paused and emit only when a throttle says so; and closing
the window needs a deterministic join (``QThread.wait``) on this one worker.
"""

from __future__ import annotations

import math
import queue
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext

from PySide6.QtCore import QThread, Signal

from explorer.core.blas_threads import limit_blas_threads
from trainer import ImageDataset, Session, TrainConfig, save_checkpoint
from trainer.frozen import collector_paused

# Curves at 10 Hz: each update costs the GUI thread (and so the trainer, through the GIL)
# a few ms of Python; faster looks no smoother.
PROGRESS_INTERVAL = 1 / 10
# Share of the snapshot interval spent re-encoding latents, so training keeps the rest.
LATENT_SHARE = 0.03
# How long the idle loop blocks on the request queue: bounds the reply time when paused.
IDLE_WAIT = 0.05

# Python hands the GIL to a waiting thread only every 5 ms by default, so every Python
# call of a paint could wait that long behind the training loop; 1 ms keeps frames short.
GIL_SWITCH_SECONDS = 0.001

_running: set[TrainingWorker] = set()
_running_lock = threading.Lock()


def running_workers() -> list[TrainingWorker]:
    """Workers whose training loop has not returned yet (for leak checks)."""
    with _running_lock:
        return list(_running)


class Turns:
    """A ticket lock shared by the workers of one window: one holds the turn at a time, and
    they get it in the order they asked, so two runs training together alternate step by
    step (a plain lock lets the thread that just released it take it again at once)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._issued = 0
        self._serving = 0

    @contextmanager
    def turn(self):
        with self._cond:
            ticket = self._issued
            self._issued += 1
            while self._serving != ticket:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()


def snapshot_interval(n_points: int) -> float:
    """Seconds between latent snapshots: 4 Hz for small data, ~1.4 Hz at 70,000 points."""
    return min(1.0, max(0.25, n_points / 100_000))


class TrainingWorker(QThread):
    progressed = Signal(object)  # trainer.Progress
    snapshotted = Signal(object)  # trainer.Snapshot
    failed = Signal(str)  # one-line reason; the loop has ended
    checkpointSaved = Signal(str, str)  # (directory, "") or ("", one-line error)

    def __init__(self, dataset: ImageDataset, config: TrainConfig, start_paused: bool = False,
                 parent=None, checkpoint=None, session: Session | None = None,
                 turns: Turns | None = None):
        """``checkpoint``: a trainer.Checkpoint to resume (device and threads from
        ``config``) instead of a fresh model. ``session``: a live Session whose previous
        worker has stopped, to go on training it in this thread (nothing is rebuilt).
        ``turns``: shared with other workers to step one at a time, in turn."""
        super().__init__(parent)
        self.dataset = dataset
        self.config = config
        self.checkpoint = checkpoint
        self._adopted = session
        self.session: Session | None = session  # created in the thread; read-only elsewhere
        self._requests: queue.SimpleQueue[Callable[[Session], object]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._start_paused = start_paused
        self._turns = turns
        self._interval = snapshot_interval(len(dataset))
        self._progress_interval = PROGRESS_INTERVAL
        self._cover = 1.0  # fraction of latents re-encoded since the weights last changed
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_SECONDS))
        # The GUI thread's numpy shares the cores with this thread's torch: one BLAS
        # thread (OpenBLAS's spinning pool made small products 100x slower under load).
        limit_blas_threads(1)

    @property
    def progress_interval(self) -> float:
        """Seconds between progress reports, as the loop applies them (``set_rates``)."""
        return self._progress_interval

    # ------------------------------------------------ requests (any thread)
    def put(self, request: Callable[[Session], object]) -> None:
        """Apply ``request(session)`` in the worker thread before its next step."""
        self._requests.put(request)

    def pause(self) -> None:
        self.put(Session.pause)

    def resume(self) -> None:
        self.put(_resume)

    def step_once(self) -> None:
        """One optimiser step, only while paused (a running session steps anyway)."""
        self.put(_step_if_paused)

    def reset(self, config: TrainConfig) -> None:
        self.put(lambda s: s.reset(config))

    def set_lr(self, lr: float) -> None:
        lr = float(lr)
        self.put(lambda s: s.set_lr(lr))

    def set_beta(self, beta: float) -> None:
        beta = float(beta)
        self.put(lambda s: s.set_beta(beta))

    def set_batch_size(self, batch_size: int) -> None:
        batch_size = int(batch_size)
        self.put(lambda s: s.set_batch_size(batch_size))

    def set_rates(self, curve_hz: float, latent_hz: float) -> None:
        """The user's update rates: curves at ``curve_hz``; latent snapshots at most at
        ``latent_hz``, and less often when the dataset is large (re-encoding costs).
        Raises ValueError here, in the caller's thread, for a rate that is not positive."""
        rates = (float(curve_hz), float(latent_hz))
        if not all(math.isfinite(r) and r > 0 for r in rates):
            raise ValueError(f"update rates must be positive (got {curve_hz!r}, {latent_hz!r})")
        self.put(lambda s: self._set_rates(*rates))

    def save_checkpoint(self, directory: str) -> None:
        """Write a checkpoint between steps (never racing the optimiser); the answer comes
        as ``checkpointSaved``."""
        directory = str(directory)
        self.put(lambda s: self._save(s, directory))

    def stop(self, wait_ms: int | None = None) -> bool:
        """Ask the loop to end and wait for it (forever by default). True when it ended."""
        self._stop.set()
        self.put(lambda s: None)  # wakes an idle loop at once
        if not self.isRunning():
            return True
        return self.wait() if wait_ms is None else self.wait(wait_ms)

    # ----------------------------------------------------- the worker thread
    def run(self) -> None:
        with _running_lock:
            _running.add(self)
        try:
            self._loop()
        except Exception as exc:  # any failure ends training but never the app
            self.failed.emit(f"training stopped: {type(exc).__name__}: {exc}")
        finally:
            with _running_lock:
                _running.discard(self)

    def _turn(self):
        return nullcontext() if self._turns is None else self._turns.turn()

    def _open_session(self) -> Session:
        if self._adopted is not None:
            return self._adopted
        # Under the turn: building seeds torch's global generator, which another run's
        # thread must not draw from meanwhile. Without the collector: see collector_paused.
        with self._turn(), collector_paused():
            if self.checkpoint is not None:
                return Session.from_checkpoint(self.checkpoint, self.dataset,
                                               device=self.config.device,
                                               threads=self.config.threads, strict=False)
            return Session(self.dataset, self.config)

    def _loop(self) -> None:
        if self._stop.is_set():
            return
        session = self._open_session()
        self.session = session
        if self._start_paused:
            session.pause()
        self._send_snapshot(session, full=True)
        self._send_progress(session)
        last_progress = last_snapshot = time.perf_counter()
        sent = (session.step_count, session.paused, session.version)
        while not self._stop.is_set():
            step, model = session.step_count, session.model
            self._serve(session, block=not self._stepping(session))
            if self._stop.is_set():
                break
            if session.step_count != step or session.model is not model:
                self._cover = 0.0  # a request stepped or rebuilt the model: show it at once
                last_progress = -math.inf
                if session.model is not model:
                    self._send_snapshot(session, full=False)  # a rebuilt model: every point
                    last_snapshot = time.perf_counter()
            if self._stepping(session):
                with self._turn():
                    session.step()
                self._cover = 0.0
            now = time.perf_counter()
            state = (session.step_count, session.paused, session.version)
            # A change of paused is the running echo: sent at once, never throttled.
            if state != sent and (state[1] != sent[1] or session.stopped_reason is not None
                                  or now - last_progress >= self._progress_interval):
                self._send_progress(session)
                last_progress, sent = now, state
            if not self._stepping(session) and self._cover < 1.0:
                # Idle: finish re-encoding the latents for the current weights.
                self._cover += session.refresh_latents(max_seconds=IDLE_WAIT)
                self._send_snapshot(session, full=False, latent_seconds=0.0)
                last_snapshot = now
            elif self._stepping(session) and now - last_snapshot >= self._interval:
                with self._turn():
                    self._send_snapshot(session, full=False)
                last_snapshot = time.perf_counter()

    @staticmethod
    def _stepping(session: Session) -> bool:
        return not session.paused and session.stopped_reason is None

    def _serve(self, session: Session, block: bool) -> None:
        """Apply every queued request; when idle, wait briefly for the first one."""
        try:
            request = self._requests.get(timeout=IDLE_WAIT) if block else \
                self._requests.get_nowait()
        except queue.Empty:
            return
        with self._turn():  # a request may step or rebuild the model: CPU work
            while True:
                request(session)
                try:
                    request = self._requests.get_nowait()
                except queue.Empty:
                    return

    def _set_rates(self, curve_hz: float, latent_hz: float) -> None:
        self._progress_interval = 1.0 / curve_hz
        self._interval = max(1.0 / latent_hz, snapshot_interval(len(self.dataset)))

    def _save(self, session: Session, directory: str) -> None:
        try:
            save_checkpoint(session, directory)
        except Exception as exc:  # noqa: BLE001 - reported to the GUI, never fatal here
            self.checkpointSaved.emit("", f"{type(exc).__name__}: {exc}")
        else:
            self.checkpointSaved.emit(directory, "")

    def _send_progress(self, session: Session) -> None:
        self.progressed.emit(session.progress())

    def _send_snapshot(self, session: Session, full: bool, latent_seconds: float | None = None
                       ) -> None:
        if full:
            budget = None
        elif latent_seconds is not None:
            budget = latent_seconds
        else:
            budget = LATENT_SHARE * self._interval
        self.snapshotted.emit(session.snapshot(latent_seconds=budget))


def _resume(session: Session) -> None:
    session.clear_divergence()  # the user asked again: e.g. after lowering the lr
    session.resume()


def _step_if_paused(session: Session) -> None:
    if session.paused:
        session.clear_divergence()
        session.step()
        session.pause()  # a diverging step pauses too; it stays paused either way
