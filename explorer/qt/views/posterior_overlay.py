"""One datapoint's inference drawn on the latent plane.

Beneath: the exact posterior p(z|x_i) as filled contours (an ImageItem of highest-density
bands holding 50 / 90 / 99 % of the mass, placed on the grid's extent) with an outline at
each band. Above: the encoder's q ellipse, axis-aligned because q is diagonal, with a
draggable centre (mu_i) and two draggable axis handles (sigma_i): dragging them moves
lambda_i = (mu_i, sigma_i) by hand and emits ``qDragged``. After "optimise this point": the
best diagonal q* (dashed) and the best full-covariance Gaussian (dotted, rotated).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QTransform

from explorer.qt.paint_guard import guarded
from explorer.qt.views.legend import BELOW_PLOT, OutsideLegend

CONTOUR_CELLS = 64  # cells per side of the grid the outlines are traced on
MASS_LEVELS = (0.5, 0.9, 0.99)  # highest-density regions drawn, by the mass they hold
BAND_ALPHA = (150, 95, 45)  # fill opacity of the 50, 90 and 99 % bands
POSTERIOR_COLOUR = QColor(255, 140, 40)
Q_COLOUR = QColor(80, 220, 255)
OPTIMUM_COLOUR = QColor(120, 255, 120)
FULL_COLOUR = QColor(255, 90, 200)
Z_IMAGE = 8  # over LatentView's dots and ellipses (which would hide it), translucent
Z_ELLIPSES = 20  # over everything LatentView draws
MIN_SIGMA = 1e-3  # an axis handle dragged onto the centre stops here
SEGMENTS = 96


def hpd_thresholds(mass: np.ndarray, levels=MASS_LEVELS) -> np.ndarray:
    """Cell-mass thresholds t_p such that the cells with mass >= t_p hold (just) p of it."""
    m = np.sort(mass.ravel())[::-1]
    cum = np.cumsum(m) / m.sum()
    idx = np.minimum(np.searchsorted(cum, levels), len(m) - 1)
    return m[idx]


def band_image(mass: np.ndarray, levels=MASS_LEVELS) -> np.ndarray:
    """0 outside every region, k for the k-th narrowest region counted from the widest:
    the 50 % region gets len(levels), the 99 % ring 1."""
    t = hpd_thresholds(mass, levels)
    bands = np.zeros(mass.shape, np.uint8)
    for k, thr in enumerate(t[::-1], start=1):  # widest (99 %) first
        bands[mass >= thr] = k
    return bands


def band_lut(colour: QColor = POSTERIOR_COLOUR, alphas=BAND_ALPHA) -> np.ndarray:
    """RGBA table for band_image: transparent outside, more opaque towards the mode."""
    lut = np.zeros((len(alphas) + 1, 4), np.uint8)
    for k, a in enumerate(alphas[::-1], start=1):
        lut[k] = (colour.red(), colour.green(), colour.blue(), a)
    return lut


def ellipse_points(mean, cov, k: float, segments: int = SEGMENTS) -> tuple[np.ndarray, np.ndarray]:
    """The k-sigma outline of N(mean, cov): the unit circle through cov's eigen-decomposition,
    so a full covariance gives a rotated ellipse."""
    values, vectors = np.linalg.eigh(np.asarray(cov, np.float64))
    t = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    circle = np.stack((np.cos(t), np.sin(t)))
    pts = vectors @ (k * np.sqrt(np.maximum(values, 0.0))[:, None] * circle)
    return mean[0] + pts[0], mean[1] + pts[1]


class PosteriorOverlay(QObject):
    """Items on a given PlotItem; ``clear()`` hides them, ``remove()`` takes them off."""

    qDragged = Signal(object, object)  # mean (2,), sigma (2,): while a handle moves
    qDragFinished = Signal(object, object)

    def __init__(self, plot_item: pg.PlotItem, parent: QObject | None = None):
        super().__init__(parent)
        self.plot_item = plot_item
        self.level = 1.0  # the q ellipse and its axis handles sit at level * sigma
        self.mean: np.ndarray | None = None
        self.sigma: np.ndarray | None = None
        self.grid = None
        self._syncing = False

        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(band_lut())
        self.image.setZValue(Z_IMAGE)
        self.isocurves = [pg.IsocurveItem(level=0.0, axisOrder="row-major",
                                          pen=pg.mkPen(POSTERIOR_COLOUR, width=1.2))
                          for _ in MASS_LEVELS]
        for curve in self.isocurves:
            curve.setParentItem(self.image)  # drawn in the image's cell coordinates
        self.q_curve = pg.PlotCurveItem(pen=pg.mkPen(Q_COLOUR, width=2))
        self.optimum_curve = pg.PlotCurveItem(
            pen=pg.mkPen(OPTIMUM_COLOUR, width=2, style=Qt.PenStyle.DashLine))
        self.full_curve = pg.PlotCurveItem(
            pen=pg.mkPen(FULL_COLOUR, width=2, style=Qt.PenStyle.DotLine))
        self.centre_handle = pg.TargetItem(size=14, symbol="o", pen=pg.mkPen(Q_COLOUR, width=2),
                                           brush=pg.mkBrush(0, 0, 0, 120))
        self.axis_handles = [pg.TargetItem(size=11, symbol="s", pen=pg.mkPen(Q_COLOUR, width=2),
                                           brush=pg.mkBrush(Q_COLOUR))
                             for _ in range(2)]
        self._items = [self.image, self.q_curve, self.optimum_curve, self.full_curve,
                       self.centre_handle, *self.axis_handles]
        for z, item in enumerate(self._items):
            if item is not self.image:
                item.setZValue(Z_ELLIPSES + z)
            plot_item.addItem(item, ignoreBounds=True)

        # Below the plot, never over the z crosshair or the ellipses.
        self.legend = OutsideLegend(plot_item, BELOW_PLOT)
        self._legend_sample = pg.PlotDataItem(pen=pg.mkPen(POSTERIOR_COLOUR, width=6))
        self._legend_rows = {  # item -> [name, shown]
            self._legend_sample: ["exact p(z|x): 50 / 90 / 99 % of its mass", False],
            self.q_curve: ["q(z|x) from the encoder: drag centre or axes", False],
            self.optimum_curve: ["q*: best diagonal Gaussian", False],
            self.full_curve: ["best full-covariance Gaussian", False],
        }

        self.centre_handle.sigPositionChanged.connect(self._on_centre_moved)
        self.centre_handle.sigPositionChangeFinished.connect(self._on_drag_finished)
        for h in self.axis_handles:
            h.sigPositionChanged.connect(self._on_axis_moved)
            h.sigPositionChangeFinished.connect(self._on_drag_finished)
        # LatentView claims every left press on the plane for picking and decoding; a press
        # on one of our handles must reach the scene instead, so the handle can be dragged.
        self._view = plot_item.scene().views()[0] if plot_item.scene() else None
        if self._view is not None:
            self._view.viewport().installEventFilter(self)
        self.clear()

    # ---- content ----------------------------------------------------------------------------

    def set_posterior(self, grid) -> None:
        """Draw a trainer.PosteriorGrid (or None to hide it)."""
        self.grid = grid
        if grid is None:
            self.image.hide()
            self._set_legend_row(self._legend_sample, False)
            return
        # An adaptive grid may be 32 x 32 cells: draw its contours from a smooth 128 x 128
        # interpolation of the same posterior.
        shown = grid.for_display()
        mass = shown.mass
        self.image.setImage(band_image(mass), autoLevels=False, levels=(0, len(MASS_LEVELS)))
        x0, x1, y0, y1 = shown.extent
        self.image.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        # pyqtgraph's isocurve (extendToEdge) already puts cell i's centre at i + 0.5. Its
        # marching squares costs ~4x more at 128 x 128 than at 64 x 64 (measured 25-50 ms
        # against 8-16): the outlines come from a 64 x 64 copy, interpolated as smoothly.
        lines = grid.for_display(CONTOUR_CELLS).mass
        to_image_cells = QTransform.fromScale(mass.shape[1] / lines.shape[1],
                                              mass.shape[0] / lines.shape[0])
        for curve, thr in zip(self.isocurves, hpd_thresholds(lines), strict=True):
            curve.setTransform(to_image_cells)
            curve.setData(lines, level=float(thr))
        self.image.show()
        self._set_legend_row(self._legend_sample, True)

    def set_q(self, mean, sigma) -> None:
        """Place the encoder's q (no signal)."""
        self.mean = np.asarray(mean, np.float64).reshape(2).copy()
        self.sigma = np.asarray(sigma, np.float64).reshape(2).copy()
        self._sync_items()
        for item in (self.q_curve, self.centre_handle, *self.axis_handles):
            item.show()
        self._set_legend_row(self.q_curve, True)

    def set_optimum(self, diagonal=None, full=None) -> None:
        """Draw q* and the full-covariance optimum (trainer.GaussianFit each, or None)."""
        for curve, fit in ((self.optimum_curve, diagonal), (self.full_curve, full)):
            if fit is None:
                curve.setData([], [])
                curve.hide()
            else:
                curve.setData(*ellipse_points(fit.mean, fit.cov, self.level))
                curve.show()
            self._set_legend_row(curve, fit is not None)
        self._optimum = (diagonal, full)

    def set_sigma_level(self, k: float) -> None:
        self.level = float(k)
        if self.mean is not None:
            self._sync_items()
        self.set_optimum(*getattr(self, "_optimum", (None, None)))

    def clear(self) -> None:
        self.mean = self.sigma = None
        self.set_posterior(None)
        self.set_optimum(None, None)
        for item in (self.q_curve, self.centre_handle, *self.axis_handles):
            item.hide()
        self._set_legend_row(self.q_curve, False)

    def remove(self) -> None:
        """Take every item off the plot (the overlay is not used again)."""
        if self._view is not None:
            self._view.viewport().removeEventFilter(self)
            self._view = None
        for item in self._items:
            self.plot_item.removeItem(item)
        self.legend.detach()

    def visible_items(self) -> list:
        return [i for i in self._items if i.isVisible()]

    # ---- dragging ---------------------------------------------------------------------------

    def _sync_items(self) -> None:
        """Ellipse and handles from (mean, sigma), without re-entering the drag handlers."""
        m, s, k = self.mean, self.sigma, self.level
        self._syncing = True
        try:
            self.q_curve.setData(*ellipse_points(m, np.diag(s ** 2), k))
            self.centre_handle.setPos(float(m[0]), float(m[1]))
            self.axis_handles[0].setPos(float(m[0] + k * s[0]), float(m[1]))
            self.axis_handles[1].setPos(float(m[0]), float(m[1] + k * s[1]))
        finally:
            self._syncing = False

    def _on_centre_moved(self, handle) -> None:
        if self._syncing or self.mean is None:
            return
        p = handle.pos()
        self.mean = np.array([p.x(), p.y()])
        self._sync_items()
        self.qDragged.emit(self.mean.copy(), self.sigma.copy())

    def _on_axis_moved(self, handle) -> None:
        if self._syncing or self.mean is None:
            return
        axis = self.axis_handles.index(handle)
        p = handle.pos()
        along = (p.x(), p.y())[axis] - self.mean[axis]
        self.sigma[axis] = max(MIN_SIGMA, abs(along) / self.level)
        self._sync_items()  # the handle snaps back onto its axis
        self.qDragged.emit(self.mean.copy(), self.sigma.copy())

    def _on_drag_finished(self, handle) -> None:
        if self.mean is not None:
            self.qDragFinished.emit(self.mean.copy(), self.sigma.copy())

    @guarded(False)
    def eventFilter(self, obj, ev) -> bool:
        if (ev.type() == QEvent.Type.MouseButtonPress
                and ev.button() == Qt.MouseButton.LeftButton and self._view is not None
                and self.centre_handle.isVisible()):
            scene_pos = self._view.mapToScene(ev.position().toPoint())
            handles = (self.centre_handle, *self.axis_handles)
            if any(h in handles for h in self._view.scene().items(QPointF(scene_pos))):
                # pyqtgraph's own press handling, skipping LatentView's picking override.
                pg.GraphicsView.mousePressEvent(self._view, ev)
                return True
        return False

    def _set_legend_row(self, item, visible: bool) -> None:
        row = self._legend_rows[item]
        if row[1] == visible:
            return
        row[1] = visible
        self.legend.set_items([(sample, name) for sample, (name, shown)
                               in self._legend_rows.items() if shown])
        self.legend.setVisible(any(shown for _, shown in self._legend_rows.values()))
