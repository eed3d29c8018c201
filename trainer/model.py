"""The VAE: an MLP encoder q_phi(z|x) and an MLP decoder p_theta(x|z).

Likelihood heads follow Kingma & Welling (2013), appendix C: a Bernoulli decoder
(logits) for binary data, a Gaussian decoder with mean and log-variance heads for
real-valued data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import TrainConfig

LOG_2PI = math.log(2 * math.pi)
# The encoder's log-variance is softly held inside [ENCODER_LOGVAR_MIN, ENCODER_LOGVAR_MAX]
# (as the decoder's is held above min_logvar), so training cannot blow sigma up to values no
# view can draw (a sigma of ~1e16 once crashed the GUI). Upper: sigma <= e^10 ~ 2.2e4, ten
# thousand times the prior's, which the KL term never favours. Lower: sigma >= e^-15 ~
# 3e-7, the float32 resolution of a mean near 1, below which a width means nothing. Inside
# [-20, 10] the bound moves a log-variance by less than 5e-5, and inside (-10, 0), where
# trained posteriors lie (sigma from 0.007 to 1), not at all.
ENCODER_LOGVAR_MIN = -30.0
ENCODER_LOGVAR_MAX = 20.0


def soft_clamp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Smooth, monotone map of x into (lo, hi); the identity to within e^-(distance to the
    nearer bound), with a gradient that never vanishes abruptly."""
    soft = hi - F.softplus(hi - (lo + F.softplus(x - lo)))
    # Where both softplus terms are linear (torch's threshold is 20) the map is the identity
    # but for float rounding (~1e-6 at |lo| = 30): return x itself there.
    return torch.where((x > lo + 20) & (x < hi - 20), x, soft)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class VAE(nn.Module):
    def __init__(self, n_pixels: int, latent_dim: int = 2, hidden: tuple[int, ...] = (512, 512),
                 likelihood: str = "bernoulli", min_logvar: float = -6.0):
        super().__init__()
        self.n_pixels = n_pixels
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.min_logvar = min_logvar
        heads = 2 if likelihood == "gaussian" else 1
        self.encoder = mlp([n_pixels, *hidden, 2 * latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), heads * n_pixels])

    @classmethod
    def from_config(cls, n_pixels: int, config: TrainConfig) -> VAE:
        return cls(n_pixels, config.latent_dim, config.hidden, config.likelihood,
                   config.min_logvar)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, D) in [0, 1] -> (mu, logvar), each (B, latent_dim)."""
        # .float(): under bf16 autocast only the Linear layers run in bf16; the latent
        # and everything downstream of it stay fp32 (a no-op in plain fp32).
        mu, logvar = self.encoder(x).float().chunk(2, dim=-1)
        return mu, soft_clamp(logvar, ENCODER_LOGVAR_MIN, ENCODER_LOGVAR_MAX)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) -> likelihood parameters.

        Bernoulli: logits (B, D). Gaussian: (B, 2, D), mean then log-variance.
        """
        out = self.decoder(z).float()
        if self.likelihood == "gaussian":
            mean, logvar = out.unflatten(-1, (2, self.n_pixels)).unbind(-2)
            logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
            return torch.stack((mean, logvar), dim=-2)
        return out

    def log_likelihood(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p_theta(x|z) in nats, summed over pixels: x (..., D), params from decode."""
        if self.likelihood == "gaussian":
            mean, logvar = params.unbind(-2)
            return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar)).sum(-1)
        return (x * params - F.softplus(params)).sum(-1)

    def log_likelihood_matrix(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p(x_b|z_g) for every pair: x (B, D), params of G latents -> (B, G).

        Written as matrix products so a grid of thousands of z never materialises
        a (B, G, D) tensor.
        """
        if self.likelihood == "gaussian":
            mean, logvar = params.unbind(-2)
            prec = torch.exp(-logvar)
            const = (LOG_2PI + logvar + mean.pow(2) * prec).sum(-1)  # (G,)
            quad = x.pow(2) @ prec.T - 2 * x @ (mean * prec).T  # (B, G)
            return -0.5 * (quad + const)
        return x @ params.T - F.softplus(params).sum(-1)

    def mean_image(self, params: torch.Tensor) -> torch.Tensor:
        """The decoder's mean E[x|z], (B, D) in [0, 1] for Bernoulli."""
        if self.likelihood == "gaussian":
            return params[..., 0, :]
        return torch.sigmoid(params)

    def sample_image(self, params: torch.Tensor, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
        """One draw x ~ p_theta(x|z)."""
        if self.likelihood == "gaussian":
            mean, logvar = params.unbind(-2)
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
            return mean + torch.exp(0.5 * logvar) * noise
        return torch.bernoulli(torch.sigmoid(params), generator=generator)
