"""A read-only copy of the VAE that another thread may use while training goes on.

Each snapshot carries one, so decoding a clicked z never races the optimiser: the
copy's weights cannot change under it. Inputs and outputs are numpy arrays.
"""

from __future__ import annotations

import copy
import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from .config import default_binarization
from .elbo import elbo_terms
from .model import VAE

_collector_lock = threading.Lock()
_collector_pausers = 0
_collector_was_enabled = True


def pause_collector() -> None:
    """Turn automatic garbage collection off, process-wide, until the matching
    ``resume_collector``; pauses nest and may come from any thread."""
    global _collector_pausers, _collector_was_enabled
    with _collector_lock:
        if _collector_pausers == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pausers += 1


def resume_collector() -> None:
    """End one pause; the last one out restores the collector as it was."""
    global _collector_pausers
    with _collector_lock:
        _collector_pausers -= 1
        if _collector_pausers == 0 and _collector_was_enabled:
            gc.enable()


def collector_pauses() -> int:
    """How many pauses hold now."""
    return _collector_pausers


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic garbage collection, in any thread, while a background thread builds
    modules (a deep copy, a new Session). Twice the test suite's process died in the GUI
    thread's collector while a worker was inside exactly such a build; the collector walks
    every thread's objects, and these builds make thousands of them in a few milliseconds.
    Nested and concurrent pauses count; the last one out restores the collector as it was."""
    pause_collector()
    try:
        yield
    finally:
        resume_collector()


class FrozenVAE:
    def __init__(self, model: VAE, image_shape: tuple[int, int],
                 binarization: str | None = None):
        """``binarization``: how a grey image becomes this model's x (trainer.evidence);
        by default the likelihood's default."""
        with collector_paused():
            self.model = copy.deepcopy(model).to("cpu").eval().requires_grad_(False)
        self.image_shape = image_shape
        # Decoded images come out as the data is stored: (H, W) grey, (H, W, C) colour.
        channels = model.n_pixels // (image_shape[0] * image_shape[1])
        self.channels = channels
        self.stored_shape = tuple(image_shape) if channels == 1 else (*image_shape, channels)
        self.binarization = binarization or default_binarization(model.likelihood)

    @property
    def latent_dim(self) -> int:
        return self.model.latent_dim

    @property
    def likelihood(self) -> str:
        return self.model.likelihood

    @torch.no_grad()
    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x: (n, D) floats in [0, 1], D = H*W*channels -> (mu, sigma), each (n, latent_dim)."""
        mu, logvar = self.model.encode(torch.as_tensor(x, dtype=torch.float32))
        return mu.numpy(), torch.exp(0.5 * logvar).numpy()

    def _decode(self, z: np.ndarray) -> torch.Tensor:
        z = np.asarray(z, np.float32).reshape(-1, self.latent_dim)
        return self.model.decode(torch.from_numpy(z))

    @torch.no_grad()
    def decode_mean(self, z: np.ndarray) -> np.ndarray:
        """z: (n, latent_dim) -> the decoder's mean images E[x|z], (n, H, W) grey or
        (n, H, W, C) colour."""
        return self.model.mean_image(self._decode(z)).reshape(-1, *self.stored_shape).numpy()

    @torch.no_grad()
    def decode_sample(self, z: np.ndarray, seed: int = 0) -> np.ndarray:
        """One draw x ~ p(x|z) per row of z, (n, H, W) or (n, H, W, C)."""
        g = torch.Generator().manual_seed(seed)
        return self.model.sample_image(self._decode(z), g).reshape(-1, *self.stored_shape).numpy()

    @torch.no_grad()
    def elbo(self, x: np.ndarray, samples: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
        """Per-datapoint ELBO, reconstruction and KL in nats, each (n,): the reconstruction
        averaged over ``samples`` reparameterised draws to steady the readout; the KL is
        analytic, the same for every draw."""
        xt = torch.as_tensor(x, dtype=torch.float32)
        g = torch.Generator().manual_seed(seed)
        draws = [elbo_terms(self.model, xt, g) for _ in range(samples)]
        recon = torch.stack([t.recon for t in draws]).mean(0)
        kl = draws[0].kl
        return {"elbo": (recon - kl).numpy(), "recon": recon.numpy(), "kl": kl.numpy()}
