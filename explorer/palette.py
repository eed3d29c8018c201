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


def value_colourmap() -> pg.ColorMap:
    return pg.colormap.get(VALUE_MAP)


def value_colours() -> list[QColor]:
    """``VALUE_LEVELS`` steps of the value colour map, low to high."""
    lut = value_colourmap().getLookupTable(0.0, 1.0, VALUE_LEVELS, alpha=False, mode="byte")
    return [QColor(int(r), int(g), int(b)) for r, g, b in np.asarray(lut)]
