"""The encoder's log-variance is softly bounded to [-30, 20]: sigma stays within
[3e-7, 2.2e4] whatever the weights, while sane log-variances pass unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer import VAE, Session, TrainConfig, load_source
from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.model import ENCODER_LOGVAR_MAX, ENCODER_LOGVAR_MIN, soft_clamp


def encoder_outputting(logvar: float, latent_dim: int = 2, n_pixels: int = 64) -> VAE:
    """A VAE whose encoder outputs mu = 0 and this log-variance for every input."""
    model = VAE(n_pixels, latent_dim, hidden=(8,))
    last = model.encoder[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias[:latent_dim] = 0.0
        last.bias[latent_dim:] = logvar
    return model


@pytest.mark.parametrize("raw, bound", [(80.0, ENCODER_LOGVAR_MAX), (1e6, ENCODER_LOGVAR_MAX),
                                        (-100.0, ENCODER_LOGVAR_MIN),
                                        (-1e6, ENCODER_LOGVAR_MIN)])
def test_extreme_log_variances_are_held_at_the_bounds(raw, bound):
    _, logvar = encoder_outputting(raw).encode(torch.rand(3, 64))
    assert torch.allclose(logvar, torch.full_like(logvar, bound), atol=1e-4)
    sigma = torch.exp(0.5 * logvar)
    assert torch.isfinite(sigma).all() and sigma.max() <= math.exp(ENCODER_LOGVAR_MAX / 2)


@pytest.mark.parametrize("raw", [-9.5, -6.0, -2.0, -0.25])
def test_sane_log_variances_pass_unchanged(raw):
    _, logvar = encoder_outputting(raw).encode(torch.rand(3, 64))
    assert torch.equal(logvar, torch.full_like(logvar, np.float32(raw)))


def test_the_bound_is_nearly_the_identity_far_from_it_and_monotone_with_live_gradient():
    x = torch.linspace(-40, 30, 7001, dtype=torch.float32, requires_grad=True)
    y = soft_clamp(x, ENCODER_LOGVAR_MIN, ENCODER_LOGVAR_MAX)
    y.sum().backward()
    sane = (x >= -20) & (x <= 10)
    assert (y - x)[sane].abs().max() < 5e-5
    assert bool((y[1:] > y[:-1] - 1e-6).all())
    assert bool((x.grad > 0).all()) and (x.grad[sane] - 1).abs().max() < 5e-5
    y = y.detach()
    assert float(y.min()) >= ENCODER_LOGVAR_MIN and float(y.max()) <= ENCODER_LOGVAR_MAX


def test_a_checkpoint_whose_encoder_says_logvar_80_gives_finite_bounded_sigmas(tmp_path):
    """The crafted file that crashed the GUI: every snapshot sigma is finite and bounded."""
    digits = load_source("digits")
    session = Session(digits, TrainConfig(hidden=(8,), threads=1, eval_every_seconds=1e9))
    session.step()
    with torch.no_grad():
        session.model.encoder[-1].bias[2:] = 80.0
        session.model.encoder[-1].weight[2:] = 0.0
    restored = Session.from_checkpoint(load_checkpoint(save_checkpoint(session, tmp_path / "c")),
                                       digits)
    sigma = restored.snapshot().sigma
    assert np.isfinite(sigma).all() and sigma.max() <= math.exp(ENCODER_LOGVAR_MAX / 2) * 1.0001
    assert sigma.min() > 1e3  # held at the bound, not reset
