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

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _machine import LoadWatch, machine_line, pairs_summary  # noqa: E402
from _reference import LoaderLoop, engine_for  # noqa: E402

from trainer import Session, TrainConfig, load_sprites  # noqa: E402
from trainer.conv import DENSE  # noqa: E402

BATCH, LATENT, SIDE, C = 128, 8, 32, 3


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--round-seconds", type=float, default=3.0)
    args = ap.parse_args()
    watch = LoadWatch()
    dataset = load_sprites()
    session = Session(dataset, TrainConfig(arch="conv", latent_dim=LATENT, precision="fp32"))
    torch.manual_seed(0)
    reference = LoaderLoop(  # ToTensor on an H x W x 3 uint8 image: (3, H, W) in [0, 1]
        ReferenceConvVAE(), dataset.pixels,
        to_tensor=lambda im: torch.from_numpy(im).permute(2, 0, 1).float().div(255),
        batch_size=BATCH)
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
