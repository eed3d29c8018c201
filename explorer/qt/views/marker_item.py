"""The encoded-image markers on the latent plane: every star and its name in one item.

One pg.TextItem per name cost ~2 ms each to build, and the names were rebuilt on every
snapshot (the markers follow training): 1,000 encoded images froze the GUI for ~2 s each
time. This item keeps the positions as an array and one QStaticText per name (made when a
name first appears), so a snapshot only replaces the array; a paint draws the markers in
view in device space, with the shapes made once.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPolygonF, QStaticText

from explorer.qt.paint_guard import guarded

STAR_RADIUS = 9.0  # px, outer radius of a marker's star (18 px across)
HIGHLIGHT_RADIUS = 12.0
LABEL_BACKING = QColor(0, 0, 0, 160)
MAX_DEVICE_COORD = 1e6  # a far-off marker is drawn off screen, never at an overflowing one


def star(radius: float) -> QPolygonF:
    """A five-pointed star centred on (0, 0), pointing up."""
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    return QPolygonF([QPointF(float(r * np.cos(a)), float(-r * np.sin(a)))
                      for r, a in zip(radii, angles, strict=True)])


class MarkerSetItem(pg.GraphicsObject):
    """Stars at ``mu`` (data coordinates) with their names; one of them highlighted."""

    def __init__(self, colour: QColor, highlight: QColor):
        super().__init__()
        self._mu = np.zeros((0, 2))
        self._names: list[str] = []
        self._texts: dict[str, QStaticText] = {}  # kept across updates: made once per name
        self._highlighted: int | None = None
        self._brush = QBrush(colour)
        self._text_pen = QPen(colour)
        self._pen = QPen(QColor("black"), 1)
        self._highlight_pen = QPen(highlight, 2)
        self._star = star(STAR_RADIUS)
        self._big_star = star(HIGHLIGHT_RADIUS)

    def set_markers(self, mu: np.ndarray, names: list[str], highlighted: int | None) -> None:
        self._mu = np.asarray(mu, np.float64).reshape(-1, 2)
        if names != self._names:
            self._names = list(names)
            keep = set(self._names)
            self._texts = {k: v for k, v in self._texts.items() if k in keep}
            for name in self._names:
                if name not in self._texts:
                    text = QStaticText(name)
                    text.setTextFormat(Qt.TextFormat.PlainText)
                    self._texts[name] = text
        self._highlighted = highlighted
        self.update()

    def names(self) -> list[str]:
        return list(self._names)

    def texts(self) -> list[QStaticText]:
        """The laid-out name of each marker, in marker order (kept across updates)."""
        return [self._texts[name] for name in self._names]

    def sizes(self) -> list[float]:
        """Each marker's star diameter in px (the highlighted one is bigger)."""
        return [2 * (HIGHLIGHT_RADIUS if i == self._highlighted else STAR_RADIUS)
                for i in range(len(self._mu))]

    def viewTransformChanged(self) -> None:
        self.prepareGeometryChange()  # the bounding rect is the view: it moved

    @guarded(QRectF)
    def boundingRect(self) -> QRectF:
        # The names stick out by their width in pixels: cover the whole view and cull in paint.
        if not len(self._mu):
            return QRectF()
        rect = self.viewRect()
        return QRectF() if rect is None else rect

    @guarded()
    def paint(self, p: QPainter, option, widget=None) -> None:
        n = len(self._mu)
        if n == 0:
            return
        t = p.transform()
        with np.errstate(over="ignore", invalid="ignore"):
            x = self._mu[:, 0] * t.m11() + t.dx()
            y = self._mu[:, 1] * t.m22() + t.dy()
        device = p.device()
        w, h = device.width(), device.height()
        margin = 2 * HIGHLIGHT_RADIUS
        # The names extend right of their star; NaN compares False and is dropped.
        visible = np.flatnonzero((x > -400) & (x < w + margin) & (y > -margin)
                                 & (y < h + margin))
        if len(visible) == 0:
            return
        x = np.clip(x, -MAX_DEVICE_COORD, MAX_DEVICE_COORD)
        y = np.clip(y, -MAX_DEVICE_COORD, MAX_DEVICE_COORD)
        p.resetTransform()
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        for i in visible.tolist():
            if i == self._highlighted:
                continue  # drawn last, on top
            self._draw_one(p, i, float(x[i]), float(y[i]), False)
        if self._highlighted is not None and self._highlighted in set(visible.tolist()):
            i = self._highlighted
            self._draw_one(p, i, float(x[i]), float(y[i]), True)

    def _draw_one(self, p: QPainter, i: int, x: float, y: float, highlighted: bool) -> None:
        shape = self._big_star if highlighted else self._star
        p.setPen(self._highlight_pen if highlighted else self._pen)
        p.setBrush(self._brush)
        p.drawPolygon(shape.translated(x, y))
        text = self._texts.get(self._names[i])
        if text is None:
            return
        size = text.size()
        corner = QPointF(x + STAR_RADIUS, y - STAR_RADIUS - size.height())
        p.fillRect(QRectF(corner.x() - 2, corner.y() - 1, size.width() + 4,
                          size.height() + 2), LABEL_BACKING)
        p.setPen(self._text_pen)
        p.drawStaticText(corner, text)
