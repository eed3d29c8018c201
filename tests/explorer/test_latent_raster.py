"""The latent plane's dots are stamped into one image with numpy (issue 15): each dot lands
where the view maps its mu, in its colour, later dots on top; nothing that reaches the
painter can be non-finite, whatever the latents."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor

from explorer.qt.views.latent_view import (
    MAX_RING_SAMPLES,
    LatentView,
    content_rects,
    ring_samples,
)


@pytest.fixture
def plot(qtbot):
    view = LatentView()
    qtbot.addWidget(view)
    view.resize(500, 500)
    view.show()
    qtbot.waitExposed(view)
    return view


def show(plot, mu, sigma=None, labels=None, view=(-4, 4, -4, 4)):
    mu = np.asarray(mu, np.float32)
    sigma = np.full_like(mu, 1e-3) if sigma is None else np.asarray(sigma, np.float32)
    if labels is not None:
        plot.set_dataset(np.asarray(labels), [str(i) for i in range(int(max(labels)) + 1)])
    plot.follow_data(False)
    plot.set_latents(mu, sigma)
    plot.plotItem.vb.setRange(xRange=view[:2], yRange=view[2:], padding=0)
    plot.viewport().repaint()


def colour_at(plot, x, y) -> QColor:
    image = plot.grab().toImage()
    p = plot.mapFromScene(plot.plotItem.vb.mapViewToScene(QPointF(x, y)))
    dpr = image.devicePixelRatio()
    return image.pixelColor(int(p.x() * dpr), int(p.y() * dpr))


def test_each_dot_is_drawn_at_its_mu_in_its_label_colour(plot):
    plot.set_ellipse_budget(0)  # the dots alone (an outline would blend over them)
    show(plot, [[-2.0, 1.0], [1.5, -2.5], [2.5, -1.0]], labels=[0, 1, 2])
    colours = plot.point_colours()
    background = colour_at(plot, 0.3, 0.3)
    for (x, y), label in (((-2.0, 1.0), 0), ((1.5, -2.5), 1), ((2.5, -1.0), 2)):
        got = colour_at(plot, x, y)
        want = colours[label]
        assert got != background
        assert abs(got.red() - want.red()) <= 2 and abs(got.green() - want.green()) <= 2 \
            and abs(got.blue() - want.blue()) <= 2, (label, got.name(), want.name())


def test_the_later_dot_is_on_top_and_repaints_reuse_the_image(plot):
    plot.set_ellipse_budget(0)
    show(plot, [[0.0, 0.0], [0.0, 0.0]], labels=[0, 1])
    order = plot.draw_order()  # the draw order: the last drawn index wins the shared pixel
    top = plot.point_colours()[[0, 1][order[-1]]]
    assert colour_at(plot, 0.0, 0.0).name() == QColor(top.red(), top.green(),
                                                      top.blue()).name()
    image = plot.point_image()
    plot.viewport().repaint()  # same data, same view: the cached image is blitted
    assert plot.point_image() is image


def test_moved_and_recoloured_dots_are_drawn_where_they_now_are(plot):
    plot.set_ellipse_budget(0)
    show(plot, [[-1.0, -1.0], [2.0, 2.0]], labels=[0, 1])
    background = colour_at(plot, 0.0, 0.0)
    assert colour_at(plot, -1.0, -1.0) != background
    plot.set_latents(np.array([[0.0, 0.0], [2.0, 2.0]], np.float32),
                     np.full((2, 2), 1e-3, np.float32))
    plot.viewport().repaint()  # same view, new data
    assert colour_at(plot, -1.0, -1.0) == background
    assert colour_at(plot, 0.0, 0.0) != background
    before = colour_at(plot, 0.0, 0.0).name()
    plot.set_point_values(np.array([0.0, 1.0]), "a value")  # a colouring by value
    plot.viewport().repaint()
    assert colour_at(plot, 0.0, 0.0).name() != before


def test_non_finite_latents_and_a_huge_sigma_paint_without_crashing(plot):
    mu = np.array([[np.nan, 0.0], [1.0, 1.0], [np.inf, 2.0], [-np.inf, np.nan],
                   [0.5, -0.5]], np.float32)
    sigma = np.array([[1.0, 1.0], [1e16, 1e16], [np.inf, 1.0], [np.nan, 1.0],
                      [1e-3, 1e-3]], np.float32)
    plot.set_ellipse_budget(0)
    show(plot, mu, sigma)
    assert colour_at(plot, 1.0, 1.0) != colour_at(plot, -3.0, -3.0)  # finite dots drawn
    plot.set_ellipse_budget(100)  # now with the huge outlines (1e16 data units)
    for view in ((-4, 4, -4, 4), (-1e-6, 1e-6, -1e-6, 1e-6), (-1e12, 1e12, -1e12, 1e12)):
        plot.plotItem.vb.setRange(xRange=view[:2], yRange=view[2:], padding=0)
        plot.viewport().repaint()  # zoomed far in and far out: still no crash
    # 1e16 px on screen, and latents far beyond any screen
    show(plot, [[0.0, 0.0], [1e30, -1e30]], sigma=[[1e16, 1e16], [1e16, 1e-30]])
    plot.viewport().repaint()


def test_rings_are_rasterised_where_the_ellipse_is_and_big_ones_thinned_to_the_budget(plot):
    show(plot, [[0.0, 0.0]], sigma=[[1.0, 2.0]])  # 1-sigma ring: half axes 1 and 2
    assert plot.ellipse_image() is not None  # one ring of ~100 px radius: the raster path
    background = colour_at(plot, -3.0, 3.5)
    for x, y in ((1.0, 0.0), (-1.0, 0.0), (0.0, 2.0), (0.0, -2.0)):
        # A translucent grey ring differs from either theme's background by > 20 levels.
        ring = max(abs(colour_at(plot, x + dx, y + dy).red() - background.red())
                   for dx in (-0.02, 0, 0.02) for dy in (-0.02, 0, 0.02))
        assert ring > 20, (x, y)
    assert colour_at(plot, 0.5, 0.5) == background  # inside the ring: nothing drawn
    show(plot, [[3.5, 0.0]], sigma=[[1.0, 1.0]])  # crosses the right edge: clipped there
    for x, y in ((2.5, 0.0), (3.5, 1.0), (3.5, -1.0)):
        ring = max(abs(colour_at(plot, x + dx, y + dy).red() - background.red())
                   for dx in (-0.02, 0, 0.02) for dy in (-0.02, 0, 0.02))
        assert ring > 20, (x, y)
    rng = np.random.default_rng(0)
    many = rng.normal(size=(4000, 2)).astype(np.float32)
    show(plot, many, sigma=np.full_like(many, 1.5))  # an untrained encoder's big rings
    drawn, in_view = plot.ellipse_status()
    assert plot.ellipse_image() is not None  # rasterised too, not drawLines (~40 ms)
    # Thinned to the ring-sample budget: the drawn rings fit it, one more would not.
    pw, ph = plot.plotItem.vb.viewPixelSize()
    dpr = plot.devicePixelRatioF()
    per_ring = int(ring_samples(np.array([dpr * 1.5 / pw]), np.array([dpr * 1.5 / ph]))[0])
    assert 0 < drawn < in_view
    assert drawn * per_ring <= MAX_RING_SAMPLES < (drawn + 1) * per_ring
    x, y = plot.ellipse_centres()[0]
    right = max(abs(colour_at(plot, x + 1.5 + dx, y).red() - background.red())
                for dx in (-0.02, 0, 0.02))
    assert right > 20  # a drawn ring's pixel is shaded


def test_only_the_part_of_the_image_with_something_drawn_is_blitted():
    target, source = content_rects(20.7, 10.2, 5.0, 6.0, 100, 80, 2.0)  # any order
    assert (source.x(), source.y(), source.width(), source.height()) == (10, 5, 12, 2)
    assert (target.x(), target.y(), target.width(), target.height()) == (5, 2.5, 6, 1)
    # Far off, infinite or NaN edges: clipped to the image, or the whole of it.
    _, whole = content_rects(-np.inf, 1e300, -5.0, np.inf, 100, 80, 1.0)
    assert (whole.x(), whole.y(), whole.width(), whole.height()) == (0, 0, 100, 80)
    _, unsure = content_rects(np.nan, 3.0, 0.0, 1.0, 100, 80, 1.0)
    assert (unsure.width(), unsure.height()) == (100, 80)
    assert content_rects(120.0, 130.0, 0.0, 10.0, 100, 80, 1.0) is None  # beside the image
