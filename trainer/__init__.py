"""The science of Latent Explorer: a 2-D VAE, its objectives and its training engine.

Pure torch + numpy; never imports Qt, so it runs in scripts, notebooks and on GPU servers.
The names below are the public API that the desktop app (``explorer``) uses.
"""

from .config import ConfigError, TrainConfig
from .data import DataError, ImageDataset, Split, load_source, split_indices
from .elbo import ElboTerms, elbo_terms, gaussian_kl, grid_log_px, iwae_log_px
from .frozen import FrozenVAE
from .model import VAE
from .session import Progress, Session, Snapshot, available_devices

__all__ = [
    "ConfigError", "DataError", "ElboTerms", "FrozenVAE", "ImageDataset", "Progress", "Session",
    "Snapshot", "Split", "TrainConfig", "VAE", "available_devices", "elbo_terms", "gaussian_kl",
    "grid_log_px", "iwae_log_px", "load_source", "split_indices",
]
