"""A theme change restyles every view at once, and every text reads on its background."""

from __future__ import annotations

from dataclasses import replace

import pyqtgraph as pg
import pytest
from PySide6.QtGui import QColor

from explorer.qt import palette
from explorer.qt.theme import apply_theme
from explorer.qt.views.legend import OutsideLegend

WAIT_MS = 30_000


def luminance(c: QColor) -> float:
    def channel(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())


def contrast(a: QColor, b: QColor) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def texts_and_background(plot):
    """(what, colour) of every text in the plot's scene, and the background colour."""
    background = plot.backgroundBrush().color()
    texts = []
    for item in plot.scene().items():
        if isinstance(item, pg.AxisItem) and item.isVisible():
            texts.append((f"{item.orientation} axis ticks", item.textPen().color()))
            if item.label.isVisible() and item.labelText:
                texts.append((f"{item.orientation} axis label {item.labelText!r}",
                              QColor(item.labelStyle["color"])))
        elif isinstance(item, OutsideLegend) and item.items:
            # the names' colour (each sample's glyph has the colour of what it stands for)
            texts.append((f"legend {item.names()[:2]}", pg.mkColor(item.opts["color"])))
    return texts, background


@pytest.fixture
def restore_theme(qapp):
    yield
    apply_theme(qapp, "system")


def test_theme_switch_restyles_every_view_at_once_with_readable_text(qtbot, make_window,
                                                                    restore_theme):
    w = make_window()
    qtbot.waitUntil(lambda: w.state.current.snapshot is not None
                    and w.state.current.progress is not None
                    and len(w.state.current.progress.heldout.get("elbo", ())) >= 1, timeout=WAIT_MS)
    with qtbot.waitSignal(w.inspector.inspected, timeout=WAIT_MS):
        w.selection.select_point(3)
    with qtbot.waitSignal(w.colouring.computed, timeout=WAIT_MS):
        w.colouring.choose("inference_gap")  # the colour bar, with its title
    plots = {"plane": w.latent_view, "curves": w.elbo_view.plot, "manifold": w.manifold_view.plot}
    for theme in ("light", "dark", "light"):
        w.preferences.apply(replace(w.preferences.prefs,
                                    theme=theme))  # no reset, no new snapshot needed
        dark = theme == "dark"
        for name, plot in plots.items():
            texts, background = texts_and_background(plot)
            assert (background.lightness() < 128) == dark, (name, theme)
            image = plot.grab().toImage()
            assert image.pixelColor(1, 1) == background, (name, theme)  # drawn, not only set
            assert texts or name == "manifold"
            for what, colour in texts:
                assert contrast(colour, background) >= 4.5, (theme, name, what, colour.name())
        status = w.latent_view.status_colour()
        assert contrast(status, w.latent_view.backgroundBrush().color()) >= 4.5, theme
        bar_title = w.latent_view.colour_bar().getAxis("left").labelText
        assert bar_title.startswith("inference gap")
        assert w.latent_view.colour_bar().getAxis("right").labelText == ""  # one title, not two
        bar_low = w.latent_view.colour_bar().colorMap().map([0.0], mode="qcolor")[0]
        assert bar_low == palette.value_colours()[0]  # the bar shows the dots' colours
    assert w.latent_view.legend_names() == []  # coloured by a value: the bar explains it


def test_value_colours_stand_out_on_the_dark_background():
    dark_base = QColor("#1e1f22")
    worst = min(contrast(c, dark_base) for c in palette.value_colours(dark=True))
    assert worst >= 3.0  # WCAG's minimum for graphics; viridis's own dark end is ~1.3
    assert min(contrast(c, dark_base) for c in palette.value_colours(dark=False)) < 2
