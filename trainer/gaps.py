"""The inference gap of a run's own q, split as Cremer, Li & Duvenaud (2018) do, measured the
same way whatever the inference mode (trainer.inference_modes), so modes compare:

    log p(x) - ELBO(q)  =  [log p(x) - ELBO(q*)]  +  [ELBO(q*) - ELBO(q)]
    inference gap          approximation gap          amortization gap

q is the mode's q for the point (the encoder's, the refined one, the free table's row or,
for a point outside the table, the one fitted from the prior); q* is the best diagonal
Gaussian for the point with theta frozen: L-BFGS on the Gauss-Hermite ELBO started from q
(trainer.local_opt), the better of q and the result kept; every ELBO is re-scored by the
fine quadrature; log p(x) is exact up to the adaptive grid (trainer.posterior). 2-D latents.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from .local_opt import fit_by_quadrature, gaussian_elbo
from .posterior import posterior_grid

# Points per batched L-BFGS fit (one shared line search for a few points), and so per slice
# of the live curve's row (GapCurveRow): 4 points take 0.1 to 0.5 s at MNIST's size.
CHUNK = 4


@torch.no_grad()
def best_elbos(model, x: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor
               ) -> tuple[np.ndarray, np.ndarray]:
    """Precise ELBO(q) and ELBO(q*), (B,) nats each, for q = N(mu, diag sd^2) of each row
    of x (CPU tensors, 2-D latent): q* fitted from q, the better of the two kept."""
    recon, kl = gaussian_elbo(model, x, mu, torch.diag_embed(sd))
    elbo_q = (recon - kl).double().numpy()
    elbo_star = np.empty_like(elbo_q)
    for s in range(0, len(x), CHUNK):
        part = slice(s, s + CHUNK)
        with torch.enable_grad():
            mean, fit_tril = fit_by_quadrature(model, x[part], mu[part], sd[part])
        r, k = gaussian_elbo(model, x[part], mean, fit_tril)
        elbo_star[part] = np.maximum((r - k).double().numpy(), elbo_q[part])
    return elbo_q, elbo_star


@torch.no_grad()
def point_gaps(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
               ) -> dict[str, np.ndarray]:
    """Per-point log p(x), ELBO(q), ELBO(q*) and the three gaps, (B,) nats each, for the
    q = N(mu, diag exp(logvar)) of each row of x (B, D). Model on the CPU, 2-D latent."""
    if model.latent_dim != 2:
        raise ValueError("the gaps need the exact log p(x) of a 2-D latent")
    x, mu, sd = x.cpu().float(), mu.cpu().float(), torch.exp(0.5 * logvar.cpu().float())
    log_px = np.array([posterior_grid(model, xi).log_px for xi in x])
    elbo_q, elbo_star = best_elbos(model, x, mu, sd)
    return {"log_px": log_px, "elbo_q": elbo_q, "elbo_star": elbo_star,
            "amortization_gap": elbo_star - elbo_q, "approximation_gap": log_px - elbo_star,
            "inference_gap": log_px - elbo_q}


def mean_gaps(session, x: torch.Tensor, index: torch.Tensor | None = None) -> dict:
    """The mean gaps of ``session``'s own q over datapoints x (their dataset indices
    ``index``, which free-form training points need), with how q was obtained and what it
    cost."""
    mu, logvar, how, seconds = session.fit_q(x, index)
    t0 = time.perf_counter()
    model = session.model.cpu().eval() if session.device.type != "cpu" else session.model.eval()
    try:
        gaps = point_gaps(model, x, mu, logvar)
    finally:
        session.model.to(session.device).train()
    return {"n_points": len(x),
            "mean_amortization_gap": float(gaps["amortization_gap"].mean()),
            "mean_approximation_gap": float(gaps["approximation_gap"].mean()),
            "mean_inference_gap": float(gaps["inference_gap"].mean()),
            "mean_log_px": float(gaps["log_px"].mean()),
            "mean_elbo_q": float(gaps["elbo_q"].mean()),
            "mean_elbo_star": float(gaps["elbo_star"].mean()),
            "q": how, "q_seconds": round(seconds, 4),
            "q_ms_per_point": round(1000 * seconds / max(1, len(x)), 4),
            "measure_seconds": round(time.perf_counter() - t0, 2)}


class GapCurveRow:
    """One row of the live amortization gap curve: the mean gap, as ``mean_gaps`` measures
    it (without log p(x)), of ``session``'s own q over fixed train and held-out points,
    measured CHUNK points per ``advance`` between training steps, so that training never
    stops for the whole measurement (1 to 4 s at MNIST's size). It scores a CPU copy of the
    model taken when the row began, and the q of that moment, so the row is one step's
    model however long it takes; ``counters`` are that step's."""

    def __init__(self, session, sets: dict[str, tuple[torch.Tensor, torch.Tensor | None]],
                 counters: dict[str, float]):
        self.counters = counters
        self.model = copy.deepcopy(session.model).cpu().eval()
        self.gaps: dict[str, list[np.ndarray]] = {name: [] for name in sets}
        self.todo: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]] = []
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            self.gaps = {name: [np.array([np.nan])] for name in sets}  # a diverged step
            return
        for name, (x, index) in sets.items():
            mu, logvar, _, _ = session.fit_q(x, index, model=self.model)
            x, mu, sd = x.cpu().float(), mu.cpu().float(), torch.exp(0.5 * logvar.cpu().float())
            self.todo += [(name, x[s:s + CHUNK], mu[s:s + CHUNK], sd[s:s + CHUNK])
                          for s in range(0, len(x), CHUNK)]

    @property
    def done(self) -> bool:
        return not self.todo

    def advance(self) -> None:
        """Measure the next CHUNK points."""
        name, x, mu, sd = self.todo.pop(0)
        elbo_q, elbo_star = best_elbos(self.model, x, mu, sd)
        self.gaps[name].append(elbo_star - elbo_q)

    def row(self) -> dict[str, float]:
        """{set name + "_amortization_gap": mean gap, nats (>= 0)}; NaN after divergence."""
        return {f"{name}_amortization_gap": float(np.concatenate(parts).mean())
                for name, parts in self.gaps.items()}
