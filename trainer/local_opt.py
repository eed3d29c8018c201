"""Local variational parameters: a Gaussian q(z) for one datapoint, its precise ELBO, and
the best such q found by freezing theta and optimising q directly.

Cremer, Li & Duvenaud (2018) split log p(x) - ELBO(q_phi) into the approximation gap
(log p(x) minus the best per-datapoint Gaussian's ELBO) and the amortisation gap (that
best ELBO minus the encoder's). The best q is found as they do: by reparameterised
Monte-Carlo gradient ascent on the ELBO, started from the encoder's output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .elbo import log_normal
from .posterior import as_input, as_module

LOG_2PI = math.log(2 * math.pi)


@dataclass
class GaussianFit:
    """A Gaussian q(z) = N(mean, cov) for one datapoint and its ELBO terms in nats."""

    mean: np.ndarray  # (2,)
    cov: np.ndarray  # (2, 2)
    elbo: float  # ELBO(q) = recon - kl, nats, higher is better
    recon: float  # E_q[log p(x|z)], nats
    kl: float  # KL(q || p(z)), nats, >= 0

    @property
    def sigma(self) -> np.ndarray:
        """Standard deviations along z1 and z2."""
        return np.sqrt(np.diag(self.cov))


def quadrature_nodes(n: int, reach: float = 6.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Midpoint nodes u (n*n, 2) over [-reach, reach]^2 and log weights (n*n,) of the
    standard normal, normalised to sum to 1."""
    h = 2 * reach / n
    axis = torch.arange(n, dtype=torch.float64) * h + (h / 2 - reach)
    u1, u2 = torch.meshgrid(axis, axis, indexing="xy")
    u = torch.stack((u1.flatten(), u2.flatten()), dim=-1)
    log_w = -0.5 * u.pow(2).sum(-1)
    return u.float(), (log_w - torch.logsumexp(log_w, 0)).float()


def gaussian_kl_full(mean: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, L L^T) || N(0, I)), (B,)."""
    trace = scale_tril.pow(2).sum((-2, -1))
    logdet = 2 * torch.diagonal(scale_tril, dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (trace + mean.pow(2).sum(-1) - mean.shape[-1] - logdet)


@torch.no_grad()
def gaussian_elbo(model, x: torch.Tensor, mean: torch.Tensor, scale_tril: torch.Tensor,
                  n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Precise (recon, kl), each (B,), of q_b = N(mean_b, L_b L_b^T) for x (B, D).

    No sampling: E_q[log p(x|z)] is a midpoint quadrature on an n x n grid in q's own
    standardised coordinates (z = mean + L u, u over +-6 sd), so the grid always
    resolves q however narrow it is; the KL is analytic.
    """
    model = as_module(model)
    u, log_w = quadrature_nodes(n)
    z = mean[:, None, :] + torch.einsum("bij,gj->bgi", scale_tril, u)  # (B, G, 2)
    params = model.decode(z.reshape(-1, 2)).unflatten(0, z.shape[:2])
    log_pxz = model.log_likelihood(x[:, None, :], params)  # (B, G)
    recon = (log_pxz * log_w.exp()).sum(-1)
    return recon, gaussian_kl_full(mean, scale_tril)


def fit_gaussians(model, x: torch.Tensor, mean0: torch.Tensor, sd0: torch.Tensor,
                  full: bool = False, samples: int = 128, steps: int = 150, lr: float = 0.1,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise each x_b's ELBO over a Gaussian q_b with theta frozen, by Adam on
    reparameterised Monte-Carlo gradients (``samples`` draws per step, cosine-decayed lr,
    the second half's iterates averaged), started from N(mean0, diag sd0^2). Diagonal q
    unless ``full`` (Cholesky factor).

    Parameters are measured in units of the starting sd (mean = mean0 + sd0 * a, and
    L = diag(sd0) T with T unit lower-triangular at the start), so one learning rate
    suits a wide or a narrow q. Returns mean (B, 2) and scale_tril (B, 2, 2).
    """
    model = as_module(model)
    b = x.shape[0]
    a = torch.zeros(b, 2, requires_grad=True)
    log_diag = torch.zeros(b, 2, requires_grad=True)
    off = torch.zeros(b, requires_grad=True)
    variables = [a, log_diag, off] if full else [a, log_diag]
    opt = torch.optim.Adam(variables, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 50)
    gen = torch.Generator().manual_seed(seed)
    zero = torch.zeros(1, 2)
    below = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # the one off-diagonal entry of T

    def factor() -> torch.Tensor:
        t = torch.diag_embed(log_diag.exp())
        if full:
            t = t + off[:, None, None] * below
        return sd0[:, :, None] * t

    averaged = [torch.zeros_like(v) for v in variables]
    for step in range(steps):
        tril = factor()
        mean = mean0 + sd0 * a
        eps = torch.randn(samples, b, 2, generator=gen)
        z = mean + torch.einsum("bij,sbj->sbi", tril, eps)  # (S, B, 2)
        params = model.decode(z.reshape(-1, 2)).unflatten(0, (samples, b))
        log_joint = model.log_likelihood(x, params) + log_normal(z, zero, zero)
        # Entropy of q up to a constant: sum of the log-diagonal of its Cholesky factor.
        elbo = log_joint.mean(0) + log_diag.sum(-1)
        grads = torch.autograd.grad(-elbo.sum(), variables)
        for v, g in zip(variables, grads, strict=True):
            v.grad = g
        opt.step()
        sched.step()
        if step >= steps // 2:  # average the second half's iterates: the MC noise cancels
            with torch.no_grad():
                for avg, v in zip(averaged, variables, strict=True):
                    avg += v / (steps - steps // 2)
    with torch.no_grad():
        for v, avg in zip(variables, averaged, strict=True):
            v.copy_(avg)
        return mean0 + sd0 * a, factor()


def to_fit(mean: torch.Tensor, tril: torch.Tensor, recon: torch.Tensor, kl: torch.Tensor,
           i: int = 0) -> GaussianFit:
    cov = (tril[i] @ tril[i].T).double().numpy()
    return GaussianFit(mean=mean[i].double().numpy(), cov=cov, elbo=float(recon[i] - kl[i]),
                       recon=float(recon[i]), kl=float(kl[i]))


def gaussian_fit(model, x, mean, sigma=None, cov=None, n: int = 48) -> GaussianFit:
    """The precise ELBO of a hand-placed q for one datapoint x (D,): N(mean, diag sigma^2)
    or N(mean, cov). What the inspector shows while an ellipse is dragged."""
    x = as_input(x).reshape(1, -1)
    mean = torch.as_tensor(np.asarray(mean, np.float32)).reshape(1, 2)
    if cov is not None:
        tril = torch.linalg.cholesky(torch.as_tensor(np.asarray(cov, np.float32)))[None]
    else:
        tril = torch.diag_embed(torch.as_tensor(np.asarray(sigma, np.float32)).reshape(1, 2))
    return to_fit(mean, tril, *gaussian_elbo(model, x, mean, tril, n))


def encoder_fit(model, x, n: int = 48) -> GaussianFit:
    """The encoder's q_phi(z|x) for one datapoint, with its precise ELBO_i."""
    model = as_module(model)
    x = as_input(x).reshape(1, -1)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    tril = torch.diag_embed(torch.exp(0.5 * logvar))
    return to_fit(mu, tril, *gaussian_elbo(model, x, mu, tril, n))


@dataclass
class LocalOptimum:
    """The best diagonal q* and the best full-covariance Gaussian for one datapoint."""

    diagonal: GaussianFit
    full: GaussianFit


def optimise_point(model, x, samples: int = 128, steps: int = 150, lr: float = 0.1,
                   seed: int = 0, n: int = 48) -> LocalOptimum:
    """"Optimise this point": theta frozen, (mu, log sigma) of a diagonal Gaussian fitted
    to x (D,) from the encoder's output; then a full-covariance Gaussian from q*. Both
    ELBOs are evaluated precisely by quadrature, not by the noisy training estimate."""
    model = as_module(model)
    x = as_input(x).reshape(1, -1)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    mean, tril = fit_gaussians(model, x, mu, torch.exp(0.5 * logvar), False, samples, steps,
                               lr, seed)
    diagonal = to_fit(mean, tril, *gaussian_elbo(model, x, mean, tril, n))
    mean_f, tril_f = fit_gaussians(model, x, mean, torch.diagonal(tril, dim1=-2, dim2=-1),
                                   True, samples, steps, lr, seed + 1)
    full = to_fit(mean_f, tril_f, *gaussian_elbo(model, x, mean_f, tril_f, n))
    return LocalOptimum(diagonal=diagonal, full=full)
