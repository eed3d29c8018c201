"""Local variational parameters: a Gaussian q(z) for one datapoint, its precise ELBO, and
the best such q found by freezing theta and optimising q directly.

Cremer, Li & Duvenaud (2018) split log p(x) - ELBO(q_phi) into the approximation gap
(log p(x) minus the best per-datapoint Gaussian's ELBO) and the amortisation gap (that
best ELBO minus the encoder's). The best q is found from the encoder's output either by
deterministic Gauss-Hermite quadrature of the ELBO maximised with L-BFGS (the default:
tens of iterations of a few dozen decoder passes each), or as Cremer et al. do, by
reparameterised Monte-Carlo gradient ascent (``method="mc"``).
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


class _WhitenedGaussian:
    """The optimised q, measured in units of the starting sd: mean = mean0 + sd0 * a and
    L = diag(sd0) T, T lower-triangular with a log-diagonal and (full covariance only)
    one off-diagonal entry. At the start a = 0 and T = I, so q starts at N(mean0, sd0^2)."""

    _BELOW = torch.tensor([[0.0, 0.0], [1.0, 0.0]])

    def __init__(self, mean0: torch.Tensor, sd0: torch.Tensor, full: bool):
        b = mean0.shape[0]
        self.mean0, self.sd0, self.full = mean0, sd0, full
        self.a = torch.zeros(b, 2, requires_grad=True)
        self.log_diag = torch.zeros(b, 2, requires_grad=True)
        self.off = torch.zeros(b, requires_grad=True)
        self.variables = [self.a, self.log_diag, self.off] if full else [self.a, self.log_diag]

    def mean(self) -> torch.Tensor:
        return self.mean0 + self.sd0 * self.a

    def factor(self) -> torch.Tensor:
        t = torch.diag_embed(self.log_diag.exp())
        if self.full:
            t = t + self.off[:, None, None] * self._BELOW
        return self.sd0[:, :, None] * t


def fit_gaussians(model, x: torch.Tensor, mean0: torch.Tensor, sd0: torch.Tensor,
                  full: bool = False, samples: int = 128, steps: int = 150, lr: float = 0.1,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise each x_b's ELBO over a Gaussian q_b with theta frozen, by Adam on
    reparameterised Monte-Carlo gradients (``samples`` draws per step, cosine-decayed lr,
    the second half's iterates averaged), started from N(mean0, diag sd0^2). Diagonal q
    unless ``full`` (Cholesky factor).

    Parameters are measured in units of the starting sd (_WhitenedGaussian), so one
    learning rate suits a wide or a narrow q. Returns mean (B, 2) and scale_tril (B, 2, 2).
    """
    model = as_module(model)
    b = x.shape[0]
    q = _WhitenedGaussian(mean0, sd0, full)
    variables, log_diag = q.variables, q.log_diag
    opt = torch.optim.Adam(variables, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 50)
    gen = torch.Generator().manual_seed(seed)
    zero = torch.zeros(1, 2)
    averaged = [torch.zeros_like(v) for v in variables]
    for step in range(steps):
        tril, mean = q.factor(), q.mean()
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
        return q.mean(), q.factor()


def hermite_nodes(k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensor-product Gauss-Hermite nodes u (k*k, 2) and weights (k*k,) summing to 1 for
    expectations under N(0, I): exact for polynomials of degree < 2k in each coordinate."""
    t, w = np.polynomial.hermite_e.hermegauss(k)
    w = w / w.sum()
    u1, u2 = np.meshgrid(t, t, indexing="xy")
    u = np.stack((u1.ravel(), u2.ravel()), axis=-1)
    return (torch.as_tensor(u, dtype=torch.float32),
            torch.as_tensor(np.outer(w, w).ravel(), dtype=torch.float32))


def fit_by_quadrature(model, x: torch.Tensor, mean0: torch.Tensor, sd0: torch.Tensor,
                      full: bool = False, nodes: int = 10, steps: int = 100
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise each x_b's ELBO over a Gaussian q_b with theta frozen, deterministically:
    E_q[log p(x|z)] by k x k Gauss-Hermite quadrature mapped through q's Cholesky factor,
    the KL analytic, and L-BFGS with a strong-Wolfe line search (no sampling noise, so it
    converges in tens of iterations). Same parameterisation and return as fit_gaussians.

    A ReLU decoder makes the objective only piecewise smooth; the caller re-scores the
    result with the fine quadrature of gaussian_elbo and keeps the better q.
    """
    model = as_module(model)
    q = _WhitenedGaussian(mean0, sd0, full)
    variables = q.variables
    u, w = hermite_nodes(nodes)

    def negative_elbo() -> torch.Tensor:
        tril, mean = q.factor(), q.mean()
        z = mean[:, None, :] + torch.einsum("bij,gj->bgi", tril, u)  # (B, G, 2)
        params = model.decode(z.reshape(-1, 2)).unflatten(0, z.shape[:2])
        recon = (model.log_likelihood(x[:, None, :], params) * w).sum(-1)
        loss = -(recon - gaussian_kl_full(mean, tril)).sum()
        # Gradients for q's parameters only: autograd skips the decoder's weight grads.
        for v, g in zip(variables, torch.autograd.grad(loss, variables), strict=True):
            v.grad = g
        return loss

    # float32 objective of a few hundred nats: changes below ~1e-5 nats are rounding.
    opt = torch.optim.LBFGS(variables, lr=1.0, max_iter=steps, history_size=10,
                            tolerance_grad=1e-5, tolerance_change=1e-7,
                            line_search_fn="strong_wolfe")
    try:
        opt.step(negative_elbo)
    except RuntimeError as e:
        if "overflow" not in str(e):
            raise
        # A degenerate model (seen: weights ~1e21 after a step with lr 2^70) gives the line
        # search a step that float32 cannot hold: q stays at the start (the zeros).
        with torch.no_grad():
            for v in variables:
                v.zero_()
    with torch.no_grad():
        return q.mean(), q.factor()


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
                   seed: int = 0, n: int = 48, method: str = "quadrature",
                   nodes: int = 10, start: tuple | None = None) -> LocalOptimum:
    """"Optimise this point": theta frozen, (mu, log sigma) of a diagonal Gaussian fitted
    to x (D,) from the encoder's output, or from ``start`` = (mean, sigma), the q the
    run's inference gives x (a free table's row, a refined q); then a full-covariance
    Gaussian from q*.

    ``method="quadrature"`` (default): L-BFGS on the ``nodes`` x ``nodes`` Gauss-Hermite
    ELBO, at most ``steps`` iterations. ``method="mc"``: Adam on reparameterised
    Monte-Carlo gradients (``samples``, ``steps``, ``lr``, ``seed``). Either way every
    candidate is re-scored by the fine n x n quadrature, not by the objective it was
    optimised on, and the better of start and result is kept: ELBO* >= ELBO_i and
    ELBO(full) >= ELBO* hold by construction, as they do for the true optima.
    """
    if method not in ("quadrature", "mc"):
        raise ValueError(f"method must be 'quadrature' or 'mc', not {method!r}")
    model = as_module(model)
    x = as_input(x).reshape(1, -1)
    if start is None:
        with torch.no_grad():
            mu, logvar = model.encode(x)
        sd = torch.exp(0.5 * logvar)
    else:
        mu, sd = (torch.as_tensor(np.asarray(a, np.float32)).reshape(1, 2) for a in start)

    def fit(mean0, sd0, full, seed_offset):
        if method == "mc":
            return fit_gaussians(model, x, mean0, sd0, full, samples, steps, lr,
                                 seed + seed_offset)
        return fit_by_quadrature(model, x, mean0, sd0, full, nodes, steps)

    mean_d, tril_d = fit(mu, sd, False, 0)
    mean_f, tril_f = fit(mean_d, torch.diagonal(tril_d, dim1=-2, dim2=-1), True, 1)
    # One batched fine quadrature scores the start, q* and the full-covariance optimum.
    means = torch.cat((mu, mean_d, mean_f))
    trils = torch.cat((torch.diag_embed(sd), tril_d, tril_f))
    recon, kl = gaussian_elbo(model, x.expand(3, -1), means, trils, n)
    elbo = recon - kl
    diag = 1 if elbo[1] >= elbo[0] else 0
    full = 2 if elbo[2] >= elbo[diag] else diag
    return LocalOptimum(diagonal=to_fit(means, trils, recon, kl, diag),
                        full=to_fit(means, trils, recon, kl, full))
