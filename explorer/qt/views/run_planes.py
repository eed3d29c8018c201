"""Several runs' latent planes side by side, each titled by its run's name, colour and state.

The first plane is the window's full plane (colourings, density layer, trails, the
inspector's overlay, encoded images) and always shows the current run, framed in its
colour; the others show the remaining runs' means and ellipses, in run order. Pressing
anywhere on a plane asks for its run to become current (``activated``); a click on a dot
selects that datapoint as well, in every plane (the window links them through the state).
"""

from __future__ import annotations

import html

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from explorer.core.inference_view import plane_latents, plane_statement
from explorer.core.plane_view import default_choice, plane_data
from explorer.core.state import Run
from explorer.qt.views.latent_view import LatentView


def run_status(run: Run) -> str:
    """'step 1,200, paused, held-out ELBO -31.2 nats, KL 5.1 nats' (the run's echoes)."""
    if run.failure is not None:
        return "stopped: " + run.failure
    p = run.progress
    if p is None:
        return "building the model"
    parts = [f"step {p.step:,}", "training" if run.running else "paused"]
    numbers = run.heldout()
    if "elbo" in numbers:
        parts.append(f"held-out ELBO {numbers['elbo']:.2f} nats")
    if "kl" in numbers:
        parts.append(f"KL {numbers['kl']:.2f} nats")
    return ", ".join(parts)


class RunPlane(QFrame):
    """One run's plane under a title line; ``bind`` points it at another run."""

    activated = Signal(object)  # Run

    def __init__(self, view: LatentView, primary: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = view
        self.primary = primary
        self.run: Run | None = None
        self.framed = False  # titled and framed: only when several runs are shown
        self.title = QLabel()
        self.title.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(3, 3, 3, 3)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(view, 1)
        view.viewport().installEventFilter(self)
        self.setObjectName("run-plane")

    def bind(self, run: Run) -> None:
        if run is self.run:
            return
        self.unbind()
        self.run = run
        for signal in self._title_signals(run):
            signal.connect(self.retitle)
        if not self.primary:  # the window draws the full plane itself
            run.snapshot_changed.connect(self._draw)
            self.view.set_dataset(run.dataset.labels, run.dataset.label_names)
            if run.snapshot is not None:
                self._draw(run.snapshot)
        self.retitle()

    def unbind(self) -> None:
        if self.run is not None:
            for signal in self._title_signals(self.run):
                signal.disconnect(self.retitle)
            if not self.primary:
                self.run.snapshot_changed.disconnect(self._draw)
        self.run = None

    @staticmethod
    def _title_signals(run: Run) -> tuple:
        """The run's echoes the title line shows."""
        return (run.progress_changed, run.name_changed, run.failure_changed,
                run.running_changed)

    def _draw(self, snapshot) -> None:
        # Above 2-D, each side plane shows its own run's default view (PCA of its mu).
        mu, sigma, starts = plane_latents(snapshot)  # semi: the refined q
        plane = plane_data(default_choice(mu.shape[1]), mu, sigma)
        self.view.set_latents(plane.means, plane.extents,
                              plane.ellipses() if plane.rotated else None,
                              starts=None if starts is None else plane.to_view(starts))
        self.view.set_view_titles(*plane.axis_titles, "" if mu.shape[1] == 2
                                  else plane.text.split(":")[0])
        self.view.set_caption(plane_statement(snapshot.config))

    def retitle(self, *_) -> None:
        run = self.run
        if run is None:
            return
        current = " (current: the Training panel drives it)" if self.primary else ""
        self.title.setText(f"<span style='color:{run.colour}'>&#9632;</span> "
                           f"<b>{html.escape(run.name)}</b>{current}: "
                           f"{html.escape(run_status(run))}")
        width = 3 if self.primary else 1
        colour = run.colour if self.primary else "palette(mid)"
        self.title.setVisible(self.framed)
        sheet = f"QFrame#run-plane {{ border: {width}px solid {colour}; }}" if self.framed else ""
        if sheet != self.styleSheet():  # a sheet set again re-polishes the plane's widgets
            self.setStyleSheet(sheet)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.MouseButtonPress and self.run is not None:
            # After the plane has handled the press (select, decode) on this run's dots:
            # becoming current rebinds the planes.
            run = self.run
            QTimer.singleShot(0, lambda: self.activated.emit(run))
        return False


class RunPlanes(QWidget):
    """The planes in a grid: one alone, two side by side, three or four in two rows."""

    def __init__(self, primary: RunPlane, parent: QWidget | None = None):
        super().__init__(parent)
        self.primary = primary
        self.others: list[RunPlane] = []
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(4)
        self._arrange()

    def planes(self) -> list[RunPlane]:
        return [self.primary, *self.others]

    def show_runs(self, current: Run, runs: tuple[Run, ...]) -> list[RunPlane]:
        """The current run in the primary plane, the others in run order; returns the
        planes made for runs that had none (the caller connects their intents)."""
        rest = [r for r in runs if r is not current]
        made = []
        while len(self.others) < len(rest):
            plane = RunPlane(LatentView())
            self.others.append(plane)
            made.append(plane)
        while len(self.others) > len(rest):
            plane = self.others.pop()
            plane.unbind()
            self._grid.removeWidget(plane)
            plane.deleteLater()
        for plane in self.planes():
            plane.framed = bool(rest)  # one run: nothing to tell apart
        self.primary.bind(current)
        for plane, run in zip(self.others, rest, strict=True):
            plane.bind(run)
        for plane in self.planes():
            plane.retitle()
        self._arrange()
        return made

    def _arrange(self) -> None:
        planes = self.planes()
        columns = 1 if len(planes) == 1 else 2
        for k, plane in enumerate(planes):
            self._grid.addWidget(plane, k // columns, k % columns)
