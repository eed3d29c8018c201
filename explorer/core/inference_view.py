"""What a run's inference mode means on screen (no Qt): the sentence on its plane, which
latents its dots are (and where semi-amortized refinement started them), and how it obtains
q for a new x, timed against one encoder pass.

Modes (trainer.config.INFERENCE_MODES): amortized, lambda_i = f_phi(x_i); free, a table of
lambda_i for the training points; semi, f_phi(x_i) refined by K steps on the point's ELBO.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from trainer.inference_modes import fit_from_prior, heldout_q_description, refine


def plane_statement(config) -> str:
    """The plane's one line on what its dots are."""
    mode = config.inference
    if mode == "free":
        return "every dot is a free parameter \u03bb_i"
    if mode == "semi":
        return f"every dot is f_\u03c6(x_i) refined by {config.refine_steps} steps"
    return "every dot is f_\u03c6(x_i)"


ENCODER_Q = "\u03bb_i = (\u03bc_i, \u03c3_i) = f_\u03c6(x_i), the encoder's output"


def inspected_q(config, mu, sigma, new_image: bool = False
                ) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """Which q the Inspector scores for a point, and its caption: (None, ...) for the
    encoder's own q, else ((mean, sigma), ...), the q the run's inference gives the point
    (``mu``/``sigma``: its dot, or a new image's q). A free-form run's held-out point has no
    lambda (NaN): its q is fitted from the prior, in the inspector's background job."""
    mode = config.inference
    if mode == "amortized" or mu is None or config.latent_dim != 2:
        caption = ENCODER_Q if mode == "amortized" else (
            ENCODER_Q + " (not this run's q: above 2-D the Inspector scores the encoder's)")
        return None, caption
    mean, sd = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if mode == "semi":
        what = "a new image's" if new_image else "\u03bb_i ="
        return (mean, sd), (f"{what} f_\u03c6(x) refined by {config.refine_steps} steps on "
                            "its ELBO (\u03b8 frozen), as on the plane")
    if not np.isfinite(mean).all():
        return (mean, sd), ("q fitted from the prior (\u03b8 frozen): a free-form run has no "
                            "\u03bb for a held-out point")
    if new_image:
        return (mean, sd), ("q fitted from the prior (\u03b8 frozen): a free-form run has "
                            "no \u03bb for a new image")
    return (mean, sd), ("\u03bb_i = (\u03bc_i, \u03c3_i), this point's row of the free "
                        "table (free-form: no encoder)")


def scored_q(model, x, q):
    """``q`` (mean, sigma) as the Inspector and the comparison score it: a NaN q (a free-form
    run's held-out point has no lambda) is fitted from the prior for ``x`` (D,) first."""
    mean, sigma = q
    if np.isfinite(mean).all():
        return mean, sigma
    r = fit_from_prior(model.model, torch.as_tensor(np.asarray(x, np.float32)).reshape(1, -1))
    return r.mu[0].numpy(), torch.exp(0.5 * r.logvar[0]).numpy()


def plane_latents(snapshot) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(mu, sigma, starts) to draw: in semi mode the refined q, with f_phi(x_i) as the
    start of each point's line; otherwise the snapshot's q and no lines."""
    if snapshot.config.inference == "semi" and snapshot.refined_mu is not None:
        return snapshot.refined_mu, snapshot.refined_sigma, snapshot.mu
    return snapshot.mu, snapshot.sigma, None


@dataclass(frozen=True)
class NewPointQ:
    """q = N(mu, diag sigma^2) of new datapoints, how it was obtained and what it cost."""

    mu: np.ndarray  # (M, latent_dim)
    sigma: np.ndarray
    mode: str
    how: str  # trainer.inference_modes.heldout_q_description
    seconds: float  # obtaining q for all M points
    encoder_seconds: float  # one encoder pass over the same points, for comparison

    def sentence(self) -> str:
        n = len(self.mu)
        points = f"{n} image{'s' if n != 1 else ''}"
        enc = f"{1000 * self.encoder_seconds:.1f} ms"
        if self.mode == "amortized":
            return f"q of {points}: one encoder pass f_\u03c6(x), {enc}."
        spent = f"{self.seconds:.2f} s" if self.seconds >= 0.1 else \
            f"{1000 * self.seconds:.1f} ms"
        if self.mode == "free":
            return (f"Free-form: a new x has no \u03bb in the table, so its q is an "
                    f"optimisation ({self.how}): {spent} for {points}, against one encoder "
                    f"pass ({enc}) in amortized mode.")
        return f"q of {points}: {self.how}: {spent} (the encoder pass alone: {enc})."


def q_for_new_points(vae, x: np.ndarray, config) -> NewPointQ:
    """The q the run's inference gives new points x (M, D) of a trainer.VAE (theta frozen):
    the encoder (amortized), refined (semi) or fitted from the prior (free)."""
    xt = torch.as_tensor(np.asarray(x, np.float32))
    t0 = time.perf_counter()
    with torch.no_grad():
        mu, logvar = vae.encode(xt)
    encoder_seconds = time.perf_counter() - t0
    mode = config.inference
    if mode == "semi":
        r = refine(vae, xt, mu, logvar, config.refine_steps, config.refine_lr)
        mu, logvar = r.mu, r.logvar
    elif mode == "free":
        r = fit_from_prior(vae, xt)
        mu, logvar = r.mu, r.logvar
    seconds = time.perf_counter() - t0
    return NewPointQ(mu.detach().numpy(), torch.exp(0.5 * logvar).detach().numpy(), mode,
                     heldout_q_description(config), seconds, encoder_seconds)
