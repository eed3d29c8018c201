"""The inference inspector: which quantities are the variational parameters, for one datapoint.

For a selected datapoint (or an encoded image) it shows lambda_i = (mu_i, sigma_i) = f_phi(x_i),
ELBO_i split into reconstruction and KL, the exact log p_theta(x_i) from a grid with the IWAE
estimate beside it, and the inference gap log p(x_i) - ELBO_i = KL(q || p(z|x_i)). "Optimise
this point" freezes theta and fits q directly, splitting the gap into the amortisation gap
ELBO* - ELBO_i and the approximation gap log p(x_i) - ELBO* (Cremer, Li & Duvenaud, 2018).
Dragging the q ellipse on the plane moves lambda_i by hand; the ELBO readout follows live.

Every computation runs off the GUI thread (explorer.qt.jobs lanes); only the newest request's
answer is shown. The window passes each datapoint's one fixed x (trainer.evidence: for a
Bernoulli model a fixed binarisation, since its likelihood is a probability only for binary x),
the same x the plane's dot mu_i = f_phi(x_i) and ``latent-explorer inspect`` use.

The layout fits a narrow dock (330 px): captions wrap, short numbers sit beside them, long
readouts (lambda_i, the dragged q, the grid) wrap on a line of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont, QGuiApplication
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from explorer.core.inference_view import inspected_q, scored_q
from explorer.qt.controllers.selection import short
from explorer.qt.jobs import JobLane
from explorer.qt.views.image_panel import ImageTile
from explorer.qt.views.posterior_overlay import PosteriorOverlay
from trainer import gaussian_fit, inspect_point, optimise_point
from trainer.evidence import rule
from trainer.inference import INSPECT_GRID_N, INSPECT_IWAE_K

GRID_N = INSPECT_GRID_N
IWAE_K = INSPECT_IWAE_K
DRAG_THROTTLE_MS = 20  # the newest drag position is scored at most this often
SAMPLE_SEED = 0  # one fixed eps per inspection: the decoded sample moves smoothly with q
MIN_WIDTH = 260  # px: the whole inspector, numbers included, fits a 330 px dock

# (key, caption): every number in nats per datapoint, with its sign convention.
ROWS = (
    ("lambda", "\u03bb_i = (\u03bc_i, \u03c3_i) = f_\u03c6(x_i), the encoder's output"),
    ("elbo", "ELBO_i of the encoder's q (nats, higher is better)"),
    ("recon", "\u2003reconstruction E_q[log p(x|z)] (nats, higher is better)"),
    ("kl", "\u2003KL(q \u2016 p(z)), subtracted (nats, \u2265 0)"),
    ("log_px", "log p_\u03b8(x_i), exact on the grid (nats, higher is better)"),
    ("iwae", f"IWAE (k = {IWAE_K}): a stochastic lower bound, \u2264 log p(x) on average "
             "(nats, \u00b1 standard error)"),
    ("inference_gap", "inference gap log p(x_i) \u2212 ELBO_i = KL(q \u2016 p(z|x_i)) "
                      "(nats, \u2265 0)"),
    ("elbo_star", "ELBO* of the best diagonal q* (nats, higher is better)"),
    ("amortisation_gap", "amortisation gap ELBO* \u2212 ELBO_i (nats, \u2265 0)"),
    ("approximation_gap", "approximation gap log p(x_i) \u2212 ELBO* (nats, \u2265 0)"),
    ("elbo_full", "ELBO of the best full-covariance Gaussian (nats, higher is better)"),
    ("dragged", "ELBO of the dragged q (nats, higher is better)"),
    ("grid", "grid"),
)
# Readouts too long to sit beside their caption: each wraps on a line of its own.
WIDE_ROWS = ("lambda", "dragged", "grid")


def input_note(binarization: str) -> str:
    """The rule for x_i, in one line (trainer.evidence)."""
    return f"Scored: {rule(binarization)}."


@dataclass
class Inspection:
    point: object  # trainer.PointInference
    recon: np.ndarray  # decode_mean(mu_i), (H, W)
    sample: np.ndarray  # decode_mean(z), z ~ q with the fixed eps, (H, W)


@dataclass
class DragReadout:
    fit: object  # trainer.GaussianFit of the dragged q
    sample: np.ndarray


def sample_eps(latent_dim: int = 2) -> np.ndarray:
    return np.random.default_rng(SAMPLE_SEED).standard_normal(latent_dim)


def grid_reason(latent_dim: int) -> str:
    """Why the inspector shows no exact posterior above 2-D (as `evaluate` says it)."""
    return (f"No exact posterior: the grid integrates p(x, z) over a 2-D latent, and this "
            f"model has {latent_dim} dimensions (a grid of 256 cells a side would need "
            f"256^{latent_dim} decodes). The IWAE estimate, with its standard error, stands "
            "for log p(x).")


@dataclass
class EstimatedPoint:
    """The inspector's numbers above 2-D: no grid, so log p(x) is the IWAE estimate."""

    mean: np.ndarray  # (D,) mu_i
    sigma: np.ndarray  # (D,) sigma_i
    elbo: float  # Monte Carlo over ELBO_SAMPLES draws, nats
    recon: float
    kl: float  # analytic
    iwae: float
    iwae_se: float
    iwae_k: int
    shape: list[str]


ELBO_SAMPLES = 64


def run_estimate(model, x: np.ndarray) -> EstimatedPoint:
    import torch

    from trainer.elbo import iwae_log_px

    mu, sigma = (a[0] for a in model.encode(x[None]))
    terms = model.elbo(x[None], samples=ELBO_SAMPLES, seed=SAMPLE_SEED)
    g = torch.Generator().manual_seed(SAMPLE_SEED)
    est = iwae_log_px(model.model, torch.as_tensor(x[None], dtype=torch.float32), k=IWAE_K,
                      generator=g)
    return EstimatedPoint(mean=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64),
                          elbo=float(terms["elbo"][0]), recon=float(terms["recon"][0]),
                          kl=float(terms["kl"][0]), iwae=float(est.log_px[0]),
                          iwae_se=float(est.se[0]), iwae_k=IWAE_K, shape=[])


def run_inspection(model, x: np.ndarray, q: tuple | None = None) -> Inspection:
    """The inspector's numbers for x, of the encoder's q or of ``q`` = (mean, sigma) (2-D);
    a q that is NaN (a free-form run's held-out point) is fitted from the prior first."""
    if q is not None:
        q = scored_q(model, x, q)
    if model.latent_dim != 2:
        point = run_estimate(model, x)
        mu, sigma = point.mean, point.sigma
        images = model.decode_mean(np.stack((mu, mu + sigma * sample_eps(len(mu))))
                                   .astype(np.float32))
        return Inspection(point=point, recon=images[0], sample=images[1])
    point = inspect_point(model, x, n=GRID_N, iwae_k=IWAE_K, q=q)
    mu, sigma = point.encoder.mean, point.encoder.sigma
    images = model.decode_mean(np.stack((mu, mu + sigma * sample_eps())))
    return Inspection(point=point, recon=images[0], sample=images[1])


def run_drag(model, x: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> DragReadout:
    fit = gaussian_fit(model, x, mean, sigma=sigma)
    return DragReadout(fit=fit, sample=model.decode_mean((mean + sigma * sample_eps())[None])[0])


def fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "\u2014"
    return f"{v:+.3f}" if signed else f"{v:.3f}"


def fmt_se(v: float | None, se: float | None) -> str:
    """An estimate with its standard error."""
    if v is None:
        return "\u2014"
    return fmt(v) if se is None or not np.isfinite(se) else f"{v:.3f} \u00b1 {se:.3f}"


def wrapped(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    # Ignored width: a wrapped label asks for no width of its own, so the dock's width
    # decides and the text wraps instead of widening the panel. A new policy drops the
    # height-for-width flag that setWordWrap set, and without it the layouts squeeze the
    # label's lines into each other: set it again.
    policy = QSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    policy.setHeightForWidth(True)
    label.setSizePolicy(policy)
    return label


class Inspector(QWidget):
    """The per-point dock. The window calls ``inspect`` and ``clear``; see the module doc."""

    inspected = Signal(object)  # trainer.PointInference, once its numbers are shown
    optimised = Signal(object)  # trainer.LocalOptimum, once drawn and shown
    dragScored = Signal(object)  # trainer.GaussianFit of the dragged q, once shown
    failed = Signal(str)
    refreshRequested = Signal()  # inspect the same point again with the newest model

    def __init__(self, plot_item, parent: QWidget | None = None):
        super().__init__(parent)
        self.overlay = PosteriorOverlay(plot_item, self)
        self.model = None
        self.x: np.ndarray | None = None  # the datapoint as scored
        self.title = ""
        self.point = None  # trainer.PointInference of the shown datapoint
        self.dragged = None  # trainer.GaussianFit of the dragged q
        self._drag_q: tuple[np.ndarray, np.ndarray] | None = None

        self._inspect_job = JobLane(self)
        self._drag_job = JobLane(self)
        self._optimise_job = JobLane(self)
        self._inspect_job.done.connect(self._on_inspected)
        self._drag_job.done.connect(self._on_drag_scored)
        self._optimise_job.done.connect(self._on_optimised)
        for job in (self._inspect_job, self._drag_job, self._optimise_job):
            job.failed.connect(self._on_failed)
        self._drag_timer = QTimer(self, singleShot=True, interval=DRAG_THROTTLE_MS)
        self._drag_timer.timeout.connect(self._score_drag)
        self.overlay.qDragged.connect(self._on_q_dragged)

        self._build()
        self.clear()

    # ---- layout -----------------------------------------------------------------------------

    def _build(self) -> None:
        self.setMinimumWidth(MIN_WIDTH)
        layout = QVBoxLayout(self)
        self.title_label = wrapped()
        self.title_label.setStyleSheet("font-weight: bold;")
        self.note_label = wrapped()
        self.shape_label = wrapped()  # the shape of the exact posterior, in words, prominent
        font = QFont(self.shape_label.font())
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.shape_label.setFont(font)
        layout.addWidget(self.title_label)
        layout.addWidget(self.shape_label)

        tiles = QGridLayout()
        self.tiles: dict[str, ImageTile] = {}
        self.tile_captions: dict[str, QLabel] = {}
        for col, (key, caption) in enumerate((
                ("image", "image"), ("scored", "x_i, as scored"),
                ("recon", "decoded mean at z = \u03bc_i"),
                ("sample", "decoded z ~ q (follows a drag)"))):
            tile = ImageTile()
            tile.setMinimumSize(48, 48)
            tile.setMaximumHeight(110)  # a square image: no empty band above its caption
            self.tiles[key] = tile
            tiles.addWidget(tile, 0, col)
            cap = wrapped(caption)
            cap.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            self.tile_captions[key] = cap
            tiles.addWidget(cap, 1, col)
            tiles.setColumnStretch(col, 1)
        layout.addLayout(tiles)
        layout.addWidget(self.note_label)

        # One box per row, not a grid: a QGridLayout's height for a width of wrapped labels
        # overestimates (up to 60 % taller at 300 px here); a box's is exact.
        rows = QVBoxLayout()
        self.value_labels: dict[str, QLabel] = {}
        self.caption_labels: dict[str, QLabel] = {}
        for key, caption in ROWS:
            name = wrapped(caption)
            if key in WIDE_ROWS:
                value = wrapped()
                rows.addWidget(name)
                rows.addWidget(value)
            else:
                value = QLabel()
                value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                value.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Preferred)
                row = QHBoxLayout()
                row.setSpacing(8)
                row.addWidget(name, 1)
                row.addWidget(value)
                rows.addLayout(row)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.value_labels[key] = value
            self.caption_labels[key] = name
        layout.addLayout(rows)

        buttons = QGridLayout()  # two by two: four buttons in a row overflow a narrow dock
        self.optimise_button = QPushButton("Optimise this point")
        self.optimise_button.setToolTip("Freeze \u03b8 and fit (\u03bc, log \u03c3) to this x "
                                        "directly, from the encoder's output")
        self.optimise_button.clicked.connect(self.toggle_optimise)
        self.reset_button = QPushButton("Reset q")
        self.reset_button.setToolTip("Put the dragged ellipse back on the encoder's q")
        self.reset_button.clicked.connect(self.reset_q)
        self.copy_button = QPushButton("Copy numbers")
        self.copy_button.setToolTip("The numbers as JSON on the clipboard")
        self.copy_button.clicked.connect(self.copy_numbers)
        self.refresh_button = QPushButton("Newest model")
        self.refresh_button.setToolTip("Inspect this point again with the model as trained "
                                       "now (the numbers are for the model when inspected)")
        self.refresh_button.clicked.connect(self.refreshRequested)
        for k, b in enumerate((self.optimise_button, self.reset_button, self.copy_button,
                               self.refresh_button)):
            buttons.addWidget(b, k // 2, k % 2)
        layout.addLayout(buttons)
        self.status_label = wrapped()
        layout.addWidget(self.status_label)
        layout.addStretch(1)

    # ---- the window's calls -----------------------------------------------------------------

    def inspect(self, model, x_flat, image, title: str, mu=None, sigma=None, config=None,
                new_image: bool = False) -> None:
        """Inspect one datapoint: ``model`` a trainer.FrozenVAE, ``x_flat`` (D,) the datapoint's
        x as every number scores it (trainer.evidence), ``image`` its image to show, (H, W)
        grey or (H, W, 3) colour, ``mu``/``sigma`` its q on the plane (or a new image's q).
        With the run's ``config`` the q scored is the one its inference gives the point (a
        free table's row, a refined q; explorer.core.inference_view.inspected_q), else the
        encoder's."""
        self._cancel_all()
        self.clear(keep_status=True)
        self.model = model
        self.x = np.asarray(x_flat, np.float32).reshape(-1)
        self.title = title
        self.title_label.setText(title)
        image = np.asarray(image, np.float32)
        self.tiles["image"].set_image(image)
        differs = not np.array_equal(self.x, image.reshape(-1))
        self.tiles["scored"].set_image(self.x.reshape(image.shape) if differs else None)
        self.tiles["scored"].setVisible(differs)
        self.tile_captions["scored"].setVisible(differs)
        self.note_label.setText(input_note(getattr(model, "binarization", "none")))
        self.shape_label.setText("computing the exact posterior\u2026" if model.latent_dim == 2
                                 else "estimating log p(x) by IWAE\u2026")
        q, q_caption = (None, ROWS[0][1]) if config is None else \
            inspected_q(config, mu, sigma, new_image)
        self.caption_labels["lambda"].setText(q_caption)
        self.caption_labels["elbo"].setText(ROWS[1][1] if q is None else
                                            "ELBO_i of this q (nats, higher is better)")
        self._inspect_job.submit(run_inspection, model, self.x, q)

    def clear(self, keep_status: bool = False) -> None:
        self._cancel_all()
        self.point = self.dragged = None
        self._drag_q = None
        self.overlay.clear()
        self.title_label.setText("Select a point or drop an image to inspect it")
        self.note_label.setText("")
        self.shape_label.setText("")
        for tile in self.tiles.values():
            tile.set_image(None)
        for label in self.value_labels.values():
            label.setText("\u2014")
        self.optimise_button.setEnabled(False)
        self.optimise_button.setText("Optimise this point")
        self.reset_button.setEnabled(False)
        self.copy_button.setEnabled(False)
        if not keep_status:
            self.status_label.setText("")

    def busy(self) -> bool:
        """Whether a computation for the shown point is still running."""
        return any(job.busy() for job in (self._inspect_job, self._drag_job, self._optimise_job))

    def shutdown(self, msecs: int = 30_000) -> bool:
        """Stop every job and wait for their threads (the window's closeEvent calls this)."""
        self._drag_timer.stop()
        return all([job.cancel_and_wait(msecs) for job in
                    (self._inspect_job, self._drag_job, self._optimise_job)])

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)

    # ---- numbers ----------------------------------------------------------------------------

    def values(self) -> dict[str, float | None]:
        """Every shown number in nats (None until known)."""
        p, d = self.point, self.dragged
        v: dict[str, float | None] = dict.fromkeys(
            ("mu1", "mu2", "sigma1", "sigma2", "elbo", "recon", "kl", "log_px", "iwae",
             "iwae_se", "inference_gap", "elbo_star", "amortisation_gap", "approximation_gap",
             "elbo_full", "dragged_mu1", "dragged_mu2", "dragged_sigma1", "dragged_sigma2",
             "dragged_elbo", "dragged_minus_elbo"))
        if p is None:
            return v
        if isinstance(p, EstimatedPoint):
            v.update(mu1=float(p.mean[0]), mu2=float(p.mean[1]), sigma1=float(p.sigma[0]),
                     sigma2=float(p.sigma[1]), elbo=p.elbo, recon=p.recon, kl=p.kl,
                     iwae=p.iwae, iwae_se=p.iwae_se)
            return v
        e = p.encoder
        v.update(mu1=float(e.mean[0]), mu2=float(e.mean[1]), sigma1=float(e.sigma[0]),
                 sigma2=float(e.sigma[1]), elbo=e.elbo, recon=e.recon, kl=e.kl,
                 log_px=p.log_px, iwae=p.iwae, iwae_se=p.iwae_se,
                 inference_gap=p.inference_gap)
        if p.optimum is not None:
            v.update(elbo_star=p.optimum.diagonal.elbo, amortisation_gap=p.amortisation_gap,
                     approximation_gap=p.approximation_gap, elbo_full=p.optimum.full.elbo)
        if d is not None:
            v.update(dragged_mu1=float(d.mean[0]), dragged_mu2=float(d.mean[1]),
                     dragged_sigma1=float(d.sigma[0]), dragged_sigma2=float(d.sigma[1]),
                     dragged_elbo=d.elbo, dragged_minus_elbo=d.elbo - e.elbo)
        return v

    def _show_values(self) -> None:
        v = self.values()
        p = self.point
        t = self.value_labels
        t["lambda"].setText(f"\u03bc = ({fmt(v['mu1'])}, {fmt(v['mu2'])}), "
                            f"\u03c3 = ({fmt(v['sigma1'])}, {fmt(v['sigma2'])})")
        for key in ("elbo", "recon", "kl", "log_px", "inference_gap", "elbo_star",
                    "amortisation_gap", "approximation_gap", "elbo_full"):
            t[key].setText(fmt(v[key]))
        t["iwae"].setText(fmt_se(v["iwae"], v["iwae_se"]))
        if isinstance(p, EstimatedPoint):
            t["lambda"].setText(f"μ = {short(p.mean)}, σ = {short(p.sigma)}")
            t["log_px"].setText("— (no grid above 2-D; see IWAE)")
            t["dragged"].setText("— (2-D latents only)")
            t["grid"].setText(grid_reason(len(p.mean)))
            return
        if v["dragged_elbo"] is None:
            t["dragged"].setText("drag the ellipse's centre or axis handles")
        else:
            t["dragged"].setText(
                f"{fmt(v['dragged_elbo'])} ({fmt(v['dragged_minus_elbo'], True)} vs ELBO_i) at "
                f"\u03bc = ({v['dragged_mu1']:.2f}, {v['dragged_mu2']:.2f}), "
                f"\u03c3 = ({v['dragged_sigma1']:.2f}, {v['dragged_sigma2']:.2f})")
        g = p.grid
        x0, x1, y0, y1 = g.extent
        t["grid"].setText(f"{len(g.xs)}\u00d7{len(g.ys)} cells over z1 \u2208 [{x0:.2f}, {x1:.2f}],"
                          f" z2 \u2208 [{y0:.2f}, {y1:.2f}]; mass at its edge {g.edge_mass:.1e}")

    def summary(self) -> dict:
        return {"title": self.title,
                "input": self.note_label.text(),
                "units": "nats per datapoint; ELBO and log p(x): higher is better; "
                         "KL and the gaps: >= 0",
                "shape": self.point.shape if self.point is not None else [],
                "values": self.values()}

    def copy_numbers(self) -> None:
        """The numbers as JSON on the clipboard."""
        QGuiApplication.clipboard().setText(json.dumps(self.summary(), indent=1))
        self.status_label.setText("numbers copied to the clipboard as JSON")

    # ---- jobs -------------------------------------------------------------------------------

    def _cancel_all(self) -> None:
        self._drag_timer.stop()
        for job in (self._inspect_job, self._drag_job, self._optimise_job):
            job.cancel()

    def _on_inspected(self, result: Inspection) -> None:
        self.point = result.point
        self.tiles["recon"].set_image(result.recon)
        self.tiles["sample"].set_image(result.sample)
        if isinstance(self.point, EstimatedPoint):
            self.shape_label.setText(f"{len(self.point.mean)}-D latent: no exact posterior "
                                     "(see 'grid' below); log p(x) is the IWAE estimate.")
            self.copy_button.setEnabled(True)
            self.status_label.setText("")
            self._show_values()
            self.inspected.emit(self.point)
            return
        e = self.point.encoder
        words = self.point.shape
        self.shape_label.setText("; ".join(words).capitalize() + "." if words else
                                 "The exact posterior is close to a single Gaussian.")
        self.overlay.set_posterior(self.point.grid)
        self.overlay.set_q(e.mean, e.sigma)
        self.optimise_button.setEnabled(True)
        self.reset_button.setEnabled(True)
        self.copy_button.setEnabled(True)
        self.status_label.setText("")
        self._show_values()
        self.inspected.emit(self.point)

    def toggle_optimise(self) -> None:
        """Start "optimise this point", or cancel it while it runs."""
        if self._optimise_job.busy():
            self._optimise_job.cancel()
            self.optimise_button.setText("Optimise this point")
            self.status_label.setText("optimisation cancelled")
            return
        if self.point is None:
            return
        # From the q shown (the encoder's, a free table's row, a refined q): ELBO* >= ELBO_i.
        start = (self.point.encoder.mean, self.point.encoder.sigma)
        self._optimise_job.submit(optimise_point, self.model, self.x, start=start)
        self.optimise_button.setText("Cancel optimisation")
        self.status_label.setText("optimising (\u03bc, log \u03c3) with \u03b8 frozen\u2026")

    def is_optimising(self) -> bool:
        return self._optimise_job.busy()

    def _on_optimised(self, optimum) -> None:
        if self.point is None:
            return
        self.point.optimum = optimum
        self.overlay.set_optimum(optimum.diagonal, optimum.full)
        self.optimise_button.setText("Optimise this point")
        self.status_label.setText("q* (dashed) and the full-covariance optimum (dotted) drawn")
        self._show_values()
        self.optimised.emit(optimum)

    def reset_q(self) -> None:
        if self.point is None:
            return
        self._drag_timer.stop()
        self._drag_job.cancel()
        self.dragged, self._drag_q = None, None
        self.overlay.set_q(self.point.encoder.mean, self.point.encoder.sigma)
        self._show_values()

    def _on_q_dragged(self, mean, sigma) -> None:
        if self.point is None:
            return
        self._drag_q = (mean, sigma)
        if not self._drag_timer.isActive():
            self._drag_timer.start()

    def _score_drag(self) -> None:
        if self._drag_q is not None and self.model is not None:
            self._drag_job.submit(run_drag, self.model, self.x, *self._drag_q)

    def _on_drag_scored(self, readout: DragReadout) -> None:
        if self.point is None:
            return
        self.dragged = readout.fit
        self.tiles["sample"].set_image(readout.sample)
        self._show_values()
        self.dragScored.emit(readout.fit)

    def _on_failed(self, message: str) -> None:
        self.optimise_button.setText("Optimise this point")
        self.status_label.setText(f"inspection failed: {message}")
        self.failed.emit(message)
