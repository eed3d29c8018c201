"""Memory-mapped training against the in-memory engine on the same data, and how fast a
memory-mapped dataset and a cached image folder open.

- Training: 70,000 synthetic 28x28 uint8 images saved as a .npy, 784-512-512-2 MLP VAE,
  batch 128, fp32, 1 thread; the same Session with the pixels copied into a tensor
  (``pixels_in_memory=True``) and read per minibatch from the map (``False``), in
  alternating rounds so that other load hits both alike. The file is in the page cache
  here; a dataset larger than RAM adds the disk's random-read time per minibatch (128 rows
  of 784 bytes: 128 page reads at worst).
- Opening: load_source of the .npy (memory-mapped: the header only), and of a folder of
  FOLDER_IMAGES PNGs the first time (every image decoded, then written to the cache) and
  the second time (the folder listed and stat-ed, the cache opened memory-mapped).
Prints ONE JSON line.

    python tests/benchmarks/bench_memmap.py [--rounds 6] [--round-seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from trainer import Session, TrainConfig, load_source  # noqa: E402

FOLDER_IMAGES = 5000


def rate(session: Session, seconds: float) -> float:
    s0, t0 = session.samples_seen, time.perf_counter()
    session.run(seconds=session.seconds + seconds)
    return (session.samples_seen - s0) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--round-seconds", type=float, default=2.0)
    args = parser.parse_args()
    from _machine import LoadWatch, machine_line

    watch = LoadWatch()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LATENT_EXPLORER_CACHE"] = os.path.join(tmp, "cache")
        rng = np.random.default_rng(0)
        path = Path(tmp) / "images.npy"
        np.save(path, rng.integers(0, 256, (70_000, 28, 28), dtype=np.uint8))
        t = time.perf_counter()
        mapped = load_source(path)
        open_npy_s = time.perf_counter() - t
        config = TrainConfig(batch_size=128, precision="fp32", threads=1, logpx_points=0,
                             eval_every_seconds=1e9)
        sessions = {"in_memory": Session(mapped, config, pixels_in_memory=True),
                    "memory_mapped": Session(mapped, config, pixels_in_memory=False)}
        for s in sessions.values():
            rate(s, 0.5)  # warm-up
        rates: dict[str, list[float]] = {k: [] for k in sessions}
        loads = []
        for _ in range(args.rounds):
            watch.restart()
            for name, s in sessions.items():
                rates[name].append(rate(s, args.round_seconds))
            loads.append(watch.mark())

        folder = Path(tmp) / "folder"
        for label in ("a", "b"):
            (folder / label).mkdir(parents=True)
        for i in range(FOLDER_IMAGES):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(
                folder / ("a", "b")[i % 2] / f"{i}.png")
        t = time.perf_counter()
        first = load_source(folder)
        first_s = time.perf_counter() - t
        t = time.perf_counter()
        second = load_source(folder)
        second_s = time.perf_counter() - t
        assert second.memory_mapped and not first.memory_mapped

    ratios = [m / i for m, i in zip(rates["memory_mapped"], rates["in_memory"], strict=True)]
    line = {"benchmark": "memmap",
            "train_samples_per_s": {k: round(statistics.median(v), 1) for k, v in rates.items()},
            "ratio_memory_mapped_vs_in_memory": round(statistics.median(ratios), 3),
            "pair_ratios": [round(r, 3) for r in ratios],
            "open_npy_70000_s": round(open_npy_s, 4),
            "folder_images": FOLDER_IMAGES, "folder_first_load_s": round(first_s, 2),
            "folder_cached_load_s": round(second_s, 3),
            "model": "784-512-512-2 MLP VAE, batch 128, 1 thread"}
    line.update(machine_line(watch, precision="fp32"))
    print(json.dumps(line))


if __name__ == "__main__":
    main()
