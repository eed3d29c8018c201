"""Which quantities are the variational parameters? Per-datapoint inference in numbers.

For one datapoint: lambda_i = (mu_i, sigma_i) from the encoder, its precise ELBO_i, the
exact posterior and log p(x) on a grid (with IWAE beside it as a check), the inference
gap log p(x) - ELBO_i = KL(q || p(z|x)), and after "optimise this point" the split of
that gap into amortisation and approximation gaps (Cremer, Li & Duvenaud, 2018).
For many datapoints: the same log p(x) and ELBO on one shared grid, decoded once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .elbo import grid_log_joint, iwae_log_px, log_normal
from .local_opt import GaussianFit, LocalOptimum, encoder_fit, gaussian_fit, optimise_point
from .posterior import PosteriorGrid, as_input, as_module, cell_grid, describe_shape, posterior_grid

# Shared-grid resolution rules. The midpoint sum of a Gaussian of sd s on cells of width
# h is exact to a relative ~2 exp(-2 pi^2 s^2 / h^2): below 1e-5 for s >= 0.8 h, which a
# peak cell holding <= 25 % of the mass guarantees. The ELBO's quadrature of q on the
# same cells asks q's sd to span at least one cell.
SHARED_PEAK_CELL_LIMIT = 0.25
SHARED_EDGE_LIMIT = 1e-4
# The per-point inspector's settings, shared by the GUI's Inspector and ``inspect``.
INSPECT_GRID_N = None  # the adaptive grid (trainer.posterior_grid), to ~0.01 nats
INSPECT_IWAE_K = 1000


@dataclass
class PointInference:
    """Everything the inspector shows for one datapoint, in nats (higher is better)."""

    grid: PosteriorGrid  # exact p(z|x) and log p(x)
    # The q shown: q_phi(z|x), lambda_i = (mu_i, sigma_i) = f_phi(x_i), or the q the run's
    # inference gives x (``inspect_point``'s ``q``); ELBO_i by quadrature.
    encoder: GaussianFit
    iwae: float  # IWAE estimate L_k with the encoder's q: <= log p(x) on average
    iwae_k: int
    shape: list[str]  # words when the posterior is multimodal or far from Gaussian
    optimum: LocalOptimum | None = None  # after "optimise this point"
    iwae_se: float = math.nan  # the IWAE estimate's standard error (delta method), nats

    @property
    def log_px(self) -> float:
        return self.grid.log_px

    @property
    def inference_gap(self) -> float:
        """log p(x) - ELBO_i = KL(q_phi(z|x) || p(z|x)) >= 0."""
        return self.log_px - self.encoder.elbo

    @property
    def amortisation_gap(self) -> float | None:
        """ELBO* - ELBO_i >= 0: what a per-datapoint q gains over the encoder's."""
        return None if self.optimum is None else self.optimum.diagonal.elbo - self.encoder.elbo

    @property
    def approximation_gap(self) -> float | None:
        """log p(x) - ELBO* >= 0: what the diagonal Gaussian family itself misses."""
        return None if self.optimum is None else self.log_px - self.optimum.diagonal.elbo


def inspect_point(model, x, n: int | None = INSPECT_GRID_N, iwae_k: int = INSPECT_IWAE_K,
                  optimise: bool = False,
                  seed: int = 0, q: tuple | None = None) -> PointInference:
    """The per-point inspector's numbers for x (D,). ``optimise`` also runs the local
    optimisation (~0.1-1 s); ``optimise_point`` can be called later instead. ``n=None``:
    the adaptive grid (trainer.posterior_grid), resolved to ~0.01 nats. ``q``: (mean,
    sigma) of the q to score instead of the encoder's (a free table's row, a refined q);
    "optimise" then starts from it."""
    model = as_module(model)
    x = as_input(x).reshape(-1)
    grid = posterior_grid(model, x, n)
    gen = torch.Generator().manual_seed(seed)
    iwae = iwae_log_px(model, x[None], k=iwae_k, generator=gen)
    shown = encoder_fit(model, x) if q is None else gaussian_fit(model, x, q[0], sigma=q[1])
    point = PointInference(grid=grid, encoder=shown, iwae=float(iwae.log_px[0]),
                           iwae_k=iwae_k, shape=describe_shape(grid),
                           iwae_se=float(iwae.se[0]))
    if optimise:
        point.optimum = optimise_point(model, x, seed=seed,
                                       start=None if q is None else (shown.mean, shown.sigma))
    return point


# ------------------------------------------------------------- many points at once
@dataclass
class SharedGridEstimate:
    """Per-datapoint log p(x) and ELBO on one grid shared by a batch, (B,) each."""

    log_px: np.ndarray  # exact up to the grid, nats
    elbo: np.ndarray  # the encoder's ELBO_i, by quadrature of q_i on the same cells
    resolved: np.ndarray  # bool: posterior inside the box, and it and q span >= 1 cell
    box: tuple[float, float, float, float]
    n: int
    seconds: float

    @property
    def inference_gap(self) -> np.ndarray:
        return self.log_px - self.elbo

    @property
    def mean_log_px(self) -> float:
        return float(self.log_px.mean())

    @property
    def mean_elbo(self) -> float:
        return float(self.elbo.mean())


def shared_box(mu: torch.Tensor, sd: torch.Tensor, reach: float = 6.0
               ) -> tuple[float, float, float, float]:
    """The box holding every q(z|x_b) to ``reach`` sd."""
    lo, hi = (mu - reach * sd).min(0).values, (mu + reach * sd).max(0).values
    return (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))


@torch.no_grad()
def shared_grid_estimates(model, x, n: int = 128, box=None, chunk: int = 4096
                          ) -> SharedGridEstimate:
    """log p(x_b) and the precise ELBO_b for a batch x (B, D) on one n x n grid over the
    union of the q's 6-sd boxes (or ``box``): the decoder runs once per cell for the
    whole batch. Points the grid cannot resolve are marked in ``resolved``."""
    t0 = time.perf_counter()
    model = as_module(model)
    x = as_input(x)
    mu, logvar = model.encode(x)
    sd = torch.exp(0.5 * logvar)
    box = box or shared_box(mu, sd)
    xs, ys, z, log_area = cell_grid(box, n)
    ring = torch.ones(n, n, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    ring = ring.flatten()
    b = x.shape[0]
    lse = torch.full((b,), -math.inf)
    lse_ring = torch.full((b,), -math.inf)
    top = torch.full((b,), -math.inf)
    q_max = torch.full((b,), -math.inf)
    q_sum = torch.zeros(b)
    q_dot = torch.zeros(b)
    for s in range(0, z.shape[0], chunk):
        zc = z[s:s + chunk]
        lj = grid_log_joint(model, x, zc, chunk)  # (B, g)
        lse = torch.logaddexp(lse, torch.logsumexp(lj, 1))
        if ring[s:s + chunk].any():
            lse_ring = torch.logaddexp(lse_ring, torch.logsumexp(lj[:, ring[s:s + chunk]], 1))
        top = torch.maximum(top, lj.max(1).values)
        # q_b(z_g) up to a constant, accumulated as a running softmax-weighted mean.
        lq = -0.5 * (((zc[None] - mu[:, None]) / sd[:, None]) ** 2).sum(-1)
        new_max = torch.maximum(q_max, lq.max(1).values)
        rescale = torch.exp(q_max - new_max)
        w = torch.exp(lq - new_max[:, None])
        q_sum = q_sum * rescale + w.sum(1)
        q_dot = q_dot * rescale + (w * lj).sum(1)
        q_max = new_max
    log_px = lse + log_area
    entropy = torch.log(sd).sum(1) + (1 + math.log(2 * math.pi))
    elbo = q_dot / q_sum + entropy
    h = min(float(xs[1] - xs[0]), float(ys[1] - ys[0]))
    resolved = ((torch.exp(top - lse) <= SHARED_PEAK_CELL_LIMIT)
                & (torch.exp(lse_ring - lse) <= SHARED_EDGE_LIMIT)
                & (sd.min(1).values >= h))
    return SharedGridEstimate(log_px=log_px.double().numpy(), elbo=elbo.double().numpy(),
                              resolved=resolved.numpy(), box=box, n=n,
                              seconds=time.perf_counter() - t0)


# Local grids for the points a shared grid cannot resolve: q's own +-12 sd box in 16 x 16
# cells (h = 1.5 q-sd). Amortised q are often narrower than the posterior: +-8 sd resolved
# 22 % of a 784-pixel model's leftovers, +-12 sd 74 % (the rest keep the shared value).
LOCAL_REACH = 12.0


@torch.no_grad()
def local_grid_estimates(model, x, n: int = 16, reach: float = LOCAL_REACH, chunk: int = 64
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log p(x_b), the encoder's ELBO_b and a resolved flag for a batch x (B, D), each on
    its own n x n grid over q_b's +-reach sd box (axis-aligned in q's coordinates, so the
    ELBO's quadrature of q uses the same cells). Costs n^2 decoder passes per point: for
    the few points a shared grid leaves unresolved."""
    model = as_module(model)
    x = as_input(x)
    mu, logvar = model.encode(x)
    sd = torch.exp(0.5 * logvar)
    h = 2 * reach / n
    axis = torch.arange(n, dtype=torch.float32) * h + (h / 2 - reach)
    u1, u2 = torch.meshgrid(axis, axis, indexing="xy")
    u = torch.stack((u1.flatten(), u2.flatten()), dim=-1)  # (G, 2), row-major (z2, z1)
    log_q = -0.5 * u.pow(2).sum(-1)
    w_q = torch.softmax(log_q, 0)
    ring = torch.ones(n, n, dtype=torch.bool)
    ring[1:-1, 1:-1] = False
    rows = []
    for s in range(0, x.shape[0], chunk):
        z = mu[s:s + chunk, None] + sd[s:s + chunk, None] * u  # (b, G, 2)
        params = model.decode(z.reshape(-1, 2)).unflatten(0, z.shape[:2])
        rows.append(model.log_likelihood(x[s:s + chunk, None], params)
                    + log_normal(z, torch.zeros_like(z), torch.zeros_like(z)))
    lj = torch.cat(rows).double()  # (B, G)
    log_area = 2 * math.log(h) + torch.log(sd.double()).sum(1)
    lse = torch.logsumexp(lj, 1)
    log_mass = lj - lse[:, None]
    edge = log_mass[:, ring.flatten()].exp().sum(1)
    peak = log_mass.max(1).values.exp()
    entropy = torch.log(sd.double()).sum(1) + (1 + math.log(2 * math.pi))
    elbo = (lj * w_q.double()).sum(1) + entropy
    resolved = (peak <= SHARED_PEAK_CELL_LIMIT) & (edge <= SHARED_EDGE_LIMIT)
    return (lse + log_area).numpy(), elbo.numpy(), resolved.numpy()


def fill_unresolved(model, x, est: SharedGridEstimate, n: int = 16) -> SharedGridEstimate:
    """Redo the points ``est`` left unresolved on local grids (``local_grid_estimates``),
    in place; points a local grid resolves are marked resolved."""
    t0 = time.perf_counter()
    todo = np.flatnonzero(~est.resolved)
    if len(todo):
        log_px, elbo, ok = local_grid_estimates(model, as_input(x)[torch.from_numpy(todo)], n)
        est.log_px[todo[ok]], est.elbo[todo[ok]] = log_px[ok], elbo[ok]
        est.resolved[todo[ok]] = True
    est.seconds += time.perf_counter() - t0
    return est


def dataset_gaps(model, x, n: int = 128, refine: bool = True) -> SharedGridEstimate:
    """Per-datapoint log p(x), ELBO_i and inference gap for many points (colouring the
    latent plane): one shared grid, then each point it could not resolve redone on a
    local grid around its q and, if still unresolved, on its own adaptive grid, when
    ``refine``."""
    est = shared_grid_estimates(model, x, n)
    if refine:
        fill_unresolved(model, x, est)
        x = as_input(x)
        for i in np.flatnonzero(~est.resolved):
            est.log_px[i] = posterior_grid(model, x[i]).log_px
            est.elbo[i] = encoder_fit(model, x[i]).elbo
            est.resolved[i] = True
    return est


def heldout_log_px(model, x, n: int = 96, local: bool = True) -> SharedGridEstimate:
    """Mean exact log p(x) over a fixed held-out subset (e.g. 256 points), for a live
    curve beside the held-out ELBO. One shared n x n grid (about n^2 decoder passes plus
    B x n^2 x D multiply-adds), then, when ``local``, the points it cannot resolve (a
    posterior narrower than its cells) on 16 x 16 local grids around their q (256 decoder
    passes each). ``resolved.mean()`` says how much of the subset is resolved. Run it on
    a ``DutyCycle``."""
    est = shared_grid_estimates(model, x, n)
    return fill_unresolved(model, x, est) if local else est


class DutyCycle:
    """When to run an occasional evaluation so it costs at most ``fraction`` of the
    training time: after each run taking c seconds, wait c / fraction seconds of training
    (and at least ``min_interval``; ``part=True``: a part of one run, as one slice of a row
    measured between steps, waits c / fraction only). The first run is due at ``first_at``."""

    def __init__(self, fraction: float = 0.1, min_interval: float = 2.0,
                 first_at: float = 0.0):
        self.fraction = fraction
        self.min_interval = min_interval
        self.next_at = first_at

    def due(self, train_seconds: float) -> bool:
        return train_seconds >= self.next_at

    def ran(self, train_seconds: float, cost_seconds: float, part: bool = False) -> None:
        wait = cost_seconds / self.fraction
        self.next_at = train_seconds + (wait if part else max(self.min_interval, wait))
