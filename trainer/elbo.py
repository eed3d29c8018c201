"""Per-datapoint objectives in nats (natural-log units; larger is better).

ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) <= log p(x), with p(z) = N(0, I).
Every function returns one value per datapoint, never a batch sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from .model import LOG_2PI, VAE


@dataclass
class ElboTerms:
    recon: torch.Tensor  # E_q[log p(x|z)], (B,), nats
    kl: torch.Tensor  # KL(q(z|x) || p(z)), (B,), nats, >= 0

    @property
    def elbo(self) -> torch.Tensor:
        return self.recon - self.kl


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Analytic KL(N(mu, diag exp(logvar)) || N(0, I)), summed over latent dims."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag exp(logvar)), summed over the last dim."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(-1)


def elbo_terms(model: VAE, x: torch.Tensor, generator: torch.Generator | None = None,
               rows: tuple[int, int] = (0, 1)) -> ElboTerms:
    """One-sample reparameterised ELBO terms with the analytic KL.

    ``rows=(start, step)``: x holds rows start::step of a larger minibatch (one rank's part,
    see trainer.distributed); the noise is drawn for the whole minibatch and those rows kept.
    """
    mu, logvar = model.encode(x)
    start, step = rows
    eps = torch.randn((len(mu) * step, *mu.shape[1:]), generator=generator, device=mu.device,
                      dtype=mu.dtype)[start::step]
    z = mu + torch.exp(0.5 * logvar) * eps
    recon = model.log_likelihood(x, model.decode(z))
    return ElboTerms(recon=recon, kl=gaussian_kl(mu, logvar))


def training_loss(terms: ElboTerms, beta: float) -> torch.Tensor:
    """Minibatch mean of -(recon - beta * KL). beta only ever weights training."""
    return -(terms.recon - beta * terms.kl).mean()


class IwaeEstimate(NamedTuple):
    """The IWAE estimate L_k of log p(x) and its standard error, (B,) nats each."""

    log_px: torch.Tensor
    se: torch.Tensor


@torch.no_grad()
def iwae_log_px(model: VAE, x: torch.Tensor, k: int = 1000, chunk: int = 250,
                generator: torch.Generator | None = None) -> IwaeEstimate:
    """The importance-weighted bound L_k (Burda et al. 2015) on log p(x), (B,) nats, with
    its standard error.

    L_k = log (1/k) sum_i w_i, w_i = p(x, z_i) / q(z_i|x), z_i ~ q(z|x); L_1 = ELBO,
    L_k -> log p(x). A stochastic lower bound: E[L_k] <= log p(x), while one draw can land
    above it. The standard error is the delta method's, sd(w) / (sqrt(k) mean(w)), from the
    same k weights (it understates the spread when a few weights dominate).
    """
    mu, logvar = model.encode(x)
    std = torch.exp(0.5 * logvar)
    log_w = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        eps = torch.randn((n, *mu.shape), generator=generator, device=mu.device)
        z = mu + std * eps  # (n, B, L)
        log_pxz = model.log_likelihood(x, model.decode(z.reshape(-1, mu.shape[-1]))
                                       .unflatten(0, (n, mu.shape[0])))
        log_pz = log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_q = log_normal(z, mu, logvar)
        log_w.append(log_pxz + log_pz - log_q)
    log_w = torch.cat(log_w).double()  # (k, B)
    estimate = torch.logsumexp(log_w, dim=0) - math.log(k)
    if k < 2:
        return IwaeEstimate(estimate.float(), torch.full_like(estimate, math.nan).float())
    w = torch.exp(log_w - log_w.max(0).values)  # scaled weights; the scale cancels below
    se = w.std(0) / (math.sqrt(k) * w.mean(0))
    return IwaeEstimate(estimate.float(), se.float())


def square_grid(center: tuple[float, float], half_width: float, n: int
                ) -> tuple[torch.Tensor, float]:
    """Cell centres of an n x n grid, (n*n, 2), and log of one cell's area."""
    h = 2 * half_width / n
    axis = torch.arange(n, dtype=torch.float32) * h + (h / 2 - half_width)
    zx, zy = torch.meshgrid(axis + center[0], axis + center[1], indexing="xy")
    return torch.stack((zx.flatten(), zy.flatten()), dim=-1), 2 * math.log(h)


@torch.no_grad()
def grid_log_joint(model: VAE, x: torch.Tensor, z: torch.Tensor, chunk: int = 4096
                   ) -> torch.Tensor:
    """log p(x_b, z_g) = log p(x_b|z_g) + log p(z_g) for every pair, (B, G).

    The decoder runs once per grid point, shared by the whole batch.
    """
    rows = []
    for start in range(0, z.shape[0], chunk):
        zc = z[start:start + chunk].to(x.device)
        params = model.decode(zc)
        log_pxz = model.log_likelihood_matrix(x, params)  # (B, g)
        rows.append(log_pxz + log_normal(zc, torch.zeros_like(zc), torch.zeros_like(zc)))
    return torch.cat(rows, dim=1)


@torch.no_grad()
def grid_log_px(model: VAE, x: torch.Tensor, n: int = 256, half_width: float | None = None
                ) -> torch.Tensor:
    """log p(x) = log of the integral of p(x|z) p(z) dz by a midpoint sum, (B,) nats.

    Only for a 2-D latent. The square is centred at the origin and, unless given,
    wide enough for the prior (+-5) and for every q(z|x_b) out to 6 sigma.
    """
    if model.latent_dim != 2:
        raise ValueError("the grid log p(x) needs a 2-D latent")
    if half_width is None:
        mu, logvar = model.encode(x)
        reach = (mu.abs() + 6 * torch.exp(0.5 * logvar)).max().item()
        half_width = max(5.0, reach)
    z, log_area = square_grid((0.0, 0.0), half_width, n)
    return torch.logsumexp(grid_log_joint(model, x, z), dim=1) + log_area
