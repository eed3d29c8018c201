"""The built-in sprites: seeded, and every factor label true to the rendered image."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from trainer import load_source
from trainer.sprites import RADIUS, SHAPES, centre_px, load_sprites


@pytest.fixture(scope="module")
def grey():
    return load_sprites(n=800, seed=3, colour=False)


def test_the_same_seed_gives_the_same_images():
    a, b = load_sprites(n=50, seed=7), load_sprites(n=50, seed=7)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    assert a.fingerprint() == b.fingerprint()
    assert not np.array_equal(load_sprites(n=50, seed=8).pixels, a.pixels)


def test_each_shape_centroid_is_its_x_y(grey):
    ink = grey.pixels.astype(np.float64)
    rows, cols = np.indices(grey.image_shape) + 0.5  # pixel centres
    mass = ink.sum((1, 2))
    x = (ink * cols).sum((1, 2)) / mass
    y = (ink * rows).sum((1, 2)) / mass
    f = grey.factors
    for k in range(len(SHAPES)):
        which = f["shape"] == k
        assert which.sum() > 100
        assert np.abs(x[which] - centre_px(f["x"][which])).max() < 0.2, SHAPES[k]
        assert np.abs(y[which] - centre_px(f["y"][which])).max() < 0.2, SHAPES[k]
    # Whole shapes, never cut by the frame.
    assert ink[:, [0, -1], :].max() == 0 and ink[:, :, [0, -1]].max() == 0


def test_scale_rotation_and_labels(grey):
    f = grey.factors
    ink = grey.pixels.astype(np.float64) / 255
    squares = f["shape"] == 0  # corners on the reach: side sqrt(2) R s, area 2 (R s)^2
    ratio = ink[squares].sum((1, 2)) / (2 * (RADIUS * f["scale"][squares]) ** 2)
    assert abs(ratio.mean() - 1) < 0.015 and np.abs(ratio - 1).max() < 0.05  # edge pixels
    # An ellipse's long axis points along its rotation (mod pi): x right, y down.
    rows, cols = np.indices(grey.image_shape) + 0.5
    for i in np.flatnonzero(f["shape"] == 1)[:40]:
        w = ink[i] / ink[i].sum()
        dx, dy = cols - (w * cols).sum(), rows - (w * rows).sum()
        cov = [[(w * dx * dx).sum(), (w * dx * dy).sum()], [(w * dx * dy).sum(),
                                                              (w * dy * dy).sum()]]
        major = np.linalg.eigh(cov)[1][:, 1]
        diff = (np.arctan2(major[1], major[0]) - f["rotation"][i]) % np.pi
        assert min(diff, np.pi - diff) < np.radians(4), i
    np.testing.assert_array_equal(grey.labels, f["shape"].astype(np.int64))
    assert grey.label_names == list(SHAPES) and grey.channels == 1
    assert set(f) == {"shape", "x", "y", "scale", "rotation"}


def test_colour_sprites_have_their_hue():
    d = load_sprites(n=200, seed=4)
    assert d.pixels.shape == (200, 32, 32, 3) and d.channels == 3
    for i in range(0, 200, 7):
        brightest = d.pixels[i].reshape(-1, 3)[d.pixels[i].sum(-1).argmax()] / 255
        hue = colorsys.rgb_to_hsv(*brightest)[0]
        diff = abs(hue - d.factors["hue"][i])
        assert min(diff, 1 - diff) < 0.01, i


def test_sprites_are_built_in_sources():
    d = load_source("sprites-grey")
    assert (len(d), d.image_shape, d.channels, d.source) == (10_000, (32, 32), 1, "sprites-grey")
    assert load_source("sprites").channels == 3
