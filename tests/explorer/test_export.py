"""Exports parse back with standard tools: csv / numpy for CSV, Pillow for PNG, ElementTree
for SVG; the manifold PNG is pixel-exact."""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

from explorer.qt.export import (
    ELBO_BATCH,
    ELBO_SAMPLES,
    HISTORY_COLUMNS,
    LATENT_COLUMNS,
    export_history_csv,
    export_latents_csv,
    export_mosaic_png,
    export_plane_png,
    export_plane_svg,
)
from explorer.qt.views.latent_view import LatentView
from explorer.qt.views.manifold_view import ManifoldView
from trainer import Session, TrainConfig
from trainer.evidence import dataset_evidence

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def snapshot(digits):
    session = Session(digits, TrainConfig(hidden=(32,), seed=2, threads=1, batch_size=64,
                                          eval_every_seconds=0.05))
    while len(session.train_history) < 2 and session.step_count < 2000:
        session.step()
    session.evaluate_heldout()
    return session.snapshot()


@pytest.fixture
def plane(qtbot, digits, snapshot):
    view = LatentView()
    qtbot.addWidget(view)
    view.set_dataset(digits.labels, digits.label_names)
    view.set_latents(snapshot.mu, snapshot.sigma)
    view.resize(420, 360)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_latents_csv_parses_back(digits, snapshot, tmp_path):
    path = export_latents_csv(tmp_path / "latents.csv", digits, snapshot)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == LATENT_COLUMNS
    body = rows[1:]
    assert len(body) == len(digits)
    assert [int(r[0]) for r in body] == list(range(len(digits)))
    assert [int(r[1]) for r in body] == digits.labels.tolist()
    assert all(r[2] == "" for r in body)  # the built-in digits have no per-image names
    table = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(3, 4, 5, 6, 7))
    # mu and sigma are the plane's dots: f_phi of each datapoint's one fixed x.
    np.testing.assert_allclose(table[:, 0:2], snapshot.mu, rtol=0, atol=1e-5)
    np.testing.assert_allclose(table[:, 2:4], snapshot.sigma, rtol=1e-5)
    x = dataset_evidence(digits, snapshot.config.binarization, np.arange(ELBO_BATCH))
    assert set(np.unique(x)) == {0.0, 1.0}
    first = snapshot.model.elbo(x, samples=ELBO_SAMPLES)["elbo"]
    np.testing.assert_allclose(table[:ELBO_BATCH, 4], first, rtol=1e-6)
    assert np.all(np.isfinite(table[:, 4])) and np.all(table[:, 4] < 0)  # nats, <= log p(x)


def test_history_csv_parses_back(snapshot, tmp_path):
    p = snapshot.progress
    path = export_history_csv(tmp_path / "history.csv", p.train, p.heldout, p.logpx)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == HISTORY_COLUMNS
    train = [r for r in rows if r["split"] == "train"]
    heldout = [r for r in rows if r["split"] == "heldout"]
    assert len(train) == len(p.train["elbo"]) > 0 and len(heldout) == len(p.heldout["elbo"]) > 0
    np.testing.assert_allclose([float(r["elbo"]) for r in heldout], p.heldout["elbo"],
                               rtol=1e-9)
    logpx = [r for r in rows if r["split"] == "heldout_logpx"]
    assert len(logpx) == len(p.logpx["log_px"])
    assert all(r["log_px"] == "" for r in train)  # a table's missing column stays empty
    assert os.listdir(tmp_path) == ["history.csv"]


def test_plane_png_at_a_chosen_width_and_svg_with_paths(plane, tmp_path):
    png = export_plane_png(tmp_path / "plane.png", plane, width=800)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width == 800 and im.height > 100
        assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 3
    default = export_plane_png(tmp_path / "plane-default.png", plane)
    with Image.open(default) as im:
        assert im.width > 100

    svg = export_plane_svg(tmp_path / "plane.svg", plane)
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f".//{SVG}path")) > 0
    # Rendered back at the plane's size, the SVG matches the PNG export: axes, ticks and
    # data line up (a DPI mismatch once shifted every tick label).
    with Image.open(default) as im:
        reference = np.asarray(im.convert("L"), np.float64)
    h, w = reference.shape
    image = QImage(w, h, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    rendered = image.convertToFormat(QImage.Format.Format_Grayscale8)
    grey = np.frombuffer(rendered.constBits(), np.uint8).reshape(h, rendered.bytesPerLine())
    assert np.mean(np.abs(grey[:, :w] - reference) > 40) < 0.01
    assert sorted(os.listdir(tmp_path)) == ["plane-default.png", "plane.png", "plane.svg"]


def test_mosaic_png_is_pixel_exact_and_upscaled(qtbot, snapshot, tmp_path):
    view = ManifoldView()
    qtbot.addWidget(view)
    view.set_grid_size(5)
    view.set_model(snapshot.model)
    mosaic = view.mosaic()
    assert mosaic.shape == (40, 40)
    path = export_mosaic_png(tmp_path / "manifold.png", mosaic, scale=3)
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "L", (120, 120))
        pixels = np.asarray(im)
    expected = np.rint(np.clip(mosaic, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(pixels[::3, ::3], expected)
    np.testing.assert_array_equal(pixels[1::3, 2::3], expected)
    # The top-left tile is the decoder's mean at the grid's first z, untouched.
    tile = snapshot.model.decode_mean(view.grid_z()[0, 0][None].astype(np.float32))[0]
    np.testing.assert_array_equal(pixels[:24:3, :24:3],
                                  np.rint(np.clip(tile, 0, 1) * 255).astype(np.uint8))

    with pytest.raises(ValueError, match="no manifold to export yet"):
        export_mosaic_png(tmp_path / "none.png", None)
    with pytest.raises(ValueError, match="scale must be between 1 and 64"):
        export_mosaic_png(tmp_path / "big.png", mosaic, scale=0)
    assert os.listdir(tmp_path) == ["manifold.png"]


def test_svg_on_a_full_disk_keeps_the_old_file(plane, tmp_path):
    """A real EFBIG ("File too large") from RLIMIT_FSIZE, as a full disk gives ENOSPC: the
    export raises and the previous SVG is untouched (Qt's SVG writer alone fails silently
    and the truncated file used to be renamed over it)."""
    import resource
    import signal

    target = tmp_path / "plane.svg"
    target.write_text("<svg>the previous export</svg>")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a killing signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(OSError):
            export_plane_svg(target, plane)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert target.read_text() == "<svg>the previous export</svg>"
    assert sorted(os.listdir(tmp_path)) == ["plane.svg"]
