"""Results out of the app in standard formats: CSV, PNG and SVG, each written atomically.

- ``export_latents_csv``: one row per datapoint: index, label, name, mu1, mu2, sigma1, sigma2,
  elbo_nats (trainer.latent_table, the same table ``latent-explorer export-latents`` writes):
  lambda_i = f_phi(x_i) and its ELBO in nats (higher is better), for each datapoint's one fixed
  x (trainer.evidence), the x the plane and the inspector use.
- ``export_plane_png`` / ``export_plane_svg``: the latent plane through pyqtgraph's exporters.
- ``export_mosaic_png``: the manifold grid, every tile pixel-exact, optionally upscaled.
- ``export_history_csv``: the ELBO and log p(x) curves.

Qt and pyqtgraph are imported inside the functions that draw, so ``atomic_write`` and the CSV
export stay usable without a GUI (``session_file`` builds on ``atomic_write``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from trainer import atomic_write
from trainer.latent_table import (
    ELBO_BATCH,
    ELBO_SAMPLES,
    iter_latent_rows,
    latent_columns,
    write_latents_csv,
)
from trainer.latent_table import latent_rows as trainer_latent_rows

LATENT_COLUMNS = latent_columns(2)
MAX_MOSAIC_SCALE = 64


# ------------------------------------------------------------------------------ latents

def latent_rows(dataset, snapshot, elbo_samples: int = ELBO_SAMPLES,
                batch: int = ELBO_BATCH) -> list[list]:
    """The CSV's rows (trainer.latent_table) with the snapshot's frozen model."""
    check_latents(dataset, snapshot)
    return trainer_latent_rows(dataset, snapshot.model, elbo_samples, batch)


def check_latents(dataset, snapshot) -> None:
    if len(snapshot.mu) != len(dataset):
        raise ValueError(f"the snapshot has {len(snapshot.mu)} latents but the dataset "
                         f"{dataset.name} has {len(dataset)} images")


def latents_csv_job(path: str | os.PathLike, dataset, model) -> Iterator[tuple[int, int]]:
    """A generator for a background job: yields (done, total) while the rows are computed,
    then writes the CSV and returns its path (nothing is written if it is stopped)."""
    rows = yield from iter_latent_rows(dataset, model)
    return write_latents_csv(path, rows, model.latent_dim)


def export_latents_csv(path: str | os.PathLike, dataset, snapshot,
                       elbo_samples: int = ELBO_SAMPLES) -> Path:
    rows = latent_rows(dataset, snapshot, elbo_samples)
    return write_latents_csv(path, rows, snapshot.model.latent_dim)


# ------------------------------------------------------------------------------ history

HISTORY_COLUMNS = ("split", "step", "samples", "seconds", "epoch", "elbo", "recon", "kl",
                   "log_px")


def export_history_csv(path: str | os.PathLike, train: dict[str, np.ndarray],
                       heldout: dict[str, np.ndarray],
                       logpx: dict[str, np.ndarray] | None = None) -> Path:
    """A Progress's curves as one long table (column ``split``; cells a table lacks stay
    empty). Split ``heldout_logpx`` holds the exact log p(x) of a fixed held-out subset
    and, in ``elbo``, the ELBO of the same points. All values in nats per datapoint."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(HISTORY_COLUMNS)
            for split, table in (("train", train), ("heldout", heldout),
                                 ("heldout_logpx", logpx or {})):
                n = len(table.get("step", ()))
                cols = [table.get(c, [None] * n) for c in HISTORY_COLUMNS[1:]]
                for row in zip(*cols, strict=True):
                    w.writerow([split, *("" if v is None else f"{v:.10g}" for v in row)])

    return atomic_write(path, write)


# ------------------------------------------------------------------------------ images

def export_plane_png(path: str | os.PathLike, latent_view, width: int | None = None) -> Path:
    """The latent plane (``latent_view.plotItem`` with axes) as PNG, ``width`` px wide
    (default: its size on screen)."""
    from pyqtgraph.exporters import ImageExporter

    exporter = ImageExporter(latent_view.plotItem)
    if width is not None:
        if int(width) < 16:
            raise ValueError(f"{path}: width must be at least 16 px, got {width}")
        exporter.parameters()["width"] = int(width)

    def write(tmp: str) -> None:
        if not exporter.export(tmp):
            raise OSError(f"{path}: could not encode the plane as PNG")

    return atomic_write(path, write)


def export_plane_svg(path: str | os.PathLike, latent_view) -> Path:
    """The latent plane as SVG, drawn through Qt's SVG paint device: axes, prior circles and
    ellipses become vector paths. (pyqtgraph 0.14's SVGExporter fails on the closed paths
    Qt 6.11 writes, "... Z": pyqtgraph issue #3485.)"""
    from PySide6.QtCore import QBuffer, QIODevice, QRectF
    from PySide6.QtGui import QPainter
    from PySide6.QtSvg import QSvgGenerator

    item = latent_view.plotItem
    source = item.sceneBoundingRect()
    size = source.size().toSize()

    def write(tmp: str) -> None:
        # Drawn into memory, then written by Python: a file that Qt writes itself fails
        # silently (a full disk gave a truncated SVG and "saved"); Python raises OSError.
        buffer = QBuffer()
        if not buffer.open(QIODevice.OpenModeFlag.WriteOnly):
            raise OSError(f"{path}: could not open a buffer for the SVG")
        generator = QSvgGenerator()
        generator.setOutputDevice(buffer)
        generator.setSize(size)
        # pyqtgraph's axes replay QPictures, which Qt rescales by the ratio of the target's
        # DPI to the screen's: the same DPI keeps tick labels where the widget drew them.
        generator.setResolution(latent_view.logicalDpiX())
        generator.setViewBox(QRectF(0, 0, size.width(), size.height()))
        generator.setTitle("Latent Explorer: latent plane")
        generator.setDescription("Posterior means and sigma ellipses of a 2-D VAE")
        painter = QPainter()
        if not painter.begin(generator):
            raise OSError(f"{path}: could not start writing SVG")
        try:
            painter.fillRect(QRectF(0, 0, size.width(), size.height()),
                             latent_view.backgroundBrush())
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            item.scene().render(painter, QRectF(0, 0, size.width(), size.height()), source)
        finally:
            ended = painter.end()
        data = bytes(buffer.data())
        if not ended or not data.rstrip().endswith(b"</svg>"):
            raise OSError(f"{path}: the SVG could not be drawn completely")
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def mosaic_image(mosaic: np.ndarray, scale: int = 1) -> np.ndarray:
    """A decoded-mean mosaic in [0, 1], (h, w) grey or (h, w, 3) RGB, as uint8, each pixel
    repeated ``scale`` times each way (no smoothing, so every tile stays the decoded image)."""
    a = np.asarray(mosaic)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)) or a.size == 0:
        raise ValueError(f"mosaic must be a non-empty (h, w) grey or (h, w, 3) RGB image, "
                         f"got shape {a.shape}")
    if not 1 <= int(scale) <= MAX_MOSAIC_SCALE:
        raise ValueError(f"scale must be between 1 and {MAX_MOSAIC_SCALE}, got {scale}")
    grey = np.rint(np.clip(np.nan_to_num(a.astype(np.float64)), 0.0, 1.0) * 255).astype(np.uint8)
    s = int(scale)
    return np.repeat(np.repeat(grey, s, axis=0), s, axis=1) if s > 1 else grey


def export_mosaic_png(path: str | os.PathLike, mosaic: np.ndarray | None, scale: int = 1) -> Path:
    """The manifold grid (``ManifoldView.mosaic()``) as an 8-bit grey or RGB PNG."""
    if mosaic is None:
        raise ValueError(f"{path}: no manifold to export yet (the model has not decoded one)")
    image = Image.fromarray(mosaic_image(mosaic, scale))  # uint8: grey "L" or "RGB"
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
