"""Exports, mixed into the main window: the latents, the curves, the plane and the manifold,
each to a file the user picks (explorer.qt.export writes them); a failure is told, not raised.
"""

from __future__ import annotations

import math
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

MOSAIC_EXPORT_SIDE = 512  # px: the manifold PNG is upscaled (pixel-exact) to at least this


class ExportActions:
    """Mixed into MainWindow: exports what its views and newest results show."""

    latents_dialog: QProgressDialog | None = None

    def export_history(self, path: str) -> None:
        p = self.progress
        if p is None:
            raise ValueError(f"{path}: no history to export yet")
        export_history_csv(path, p.train, p.heldout, p.logpx)

    def export_latents(self, path: str) -> None:
        """The latents CSV, computed here (scripts); the menu uses ``start_latents_export``."""
        if self.snapshot is None:
            raise ValueError(f"{path}: no latents to export yet (the first snapshot is coming)")
        export_latents_csv(path, self.dataset, self.snapshot)

    def start_latents_export(self, path: str) -> None:
        """Compute the latents CSV's ELBOs in a background job with a progress dialog
        (Cancel stops it, writing nothing); the newest snapshot's frozen model is used."""
        if self.snapshot is None:
            raise ValueError(f"{path}: no latents to export yet (the first snapshot is coming)")
        check_latents(self.dataset, self.snapshot)
        self._close_latents_dialog()
        job = self._latents_job()
        dialog = self.latents_dialog = QProgressDialog(
            "Computing each datapoint's ELBO for the latents CSV\u2026", "Cancel", 0,
            len(self.dataset), self)
        dialog.setWindowTitle("Export latents CSV")
        dialog.setMinimumDuration(300)
        dialog.canceled.connect(job.cancel)
        dialog.canceled.connect(lambda: self.statusBar().showMessage(
            "Export latents CSV: cancelled, nothing written", 5000))
        self._latents_path = path
        job.submit(latents_csv_job, path, self.dataset, self.snapshot.model)

    def latents_export_busy(self) -> bool:
        return self._latents_job().busy()

    def _latents_job(self) -> JobLane:
        if getattr(self, "_latents_lane", None) is None:
            self._latents_lane = JobLane(self)
            self._latents_lane.progress.connect(self._on_latents_progress)
            self._latents_lane.done.connect(self._on_latents_written)
            self._latents_lane.failed.connect(self._on_latents_failed)
        return self._latents_lane

    def _on_latents_progress(self, value) -> None:
        done, total = value
        if self.latents_dialog is not None:
            self.latents_dialog.setMaximum(total)
            self.latents_dialog.setValue(done)

    def _close_latents_dialog(self) -> None:
        if self.latents_dialog is not None:
            self.latents_dialog.canceled.disconnect()
            self.latents_dialog.close()
            self.latents_dialog.deleteLater()
            self.latents_dialog = None

    def _on_latents_written(self, path) -> None:
        self._close_latents_dialog()
        self.statusBar().showMessage(f"Export latents CSV: written to {path}", 5000)

    def _on_latents_failed(self, message: str) -> None:
        self._close_latents_dialog()
        self.tell("Export latents CSV", f"{self._latents_path}: {message}")

    def shutdown_exports(self) -> None:
        """Stop a running export and wait for its thread (the window's shutdown)."""
        if getattr(self, "_latents_lane", None) is not None:
            self._latents_lane.cancel_and_wait()
        self._close_latents_dialog()

    def export_manifold(self, path: str) -> None:
        mosaic = self.manifold_view.mosaic()
        side = 1 if mosaic is None else max(mosaic.shape)
        scale = max(1, min(MAX_MOSAIC_SCALE, math.ceil(MOSAIC_EXPORT_SIDE / side)))
        export_mosaic_png(path, mosaic, scale=scale)

    def _export(self, title: str, default_name: str, file_filter: str,
                write: Callable[[str], object], started: bool = False) -> None:
        """``started``: ``write`` only starts a background job, which reports itself."""
        path = self._save_file_name(title, default_name, file_filter)
        if not path:
            return
        try:
            write(path)
        except (OSError, ValueError) as exc:
            text = str(exc)
            self.tell(title, text if str(path) in text else f"{path}: {text}")
            return
        if not started:
            self.statusBar().showMessage(f"{title}: written to {path}", 5000)

    def _export_history_dialog(self) -> None:
        self._export("Export history CSV", "history.csv", "CSV files (*.csv)",
                     self.export_history)

    def _export_latents_dialog(self) -> None:
        self._export("Export latents CSV", "latents.csv", "CSV files (*.csv)",
                     self.start_latents_export, started=True)

    def _export_plane_png_dialog(self) -> None:
        self._export("Export latent plane PNG", "latent-plane.png", "PNG images (*.png)",
                     lambda path: export_plane_png(path, self.latent_view))

    def _export_plane_svg_dialog(self) -> None:
        self._export("Export latent plane SVG", "latent-plane.svg", "SVG images (*.svg)",
                     lambda path: export_plane_svg(path, self.latent_view))

    def _export_manifold_dialog(self) -> None:
        self._export("Export manifold PNG", "manifold.png", "PNG images (*.png)",
                     self.export_manifold)
