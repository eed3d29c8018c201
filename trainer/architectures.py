"""Which network a config asks for: the one place that turns ``TrainConfig.arch``, the
image shape and the channels into a VAE."""

from __future__ import annotations

from .config import TrainConfig
from .model import VAE


def build_vae(config: TrainConfig, image_shape: tuple[int, int], channels: int = 1) -> VAE:
    """The untrained VAE for images of ``image_shape`` (H, W) with ``channels`` values per
    pixel; x is flattened to D = H * W * channels for either architecture."""
    h, w = (int(s) for s in image_shape)
    if config.arch == "conv":
        from .conv import ConvVAE

        return ConvVAE((h, w), channels, config.latent_dim, config.likelihood,
                       config.min_logvar)
    return VAE.from_config(h * w * channels, config)
