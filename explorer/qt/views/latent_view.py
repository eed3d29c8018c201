"""The latent plane: every datapoint's mu, its sigma ellipse, the prior, and click/drag to decode.

Mouse: a left press on empty plane decodes that z (``zRequested``) and keeps decoding while the
button is held and the mouse moves; a left press within a few pixels of a dot selects it
(``pointSelected``). Panning: middle-drag, or left-drag with Shift or Ctrl held; right-drag and
the wheel zoom (pyqtgraph's defaults). Escape clears the selection.

Speed at 70,000 points: the dots are stamped with numpy into one image, and the dataset's sigma
ellipses are rasterised with numpy as 1-px rings into another; each image is kept between
paints, so only a change of data or view costs numpy work, and a snapshot costs one paint, not
two (no item changes inside a paint). Ellipses are drawn only for points in view, up to a
budget (and fewer when they are big on screen: a cap on the outline pixels per frame), chosen
in a fixed random priority order so the subset is stable from frame to frame. The few outlines
with a pen width (the selection, the markers) are drawn with one ``drawLines`` call.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QCoreApplication, QEvent, QLineF, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPaintEngine, QPainter, QPalette, QPen, QStaticText
from PySide6.QtWidgets import QApplication, QGraphicsItem, QToolTip

from explorer.qt import palette
from explorer.qt.paint_guard import guarded
from explorer.qt.views.legend import ABOVE_PLOT, OutsideLegend
from explorer.qt.views.marker_item import MarkerSetItem

POINT_SIZE = 5  # px, diameter of a datapoint's dot
PICK_RADIUS = 6  # px: a press or hover this close to a dot picks it
PAN_MODIFIERS = Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier
DEFAULT_ELLIPSE_BUDGET = 5000
MAX_ELLIPSE_SEGMENTS = 40_000  # line segments per frame for all ellipses: drawLines costs per one
# Ring samples per frame (~1 per outline pixel) for all dataset ellipses, which are always
# rasterised with numpy (~2 ms at this budget; drawLines took ~40 ms for an untrained
# encoder's ~2,000 rings of 80 px radius, a saturated grey blob anyway). Past it, the
# ellipses are thinned further, in priority order, and the status says so.
MAX_RING_SAMPLES = 400_000
# Device coordinates are clamped to this before any outline arithmetic (finite, and far
# beyond any screen).
MAX_DEVICE_COORD = 1e12
PRIOR_EXTENT = 3.0  # the followed view always shows the prior's 3-sigma circle
FOLLOW_FILL = 0.6  # refit the followed view when the data fill less than this of it
PRIORITY_SEED = 0  # seeds the fixed order in which points get an ellipse and are drawn
ELLIPSE_COLOUR = QColor(170, 170, 170, 110)
PRIOR_COLOUR = QColor(150, 150, 150, 120)
HIGHLIGHT_COLOUR = QColor(255, 255, 255)
MARKER_COLOUR = QColor(255, 215, 0)
CROSSHAIR_COLOUR = QColor(255, 70, 70)
REFINEMENT_COLOUR = QColor(230, 120, 40, 170)
_REFRESH_EVENT = QEvent.Type(QEvent.registerEventType())  # rebuild the ellipses' subset


def prior_circles(levels=(1, 2, 3), segments: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """The standard normal prior's k-sigma circles, separated by NaN for connect='finite'."""
    theta = np.append(np.linspace(0.0, 2.0 * np.pi, segments + 1), np.nan)
    x = np.concatenate([k * np.cos(theta) for k in levels])
    y = np.concatenate([k * np.sin(theta) for k in levels])
    return x, y


def _bounds(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float] | None:
    if len(x) == 0:
        return None
    b = (x.min(), x.max(), y.min(), y.max())  # NaN and inf show here: then the slow path
    if np.all(np.isfinite(b)):
        return tuple(float(v) for v in b)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        b = (np.nanmin(x), np.nanmax(x), np.nanmin(y), np.nanmax(y))
    if np.all(np.isfinite(b)):
        return tuple(float(v) for v in b)
    ok = np.isfinite(x) & np.isfinite(y)  # the rare slow path: infinities
    if not ok.any():
        return None
    return float(x[ok].min()), float(x[ok].max()), float(y[ok].min()), float(y[ok].max())


def _rect(b: tuple[float, float, float, float] | None) -> QRectF:
    if b is None:
        return QRectF()
    return QRectF(b[0], b[2], b[1] - b[0], b[3] - b[2])


# A dot's pixels around its centre: a disc of radius 2.5 px, POINT_SIZE across (21 pixels),
# rim first (the centre pass last).
DOT_STAMP = np.array(sorted(((dx, dy) for dy in range(-2, 3) for dx in range(-2, 3)
                             if dx * dx + dy * dy <= 2.5 ** 2),
                            key=lambda d: -(d[0] ** 2 + d[1] ** 2)))
DOT_STAMP_OFFSETS_X, DOT_STAMP_OFFSETS_Y = DOT_STAMP[:, 0], DOT_STAMP[:, 1]
DOT_STAMP_REACH = 2  # pixels from a dot's centre to its farthest stamp pixel
# Padding of the image buffer: a centre up to the reach off the device still shows its rim,
# and its stamp still lands inside the buffer.
DOT_STAMP_PAD = 2 * DOT_STAMP_REACH


def ring_samples(ax_px: np.ndarray, ay_px: np.ndarray) -> np.ndarray:
    """Samples a rasterised ring gets: its perimeter in device pixels rounded up to a power
    of 2^(1/4) (few distinct counts, so few vectorised passes; at most 19 % oversampled),
    from 8 to 4096; finite whatever the half axes."""
    with np.errstate(over="ignore", invalid="ignore"):
        perimeter = np.nan_to_num(np.pi * (ax_px + ay_px), nan=1.0, posinf=4096.0)
    quarter_bits = np.clip(np.ceil(4 * np.log2(np.maximum(perimeter, 1.0))), 12, 48)
    return np.ceil(2.0 ** (quarter_bits / 4)).astype(np.int64)


def rotated_extents(half_axes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(n, 2) half widths along x and y of ellipses with these half axes, the first at
    ``angles``: the bounding box of each."""
    a, b = half_axes[:, 0], half_axes[:, 1]
    c, s = np.cos(angles), np.sin(angles)
    return np.stack((np.hypot(a * c, b * s), np.hypot(a * s, b * c)), axis=1)


def _read_only(a: np.ndarray) -> np.ndarray:
    """A view of ``a`` that cannot be written through."""
    v = a.view()
    v.flags.writeable = False
    return v


def _first_position(item: pg.ScatterPlotItem) -> tuple[float, float] | None:
    """The data position of a one-spot scatter item, or None when it shows none."""
    d = item.data
    return None if len(d) == 0 else (float(d["x"][0]), float(d["y"][0]))


def premultiplied_argb(c: QColor) -> int:
    a = c.alpha()
    return (a << 24) | ((c.red() * a // 255) << 16) | ((c.green() * a // 255) << 8) \
        | (c.blue() * a // 255)


def _device_key(p: QPainter, widget) -> tuple:
    """What a cached device-space array depends on: the painter's transform and device."""
    t = p.transform()
    dpr = widget.devicePixelRatioF() if widget is not None else 1.0
    return (t.m11(), t.m12(), t.m21(), t.m22(), t.dx(), t.dy(), p.device().width(),
            p.device().height(), dpr)


def content_rects(x0: float, x1: float, y0: float, y1: float, w: int, h: int, dpr: float
                  ) -> tuple[QRectF, QRectF] | None:
    """(target in logical pixels, source in image pixels) of the part of a w x h device
    image that holds what was drawn between device pixels x0..x1, y0..y1 (inclusive, any
    order, possibly off the image); None when none of it is on the image. Blitting only
    that part saves blending the empty rest (the dots fill a fraction of the plane)."""
    if np.isnan((x0, x1, y0, y1)).any():  # not expected: then the whole image
        x0, x1, y0, y1 = 0, w, 0, h
    # Clipped first: an edge may be far off the image, or infinite.
    x0, x1 = sorted(min(max(float(v), -1.0), w + 1.0) for v in (x0, x1))
    y0, y1 = sorted(min(max(float(v), -1.0), h + 1.0) for v in (y0, y1))
    a, b = max(0, int(np.floor(x0))), min(w, int(np.ceil(x1)) + 1)
    c, d = max(0, int(np.floor(y0))), min(h, int(np.ceil(y1)) + 1)
    if b <= a or d <= c:
        return None
    source = QRectF(a, c, b - a, d - c)
    return QRectF(a / dpr, c / dpr, (b - a) / dpr, (d - c) / dpr), source


def blit(p: QPainter, image: QImage, rects: tuple[QRectF, QRectF] | None) -> None:
    """Draw a device-sized image at the painter's origin: only its part ``rects`` (see
    content_rects) on screen; all of it elsewhere (the SVG engine ignores a source rect,
    and would squeeze the whole image into the target)."""
    if p.paintEngine().type() != QPaintEngine.Type.Raster:
        p.drawImage(QPointF(0.0, 0.0), image)
    elif rects is not None:
        p.drawImage(rects[0], image, rects[1])


class PointCloudItem(pg.GraphicsObject):
    """Many same-size dots, each one of a few colours, stamped with numpy into one image.

    The image is kept between paints and made again only when the data, the colours or the
    view transform change, so a repaint that changes none of them (crosshair, hover,
    tooltips) only blits it.
    """

    def __init__(self):
        super().__init__()
        self._x = np.zeros(0)
        self._y = np.zeros(0)
        self._finite = True  # every x, y finite: no per-point culling test for NaN
        self._colour = np.zeros(0, np.int64)  # colour index per point
        self._colours: list[QColor] = [QColor(palette.UNLABELLED)]
        self._argb = np.array([premultiplied_argb(self._colours[0])], np.uint32)
        self._point_argb: np.ndarray | None = None  # _argb per point, made when first drawn
        self._bounds: tuple[float, float, float, float] | None = None
        self._pixels: np.ndarray | None = None  # padded ARGB buffer the dots are stamped in
        self._scratch = np.zeros((2, 0))  # padded pixel coordinates per point, reused
        self._base = np.zeros(0, np.intp)  # pixel index per point, reused
        self._image: QImage | None = None
        self._image_key: tuple | None = None  # the device key the image was made for
        self._image_owner = None
        self._rects: tuple[QRectF, QRectF] | None = None  # the image's part with dots

    def set_points(self, xy: np.ndarray, colour: np.ndarray | None = None,
                   bounds: tuple[float, float, float, float] | None = None) -> None:
        """xy (N, 2) in draw order (last on top); colour (N,) indexes the colour list
        (None keeps the current one, which must have N entries). ``bounds``: xy's finite
        (xmin, xmax, ymin, ymax) when the caller knows them (of the unpermuted array)."""
        self.prepareGeometryChange()
        self._x, self._y = xy[:, 0], xy[:, 1]
        if colour is not None:
            self._set_colour(colour)
        self._bounds = _bounds(self._x, self._y) if bounds is None else bounds
        self._finite = self._bounds is not None and bool(np.isfinite(xy).all())
        self._image = None
        self.informViewBoundsChanged()
        self.update()

    def set_colour_index(self, colour: np.ndarray) -> None:
        self._set_colour(colour)
        self.update()

    def _set_colour(self, colour: np.ndarray) -> None:
        self._colour = colour
        self._point_argb = None
        self._image = None

    def set_colours(self, colours: list[QColor]) -> None:
        self._colours = list(colours)
        self._argb = np.array([premultiplied_argb(c) for c in self._colours], np.uint32)
        self._point_argb = None
        self._image = None
        self.update()

    @property
    def colours(self) -> list[QColor]:
        """The colours a point's colour index picks from."""
        return list(self._colours)

    @property
    def image(self) -> QImage | None:
        """The cached image the dots are stamped in: None until painted after a change."""
        return self._image

    @guarded(QRectF)
    def boundingRect(self) -> QRectF:
        return _rect(self._bounds)

    @guarded((None, None))
    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange=None):
        if self._bounds is None:
            return (None, None)
        return self._bounds[2 * ax: 2 * ax + 2]

    def pixelPadding(self) -> float:
        return POINT_SIZE

    @guarded()
    def paint(self, p: QPainter, option, widget=None) -> None:
        if len(self._x) == 0 or self._bounds is None:
            return
        key = _device_key(p, widget)
        if self._image is None or self._image_key != key:
            self._rasterise(key)
        if self._image is not None:
            p.resetTransform()
            blit(p, self._image, self._rects)

    def _rasterise(self, key: tuple) -> None:
        """Stamp every visible dot into one image, in draw order (a later dot overwrites
        an earlier one, though an earlier dot's centre shows through a later one's rim):
        one numpy scatter per stamp pixel, ~4x cheaper than drawPixmapFragments."""
        self._image_key = key
        self._image = None
        m11, _, _, m22, dx, dy, dw, dh, dpr = key
        w, h = int(round(dw * dpr)), int(round(dh * dpr))
        if w <= 0 or h <= 0 or w > 16384 or h > 16384:
            return
        pad = DOT_STAMP_PAD
        width = w + 2 * pad
        if self._pixels is None or self._pixels.shape != (h + 2 * pad, width):
            self._pixels = np.empty((h + 2 * pad, width), np.uint32)
        buf = self._pixels
        buf.fill(0)
        if self._point_argb is None:
            self._point_argb = self._argb[np.minimum(self._colour, len(self._argb) - 1)]
        # Padded pixel coordinates (the view box only scales and translates). A centre
        # within DOT_STAMP_REACH of the device still shows its rim; farther ones are culled.
        n = len(self._x)
        if self._scratch.shape[1] != n:
            self._scratch = np.empty((2, n))
            self._base = np.empty(n, np.intp)
        px, py = self._scratch
        with np.errstate(invalid="ignore", over="ignore"):  # inf * 0: NaN, culled below
            np.multiply(self._x, m11 * dpr, out=px)
            px += dx * dpr + pad
            np.multiply(self._y, m22 * dpr, out=py)
            py += dy * dpr + pad
        lo, hi_x, hi_y = DOT_STAMP_REACH - 0.5, width - DOT_STAMP_REACH - 0.5, \
            h + 2 * pad - DOT_STAMP_REACH - 0.5
        argb = self._point_argb
        bx0, bx1, by0, by1 = self._bounds
        cx0, cx1 = sorted((bx0 * m11 * dpr + dx * dpr + pad, bx1 * m11 * dpr + dx * dpr + pad))
        cy0, cy1 = sorted((by0 * m22 * dpr + dy * dpr + pad, by1 * m22 * dpr + dy * dpr + pad))
        # Only the dots' box is blitted (a centre at padded c lands at c - pad).
        reach = DOT_STAMP_REACH
        self._rects = content_rects(cx0 - pad - reach, cx1 - pad + reach,
                                    cy0 - pad - reach, cy1 - pad + reach, w, h, dpr)
        if not (self._finite and cx0 > lo and cx1 < hi_x and cy0 > lo and cy1 < hi_y):
            keep = (px > lo) & (px < hi_x) & (py > lo) & (py < hi_y)  # NaN is dropped too
            px, py, argb = px[keep], py[keep], argb[keep]
        if len(px):
            np.rint(px, out=px)
            np.rint(py, out=py)
            py *= width
            py += px
            # Index from the stamp's lowest offset, so every pass is a view and a scatter.
            low = int(DOT_STAMP_OFFSETS_Y.min()) * width + int(DOT_STAMP_OFFSETS_X.min())
            py += low
            base = self._base[:len(py)]
            base[...] = py  # into a kept buffer: a fresh one costs page faults
            flat = buf.reshape(-1)
            # One pass per stamp pixel, rim first: later dots overwrite earlier ones within
            # a pass, and the centre pass comes last, so a later dot's edge never covers an
            # earlier dot's centre.
            for ox, oy in zip(DOT_STAMP_OFFSETS_X, DOT_STAMP_OFFSETS_Y, strict=True):
                flat[int(oy) * width + int(ox) - low:][base] = argb
        # The unpadded picture starts pad rows and pad columns in, one padded row apart.
        inner = memoryview(buf.reshape(-1)[pad * width + pad:])
        image = QImage(inner, w, h, width * 4, QImage.Format.Format_ARGB32_Premultiplied)
        image.setDevicePixelRatio(dpr)
        self._image = image
        self._image_owner = inner  # the image reads the buffer's memory


def ellipse_segments(radius_px: float, n_ellipses: int) -> int:
    """Segments per outline for ellipses of about ``radius_px`` on screen: a chord over an
    angle 2 pi / k strays r (1 - cos(pi / k)) from the curve, kept under half a pixel,
    within a per-frame line budget, since drawLines costs per segment."""
    # Clamped first: past ~1e16 px, 1 - 0.5 / r rounds to 1 and pi / arccos(1) is inf.
    r = min(float(np.nan_to_num(radius_px, nan=0.0, posinf=MAX_DEVICE_COORD)), MAX_DEVICE_COORD)
    k = 8 if r <= 0.5 else int(np.ceil(np.pi / np.arccos(1.0 - 0.5 / r)))
    k = min(max(k, 8), 64)
    return max(8, min(k, MAX_ELLIPSE_SEGMENTS // max(1, n_ellipses)))


class EllipseSetItem(pg.GraphicsObject):
    """Many ellipse outlines drawn with one drawLines call (or rasterised): axis-aligned (q is
    diagonal) or, with angles, rotated (a linear view P q of a higher-dimensional q).

    Outlines are made in device coordinates at paint time, with a segment count from their
    size on screen, and kept until the data or the view transform change."""

    def __init__(self, pen: QPen, raster: bool = False):
        super().__init__()
        self._pen = pen
        # raster: 1-px rings stamped with numpy into a cached image (see _rasterise), for
        # the thousands of dataset ellipses; outlines with a pen width stay drawLines.
        self._raster = raster
        self._image: QImage | None = None
        self._image_owner = None
        self._rects: tuple[QRectF, QRectF] | None = None  # the image's part with rings
        self._shade_key: int | None = None  # the pen colour _shade_table was made for
        self._shade_table = np.zeros(256, np.uint32)
        self._buffers: tuple[np.ndarray, ...] | None = None  # see _scratch
        self.centres = np.zeros((0, 2))  # (n, 2) data coordinates
        self.half_axes = np.zeros((0, 2))  # (n, 2), finite
        self.angles: np.ndarray | None = None  # (n,) radians of the first half axis, or None
        self._bounds: tuple[float, float, float, float] | None = None
        self._lines = np.empty((0, 4))
        self._device_key: tuple | None = None

    def set_ellipses(self, centres: np.ndarray, half_axes: np.ndarray,
                     angles: np.ndarray | None = None) -> None:
        """centres and half axes (n, 2) in data coordinates, the first half axis at
        ``angles`` (n,) radians from the x axis (None: along x); rows not all finite are
        dropped."""
        centres = np.asarray(centres, np.float64).reshape(-1, 2)
        half_axes = np.abs(np.asarray(half_axes, np.float64).reshape(-1, 2))
        ok = np.isfinite(centres).all(axis=1) & np.isfinite(half_axes).all(axis=1)
        if angles is not None:
            angles = np.asarray(angles, np.float64).reshape(-1)
            ok &= np.isfinite(angles)
        if not ok.all():
            centres, half_axes = centres[ok], half_axes[ok]
            angles = None if angles is None else angles[ok]
        self.prepareGeometryChange()
        self.centres, self.half_axes, self.angles = centres, half_axes, angles
        ext = half_axes if angles is None else rotated_extents(half_axes, angles)
        self._bounds = None if len(centres) == 0 else (
            float((centres[:, 0] - ext[:, 0]).min()),
            float((centres[:, 0] + ext[:, 0]).max()),
            float((centres[:, 1] - ext[:, 1]).min()),
            float((centres[:, 1] + ext[:, 1]).max()))
        self._device_key = None
        self.update()

    def count(self) -> int:
        return len(self.centres)

    @property
    def image(self) -> QImage | None:
        """The cached raster of the rings: None when drawn as lines or not yet painted."""
        return self._image

    @guarded(QRectF)
    def boundingRect(self) -> QRectF:
        return _rect(self._bounds)

    def _prepare(self, key: tuple) -> None:
        if self.angles is not None:
            self._prepare_rotated(key)
            return
        # The view box only scales and translates, so outlines stay axis-aligned on screen.
        m11, _, _, m22, dx, dy = key[:6]
        with np.errstate(over="ignore", invalid="ignore"):
            cx = self.centres[:, 0] * m11 + dx
            cy = self.centres[:, 1] * m22 + dy
            ax, ay = self.half_axes[:, 0] * abs(m11), self.half_axes[:, 1] * abs(m22)
        # Finite and bounded before any arithmetic, so no vertex overflows to inf or NaN.
        big = MAX_DEVICE_COORD
        for a in (cx, cy):
            np.clip(np.nan_to_num(a, nan=0.0, posinf=big, neginf=-big), -big, big, out=a)
        for a in (ax, ay):
            np.clip(np.nan_to_num(a, nan=0.0, posinf=big), 0.0, big, out=a)
        n = len(cx)
        self._image = None
        if self._raster:
            # Rings come in priority order: past the sample budget (the view thins them to
            # it, so only a change between refresh and paint gets here), the rest wait.
            samples = np.cumsum(ring_samples(ax * key[-1], ay * key[-1]))
            keep = int(np.searchsorted(samples, MAX_RING_SAMPLES, side="right"))
            self._rasterise(key, cx[:keep], cy[:keep], ax[:keep], ay[:keep])
            return
        radius = float(np.percentile(np.maximum(ax, ay), 90))
        k = ellipse_segments(radius, n)
        theta = np.linspace(0.0, 2.0 * np.pi, k + 1)
        cos, sin = np.cos(theta), np.sin(theta)
        if len(self._lines) != n * k:
            self._lines = np.empty((n * k, 4))
        lines = self._lines.reshape(n, k, 4)
        for col, (c, a, t) in enumerate(((cx, ax, cos[:-1]), (cy, ay, sin[:-1]),
                                         (cx, ax, cos[1:]), (cy, ay, sin[1:]))):
            out = lines[:, :, col]
            np.multiply(a[:, None], t, out=out)
            out += c[:, None]
        # Keep far-off vertices finite and small for the raster engine when zoomed in a long way.
        if n and (np.abs(cx).max() + ax.max() > 1e6 or np.abs(cy).max() + ay.max() > 1e6):
            np.clip(self._lines, -1e6, 1e6, out=self._lines)

    def _prepare_rotated(self, key: tuple) -> None:
        """Rotated outlines: in device space c + u cos t + v sin t, with u and v the two
        half axes mapped by the view box's scale (rarer than the diagonal case, so one
        general pass with a per-sample bounds test)."""
        m11, _, _, m22, dx, dy = key[:6]
        big = MAX_DEVICE_COORD
        a, b, th = self.half_axes[:, 0], self.half_axes[:, 1], self.angles
        with np.errstate(over="ignore", invalid="ignore"):
            c = np.stack((self.centres[:, 0] * m11 + dx, self.centres[:, 1] * m22 + dy), 1)
            u = np.stack((a * np.cos(th) * m11, a * np.sin(th) * m22), 1)
            v = np.stack((-b * np.sin(th) * m11, b * np.cos(th) * m22), 1)
        for arr in (c, u, v):
            np.clip(np.nan_to_num(arr, nan=0.0, posinf=big, neginf=-big), -big, big, out=arr)
        self._image = None
        n = len(c)
        if self._raster:
            dpr = key[-1]
            w, h = int(round(key[6] * dpr)), int(round(key[7] * dpr))
            if w <= 0 or h <= 0 or w > 16384 or h > 16384 or n == 0:
                return
            c, u, v = c * dpr, u * dpr, v * dpr
            reach = np.abs(u) + np.abs(v)  # (n, 2): each ring's half box
            self._rects = content_rects(float((c[:, 0] - reach[:, 0]).min()),
                                        float((c[:, 0] + reach[:, 0]).max()),
                                        float((c[:, 1] - reach[:, 1]).min()),
                                        float((c[:, 1] + reach[:, 1]).max()), w, h, dpr)
            size = ring_samples(np.hypot(*u.T), np.hypot(*v.T))
            keep = int(np.searchsorted(np.cumsum(size), MAX_RING_SAMPLES, side="right"))
            flat = []
            for k in np.unique(size[:keep]):
                idx = np.flatnonzero(size[:keep] == k)
                t = np.linspace(0.0, 2.0 * np.pi, int(k), endpoint=False)
                px = np.rint(c[idx, 0, None] + u[idx, 0, None] * np.cos(t)
                             + v[idx, 0, None] * np.sin(t)).ravel()
                py = np.rint(c[idx, 1, None] + u[idx, 1, None] * np.cos(t)
                             + v[idx, 1, None] * np.sin(t)).ravel()
                ok = (px >= 0) & (px < w) & (py >= 0) & (py < h)
                flat.append((py[ok] * w + px[ok]).astype(np.intp))
            counts = np.bincount(np.concatenate(flat) if flat else np.zeros(0, np.intp),
                                 minlength=w * h)
            pixels = np.take(self._shades(), np.minimum(counts, 255))
            image = QImage(memoryview(pixels), w, h, w * 4,
                           QImage.Format.Format_ARGB32_Premultiplied)
            image.setDevicePixelRatio(dpr)
            self._image, self._image_owner = image, pixels
            return
        radius = float(np.percentile(np.hypot(*u.T), 90)) if n else 0.0
        k = ellipse_segments(radius, n)
        t = np.linspace(0.0, 2.0 * np.pi, k + 1)
        pts = (c[:, None, :] + u[:, None, :] * np.cos(t)[None, :, None]
               + v[:, None, :] * np.sin(t)[None, :, None])  # (n, k + 1, 2)
        self._lines = np.clip(np.concatenate((pts[:, :-1], pts[:, 1:]), axis=2)
                              .reshape(-1, 4), -1e6, 1e6)

    @guarded()
    def paint(self, p: QPainter, option, widget=None) -> None:
        if len(self.centres) == 0:
            return
        key = _device_key(p, widget)
        if key != self._device_key:
            self._prepare(key)
            self._device_key = key
        p.resetTransform()
        if self._image is not None:
            blit(p, self._image, self._rects)
            return
        p.setPen(self._pen)
        p.drawLines(shiboken6.wrapInstance(self._lines.ctypes.data, QLineF), len(self._lines))

    def _rasterise(self, key: tuple, cx, cy, ax, ay) -> None:
        """Rings sampled about one pixel apart (ellipses grouped by sample count, so each
        group is one vectorised pass), counted per pixel, and shaded 1 - (1 - alpha)^count:
        where many rings cross, the grey saturates as overlapping translucent lines would."""
        dpr = key[-1]
        w, h = int(round(key[6] * dpr)), int(round(key[7] * dpr))
        self._image = None
        if w <= 0 or h <= 0 or w > 16384 or h > 16384 or len(cx) == 0:
            return
        cx, cy, ax, ay = cx * dpr, cy * dpr, ax * dpr, ay * dpr
        self._rects = content_rects(float((cx - ax).min()), float((cx + ax).max()),
                                    float((cy - ay).min()), float((cy + ay).max()), w, h, dpr)
        # Samples per ring ~ its perimeter in pixels (a ring bigger than 4096 samples shows
        # gaps; only where it crosses the screen is drawn: clipped below).
        size = ring_samples(ax, ay)
        # Rings wholly on the image need no per-sample test (the common case), and their
        # pixel indices are exact in float32 (below 2^24), the cheaper type.
        inside = (cx - ax >= 0) & (cx + ax <= w - 1) & (cy - ay >= 0) & (cy + ay <= h - 1)
        small = np.float32 if w * h < 2 ** 24 else np.float64
        total = int(size.sum())
        scratch = self._scratch(w * h, total, small)
        counts, pixels, xs, ys, flat = scratch
        used = 0
        for b in np.unique(size):
            theta = np.linspace(0.0, 2.0 * np.pi, int(b), endpoint=False)
            cos, sin = np.cos(theta), np.sin(theta)
            group = size == b
            idx = np.flatnonzero(group & inside)
            if len(idx):
                m = len(idx) * int(b)
                px, py = xs[:m].reshape(-1, int(b)), ys[:m].reshape(-1, int(b))
                np.multiply(ax[idx, None].astype(small), cos.astype(small), out=px)
                px += cx[idx, None].astype(small)
                np.rint(px, out=px)
                np.multiply(ay[idx, None].astype(small), sin.astype(small), out=py)
                py += cy[idx, None].astype(small)
                np.rint(py, out=py)
                py *= w
                py += px
                flat[used:used + m] = ys[:m]
                used += m
            idx = np.flatnonzero(group & ~inside)
            if len(idx):
                px = np.rint(cx[idx, None] + ax[idx, None] * cos).ravel()
                py = np.rint(cy[idx, None] + ay[idx, None] * sin).ravel()
                ok = (px >= 0) & (px < w) & (py >= 0) & (py < h)
                m = int(np.count_nonzero(ok))
                flat[used:used + m] = py[ok] * w + px[ok]
                used += m
        counts.fill(0)
        np.add.at(counts, flat[:used], 1)  # int64 counts: numpy's fast path
        np.minimum(counts, 255, out=counts)
        np.take(self._shades(), counts, out=pixels)
        image = QImage(memoryview(pixels), w, h, w * 4,
                       QImage.Format.Format_ARGB32_Premultiplied)
        image.setDevicePixelRatio(dpr)
        self._image, self._image_owner = image, pixels  # the image reads the buffer

    def _scratch(self, pixels: int, samples: int, dtype) -> tuple[np.ndarray, ...]:
        """Buffers kept from frame to frame (fresh multi-megabyte arrays cost a page fault
        per 4 KiB on first touch, as much as the arithmetic): counts and ARGB per pixel,
        two coordinate arrays and one index array per sample."""
        have = self._buffers
        if (have is None or len(have[0]) != pixels or len(have[2]) < samples
                or have[2].dtype != dtype):
            room = max(samples, MAX_RING_SAMPLES)
            have = (np.zeros(pixels, np.int64), np.zeros(pixels, np.uint32),
                    np.empty(room, dtype), np.empty(room, dtype), np.empty(room, np.intp))
            self._buffers = have
        return have

    def _shades(self) -> np.ndarray:
        """Premultiplied ARGB for 0..255 overlapping rings of the pen's colour."""
        c = self._pen.color()
        if self._shade_key != c.rgba():
            alpha = 1.0 - (1.0 - c.alphaF()) ** np.arange(256)
            a = np.rint(255 * alpha).astype(np.uint32)
            self._shade_table = ((a << 24) | ((c.red() * a // 255) << 16)
                                 | ((c.green() * a // 255) << 8)
                                 | (c.blue() * a // 255)).astype(np.uint32)
            self._shade_key = c.rgba()
        return self._shade_table


class LatentView(pg.PlotWidget):
    """The latent plane of a 2-D VAE. See the module docstring for the mouse bindings."""

    zRequested = Signal(float, float)
    pointSelected = Signal(int)  # -1: the selection was cleared
    pointShiftPicked = Signal(int)  # a dot shift-clicked: an end of an interpolation
    markerSelected = Signal(int)
    filesDropped = Signal(list)
    viewRegionChanged = Signal(float, float, float, float)  # xmin, xmax, ymin, ymax

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        pi = self.plotItem
        self._vb = pi.vb
        pi.setLabel("bottom", "z1")
        pi.setLabel("left", "z2")
        self._vb.setAspectLocked(True, 1.0)  # ellipses are geometric

        self._prior = pg.PlotCurveItem(
            *prior_circles(), connect="finite",
            pen=pg.mkPen(PRIOR_COLOUR, width=1, style=Qt.PenStyle.DashLine))
        self._ellipses = EllipseSetItem(pg.mkPen(ELLIPSE_COLOUR, width=0), raster=True)
        self._points = PointCloudItem()
        self._selected_ellipse = EllipseSetItem(pg.mkPen(HIGHLIGHT_COLOUR, width=2))
        self._ring = pg.ScatterPlotItem(symbol="o", size=14, brush=None,
                                        pen=pg.mkPen(HIGHLIGHT_COLOUR, width=2))
        self._marker_ellipses = EllipseSetItem(pg.mkPen(MARKER_COLOUR, width=1.5))
        self._markers = MarkerSetItem(MARKER_COLOUR, HIGHLIGHT_COLOUR)  # stars and names
        self._crosshair = pg.ScatterPlotItem(symbol="+", size=22, brush=CROSSHAIR_COLOUR,
                                             pen=pg.mkPen(CROSSHAIR_COLOUR, width=2))
        # Semi-amortized runs: f_phi(x_i) -> refined mu_i, one segment per point with an
        # ellipse (the same level of detail), all in one item.
        self._refinement = pg.PlotCurveItem(connect="pairs",
                                            pen=pg.mkPen(REFINEMENT_COLOUR, width=1))
        self.addItem(self._prior)
        self.addItem(self._points)
        for item in (self._refinement, self._ellipses, self._selected_ellipse, self._ring,
                     self._marker_ellipses, self._markers, self._crosshair):
            self.addItem(item, ignoreBounds=True)
        self._refinement.setZValue(1.5)  # over the dots (a short line hides under one)
        for z, item in enumerate((self._prior, self._points, self._ellipses,
                                  self._selected_ellipse, self._ring, self._marker_ellipses,
                                  self._markers, self._crosshair)):
            item.setZValue(z)

        # Overlays in the view box's pixel coordinates, so they stay put while panning.
        # Mid grey with a translucent backing: legible on the dark and the light theme.
        self._status = pg.TextItem(color=(128, 128, 128), fill=(128, 128, 128, 40), anchor=(0, 0))
        self._status.setParentItem(self._vb)
        self._status.setPos(4, 2)
        # The dashed prior circles change only with the zoom: kept as a pixmap, since every
        # snapshot repaints the whole plane. (Not the status: its counts change with
        # every snapshot, and remaking a cache costs more than drawing the text.)
        self._prior.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._status_text = ""
        # Labels and the prior in a row above the plot: a legend inside it covers clusters.
        self.legend = OutsideLegend(pi, ABOVE_PLOT)
        self._prior_sample = pg.PlotDataItem(
            pen=pg.mkPen(PRIOR_COLOUR, width=1.5, style=Qt.PenStyle.DashLine))
        self._colorbar: pg.ColorBarItem | None = None

        self._mu: np.ndarray | None = None
        self._sigma: np.ndarray | None = None  # half extents of each 1-sigma ellipse
        self._rotation: tuple[np.ndarray, np.ndarray] | None = None  # (semi-axes, angles)
        self.view_text = ""  # which 2-D view of the latent this is (plane_view.PlaneData)
        self._starts: np.ndarray | None = None  # (N, 2) f_phi(x_i) of a semi-amortized run
        self._segments = 0  # refinement lines drawn
        self._caption = ""  # what the dots are (explorer.core.inference_view)
        self._order = np.zeros(0, np.int64)  # draw order and ellipse priority
        self._labels: np.ndarray | None = None
        self._label_names: list[str] | None = None
        self._values: np.ndarray | None = None
        self._values_label = ""
        self._colour_index = np.zeros(0, np.int64)
        self._level = 1
        self._budget = DEFAULT_ELLIPSE_BUDGET
        self._counts = (0, 0)
        self._ellipses_dirty = False
        self._refresh_posted = False
        self._selected: int | None = None
        self._marker_mu = np.zeros((0, 2))
        self._marker_info: list[str] = []
        self._decoding = False
        self.hovered: int | None = None  # the datapoint under the cursor, for the tooltip

        # Our own auto-range with hysteresis: pyqtgraph's refits on every snapshot, so the
        # axes and the ellipse subset would be redone and the view would jitter all training.
        self._follow = True
        self._vb.disableAutoRange()
        pi.autoBtn.clicked.disconnect(pi.autoBtnClicked)
        pi.autoBtn.clicked.connect(self._on_auto_button)
        self._vb.sigRangeChangedManually.connect(self._on_manual_range)
        self._vb.sigRangeChanged.connect(self._on_range_changed)
        # Connected after the view box's own handler, so auto-range has settled first.
        self.scene().sigPrepareForPaint.connect(self._refresh_ellipses_if_dirty)
        self._set_status_text()
        self.restyle()

    # ---- data -------------------------------------------------------------------------------

    def set_dataset(self, labels: np.ndarray | None, label_names: list[str] | None) -> None:
        """Colour points by label (with a legend), or in one colour when ``labels`` is None."""
        self._labels = None if labels is None else np.asarray(labels, np.int64).ravel()
        self._label_names = None if label_names is None else [str(s) for s in label_names]
        self._rebuild_legend()
        self._recolour()

    def set_point_values(self, values: np.ndarray | None, label: str = "") -> None:
        """Colour points by a per-point scalar with a colour bar; None returns to label colours."""
        if values is None:
            self._values = None
            if self._colorbar is not None:
                self.plotItem.layout.removeItem(self._colorbar)
                self._colorbar.hide()
        else:
            self._values = np.asarray(values, np.float64).ravel()
            self._values_label = label
            lo, hi = self._value_range()
            if self._colorbar is None:
                self._colorbar = pg.ColorBarItem(values=(lo, hi),
                                                 colorMap=palette.value_colourmap(),
                                                 interactive=False, width=15)
            else:
                self._colorbar.setLevels((lo, hi))
            # The title on the left axis only (the right one holds the ticks), small enough
            # to fit the bar's height.
            self._colorbar.getAxis("left").setLabel(label, **{"font-size": "8pt"})
            if self._colorbar.parentItem() is None or not self._colorbar.isVisible():
                self.plotItem.layout.addItem(self._colorbar, 2, 5)
                self._colorbar.show()
        self._rebuild_legend()
        self._recolour()

    def set_latents(self, mu: np.ndarray, sigma: np.ndarray,
                    rotation: tuple[np.ndarray, np.ndarray] | None = None,
                    starts: np.ndarray | None = None) -> None:
        """Every datapoint's posterior mean and standard deviation in the shown view, each
        (N, 2); with ``rotation`` (semi-axes (N, 2), angles (N,)) the 1-sigma ellipses are
        rotated ones and ``sigma`` their half extents along the axes (plane_view).
        ``starts`` (N, 2): where each mean came from (a semi-amortized run's f_phi(x_i)),
        drawn as a line to it for the points that get an ellipse."""
        mu = np.asarray(mu)
        sigma = np.asarray(sigma)
        if mu.ndim != 2 or mu.shape[1] != 2 or sigma.shape != mu.shape:
            raise ValueError(f"set_latents: need mu and sigma of shape (N, 2), got {mu.shape} "
                             f"and {sigma.shape}")
        if rotation is not None and (np.shape(rotation[0]) != mu.shape
                                     or np.shape(rotation[1]) != (len(mu),)):
            raise ValueError("set_latents: rotation needs (N, 2) semi-axes and (N,) angles")
        if starts is not None and np.shape(starts) != mu.shape:
            raise ValueError(f"set_latents: starts of shape {np.shape(starts)}, mu {mu.shape}")
        self._starts = None if starts is None else np.asarray(starts)
        resized = self._mu is None or len(self._mu) != len(mu)
        self._mu, self._sigma, self._rotation = mu, sigma, rotation
        if resized:
            self._order = np.random.default_rng(PRIORITY_SEED).permutation(len(mu))
            if self._selected is not None and self._selected >= len(mu):
                self._selected = None
            self._recolour()  # label or value arrays may only now match N
        # Colours in draw order are set by _recolour. np.take, not mu[order]: 25x faster
        # for an (N, 2) array; the bounds do not depend on the order.
        self._points.set_points(np.take(mu, self._order, axis=0),
                                bounds=_bounds(mu[:, 0], mu[:, 1]))
        if self._follow:
            self._fit_data(force=False)
        self._update_selection_items()
        # At once, not before the paint: a change made inside a paint costs a second one.
        self._ellipses_dirty = True
        self._refresh_ellipses_if_dirty()

    def paint_now(self) -> None:
        """Paint the plane at once rather than in the window's next flush, where the other
        views' paints (the manifold, the images) came before it: ~5 ms sooner."""
        if self.isVisible():
            self.viewport().repaint()

    def set_sigma_level(self, k: int) -> None:
        if k not in (1, 2):
            raise ValueError(f"sigma level must be 1 or 2, got {k!r}")
        self._level = k
        self._update_selection_items()
        self._mark_ellipses_dirty()

    def set_ellipse_budget(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"ellipse budget must be non-negative, got {n!r}")
        self._budget = int(n)
        self._mark_ellipses_dirty()

    def ellipse_budget(self) -> int:
        return self._budget

    def point_values(self) -> np.ndarray | None:
        """The per-point scalar the dots are coloured by, or None for label colours."""
        return self._values

    def marker_names(self) -> list[str]:
        """The names shown beside the encoded-image markers, in marker order."""
        return self._markers.names()

    def marker_sizes(self) -> list[float]:
        """The star diameter (px) of each marker: the highlighted one is drawn bigger."""
        return self._markers.sizes()

    def set_caption(self, text: str) -> None:
        """One line on what the dots are, above the ellipse counts."""
        if text == self._caption:
            return
        self._caption = text
        self._set_status_text()

    def caption(self) -> str:
        return self._caption

    def refinement_lines(self) -> int:
        """How many f_phi(x_i) -> mu_i lines are drawn."""
        self._refresh_ellipses_if_dirty()
        return self._segments

    def ellipse_status(self) -> tuple[int, int]:
        """(ellipses drawn, ellipses in view): drawn < in view means they are thinned."""
        self._refresh_ellipses_if_dirty()
        return self._counts

    def ellipse_centres(self) -> np.ndarray:
        """(n, 2) centres of the dataset ellipses now drawn, those in view (read-only)."""
        self._refresh_ellipses_if_dirty()
        return _read_only(self._ellipses.centres)

    def ellipse_refresh_pending(self) -> bool:
        """Whether a change still waits to rebuild the ellipses (done before the next paint)."""
        return self._ellipses_dirty

    def ellipse_image(self) -> QImage | None:
        """The dataset ellipses' cached raster: None before a paint, or when drawn as lines."""
        return self._ellipses.image

    def refinement_segments(self) -> np.ndarray:
        """(n, 2, 2) the f_phi(x_i) -> mu_i lines as drawn: (start, end) of each segment."""
        self._refresh_ellipses_if_dirty()
        x, y = self._refinement.getData()
        if x is None or len(x) == 0:
            return np.zeros((0, 2, 2))
        xy = np.c_[x, y]
        if self._refinement.opts["connect"] == "pairs":
            return xy.reshape(-1, 2, 2)
        return np.stack((xy[:-1], xy[1:]), axis=1)  # a polyline: every consecutive pair

    def point_mu(self) -> np.ndarray | None:
        """(N, 2) the shown view of each datapoint's mu, where its dot is (read-only)."""
        return None if self._mu is None else _read_only(self._mu)

    def rotation(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(semi-axes (N, 2), angles (N,)) of rotated ellipses, or None when axis-aligned."""
        return self._rotation

    def draw_order(self) -> np.ndarray:
        """Point indices in the order the dots are drawn (last on top), also the ellipses'
        priority (read-only)."""
        return _read_only(self._order)

    def point_colours(self) -> list[QColor]:
        """The dots' colours by colour index: per label or value level, then one for missing."""
        return self._points.colours

    def point_image(self) -> QImage | None:
        """The dots' cached image: the same object from paint to paint until data or view
        change; None before a paint."""
        return self._points.image

    def status_text(self) -> str:
        """The plane's corner text: caption, view, ellipse counts."""
        return self._status.toPlainText()

    def status_colour(self) -> QColor:
        """The colour the corner text is drawn in (follows the theme)."""
        return QColor(self._status.color)

    def colour_bar(self) -> pg.ColorBarItem | None:
        """The colour bar of a colouring by value (hidden, or None, for label colours)."""
        return self._colorbar

    # ---- overlays ---------------------------------------------------------------------------

    def set_crosshair(self, z: tuple[float, float] | None) -> None:
        """Mark the decoded z; the view also moves it itself on press and drag."""
        self._crosshair.setData([] if z is None else [{"pos": (float(z[0]), float(z[1]))}])

    def crosshair_position(self) -> tuple[float, float] | None:
        """Where the crosshair is drawn (the decoded z), or None when hidden."""
        return _first_position(self._crosshair)

    def selection_ring_position(self) -> tuple[float, float] | None:
        """Where the selected dot's ring is drawn, or None when nothing is selected."""
        return _first_position(self._ring)

    def set_selected(self, index: int | None) -> None:
        """Highlight one datapoint with a ring and its sigma ellipse (no signal)."""
        if index is not None and (index < 0 or self._mu is None or index >= len(self._mu)):
            index = None
        self._selected = index
        self._update_selection_items()

    def selected(self) -> int | None:
        return self._selected

    def set_markers(self, mu: np.ndarray, sigma: np.ndarray, names: list[str],
                    highlighted: int | None = None) -> None:
        """Encoded user images: a star, its sigma ellipse and its name each."""
        mu = np.asarray(mu, np.float64).reshape(-1, 2)
        sigma = np.asarray(sigma, np.float64).reshape(-1, 2)
        if len(sigma) != len(mu) or len(names) != len(mu):
            raise ValueError(f"set_markers: {len(mu)} mu, {len(sigma)} sigma, "
                             f"{len(names)} names")
        self._marker_mu = mu
        self._marker_info = [f"{name}\nmu = ({m[0]:.3f}, {m[1]:.3f})\n"
                             f"sigma = ({s[0]:.3f}, {s[1]:.3f})"
                             for name, m, s in zip(names, mu, sigma, strict=True)]
        # One item for every star and name, updated in place (1,000 TextItems took ~2 s).
        self._markers.set_markers(mu, names, highlighted)
        self._marker_ellipses.set_ellipses(mu, self._level * sigma)

    def marker_mu(self) -> np.ndarray:
        """(M, 2) the shown view of each encoded-image marker's mu (read-only)."""
        return _read_only(self._marker_mu)

    def marker_texts(self) -> list[QStaticText]:
        """The laid-out name (QStaticText) of each marker, in marker order: made once per
        name and kept across updates."""
        return self._markers.texts()

    def view_region(self) -> tuple[float, float, float, float]:
        (x0, x1), (y0, y1) = self._vb.viewRange()
        return x0, x1, y0, y1

    def point_info(self, index: int) -> str:
        """The tooltip text of one datapoint: index, label, mu and sigma."""
        mu, sigma = self._mu[index], self._sigma[index]
        lines = [f"#{index}"]
        if self._labels is not None and len(self._labels) == len(self._mu):
            lines[0] += f"  label {self._label_name(int(self._labels[index]))}"
        lines.append(f"mu = ({mu[0]:.3f}, {mu[1]:.3f})")
        lines.append(f"sigma = ({sigma[0]:.3f}, {sigma[1]:.3f})")
        if self._values is not None and len(self._values) == len(self._mu):
            lines.append(f"{self._values_label} = {self._values[index]:.4g}")
        return "\n".join(lines)

    def follow_data(self, on: bool = True) -> None:
        """Keep the data and the prior in view as they move (on until the user pans or zooms)."""
        self._follow = on
        if on:
            self._fit_data(force=True)

    def _on_auto_button(self) -> None:
        self.follow_data(True)

    def _on_manual_range(self, *_) -> None:
        self._follow = False

    def _fit_data(self, force: bool) -> None:
        b = self._points._bounds
        e = PRIOR_EXTENT
        x0, x1, y0, y1 = (-e, e, -e, e) if b is None else (
            min(b[0], -e), max(b[1], e), min(b[2], -e), max(b[3], e))
        vx0, vx1, vy0, vy1 = self.view_region()
        inside = x0 >= vx0 and x1 <= vx1 and y0 >= vy0 and y1 <= vy1
        # With the aspect locked one axis is loose; the data must fill the other.
        filled = (x1 - x0 >= FOLLOW_FILL * (vx1 - vx0)) or (y1 - y0 >= FOLLOW_FILL * (vy1 - vy0))
        if force or not (inside and filled):
            self._vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.05)

    # ---- colours and legend -----------------------------------------------------------------

    def _label_name(self, label: int) -> str:
        names = self._label_names
        return names[label] if names is not None and 0 <= label < len(names) else str(label)

    def _n_label_colours(self) -> int:
        n = len(self._label_names or [])
        if self._labels is not None and len(self._labels):
            n = max(n, int(self._labels.max()) + 1)
        return n

    def _value_range(self) -> tuple[float, float]:
        v = self._values[np.isfinite(self._values)]
        if len(v) == 0:
            return 0.0, 1.0
        # 1st to 99th percentile: one outlier should not wash out every other colour.
        lo, hi = (float(q) for q in np.percentile(v, [1, 99]))
        return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)

    def _compute_colour_index(self) -> np.ndarray:
        n = 0 if self._mu is None else len(self._mu)
        if self._values is not None and len(self._values) == n:
            lo, hi = self._value_range()
            steps = palette.VALUE_LEVELS
            t = np.clip((self._values - lo) / (hi - lo), 0.0, 1.0) * (steps - 1)
            return np.where(np.isfinite(t), np.rint(np.nan_to_num(t)), steps).astype(np.int64)
        if self._labels is not None and len(self._labels) == n:
            k = self._n_label_colours()
            return np.where((self._labels >= 0) & (self._labels < k), self._labels, k)
        return np.zeros(n, np.int64)

    def _recolour(self) -> None:
        n = 0 if self._mu is None else len(self._mu)
        if self._values is not None and len(self._values) == n:
            colours = palette.value_colours() + [QColor(palette.MISSING)]
        elif self._labels is not None and len(self._labels) == n:
            colours = palette.label_colours(self._n_label_colours()) + [QColor(palette.MISSING)]
        else:
            colours = [QColor(palette.UNLABELLED)]
        self._points.set_colours(colours)
        self._colour_index = self._compute_colour_index()
        self._points.set_colour_index(self._colour_index[self._order])

    def _rebuild_legend(self) -> None:
        entries = []
        if self._values is None and self._labels is not None:
            for i in range(self._n_label_colours()):
                sample = pg.ScatterPlotItem(symbol="o", size=9, pen=None,
                                            brush=pg.mkBrush(palette.label_colour(i)))
                entries.append((sample, self._label_name(i)))
        entries.append((self._prior_sample, "prior p(z): 1, 2, 3 \u03c3"))
        self.legend.set_items(entries)

    def restyle(self) -> None:
        """Colours that follow the theme: value colours and the colour bar's map (the dark
        theme skips viridis's darkest end), and the status text (theme.style_plot calls this)."""
        pal = QApplication.palette()  # the widget's own follows it only later, by an event
        text, base = pal.color(QPalette.ColorRole.WindowText), pal.color(QPalette.ColorRole.Base)
        self._status.setColor(text)
        self._status.fill = pg.mkBrush(base.red(), base.green(), base.blue(), 200)
        if self._colorbar is not None:
            self._colorbar.setColorMap(palette.value_colourmap())
        self._recolour()

    def legend_names(self) -> list[str]:
        """The label entries (the prior's entry, always last, left out)."""
        return [name for sample, name in self.legend.items if sample is not self._prior_sample]

    # ---- ellipses: level of detail ----------------------------------------------------------

    def _on_range_changed(self, *_):
        x0, x1, y0, y1 = self.view_region()
        self._mark_ellipses_dirty()
        self.viewRegionChanged.emit(x0, x1, y0, y1)

    def _mark_ellipses_dirty(self) -> None:
        # Rebuilt once however many changes come in between, by a posted event: it runs
        # before the (low priority) repaint request, so the changed ellipses join that
        # paint. A paint that comes first (a synchronous repaint()) rebuilds them itself.
        self._ellipses_dirty = True
        if not self._refresh_posted:
            self._refresh_posted = True
            QCoreApplication.postEvent(self, QEvent(_REFRESH_EVENT))
        self._vb.update()

    @guarded()
    def customEvent(self, ev) -> None:
        if ev.type() == _REFRESH_EVENT:
            self._refresh_posted = False
            self._refresh_ellipses_if_dirty()
            return
        super().customEvent(ev)

    @guarded()  # also a slot of the scene's sigPrepareForPaint
    def _refresh_ellipses_if_dirty(self) -> None:
        if self._ellipses_dirty:
            self._ellipses_dirty = False
            self._refresh_ellipses()

    def _refresh_ellipses(self) -> None:
        if self._mu is None or len(self._mu) == 0:
            self._ellipses.set_ellipses(np.zeros((0, 2)), np.zeros((0, 2)))
            self._draw_refinement(np.zeros(0, np.int64))
            self._counts = (0, 0)
            self._set_status_text()
            return
        x0, x1, y0, y1 = self.view_region()
        b = self._points._bounds
        if (self._points._finite and b[0] >= x0 and b[1] <= x1 and b[2] >= y0
                and b[3] <= y1 and np.isfinite(self._sigma).all()):
            # Every mu in view (the followed view's usual case): so is every ellipse.
            in_view, total = None, len(self._mu)
        else:
            mx, my = self._mu[:, 0], self._mu[:, 1]
            ex, ey = self._level * self._sigma[:, 0], self._level * self._sigma[:, 1]
            # An ellipse is in view when its bounding box meets the view (NaN compares
            # False; inf - inf of a crafted file is such a NaN: numpy's warning is expected).
            with np.errstate(invalid="ignore"):
                in_view = (mx + ex >= x0) & (mx - ex <= x1) & (my + ey >= y0) & (my - ey <= y1)
            total = int(np.count_nonzero(in_view))
        ranked = True  # chosen in priority order
        if total == len(self._mu):
            chosen = self._order[: self._budget]  # all in view: skip the mask gather
        elif total > self._budget:
            chosen = self._order[in_view[self._order]][: self._budget]
        else:
            chosen, ranked = np.flatnonzero(in_view), False
        self._draw_refinement(chosen)
        chosen = self._within_ink(chosen, ranked, in_view)
        self._ellipses.set_ellipses(self._mu[chosen], *self._ellipse_args(chosen))
        self._counts = (self._ellipses.count(), total)
        self._set_status_text()

    def _draw_refinement(self, chosen: np.ndarray) -> None:
        """Lines from f_phi(x_i) to mu_i for the points ``chosen`` for an ellipse."""
        if self._starts is None or len(chosen) == 0:
            if self._segments:
                self._refinement.setData([], [])
            self._segments = 0
            return
        a, b = self._starts[chosen], self._mu[chosen]
        ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
        a, b = a[ok], b[ok]
        xy = np.empty((2 * len(a), 2))
        xy[0::2], xy[1::2] = a, b  # start, end: one pair per segment
        self._refinement.setData(xy[:, 0], xy[:, 1], connect="pairs")
        self._segments = len(a)

    def _within_ink(self, chosen: np.ndarray, ranked: bool,
                    in_view: np.ndarray | None) -> np.ndarray:
        """The chosen ellipses cut to MAX_RING_SAMPLES samples of outline (about one per
        device pixel of perimeter, as the raster draws them), in priority order;
        ``ranked``: chosen is in that order (always so when ``in_view`` is None: all are)."""
        pw, ph = self._vb.viewPixelSize()
        if not (pw > 0 and ph > 0) or len(chosen) == 0:
            return chosen
        dpr = self.devicePixelRatioF()

        def ink(idx: np.ndarray) -> np.ndarray:
            ex, ey = self._level * self._sigma[idx, 0], self._level * self._sigma[idx, 1]
            with np.errstate(over="ignore", invalid="ignore"):  # a blown-up sigma: capped
                return ring_samples(dpr * ex / pw, dpr * ey / ph)

        px = ink(chosen)
        if int(px.sum()) <= MAX_RING_SAMPLES:
            return chosen
        if not ranked:
            # Re-rank by priority, so the cut keeps a random subset, not the low indices.
            chosen = self._order[in_view[self._order]]
            px = ink(chosen)
        keep = int(np.searchsorted(np.cumsum(px), MAX_RING_SAMPLES, side="right"))
        return chosen[: max(1, keep)]

    def _set_status_text(self) -> None:
        drawn, total = self._counts
        sigma = f"{self._level}\u03c3"
        if drawn < total:
            text = f"{sigma} ellipses: {drawn:,} of {total:,} in view (thinned)"
        else:
            text = f"{sigma} ellipses: {total:,} in view"
        if self._segments:
            text += f"; {self._segments:,} lines from f_\u03c6(x_i)"
        if self.view_text:
            text = f"{self.view_text}\n{text}"
        if self._caption:
            text = f"{self._caption}\n{text}"
        if text != self._status_text:  # setText repaints the plane even when unchanged
            self._status_text = text
            self._status.setText(text)

    def _update_selection_items(self) -> None:
        i = self._selected
        if i is None or self._mu is None or not np.all(np.isfinite(self._mu[i])):
            if self._selected_ellipse.count():  # already clear: skip the per-frame cost
                self._ring.setData([])
                self._selected_ellipse.set_ellipses(np.zeros((0, 2)), np.zeros((0, 2)))
            return
        mu = self._mu[i: i + 1].astype(np.float64)
        self._ring.setData(pos=mu)
        self._selected_ellipse.set_ellipses(mu, *self._ellipse_args(slice(i, i + 1)))

    def _ellipse_args(self, rows) -> tuple:
        """(half axes, angles or None) of the chosen rows' ellipses at the sigma level."""
        if self._rotation is None:
            return self._level * self._sigma[rows], None
        return self._level * self._rotation[0][rows], self._rotation[1][rows]

    def set_view_titles(self, x: str, y: str, text: str) -> None:
        """Name the view's axes and say in the corner which view of the latent this is."""
        # Unchanged titles are left alone: a new label re-lays out and repaints the axes.
        for side, title in (("bottom", x), ("left", y)):
            if self.plotItem.getAxis(side).labelText != title:
                self.plotItem.setLabel(side, title)
        if text == self.view_text:
            return
        self.view_text = text
        self._status_text = ""
        self._set_status_text()

    # ---- picking ----------------------------------------------------------------------------

    def _data_pos(self, viewport_pos: QPointF) -> tuple[float, float] | None:
        """Data coordinates of a viewport position inside the plot area, else None."""
        scene = self.mapToScene(viewport_pos.toPoint())
        if not self._vb.sceneBoundingRect().contains(scene):
            return None
        for overlay in (self.legend, self._colorbar):
            if (overlay is not None and overlay.isVisible()
                    and overlay.sceneBoundingRect().contains(scene)):
                return None
        p = self._vb.mapSceneToView(scene)
        return p.x(), p.y()

    def _nearest(self, points: np.ndarray, z: tuple[float, float], radius: float) -> int | None:
        """Index of the point nearest z on screen, if within ``radius`` pixels."""
        if points is None or len(points) == 0:
            return None
        pw, ph = self._vb.viewPixelSize()
        dx = (points[:, 0] - z[0]) / pw
        dy = (points[:, 1] - z[1]) / ph
        d2 = dx * dx + dy * dy
        d2[~np.isfinite(d2)] = np.inf
        i = int(np.argmin(d2))
        return i if d2[i] <= radius * radius else None

    # ---- mouse, keys, drops -----------------------------------------------------------------

    @guarded()
    def mousePressEvent(self, ev) -> None:
        if (ev.button() == Qt.MouseButton.LeftButton
                and ev.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            z = self._data_pos(ev.position())  # on a dot: pick it; elsewhere: pan
            index = None if z is None else self._nearest(self._mu, z, PICK_RADIUS)
            if index is not None:
                ev.accept()
                self.pointShiftPicked.emit(index)
                return
        if (ev.button() == Qt.MouseButton.LeftButton
                and not (ev.modifiers() & PAN_MODIFIERS)):
            z = self._data_pos(ev.position())
            if z is not None:
                ev.accept()
                self._press(z)
                return
        super().mousePressEvent(ev)

    def _press(self, z: tuple[float, float]) -> None:
        marker = self._nearest(self._marker_mu, z, 2 * PICK_RADIUS)
        if marker is not None:
            self.markerSelected.emit(marker)
            return
        index = self._nearest(self._mu, z, PICK_RADIUS)
        if index is not None:
            self.set_selected(index)
            self.pointSelected.emit(index)
            return
        if self._selected is not None:
            self.set_selected(None)
            self.pointSelected.emit(-1)
        self._decoding = True
        self.set_crosshair(z)
        self.zRequested.emit(z[0], z[1])

    @guarded()
    def mouseMoveEvent(self, ev) -> None:
        if self._decoding and ev.buttons() & Qt.MouseButton.LeftButton:
            ev.accept()
            p = self._vb.mapSceneToView(self.mapToScene(ev.position().toPoint()))
            self.set_crosshair((p.x(), p.y()))
            self.zRequested.emit(p.x(), p.y())
            return
        super().mouseMoveEvent(ev)
        if ev.buttons() == Qt.MouseButton.NoButton:
            self._hover(ev)

    @guarded()
    def mouseReleaseEvent(self, ev) -> None:
        if self._decoding and ev.button() == Qt.MouseButton.LeftButton:
            self._decoding = False
            ev.accept()
            return
        super().mouseReleaseEvent(ev)

    def _hover(self, ev) -> None:
        z = self._data_pos(ev.position())
        text = None
        self.hovered = None
        if z is not None:
            marker = self._nearest(self._marker_mu, z, 2 * PICK_RADIUS)
            if marker is not None:
                text = self._marker_info[marker]
            else:
                self.hovered = self._nearest(self._mu, z, PICK_RADIUS)
                if self.hovered is not None:
                    text = self.point_info(self.hovered)
        if text is None:
            QToolTip.hideText()
        else:
            QToolTip.showText(ev.globalPosition().toPoint(), text, self)

    @guarded()
    def keyPressEvent(self, ev) -> None:
        if ev.key() == Qt.Key.Key_Escape and self._selected is not None:
            self.set_selected(None)
            self.pointSelected.emit(-1)
            ev.accept()
            return
        super().keyPressEvent(ev)

    @staticmethod
    def _local_paths(ev) -> list[str]:
        mime = ev.mimeData()
        if not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    # The scene would otherwise reject the drag (see FIELD_NOTES): handle all three here.
    @guarded()
    def dragEnterEvent(self, ev) -> None:
        if self._local_paths(ev):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    @guarded()
    def dragMoveEvent(self, ev) -> None:
        if self._local_paths(ev):
            ev.acceptProposedAction()
        else:
            ev.ignore()

    @guarded()
    def dropEvent(self, ev) -> None:
        paths = self._local_paths(ev)
        if not paths:
            ev.ignore()
            return
        ev.acceptProposedAction()
        self.filesDropped.emit(paths)
