"""Summaries of a latent space of any size, from the posterior means and spreads of a set of
datapoints: small pure numpy functions that the evaluate command and the views share.

mu and sigma are (N, D) arrays: the mean and standard deviation of q(z|x_i) = N(mu_i,
diag sigma_i^2) for each datapoint i.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# Burda, Grosse & Salakhutdinov (2016), section 5.2: a unit is active when its posterior mean
# moves with the data, A_u = Var_x(E_q[u|x]) > 0.01.
ACTIVE_THRESHOLD = 0.01


class ActiveUnits(NamedTuple):
    variance: np.ndarray  # (D,) Var_x(E_q[z_d | x]) over the datapoints
    active: np.ndarray  # (D,) bool, variance > threshold
    threshold: float


def active_units(mu: np.ndarray, threshold: float = ACTIVE_THRESHOLD) -> ActiveUnits:
    """Which latent dimensions carry information: the variance over datapoints of each
    posterior mean, against Burda et al.'s threshold. A collapsed dimension has q(z_d|x)
    the same for every x, so its mean does not move."""
    variance = np.asarray(mu, np.float64).var(axis=0)
    return ActiveUnits(variance, variance > threshold, float(threshold))


def per_dim_kl(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """The mean over datapoints of KL(q(z_d|x) || N(0, 1)) for each dimension d, (D,) nats:
    the per-dimension rate. Their sum is the mean KL term of the ELBO."""
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    return (0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar)).mean(axis=0)


class Range(NamedTuple):
    mean: np.ndarray  # (D,)
    sd: np.ndarray  # (D,)
    low: np.ndarray  # mean - k sd
    high: np.ndarray  # mean + k sd


def aggregate_range(mu: np.ndarray, sigma: np.ndarray, k: float = 2.0) -> Range:
    """Mean +- k sd of the aggregate posterior q(z) = (1/N) sum_i q(z|x_i) per dimension, the
    span latent traversals cover (as disentanglement_lib does). Its variance by the law of
    total variance: sd_d^2 = mean_i(sigma_id^2) + var_i(mu_id)."""
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    mean = mu.mean(axis=0)
    sd = np.sqrt((sigma ** 2).mean(axis=0) + mu.var(axis=0))
    return Range(mean, sd, mean - k * sd, mean + k * sd)


class Projection(NamedTuple):
    """A linear 2-D view of the latent: view coordinates v = P (z - centre)."""

    P: np.ndarray  # (2, D), orthonormal rows
    centre: np.ndarray  # (D,)
    explained: np.ndarray  # (2,) share of the variance of mu along each row


def pca_projection(mu: np.ndarray) -> Projection:
    """The top-2 principal directions of the posterior means, centred at their mean.
    Reproducible: the SVD is deterministic and each direction's sign is fixed so that its
    largest-magnitude component is positive."""
    mu = np.asarray(mu, np.float64)
    if mu.ndim != 2 or mu.shape[1] < 2:
        raise ValueError(f"PCA needs (N, D) means with D >= 2, got shape {mu.shape}")
    # From the (D, D) scatter matrix, not an SVD of the (N, D) data: the plane redoes this
    # for every snapshot, and at 70,000 x 8 the SVD took ~12 ms, these products ~1 ms.
    centre = np.ones(len(mu)) @ mu / len(mu) if len(mu) else np.zeros(mu.shape[1])
    x = mu - centre
    values, vectors = np.linalg.eigh(x.T @ x)  # ascending
    values = np.clip(values[::-1], 0, None)
    P = np.ascontiguousarray(vectors[:, ::-1][:, :2].T)
    flip = np.sign(P[np.arange(2), np.abs(P).argmax(axis=1)])
    P *= np.where(flip == 0, 1.0, flip)[:, None]
    total = float(values.sum())
    explained = (values[:2] / total) if total > 0 else np.zeros(2)
    return Projection(P, centre, explained)


def axis_projection(dims: tuple[int, int], latent_dim: int,
                    centre: np.ndarray | None = None) -> Projection:
    """The view of two chosen coordinates: P picks dimensions ``dims``."""
    P = np.zeros((2, latent_dim))
    P[0, dims[0]] = P[1, dims[1]] = 1.0
    c = np.zeros(latent_dim) if centre is None else np.asarray(centre, np.float64)
    return Projection(P, c, np.full(2, np.nan))


def project(view: Projection, mu: np.ndarray, sigma: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Each q(z|x_i) pushed through the view: means P (mu_i - centre), (N, 2), and the exact
    covariances P diag(sigma_i^2) P^T, (N, 2, 2), of the projected Gaussians."""
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    means = (mu - view.centre) @ view.P.T
    cov = np.einsum("ad,nd,bd->nab", view.P, sigma ** 2, view.P)
    return means, cov


def ellipse(cov: np.ndarray, level: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The ``level``-sigma contour of N(0, cov) for (..., 2, 2) covariances: semi-axes
    (..., 2), longer first, and the angle (...,) of the longer one in radians, from the
    first view axis towards the second. The 2 x 2 eigenproblem in closed form (numpy's
    batched eigh took ~100 ms for the 70,000 ellipses of a plane); the smaller eigenvalue
    as det / larger, which keeps its precision when the ellipse is long and thin."""
    cov = np.asarray(cov, np.float64)
    a, c = cov[..., 0, 0], cov[..., 1, 1]
    b = 0.5 * (cov[..., 0, 1] + cov[..., 1, 0])
    half = 0.5 * (a - c)
    larger = 0.5 * (a + c) + np.hypot(half, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        smaller = np.where(larger > 0, (a * c - b * b) / larger, 0.0)
    axes = level * np.sqrt(np.clip(np.stack((larger, smaller), axis=-1), 0, None))
    # tan(2 theta) = 2 b / (a - c): the direction of the larger eigenvalue's eigenvector.
    return axes, 0.5 * np.arctan2(b, half)


def lift(view: Projection, point: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The z a view shows at 2-D ``point``: ``base`` (the aggregate mean, or a selected
    point's mu) with its component in the view's plane replaced, so that
    P (z - centre) = point and z - base is orthogonal to everything the view hides."""
    base = np.asarray(base, np.float64)
    point = np.asarray(point, np.float64)
    shown = (base - view.centre) @ view.P.T
    return base + (point - shown) @ view.P


def lerp(z0: np.ndarray, z1: np.ndarray, n: int) -> np.ndarray:
    """n points from z0 to z1 on the straight line, (n, D), ends included."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    return (1 - t) * z0 + t * z1


def slerp(z0: np.ndarray, z1: np.ndarray, n: int) -> np.ndarray:
    """n points from z0 to z1 along the great circle through them (White 2016, "Sampling
    generative networks"): the norm stays near its ends' instead of dipping through the
    middle, towards the origin, where the prior N(0, I) has little mass in many dimensions.
    Falls back to the straight line when the two are (anti)parallel or one is zero."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 == 0 or n1 == 0:
        return lerp(z0, z1, n)
    cos = np.clip(z0 @ z1 / (n0 * n1), -1.0, 1.0)
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return lerp(z0, z1, n)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (np.sin((1 - t) * omega) * z0 + np.sin(t * omega) * z1) / np.sin(omega)
