"""The application model: the runs in a window, the current one, the linked selection, the
decoded z and the view state. No Qt: views and controllers listen to its psygnal events.

One owner per fact. A ``Run`` holds echoes of what its worker reports (the newest snapshot and
progress, whether it trains, why it failed); the session in the worker owns the truth, and the
controllers write these echoes only from what came back. Each change emits one named event,
and only when the value changed, so a view redraws once per real change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psygnal import Signal

from explorer.core.plane_view import ViewChoice
from trainer import ConfigError, TrainConfig
from trainer.config import default_binarization

MAX_RUNS = 4  # planes side by side: more would be too small to read on a laptop
# One colour per run, the same in its plane's title, its curves and the comparison table
# (Okabe-Ito: distinguishable with the common colour-vision deficiencies).
RUN_COLOURS = ("#0072b2", "#d55e00", "#009e73", "#cc79a7")
SCHEDULES = ("one", "all")
SCHEDULE_TEXT = {"one": "one run trains at a time",
                 "all": "all runs train in turn (one step each, round-robin)"}
# The settings a new run may change from the run it is derived from.
DERIVABLE = ("beta", "likelihood", "binarization", "hidden", "seed", "lr", "batch_size",
             "inference", "arch", "latent_dim")


class Run:
    """One training run: its name and colour, the dataset it trains on, and the echoes of
    its worker (config, snapshot, progress, running, failure)."""

    name_changed = Signal(str)
    config_changed = Signal(object)  # TrainConfig
    snapshot_changed = Signal(object)  # trainer.Snapshot
    progress_changed = Signal(object)  # trainer.Progress
    running_changed = Signal(bool)
    failure_changed = Signal(object)  # str or None
    dataset_changed = Signal(object)  # trainer.ImageDataset

    def __init__(self, name: str, colour: str, dataset, config: TrainConfig):
        self._name = name
        self.colour = colour
        self._dataset = dataset
        self._config = config
        self._snapshot = None
        self._progress = None
        self._running = False
        self._failure: str | None = None

    def __repr__(self) -> str:
        return f"Run({self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    def rename(self, name: str) -> None:
        if not name.strip():
            raise ValueError("a run needs a name")
        if name != self._name:
            self._name = name
            self.name_changed.emit(name)

    @property
    def dataset(self):
        return self._dataset

    def set_dataset(self, dataset) -> None:
        """A new dataset: the old snapshot and progress describe another run now."""
        if dataset is self._dataset:
            return
        self._dataset = dataset
        self._snapshot = self._progress = None
        self.dataset_changed.emit(dataset)

    @property
    def config(self) -> TrainConfig:
        """The config the session trains with: its snapshot's echo once one arrived."""
        return self._config

    def set_config(self, config: TrainConfig) -> None:
        if config != self._config:
            self._config = config
            self.config_changed.emit(config)

    @property
    def snapshot(self):
        return self._snapshot

    @property
    def model(self):
        """The newest snapshot's frozen model (None before the first one)."""
        return None if self._snapshot is None else self._snapshot.model

    def set_snapshot(self, snapshot) -> None:
        self._snapshot = snapshot
        self.set_config(snapshot.config)
        self.snapshot_changed.emit(snapshot)
        # Its progress only when newer: one of the same step may predate a pause's echo.
        if self._progress is None or snapshot.progress.step > self._progress.step:
            self.set_progress(snapshot.progress)

    @property
    def progress(self):
        return self._progress

    def set_progress(self, progress) -> None:
        """The worker's newest progress (in the order sent: a reset goes back to step 0)."""
        if progress is self._progress:
            return
        self._progress = progress
        self.progress_changed.emit(progress)
        self.set_running(not progress.paused)

    @property
    def running(self) -> bool:
        """The echo of the session's paused flag (never the GUI's wish)."""
        return self._running

    def set_running(self, running: bool) -> None:
        if bool(running) != self._running:
            self._running = bool(running)
            self.running_changed.emit(self._running)

    @property
    def failure(self) -> str | None:
        """Why the worker's loop ended (one line), or None while it lives."""
        return self._failure

    def set_failure(self, failure: str | None) -> None:
        if failure != self._failure:
            self._failure = failure
            if failure is not None:
                self.set_running(False)
            self.failure_changed.emit(failure)

    def heldout(self) -> dict[str, float]:
        """The newest held-out numbers (nats per datapoint), empty before the first."""
        if self._progress is None:
            return {}
        rows = self._progress.heldout
        if not len(rows.get("elbo", ())):
            return {}
        return {key: float(values[-1]) for key, values in rows.items() if len(values)}


class AppState:
    """The runs of one window and what they share: the current run, the selected datapoint
    (one index, linked across every run), the decoded z, the sigma level and the schedule."""

    run_added = Signal(object)  # Run
    run_removed = Signal(object)  # Run
    current_changed = Signal(object)  # Run
    selection_changed = Signal(object)  # int or None
    z_changed = Signal(object)  # (z1, z2) or None
    sigma_level_changed = Signal(int)
    schedule_changed = Signal(str)
    plane_view_changed = Signal(object)  # explorer.core.plane_view.ViewChoice

    def __init__(self):
        self._runs: list[Run] = []
        self._current: Run | None = None
        self._selected: int | None = None
        self._z: tuple[float, float] | None = None
        self._sigma_level = 1
        self._schedule = "one"
        self._plane_view = ViewChoice("pca")

    # -------------------------------------------------------------- runs
    @property
    def runs(self) -> tuple[Run, ...]:
        return tuple(self._runs)

    @property
    def current(self) -> Run | None:
        return self._current

    def add_run(self, dataset, config: TrainConfig, name: str | None = None,
                colour: str | None = None) -> Run:
        """A new run with ``colour`` if no run has it, else the next free one; the first run
        becomes current."""
        if len(self._runs) >= MAX_RUNS:
            raise ValueError(f"at most {MAX_RUNS} runs fit in one window; close one first")
        used = {r.colour for r in self._runs}
        if colour is None or colour in used:
            colour = next(c for c in RUN_COLOURS if c not in used)
        taken = {r.name for r in self._runs}
        if name is None or name in taken:
            base = name or "run"
            name = next(f"{base} {k}" for k in range(1, MAX_RUNS + 2)
                        if f"{base} {k}" not in taken)
        run = Run(name, colour, dataset, config)
        self._runs.append(run)
        self.run_added.emit(run)
        if self._current is None:
            self.set_current(run)
        return run

    def remove_run(self, run: Run) -> None:
        """Remove a run (never the last one); the current one passes to its neighbour."""
        if len(self._runs) <= 1:
            raise ValueError("the last run cannot be removed")
        index = self._runs.index(run)
        self._runs.remove(run)
        if run is self._current:
            self.set_current(self._runs[min(index, len(self._runs) - 1)])
        self.run_removed.emit(run)

    def set_current(self, run: Run) -> None:
        if run not in self._runs:
            raise ValueError(f"{run!r} is not one of this window's runs")
        if run is not self._current:
            self._current = run
            self.current_changed.emit(run)

    def run_named(self, name: str) -> Run:
        for run in self._runs:
            if run.name == name:
                return run
        raise KeyError(name)

    # ---------------------------------------------------- linked selection
    @property
    def selected(self) -> int | None:
        """The selected datapoint's index into the dataset, the same in every run."""
        return self._selected

    def select(self, index: int | None) -> None:
        """Select datapoint ``index`` in every run (None or a negative index: none).
        An index outside the current run's dataset is refused with ValueError."""
        if index is not None and index < 0:
            index = None
        if index is not None:
            index = int(index)
            n = len(self._current.dataset) if self._current is not None else 0
            if index >= n:
                raise ValueError(f"datapoint #{index} does not exist ({n} datapoints)")
        if index != self._selected:
            self._selected = index
            self.selection_changed.emit(index)

    # ------------------------------------------------------------ the view
    @property
    def z(self) -> tuple[float, float] | None:
        """The latent point being decoded (shared: every run decodes the same z)."""
        return self._z

    def set_z(self, z: tuple[float, float] | None) -> None:
        z = None if z is None else (float(z[0]), float(z[1]))
        if z != self._z:
            self._z = z
            self.z_changed.emit(z)

    @property
    def sigma_level(self) -> int:
        return self._sigma_level

    def set_sigma_level(self, level: int) -> None:
        if level not in (1, 2):
            raise ValueError(f"sigma level must be 1 or 2 (got {level!r})")
        if level != self._sigma_level:
            self._sigma_level = level
            self.sigma_level_changed.emit(level)

    @property
    def plane_view(self) -> ViewChoice:
        """The 2-D view the plane shows of a latent above 2-D (a 2-D one always shows z1,
        z2 as they are: explorer.core.plane_view.plane_data)."""
        return self._plane_view

    def set_plane_view(self, choice: ViewChoice) -> None:
        if not isinstance(choice, ViewChoice):
            raise ValueError(f"not a plane view: {choice!r}")
        if choice != self._plane_view:
            self._plane_view = choice
            self.plane_view_changed.emit(choice)

    @property
    def schedule(self) -> str:
        """"one": starting a run pauses the others; "all": running runs take turns."""
        return self._schedule

    def set_schedule(self, schedule: str) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES} (got {schedule!r})")
        if schedule != self._schedule:
            self._schedule = schedule
            self.schedule_changed.emit(schedule)


# ------------------------------------------------------------ config derivation
def derive_config(base: TrainConfig, **changes: Any) -> TrainConfig:
    """A new run's config: ``base`` with the user's ``changes`` (keys of DERIVABLE), checked
    by TrainConfig's own validation (ConfigError names the field). Changing the likelihood
    without naming a binarization takes that likelihood's default rule (a Gaussian decoder
    needs 'none', a Bernoulli one a binarization)."""
    unknown = sorted(set(changes) - set(DERIVABLE))
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a setting a new run can change "
                          f"(use {', '.join(DERIVABLE)})")
    changes = dict(changes)
    if "likelihood" in changes and "binarization" not in changes:
        if changes["likelihood"] != base.likelihood:
            changes["binarization"] = default_binarization(changes["likelihood"])
    if "hidden" in changes and isinstance(changes["hidden"], list):
        changes["hidden"] = tuple(changes["hidden"])
    return base.replace(**changes)


def parse_changes(text: str) -> dict[str, Any]:
    """'beta=4,likelihood=gaussian' or 'hidden=64x64' -> typed changes for derive_config;
    one-line ValueError for a malformed part."""
    changes: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"{part!r}: expected KEY=VALUE, e.g. beta=4")
        if key == "hidden":
            try:
                changes[key] = tuple(int(h) for h in value.replace("x", ":").split(":"))
            except ValueError:
                raise ValueError(f"hidden={value}: expected sizes such as 512x512") from None
        elif key in ("seed", "batch_size", "latent_dim"):
            try:
                changes[key] = int(value)
            except ValueError:
                raise ValueError(f"{key}={value}: expected a whole number") from None
        elif key in ("beta", "lr"):
            try:
                changes[key] = float(value)
            except ValueError:
                raise ValueError(f"{key}={value}: expected a number") from None
        elif key in DERIVABLE:
            changes[key] = value
        else:
            raise ValueError(f"{key}: not a setting a run can change "
                             f"(use {', '.join(DERIVABLE)})")
    return changes


def changed_keys(base: TrainConfig, config: TrainConfig) -> dict[str, Any]:
    """The DERIVABLE settings in which ``config`` differs from ``base`` (JSON-ready)."""
    out: dict[str, Any] = {}
    for key in DERIVABLE:
        new = getattr(config, key)
        if new != getattr(base, key):
            out[key] = list(new) if isinstance(new, tuple) else new
    return out


def describe_changes(changes: Mapping[str, Any]) -> str:
    """A short run name from its changes: 'beta=4, seed=1' ('' for none)."""
    def text(value: Any) -> str:
        if isinstance(value, (tuple, list)):
            return "x".join(str(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k}={text(v)}" for k, v in changes.items()
                     if k != "binarization" or "likelihood" not in changes)

