"""Whole-dataset views on the latent plane: colour points by a per-point number, the aggregate
posterior against the prior, and trails of selected points' mu over training.

- ``PointColouring``: a "Colour points by" chooser (label, ELBO_i, inference gap, amortisation
  gap). Values are computed off the GUI thread in chunks, with progress and cancel, and handed
  to ``LatentView.set_point_values`` as they come (points not done yet are grey).
- ``AggregateDensityLayer``: (1/N) sum_i q(z|x_i) over the view region as a translucent image
  beneath the dots, with the prior's 50 / 90 / 99 % mass circles drawn over it, so holes
  (prior mass no q covers) and overlaps show.
- ``Trails``: the last K positions of selected points' mu across snapshots, one curve item.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from explorer.qt.jobs import JobLane
from trainer import aggregate_posterior_density, dataset_gaps, encoder_fit, optimise_point

# ---------------------------------------------------------------- colour points by

COLOURINGS = {
    "label": "label",
    "elbo": "ELBO_i (nats, higher is better)",
    "inference_gap": "inference gap log p(x) \u2212 ELBO_i (nats, \u2265 0)",
    "amortisation_gap": "amortisation gap ELBO* \u2212 ELBO_i (nats, \u2265 0)",
}
CHUNK = 512  # datapoints per shared grid: one progress step
# Each point's amortisation gap needs its own optimisation (~0.5 s): a fixed random sample.
AMORTISATION_POINTS = 64
AMORTISATION_SEED = 0


@dataclass
class ColouringUpdate:
    done: int
    total: int
    values: np.ndarray  # (N,), NaN where not computed (drawn grey)


def colouring_values(model, x, kind: str, chunk: int = CHUNK,
                     sample: int = AMORTISATION_POINTS) -> Iterator[ColouringUpdate]:
    """Per-point values for ``kind`` of x (N, D), yielded as they are computed; returns the
    final (N,) array. ELBO_i and the inference gap use trainer.dataset_gaps (exact log p(x)
    on a shared grid, ELBO_i by quadrature); the amortisation gap optimises a fixed sample.
    x is each datapoint's one fixed x (trainer.evidence), as the window's inputs give it."""
    x = np.asarray(x, np.float32).reshape(len(x), -1)
    n = len(x)
    values = np.full(n, np.nan)
    if kind in ("elbo", "inference_gap"):
        for s in range(0, n, chunk):
            est = dataset_gaps(model, x[s:s + chunk])
            values[s:s + chunk] = est.elbo if kind == "elbo" else est.inference_gap
            yield ColouringUpdate(min(n, s + chunk), n, values.copy())
    elif kind == "amortisation_gap":
        rng = np.random.default_rng(AMORTISATION_SEED)
        chosen = np.sort(rng.choice(n, min(n, sample), replace=False))
        for k, i in enumerate(chosen):
            best = optimise_point(model, x[i], samples=64, steps=100).diagonal.elbo
            values[i] = best - encoder_fit(model, x[i]).elbo
            yield ColouringUpdate(k + 1, len(chosen), values.copy())
    else:
        raise ValueError(f"unknown colouring {kind!r}; choose one of {list(COLOURINGS)}")
    return values


class PointColouring(QWidget):
    """The chooser. ``set_data(model, x)`` gives it the newest FrozenVAE and the dataset's
    images (N, D) in model-input form; choosing a number computes it for that model."""

    computed = Signal(str)  # the kind whose values are now all on the plane

    def __init__(self, latent_view, labels=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.latent_view = latent_view
        self.labels = labels
        self.model = None
        self.x = None  # (N, D) images, or a function returning them
        self.kind = "label"
        self.factors: dict = {}
        self._job = JobLane(self)
        self._job.progress.connect(self._on_progress)
        self._job.done.connect(self._on_done)
        self._job.failed.connect(self._on_failed)

        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Colour points by"))
        self.combo = QComboBox()
        # The long captions must not set the dock's width.
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(14)
        for key, caption in COLOURINGS.items():
            self.combo.addItem(caption, key)
        self.combo.currentIndexChanged.connect(self._on_combo)
        row.addWidget(self.combo, 1)
        layout.addLayout(row)
        row = QHBoxLayout()  # the buttons on a line of their own keep the dock narrow
        self.recompute_button = QPushButton("Recompute")
        self.recompute_button.setToolTip("Compute the values again for the newest model")
        self.recompute_button.clicked.connect(self.recompute)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.recompute_button)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.progress = QProgressBar()
        layout.addWidget(self.progress)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._idle()

    def set_data(self, model, x) -> None:
        """The model and images the next computation uses (nothing is recomputed here).
        ``x`` is the (N, D) images or a function returning them, called only when a number
        is computed: colouring by label never builds a float copy of the dataset."""
        self.model = model
        self.x = x
        if self.kind != "label" and not self._job.busy():
            self.status.setText(self.status.text().split(" (")[0]
                                + " (the model has moved on: Recompute)")

    def set_factors(self, factors: dict | None) -> None:
        """A dataset's ground-truth factors (name -> (N,) values), offered as colourings:
        does the latent recover them?"""
        self.factors = dict(factors or {})
        for i in range(self.combo.count() - 1, len(COLOURINGS) - 1, -1):
            self.combo.removeItem(i)
        for name in self.factors:
            self.combo.addItem(self.caption(f"factor:{name}"), f"factor:{name}")

    def caption(self, kind: str) -> str:
        if kind.startswith("factor:"):
            return f"factor {kind[7:]} (ground truth)"
        return COLOURINGS[kind]

    def choose(self, kind: str) -> None:
        self.combo.setCurrentIndex(max(0, self.combo.findData(kind)))  # -> _on_combo

    def _on_combo(self, index: int) -> None:
        self.kind = self.combo.itemData(index)
        self.recompute()

    def recompute(self) -> None:
        self._job.cancel()
        if self.kind.startswith("factor:"):  # known per image: nothing to compute
            values = np.asarray(self.factors[self.kind[7:]], np.float64)
            self.latent_view.set_point_values(values, self.caption(self.kind))
            self._idle()
            self.status.setText(f"{self.caption(self.kind)}: the value each image was "
                                "generated with")
            return
        if self.kind == "label" or self.model is None or self.x is None:
            self.latent_view.set_point_values(None)
            self._idle()
            return
        if getattr(self.model, "latent_dim", 2) != 2:
            self.latent_view.set_point_values(None)
            self._idle()
            self.status.setText(f"{COLOURINGS[self.kind]} needs the exact grid log p(x): "
                                "2-D latents only")
            return
        x = self.x() if callable(self.x) else self.x
        self._job.submit(colouring_values, self.model, np.asarray(x, np.float32), self.kind)
        self.progress.setRange(0, 0)  # busy until the first chunk reports
        self.progress.show()
        self.cancel_button.setEnabled(True)
        what = COLOURINGS[self.kind]
        extra = (f" for a fixed sample of {AMORTISATION_POINTS} points (others grey)"
                 if self.kind == "amortisation_gap" else "")
        self.status.setText(f"computing {what}{extra}\u2026")

    def cancel(self) -> None:
        self._job.cancel()
        self._idle()
        self.status.setText("cancelled: points not reached are grey")

    def shutdown(self, msecs: int = 30_000) -> bool:
        return self._job.cancel_and_wait(msecs)

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)

    def _idle(self) -> None:
        self.progress.hide()
        self.cancel_button.setEnabled(False)
        self.recompute_button.setEnabled(self.kind != "label")

    def _show(self, values: np.ndarray) -> None:
        self.latent_view.set_point_values(values, self.caption(self.kind))

    def _on_progress(self, update: ColouringUpdate) -> None:
        self.progress.setRange(0, update.total)
        self.progress.setValue(update.done)
        self._show(update.values)

    def _on_done(self, values: np.ndarray) -> None:
        self._show(values)
        self._idle()
        ok = np.isfinite(values)
        if ok.any():
            self.status.setText(f"{COLOURINGS[self.kind]}: mean {values[ok].mean():.3f} over "
                                f"{int(ok.sum())} points")
        self.computed.emit(self.kind)

    def _on_failed(self, message: str) -> None:
        self._idle()
        self.status.setText(f"could not compute the values: {message}")


# ---------------------------------------------------------------- aggregate posterior

AGGREGATE_N = 128  # cells per side over the view region
PRIOR_MASS_LEVELS = (0.5, 0.9, 0.99)
PRIOR_COLOUR = QColor(255, 255, 255, 200)
AGGREGATE_REFRESH_MS = 150  # pans, zooms and snapshots arriving faster than this coalesce


def aggregate_lut(name: str = "inferno", max_alpha: int = 220) -> np.ndarray:
    """A colour map whose opacity rises with density: empty regions stay see-through."""
    lut = pg.colormap.get(name).getLookupTable(0.0, 1.0, 256, alpha=True, mode="byte")
    lut = np.asarray(lut, np.uint8).copy()
    lut[:, 3] = np.round(np.sqrt(np.linspace(0, 1, 256)) * max_alpha).astype(np.uint8)
    return lut


def prior_mass_circles(levels=PRIOR_MASS_LEVELS, segments: int = 128
                       ) -> tuple[np.ndarray, np.ndarray]:
    """N(0, I) in 2-D holds mass p inside radius sqrt(-2 ln(1 - p)); NaN-separated."""
    t = np.append(np.linspace(0, 2 * np.pi, segments + 1), np.nan)
    r = [math.sqrt(-2 * math.log(1 - p)) for p in levels]
    return (np.concatenate([k * np.cos(t) for k in r]),
            np.concatenate([k * np.sin(t) for k in r]))


def aggregate_job(mu, sigma, region, n: int):
    x0, x1, y0, y1 = region
    xs = x0 + (x1 - x0) * (np.arange(n) + 0.5) / n
    ys = y0 + (y1 - y0) * (np.arange(n) + 0.5) / n
    ok = np.all(np.isfinite(mu), axis=1) & np.all(np.isfinite(sigma) & (sigma > 0), axis=1)
    return xs, ys, aggregate_posterior_density(mu[ok], sigma[ok], xs, ys)


class AggregateDensityLayer(QObject):
    """Draws on a LatentView; off until ``set_visible(True)``."""

    computed = Signal()

    def __init__(self, latent_view, parent: QObject | None = None):
        super().__init__(parent)
        self.view = latent_view
        self.mu = self.sigma = None
        self.xs = self.ys = self.density = None
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(aggregate_lut())
        self.image.setZValue(0.5)  # over the prior circles, under the dots and ellipses
        self.image.setToolTip("aggregate posterior (1/N) \u03a3 q(z|x_i): brighter is denser")
        self.prior_curve = pg.PlotCurveItem(
            *prior_mass_circles(), connect="finite",
            pen=pg.mkPen(PRIOR_COLOUR, width=1.5, style=Qt.PenStyle.DashDotLine))
        self.prior_curve.setZValue(0.6)
        for item in (self.image, self.prior_curve):
            latent_view.plotItem.addItem(item, ignoreBounds=True)
            item.hide()
        self._job = JobLane(self)
        self._job.done.connect(self._on_done)
        self._timer = QTimer(self, singleShot=True, interval=AGGREGATE_REFRESH_MS)
        self._timer.timeout.connect(self._compute)
        latent_view.viewRegionChanged.connect(self._on_region)

    def set_latents(self, mu, sigma) -> None:
        self.mu, self.sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
        self._schedule()

    def set_visible(self, on: bool) -> None:
        self.image.setVisible(on and self.density is not None)
        self.prior_curve.setVisible(on)
        self._on = on
        if on:
            self._compute()

    def is_on(self) -> bool:
        return getattr(self, "_on", False)

    def shutdown(self, msecs: int = 30_000) -> bool:
        self._timer.stop()
        return self._job.cancel_and_wait(msecs)

    def _on_region(self, *_) -> None:
        self._schedule()

    def _schedule(self) -> None:
        if self.is_on() and not self._timer.isActive():
            self._timer.start()

    def _compute(self) -> None:
        if self.mu is None or not self.is_on() or len(self.mu) == 0:
            return
        self._job.submit(aggregate_job, self.mu, self.sigma, self.view.view_region(),
                         AGGREGATE_N)

    def _on_done(self, result) -> None:
        self.xs, self.ys, self.density = result
        hx, hy = self.xs[1] - self.xs[0], self.ys[1] - self.ys[0]
        top = float(self.density.max()) or 1.0
        self.image.setImage(self.density, autoLevels=False, levels=(0.0, top))
        self.image.setRect(QRectF(self.xs[0] - hx / 2, self.ys[0] - hy / 2,
                                  hx * len(self.xs), hy * len(self.ys)))
        self.image.setVisible(self.is_on())
        self.computed.emit()


# ---------------------------------------------------------------- trails

TRAIL_LENGTH = 20
TRAIL_COLOUR = QColor(255, 235, 120, 220)


class Trails:
    """The last ``length`` positions of tracked points' mu, one snapshot each."""

    def __init__(self, plot_item: pg.PlotItem, length: int = TRAIL_LENGTH):
        self.length = length
        self.trails: dict[int, deque] = {}
        self.curve = pg.PlotCurveItem(pen=pg.mkPen(TRAIL_COLOUR, width=1.5))
        self.curve.setZValue(7.5)  # over the dots, under the selection ring
        self.plot_item = plot_item
        plot_item.addItem(self.curve, ignoreBounds=True)

    def set_tracked(self, indices) -> None:
        """Follow these datapoints; a point already followed keeps its trail."""
        indices = [int(i) for i in indices]
        self.trails = {i: self.trails.get(i, deque(maxlen=self.length)) for i in indices}
        self._redraw()

    def add_snapshot(self, mu: np.ndarray) -> None:
        if not self.trails:
            return  # nothing followed: the (empty) curve stays as it is
        for i, trail in self.trails.items():
            if i < len(mu) and np.all(np.isfinite(mu[i])):
                trail.append((float(mu[i][0]), float(mu[i][1])))
        self._redraw()

    def clear(self) -> None:
        for trail in self.trails.values():
            trail.clear()
        self._redraw()

    def remove(self) -> None:
        self.plot_item.removeItem(self.curve)

    def _redraw(self) -> None:
        parts = [np.asarray(t, np.float64) for t in self.trails.values() if len(t)]
        if not parts:
            self.curve.setData([], [])
            return
        xy = np.concatenate(parts)
        connect = np.ones(len(xy), bool)
        connect[np.cumsum([len(p) for p in parts]) - 1] = False  # no line between trails
        self.curve.setData(xy[:, 0], xy[:, 1], connect=connect)
