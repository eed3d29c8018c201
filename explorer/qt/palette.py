"""Colours for labels and per-point values, chosen to read on dark and light backgrounds."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

# Tableau 10 (matplotlib's tab10): ten mid-lightness hues that stay distinct on black and white.
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
UNLABELLED = "#4c9be8"
MISSING = "#808080"  # a value that is NaN, or a label outside the names
VALUE_MAP = "viridis"
VALUE_LEVELS = 64  # a per-point scalar is shown with this many colour steps


def label_colour(i: int) -> QColor:
    """The colour of label ``i``; beyond ten labels, evenly spaced hues."""
    if 0 <= i < len(TAB10):
        return QColor(TAB10[i])
    return pg.intColor(i, hues=max(i + 1, 12))


def label_colours(n: int) -> list[QColor]:
    return [label_colour(i) for i in range(n)]


# On a dark background viridis's dark purple end vanishes: the dark theme uses its upper part.
DARK_VALUE_START = 0.4


def dark_background() -> bool:
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication

    return QApplication.palette().color(QPalette.ColorRole.Base).lightness() < 128


def value_colourmap(dark: bool | None = None) -> pg.ColorMap:
    """The map for per-point values on the current theme's background (``dark`` overrides)."""
    full = pg.colormap.get(VALUE_MAP)
    if not (dark_background() if dark is None else dark):
        return full
    positions = np.linspace(0.0, 1.0, 32)
    colours = full.map(DARK_VALUE_START + (1 - DARK_VALUE_START) * positions, mode="byte")
    return pg.ColorMap(positions, colours)


def value_colours(dark: bool | None = None) -> list[QColor]:
    """``VALUE_LEVELS`` steps of the value colour map, low to high."""
    lut = value_colourmap(dark).getLookupTable(0.0, 1.0, VALUE_LEVELS, alpha=False,
                                               mode="byte")
    return [QColor(int(r), int(g), int(b)) for r, g, b in np.asarray(lut)]
