"""Exact per-datapoint inference: grid posterior, log p(x), local optima and gaps.

The closed-form checks use a real VAE whose weights make its decoder linear-Gaussian,
p(x|z) = N(Wz + b, diag s2): with hidden=(4,), relu(z) - relu(-z) = z, so p(x) =
N(b, W W^T + diag s2) and p(z|x) is Gaussian with known mean and covariance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer import (
    DutyCycle,
    FrozenVAE,
    Session,
    TrainConfig,
    aggregate_posterior_density,
    dataset_gaps,
    describe_shape,
    gaussian_fit,
    heldout_log_px,
    inspect_point,
    iwae_log_px,
    load_source,
    optimise_point,
    posterior_grid,
)
from trainer.inference import local_grid_estimates
from trainer.model import VAE


def relu_linear_vae(mean_weights: torch.Tensor, b: torch.Tensor, s2: torch.Tensor,
                    min_logvar: float = -6.0) -> VAE:
    """A real Gaussian VAE with hidden=(4,): the hidden layer is (relu(z1), relu(-z1),
    relu(z2), relu(-z2)) and ``mean_weights`` (D, 4) maps it to the decoder mean; the
    decoder log-variance is the constant log s2. The encoder keeps its random weights."""
    d = len(b)
    model = VAE(d, 2, hidden=(4,), likelihood="gaussian", min_logvar=min_logvar)
    with torch.no_grad():
        first, last = model.decoder[0], model.decoder[2]
        first.weight.copy_(torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]]))
        first.bias.zero_()
        last.weight.zero_()
        last.weight[:d] = mean_weights
        last.bias[:d] = b
        # Invert the decoder's floor: logvar = min + softplus(raw - min).
        last.bias[d:] = min_logvar + torch.log(torch.expm1(torch.log(s2) - min_logvar))
    return model.eval()


def linear_vae(w: torch.Tensor, b: torch.Tensor, s2: torch.Tensor) -> VAE:
    return relu_linear_vae(torch.stack([w[:, 0], -w[:, 0], w[:, 1], -w[:, 1]], 1), b, s2)


def closed_form(w, b, s2, x):
    """log p(x), posterior mean, covariance and precision, in float64."""
    w, b, s2, x = (t.double() for t in (w, b, s2, x))
    log_px = torch.distributions.MultivariateNormal(b, w @ w.T + torch.diag(s2)).log_prob(x)
    prec = torch.eye(2, dtype=torch.float64) + w.T @ (w / s2[:, None])
    cov = torch.linalg.inv(prec)
    return float(log_px), (cov @ (w.T @ ((x - b) / s2))).numpy(), cov.numpy(), prec.numpy()


def linear_case(scale: float, z_true: tuple[float, float], seed: int = 0):
    torch.manual_seed(seed)  # the encoder keeps its (seeded) random weights: a poor q
    g = torch.Generator().manual_seed(seed)
    d = 6
    w = torch.randn(d, 2, generator=g) * scale
    b = torch.randn(d, generator=g) * 0.3
    s2 = torch.rand(d, generator=g) * 0.3 + 0.2
    x = w @ torch.tensor(z_true) + b + torch.randn(d, generator=g) * s2.sqrt()
    return linear_vae(w, b, s2), x, closed_form(w, b, s2, x)


@pytest.mark.parametrize("scale, z_true", [(1.5, (0.7, -1.2)),  # broad, near the origin
                                           (12.0, (3.5, -2.5))])  # narrow (sd ~0.02), far
def test_grid_posterior_matches_the_linear_gaussian_closed_form(scale, z_true):
    model, x, (log_px, mean, cov, _) = linear_case(scale, z_true)
    grid = posterior_grid(model, x, n=128)
    assert grid.log_px == pytest.approx(log_px, abs=2e-3)
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(grid.mean, mean, atol=1e-3 * sd.min())
    np.testing.assert_allclose(grid.cov, cov, rtol=2e-3, atol=2e-3 * sd.prod())
    assert grid.edge_mass < 1e-4
    assert grid.log_density.shape == (128, 128)
    assert np.exp(grid.log_density + grid.log_cell_area).sum() == pytest.approx(1, abs=1e-6)
    assert describe_shape(grid) == []  # a Gaussian posterior needs no words


def test_encoder_elbo_gaps_and_optima_match_the_closed_form():
    model, x, (log_px, mean, cov, prec) = linear_case(1.5, (0.7, -1.2))
    point = inspect_point(model, x, iwae_k=100)
    # The untrained encoder starts q far off (ELBO ~ -97 vs log p(x) ~ -7.5): twice the
    # default steps, which assume a trained encoder's nearby start.
    point.optimum = optimise_point(model, x, steps=300)
    # ELBO(q) = log p(x) - KL(q || p(z|x)), both Gaussian: the quadrature ELBO is exact.
    q = point.encoder
    kl = 0.5 * (np.trace(prec @ q.cov) + (mean - q.mean) @ prec @ (mean - q.mean) - 2
                - np.linalg.slogdet(prec @ q.cov)[1])
    assert q.elbo == pytest.approx(log_px - kl, abs=2e-3)
    assert point.inference_gap == pytest.approx(kl, abs=2e-3)
    # The best diagonal Gaussian under KL(q || p) has precisions diag(prec) at the mean.
    diag_gap = 0.5 * (np.log(np.diag(prec)).sum() - np.linalg.slogdet(prec)[1])
    opt = point.optimum
    assert opt.diagonal.elbo == pytest.approx(log_px - diag_gap, abs=0.01)
    np.testing.assert_allclose(opt.diagonal.sigma, 1 / np.sqrt(np.diag(prec)), rtol=0.05)
    assert opt.full.elbo == pytest.approx(log_px, abs=0.01)
    np.testing.assert_allclose(opt.full.mean, mean, atol=0.05 * np.sqrt(cov.diagonal()).min())
    np.testing.assert_allclose(opt.full.cov, cov, rtol=0.1, atol=0.05 * cov.diagonal().min())
    assert point.amortisation_gap >= 0
    assert point.approximation_gap >= -2e-3
    assert opt.full.elbo >= opt.diagonal.elbo - 2e-3
    # A hand-placed q at the exact posterior has ELBO = log p(x).
    assert gaussian_fit(model, x, mean, cov=cov).elbo == pytest.approx(log_px, abs=2e-3)


def test_bimodal_posterior_is_described_in_words():
    # The decoder mean depends on |z1|, so z1 and -z1 explain x equally well.
    g = torch.Generator().manual_seed(1)
    d = 6
    u, v = torch.randn(d, generator=g) * 1.5, torch.randn(d, generator=g)
    b, s2 = torch.zeros(d), torch.full((d,), 0.1)
    model = relu_linear_vae(torch.stack([u, u, v, -v], 1), b, s2)
    x = u * 2.0 + v * 0.5
    grid = posterior_grid(model, x)
    assert abs(grid.mean[0]) < 0.05  # symmetric modes at z1 = +-2
    words = describe_shape(grid)
    assert any("2 separated modes" in w for w in words), words
    assert any("far from Gaussian" in w for w in words), words


@pytest.fixture(scope="module")
def trained():
    """A small Bernoulli VAE trained briefly on the built-in digits."""
    session = Session(load_source("digits"), TrainConfig(hidden=(48, 48), seed=0))
    for _ in range(300):
        session.step()
    return session.model.eval(), session.heldout_inputs(64)


def test_trained_model_grid_log_px_agrees_with_iwae(trained):
    model, x = trained
    for i in range(3):
        grid = posterior_grid(model, x[i])
        g = torch.Generator().manual_seed(i)
        iwae = float(iwae_log_px(model, x[i:i + 1], k=5000, generator=g).log_px[0])
        # Stated tolerance: IWAE (k=5000) is a lower bound up to its own noise, and
        # within 0.05 nats of the grid on this model.
        assert iwae <= grid.log_px + 0.02
        assert grid.log_px - iwae < 0.05
        assert grid.edge_mass < 1e-4 and grid.peak_cell_mass < 0.05


def test_trained_model_gaps_have_the_right_signs(trained):
    model, x = trained
    frozen = FrozenVAE(model, (8, 8))  # the GUI's read-only copy is accepted too
    point = inspect_point(frozen, x[0].numpy(), iwae_k=500, optimise=True)
    assert point.inference_gap >= -1e-3
    assert point.optimum.diagonal.elbo >= point.encoder.elbo - 5e-3  # ELBO* >= ELBO_i
    assert point.approximation_gap >= -5e-3
    assert point.optimum.full.elbo >= point.optimum.diagonal.elbo - 5e-3


def test_shared_grid_matches_per_point_grids(trained):
    model, x = trained
    est = dataset_gaps(model, x[:8], n=96)
    per_point = np.array([posterior_grid(model, xi).log_px for xi in x[:8]])
    np.testing.assert_allclose(est.log_px, per_point, atol=0.01)
    assert (est.inference_gap >= -0.01).all()
    live = heldout_log_px(model, x, n=64)
    assert live.log_px.shape == (len(x),) and live.resolved.mean() > 0.9
    assert live.mean_log_px >= live.mean_elbo


def test_quadrature_optimum_agrees_with_monte_carlo_adam(trained):
    # The deterministic L-BFGS optimum and Cremer et al.'s MC-Adam optimum are the same q*.
    model, x = trained
    quad = optimise_point(model, x[1])
    mc = optimise_point(model, x[1], method="mc", steps=100)
    assert quad.diagonal.elbo == pytest.approx(mc.diagonal.elbo, abs=0.01)
    assert quad.full.elbo == pytest.approx(mc.full.elbo, abs=0.01)
    np.testing.assert_allclose(quad.diagonal.mean, mc.diagonal.mean, atol=0.05)
    with pytest.raises(ValueError, match="method"):
        optimise_point(model, x[1], method="newton")


def test_local_grids_match_per_point_grids(trained):
    model, x = trained
    # (12 points: with each datapoint's fixed x, 2 of the first 12 have posteriors narrow
    # enough for a local grid on this briefly trained model.)
    log_px, elbo, resolved = local_grid_estimates(model, x[:12])
    assert resolved.sum() >= 2  # a posterior much wider than q is left to other grids
    per_point = np.array([posterior_grid(model, xi).log_px if ok else np.nan
                          for xi, ok in zip(x[:12], resolved, strict=True)])
    # Stated tolerance: 16 x 16 cells over +-12 q-sd are coarse for these broad posteriors
    # (measured errors up to 0.02 nats); on the narrow 784-pixel posteriors that local grids
    # exist for, they agreed with per-point grids within 0.003.
    np.testing.assert_allclose(log_px[resolved], per_point[resolved], atol=0.03)
    assert (log_px[resolved] >= elbo[resolved] - 0.01).all()


def test_bf16_grid_stays_close_to_fp32(trained):
    model, x = trained
    fp32, bf16 = posterior_grid(model, x[2]), posterior_grid(model, x[2], precision="bf16")
    assert bf16.log_px == pytest.approx(fp32.log_px, abs=0.05)  # the stated bf16 tolerance
    with pytest.raises(ValueError, match="precision"):
        posterior_grid(model, x[2], precision="fp8")


def test_aggregate_posterior_density_is_the_mixture():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(50, 2))
    sigma = rng.uniform(0.2, 0.8, size=(50, 2))
    xs = np.linspace(-6, 6, 241)
    ys = np.linspace(-5, 5, 201)
    dens = aggregate_posterior_density(mu, sigma, xs, ys, chunk=16)
    assert dens.shape == (201, 241)
    assert dens.sum() * (xs[1] - xs[0]) * (ys[1] - ys[0]) == pytest.approx(1, abs=1e-3)
    for j, k in [(100, 120), (37, 200), (150, 5)]:
        brute = np.mean([math.exp(-0.5 * (((xs[k] - m[0]) / s[0]) ** 2
                                          + ((ys[j] - m[1]) / s[1]) ** 2))
                         / (2 * math.pi * s[0] * s[1]) for m, s in zip(mu, sigma, strict=True)])
        assert dens[j, k] == pytest.approx(brute, rel=1e-9)


def test_duty_cycle_keeps_evaluation_under_its_share():
    cycle = DutyCycle(fraction=0.1, min_interval=1.0)
    assert cycle.due(0.0)
    cycle.ran(0.0, cost_seconds=0.5)  # 0.5 s of evaluation buys 5 s of training
    assert not cycle.due(4.9) and cycle.due(5.0)
    cycle.ran(5.0, cost_seconds=0.01)  # cheap runs still wait min_interval
    assert not cycle.due(5.9) and cycle.due(6.0)


# ------------------------------------------------- the adaptive grid (issue 15)
@pytest.mark.parametrize("scale, z_true", [(1.5, (0.7, -1.2)), (12.0, (3.5, -2.5))])
def test_adaptive_grid_is_exact_for_a_gaussian_posterior_without_refining(scale, z_true):
    model, x, (log_px, mean, cov, _) = linear_case(scale, z_true)
    grid = posterior_grid(model, x)  # adaptive: 32 x 32 over the mass box
    assert grid.log_density.shape == (32, 32) and grid.refine_levels == 0
    # Exact up to float32 decoder arithmetic (the midpoint error itself is ~1e-30 here).
    assert grid.log_px == pytest.approx(log_px, abs=1e-5)
    assert grid.resolved and grid.error_nats < 0.01 and grid.edge_mass < 1e-10
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(grid.mean, mean, atol=1e-4 * sd.min())
    np.testing.assert_allclose(grid.cov, cov, rtol=1e-4, atol=1e-4 * sd.prod())
    # Far fewer decoder passes than one 128 x 128 grid.
    assert grid.evaluations < 128 * 128 / 4


def test_adaptive_grid_matches_a_brute_force_1024_grid_on_a_trained_model(trained):
    from trainer.posterior import brute_force_log_px, widen

    model, x = trained
    for i in range(4):
        grid = posterior_grid(model, x[i])
        brute = brute_force_log_px(model, x[i], widen(grid.extent, 1.5), n=1024)
        assert grid.resolved
        assert abs(grid.log_px - brute) < 0.01, (i, grid.log_px, brute)
        assert abs(grid.log_px - brute) <= max(3 * grid.error_nats, 2e-3)  # honest estimate


def test_adaptive_grid_refines_where_the_shape_needs_it_and_says_when_unresolved(trained):
    from trainer.posterior import brute_force_log_px, widen

    model, x = trained
    coarse = posterior_grid(model, x[0], tol=1.0)  # no refining asked for
    fine = posterior_grid(model, x[0], tol=1e-5)
    assert coarse.refine_levels == 0 and fine.refine_levels >= 1
    assert fine.evaluations > coarse.evaluations
    brute = brute_force_log_px(model, x[0], widen(coarse.extent, 1.5), n=1024)
    assert abs(fine.log_px - brute) <= abs(coarse.log_px - brute) + 1e-4
    assert np.exp(fine.log_density + fine.log_cell_area).sum() == pytest.approx(1, abs=1e-9)
    impossible = posterior_grid(model, x[0], tol=1e-14)  # beyond float32 arithmetic
    assert not impossible.resolved and impossible.error_nats > 1e-14


def test_display_grid_is_a_smooth_normalised_copy(trained):
    model, x = trained
    grid = posterior_grid(model, x[1])
    shown = grid.for_display(128)
    assert shown.log_density.shape == (128, 128) and shown.extent == pytest.approx(grid.extent)
    assert shown.mass.sum() == pytest.approx(1, abs=1e-9)
    assert shown.log_px == grid.log_px
    np.testing.assert_allclose(shown.mean, grid.mean, atol=0.02 * np.sqrt(grid.cov[0, 0]))
    assert grid.for_display(16) is grid
