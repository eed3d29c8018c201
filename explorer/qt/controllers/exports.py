"""Exports: the latents, the curves, the plane and the manifold, each to a file the user picks
(explorer.qt.export writes them atomically); a failure is told, not raised. The latents CSV's
ELBOs are computed off the GUI thread, with a progress dialog and Cancel.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from PySide6.QtWidgets import QProgressDialog

from explorer.qt.export import (
    MAX_MOSAIC_SCALE,
    check_latents,
    export_history_csv,
    export_latents_csv,
    export_mosaic_png,
    export_plane_png,
    export_plane_svg,
    latents_csv_job,
)
from explorer.qt.jobs import JobLane
from explorer.qt.views.latent_view import LatentView
from explorer.qt.views.manifold_view import ManifoldView

MOSAIC_EXPORT_SIDE = 512  # px: the manifold PNG is upscaled (pixel-exact) to at least this


def file_stem(name: str) -> str:
    """A run's name as part of a file name: 'beta=4, seed=1' -> 'beta=4-seed=1'."""
    return re.sub(r"[^A-Za-z0-9=._-]+", "-", name).strip("-") or "run"


class ExportsController:
    """Exports what the plane, the manifold and the current run's newest results show."""

    def __init__(self, window, plane: LatentView, manifold: ManifoldView):
        self.window = window
        self.state = window.state
        self.plane = plane
        self.manifold = manifold
        self.progress_dialog: QProgressDialog | None = None  # the latents CSV's, while it runs
        self._latents_path = ""
        self._job = JobLane(window)
        self._job.progress.connect(self._on_latents_progress)
        self._job.done.connect(self._on_latents_written)
        self._job.failed.connect(self._on_latents_failed)

    # ----------------------------------------------------- writers (scripts, tests)
    def export_history(self, path: str) -> None:
        p = self.state.current.progress
        if p is None:
            raise ValueError(f"{path}: no history to export yet")
        export_history_csv(path, p.train, p.heldout, p.logpx)

    def export_latents(self, path: str) -> None:
        """The latents CSV, computed in this thread (scripts); the menu uses
        ``start_latents_export``."""
        run = self.state.current
        if run.snapshot is None:
            raise ValueError(f"{path}: no latents to export yet (the first snapshot is coming)")
        export_latents_csv(path, run.dataset, run.snapshot)

    def export_manifold(self, path: str) -> None:
        mosaic = self.manifold.mosaic()
        side = 1 if mosaic is None else max(mosaic.shape)
        scale = max(1, min(MAX_MOSAIC_SCALE, math.ceil(MOSAIC_EXPORT_SIDE / side)))
        export_mosaic_png(path, mosaic, scale=scale)

    # ------------------------------------------------ the latents CSV, in the background
    def start_latents_export(self, path: str) -> None:
        """Compute the latents CSV's ELBOs in a background job with a progress dialog
        (Cancel stops it, writing nothing); the newest snapshot's frozen model is used."""
        snapshot, dataset = self.state.current.snapshot, self.state.current.dataset
        if snapshot is None:
            raise ValueError(f"{path}: no latents to export yet (the first snapshot is coming)")
        check_latents(dataset, snapshot)
        self._close_dialog()
        dialog = self.progress_dialog = QProgressDialog(
            "Computing each datapoint's ELBO for the latents CSV\u2026", "Cancel", 0,
            len(dataset), self.window)
        dialog.setWindowTitle("Export latents CSV")
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(self._job.cancel)
        dialog.canceled.connect(lambda: self.window.status(
            "Export latents CSV: cancelled, nothing written", 5000))
        self._latents_path = path
        self._job.submit(latents_csv_job, path, dataset, snapshot.model)

    def latents_export_busy(self) -> bool:
        return self._job.busy()

    def _on_latents_progress(self, value) -> None:
        done, total = value
        if self.progress_dialog is not None:
            self.progress_dialog.setMaximum(total)
            self.progress_dialog.setValue(done)

    def _close_dialog(self) -> None:
        if self.progress_dialog is not None:
            self.progress_dialog.canceled.disconnect()
            self.progress_dialog.close()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None

    def _on_latents_written(self, path) -> None:
        self._close_dialog()
        self.window.status(f"Export latents CSV: written to {path}", 5000)

    def _on_latents_failed(self, message: str) -> None:
        self._close_dialog()
        self.window.tell("Export latents CSV", f"{self._latents_path}: {message}")

    def shutdown(self) -> None:
        """Stop a running export and wait for its thread (the window's shutdown)."""
        self._job.cancel_and_wait()
        self._close_dialog()

    # ------------------------------------------------------------ the menu's entries
    def _export(self, title: str, default_name: str, file_filter: str,
                write: Callable[[str], object], started: bool = False) -> None:
        """``started``: ``write`` only starts a background job, which reports itself."""
        runs = self.state.runs
        if len(runs) > 1:  # several runs: the file is named after the one it exports
            default_name = f"{file_stem(self.state.current.name)}-{default_name}"
        path = self.window.save_file_name(title, default_name, file_filter)
        if not path:
            return
        try:
            write(path)
        except (OSError, ValueError) as exc:
            text = str(exc)
            self.window.tell(title, text if str(path) in text else f"{path}: {text}")
            return
        if not started:
            self.window.status(f"{title}: written to {path}", 5000)

    def ask_history(self) -> None:
        self._export("Export history CSV", "history.csv", "CSV files (*.csv)",
                     self.export_history)

    def ask_latents(self) -> None:
        self._export("Export latents CSV", "latents.csv", "CSV files (*.csv)",
                     self.start_latents_export, started=True)

    def ask_plane_png(self) -> None:
        self._export("Export latent plane PNG", "latent-plane.png", "PNG images (*.png)",
                     lambda path: export_plane_png(path, self.plane))

    def ask_plane_svg(self) -> None:
        self._export("Export latent plane SVG", "latent-plane.svg", "SVG images (*.svg)",
                     lambda path: export_plane_svg(path, self.plane))

    def ask_manifold(self) -> None:
        self._export("Export manifold PNG", "manifold.png", "PNG images (*.png)",
                     self.export_manifold)
