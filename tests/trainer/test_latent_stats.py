"""Latent summaries above 2-D against closed forms, Monte Carlo and hand-built encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trainer import VAE
from trainer.latent_stats import (
    ACTIVE_THRESHOLD,
    active_units,
    aggregate_range,
    axis_projection,
    ellipse,
    lerp,
    lift,
    pca_projection,
    per_dim_kl,
    project,
    slerp,
)


def test_pca_ellipse_is_the_covariance_of_projected_samples():
    """The drawn ellipse of point i is the 1-sigma contour of P q(z|x_i): compare
    P diag(sigma^2) P^T, and the contour it gives, with projected draws from q."""
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(300, 6)) * np.array([3, 2, 1, 0.5, 0.2, 0.1])
    sigma = rng.uniform(0.1, 1.5, size=(300, 6))
    view = pca_projection(mu)
    means, cov = project(view, mu, sigma)
    i = 7
    z = mu[i] + sigma[i] * rng.normal(size=(200_000, 6))
    v = (z - view.centre) @ view.P.T
    np.testing.assert_allclose(v.mean(0), means[i], atol=0.02)
    np.testing.assert_allclose(np.cov(v.T), cov[i], rtol=0.02, atol=0.005)
    # The contour: points R diag(axes) (cos t, sin t) lie at Mahalanobis distance 1.
    axes, angle = ellipse(cov[i])
    t = np.linspace(0, 2 * np.pi, 9)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = (rot @ (axes[:, None] * np.stack([np.cos(t), np.sin(t)]))).T
    np.testing.assert_allclose(np.einsum("na,ab,nb->n", pts, np.linalg.inv(cov[i]), pts), 1.0,
                               rtol=1e-9)
    assert axes[0] >= axes[1] > 0
    # 39.3 % of a 2-D Gaussian's mass lies inside its 1-sigma ellipse.
    inside = np.einsum("na,ab,nb->n", v - means[i], np.linalg.inv(cov[i]), v - means[i]) < 1
    assert inside.mean() == pytest.approx(1 - np.exp(-0.5), abs=0.005)


def test_pca_finds_the_planted_plane_reproducibly():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(8, 2)))[0].T  # (2, 8) orthonormal
    mu = (rng.normal(size=(500, 2)) * [5.0, 2.0]) @ basis + 0.01 * rng.normal(size=(500, 8))
    view = pca_projection(mu)
    np.testing.assert_allclose(view.P @ view.P.T, np.eye(2), atol=1e-12)
    # The same plane, and its longer axis first (the sample's axes turn a little).
    np.testing.assert_allclose(np.linalg.svd(view.P @ basis.T)[1], 1.0, atol=1e-3)
    assert abs(view.P[0] @ basis[0]) > 0.99
    assert view.explained.sum() > 0.99 and view.explained[0] > view.explained[1]
    again = pca_projection(mu[::-1].copy())  # same points, another order: the same view
    np.testing.assert_allclose(again.P, view.P, atol=1e-9)
    for row in view.P:
        assert row[np.abs(row).argmax()] > 0


def test_axis_view_ellipses_are_the_exact_marginals():
    mu, sigma = np.array([[1.0, 2.0, 3.0]]), np.array([[0.5, 0.2, 0.7]])
    means, cov = project(axis_projection((2, 0), 3), mu, sigma)
    np.testing.assert_allclose(means, [[3.0, 1.0]])
    np.testing.assert_allclose(cov, [np.diag([0.49, 0.25])])


def test_lift_decodes_the_z_the_view_shows():
    rng = np.random.default_rng(2)
    mu = rng.normal(size=(100, 5))
    view = pca_projection(mu)
    base = mu.mean(0) + rng.normal(size=5)  # e.g. a selected point's mu
    click = np.array([0.7, -1.3])
    z = lift(view, click, base)
    np.testing.assert_allclose((z - view.centre) @ view.P.T, click, atol=1e-12)
    # Only the shown directions moved: z - base lies in the view's plane.
    moved = z - base
    np.testing.assert_allclose(moved, (moved @ view.P.T) @ view.P, atol=1e-12)


def hand_built_vae(weights: np.ndarray, bias: np.ndarray) -> VAE:
    """A VAE whose encoder is one linear map with the given weights: known mu and logvar."""
    latent = len(bias) // 2
    model = VAE(weights.shape[1], latent_dim=latent, hidden=(4,))
    model.encoder = nn.Linear(weights.shape[1], 2 * latent)
    with torch.no_grad():
        model.encoder.weight.copy_(torch.from_numpy(weights))
        model.encoder.bias.copy_(torch.from_numpy(bias))
    return model


def test_active_units_and_per_dim_kl_of_a_hand_built_encoder():
    """mu_0 = 2 x_0 (active), mu_1 = 0.05 x_0 (variance 0.000625: collapsed), mu_2 = 0 with
    sigma_2 = 1 (the prior: KL 0); logvar_0 = log 0.25, logvar_1 = 0."""
    x = np.array([[0, 1], [1, 0], [0, 0], [1, 1]], np.float32)  # x_0: two 0s, two 1s
    w = np.zeros((6, 2), np.float32)
    w[0, 0], w[1, 0] = 2.0, 0.05
    b = np.array([0, 0, 0, np.log(0.25), 0, 0], np.float32)
    with torch.no_grad():
        mu, logvar = (t.numpy() for t in hand_built_vae(w, b).encode(torch.from_numpy(x)))
    units = active_units(mu)
    np.testing.assert_allclose(units.variance, [4 * 0.25, 0.0025 * 0.25, 0.0], rtol=1e-5)
    assert units.active.tolist() == [True, False, False]
    assert units.threshold == ACTIVE_THRESHOLD == 0.01
    # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1 - log s^2) / 2, averaged over the 4 points.
    kl0 = np.mean([0.5 * (m ** 2 + 0.25 - 1 - np.log(0.25)) for m in (0, 2, 0, 2)])
    kl1 = np.mean([0.5 * m ** 2 for m in (0, 0.05, 0, 0.05)])
    np.testing.assert_allclose(per_dim_kl(mu, logvar), [kl0, kl1, 0.0], rtol=1e-5, atol=1e-7)


def test_aggregate_range_is_the_spread_of_the_mixture():
    rng = np.random.default_rng(3)
    mu = rng.normal(size=(50, 3)) * [1.0, 0.1, 3.0]
    sigma = rng.uniform(0.2, 1.0, size=(50, 3))
    r = aggregate_range(mu, sigma)
    pick = rng.integers(0, 50, 400_000)
    draws = mu[pick] + sigma[pick] * rng.normal(size=(400_000, 3))
    np.testing.assert_allclose(r.mean, draws.mean(0), atol=0.02)
    np.testing.assert_allclose(r.sd, draws.std(0), rtol=0.01)
    np.testing.assert_allclose(r.high - r.low, 4 * r.sd)


def test_linear_and_spherical_interpolation():
    z0, z1 = np.array([3.0, 0.0, 0.0]), np.array([0.0, 3.0, 0.0])
    line, arc = lerp(z0, z1, 5), slerp(z0, z1, 5)
    for path in (line, arc):
        np.testing.assert_allclose(path[[0, -1]], [z0, z1], atol=1e-12)
    np.testing.assert_allclose(line[2], [1.5, 1.5, 0])
    np.testing.assert_allclose(np.linalg.norm(arc, axis=1), 3.0)  # on the great circle
    np.testing.assert_allclose(arc[2], 3 * np.array([1, 1, 0]) / np.sqrt(2))
    np.testing.assert_allclose(slerp(z0, 2 * z0, 3), lerp(z0, 2 * z0, 3))  # parallel
