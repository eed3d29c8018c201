"""One datapoint's numbers in every run, side by side: ELBO_i, KL and log p(x), in nats.

Each run scores its own x of the datapoint (trainer.evidence: a run's binarization makes its
x) with its own q (explorer.core.inference_view.inspected_q: the encoder's, a free table's
row, a refined q), so every number is the one that run's inspector shows. With a 2-D latent
space log p(x) is exact on the adaptive grid and the ELBO_i is by quadrature; otherwise
log p(x) is the IWAE estimate with its standard error and the ELBO_i a Monte Carlo mean.
Slow enough (~0.1-1 s a run) to be computed off the GUI thread; nothing here knows threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from explorer.core.inference_view import inspected_q, plane_latents, scored_q
from trainer import FrozenVAE
from trainer.elbo import iwae_log_px
from trainer.evidence import dataset_evidence
from trainer.local_opt import encoder_fit, gaussian_fit
from trainer.posterior import posterior_grid

IWAE_K = 1000
ELBO_SAMPLES = 64


@dataclass(frozen=True)
class RunNumbers:
    """One run's numbers for one datapoint, nats per datapoint (higher is better)."""

    run: str
    elbo: float  # ELBO_i = E_q[log p(x|z)] - KL of the run's q (beta = 1)
    kl: float  # KL(q_phi(z|x) || p(z)) >= 0
    log_px: float  # log p(x): exact on a grid (2-D), else the IWAE estimate
    log_px_se: float | None  # the IWAE estimate's standard error; None when exact
    method: str  # "grid" or "IWAE k=1000"

    @property
    def inference_gap(self) -> float:
        """log p(x) - ELBO_i = KL(q || p(z|x)) >= 0 (up to the estimate's error)."""
        return self.log_px - self.elbo


def point_numbers(run: str, model: FrozenVAE, x, seed: int = 0, q=None) -> RunNumbers:
    """``x``: the datapoint as this model sees it, (D,) in [0, 1]; ``q``: (mean, sigma) of
    the run's q for it (2-D), None for the encoder's, NaN for one to fit from the prior."""
    x = torch.as_tensor(x, dtype=torch.float32).reshape(-1)
    if model.latent_dim == 2:
        if q is None:
            fit = encoder_fit(model.model, x)
        else:
            mean, sigma = scored_q(model, x, q)
            fit = gaussian_fit(model.model, x, mean, sigma=sigma)
        grid = posterior_grid(model.model, x)
        return RunNumbers(run, fit.elbo, fit.kl, float(grid.log_px), None, "grid")
    terms = model.elbo(x[None].numpy(), samples=ELBO_SAMPLES, seed=seed)
    iwae = iwae_log_px(model.model, x[None], k=IWAE_K,
                       generator=torch.Generator().manual_seed(seed))
    se = float(iwae.se[0])
    return RunNumbers(run, float(terms["elbo"][0]), float(terms["kl"][0]),
                      float(iwae.log_px[0]), se if math.isfinite(se) else None,
                      f"IWAE k={IWAE_K}")


def run_q(snapshot, index: int):
    """The q a run's inference gives datapoint ``index`` of its snapshot, as the Inspector
    scores it: (mean, sigma), or None for the encoder's."""
    mu, sigma, _ = plane_latents(snapshot)
    if index >= len(mu):
        return None
    return inspected_q(snapshot.config, mu[index], sigma[index])[0]


def compare_point(models: Sequence[tuple], dataset, index: int) -> list[RunNumbers]:
    """Datapoint ``index`` of ``dataset`` scored by each (run name, frozen model[, q]), in
    order; q as for ``point_numbers`` (absent: the encoder's)."""
    return [point_numbers(name, model,
                          dataset_evidence(dataset, model.binarization, [index]).reshape(-1),
                          q=q[0] if q else None)
            for name, model, *q in models]
