"""The manifold view: decoded images tiled over a grid of z, shown as one image.

"prior" mode is Kingma & Welling's figure: an n x n grid on the unit square (cell centres,
(i + 0.5) / n) pushed through the inverse standard-normal CDF. "view" mode tiles the region in
view on the latent plane, corner to corner. z2 increases upward, as on the plane.
Redraws are coalesced by a single-shot timer to at most ``MAX_REDRAWS_PER_SECOND``, and wait
while the view cannot be seen (closed, or behind another dock's tab: explorer.qt.views.when_shown),
so live updates never slow training.
"""

from __future__ import annotations

import time
from statistics import NormalDist

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from explorer.qt.paint_guard import guarded
from explorer.qt.views.when_shown import WhenShown

MODES = ("prior", "view")
MODE_TITLES = {"prior": "Prior grid (inverse normal CDF)", "view": "Region in view"}
MAX_REDRAWS_PER_SECOND = 2.0
DEFAULT_GRID = 15
MAX_GRID = 40


def prior_axis(n: int) -> np.ndarray:
    """n cell centres of the unit interval through the inverse standard-normal CDF, ascending."""
    inv = NormalDist().inv_cdf
    return np.array([inv((i + 0.5) / n) for i in range(n)])


def grid_z(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(n_rows, n_cols, 2) z values in display order: top row has the largest z2."""
    zx, zy = np.meshgrid(xs, ys[::-1])
    return np.stack([zx, zy], axis=-1)


def tile(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows*cols, H, W) grey or (rows*cols, H, W, 3) RGB images in row-major order -> one
    (rows*H, cols*W) or (rows*H, cols*W, 3) mosaic."""
    h, w, extra = images.shape[1], images.shape[2], images.shape[3:]
    return (images.reshape(rows, cols, h, w, *extra).swapaxes(1, 2)
            .reshape(rows * h, cols * w, *extra))


class ManifoldView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._frozen = None
        self._mode = "prior"
        self._n = DEFAULT_GRID
        self._region = (-3.0, 3.0, -3.0, 3.0)
        self._mosaic: np.ndarray | None = None
        self._z: np.ndarray | None = None
        self._pending = False
        self._last_draw = -1e9  # monotonic seconds of the last redraw
        self.lift = None  # view point (n, 2) -> z (n, D) above 2-D (plane_view.PlaneData)
        self.redraws = 0  # how many mosaics were decoded (for tests and benchmarks)
        self._when_shown = WhenShown(self)

        self.mode_box = QComboBox()
        for mode in MODES:
            self.mode_box.addItem(MODE_TITLES[mode], mode)
        self.grid_box = QSpinBox()
        self.grid_box.setRange(2, MAX_GRID)
        self.grid_box.setValue(self._n)
        self.grid_box.setPrefix("grid ")
        self.grid_box.setToolTip("Tiles per side")
        self.caption = QLabel()
        controls = QHBoxLayout()
        controls.addWidget(self.mode_box, 1)
        controls.addWidget(self.grid_box)

        self.plot = pg.PlotWidget()
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMenuEnabled(False)
        vb = self.plot.plotItem.vb
        vb.setAspectLocked(True)
        vb.invertY(True)  # mosaic row 0 (largest z2) at the top
        vb.setMouseEnabled(False, False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        # Thin lines between tiles: without them, neighbouring digits run together.
        self.separators = pg.PlotCurveItem(connect="pairs", pen=pg.mkPen((90, 90, 90), width=1))
        self.plot.addItem(self.separators)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(controls)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.caption)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._on_timer)
        self.mode_box.currentIndexChanged.connect(
            lambda i: self.set_mode(self.mode_box.itemData(i)))
        self.grid_box.valueChanged.connect(self.set_grid_size)

    # ---- inputs -----------------------------------------------------------------------------

    def set_model(self, frozen) -> None:
        """A decoder with ``decode_mean(z) -> (n, H, W)`` or ``(n, H, W, 3)``
        (trainer.FrozenVAE)."""
        self._frozen = frozen
        self._request()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"manifold mode must be one of {MODES}, got {mode!r}")
        self._mode = mode
        self.mode_box.blockSignals(True)
        self.mode_box.setCurrentIndex(MODES.index(mode))
        self.mode_box.blockSignals(False)
        self._request()

    def set_view_region(self, xmin: float, xmax: float, ymin: float, ymax: float) -> None:
        self._region = (float(xmin), float(xmax), float(ymin), float(ymax))
        if self._mode == "view":
            self._request()

    def set_grid_size(self, n: int) -> None:
        if not 2 <= n <= MAX_GRID:
            raise ValueError(f"grid size must be between 2 and {MAX_GRID}, got {n!r}")
        self._n = int(n)
        self.grid_box.blockSignals(True)
        self.grid_box.setValue(self._n)
        self.grid_box.blockSignals(False)
        self._request()

    def mode(self) -> str:
        return self._mode

    # ---- outputs ----------------------------------------------------------------------------

    def grid_z(self) -> np.ndarray:
        """The z of every tile, (n, n, 2), in display order (top row = largest z2)."""
        if self._mode == "prior":
            axis = prior_axis(self._n)
            return grid_z(axis, axis)
        x0, x1, y0, y1 = self._region
        return grid_z(np.linspace(x0, x1, self._n), np.linspace(y0, y1, self._n))

    def mosaic(self) -> np.ndarray | None:
        """The tiled image, (n*H, n*W) grey or (n*H, n*W, 3) RGB, top row first; draws now
        if a redraw is pending."""
        if self._pending:
            self._redraw()
        return self._mosaic

    def redraw_scheduled(self) -> bool:
        """Whether a throttled redraw waits on its timer."""
        return self._timer.isActive()

    # ---- throttled drawing ------------------------------------------------------------------

    def _request(self) -> None:
        self._pending = True
        if not self._timer.isActive():
            wait = self._last_draw + 1.0 / MAX_REDRAWS_PER_SECOND - time.monotonic()
            self._timer.start(max(0, int(wait * 1000)))

    def _on_timer(self) -> None:
        # Hidden (closed, or behind another dock's tab): the request waits until shown.
        if self._pending:
            self._when_shown.run("mosaic", self._redraw_if_pending)

    def _redraw_if_pending(self) -> None:
        if self._pending:
            self._redraw()

    @guarded()
    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        if self._pending:
            self._request()

    def _redraw(self) -> None:
        self._pending = False
        if self._frozen is None:
            return
        self._last_draw = time.monotonic()
        z = self.grid_z()
        rows, cols = z.shape[:2]
        flat = z.reshape(-1, 2)
        if self.lift is not None:  # a view of a bigger latent: each cell's z lifted
            flat = self.lift(flat)
        images = np.asarray(self._frozen.decode_mean(flat.astype(np.float32)))
        self._z = z
        self._mosaic = tile(images, rows, cols)
        # Fixed levels: pixel means live in [0, 1], and autoscaling would flicker.
        self.image.setImage(self._mosaic, levels=(0.0, 1.0), autoLevels=False)
        h, w = images.shape[1:3]
        xs = np.arange(1, cols) * w
        ys = np.arange(1, rows) * h
        self.separators.setData(
            np.concatenate([np.repeat(xs, 2), np.tile([0, cols * w], len(ys))]),
            np.concatenate([np.tile([0, rows * h], len(xs)), np.repeat(ys, 2)]))
        self.redraws += 1
        self.caption.setText(
            f"z1 {z[0, 0, 0]:.2f} \u2026 {z[0, -1, 0]:.2f},  "
            f"z2 {z[-1, 0, 1]:.2f} \u2026 {z[0, 0, 1]:.2f}  (decoder mean)")
