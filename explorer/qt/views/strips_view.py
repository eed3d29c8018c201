"""Decoded strips: the selected point's latent traversals (one row per dimension) and the
interpolation between two shift-clicked points (linear and spherical rows), each shown as
one mosaic (grey or RGB, as the data) and exportable as PNG
(explorer.qt.export.export_mosaic_png)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QFileDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from explorer.core.latent_paths import interpolation_z, traversal_z
from explorer.qt.export import export_mosaic_png, mosaic_image
from explorer.qt.views.image_panel import to_qimage

SHOWN_SCALE = 2  # screen pixels per decoded pixel


def tile_rows(images: np.ndarray) -> np.ndarray:
    """(rows, cols, H, W) grey or (rows, cols, H, W, 3) RGB -> one (rows*H, cols*W) or
    (rows*H, cols*W, 3) mosaic."""
    rows, cols, h, w = images.shape[:4]
    return images.swapaxes(1, 2).reshape(rows * h, cols * w, *images.shape[4:])


class MosaicStrip(QWidget):
    """One decoded mosaic with a caption and an Export PNG button."""

    def __init__(self, title: str, empty_text: str, parent=None):
        super().__init__(parent)
        self.title = title
        self.empty_text = empty_text
        self.mosaic: np.ndarray | None = None
        layout = QVBoxLayout(self)
        self.caption = QLabel(empty_text)
        self.caption.setWordWrap(True)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.export_button = QPushButton(f"Export {title.lower()} PNG\u2026")
        self.export_button.setEnabled(False)
        self.export_button.setToolTip(f"Save the {title.lower()} mosaic as a PNG")
        self.export_button.clicked.connect(self.ask_export)
        for w in (self.caption, self.picture, self.export_button):
            layout.addWidget(w)

    def show_mosaic(self, mosaic: np.ndarray, caption: str) -> None:
        self.mosaic = np.asarray(mosaic, np.float32)
        image = to_qimage(mosaic_image(self.mosaic, SHOWN_SCALE))
        self.picture.setPixmap(QPixmap.fromImage(image))
        self.caption.setText(caption)
        self.export_button.setEnabled(True)

    def clear(self) -> None:
        self.mosaic = None
        self.picture.clear()
        self.caption.setText(self.empty_text)
        self.export_button.setEnabled(False)

    def export(self, path: str, scale: int = 4):
        return export_mosaic_png(path, self.mosaic, scale)

    def ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export {self.title.lower()}",
                                              f"{self.title.lower()}.png", "PNG (*.png)")
        if path:
            try:
                self.export(path)
                self.caption.setText(f"{self.caption.text()}\nSaved {path}")
            except (OSError, ValueError) as exc:
                self.caption.setText(f"Not saved: {exc}")


class StripsView(QWidget):
    """Traversals of the selected point and an interpolation between two points."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.traversal = MosaicStrip("Traversal", "Select a point: one row of decodes per "
                                     "latent dimension, swept over the aggregate "
                                     "posterior's mean \u00b1 2 sd")
        self.interpolation = MosaicStrip("Interpolation", "Shift-click two points: decodes "
                                         "on the straight line between their \u03bc (top) "
                                         "and along the prior's great circle (bottom)")
        layout.addWidget(self.traversal)
        layout.addWidget(self.interpolation)
        layout.addStretch(1)
        self.ends: list[int] = []  # the shift-clicked datapoints, at most two
        self.setToolTip("Decoded strips: the selected point's traversals, and the path "
                        "between two shift-clicked points")

    def show_traversal(self, model, index: int, mu: np.ndarray, sigma: np.ndarray) -> None:
        """Row d: mu_index with z_d swept over the aggregate range of every (mu, sigma)."""
        grid, values = traversal_z(mu[index], mu, sigma)
        d, k = grid.shape[:2]
        images = model.decode_mean(grid.reshape(-1, d).astype(np.float32))
        self.traversal.show_mosaic(tile_rows(images.reshape(d, k, *images.shape[1:])),
                                   f"Traversal of #{index}: row d sweeps z_d over the "
                                   "aggregate posterior's mean \u00b1 2 sd, left to right; "
                                   f"the other {d - 1} stay at \u03bc_i (decoder mean)")

    def add_end(self, model, index: int, mu: np.ndarray) -> None:
        """A shift-clicked point: with two, the strip between them."""
        self.ends = (self.ends + [int(index)])[-2:]
        if len(self.ends) < 2:
            self.interpolation.caption.setText(f"#{index} picked: shift-click a second point")
            return
        self.show_interpolation(model, mu)

    def show_interpolation(self, model, mu: np.ndarray) -> None:
        a, b = self.ends
        paths = interpolation_z(mu[a], mu[b])
        rows = np.stack([paths["linear"], paths["spherical"]])  # (2, k, D)
        k, d = rows.shape[1:]
        images = model.decode_mean(rows.reshape(-1, d).astype(np.float32))
        self.interpolation.show_mosaic(tile_rows(images.reshape(2, k, *images.shape[1:])),
                                       f"#{a} \u2192 #{b}: top linear, bottom spherical "
                                       f"(great circle), {k} steps (decoder mean)")
