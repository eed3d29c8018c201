"""Which 2-D view of the latent the plane shows, and what it shows in that view.

A view is a linear map P (trainer.latent_stats.Projection): two chosen coordinates (each
ellipse the exact axis-aligned marginal of q) or the top-2 PCA directions of the mu_i (each
ellipse the exact 1-sigma contour of P q, rotated, from P diag(sigma^2) P^T). A 2-D latent
shows z1, z2 as they are. A click at v decodes lift(v) with the hidden directions at the
aggregate posterior's mean. No Qt.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class PlaneData:
    """Every datapoint seen through one view."""

    choice: ViewChoice
    view: Projection
    means: np.ndarray  # (N, 2) P (mu_i - centre)
    cov: np.ndarray  # (N, 2, 2) P diag(sigma_i^2) P^T
    base: np.ndarray  # (D,) the aggregate posterior's mean: the hidden directions at a click
    axis_titles: tuple[str, str]
    text: str  # what the plane shows, in one line

    @property
    def rotated(self) -> bool:
        return self.choice.kind == "pca"

    @property
    def extents(self) -> np.ndarray:
        """(N, 2) half extents of each 1-sigma ellipse along the view's axes."""
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


def plane_data(choice: ViewChoice, mu: np.ndarray, sigma: np.ndarray) -> PlaneData:
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    d = mu.shape[1]
    if d <= 2 or not choice.fits(d):
        choice = default_choice(d)
    base = mu.mean(axis=0) if len(mu) else np.zeros(d)
    if choice.kind == "pca":
        view = pca_projection(mu)
        e = view.explained
        titles = (f"PC1 of \u03bc ({100 * e[0]:.0f}% of its variance)",
                  f"PC2 of \u03bc ({100 * e[1]:.0f}%)")
        text = (f"PCA of {d}-D \u03bc: ellipses exact (P q); a click sets the other "
                f"{d - 2} directions to the aggregate mean")
    else:
        view = axis_projection(choice.dims, d)
        i, j = choice.dims
        titles = (f"z{i + 1}", f"z{j + 1}")
        text = ("the 2-D latent as it is" if d == 2 else
                f"z{i + 1}, z{j + 1} of {d}-D: exact marginals of q; a click sets the "
                f"other {d - 2} to the aggregate mean")
    means = (mu - view.centre) @ view.P.T
    cov = np.einsum("ad,nd,bd->nab", view.P, sigma ** 2, view.P)
    return PlaneData(choice, view, means, cov, base, titles, text)
