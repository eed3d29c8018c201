"""Amortized, free-form and semi-amortized inference at equal wall time (issue 12). Prints ONE
JSON line.

For each of two datasets, the built-in digits (1,617 training images of 8x8) and an
MNIST-sized synthetic set (60,000 images of 28x28: the digits upsampled, each copy shifted by
up to 2 pixels and given 5 % salt-and-pepper noise, so every image differs), each mode trains
the same model (512-512 MLP, 2-D latent, Bernoulli, batch 128, one thread, fp32) for the same
training time (the engine's clock, Session.seconds: the steps alone, not the engine's
occasional held-out evaluation), and reports:

  samples_per_s          training throughput
  seconds_to_target      training seconds until the mode's train ELBO (its own objective: the
                         encoder's q, the table's, the refined q; a 1-second running mean)
                         first reaches the target, null if never. The target is the
                         amortized run's running train ELBO at a third of the budget
                         (the baseline, in the same run)
  final_train_elbo       that running mean at the end
  heldout_elbo           mean held-out ELBO (nats) of the mode's own q, after equal time,
                         on a fixed subset of held-out points
  heldout_q_ms_per_point what that q cost per held-out point: one encoder pass (amortized),
                         an encoder pass and K refinement steps (semi), a fit from the prior
                         (free), batches of 256

    python tests/benchmarks/bench_inference_modes.py [--seconds 20] [--heldout 256]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _machine import LoadWatch, machine_line  # noqa: E402

from trainer import ImageDataset, Session, TrainConfig, load_source  # noqa: E402
from trainer.inference_modes import heldout_q_description  # noqa: E402

MODES = ("amortized", "free", "semi")


def mnist_sized(n: int = 60_000, seed: int = 0) -> ImageDataset:
    """60,000 distinct 28x28 images from the digits: upsampled, shifted, salted."""
    d = load_source("digits")
    px = torch.from_numpy(d.pixels.astype(np.float32) * d.scale)[:, None]
    big = F.interpolate(px, size=(28, 28), mode="bilinear", align_corners=False)[:, 0].numpy()
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(big), n)
    out = np.empty((n, 28, 28), np.uint8)
    for start in range(0, n, 5000):
        idx = pick[start:start + 5000]
        imgs = big[idx]
        shifts = rng.integers(-2, 3, (len(idx), 2))
        for i, (dy, dx) in enumerate(shifts):
            imgs[i] = np.roll(imgs[i], (dy, dx), axis=(0, 1))
        salt = rng.random(imgs.shape) < 0.05
        imgs = np.where(salt, rng.random(imgs.shape), imgs)
        out[start:start + 5000] = (np.clip(imgs, 0, 1) * 255).round().astype(np.uint8)
    return ImageDataset(pixels=out, scale=1 / 255, name="synthetic 28x28", source="synthetic-28",
                        labels=d.labels[pick])


def train_for(dataset: ImageDataset, mode: str, seconds: float) -> tuple[Session, list]:
    cfg = TrainConfig(inference=mode, threads=1, precision="fp32", logpx_points=0,
                      eval_every_seconds=1e9)
    s = Session(dataset, cfg)
    curve, window = [], []  # (training seconds, running mean of the last second's ELBO)
    t = 0.0
    while t < seconds:
        out = s.step()
        t = s.seconds
        window.append((t, out["elbo"]))
        window = [(a, e) for a, e in window if a >= t - 1.0]
        curve.append((t, float(np.mean([e for _, e in window]))))
    return s, curve


def first_reaching(curve: list, target: float) -> float | None:
    # Skip the first second: its running mean is over too few steps.
    return next((round(t, 2) for t, e in curve if t >= 1.0 and e >= target), None)


def heldout_cost(s: Session, n: int) -> tuple[float, float]:
    """Mean held-out ELBO of the mode's own q, and that q's cost in ms per point."""
    x = s.heldout_inputs(n)
    terms = s.evaluate(x)
    return terms["elbo"], 1000 * s.last_q_seconds / len(x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0, help="training seconds per mode")
    ap.add_argument("--heldout", type=int, default=256, help="held-out points scored")
    args = ap.parse_args()
    torch.set_num_threads(1)
    watch = LoadWatch()
    line: dict = {"bench": "inference_modes", "seconds_per_mode": args.seconds,
                  "units": "per-datapoint nats, ELBO higher is better; training seconds; ms"}
    for name, dataset in (("digits", load_source("digits")), ("mnist_sized", mnist_sized())):
        runs, target = {}, None
        for mode in MODES:
            watch.restart()
            s, curve = train_for(dataset, mode, args.seconds)
            watch.mark()
            if mode == "amortized":  # the baseline sets the target
                target = next(e for t, e in curve if t >= args.seconds / 3)
            elbo, ms = heldout_cost(s, args.heldout)
            runs[mode] = {
                "samples_per_s": round(s.samples_seen / curve[-1][0], 1),
                "steps": s.step_count, "epochs": round(s.epoch + s._cursor / len(s._order), 2),
                "seconds_to_target": first_reaching(curve, target),
                "final_train_elbo": round(curve[-1][1], 3),
                "heldout_elbo": round(elbo, 3), "heldout_q_ms_per_point": round(ms, 4),
                "heldout_q": heldout_q_description(s.config),
                "optimised_numbers": (
                    sum(p.numel() for p in s.model.decoder.parameters())
                    + (s.inference.n_parameters if mode == "free"
                       else sum(p.numel() for p in s.model.encoder.parameters()))),
            }
            print(f"{name} {mode}: {runs[mode]}", file=sys.stderr, flush=True)
        line[name] = {"n_train": len(s.split.train),
                      "pixels": dataset.n_pixels, "target_train_elbo": round(target, 3),
                      **runs}
    line.update(machine_line(watch, precision="fp32"))
    print(json.dumps(line))


if __name__ == "__main__":
    main()
