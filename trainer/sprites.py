"""The built-in "sprites": small shapes with known generative factors, made on the fly.

Like dSprites (Matthey, Higgins, Hassabis & Lerchner 2017), but generated here from a seed,
so nothing is downloaded: each 32 x 32 image holds one shape (square, ellipse, heart or
triangle) drawn with an antialiased edge at position x, y, with a scale, a rotation and, in
colour, a hue, on black. Every factor is drawn independently and uniformly; the shape is the
dataset's label (what the plane colours by) and all factors, shape included, are kept in
``ImageDataset.factors`` so a view can tell whether the latent recovers them.

Positions are those of the shape's centroid (of its area), as fractions of the range that
keeps every shape inside the frame at any scale and rotation.
"""

from __future__ import annotations

import numpy as np

from .data import ImageDataset

SIDE = 32
SHAPES = ("square", "ellipse", "heart", "triangle")
DEFAULT_N = 10_000
RADIUS = 7.0  # pixels from the centroid to the farthest point of a shape at scale 1
MARGIN = RADIUS + 1.0  # the centroid stays this far from the frame's edge
SCALE_RANGE = (0.5, 1.0)  # dSprites' range of scales
ELLIPSE_AXES = (1.0, 0.55)
CHUNK = 1024  # images rendered at once (a few MB of float32 temporaries)
SOURCES = {"sprites": True, "sprites-grey": False}  # source name -> colour


def _sd_box(px, py, half):
    qx, qy = np.abs(px) - half, np.abs(py) - half
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _sd_ellipse(px, py, a, b):
    # (k - 1) / |grad k| for k = |(px/a, py/b)|: the signed distance to first order at the
    # edge, which is all an antialiased edge needs.
    k = np.hypot(px / a, py / b)
    grad = np.hypot(px / a ** 2, py / b ** 2) / np.maximum(k, 1e-9)
    return (k - 1) / np.maximum(grad, 1e-9)


def _sd_triangle(px, py, r):
    """Equilateral triangle with half-side r, centroid at the origin, a vertex up (-y),
    after Inigo Quilez's 2-D distance functions."""
    k = np.sqrt(3.0)
    py = -py  # image rows grow downwards: point the vertex up on screen
    px = np.abs(px) - r
    py = py + r / k
    fold = px + k * py > 0
    px, py = np.where(fold, (px - k * py) / 2, px), np.where(fold, (-k * px - py) / 2, py)
    px = px - np.clip(px, -2 * r, 0)
    return -np.hypot(px, py) * np.sign(py)


def _sd_heart_raw(px, py):
    """Inigo Quilez's heart (point at the origin, lobes towards +y), exact distance."""
    px = np.abs(px)
    upper = py + px > 1.0
    d_upper = np.hypot(px - 0.25, py - 0.75) - np.sqrt(2.0) / 4
    t = 0.5 * np.maximum(px + py, 0.0)
    d_lower = np.sqrt(np.minimum((px - 0.0) ** 2 + (py - 1.0) ** 2,
                                 (px - t) ** 2 + (py - t) ** 2)) * np.sign(px - py)
    return np.where(upper, d_upper, d_lower)


def _heart_frame() -> tuple[float, float]:
    """The raw heart's area centroid (on its axis) and its farthest point from it, found once
    on a fine grid, so the heart can be placed by its centroid and fitted in RADIUS."""
    u = np.linspace(-1.0, 1.0, 801)
    v = np.linspace(-0.2, 1.4, 641)
    gx, gy = np.meshgrid(u, v)
    inside = _sd_heart_raw(gx, gy) <= 0
    cy = float(gy[inside].mean())
    reach = float(np.hypot(gx[inside], gy[inside] - cy).max())
    return cy, reach


_HEART_CY, _HEART_REACH = _heart_frame()


def _sd_heart(px, py):
    # Lobes up on screen (rows grow downwards), centroid at the origin, reach 1.
    return _sd_heart_raw(px * _HEART_REACH, -py * _HEART_REACH + _HEART_CY) / _HEART_REACH


def _signed_distance(shape: int, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Distance to the edge of shape ``shape`` (negative inside), in units of the reach."""
    if shape == 0:
        return _sd_box(px, py, 1 / np.sqrt(2.0))  # corners on the unit circle
    if shape == 1:
        return _sd_ellipse(px, py, *ELLIPSE_AXES)
    if shape == 2:
        return _sd_heart(px, py)
    return _sd_triangle(px, py, np.sqrt(3.0) / 2)  # vertices on the unit circle


def centre_px(position: np.ndarray) -> np.ndarray:
    """A position factor in [0, 1] -> the centroid's coordinate in pixels (pixel centres
    are at 0.5, 1.5, ...)."""
    return MARGIN + np.asarray(position) * (SIDE - 2 * MARGIN)


def hue_to_rgb(hue: np.ndarray) -> np.ndarray:
    """Fully saturated, full-value colours of hues in [0, 1), (..., 3)."""
    k = (np.asarray(hue)[..., None] * 6 + np.array([5.0, 3.0, 1.0])) % 6
    return 1 - np.clip(np.minimum(k, 4 - k), 0, 1)


def sample_factors(n: int, seed: int, colour: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    factors = {"shape": rng.integers(0, len(SHAPES), n).astype(np.float64),
               "x": rng.uniform(0, 1, n), "y": rng.uniform(0, 1, n),
               "scale": rng.uniform(*SCALE_RANGE, n), "rotation": rng.uniform(0, 2 * np.pi, n)}
    if colour:
        factors["hue"] = rng.uniform(0, 1, n)
    return factors


def render(factors: dict[str, np.ndarray]) -> np.ndarray:
    """Images of the given factors, uint8 (N, 32, 32) grey or (N, 32, 32, 3) when a hue is
    given: coverage of each pixel by the shape (a one-pixel antialiased edge) times its
    colour."""
    n = len(factors["x"])
    colour = "hue" in factors
    out = np.zeros((n, SIDE, SIDE, 3) if colour else (n, SIDE, SIDE), np.uint8)
    grid = np.arange(SIDE, dtype=np.float32) + 0.5
    for start in range(0, n, CHUNK):
        sl = slice(start, min(n, start + CHUNK))
        cx = centre_px(factors["x"][sl]).astype(np.float32)[:, None, None]
        cy = centre_px(factors["y"][sl]).astype(np.float32)[:, None, None]
        radius = (RADIUS * factors["scale"][sl]).astype(np.float32)[:, None, None]
        angle = factors["rotation"][sl].astype(np.float32)[:, None, None]
        dx, dy = (grid[None, None, :] - cx) / radius, (grid[None, :, None] - cy) / radius
        cos, sin = np.cos(angle), np.sin(angle)
        px, py = cos * dx + sin * dy, -sin * dx + cos * dy  # rotate the frame by -angle
        shape = factors["shape"][sl].astype(int)
        distance = np.empty(px.shape, np.float32)
        for k in range(len(SHAPES)):
            rows = shape == k
            if rows.any():
                distance[rows] = _signed_distance(k, px[rows], py[rows])
        coverage = np.clip(0.5 - distance * radius, 0, 1)  # distance in pixels
        if colour:
            rgb = hue_to_rgb(factors["hue"][sl]).astype(np.float32)[:, None, None, :]
            out[sl] = np.rint(coverage[..., None] * rgb * 255)
        else:
            out[sl] = np.rint(coverage * 255)
    return out


def load_sprites(n: int = DEFAULT_N, seed: int = 0, colour: bool = True,
                 source: str | None = None) -> ImageDataset:
    """``n`` sprites drawn from ``seed``: the same arguments give the same images."""
    factors = sample_factors(n, seed, colour)
    kind = "colour" if colour else "grey"
    source = source or ("sprites" if colour else "sprites-grey")
    return ImageDataset(
        pixels=render(factors), scale=1 / 255, name=f"Built-in sprites ({kind}, 32x32)",
        source=source, labels=factors["shape"].astype(np.int64), label_names=list(SHAPES),
        notes=[f"{n:,} shapes generated from seed {seed}; factors: {', '.join(factors)}"],
        factors=factors)
