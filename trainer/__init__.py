"""The science of Latent Explorer: a 2-D VAE, its objectives and its training engine.

Pure torch + numpy; never imports Qt, so it runs in scripts, notebooks and on GPU servers.
The names below are the public API that the desktop app (``explorer``) uses.
"""

from .architectures import build_vae
from .atomic import atomic_write
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig
from .data import (
    FASHION_NAMES,
    DataError,
    ImageDataset,
    LoadCancelled,
    Split,
    load_idx,
    load_known,
    load_npy,
    load_npz,
    load_source,
    read_idx,
    split_indices,
)
from .download import KNOWN_DATASETS, DatasetSpec, DownloadCancelled, DownloadError, fetch_dataset
from .elbo import ElboTerms, IwaeEstimate, elbo_terms, gaussian_kl, grid_log_px, iwae_log_px
from .evidence import dataset_evidence, evidence_input, likelihood_label
from .folders import IMAGE_SUFFIXES, FolderListing, walk_folder
from .frozen import FrozenVAE
from .images import (
    MNIST_FILL,
    ImageError,
    fit_fraction,
    image_size,
    ink_on_dark,
    load_folder,
    load_image_for,
    prepare_image,
    preprocess_image,
    read_colour,
    read_image,
)
from .inference import (
    DutyCycle,
    PointInference,
    SharedGridEstimate,
    dataset_gaps,
    heldout_log_px,
    inspect_point,
)
from .latent_table import latent_columns, latent_rows
from .local_opt import GaussianFit, LocalOptimum, encoder_fit, gaussian_fit, optimise_point
from .model import VAE
from .posterior import PosteriorGrid, aggregate_posterior_density, describe_shape, posterior_grid
from .session import Progress, Session, Snapshot, available_devices
from .sprites import load_sprites

__all__ = [
    "ConfigError", "DataError", "ElboTerms", "FrozenVAE", "ImageDataset", "Progress", "Session",
    "Snapshot", "Split", "TrainConfig", "VAE", "available_devices", "elbo_terms", "gaussian_kl",
    "grid_log_px", "iwae_log_px", "IwaeEstimate", "load_source", "split_indices",
    "KNOWN_DATASETS", "DatasetSpec", "DownloadCancelled", "DownloadError", "fetch_dataset",
    "DutyCycle", "GaussianFit", "LocalOptimum", "PointInference", "PosteriorGrid",
    "SharedGridEstimate", "aggregate_posterior_density", "dataset_gaps", "describe_shape",
    "encoder_fit", "gaussian_fit", "heldout_log_px", "inspect_point", "optimise_point",
    "posterior_grid",
    "FASHION_NAMES", "LoadCancelled", "load_idx", "load_known", "load_npy", "load_npz",
    "read_idx", "IMAGE_SUFFIXES", "MNIST_FILL", "ImageError", "fit_fraction", "image_size",
    "load_folder", "load_image_for", "preprocess_image", "read_image",
    "ink_on_dark", "FolderListing", "walk_folder",
    "Checkpoint", "CheckpointError", "load_checkpoint", "save_checkpoint", "atomic_write",
    "dataset_evidence", "evidence_input", "latent_columns", "latent_rows",
    "build_vae", "likelihood_label", "load_sprites", "prepare_image", "read_colour",
]
