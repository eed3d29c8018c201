"""Training throughput: the engine against pytorch/examples' VAE pipeline, in one run.

Both train the same model (784-512-512-2 MLP VAE, Bernoulli likelihood, dynamic
binarisation, Adam lr 1e-3) on the same data (70,000 synthetic 28x28 uint8 images, MNIST's
size; the pixel values do not change the cost) with batch 128.

- engine: trainer.Session.step() in a loop, default config (precision "auto"), including
  its periodic held-out evaluation and divergence-guard copies.
- reference: pytorch/examples vae/main.py's pipeline: a Dataset returning one image at a
  time, converted from uint8 to float per item as torchvision's ToTensor does (/255), a
  shuffling DataLoader (batch 128, no workers, as the example on a CPU), fp32, plain Adam,
  torch's default thread count.

The two are measured in alternating rounds so that other load on the machine hits both
alike; the headline ``ratio`` is the median of the per-pair ratios (engine round / the
reference round right after it), leaving out pairs in which other processes' load differed
wildly from the rest (tests/benchmarks/_machine.py); the best rounds' ratio is reported too,
and the whole run's (all samples over all time, the engine's rare long evaluations included).
``--precision fp32`` measures the engine as it runs on a CPU without native bf16. Also
reported: the engine's achieved GFLOP/s
against this CPU's peak (a big matmul measured in the same run on the same threads), and the
engine at 2 threads against 1. Prints ONE JSON line.

    python tests/benchmarks/bench_train.py [--rounds 10] [--round-seconds 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _machine import LoadWatch, machine_line, pairs_summary  # noqa: E402
from _reference import LoaderLoop, ReferenceVAE, engine_for  # noqa: E402

from trainer import ImageDataset, Session, TrainConfig  # noqa: E402

N, SIDE, BATCH, HIDDEN, LATENT = 70_000, 28, 128, (512, 512), 2
D = SIDE * SIDE


def synthetic_images(seed: int = 0) -> np.ndarray:
    """MNIST-sized uint8 images: mostly-dark blurry blobs, like digits in density."""
    rng = np.random.default_rng(seed)
    img = rng.random((N, SIDE, SIDE), dtype=np.float32)
    return (np.clip(img * 2 - 1.2, 0, 1) * 255).astype(np.uint8)


def flops_per_sample() -> float:
    """Multiply-adds x 2 of the Linear layers, forward + backward (grads of weights and of
    inputs; the first layer needs no input grad)."""
    enc = [D, *HIDDEN, 2 * LATENT]
    dec = [LATENT, *HIDDEN, D]
    macs = [a * b for sizes in (enc, dec) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    forward = 2 * sum(macs)
    backward = 2 * sum(macs) + 2 * (sum(macs) - macs[0])
    return float(forward + backward)


class MatmulPeak:
    """GFLOP/s of a big square matmul at one precision: the fastest of calls spread over the
    whole run (sampled between rounds), on the thread count in force."""

    SIZE = 1536

    def __init__(self, dtype: torch.dtype):
        self.a = torch.randn(self.SIZE, self.SIZE).to(dtype)
        self.b = torch.randn(self.SIZE, self.SIZE).to(dtype)
        self.a @ self.b  # warm-up
        self.best = math.inf

    def sample(self, calls: int = 3) -> None:
        for _ in range(calls):
            t0 = time.perf_counter()
            self.a @ self.b
            self.best = min(self.best, time.perf_counter() - t0)

    @property
    def gflops(self) -> float:
        return 2 * self.SIZE**3 / self.best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--round-seconds", type=float, default=2.0)
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="the engine's precision (fp32: as on a CPU without native bf16)")
    args = ap.parse_args()
    watch = LoadWatch()
    default_threads = torch.get_num_threads()
    images = synthetic_images()
    dataset = ImageDataset(pixels=images, scale=1 / 255, name="synthetic", source="synthetic")
    # threads=None: torch's default, as the reference
    session = Session(dataset, TrainConfig(precision=args.precision))
    torch.manual_seed(0)
    reference = LoaderLoop(  # torchvision's ToTensor on a uint8 image: (1, H, W) in [0, 1]
        ReferenceVAE(D, LATENT), images,
        to_tensor=lambda im: torch.from_numpy(im).unsqueeze(0).float().div(255),
        shape=lambda batch: batch.view(-1, D), batch_size=BATCH)
    engine_for(session, 0.5)  # warm up both (oneDNN primitive caches, allocator)
    reference.train_for(0.5)

    peaks = {"fp32": MatmulPeak(torch.float32), "bf16": MatmulPeak(torch.bfloat16)}
    engine_rates, reference_rates, one_thread, two_threads = [], [], [], []
    pair_loads = []
    totals = {"engine": [0, 0.0], "reference": [0, 0.0]}  # samples, seconds
    for _ in range(args.rounds):
        torch.set_num_threads(default_threads)
        watch.restart()
        n, dt = engine_for(session, args.round_seconds)
        engine_rates.append(n / dt)
        totals["engine"] = [totals["engine"][0] + n, totals["engine"][1] + dt]
        n, dt = reference.train_for(args.round_seconds)
        reference_rates.append(n / dt)
        totals["reference"] = [totals["reference"][0] + n, totals["reference"][1] + dt]
        pair_loads.append(watch.mark())
        for peak in peaks.values():
            peak.sample()
    for _ in range(max(2, args.rounds // 2 + 1)):
        for threads, rates in ((1, one_thread), (2, two_threads)):
            torch.set_num_threads(threads)
            n, dt = engine_for(session, args.round_seconds / 2)
            rates.append(n / dt)
    torch.set_num_threads(default_threads)
    peak_fp32, peak_bf16 = peaks["fp32"].gflops, peaks["bf16"].gflops

    # Headline: the median of pairs (engine and reference rounds back to back), leaving out
    # pairs whose other load differed wildly. The best rounds (load only slows a round down,
    # timeit's rule) are reported beside it.
    engine, ref = max(engine_rates), max(reference_rates)
    pairs = pairs_summary(engine_rates, reference_rates, pair_loads)
    gflops = statistics.median(engine_rates) * flops_per_sample() / 1e9
    bf16 = session._autocast_dtype is not None
    print(json.dumps({
        "bench": "train",
        "ratio": pairs["ratio_median_of_pairs"],
        "ratio_best_rounds": round(engine / ref, 3),
        # All rounds' samples over all their time: the rare long evaluations (the gap curve's
        # first, at 10 s of training) count here, where a median of rounds leaves them out.
        "ratio_whole_run": round((totals["engine"][0] / totals["engine"][1])
                                 / (totals["reference"][0] / totals["reference"][1]), 3),
        "pairs": pairs,
        "target_ratio": 2.0 if bf16 else 1.5,
        "engine_samples_per_s": round(engine, 1),
        "reference_samples_per_s": round(ref, 1),
        "engine_median_samples_per_s": round(statistics.median(engine_rates), 1),
        "reference_median_samples_per_s": round(statistics.median(reference_rates), 1),
        "engine_precision": "bf16 matmuls, fp32 weights/loss" if bf16 else "fp32",
        "engine_precision_reason": session.precision.reason,
        "engine_gflops_median_round": round(gflops, 1),
        "flops_per_sample": flops_per_sample(),
        "peak_fp32_gflops": round(peak_fp32, 1),
        "peak_bf16_gflops": round(peak_bf16, 1),
        "engine_share_of_fp32_peak": round(gflops / peak_fp32, 3),
        "engine_share_of_peak_at_its_precision": round(gflops / (peak_bf16 if bf16
                                                                 else peak_fp32), 3),
        "threads": default_threads,
        "engine_1_thread_samples_per_s": round(max(one_thread), 1),
        "engine_2_threads_samples_per_s": round(max(two_threads), 1),
        "threads_2_vs_1": round(max(two_threads) / max(one_thread), 3),
        "rounds": args.rounds, "round_seconds": args.round_seconds,
        "engine_rounds": [round(r) for r in engine_rates],
        "reference_rounds": [round(r) for r in reference_rates],
        "data": f"synthetic uint8 {N}x{SIDE}x{SIDE}", "batch_size": BATCH,
        "model": "784-512-512-2 MLP VAE, Bernoulli, dynamic binarization, Adam 1e-3",
        **machine_line(watch, "bf16" if bf16 else "fp32"),
    }))


if __name__ == "__main__":
    main()
