"""Several runs in one window: adding one (File > New run), making one current, the planes
side by side, the linked selection's comparison and the overlaid curves.

The window holds the AppState and the Trainers; this controller turns "new run", "this plane"
and the state's events into changes of those and of the views that show every run: the
planes grid (explorer.qt.views.run_planes), the comparison table and the ELBO overlay. The
current run's full views (Training panel, image panel, inspector...) are redrawn by the
current-run controller (explorer.qt.controllers.current_run).
"""

from __future__ import annotations

from collections.abc import Callable

from explorer.core.compare import run_q
from explorer.core.state import AppState, Run
from explorer.qt.controllers.training import Trainers, TrainingController
from explorer.qt.views.new_run_dialog import NewRunDialog
from explorer.qt.views.run_comparison import RunComparison
from explorer.qt.views.run_planes import RunPlane, RunPlanes
from trainer import Checkpoint, TrainConfig


class RunsController:
    def __init__(self, window, state: AppState, trainers: Trainers, planes: RunPlanes,
                 elbo_view, comparison: RunComparison,
                 on_current: Callable[[Run], None], on_new_controller: Callable):
        """``on_current(run)``: redraw the window's full views for the new current run.
        ``on_new_controller(controller)``: connect a new run's controller (checkpoint saves).
        """
        self.window = window
        self.state = state
        self.trainers = trainers
        self.planes = planes
        self.elbo_view = elbo_view
        self.comparison = comparison
        self._on_current = on_current
        self._on_new_controller = on_new_controller
        # Tests and scripts answer the New run dialog here: (config, name) or None.
        self.ask_new_run: Callable[[TrainConfig, str, str], tuple[TrainConfig, str] | None] = \
            self._dialog
        state.current_changed.connect(self._current_changed)
        state.selection_changed.connect(self._selection_changed)
        state.run_added.connect(self._watch)
        for run in state.runs:
            self._watch(run)
        self._connect_plane(planes.primary)
        comparison.refreshRequested.connect(self.compare)
        self._show_planes()

    # -------------------------------------------------------------- runs
    def add_run(self, config: TrainConfig, name: str | None = None, colour: str | None = None,
                checkpoint: Checkpoint | None = None) -> Run:
        """A run on the current run's dataset, paused (ValueError when four are shown)."""
        run = self.state.add_run(self.state.current.dataset, config, name, colour)
        controller = self.trainers.add(run)
        self._on_new_controller(controller)
        controller.new_worker(start_paused=True, checkpoint=checkpoint)
        self._show_planes()
        return run

    def new_run(self) -> Run | None:
        """File > New run: the dialog, prefilled from the current run's config."""
        current = self.state.current
        if len(self.state.runs) >= 4:
            self.window.tell("New run", "Four runs are shown already: the most that fit")
            return None
        answer = self.ask_new_run(current.config, current.name, self.state.schedule)
        if answer is None:
            return None
        config, name = answer
        run = self.add_run(config, name)
        self.window.status(f"New run {run.name}: paused; click its plane and press Start "
                           "(Training > Schedule sets whether runs train one at a time)", 8000)
        return run

    def drop_extra_runs(self) -> None:
        """Only the current run stays (a new dataset or session replaces the others)."""
        for run in [r for r in self.state.runs if r is not self.state.current]:
            self.trainers.remove(run)
            self.state.remove_run(run)
        self._show_planes()

    def _dialog(self, base: TrainConfig, base_name: str, schedule: str
                ) -> tuple[TrainConfig, str] | None:
        dialog = NewRunDialog(base, base_name, schedule, self.window,
                              image_shape=self.state.current.dataset.image_shape)
        self.dialog = dialog  # reachable while open (tests, scripts)
        if dialog.exec() != NewRunDialog.DialogCode.Accepted:
            return None
        return dialog.config(), dialog.name()

    def controller(self, run: Run) -> TrainingController:
        return self.trainers.of(run)

    # ---------------------------------------------------------- state events
    def _watch(self, run: Run) -> None:
        run.progress_changed.connect(self._overlay)
        run.name_changed.connect(self._overlay)

    def _current_changed(self, run: Run) -> None:
        self._show_planes()
        self._on_current(run)

    def _selection_changed(self, index: int | None) -> None:
        for plane in self.planes.others:
            plane.view.set_selected(index)
        self.compare()

    def compare(self) -> None:
        """The selected datapoint's numbers in every run that has a model (two or more)."""
        index = self.state.selected
        if index is None or len(self.state.runs) < 2:
            self.comparison.clear()
            return
        runs = [(r.name, r.colour, r.model, run_q(r.snapshot, index))
                for r in self.state.runs if r.model is not None]
        if not runs:
            self.comparison.clear()
            return
        self.comparison.compare(runs, self.state.current.dataset, index)

    def _overlay(self, *_) -> None:
        self.elbo_view.set_runs([(r.name, r.colour, r.progress.train, r.progress.heldout)
                                 for r in self.state.runs if r.progress is not None])

    # --------------------------------------------------------------- planes
    def _show_planes(self) -> None:
        for plane in self.planes.show_runs(self.state.current, self.state.runs):
            self._connect_plane(plane)
        for plane in self.planes.others:
            plane.view.set_selected(self.state.selected)
        self._overlay()

    def _connect_plane(self, plane: RunPlane) -> None:
        plane.activated.connect(self.state.set_current)
        if not plane.primary:  # the primary plane's clicks go to the window's selection
            plane.view.pointSelected.connect(self._select_from_plane)

    def _select_from_plane(self, index: int) -> None:
        self.window.selection.select_point(index)
