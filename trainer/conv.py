"""The convolutional VAE, at the scale of the Keras VAE example (Chollet, "Variational
AutoEncoder", keras.io): two 3x3 convolutions of 32 and 64 channels with stride 2, then a
dense layer, and the mirror image with transposed convolutions (64 -> 32 -> the likelihood's
channels). The exact mirror, not the example's decoder, which adds a 64 -> 64 layer and a
full-resolution 32-channel one: those cost ~6x the mirror's multiply-adds at 32 x 32 (~30 M
per image against ~5 M), too slow to watch train on two CPU cores.

Inputs and outputs are flattened exactly as the MLP's are, D = H * W * C values in the
order images are stored (rows, columns, then channels), so every function written for
``trainer.model.VAE`` (the ELBO, IWAE, the exact grid posterior, the views) works unchanged;
only the networks between x and the latent differ. The feature-map sizes follow the image
shape: ceil(H / 2), then ceil(H / 4), and the decoder's output padding brings them back to
exactly H x W.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ConfigError
from .model import VAE

CHANNELS = (32, 64)  # the Keras example's
DENSE = 256  # wider than the example's 16: latents here go up to 64 dimensions
# Sides the conv model accepts. Designed for 28 to 64 (MNIST to small photos); down to 8
# still gives 2 x 2 feature maps. Above 64 the dense layer's weights grow with the area
# (64 x 64 already has 16 x 16 x 64 = 16,384 features) and training live on a CPU stalls.
MIN_SIDE = 8
MAX_SIDE = 64


def check_image_shape(image_shape: tuple[int, int]) -> None:
    h, w = image_shape
    if not (MIN_SIDE <= h <= MAX_SIDE and MIN_SIDE <= w <= MAX_SIDE):
        raise ConfigError(f"arch: the conv model takes images {MIN_SIDE} to {MAX_SIDE} pixels "
                          f"a side, these are {h}x{w}; use arch 'mlp' or resize the images")


def feature_sizes(side: int) -> tuple[int, int]:
    """The side after the first and second stride-2 convolution (3x3, padding 1)."""
    first = math.ceil(side / 2)
    return first, math.ceil(first / 2)


class ConvEncoder(nn.Module):
    """x (..., H*W*C) -> (..., 2 * latent_dim): mean and log-variance of q(z|x)."""

    def __init__(self, image_shape: tuple[int, int], channels: int, latent_dim: int,
                 dense: int = DENSE):
        super().__init__()
        self.image_shape, self.channels = tuple(image_shape), channels
        (_, h2), (_, w2) = feature_sizes(image_shape[0]), feature_sizes(image_shape[1])
        c1, c2 = CHANNELS
        self.net = nn.Sequential(
            nn.Conv2d(channels, c1, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(c2 * h2 * w2, dense), nn.ReLU(),
            nn.Linear(dense, 2 * latent_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        images = x.reshape(-1, *self.image_shape, self.channels).permute(0, 3, 1, 2)
        return self.net(images).unflatten(0, lead)


class ConvDecoder(nn.Module):
    """z (..., latent_dim) -> (..., heads * H*W*C): the likelihood's parameters, each head
    flattened in the stored image order."""

    def __init__(self, image_shape: tuple[int, int], channels: int, latent_dim: int,
                 heads: int, dense: int = DENSE):
        super().__init__()
        self.image_shape, self.channels, self.heads = tuple(image_shape), channels, heads
        (h, w) = image_shape
        (h1, h2), (w1, w2) = feature_sizes(h), feature_sizes(w)
        c1, c2 = CHANNELS
        # A 3x3 transposed convolution with stride 2 and padding 1 maps n to 2n - 1 + pad:
        # the output padding that undoes each ceil-halving exactly.
        self.net = nn.Sequential(
            nn.Linear(latent_dim, dense), nn.ReLU(),
            nn.Linear(dense, c2 * h2 * w2), nn.ReLU(), nn.Unflatten(1, (c2, h2, w2)),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1,
                               output_padding=(h1 - 2 * h2 + 1, w1 - 2 * w2 + 1)), nn.ReLU(),
            nn.ConvTranspose2d(c1, heads * channels, 3, stride=2, padding=1,
                               output_padding=(h - 2 * h1 + 1, w - 2 * w1 + 1)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        out = self.net(z.reshape(-1, z.shape[-1]))  # (B, heads * C, H, W)
        out = out.unflatten(1, (self.heads, self.channels)).permute(0, 1, 3, 4, 2)
        return out.reshape(*lead, -1)


class ConvVAE(VAE):
    """A VAE whose encoder and decoder are ConvEncoder and ConvDecoder; the likelihood
    heads, encode, decode and the log-likelihoods are VAE's."""

    def __init__(self, image_shape: tuple[int, int], channels: int = 1, latent_dim: int = 2,
                 likelihood: str = "bernoulli", min_logvar: float = -6.0):
        check_image_shape(image_shape)
        nn.Module.__init__(self)  # not VAE.__init__: it would build the MLP first
        self.image_shape, self.channels = tuple(image_shape), channels
        self.n_pixels = image_shape[0] * image_shape[1] * channels
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.min_logvar = min_logvar
        heads = 2 if likelihood == "gaussian" else 1
        self.encoder = ConvEncoder(image_shape, channels, latent_dim)
        self.decoder = ConvDecoder(image_shape, channels, latent_dim, heads)
