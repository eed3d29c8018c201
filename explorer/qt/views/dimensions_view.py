"""The per-dimension panel: the mean KL of each latent dimension (its rate, nats) and whether
it is active, Var_x(E_q[z_d]) > 0.01 (Burda et al. 2016), as bars; and the choice of the
plane's 2-D view (PCA of the mu_i, or two chosen coordinates).

The bars cost a few milliseconds of numpy per snapshot at 70,000 points: they are drawn only
while the panel can be seen (explorer.qt.views.when_shown).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from explorer.core.plane_view import ViewChoice
from explorer.qt.views.when_shown import WhenShown
from trainer.latent_stats import active_units, per_dim_kl

ACTIVE_BRUSH = (0, 114, 178)  # Okabe-Ito blue
COLLAPSED_BRUSH = (150, 150, 150)


class DimensionsView(QWidget):
    """Bars per dimension from a snapshot's mu and sigma, and the plane view chooser."""

    viewChosen = Signal(object)  # ViewChoice

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Plane shows"))
        self.view_box = QComboBox()
        self.view_box.setToolTip("The 2-D view of the latent the plane draws: the top-2 "
                                 "principal directions of the posterior means, or two "
                                 "coordinates (exact marginals of q)")
        self.view_box.activated.connect(self._on_chosen)
        row.addWidget(self.view_box, 1)
        layout.addLayout(row)
        self.kl_plot = pg.PlotWidget()
        self.kl_plot.setLabel("left", "mean KL(q(z_d|x) \u2016 N(0,1)), nats")
        self.kl_plot.setLabel("bottom", "latent dimension d")
        self.kl_plot.setMouseEnabled(False, False)
        self.kl_bars = pg.BarGraphItem(x=[], height=[], width=0.6)
        self.kl_plot.addItem(self.kl_bars)
        self.au_plot = pg.PlotWidget()
        self.au_plot.setLabel("left", "log10 Var_x(E_q[z_d])")
        self.au_plot.setLabel("bottom", "latent dimension d")
        self.au_plot.setMouseEnabled(False, False)
        self.au_bars = pg.BarGraphItem(x=[], height=[], width=0.6)
        self.au_plot.addItem(self.au_bars)
        self.threshold_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((213, 94, 0), width=1,
                                                                    style=pg.QtCore.Qt.DashLine))
        self.au_plot.addItem(self.threshold_line)
        self.summary = QLabel("No model yet")
        self.summary.setWordWrap(True)
        for w in (self.kl_plot, self.au_plot, self.summary):
            layout.addWidget(w)
        for plot in (self.kl_plot, self.au_plot):  # the dock's height decides, not theirs
            plot.setMinimumSize(120, 60)
        self.kl = np.zeros(0)
        self.units = None
        self._latent_dim = 0
        self._when_shown = WhenShown(self)  # the bars only while the panel can be seen
        self._choice = ViewChoice("pca")
        self.setToolTip("Per latent dimension: its mean KL to the prior (the rate it spends, "
                        "nats) and Var_x(E_q[z_d]); grey bars are collapsed dimensions")

    def set_choice(self, choice: ViewChoice) -> None:
        self._choice = choice
        self._fill_choices()

    def _fill_choices(self) -> None:
        d = self._latent_dim
        self.view_box.clear()
        if d <= 2:
            self.view_box.addItem("z1 vs z2 (the latent as it is)", ViewChoice())
            self.view_box.setEnabled(False)
            return
        self.view_box.setEnabled(True)
        self.view_box.addItem("PCA: top-2 directions of \u03bc", ViewChoice("pca"))
        for i in range(d):
            for j in range(i + 1, min(d, i + 2 if d > 8 else d)):
                self.view_box.addItem(f"z{i + 1} vs z{j + 1}", ViewChoice("axes", (i, j)))
        if self._choice.kind == "axes" and self.view_box.findData(self._choice) < 0:
            i, j = self._choice.dims
            self.view_box.addItem(f"z{i + 1} vs z{j + 1}", self._choice)
        index = self.view_box.findData(self._choice)
        self.view_box.setCurrentIndex(max(index, 0))

    def _on_chosen(self, index: int) -> None:
        choice = self.view_box.itemData(index)
        if isinstance(choice, ViewChoice):
            self._choice = choice
            self.viewChosen.emit(choice)

    def set_latents(self, mu: np.ndarray, sigma: np.ndarray) -> None:
        """A snapshot's q: the view chooser follows at once; the bars only while the panel
        is shown (a hidden one keeps the arrays and catches up when shown)."""
        d = np.shape(mu)[1]
        if d != self._latent_dim:
            self._latent_dim = d
            self._fill_choices()
        self._when_shown.run("bars", lambda: self._draw(mu, sigma))

    def shown(self) -> bool:
        """Whether a person can see the panel (else the bars wait for that)."""
        return self._when_shown.shown()

    def _draw(self, mu: np.ndarray, sigma: np.ndarray) -> None:
        mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
        d = mu.shape[1]
        with np.errstate(divide="ignore"):
            self.kl = per_dim_kl(mu, 2.0 * np.log(sigma))
        self.units = active_units(mu)
        x = np.arange(1, d + 1)
        brushes = [ACTIVE_BRUSH if a else COLLAPSED_BRUSH for a in self.units.active]
        self.kl_bars.setOpts(x=x, height=self.kl, width=0.6, brushes=brushes)
        logv = np.log10(np.maximum(self.units.variance, 1e-8))
        floor = min(float(logv.min()), np.log10(self.units.threshold)) - 0.5
        self.au_bars.setOpts(x=x, y0=floor, height=logv - floor, width=0.6, brushes=brushes)
        self.threshold_line.setValue(np.log10(self.units.threshold))
        self.summary.setText(self.describe())

    def collapsed(self) -> list[int]:
        """The 0-based dimensions whose posterior mean does not move with x."""
        self._when_shown.flush()
        return [] if self.units is None else [int(i) for i in
                                              np.flatnonzero(~self.units.active)]

    def describe(self) -> str:
        self._when_shown.flush()
        if self.units is None:
            return "No model yet"
        d, active = len(self.kl), int(self.units.active.sum())
        text = (f"{active} of {d} dimensions active (Var_x(E_q[z_d]) > "
                f"{self.units.threshold:g}); total KL {self.kl.sum():.2f} nats per datapoint")
        gone = self.collapsed()
        if gone:
            names = ", ".join(f"z{i + 1}" for i in gone[:12]) + (" \u2026" if len(gone) > 12
                                                                  else "")
            text += f". Collapsed (q(z_d|x) the same for every x, the prior): {names}"
        return text
