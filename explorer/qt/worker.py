"""The bridge: a QThread that owns a ``trainer.Session``, loops ``step()`` and serves requests.

The only module that touches both a thread and the trainer. Requests from the GUI
(pause, single step, reset, live hyperparameters) go through a thread-safe queue and
are served between steps, so the optimiser is never touched from two threads.
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

from PySide6.QtCore import QThread, Signal

from trainer import ImageDataset, Session, TrainConfig, save_checkpoint

# Curves at 10 Hz: each update costs the GUI thread (and so the trainer, through the GIL)
# a few ms of Python; faster looks no smoother.
PROGRESS_INTERVAL = 1 / 10
# Share of the snapshot interval spent re-encoding latents, so training keeps the rest.
LATENT_SHARE = 0.05
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


def snapshot_interval(n_points: int) -> float:
    """Seconds between latent snapshots: 4 Hz for small data, ~1.4 Hz at 70,000 points."""
    return min(1.0, max(0.25, n_points / 100_000))


class TrainingWorker(QThread):
    progressed = Signal(object)  # trainer.Progress
    snapshotted = Signal(object)  # trainer.Snapshot
    failed = Signal(str)  # one-line reason; the loop has ended
    checkpointSaved = Signal(str, str)  # (directory, "") or ("", one-line error)

    def __init__(self, dataset: ImageDataset, config: TrainConfig, start_paused: bool = False,
                 parent=None, checkpoint=None, session: Session | None = None):
        """``checkpoint``: a trainer.Checkpoint to resume (device and threads from
        ``config``) instead of a fresh model. ``session``: a live Session whose previous
        worker has stopped, to go on training it in this thread (nothing is rebuilt)."""
        super().__init__(parent)
        self.dataset = dataset
        self.config = config
        self.checkpoint = checkpoint
        self._adopted = session
        self.session: Session | None = session  # created in the thread; read-only elsewhere
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._stop = threading.Event()
        self._running = not start_paused
        self._interval = snapshot_interval(len(dataset))
        self._progress_interval = PROGRESS_INTERVAL
        self._cover = 1.0  # fraction of latents re-encoded since the weights last changed
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_SECONDS))

    # ------------------------------------------------ requests (any thread)
    def pause(self) -> None:
        self._requests.put(("pause", None))

    def set_rates(self, curve_hz: float, latent_hz: float) -> None:
        """The user's update rates: curves at ``curve_hz``; latent snapshots at most at
        ``latent_hz``, and less often when the dataset is large (re-encoding costs).
        Raises ValueError here, in the caller's thread, for a rate that is not positive."""
        rates = (float(curve_hz), float(latent_hz))
        if not all(math.isfinite(r) and r > 0 for r in rates):
            raise ValueError(f"update rates must be positive (got {curve_hz!r}, {latent_hz!r})")
        self._requests.put(("rates", rates))

    def resume(self) -> None:
        self._requests.put(("resume", None))

    def step_once(self) -> None:
        self._requests.put(("step", None))

    def reset(self, config: TrainConfig) -> None:
        self._requests.put(("reset", config))

    def set_lr(self, lr: float) -> None:
        self._requests.put(("lr", float(lr)))

    def set_beta(self, beta: float) -> None:
        self._requests.put(("beta", float(beta)))

    def set_batch_size(self, batch_size: int) -> None:
        self._requests.put(("batch_size", int(batch_size)))

    def save_checkpoint(self, directory: str) -> None:
        """Write a checkpoint between steps (never racing the optimiser); the answer comes
        as ``checkpointSaved``."""
        self._requests.put(("save", str(directory)))

    def stop(self, wait_ms: int | None = None) -> bool:
        """Ask the loop to end and wait for it (forever by default). True when it ended."""
        self._stop.set()
        self._requests.put(("stop", None))
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

    def _loop(self) -> None:
        if self._stop.is_set():
            return
        if self._adopted is not None:
            session = self._adopted
        elif self.checkpoint is not None:
            session = Session.from_checkpoint(self.checkpoint, self.dataset,
                                              device=self.config.device,
                                              threads=self.config.threads, strict=False)
        else:
            session = Session(self.dataset, self.config)
        self.session = session
        if not self._running:
            session.pause()
        self._send_snapshot(session, full=True)
        self._send_progress(session)
        last_progress = last_snapshot = time.perf_counter()
        sent = (session.step_count, session.paused, session.version)
        while not self._stop.is_set():
            stepping = self._running and session.stopped_reason is None
            if stepping:
                self._serve(session, block=False)
            else:
                self._serve(session, block=True)
            if self._stop.is_set():
                break
            if self._running and session.stopped_reason is None:
                session.step()
                self._cover = 0.0
                if session.stopped_reason is not None:
                    self._running = False  # the guard paused the session; say so at once
                    last_progress = -1.0
            now = time.perf_counter()
            state = (session.step_count, session.paused, session.version)
            if state != sent and now - last_progress >= self._progress_interval:
                self._send_progress(session)
                last_progress, sent = now, state
            if not self._running and self._cover < 1.0:
                # Idle: finish re-encoding the latents for the current weights.
                self._cover += session.refresh_latents(max_seconds=IDLE_WAIT)
                self._send_snapshot(session, full=False, latent_seconds=0.0)
                last_snapshot = now
            elif self._running and now - last_snapshot >= self._interval:
                self._send_snapshot(session, full=False)
                last_snapshot = time.perf_counter()

    def _serve(self, session: Session, block: bool) -> None:
        """Apply every queued request; when idle, wait briefly for the first one."""
        try:
            request = self._requests.get(timeout=IDLE_WAIT) if block else \
                self._requests.get_nowait()
        except queue.Empty:
            return
        while True:
            self._apply(session, *request)
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return

    def _apply(self, session: Session, name: str, value) -> None:
        if name == "pause":
            self._running = False
            session.pause()
        elif name == "resume":
            session.clear_divergence()
            self._running = True
            session.resume()
        elif name == "step":
            if not self._running:
                session.clear_divergence()
                session.step()
                session.pause()
                self._cover = 0.0
                self._send_progress(session)
        elif name == "reset":
            session.reset(value)
            if not self._running:
                session.pause()
            self._cover = 0.0
            self._send_progress(session)
            self._send_snapshot(session, full=False)  # a rebuilt model encodes all points
        elif name == "rates":
            curve_hz, latent_hz = value
            self._progress_interval = 1.0 / curve_hz
            self._interval = max(1.0 / latent_hz, snapshot_interval(len(self.dataset)))
        elif name == "lr":
            session.set_lr(value)
        elif name == "beta":
            session.set_beta(value)
        elif name == "batch_size":
            session.set_batch_size(value)
        elif name == "save":
            try:
                save_checkpoint(session, value)
            except Exception as exc:  # noqa: BLE001 - reported to the GUI, never fatal here
                self.checkpointSaved.emit("", f"{type(exc).__name__}: {exc}")
            else:
                self.checkpointSaved.emit(value, "")
        elif name == "stop":
            self._stop.set()

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
