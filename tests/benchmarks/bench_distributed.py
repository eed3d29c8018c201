"""Distributed training throughput: 1 rank against 2 gloo ranks (torchrun) on this machine.

Same model and data for every set-up: a 784-512-512-2 MLP VAE (Bernoulli, dynamic
binarisation, Adam) on 70,000 synthetic 28x28 uint8 images, global minibatch 128 (64 per
rank with 2 ranks), fp32. Set-ups:

- ``1x1``: one process, 1 thread;  ``1x2``: one process, 2 threads;
- ``2x1``: two ranks (torchrun, gloo on 127.0.0.1), 1 thread each: the same cores as 1x2.

Each trains ROUND_SECONDS after a warm-up; samples/s counts every rank's samples over rank
0's training time. The all-reduce share of a 2-rank step: the time to all-reduce one
gradient's worth of fp32 numbers (the parameter count) plus the 5 logged numbers, measured
alone on the same process group, over the mean step time. On a 2-core machine the ratio
2x1 / 1x2 is at most ~1 and may be below it: both ranks share the two cores with the
launcher and each other, every step waits for the slower rank, and a 64-row matmul uses a
core less well than a 128-row one; the gain is for machines with a core (or GPU) per rank.
Prints ONE JSON line.

    python tests/benchmarks/bench_distributed.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from trainer import ImageDataset, Session, TrainConfig  # noqa: E402
from trainer.distributed import Ranks  # noqa: E402

BATCH = 128
N_IMAGES = 70_000


def dataset() -> ImageDataset:
    rng = np.random.default_rng(0)
    return ImageDataset(pixels=rng.integers(0, 256, (N_IMAGES, 28, 28), dtype=np.uint8),
                        scale=1 / 255, name="synthetic 28x28", source="synthetic")


def worker(seconds: float, threads: int, out: str) -> None:
    """One rank (or the only process): warm up, train ``seconds``, rank 0 writes a record."""
    ranks, _ = Ranks.from_env("cpu")
    config = TrainConfig(batch_size=BATCH, precision="fp32", threads=threads, logpx_points=0,
                         eval_every_seconds=1e9)
    session = Session(dataset(), config, ranks=ranks)
    session.run(seconds=1.0)  # warm-up
    steps0, samples0, t0 = session.step_count, session.samples_seen, time.perf_counter()
    session.run(seconds=session.seconds + seconds)
    wall = time.perf_counter() - t0
    steps = session.step_count - steps0
    record = {"samples_per_s": (session.samples_seen - samples0) / wall,
              "step_ms": 1000 * wall / steps, "steps": steps}
    if ranks.distributed:
        n_params = sum(p.numel() for p in session.model.parameters())
        grad, stats = torch.zeros(n_params), torch.zeros(5)
        for _ in range(5):
            torch.distributed.all_reduce(grad)
        t = time.perf_counter()
        for _ in range(50):
            torch.distributed.all_reduce(grad)
            torch.distributed.all_reduce(stats)
        reduce_ms = 1000 * (time.perf_counter() - t) / 50
        record.update(allreduce_ms=reduce_ms, allreduce_share=reduce_ms / record["step_ms"],
                      n_params=n_params, allreduce_mb_per_step=4 * n_params / 1e6)
    if ranks.is_main:
        with open(out, "w") as f:
            json.dump(record, f)
    ranks.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_setup(nproc: int, threads: int, seconds: float, tmp: str) -> dict:
    out = os.path.join(tmp, f"{nproc}x{threads}.json")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MASTER_ADDR="127.0.0.1",
               PYTHONPATH=ROOT)
    me = [os.path.abspath(__file__), "--worker", "--seconds", str(seconds),
          "--threads", str(threads), "--out", out]
    if nproc == 1:
        cmd = [sys.executable, *me]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
               "--nproc-per-node", str(nproc), "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"127.0.0.1:{free_port()}", *me]
    subprocess.run(cmd, env=env, check=True, timeout=600)
    with open(out) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.worker:
        worker(args.seconds, args.threads, args.out)
        return
    from _machine import LoadWatch, machine_line

    watch = LoadWatch()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for nproc, threads in ((1, 1), (1, 2), (2, 1)):
            watch.restart()
            results[f"{nproc}x{threads}"] = run_setup(nproc, threads, args.seconds, tmp)
            watch.mark()
    line = {"benchmark": "distributed", "model": "784-512-512-2 MLP VAE, batch 128 global",
            "setups": {k: {m: round(v, 4) if isinstance(v, float) else v for m, v in r.items()}
                       for k, r in results.items()},
            "ratio_2ranks_vs_1rank_2threads": round(results["2x1"]["samples_per_s"]
                                                    / results["1x2"]["samples_per_s"], 3),
            "ratio_2ranks_vs_1rank_1thread": round(results["2x1"]["samples_per_s"]
                                                   / results["1x1"]["samples_per_s"], 3),
            "note": "2x1 and 1x2 use the same 2 cores; see the docstring for why the ratio "
                    "may be below 1 here"}
    line.update(machine_line(watch, precision="fp32"))
    print(json.dumps(line))


if __name__ == "__main__":
    main()
