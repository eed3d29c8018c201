"""Never crash on numbers: huge, infinite or NaN latents paint, and a failing paint is logged
once instead of unwinding into Qt (which kills the process)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF, QRectF
from safetensors.torch import load_file, save_file

from explorer.qt import paint_guard
from explorer.qt.paint_guard import guarded
from explorer.qt.views.latent_view import LatentView, ellipse_segments
from trainer import Session, TrainConfig, load_source, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def exploded_checkpoint(folder: Path, logvar: float = 80.0) -> Path:
    """A real checkpoint whose encoder outputs log-variance ``logvar`` for every input
    (sigma = exp(40) ~ 2e17): the logvar head's weights zeroed and its bias set."""
    session = Session(load_source("digits"), TrainConfig(hidden=(16,), threads=1))
    session.step()
    save_checkpoint(session, folder)
    weights = load_file(folder / "model.safetensors")
    head = sorted(k for k in weights if k.startswith("encoder") and k.endswith(".weight"))[-1]
    bias = head[: -len("weight")] + "bias"
    latent = weights[bias].shape[0] // 2  # (mu, logvar) halves
    weights[head] = weights[head].clone()
    weights[head][latent:] = 0.0
    weights[bias] = weights[bias].clone()
    weights[bias][latent:] = logvar
    save_file(weights, folder / "model.safetensors")
    return folder


def test_segment_count_is_finite_for_any_radius():
    for r in (0.0, 0.3, 10.0, 1e15, 1e16, 1e17, 1e300, np.inf, np.nan, -5.0):
        k = ellipse_segments(r, 100)
        assert isinstance(k, int) and 8 <= k <= 64


def test_checkpoint_with_exploded_sigma_renders(tmp_path):
    """Encoder log-variance 80: the screenshot used to die with SIGSEGV (rc 139) in a paint."""
    folder = exploded_checkpoint(tmp_path / "ck")
    png = tmp_path / "x.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
               LATENT_EXPLORER_DATA=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-X", "faulthandler", "-m", "explorer",
                           "--checkpoint", str(folder), "--screenshot", str(png), "--steps", "0"],
                          capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert png.stat().st_size > 1000
    assert "failed (drawn without it" not in done.stderr  # clamped, not merely caught


@pytest.fixture
def plane(qtbot):
    view = LatentView()
    qtbot.addWidget(view)
    view.resize(500, 500)
    view.show()
    qtbot.waitExposed(view)
    return view


@pytest.mark.parametrize("bad_sigma", [1e16, 1e17, 1e30, 1e300, np.inf, np.nan])
def test_huge_or_nan_sigma_paints_and_keeps_the_sane_ellipses(plane, bad_sigma):
    mu = np.array([[0.0, 0.0], [0.5, 0.5], [-1.0, 1.0]], np.float64)
    sigma = np.array([[1.0, 1.0], [bad_sigma, bad_sigma], [bad_sigma, 0.1]], np.float64)
    plane.follow_data(False)
    plane.set_latents(mu, sigma)
    plane.set_selected(1)  # the highlighted ellipse takes the huge sigma too
    plane.set_markers(mu[1:2], sigma[1:2], ["huge"])
    plane.setRange(xRange=(-2, 2), yRange=(-2, 2), padding=0)
    for _ in range(3):  # zooming in makes the on-screen radius bigger still
        image = plane.grab().toImage()
        plane.plotItem.vb.scaleBy((0.01, 0.01))
    assert not image.isNull()
    # (and no paint raised: the autouse no_guarded_failures fixture checks it)
    # The unit-sigma ellipse of point 0 is still drawn at its place on screen.
    plane.setRange(xRange=(-2, 2), yRange=(-2, 2), padding=0)
    image = plane.grab().toImage()
    edge = plane.mapFromScene(plane.plotItem.vb.mapViewToScene(QPointF(0.0, -1.0)))
    ratio = plane.devicePixelRatioF()
    near = [image.pixelColor(int((edge.x() + dx) * ratio), int((edge.y() + dy) * ratio))
            for dx in range(-2, 3) for dy in range(-2, 3)]
    background = image.pixelColor(5 * int(ratio), image.height() - 5 * int(ratio))
    assert any(c != background for c in near)


def test_non_finite_mu_paints(plane):
    mu = np.array([[np.nan, 0.0], [np.inf, -np.inf], [1e300, 1e300], [0.0, 0.0]])
    sigma = np.array([[1.0, 1.0], [1.0, 1.0], [1e300, 1e300], [0.5, 0.5]])
    plane.follow_data(True)
    plane.set_latents(mu, sigma)
    assert not plane.grab().toImage().isNull()  # no paint raised: see no_guarded_failures


class Exploding(pg.GraphicsObject):
    """An item whose paint always raises, as a bug in a paint would."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    @guarded(QRectF)
    def boundingRect(self):
        return QRectF(-1, -1, 2, 2)

    @guarded()
    def paint(self, p, *args):
        self.calls += 1
        raise OverflowError("cannot convert float infinity to integer")


@pytest.mark.guarded_failure
def test_a_failing_paint_is_logged_once_and_the_rest_draws(plane, caplog):
    item = Exploding()
    plane.addItem(item)
    plane.set_latents(np.zeros((1, 2)), np.full((1, 2), 0.5))
    with caplog.at_level(logging.ERROR, logger="explorer"):
        for _ in range(3):
            assert not plane.grab().toImage().isNull()
    assert item.calls >= 3
    records = [r for r in caplog.records if "Exploding.paint" in r.getMessage()]
    assert len(records) == 1 and "OverflowError" in records[0].getMessage()
    assert any("Exploding.paint" in name for name in paint_guard.failures())
