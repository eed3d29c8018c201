"""Who produces a training point's local variational parameters lambda_i = (mu_i, log sigma_i).

- ``amortized``: lambda_i = f_phi(x_i); phi and theta are trained (Kingma & Welling).
- ``free`` (free-form VI; with a learned decoder, variational EM): a table holding one
  lambda_i per training point; when its point is in the minibatch, a row gets an E-step of
  ``free_steps`` (default 1) Newton-like steps on its ELBO (``ascend``, theta frozen;
  vae_sparse optimises its local parameters for ``--n_steps`` Adam steps before each
  global update), then theta trains on it. It trains on
  each point's one fixed x (trainer.evidence): a row is the q of one x_i, and a fresh
  binarisation every step would leave it chasing a new x each visit. No encoder is used
  for training points. A point outside the table (held out, or a new x)
  has no lambda: its q is fitted from the prior (``fit_from_prior``), which is the cost
  amortization avoids.
- ``semi`` (semi-amortized, SA-VAE, Kim et al. 2018): f_phi(x_i) refined by K steps on the
  point's ELBO with theta frozen (``refine``), the best iterate kept; theta trains on the
  refined q, phi on its own ELBO (the stop-gradient "SAVI" variant: no gradient flows
  through the refinement).

The refinement objective is deterministic: E_q[log p(x|z)] by a fixed cubature rule in q's
standardised coordinates (``cubature_rule``), the KL analytic, so keeping the best iterate by
it means refinement never lowers it. A Monte-Carlo objective with a few fixed draws (common
random numbers) was tried first and rejected: it overfits its draws, and 10 steps of it
*lowered* the precise ELBO of a digits model by 0.03 to 0.08 nats on average (4 draws),
where Gauss-Hermite 3 x 3 raised it by 0.10 to 0.15 (worst point -0.01).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .elbo import ElboTerms, gaussian_kl
from .model import ENCODER_LOGVAR_MAX, ENCODER_LOGVAR_MIN, soft_clamp

# Gauss-Hermite nodes per axis of the refinement's rule, for latents up to HERMITE_MAX_DIM
# dimensions (3^L nodes); beyond, the 2L-point spherical rule (exact for cubics).
HERMITE_NODES = 3
HERMITE_MAX_DIM = 2
# Fitting q for a point with no lambda (free mode's held-out points): Adam from the prior,
# in the same objective as the refinement, more steps and a decaying step size.
FIT_STEPS = 100
FIT_LR = 0.1
# The live held-out curve of the free and semi modes fits or refines q for every point it
# scores: it uses at most this many fixed held-out points (a fit from the prior costs ~40 to
# 140 ms per 784-pixel point on one loaded core).
LIVE_HELDOUT_POINTS = 128


@dataclass
class Refinement:
    """Refined q for a batch: mean and log-variance (B, L), and the refinement objective
    (nats, higher is better) at the start and at the kept iterate, elbo >= elbo_start."""

    mu: torch.Tensor
    logvar: torch.Tensor
    elbo_start: torch.Tensor
    elbo: torch.Tensor
    seconds: float = 0.0


def cubature_rule(latent_dim: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes u (G, L) and weights (G,) summing to 1 for expectations under N(0, I): the
    tensor-product Gauss-Hermite rule (exact for degree < 2 x HERMITE_NODES per axis) up to
    HERMITE_MAX_DIM dimensions, else u = +-sqrt(L) e_j (exact for polynomials of degree 3)."""
    if latent_dim <= HERMITE_MAX_DIM:
        t, w = np.polynomial.hermite_e.hermegauss(HERMITE_NODES)
        grids = np.meshgrid(*[t] * latent_dim, indexing="ij")
        u = np.stack([g.ravel() for g in grids], axis=-1)
        weights = np.prod(np.meshgrid(*[w / w.sum()] * latent_dim, indexing="ij"), axis=0)
        weights = weights.ravel()
    else:
        eye = np.eye(latent_dim) * math.sqrt(latent_dim)
        u = np.concatenate((eye, -eye))
        weights = np.full(2 * latent_dim, 1 / (2 * latent_dim))
    return (torch.as_tensor(u, dtype=torch.float32, device=device),
            torch.as_tensor(weights, dtype=torch.float32, device=device))


def rule_elbo(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              rule: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """ELBO of q = N(mu, diag exp(logvar)) for x (B, D), (B,) nats: E_q[log p(x|z)] by the
    cubature ``rule`` mapped through q, the KL analytic."""
    u, w = rule
    z = mu + torch.exp(0.5 * logvar) * u[:, None, :]  # (G, B, L)
    params = model.decode(z.reshape(-1, z.shape[-1])).unflatten(0, z.shape[:2])
    return (model.log_likelihood(x, params) * w[:, None]).sum(0) - gaussian_kl(mu, logvar)


def refine(model, x: torch.Tensor, mu0: torch.Tensor, logvar0: torch.Tensor, steps: int,
           lr: float, decay: bool = False) -> Refinement:
    """K = ``steps`` Adam steps on each point's ELBO over (mu, log sigma), theta frozen,
    from q0 = N(mu0, diag exp(logvar0)); the best iterate (by the same deterministic
    cubature objective, ``rule_elbo``) is returned, so the result's ELBO is never below the
    start's.

    Steps are measured in units of q0's sigma (mu = mu0 + sigma0 a, log sigma = log sigma0
    + b), so one lr suits a wide or a narrow q. ``decay``: cosine-decay the lr to lr / 50.
    No gradient reaches the model's weights or flows back into mu0 and logvar0.
    """
    t0 = time.perf_counter()
    mu0, logvar0 = mu0.detach().float(), logvar0.detach().float()
    sd0 = torch.exp(0.5 * logvar0)
    rule = cubature_rule(mu0.shape[-1], mu0.device)
    a = torch.zeros_like(mu0, requires_grad=True)
    b = torch.zeros_like(mu0, requires_grad=True)
    opt = torch.optim.Adam([a, b], lr=lr)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 50)
             if decay else None)
    best_f = torch.full(mu0.shape[:1], -math.inf, device=mu0.device)
    best_a, best_b = a.detach().clone(), b.detach().clone()
    start = None
    # fp32 even inside the engine's bf16 autocast: the best iterate is chosen by comparing
    # ELBOs, and bf16 rounding of a ~100-nat sum is larger than the steps' gains.
    with torch.enable_grad(), torch.autocast(mu0.device.type, enabled=False):
        for k in range(steps + 1):
            mu = mu0 + sd0 * a
            logvar = soft_clamp(logvar0 + 2 * b, ENCODER_LOGVAR_MIN, ENCODER_LOGVAR_MAX)
            f = rule_elbo(model, x, mu, logvar, rule)
            with torch.no_grad():
                if start is None:
                    start = f.detach().clone()
                better = f > best_f  # a NaN objective is never better
                best_f = torch.where(better, f, best_f)
                best_a[better], best_b[better] = a[better], b[better]
            if k == steps:
                break
            # Gradients for lambda only: autograd skips the decoder's weight gradients.
            ga, gb = torch.autograd.grad(-f.sum(), [a, b])
            a.grad, b.grad = torch.nan_to_num(ga), torch.nan_to_num(gb)
            opt.step()
            if sched is not None:
                sched.step()
    with torch.no_grad():
        mu = mu0 + sd0 * best_a
        logvar = soft_clamp(logvar0 + 2 * best_b, ENCODER_LOGVAR_MIN, ENCODER_LOGVAR_MAX)
    return Refinement(mu, logvar, start, best_f, time.perf_counter() - t0)


# The free table's E-step (``ascend``): per-coordinate bound on one step, in units of the
# row's sigma for mu and of log sigma for sigma (a trust region far from q*).
ASCENT_MAX_MOVE = 1.0
# Each row's step scale stays within these (1: the Newton step near q*).
ASCENT_MIN_SCALE, ASCENT_MAX_SCALE = 1e-3, 1.0


def ascend(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, steps: int,
           scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                         torch.Tensor, torch.Tensor]:
    """``steps`` scaled-gradient steps on each row's ELBO (the cubature objective of
    ``refine``), theta frozen, each one kept only if it raises that row's ELBO.

    In q's whitened coordinates (mu = mu0 + sigma0 a, log sigma = log sigma0 + b) the
    ELBO's curvature near q* is about -1 in a and -2 in b (a quadratic log p(x|z): exactly),
    so the step (a, b) = scale x (g_a, g_b / 2) with scale = 1 is a Newton step there, the
    natural gradient for the mean. Each row's ``scale`` (B,) doubles after a kept step (up
    to 1) and halves after a refused one (backtracking); moves are bounded by
    ASCENT_MAX_MOVE per coordinate. Returns mu, logvar, the objective at the start and at
    the end (end >= start), and the rows' new scales."""
    rule = cubature_rule(mu.shape[-1], mu.device)
    mu, logvar = mu.detach().float(), logvar.detach().float()
    scale = scale.detach().float().clone()
    start = None
    with torch.enable_grad(), torch.autocast(mu.device.type, enabled=False):
        for _ in range(steps):
            sd = torch.exp(0.5 * logvar)
            a = torch.zeros_like(mu, requires_grad=True)
            b = torch.zeros_like(mu, requires_grad=True)
            f = rule_elbo(model, x, mu + sd * a, logvar + 2 * b, rule)
            ga, gb = (torch.nan_to_num(g) for g in torch.autograd.grad(f.sum(), [a, b]))
            with torch.no_grad():
                f = f.detach()
                if start is None:
                    start = f.clone()
                s = scale[:, None]
                da = (s * ga).clamp(-ASCENT_MAX_MOVE, ASCENT_MAX_MOVE)
                db = (s * gb / 2).clamp(-ASCENT_MAX_MOVE, ASCENT_MAX_MOVE)
                mu_new = mu + sd * da
                logvar_new = soft_clamp(logvar + 2 * db, ENCODER_LOGVAR_MIN, ENCODER_LOGVAR_MAX)
                f_new = rule_elbo(model, x, mu_new, logvar_new, rule)
                ok = f_new > f  # a NaN objective is never better
                mu = torch.where(ok[:, None], mu_new, mu)
                logvar = torch.where(ok[:, None], logvar_new, logvar)
                scale = torch.where(ok, scale * 2, scale / 2)
                scale = scale.clamp(ASCENT_MIN_SCALE, ASCENT_MAX_SCALE)
                end = torch.where(ok, f_new, f)
    return mu, logvar, start, end, scale


def fit_from_prior(model, x: torch.Tensor, steps: int = FIT_STEPS, lr: float = FIT_LR
                   ) -> Refinement:
    """q for points that have no lambda_i (free mode's held-out points, a new x): ``refine``
    from the prior N(0, I) with a decaying step size."""
    zeros = torch.zeros((x.shape[0], model.latent_dim), device=x.device)
    return refine(model, x, zeros, zeros, steps, lr, decay=True)


def reparameterised_terms(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                          generator: torch.Generator | None) -> ElboTerms:
    """One-sample ELBO terms of q = N(mu, diag exp(logvar)) for x, (B,) each."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu + torch.exp(0.5 * logvar) * eps
    return ElboTerms(recon=model.log_likelihood(x, model.decode(z)), kl=gaussian_kl(mu, logvar))


class FreeInference:
    """The free-form table: lambda_i = (mu_i, log sigma_i^2) of every training point,
    (n_train, 2 x latent_dim), rows in the order of the sorted training indices, starting
    at the prior (mu = 0, sigma = 1). Variational EM: each time a point is in the minibatch,
    its row gets an E-step of ``steps`` scaled-gradient steps on its ELBO (``ascend``: theta
    frozen, Newton-like in q's whitened coordinates, each step kept only if it raises the
    row's ELBO, so a visit never lowers it), and theta then trains on the updated rows' q.
    Each row keeps its step scale (``step_size``, starting at ``lr``; 1 is the Newton step),
    doubled after a kept step and halved after a refused one.

    Tried first and measured on digits (train points' mean amortization gap, nats):
    - one one-sample SparseAdam step per visit (lr 1e-2): a row moves only once an epoch,
      so after 140 epochs (20 s) the rows' sigma were still 1.4x too wide and their mu
      0.4 sd off: 0.40, worse than the encoder's; larger step sizes left one-sample noise
      instead (lr 0.2: mu 0.8 sd off, 1.3);
    - K Adam steps of ``refine`` (restarted each visit, so sign-like steps of a fixed or an
      adapted size): 0.11 (K = 3, 13 epochs); 0.09 against this E-step's 0.03 at equal
      time (20 s, K = 1 each, same ELBO);
    - two steps of this E-step a visit against one: 0.09 against 0.03 at equal time (the
      theta steps halve). ``visits`` counts each row's E-steps.
    """

    name = "free"

    def __init__(self, train_idx: torch.Tensor, latent_dim: int, steps: int, lr: float,
                 device: torch.device):
        self.index = train_idx.to(device)  # sorted dataset indices of the rows
        self.latent_dim = latent_dim
        self.steps, self.lr = steps, lr
        self.table = torch.zeros((len(train_idx), 2 * latent_dim), device=device)
        self.visits = torch.zeros(len(train_idx), dtype=torch.int64, device=device)
        self.step_size = torch.full((len(train_idx),), float(lr), device=device)

    @property
    def n_parameters(self) -> int:
        return self.table.numel()

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows of dataset indices ``idx``; -1 where a point has no row (not a training
        point)."""
        idx = idx.to(self.index.device)
        pos = torch.searchsorted(self.index, idx).clamp(max=len(self.index) - 1)
        return torch.where(self.index[pos] == idx, pos, torch.full_like(pos, -1))

    def lookup(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of training points ``idx`` (copies of their rows)."""
        rows = self.rows(idx)
        if bool((rows < 0).any()):
            raise ValueError("the free-form table holds training points only")
        mu, logvar = self.table[rows].chunk(2, dim=-1)
        return mu, logvar

    @torch.no_grad()
    def e_step(self, model, x: torch.Tensor, idx: torch.Tensor) -> Refinement:
        """Refine the rows of training points ``idx`` (distinct) on their x, theta frozen,
        and store the result."""
        rows = self.rows(idx)
        if bool((rows < 0).any()):
            raise ValueError("the free-form table holds training points only")
        mu0, logvar0 = self.table[rows].chunk(2, dim=-1)
        size = self.step_size[rows]
        t0 = time.perf_counter()
        mu, logvar, f0, f1, size = ascend(model, x, mu0, logvar0, self.steps, size)
        self.table[rows] = torch.cat((mu, logvar), dim=-1)
        self.visits[rows] += 1
        self.step_size[rows] = size
        return Refinement(mu, logvar, f0, f1, time.perf_counter() - t0)

    def terms(self, model, x: torch.Tensor, idx: torch.Tensor, generator, beta: float
              ) -> tuple[ElboTerms, torch.Tensor | None]:
        """The E-step on this minibatch's rows, then their q's terms (theta's objective; no
        gradient reaches the table)."""
        r = self.e_step(model, x, idx)
        return reparameterised_terms(model, x, r.mu, r.logvar, generator), None

    def zero_grad(self) -> None:
        pass

    def step(self) -> None:
        pass

    # ---------------------------------------------------------- state (checkpoints)
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The table, each row's E-step count and step size, as plain CPU tensors."""
        return {"table": self.table.detach().cpu().contiguous(),
                "visits": self.visits.cpu().contiguous(),
                "step_size": self.step_size.cpu().contiguous()}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """A saved table; without ``visits`` and ``step_size`` (a checkpoint of the earlier
        one-step SparseAdam table, whose moments have no use here) the counts start at 0 and
        the step sizes at ``lr``."""
        self.table.copy_(tensors["table"])
        visits = tensors.get("visits")
        self.visits.copy_(visits if visits is not None else torch.zeros_like(self.visits))
        size = tensors.get("step_size")
        self.step_size.copy_(size if size is not None else torch.full_like(self.step_size,
                                                                             self.lr))


class SemiInference:
    """Semi-amortized training: theta on the refined q, phi on its own ELBO."""

    name = "semi"

    def __init__(self, steps: int, lr: float):
        self.steps, self.lr = steps, lr

    def refined(self, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Refinement]:
        """The encoder's (mu, logvar) and its refinement, for x (B, D)."""
        mu0, logvar0 = model.encode(x)
        return mu0, logvar0, refine(model, x, mu0, logvar0, self.steps, self.lr)

    def terms(self, model, x: torch.Tensor, idx: torch.Tensor, generator, beta: float
              ) -> tuple[ElboTerms, torch.Tensor]:
        """The refined q's terms (theta's objective) and phi's extra loss: a surrogate whose
        gradient is exactly that of -(recon - beta KL) of the encoder's own q with respect
        to phi, and zero with respect to theta (its value is 0)."""
        mu0, logvar0, r = self.refined(model, x)
        refined = reparameterised_terms(model, x, r.mu, r.logvar, generator)
        m = mu0.detach().requires_grad_(True)
        lv = logvar0.detach().requires_grad_(True)
        own = reparameterised_terms(model, x, m, lv, generator)
        gm, glv = torch.autograd.grad(-(own.recon - beta * own.kl).mean(), [m, lv])
        surrogate = (gm * mu0).sum() + (glv * logvar0).sum()
        return refined, surrogate - surrogate.detach()

    def zero_grad(self) -> None:
        pass

    def step(self) -> None:
        pass


def make_inference(config, train_idx: torch.Tensor, device: torch.device):
    """None for amortized inference, else the mode's state."""
    if config.inference == "free":
        return FreeInference(train_idx, config.latent_dim, config.free_steps, config.free_lr,
                             device)
    if config.inference == "semi":
        return SemiInference(config.refine_steps, config.refine_lr)
    return None


HELDOUT_Q = {
    "amortized": "f_phi(x): one encoder pass",
    "semi": "f_phi(x) refined by {steps} Adam steps on its ELBO (theta frozen)",
    "free": f"fitted from the prior: {FIT_STEPS} Adam steps on its ELBO (theta frozen); "
            "a free-form model has no lambda for a point outside its table",
}


def heldout_q_description(config) -> str:
    """How the q of a point outside the training set is obtained, in words."""
    return HELDOUT_Q[config.inference].format(steps=config.refine_steps)

