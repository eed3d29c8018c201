"""Encoded-image markers: stars and names drawn by one item updated in place (1,000 names as
1,000 pg.TextItems were rebuilt on every snapshot and froze the GUI for ~2 s)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from explorer.qt.views.latent_view import MARKER_COLOUR, LatentView


@pytest.fixture
def plane(qtbot):
    view = LatentView()
    qtbot.addWidget(view)
    view.resize(500, 500)
    view.show()
    qtbot.waitExposed(view)
    view.follow_data(False)
    view.setRange(xRange=(-4, 4), yRange=(-4, 4), padding=0)
    return view


def test_a_thousand_markers_are_one_item_updated_in_place(plane):
    rng = np.random.default_rng(0)
    names = [f"image {i}.png" for i in range(1000)]
    plane.set_markers(rng.normal(size=(1000, 2)), np.full((1000, 2), 0.1), names)
    items = len(plane.scene().items())
    texts = plane.marker_texts()
    for k in range(5):  # snapshots: the markers move with training
        plane.set_markers(rng.normal(size=(1000, 2)), np.full((1000, 2), 0.1), names,
                          highlighted=k)
        assert not plane.grab().toImage().isNull()
    assert len(plane.scene().items()) == items  # nothing added or removed per update
    assert all(a is b for a, b in zip(plane.marker_texts(), texts, strict=True))  # made once
    assert plane.marker_names() == names


def test_a_marker_and_its_name_are_drawn_where_it_is(plane):
    plane.set_markers(np.array([[1.0, 1.0]]), np.array([[0.01, 0.01]]), ["WWWWWWWW"])
    image = plane.grab().toImage()
    ratio = plane.devicePixelRatioF()
    centre = plane.mapFromScene(plane.plotItem.vb.mapViewToScene(QPointF(1.0, 1.0)))

    def colour(dx, dy):
        return image.pixelColor(int((centre.x() + dx) * ratio), int((centre.y() + dy) * ratio))

    star = colour(0, 0)
    assert (star.red(), star.green(), star.blue()) == (
        MARKER_COLOUR.red(), MARKER_COLOUR.green(), MARKER_COLOUR.blue())
    # The name sits up and to the right of the star, in marker colour; without a name the
    # same place shows only the plane (whatever the theme's background).
    region = [(dx, dy) for dx in range(12, 60) for dy in range(-22, -10)]
    label = [colour(dx, dy) for dx, dy in region]
    assert any(c.red() > 150 and c.green() > 120 and c.blue() < 100 for c in label)
    plane.set_markers(np.array([[1.0, 1.0]]), np.array([[0.01, 0.01]]), [""])
    image = plane.grab().toImage()
    assert [colour(dx, dy) for dx, dy in region] != label


def test_markers_far_away_or_not_finite_paint(plane):
    mu = np.array([[1e300, 0.0], [np.nan, 1.0], [0.0, -np.inf], [0.5, 0.5]])
    plane.set_markers(mu, np.full((4, 2), 0.1), ["far", "nan", "inf", "near"])
    assert not plane.grab().toImage().isNull()  # and no paint raised (no_guarded_failures)
