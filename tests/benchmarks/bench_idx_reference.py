"""Held-out ELBO at equal wall time: the engine against a plain PyTorch loop, on real
handwritten digits read from IDX files (issue #2's target).

Data: ``--idx PATH`` (an IDX images file; load_source finds the labels beside it), or by
default the bundled UCI digits (1,797 real handwritten digits, 8x8, grey 0..16) upscaled
bilinearly to 28x28 uint8, written as train-images-idx3-ubyte.gz + train-labels-idx1-ubyte.gz
in a temporary folder and loaded back through trainer.load_source, so the IDX loader is the
one path the data takes.

Both contenders: the same split (Session's: split_indices(N, 0.1, seed 0)), the same model
size (784-512-512-2, Bernoulli), dynamic binarisation, batch 128, Adam lr 1e-3, the same
torch thread count and the same wall-clock budgets (``--seconds 10,30,60``: one run, both
models copied aside and scored as each budget is reached), taken in alternating slices
(``--slice``) so that other load on a shared machine hits both alike. The engine's budget is
wall time with its own evaluations included (Session.run stopped by the clock); the
``latent-explorer train`` command adds its final evaluation and checkpoint write to that
(its JSON line gives ``train_seconds`` and ``wall_seconds``).

- engine: trainer.Session(dataset, TrainConfig(hidden=(512, 512), threads=T)).run(), default
  config otherwise (precision "auto", periodic held-out ELBO and log p(x) evaluations),
  stopped by wall clock, so its own evaluations and divergence guard count against its
  budget; ``train_s`` in the output is the part of it spent training.
- reference: pytorch/examples vae/main.py's loop written out below: float32 tensors in
  memory, torch.randperm batches, torch.bernoulli, BCE-with-logits (sum) + analytic KL,
  backward, Adam step; nothing else.

Afterwards both are scored by one function on one tensor: the engine's fixed-seed binarised
held-out set (Session.heldout_inputs()), mean ELBO over ``--draws`` reparameterised draws
per point, in nats (higher is better), with the same noise for both. Prints ONE JSON line.

    python tests/benchmarks/bench_idx_reference.py [--seconds 10,30,60] [--threads 1] [--idx PATH]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _machine import LoadWatch, machine_line  # noqa: E402
from _reference import ReferenceVAE, reference_loss  # noqa: E402

from trainer import (  # noqa: E402
    DataError,
    ImageDataset,
    Session,
    TrainConfig,
    load_source,
    split_indices,
)

BATCH, LR, HIDDEN, LATENT, SEED = 128, 1e-3, (512, 512), 2, 0


# ------------------------------------------------------------------------------- data

def write_idx(path: Path, array: np.ndarray) -> None:
    """A uint8 array as a gzipped IDX file: 0, 0, type 0x08, ndim, big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes()))


def digits_as_idx(folder: Path) -> Path:
    """The bundled 8x8 digits, upscaled to MNIST's 28x28 and saved as MNIST's IDX pair."""
    digits = load_source("digits")
    grey = torch.from_numpy(digits.as_float()).reshape(-1, 1, 8, 8)
    big = F.interpolate(grey, size=(28, 28), mode="bilinear", align_corners=False)
    images = (big.clamp(0, 1) * 255).round().to(torch.uint8).squeeze(1).numpy()
    path = folder / "train-images-idx3-ubyte.gz"
    write_idx(path, images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", digits.labels.astype(np.uint8))
    return path


# -------------------------------------------------------------------------- reference

class Reference:
    """The plain loop, resumable so it can train in slices: batches from torch.randperm over
    float32 tensors in memory, torch.bernoulli, loss, backward, Adam step; nothing else."""

    def __init__(self, train_x: torch.Tensor):
        torch.manual_seed(SEED)
        self.train_x = train_x
        self.model = ReferenceVAE(train_x.shape[1], LATENT)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.batches = iter(())
        self.samples = 0

    def train_for(self, seconds: float) -> float:
        """Train for ``seconds`` of wall time; returns the seconds taken."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            idx = next(self.batches, None)
            if idx is None:  # a new epoch
                self.batches = iter(torch.randperm(len(self.train_x)).split(BATCH))
                continue
            x = torch.bernoulli(self.train_x[idx])  # dynamic binarisation
            logits, mu, logvar = self.model(x)
            loss = reference_loss(logits, x, mu, logvar)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.samples += len(x)
        return time.perf_counter() - t0


# ----------------------------------------------------------------------------- engine

def engine_session(dataset: ImageDataset, threads: int, precision: str = "auto") -> Session:
    return Session(dataset, TrainConfig(hidden=HIDDEN, batch_size=BATCH, lr=LR, seed=SEED,
                                        threads=threads, precision=precision))


def run_engine_for(session: Session, seconds: float) -> float:
    """Session.run() stopped after ``seconds`` of wall time, its own evaluations included;
    returns the seconds taken."""
    t0 = time.perf_counter()

    def stop_at_budget(s: Session) -> None:
        if time.perf_counter() - t0 >= seconds:
            s.request_stop()

    session.stop_requested = False  # run() again after the previous slice's stop
    session.run(on_step=stop_at_budget)
    return time.perf_counter() - t0


# ------------------------------------------------------------------------- evaluation

@torch.no_grad()
def heldout_elbo(encode, decode, x: torch.Tensor, draws: int) -> torch.Tensor:
    """Per-point ELBO in nats (higher is better), (B,): the reconstruction term averaged
    over ``draws`` reparameterised samples (the same noise for every model), analytic KL."""
    gen = torch.Generator().manual_seed(SEED + 99)
    mu, logvar = encode(x)
    mu, logvar = mu.float(), logvar.float()
    recon = torch.zeros(len(x))
    for _ in range(draws):
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen)
        logits = decode(z).float()
        recon -= F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1) / draws
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
    return recon - kl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--idx", help="an IDX images file (labels found beside it); "
                                  "default: the bundled digits written as IDX")
    ap.add_argument("--seconds", default="10,30,60",
                    help="wall-time budgets for each contender, comma-separated (one run "
                         "scores both at each)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="the engine's precision (fp32: as on a CPU without native bf16)")
    ap.add_argument("--slice", type=float, default=1.0,
                    help="the contenders take turns training this many seconds each")
    ap.add_argument("--draws", type=int, default=16, help="ELBO draws per held-out point")
    ap.add_argument("--warmup", type=float, default=0.5,
                    help="untimed seconds of each pipeline first (oneDNN caches, allocator)")
    args = ap.parse_args()
    watch = LoadWatch()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.idx) if args.idx else digits_as_idx(Path(tmp))
        try:
            dataset = load_source(path)
        except DataError as e:
            sys.exit(f"bench_idx_reference: {e}")
        if args.idx:
            h, w = dataset.image_shape
            data = f"{path}: {len(dataset)} images {h}x{w}"
        else:
            data = ("UCI handwritten digits (1,797, 8x8, grey 0..16) upscaled bilinearly to "
                    "28x28 uint8, written as train-images/labels IDX .gz, read by load_source")
    if dataset.n_pixels != 784:
        print(f"note: {dataset.n_pixels} pixels per image, not 784", file=sys.stderr)

    split = split_indices(len(dataset), TrainConfig().heldout_fraction, SEED)
    train_x = torch.from_numpy(dataset.as_float(split.train))  # float32 in memory
    if args.warmup > 0:
        run_engine_for(engine_session(dataset, args.threads, args.precision), args.warmup)
        Reference(train_x).train_for(args.warmup)

    # Alternating slices, so that other load on the shared machine hits both alike. At each
    # budget (cumulative wall time of each contender) both models are copied aside and
    # scored afterwards: with a constant learning rate the first T seconds of a longer run
    # are a run of T seconds.
    budgets = sorted(float(b) for b in str(args.seconds).split(","))
    session = engine_session(dataset, args.threads, args.precision)
    reference = Reference(train_x)
    assert np.array_equal(session.split.train, split.train)
    engine_wall = ref_wall = 0.0
    at_budget = []
    for budget in budgets:
        watch.restart()
        while min(engine_wall, ref_wall) < budget:
            if engine_wall < budget:
                engine_wall += run_engine_for(session, min(args.slice, budget - engine_wall))
            if ref_wall < budget:
                ref_wall += reference.train_for(min(args.slice, budget - ref_wall))
        at_budget.append({
            "budget_s": budget, "other_cores": round(watch.mark(), 2),
            "engine": (copy.deepcopy(session.model).eval(), session.samples_seen,
                       engine_wall, session.seconds),
            "reference": (copy.deepcopy(reference.model).eval(), reference.samples, ref_wall)})

    x = session.heldout_inputs()  # the whole held-out split, one fixed binarisation
    n_train = len(session.split.train)
    results = []
    for row in at_budget:
        engine_model, engine_samples, e_wall, e_train = row["engine"]
        ref_model, ref_samples, r_wall = row["reference"]
        engine_elbo = heldout_elbo(engine_model.encode, engine_model.decode, x, args.draws)
        ref_elbo = heldout_elbo(ref_model.encode, ref_model.decode, x, args.draws)
        diff = engine_elbo - ref_elbo  # paired per point: same x, same noise
        stderr = float(diff.std() / len(diff) ** 0.5) if len(diff) > 1 else float("nan")
        results.append({
            "budget_s": row["budget_s"], "other_cores_busy": row["other_cores"],
            "engine": {"samples": engine_samples, "wall_s": round(e_wall, 2),
                       # the rest of wall_s went to its own held-out evaluations and guard
                       "train_s": round(e_train, 2),
                       "epochs": round(engine_samples / n_train, 1),
                       "heldout_elbo": round(float(engine_elbo.mean()), 3)},
            "reference": {"samples": ref_samples, "wall_s": round(r_wall, 2),
                          "epochs": round(ref_samples / n_train, 1),
                          "heldout_elbo": round(float(ref_elbo.mean()), 3)},
            "elbo_difference": round(float(diff.mean()), 3),
            "elbo_difference_stderr": round(stderr, 3),
            "engine_ahead": bool(diff.mean() >= 0),
            "samples_ratio": round(engine_samples / max(1, ref_samples), 3)})

    print(json.dumps({
        "bench": "idx_reference",
        "data": data, "source": str(dataset.source),
        "labelled": dataset.labels is not None, "loader_notes": dataset.notes,
        "n_train": n_train, "n_heldout": len(session.split.heldout),
        "threads": args.threads,
        "model": "784-512-512-2 MLP VAE, Bernoulli, dynamic binarization, Adam 1e-3, "
                 "batch 128",
        "budgets": results,
        "engine_ahead_at_every_budget": all(r["engine_ahead"] for r in results),
        "engine_precision": session.precision.name,
        "engine_precision_reason": session.precision.reason,
        "reference_precision": "fp32",
        "elbo_units": "nats per held-out digit, higher is better",
        "elbo_draws": args.draws,
        "elbo_difference_meaning": "engine - reference; positive = engine better",
        "slice_s": args.slice,
        **machine_line(watch, session.precision.name),
    }))


if __name__ == "__main__":
    main()
