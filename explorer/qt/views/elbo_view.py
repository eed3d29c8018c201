"""ELBO curves: train (raw and smoothed) and held-out, the exact held-out log p(x) above
them, and optional recon and KL terms; below them (2-D latents), the mean amortization gap
of the run's own q on fixed train and held-out points."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from explorer.qt.views.legend import ABOVE_PLOT, OutsideLegend

X_AXES = {"samples": "samples seen", "seconds": "training time (s)"}
SMOOTH_ROWS = 10
# Short enough for the strip's title at 1366 px; its tooltip gives ELBO(q*) - ELBO(q).
GAP_LABEL = "amortization gap (nats, >= 0, lower is better)"
TRAIN_COLOUR, HELDOUT_COLOUR = (40, 120, 255), (255, 130, 30)
LEFT_AXIS_WIDTH = 60  # px, both plots: so the strip's x positions line up with the ELBO's
# The gap strip takes a quarter of the panel's height, at least this many px (the curves
# dock is ~200 px tall on a 1280 x 720 screen).
GAP_PLOT_MIN_HEIGHT = 60


def gap_title() -> str:
    """The gap strip's title: which points (in their curves' colours), what, and the units."""
    def coloured(text, rgb):
        return f'<span style="color: rgb{rgb}">{text}</span>'

    return (f"{coloured('train', TRAIN_COLOUR)} and {coloured('held-out', HELDOUT_COLOUR)} "
            f"(16 points each): {GAP_LABEL}")


def smooth(values: np.ndarray, rows: int = SMOOTH_ROWS) -> np.ndarray:
    """Trailing moving average (shorter at the start), so the line never looks ahead."""
    if len(values) == 0:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    i = np.arange(1, len(values) + 1)
    lo = np.maximum(0, i - rows)
    return (c[i] - c[lo]) / (i - lo)


def follow_range(ys: list[np.ndarray]) -> tuple[float, float] | None:
    """A y range that follows the run: the first 10 % of each curve (the steep start,
    hundreds of nats below the rest) is left out so later progress stays visible."""
    kept = [y[len(y) // 10:] for y in ys if len(y)]
    kept = [y[np.isfinite(y)] for y in kept]
    kept = [y for y in kept if len(y)]
    if not kept:
        return None
    lo = min(float(y.min()) for y in kept)
    hi = max(float(y.max()) for y in kept)
    pad = max(0.5, 0.05 * (hi - lo))
    return lo - pad, hi + pad


def stepped_range(lo: float, hi: float, grow: bool = False) -> tuple[float, float]:
    """Round a range outwards to coarse steps, so a following view changes its range (and
    pyqtgraph rebuilds its axes, the costly part of a repaint) only now and then. ``grow``:
    the upper end jumps along 1, 1.25, 1.6, 2, 2.5, 3.2, 4, 5, 6.4, 8 x 10^k instead."""
    span = max(hi - lo, 1e-9)
    step = 10.0 ** math.floor(math.log10(span)) / 2
    lo = math.floor(lo / step) * step
    if grow and hi > 0:
        k = 10.0 ** math.floor(math.log10(hi))
        hi = k * next(m for m in (1, 1.25, 1.6, 2, 2.5, 3.2, 4, 5, 6.4, 8, 10) if k * m >= hi)
    else:
        hi = math.ceil(hi / step) * step
    return lo, hi


OVERFIT_EVALUATIONS = 3  # held-out evaluations in a row that must lie well below the best
OVERFIT_MARGIN_NATS = 1.0  # "well below": at least this many nats ...
OVERFIT_MARGIN_FRACTION = 0.02  # ... or this fraction of |best ELBO|, whichever is larger


def overfitting_note(train: dict[str, np.ndarray], heldout: dict[str, np.ndarray]) -> str | None:
    """A one-line warning when the model overfits, else None: the last OVERFIT_EVALUATIONS
    held-out ELBOs all lie well below the best one (which came before them), while the
    smoothed train ELBO is higher now than when the held-out one was at its best."""
    h_step = np.asarray(heldout.get("step", ()), np.float64)
    h_elbo = np.asarray(heldout.get("elbo", ()), np.float64)
    t_step = np.asarray(train.get("step", ()), np.float64)
    t_elbo = np.asarray(train.get("elbo", ()), np.float64)
    keep = np.isfinite(h_elbo)
    h_step, h_elbo = h_step[keep], h_elbo[keep]
    k = OVERFIT_EVALUATIONS
    if len(h_elbo) < k + 1 or len(t_elbo) < 2:
        return None
    best = int(np.argmax(h_elbo))
    if best > len(h_elbo) - 1 - k:  # the best is among the last k: not "for a while" yet
        return None
    margin = max(OVERFIT_MARGIN_NATS, OVERFIT_MARGIN_FRACTION * abs(h_elbo[best]))
    if not np.all(h_elbo[-k:] < h_elbo[best] - margin):
        return None
    trend = smooth(t_elbo[np.isfinite(t_elbo)])
    t_step = t_step[np.isfinite(t_elbo)]
    if len(trend) < 2:
        return None
    at_best = float(np.interp(h_step[best], t_step, trend))
    if not trend[-1] > at_best:
        return None
    drop = h_elbo[best] - h_elbo[-1]
    return (f"Overfitting: the held-out ELBO is {drop:.1f} nats below its best "
            f"({h_elbo[best]:.1f}) while the train ELBO still rises; more data, a smaller "
            "model or stopping here would help")


class ElboView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = pg.PlotWidget()  # colours follow pyqtgraph's (themed) configuration
        item = self.plot.getPlotItem()
        # No grid: pyqtgraph's translucent grid lines cost ~10 ms per repaint (measured).
        item.setLabel("left", "ELBO (nats, higher is better)")
        # Mid-lightness colours that read on dark and light backgrounds alike.
        self.raw = item.plot(pen=pg.mkPen((110, 150, 220, 150), width=1))
        self.smoothed = item.plot(pen=pg.mkPen((40, 120, 255), width=2.5))
        self.heldout = item.plot(pen=pg.mkPen((255, 130, 30), width=2), symbol="o",
                                 symbolSize=5, symbolBrush=(255, 130, 30), symbolPen=None)
        self.logpx = item.plot(pen=pg.mkPen((220, 50, 80), width=2), symbol="d",
                               symbolSize=6, symbolBrush=(220, 50, 80), symbolPen=None)
        self.logpx_elbo = item.plot(pen=pg.mkPen((220, 50, 80), width=1.5,
                                                 style=Qt.PenStyle.DotLine))
        self.recon = item.plot(pen=pg.mkPen((60, 180, 90), width=1.5))
        self.kl = item.plot(pen=pg.mkPen((190, 100, 210), width=1.5))
        # Above the plot, never over the newest part of the curves.
        self.legend = OutsideLegend(item, ABOVE_PLOT)
        self._names = {self.raw: "train ELBO", self.smoothed: "train, smoothed",
                       self.heldout: "held-out ELBO",
                       self.logpx: "held-out log p(x) (grid)",
                       self.logpx_elbo: "their ELBO (gap: KL(q || p(z|x)))",
                       self.recon: "train E_q[log p(x|z)]",
                       self.kl: "train KL(q || p) (>= 0)"}
        for curve in self._names:
            # Draw about one point per pixel column, only what is in view: paints stay cheap
            # however long the history grows.
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        self._legend_for: tuple | None = None
        # Several runs: each run's smoothed train and held-out ELBO in the run's colour,
        # in place of the one run's train and held-out curves.
        self._runs: list[tuple[str, str, dict, dict]] = []
        self._run_curves: dict[tuple[str, str], tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self.recon_box = QCheckBox("reconstruction term")
        self.kl_box = QCheckBox("KL term")
        self.follow_box = QCheckBox("follow the run")
        self.follow_box.setChecked(True)
        self.x_combo = QComboBox()
        for key, text in X_AXES.items():
            self.x_combo.addItem(f"x: {text}", key)
        self._train: dict[str, np.ndarray] = {}
        self._heldout: dict[str, np.ndarray] = {}
        self._logpx: dict[str, np.ndarray] = {}
        self._shown_rows = (-1, -1)
        self._drawn: dict[pg.PlotDataItem, tuple] = {}  # curve -> the points it shows
        self._ranges = None  # the last range set while following
        self._x_label: str | None = None

        for box in (self.recon_box, self.kl_box):
            box.toggled.connect(self._redraw)
        self.x_combo.currentIndexChanged.connect(self._redraw)
        self.follow_box.toggled.connect(self._redraw)
        # Panning or zooming by hand stops the following; the checkbox brings it back.
        item.getViewBox().sigRangeChangedManually.connect(self._on_manual_range)

        # The amortization gap strip, its x axis tied to the ELBO plot's; shown once the
        # run has gap rows (2-D latents with the exact curves on).
        self.gap_plot = pg.PlotWidget()
        gap_item = self.gap_plot.getPlotItem()
        gap_item.setTitle(gap_title(), size="8pt")  # the key: its words in the curves' colours
        gap_item.setXLink(item)
        gap_item.hideAxis("bottom")  # the ELBO plot's x axis above says what x is
        for axis in (item.getAxis("left"), gap_item.getAxis("left")):
            axis.setWidth(LEFT_AXIS_WIDTH)
        self.gap_train = gap_item.plot(pen=pg.mkPen(TRAIN_COLOUR, width=2), symbol="o",
                                       symbolSize=4, symbolBrush=TRAIN_COLOUR, symbolPen=None)
        self.gap_heldout = gap_item.plot(pen=pg.mkPen(HELDOUT_COLOUR, width=2,
                                                      style=Qt.PenStyle.DashLine),
                                         symbol="o", symbolSize=4, symbolBrush=HELDOUT_COLOUR,
                                         symbolPen=None)
        self.gap_plot.setMinimumHeight(GAP_PLOT_MIN_HEIGHT)
        self.gap_plot.setToolTip(
            "Mean amortization gap ELBO(q*) - ELBO(q) in nats (>= 0, lower is better) of the "
            "run's own q on 16 fixed training and 16 fixed held-out points; q* is the best "
            "diagonal Gaussian per point with the decoder frozen. Measured now and then, in "
            "at most 5 % of the training time.")
        self.gap_plot.hide()
        self._gaps: dict[str, np.ndarray] = {}

        self.overfit_label = QLabel()  # shown only while overfitting_note has something
        self.overfit_label.setWordWrap(True)
        self.overfit_label.setStyleSheet("font-weight: bold;")
        self.overfit_label.hide()
        tips = {self.plot: "ELBO per datapoint in nats, higher is better: train (every step, "
                           "and smoothed), held-out, and the exact log p(x) of held-out points",
                self.x_combo: "What the x axis counts",
                self.recon_box: "Show the train reconstruction term E_q[log p(x|z)] (nats)",
                self.kl_box: "Show the train KL(q || p(z)) term (nats, >= 0)",
                self.follow_box: "Keep the newest part of the run in view (panning or "
                                 "zooming by hand turns this off)"}
        for widget, tip in tips.items():
            widget.setToolTip(tip)

        row = QHBoxLayout()
        for w in (self.x_combo, self.recon_box, self.kl_box, self.follow_box):
            row.addWidget(w)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.gap_plot, 1)
        layout.addWidget(self.overfit_label)
        layout.addLayout(row)
        self._redraw()

    @property
    def x_key(self) -> str:
        return self.x_combo.currentData()

    def set_history(self, train: dict[str, np.ndarray], heldout: dict[str, np.ndarray],
                    logpx: dict[str, np.ndarray] | None = None,
                    gaps: dict[str, np.ndarray] | None = None) -> None:
        logpx, gaps = logpx or {}, gaps or {}
        tables = (train, heldout, logpx, gaps)
        rows = tuple(len(t.get("step", ())) for t in tables)
        last = tuple(t["step"][-1] if n else None for t, n in zip(tables, rows, strict=True))
        if (rows, last) == self._shown_rows:
            return  # nothing new: skip the redraw
        self._shown_rows = (rows, last)
        self._train, self._heldout, self._logpx, self._gaps = train, heldout, logpx, gaps
        note = overfitting_note(train, heldout)
        if note != (self.overfit_label.text() if self.overfit_label.isVisibleTo(self) else None):
            self.overfit_label.setText(note or "")
            self.overfit_label.setVisible(note is not None)
        self._redraw()

    def set_runs(self, runs: list[tuple[str, str, dict, dict]]) -> None:
        """(name, colour, train, heldout) of every run; with two or more the curves of
        all of them overlay, one colour per run."""
        runs = list(runs) if len(runs) > 1 else []
        if not runs and not self._runs:
            return  # one run, as before: its curves are set_history's (every progress)
        self._runs = runs
        wanted = {(name, colour) for name, colour, *_ in self._runs}
        item = self.plot.getPlotItem()
        for key in [k for k in self._run_curves if k not in wanted]:
            for curve in self._run_curves.pop(key):
                item.removeItem(curve)
                self._drawn.pop(curve, None)
        for key in sorted(wanted - set(self._run_curves)):
            colour = key[1]
            train = item.plot(pen=pg.mkPen(colour, width=2))
            heldout = item.plot(pen=pg.mkPen(colour, width=1.5, style=Qt.PenStyle.DashLine),
                                symbol="o", symbolSize=5, symbolBrush=colour, symbolPen=None)
            for curve in (train, heldout):
                curve.setDownsampling(auto=True, method="peak")
                curve.setClipToView(True)
            self._run_curves[key] = (train, heldout)
        self._legend_for = None
        self._redraw()

    def run_curves(self) -> dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]]:
        """Each run's (train, held-out) curve by run name while several runs overlay."""
        return {name: curves for (name, _), curves in self._run_curves.items()}

    def _on_manual_range(self, *args) -> None:
        self.follow_box.setChecked(False)
        self._ranges = None

    def _set(self, curve: pg.PlotDataItem, x: np.ndarray, y: np.ndarray) -> None:
        """setData unless the curve already shows these points: every progress redraws,
        and the held-out curves (symbols: the slow part) change only at an evaluation.
        Histories only grow, so their length and ends tell them apart."""
        x, y = np.asarray(x), np.asarray(y)
        key = (len(x), len(y)) + ((float(x[0]), float(x[-1]), float(y[-1]))
                                  if len(x) and len(y) else ())
        if self._drawn.get(curve) == key:
            return
        self._drawn[curve] = key
        curve.setData(x, y)

    def _redraw(self) -> None:
        x = self.x_key
        tr, ho = self._train, self._heldout
        empty = np.zeros(0)
        tx = tr.get(x, empty)
        hx = ho.get(x, empty)
        elbo = tr.get("elbo", empty)
        self._set(self.raw, tx, elbo)
        smoothed = smooth(elbo)
        self._set(self.smoothed, tx, smoothed)
        hy = ho.get("elbo", empty)
        finite = np.isfinite(hy)  # a diverged evaluation is shown by its absence, not a NaN
        self._set(self.heldout, hx[finite], hy[finite])
        lx, ly = self._logpx.get(x, empty), self._logpx.get("log_px", empty)
        self._set(self.logpx, lx, ly)
        self._set(self.logpx_elbo, lx, self._logpx.get("elbo", empty))
        has_logpx = len(ly) > 0
        self.logpx.setVisible(has_logpx)
        self.logpx_elbo.setVisible(has_logpx)
        gx = self._gaps.get(x, empty)
        for curve, key in ((self.gap_train, "train_amortization_gap"),
                           (self.gap_heldout, "heldout_amortization_gap")):
            gy = self._gaps.get(key, empty)
            keep = np.isfinite(gy)  # a diverged model's row is NaN: shown by its absence
            curve.setData(gx[keep], gy[keep])
        self.gap_plot.setVisible(len(gx) > 0)
        several = bool(self._runs)
        for curve in (self.raw, self.smoothed, self.heldout):
            curve.setVisible(not several)
        extra = []
        for name, colour, train, heldout in self._runs:
            train_curve, heldout_curve = self._run_curves[(name, colour)]
            rx, ry = train.get(x, empty), smooth(train.get("elbo", empty))
            self._set(train_curve, rx, ry)
            hy_run = heldout.get("elbo", empty)
            keep = np.isfinite(hy_run)
            self._set(heldout_curve, heldout.get(x, empty)[keep], hy_run[keep])
            extra += [ry, hy_run[keep]]
        show_recon, show_kl = self.recon_box.isChecked(), self.kl_box.isChecked()
        self._set(self.recon, *((tx, tr.get("recon", empty)) if show_recon else (empty, empty)))
        self._set(self.kl, *((tx, tr.get("kl", empty)) if show_kl else (empty, empty)))
        self.recon.setVisible(show_recon)
        self.kl.setVisible(show_kl)
        shown = (show_recon, show_kl, has_logpx, tuple(n for n, *_ in self._runs))
        if self._legend_for != shown:  # rebuilding it is slow
            self._legend_for = shown
            items = [(curve, name) for curve, name in self._names.items() if curve.isVisible()]
            for name, (train_curve, heldout_curve) in self.run_curves().items():
                items += [(train_curve, f"{name}: train, smoothed"),
                          (heldout_curve, f"{name}: held-out")]
            self.legend.set_items(items)
        if self._x_label != x:  # setting a label, even the same one, rebuilds the axis
            self._x_label = x
            self.plot.getPlotItem().setLabel("bottom", X_AXES[x])
        if self.follow_box.isChecked():
            ys = [smoothed, hy[finite], ly, *extra] if not several else [*extra, ly]
            if show_recon:
                ys.append(tr.get("recon", empty))
            if show_kl:
                ys.append(tr.get("kl", empty))
            vb = self.plot.getPlotItem().getViewBox()
            yr = follow_range(ys)
            xs = np.concatenate([tx, hx, *(t.get(x, empty) for _, _, t, _ in self._runs)])
            if yr is not None and len(xs):
                ranges = (stepped_range(float(xs.min()), float(xs.max()), grow=True),
                          stepped_range(*yr))
                if ranges != self._ranges:
                    self._ranges = ranges
                    vb.setRange(xRange=ranges[0], yRange=ranges[1], padding=0.02)
