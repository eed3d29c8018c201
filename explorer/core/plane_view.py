"""Which 2-D view of the latent the plane shows, and what it shows in that view.

A view is a linear map P (trainer.latent_stats.Projection): two chosen coordinates (each
ellipse the exact axis-aligned marginal of q) or the top-2 PCA directions of the mu_i (each
ellipse the exact 1-sigma contour of P q, rotated, from P diag(sigma^2) P^T). A 2-D latent
shows z1, z2 as they are. A click at v decodes lift(v) with the hidden directions at the
aggregate posterior's mean. No Qt.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from trainer.latent_stats import Projection, axis_projection, ellipse, lift, pca_projection


@dataclass(frozen=True)
class ViewChoice:
    """"pca", or "axes" with the two coordinates ``dims`` (0-based)."""

    kind: str = "axes"
    dims: tuple[int, int] = (0, 1)

    def __post_init__(self):
        if self.kind not in ("pca", "axes"):
            raise ValueError(f"plane view must be 'pca' or 'axes' (got {self.kind!r})")
        if self.kind == "axes" and (len(self.dims) != 2 or self.dims[0] == self.dims[1]
                                    or min(self.dims) < 0):
            raise ValueError(f"an axes view needs two different coordinates (got {self.dims})")

    def fits(self, latent_dim: int) -> bool:
        return self.kind == "pca" and latent_dim >= 2 or \
            self.kind == "axes" and max(self.dims) < latent_dim


def plane_view_record(choice: ViewChoice) -> dict:
    """JSON for a session file."""
    return {"kind": choice.kind, "dims": list(choice.dims)}


def plane_view_from_record(record) -> ViewChoice | None:
    """The view a session file recorded, or None for a missing or malformed record."""
    if not isinstance(record, dict):
        return None
    dims = record.get("dims", [0, 1])
    if (not isinstance(dims, list) or len(dims) != 2
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims)):
        return None
    try:
        return ViewChoice(record.get("kind"), (dims[0], dims[1]))
    except ValueError:
        return None


def default_choice(latent_dim: int) -> ViewChoice:
    """z1, z2 for a 2-D latent (exact, as it is, whatever was chosen); the PCA view above."""
    return ViewChoice() if latent_dim <= 2 else ViewChoice("pca")


@dataclass(eq=False)
class PlaneData:
    """Every datapoint seen through one view. Made for every snapshot, so what a snapshot
    does not always need (the covariances, the aggregate mean) is computed when first read."""

    choice: ViewChoice
    view: Projection
    means: np.ndarray  # (N, 2) P (mu_i - centre)
    mu: np.ndarray  # (N, D) the q's means the view was made from
    sigma: np.ndarray  # (N, D) and their standard deviations
    axis_titles: tuple[str, str]
    text: str  # what the plane shows, in one line

    @property
    def rotated(self) -> bool:
        return self.choice.kind == "pca"

    @cached_property
    def cov(self) -> np.ndarray:
        """(N, 2, 2) P diag(sigma_i^2) P^T."""
        return projected_cov(self.view.P, self.sigma)

    @cached_property
    def base(self) -> np.ndarray:
        """(D,) the aggregate posterior's mean: the hidden directions at a click."""
        return column_means(self.mu)

    @cached_property
    def extents(self) -> np.ndarray:
        """(N, 2) half extents of each 1-sigma ellipse along the view's axes."""
        if not self.rotated:  # P picks two coordinates: their sigmas, exactly
            i, j = self.choice.dims
            return np.abs(np.stack((self.sigma[:, i], self.sigma[:, j]), axis=1))
        return np.sqrt(np.clip(np.diagonal(self.cov, axis1=1, axis2=2), 0, None))

    def ellipses(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) semi-axes and (N,) angles of the 1-sigma contours of P q."""
        return ellipse(self.cov)

    def lift(self, point) -> np.ndarray:
        """The z (D,) decoded at view point ``point``."""
        return lift(self.view, np.asarray(point, np.float64), self.base)

    def to_view(self, z: np.ndarray) -> np.ndarray:
        """View coordinates (..., 2) of latent points z (..., D)."""
        return (np.asarray(z, np.float64) - self.view.centre) @ self.view.P.T


def column_means(a: np.ndarray) -> np.ndarray:
    """(D,) the mean of each column of an (N, D) array, as one matrix-vector product
    (numpy's mean over axis 0 of a narrow array took ~2 ms at 70,000 rows, this ~0.05)."""
    if len(a) == 0:
        return np.zeros(a.shape[1])
    return np.ones(len(a)) @ a / len(a)


def plane_data(choice: ViewChoice, mu: np.ndarray, sigma: np.ndarray) -> PlaneData:
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    d = mu.shape[1]
    if d <= 2 or not choice.fits(d):
        choice = default_choice(d)
    if choice.kind == "pca":
        view = pca_projection(mu)
        e = view.explained
        titles = (f"PC1 of \u03bc ({100 * e[0]:.0f}% of its variance)",
                  f"PC2 of \u03bc ({100 * e[1]:.0f}%)")
        text = (f"PCA of {d}-D \u03bc: ellipses exact (P q); a click sets the other "
                f"{d - 2} directions to the aggregate mean")
        means = (mu - view.centre) @ view.P.T
    else:
        view = axis_projection(choice.dims, d)
        i, j = choice.dims
        titles = (f"z{i + 1}", f"z{j + 1}")
        text = ("the 2-D latent as it is" if d == 2 else
                f"z{i + 1}, z{j + 1} of {d}-D: exact marginals of q; a click sets the "
                f"other {d - 2} to the aggregate mean")
        # P picks two coordinates about a zero centre: those columns, no product.
        means = np.stack((mu[:, i], mu[:, j]), axis=1)
    return PlaneData(choice, view, means, mu, sigma, titles, text)


def projected_cov(P: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """(N, 2, 2) P diag(sigma_i^2) P^T for every row: its three distinct entries as one
    (N, D) @ (D, 3) product (an einsum over (N, 2, D, 2) took 11 ms at 70,000 points)."""
    a, b = P
    entries = (sigma ** 2) @ np.stack((a * a, a * b, b * b), axis=1)
    cov = np.empty((len(sigma), 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = entries[:, 0], entries[:, 2]
    cov[:, 0, 1] = cov[:, 1, 0] = entries[:, 1]
    return cov
