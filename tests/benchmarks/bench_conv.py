"""Conv VAE training throughput: the engine against a plain torch loop of the same net.

Both train the conv VAE (trainer.conv: Conv 32 and 64 with stride 2, a dense layer of 256,
the mirror with transposed convolutions; latent 8; Bernoulli likelihood, dynamic
binarisation, Adam lr 1e-3, batch 128, fp32) on the built-in colour sprites (10,000 images
of 32 x 32 x 3).

- engine: trainer.Session(arch="conv").step() in a loop, including its periodic held-out
  evaluation and divergence-guard copies.
- reference: the same layers written as a plain nn.Module taking (B, 3, H, W) images, fed
  by a shuffling DataLoader of one image at a time converted to float per item (as
  torchvision's ToTensor), pytorch/examples' loss (BCE with logits, summed, + analytic KL).

Rounds alternate (engine, then reference) so other load hits both alike; the headline
``ratio`` is the median of per-pair ratios (tests/benchmarks/_machine.py). Prints ONE JSON
line.

    python tests/benchmarks/bench_conv.py [--rounds 6] [--round-seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _machine import LoadWatch, machine_line, pairs_summary  # noqa: E402

from trainer import Session, TrainConfig, load_sprites  # noqa: E402
from trainer.conv import DENSE  # noqa: E402

BATCH, LATENT, SIDE, C = 128, 8, 32, 3


class ItemDataset(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray):
        self.images = images  # (N, H, W, 3) uint8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div(255)  # ToTensor


class ReferenceConvVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(C, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1),
                                 nn.ReLU(), nn.Flatten(), nn.Linear(64 * 8 * 8, DENSE), nn.ReLU(),
                                 nn.Linear(DENSE, 2 * LATENT))
        self.dec = nn.Sequential(nn.Linear(LATENT, DENSE), nn.ReLU(),
                                 nn.Linear(DENSE, 64 * 8 * 8), nn.ReLU(),
                                 nn.Unflatten(1, (64, 8, 8)),
                                 nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1), nn.ReLU(),
                                 nn.ConvTranspose2d(32, C, 3, 2, 1, output_padding=1))

    def forward(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=-1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.dec(z), mu, logvar


class Reference:
    def __init__(self, images: np.ndarray):
        torch.manual_seed(0)
        self.loader = torch.utils.data.DataLoader(ItemDataset(images), batch_size=BATCH,
                                                  shuffle=True)
        self.model = ReferenceConvVAE()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.batches = iter(self.loader)

    def train_for(self, seconds: float) -> tuple[int, float]:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            try:
                data = next(self.batches)
            except StopIteration:
                self.batches = iter(self.loader)
                data = next(self.batches)
            x = torch.bernoulli(data)
            logits, mu, logvar = self.model(x)
            bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (bce + kld) / len(x)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            n += len(x)
        return n, time.perf_counter() - t0


def engine_for(session: Session, seconds: float) -> tuple[int, float]:
    n0, t0 = session.samples_seen, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        session.step()
    return session.samples_seen - n0, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--round-seconds", type=float, default=3.0)
    args = ap.parse_args()
    watch = LoadWatch()
    dataset = load_sprites()
    session = Session(dataset, TrainConfig(arch="conv", latent_dim=LATENT, precision="fp32"))
    reference = Reference(dataset.pixels)
    engine_for(session, 1.0)  # warm up both (oneDNN primitive caches, allocator)
    reference.train_for(1.0)
    engine_rates, reference_rates, loads = [], [], []
    for _ in range(args.rounds):
        watch.restart()
        n, dt = engine_for(session, args.round_seconds)
        engine_rates.append(n / dt)
        n, dt = reference.train_for(args.round_seconds)
        reference_rates.append(n / dt)
        loads.append(watch.mark())
    print(json.dumps({
        "bench": "conv",
        "ratio": pairs_summary(engine_rates, reference_rates, loads)["ratio_median_of_pairs"],
        "ratio_best_rounds": round(max(engine_rates) / max(reference_rates), 3),
        "pairs": pairs_summary(engine_rates, reference_rates, loads),
        "engine_samples_per_s": round(max(engine_rates), 1),
        "reference_samples_per_s": round(max(reference_rates), 1),
        "engine_median_samples_per_s": round(statistics.median(engine_rates), 1),
        "reference_median_samples_per_s": round(statistics.median(reference_rates), 1),
        "engine_precision": session.precision.name,
        "threads": torch.get_num_threads(),
        "rounds": args.rounds, "round_seconds": args.round_seconds,
        "data": "built-in sprites, 10,000 x 32 x 32 x 3 uint8", "batch_size": BATCH,
        "model": f"conv VAE 3x32x32 -> conv32 s2 -> conv64 s2 -> {DENSE} -> {LATENT}, "
                 "mirrored with transposed convs; Bernoulli, dynamic binarization, Adam 1e-3",
        **machine_line(watch, session.precision.name),
    }))


if __name__ == "__main__":
    main()
