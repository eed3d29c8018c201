"""Exports, mixed into the main window: the latents, the curves, the plane and the manifold,
each to a file the user picks (explorer.export writes them); a failure is told, not raised.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .export import (
    MAX_MOSAIC_SCALE,
    export_history_csv,
    export_latents_csv,
    export_mosaic_png,
    export_plane_png,
    export_plane_svg,
)

MOSAIC_EXPORT_SIDE = 512  # px: the manifold PNG is upscaled (pixel-exact) to at least this


class ExportActions:
    """Mixed into MainWindow: exports what its views and newest results show."""

    def export_history(self, path: str) -> None:
        p = self.progress
        if p is None:
            raise ValueError(f"{path}: no history to export yet")
        export_history_csv(path, p.train, p.heldout, p.logpx)

    def export_latents(self, path: str) -> None:
        if self.snapshot is None:
            raise ValueError(f"{path}: no latents to export yet (the first snapshot is coming)")
        export_latents_csv(path, self.dataset, self.snapshot)

    def export_manifold(self, path: str) -> None:
        mosaic = self.manifold_view.mosaic()
        side = 1 if mosaic is None else max(mosaic.shape)
        scale = max(1, min(MAX_MOSAIC_SCALE, math.ceil(MOSAIC_EXPORT_SIDE / side)))
        export_mosaic_png(path, mosaic, scale=scale)

    def _export(self, title: str, default_name: str, file_filter: str,
                write: Callable[[str], object]) -> None:
        path = self._save_file_name(title, default_name, file_filter)
        if not path:
            return
        try:
            write(path)
        except (OSError, ValueError) as exc:
            text = str(exc)
            self.tell(title, text if str(path) in text else f"{path}: {text}")
            return
        self.statusBar().showMessage(f"{title}: written to {path}", 5000)

    def _export_history_dialog(self) -> None:
        self._export("Export history CSV", "history.csv", "CSV files (*.csv)",
                     self.export_history)

    def _export_latents_dialog(self) -> None:
        self._export("Export latents CSV", "latents.csv", "CSV files (*.csv)",
                     self.export_latents)

    def _export_plane_png_dialog(self) -> None:
        self._export("Export latent plane PNG", "latent-plane.png", "PNG images (*.png)",
                     lambda path: export_plane_png(path, self.latent_view))

    def _export_plane_svg_dialog(self) -> None:
        self._export("Export latent plane SVG", "latent-plane.svg", "SVG images (*.svg)",
                     lambda path: export_plane_svg(path, self.latent_view))

    def _export_manifold_dialog(self) -> None:
        self._export("Export manifold PNG", "manifold.png", "PNG images (*.png)",
                     self.export_manifold)
