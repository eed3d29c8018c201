"""Thumbnails on the plane: small pictures of the images at their mu, the embedding
projectors' most asked-for view. Level of detail: at most MAX_THUMBNAILS in view, chosen in a
fixed random priority order (the plane's), so the same images stay as the view moves."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QImage, QPainter

from explorer.qt.paint_guard import guarded
from explorer.qt.views.image_panel import to_qimage

MAX_THUMBNAILS = 300
THUMBNAIL_PX = 18  # on screen, the longer side
PRIORITY_SEED = 1


class ThumbnailItem(pg.GraphicsObject):
    """``set_images`` once per dataset, ``set_positions`` per snapshot (view coordinates)."""

    def __init__(self, limit: int = MAX_THUMBNAILS):
        super().__init__()
        self.limit = limit
        self._images: np.ndarray | None = None  # (N, H, W) grey or (N, H, W, 3) RGB, uint8
        self._pos = np.zeros((0, 2))
        self._order = np.zeros(0, np.int64)
        self._cache: dict[int, QImage] = {}
        self.drawn: np.ndarray = np.zeros(0, np.int64)  # the indices drawn in the last paint

    def set_images(self, images: np.ndarray | None) -> None:
        self._images = None if images is None else np.ascontiguousarray(images, np.uint8)
        self._cache.clear()
        n = 0 if images is None else len(images)
        self._order = np.random.default_rng(PRIORITY_SEED).permutation(n)
        self.update()

    def image_count(self) -> int:
        """How many images ``set_images`` gave (0 before, or for a colour dataset)."""
        return 0 if self._images is None else len(self._images)

    def set_positions(self, pos: np.ndarray) -> None:
        self.prepareGeometryChange()
        self._pos = np.asarray(pos, np.float64)
        self.update()

    def boundingRect(self) -> QRectF:
        if len(self._pos) == 0 or not np.isfinite(self._pos).all():
            return QRectF()
        lo, hi = self._pos.min(0), self._pos.max(0)
        return QRectF(lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]).adjusted(-1, -1, 1, 1)

    def chosen(self, rect: QRectF) -> np.ndarray:
        """The first ``limit`` points in priority order inside ``rect`` (view coords)."""
        if self._images is None or len(self._pos) != len(self._images):
            return np.zeros(0, np.int64)
        p = self._pos[self._order]
        inside = ((p[:, 0] >= rect.left()) & (p[:, 0] <= rect.right())
                  & (p[:, 1] >= rect.top()) & (p[:, 1] <= rect.bottom()))
        return self._order[inside][: self.limit]

    def _qimage(self, i: int) -> QImage:
        image = self._cache.get(i)
        if image is None:
            image = to_qimage(self._images[i])
            self._cache[i] = image
        return image

    @guarded()
    def paint(self, p: QPainter, option, widget=None) -> None:
        vb = self.getViewBox()
        if vb is None:
            return
        (x0, x1), (y0, y1) = vb.viewRange()
        self.drawn = self.chosen(QRectF(x0, y0, x1 - x0, y1 - y0))
        if len(self.drawn) == 0:
            return
        transform = p.transform()
        p.resetTransform()
        h, w = self._images.shape[1:3]
        scale = THUMBNAIL_PX / max(h, w)
        tw, th = w * scale, h * scale
        for i in self.drawn:
            c = transform.map(QPointF(*self._pos[i]))
            p.drawImage(QRectF(c.x() - tw / 2, c.y() - th / 2, tw, th), self._qimage(int(i)))
