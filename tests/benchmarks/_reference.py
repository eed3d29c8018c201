"""The plain torch pieces every training benchmark measures the engine against.

pytorch/examples vae/main.py's pipeline: a Dataset returning one image at a time, converted
from uint8 to float per item as torchvision's ToTensor does (/255), a shuffling DataLoader
(no workers, as the example on a CPU), torch.bernoulli (dynamic binarisation), BCE with
logits summed plus the analytic KL, plain Adam, fp32.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainer import Session


class ReferenceVAE(nn.Module):
    """pytorch/examples' VAE layout (fc1, fc21/fc22, fc3, fc4) with two hidden layers."""

    def __init__(self, d: int, latent: int, hidden: int = 512):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU())
        self.fc_mu, self.fc_logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def encode(self, x):
        h = self.enc(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z):
        return self.dec(z)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


def reference_loss(logits, x, mu, logvar):
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / len(x)


class ItemDataset(torch.utils.data.Dataset):
    """One uint8 image at a time, made float per item by ``to_tensor`` (as ToTensor)."""

    def __init__(self, images: np.ndarray, to_tensor: Callable[[np.ndarray], torch.Tensor]):
        self.images, self.to_tensor = images, to_tensor

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.to_tensor(self.images[i])


class LoaderLoop:
    """pytorch/examples' training loop over a shuffling DataLoader, resumable in rounds.
    ``model(x)`` returns (logits, mu, logvar); ``shape`` reshapes each batch for it."""

    def __init__(self, model: nn.Module, images: np.ndarray,
                 to_tensor: Callable[[np.ndarray], torch.Tensor],
                 shape: Callable[[torch.Tensor], torch.Tensor] = lambda b: b,
                 batch_size: int = 128, lr: float = 1e-3):
        self.loader = torch.utils.data.DataLoader(ItemDataset(images, to_tensor),
                                                  batch_size=batch_size, shuffle=True)
        self.model, self.shape = model, shape
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.batches = iter(self.loader)

    def train_for(self, seconds: float) -> tuple[int, float]:
        """Train for ``seconds``; returns (samples, seconds taken)."""
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            try:
                data = next(self.batches)
            except StopIteration:
                self.batches = iter(self.loader)
                data = next(self.batches)
            x = torch.bernoulli(self.shape(data))  # dynamic binarisation
            logits, mu, logvar = self.model(x)
            loss = reference_loss(logits, x, mu, logvar)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            n += len(x)
        return n, time.perf_counter() - t0


def engine_for(session: Session, seconds: float) -> tuple[int, float]:
    """Session.step() for ``seconds``; returns (samples, seconds taken)."""
    n0, t0 = session.samples_seen, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        session.step()
    return session.samples_seen - n0, time.perf_counter() - t0
