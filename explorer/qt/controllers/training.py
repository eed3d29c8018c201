"""Training intents of each run, and the schedule that decides which runs train.

A ``TrainingController`` belongs to one ``explorer.core.state.Run`` for the run's whole life: it
owns the run's worker, makes a new one when the run moves to another dataset (or its worker
failed), and connects each worker's signals to itself once, so nothing above it is rewired.
Results reach the Run throttled: results that queue up while the GUI is busy are dropped but
the newest, delivered once per event-loop turn. ``Trainers`` holds the controllers of a window
and the schedule: "one" (starting a run pauses the others) or "all" (running runs share
``Turns`` and step one at a time, round-robin).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

from explorer.core.state import AppState, Run
from explorer.qt.paint_guard import guarded
from explorer.qt.worker import TrainingWorker, Turns
from trainer import Checkpoint, Progress, Session, Snapshot, TrainConfig

DEFAULT_RATES = (10.0, 4.0)  # curves and latent snapshots per second (Preferences' defaults)


class TrainingController(QObject):
    """Start/pause, step, reset, live settings and checkpoints of one run, as requests to
    its worker; the worker's answers become the Run's echoes."""

    checkpointSaved = Signal(str, str)  # (directory, "") or ("", one-line error)
    workerFinished = Signal(object)  # this worker's thread ended (a save may wait on it)

    def __init__(self, run: Run, turns: Turns | None = None, launch: bool = True,
                 rates: tuple[float, float] = DEFAULT_RATES, parent: QObject | None = None):
        """``launch``: start worker threads (the screenshot mode trains in its own thread
        and hands snapshots to ``deliver``)."""
        super().__init__(parent)
        self.run = run
        self.turns = turns
        self.launch = launch
        self._rates = rates
        self._worker: TrainingWorker | None = None  # the newest, kept after it stopped
        self._stopped = True
        self._asked: bool | None = None  # a start/pause sent but not echoed yet
        self.started = False  # Start was pressed once (the button then says Resume)
        self._pending_snapshot: Snapshot | None = None
        self._pending_progress: Progress | None = None
        self._draw_scheduled = False
        run.progress_changed.connect(self._on_echo)

    @property
    def worker(self) -> TrainingWorker | None:
        return self._worker

    @property
    def session(self) -> Session | None:
        """The live session (created in the worker's thread; read it, never drive it)."""
        return None if self._worker is None else self._worker.session

    # ---------------------------------------------------------- workers
    def new_worker(self, start_paused: bool = True, checkpoint: Checkpoint | None = None,
                   session: Session | None = None) -> TrainingWorker:
        """Stop the current worker (if any) and train the run's dataset and config in a new
        one: a fresh model, ``checkpoint`` resumed, or a live ``session`` adopted."""
        self.stop()
        self.run.set_failure(None)
        self._asked = not start_paused  # what the new worker will echo
        self._pending_snapshot = self._pending_progress = None
        if self._worker is not None:
            self._worker.deleteLater()
        worker = TrainingWorker(self.run.dataset, self.run.config, start_paused=start_paused,
                                checkpoint=checkpoint, session=session, turns=self.turns)
        # Bound methods of this QObject, so Qt queues each call into the GUI thread (a
        # lambda would run in the worker's); sender() tells a replaced worker apart.
        worker.progressed.connect(self._on_progress)
        worker.snapshotted.connect(self._on_snapshot)
        worker.failed.connect(self._on_failed)
        worker.checkpointSaved.connect(self._on_checkpoint_saved)
        worker.finished.connect(self._on_finished)
        worker.set_rates(*self._rates)
        self._worker = worker
        self._stopped = False
        if self.launch:
            worker.start()
        return worker

    def switch_dataset(self, dataset, config: TrainConfig, start_paused: bool = True,
                       checkpoint: Checkpoint | None = None) -> TrainingWorker:
        """The run moves to ``dataset`` with ``config``: the same controller, a new worker."""
        self.stop()
        self.run.set_dataset(dataset)
        self.run.set_config(config)
        return self.new_worker(start_paused=start_paused, checkpoint=checkpoint)

    def stop(self) -> None:
        """End the worker's loop and wait for it (safe more than once); its answers still
        queued are dropped."""
        self._stopped = True
        if self._worker is not None:
            self._worker.stop()

    def detach_session(self) -> Session | None:
        """Stop the worker and hand its live session over (to adopt it elsewhere)."""
        session = self.session
        self.stop()
        return session

    # ---------------------------------------------------------- intents
    @property
    def alive(self) -> bool:
        """Requests will be served: a worker exists and its loop has not failed."""
        return not self._stopped and self.run.failure is None

    @property
    def wants_running(self) -> bool:
        """The run's running echo, or the start/pause just asked for and not echoed yet."""
        return self.run.running if self._asked is None else self._asked

    def start(self) -> None:
        if self.alive:
            self._asked = True
            self.started = True
            self._worker.resume()

    def pause(self) -> None:
        if self.alive:
            self._asked = False
            self._worker.pause()

    def step(self) -> None:
        if self.alive and not self.wants_running:
            self._worker.step_once()

    def reset(self, config: TrainConfig) -> None:
        """A fresh model with ``config``; a failed worker is replaced by a new one."""
        if self.run.failure is not None or self._stopped:
            self.run.set_config(config)
            self.new_worker(start_paused=True)
        else:
            self._worker.reset(config)

    def set_lr(self, lr: float) -> None:
        if self.alive:
            self._worker.set_lr(lr)

    def set_beta(self, beta: float) -> None:
        if self.alive:
            self._worker.set_beta(beta)

    def set_batch_size(self, batch_size: int) -> None:
        if self.alive:
            self._worker.set_batch_size(batch_size)

    def set_rates(self, curve_hz: float, latent_hz: float) -> None:
        """Raises ValueError for a rate that is not positive (before anything changes)."""
        if self._worker is not None:
            self._worker.set_rates(curve_hz, latent_hz)
        self._rates = (float(curve_hz), float(latent_hz))

    def save_checkpoint(self, directory: str) -> bool:
        """Ask the worker to write a checkpoint; False when no worker serves requests (the
        answer otherwise comes as ``checkpointSaved``)."""
        if not self.alive or not self._worker.isRunning():
            return False
        self._worker.save_checkpoint(directory)
        return True

    # -------------------------------------------------- answers from the worker
    def deliver(self, snapshot: Snapshot) -> None:
        """A snapshot from elsewhere (the screenshot mode's own training)."""
        self.run.set_snapshot(snapshot)

    def _current(self) -> bool:
        """The signal being handled comes from this run's current worker (not a replaced
        one's last words)."""
        return self.sender() is self._worker and not self._stopped

    def _on_progress(self, progress: Progress) -> None:
        if self._current():
            self._pending_progress = progress
            self._schedule()

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        if self._current():
            self._pending_snapshot = snapshot
            self._schedule()

    def _on_failed(self, message: str) -> None:
        if self._current():
            self._asked = None
            self.run.set_failure(message)

    def _on_checkpoint_saved(self, directory: str, error: str) -> None:
        if self._current():
            self.checkpointSaved.emit(directory, error)

    def _on_finished(self) -> None:
        if self.sender() is self._worker:  # stopped or failed: a save waiting on it ends
            self.workerFinished.emit(self._worker)

    def _schedule(self) -> None:
        if not self._draw_scheduled:
            self._draw_scheduled = True
            QTimer.singleShot(0, self._deliver_pending)

    @guarded()  # a timer slot, called from Qt's event loop
    def _deliver_pending(self) -> None:
        self._draw_scheduled = False
        snapshot, self._pending_snapshot = self._pending_snapshot, None
        progress, self._pending_progress = self._pending_progress, None
        if progress is not None:  # first: a snapshot's own progress is then not newer
            self.run.set_progress(progress)
        if snapshot is not None:
            self.run.set_snapshot(snapshot)

    def _on_echo(self, progress: Progress) -> None:
        if self._asked is not None and self._asked == (not progress.paused):
            self._asked = None  # the session did what was asked


class Trainers(QObject):
    """The TrainingControllers of a window's runs and the schedule between them."""

    def __init__(self, state: AppState, launch: bool = True,
                 rates: tuple[float, float] = DEFAULT_RATES, parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.launch = launch
        self.rates = rates
        self.turns = Turns()
        self._controllers: dict[int, TrainingController] = {}
        state.schedule_changed.connect(self._on_schedule)

    def add(self, run: Run) -> TrainingController:
        controller = TrainingController(run, self.turns, self.launch, self.rates, self)
        self._controllers[id(run)] = controller
        return controller

    def remove(self, run: Run) -> None:
        controller = self._controllers.pop(id(run))
        controller.stop()
        controller.deleteLater()

    def of(self, run: Run) -> TrainingController:
        return self._controllers[id(run)]

    @property
    def current(self) -> TrainingController:
        return self.of(self.state.current)

    def all(self) -> list[TrainingController]:
        return [self._controllers[id(r)] for r in self.state.runs if id(r) in self._controllers]

    def start(self, run: Run) -> None:
        """Start ``run``; under "one at a time" every other run is paused first."""
        if self.state.schedule == "one":
            for other in self.all():
                if other.run is not run and other.wants_running:
                    other.pause()
        self.of(run).start()

    def toggle(self, run: Run) -> None:
        controller = self.of(run)
        if controller.wants_running:
            controller.pause()
        else:
            self.start(run)

    def set_rates(self, curve_hz: float, latent_hz: float) -> None:
        for controller in self.all():
            controller.set_rates(curve_hz, latent_hz)
        self.rates = (float(curve_hz), float(latent_hz))

    def _on_schedule(self, schedule: str) -> None:
        if schedule == "one":  # keep the current run training if it was; pause the rest
            running = [c for c in self.all() if c.wants_running]
            keep = self.current if self.current in running else (running[:1] or [None])[0]
            for controller in running:
                if controller is not keep:
                    controller.pause()

    def shutdown(self) -> None:
        """Stop every worker and wait for each (closing the window)."""
        for controller in self.all():
            controller.stop()
