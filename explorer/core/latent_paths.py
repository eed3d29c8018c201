"""The z rows the strips decode: latent traversals of a selected point (each dimension swept
over the aggregate posterior's mean +- 2 sd, as disentanglement_lib does) and the paths
between two points (straight, and along the prior's great circle). No Qt."""

from __future__ import annotations

import numpy as np

from trainer.latent_stats import aggregate_range, lerp, slerp

TRAVERSAL_STEPS = 9
INTERPOLATION_STEPS = 10


def traversal_z(z: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                steps: int = TRAVERSAL_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """(D, steps, D) latents: row d is ``z`` with z_d swept evenly from low_d to high_d of
    the aggregate posterior of (mu, sigma) (trainer.latent_stats.aggregate_range); and the
    (D, steps) swept values."""
    z = np.asarray(z, np.float64).reshape(-1)
    r = aggregate_range(mu, sigma)
    values = np.linspace(r.low, r.high, steps).T  # (D, steps)
    d = len(z)
    grid = np.broadcast_to(z, (d, steps, d)).copy()
    grid[np.arange(d), :, np.arange(d)] = values
    return grid, values


def interpolation_z(z0: np.ndarray, z1: np.ndarray, steps: int = INTERPOLATION_STEPS
                    ) -> dict[str, np.ndarray]:
    """{"linear": (steps, D), "spherical": (steps, D)} from z0 to z1, ends included."""
    return {"linear": lerp(z0, z1, steps), "spherical": slerp(z0, z1, steps)}
