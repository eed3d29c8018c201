"""Benchmark the exact per-datapoint inference (issue 5). Prints ONE JSON line.

For a model trained briefly on the built-in digits (8x8) and for an MNIST-sized one
(the same digits upsampled to 28x28, 784 pixels):
  grid_ms      exact posterior + log p(x) for one point on the adaptive grid, its contours
               drawn from the smooth display copy included (target <= 50 on one core);
               grid_error_nats: |log p(x) - a brute-force 1024 x 1024 midpoint sum over
               the adaptive grid's box widened 1.5x| (target <= 0.01)
  optimise_s   "optimise this point": diagonal q* then full-covariance (target <= 1)
  heldout      training samples/s without and with the held-out log p(x) curve on 256
               points, on the engine's DutyCycle schedule, alternating windows in one run;
               cost = 1 - with/without (target <= 0.10); duty = evaluation seconds / wall
               seconds in the "with" windows (the same share, without throughput noise)
Baselines in the same run: grid128_ms (one fixed 128 x 128 grid, the previous default),
grid_bf16_ms (opt-in bf16 decoder on the adaptive grid), optimise_mc_s (Monte-Carlo
Adam, the previous default), heldout_shared_only_* (no local-grid fallback).

    python tests/benchmarks/bench_inference.py [--threads 1] [--train 5] [--window 8]
        [--points 20] [--brute 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from _machine import LoadWatch, machine_line  # noqa: E402

from trainer import (  # noqa: E402
    DutyCycle,
    ImageDataset,
    Session,
    TrainConfig,
    heldout_log_px,
    load_source,
    optimise_point,
    posterior_grid,
)
from trainer.posterior import brute_force_log_px, widen  # noqa: E402


def upsampled_digits(size: int = 28) -> ImageDataset:
    """The digits at MNIST's size: a real 784-pixel dataset without a download."""
    d = load_source("digits")
    px = torch.from_numpy(d.pixels.astype(np.float32) * d.scale)[:, None]
    big = F.interpolate(px, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return ImageDataset(pixels=(big.clamp(0, 1) * 255).round().to(torch.uint8).numpy(),
                        scale=1 / 255, name="digits 28x28", source="digits-28",
                        labels=d.labels)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def throughput(session: Session, seconds: float, evaluate=None, cycle=None
               ) -> tuple[float, float]:
    """Training samples per wall-clock second over ``seconds``, evaluating on schedule,
    and the share of the window spent evaluating. The cycle's clock is the training time
    of the evaluating windows only (``cycle.clock``, kept across them): counting the other
    windows' training would make an evaluation due at the start of every window."""
    start_samples, t0, spent = session.samples_seen, time.perf_counter(), 0.0
    start_seconds = session.seconds
    while time.perf_counter() - t0 < seconds:
        session.step()
        clock = getattr(cycle, "clock", 0.0) + session.seconds - start_seconds
        if evaluate is not None and cycle.due(clock):
            cost = timed(evaluate)
            spent += cost
            cycle.ran(clock, cost)
    if cycle is not None:
        cycle.clock = getattr(cycle, "clock", 0.0) + session.seconds - start_seconds
    wall = time.perf_counter() - t0
    return (session.samples_seen - start_samples) / wall, spent / wall


def band_levels(grid) -> None:
    """The overlay's work per posterior besides the grid (PosteriorOverlay.set_posterior):
    the band image from the 128 x 128 display copy and the three HPD outlines traced by
    pyqtgraph's isocurve on the 64 x 64 copy, as IsocurveItem runs it; no painting."""
    import pyqtgraph as pg

    from explorer.qt.views.posterior_overlay import CONTOUR_CELLS, band_image, hpd_thresholds

    band_image(grid.for_display().mass)
    lines = grid.for_display(CONTOUR_CELLS).mass
    for level in hpd_thresholds(lines):
        pg.functions.isocurve(lines, float(level), connected=True, extendToEdge=True)


def bench(dataset: ImageDataset, hidden: tuple[int, ...], train_s: float, window_s: float,
          points: int, brute_points: int) -> dict:
    session = Session(dataset, TrainConfig(hidden=hidden, seed=0))
    session.run(seconds=train_s)
    model = session.model.eval()
    clock = [time.perf_counter()]

    def phase(name: str) -> None:  # progress on stderr: where a slow run spends its time
        now = time.perf_counter()
        print(f"bench_inference: {dataset.n_pixels} px: {name} {now - clock[0]:.1f} s",
              file=sys.stderr, flush=True)
        clock[0] = now

    x = session.heldout_inputs(points + 1)
    band_levels(posterior_grid(model, x[0]))  # warm-up (imports too)
    grids, grid_ms, contour_ms = [], [], []
    for i in range(1, 1 + points):
        t0 = time.perf_counter()
        grid = posterior_grid(model, x[i])
        t1 = time.perf_counter()
        band_levels(grid)  # the overlay's bands and outlines
        grid_ms.append(1e3 * (time.perf_counter() - t0))
        contour_ms.append(1e3 * (time.perf_counter() - t1))
        grids.append(grid)
    grid128_ms = [1e3 * timed(lambda i=i: posterior_grid(model, x[i], n=128))
                  for i in range(1, 4)]
    posterior_grid(model, x[0], precision="bf16")  # warm-up
    bf16_ms = [1e3 * timed(lambda i=i: posterior_grid(model, x[i], precision="bf16"))
               for i in range(1, 4)]
    phase("grids")
    # The brute-force check, on every thread (it is seconds of decoder passes per point).
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    errors = [abs(g.log_px - brute_force_log_px(model, x[i], widen(g.extent, 1.5), n=1024))
              for i, g in enumerate(grids[:brute_points], start=1)]
    torch.set_num_threads(threads)
    phase("brute-force check")
    optimise_point(model, x[0], steps=5)  # warm-up
    opt_s = [timed(lambda i=i: optimise_point(model, x[i])) for i in range(1, 4)]
    optimise_point(model, x[0], steps=5, method="mc")  # warm-up (Adam imports extras)
    mc_s = [timed(lambda i=i: optimise_point(model, x[i], method="mc")) for i in range(1, 3)]
    phase("optimise")
    gen = torch.Generator().manual_seed(0)
    pts = torch.from_numpy(dataset.as_float(np.arange(256)))
    pts = torch.bernoulli(pts, generator=gen)  # 256 fixed binarised points
    shared = heldout_log_px(model, pts, local=False)
    est = heldout_log_px(model, pts)
    model.train()
    rates = {"without": [], "with": []}
    duty = []
    cycle = DutyCycle(fraction=TrainConfig().logpx_share)  # the engine's own schedule
    for _ in range(2):  # alternate so drift on a shared machine hits both alike
        rates["without"].append(throughput(session, window_s)[0])
        rate, share = throughput(session, window_s,
                                 lambda: heldout_log_px(session.model, pts), cycle)
        rates["with"].append(rate)
        duty.append(share)
    without, with_ = (statistics.mean(rates[k]) for k in ("without", "with"))
    return {
        "pixels": dataset.n_pixels, "hidden": list(hidden), "train_steps": session.step_count,
        "grid_ms_p50": round(statistics.median(grid_ms), 1),
        "grid_ms_max": round(max(grid_ms), 1), "grid_points": len(grid_ms),
        "of_which_contours_ms_p50": round(statistics.median(contour_ms), 1),
        "grid_error_nats_max": float(f"{max(errors):.2e}") if errors else None,
        "grid_error_nats": [float(f"{e:.2e}") for e in errors],
        "grid_error_estimates": [float(f"{g.error_nats:.2e}") for g in grids[:brute_points]],
        "grid_resolved": sum(g.resolved for g in grids),
        "grid_evaluations_median": int(statistics.median(g.evaluations for g in grids)),
        "grid_refined": sum(g.refine_levels > 0 for g in grids),
        "grid128_ms_median": round(statistics.median(grid128_ms), 1),
        "grid_bf16_ms_median": round(statistics.median(bf16_ms), 1),
        "optimise_s_median": round(statistics.median(opt_s), 3),
        "optimise_mc_s_median": round(statistics.median(mc_s), 3),
        "heldout_eval_ms": round(1e3 * est.seconds, 1), "heldout_grid_n": est.n,
        "heldout_resolved": round(float(est.resolved.mean()), 3),
        "heldout_shared_only_ms": round(1e3 * shared.seconds, 1),
        "heldout_shared_only_resolved": round(float(shared.resolved.mean()), 3),
        "heldout_mean_log_px": round(est.mean_log_px, 3),
        "heldout_mean_elbo": round(est.mean_elbo, 3),
        "samples_per_s_without": round(without), "samples_per_s_with": round(with_),
        "heldout_cost": round(1 - with_ / without, 3),
        "heldout_duty": round(statistics.mean(duty), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the GUI uses 1)")
    ap.add_argument("--train", type=float, default=5.0, help="seconds of training first")
    ap.add_argument("--window", type=float, default=4.0, help="seconds per throughput window")
    ap.add_argument("--points", type=int, default=20, help="points timed on the adaptive grid")
    ap.add_argument("--brute", type=int, default=1,
                    help="of those, checked against a brute-force 1024 x 1024 grid")
    args = ap.parse_args()
    watch = LoadWatch()
    torch.set_num_threads(args.threads)
    result = {"bench": "inference", "threads": args.threads,
              "digits": bench(load_source("digits"), (512, 512), args.train, args.window,
                              args.points, args.brute),
              "mnist_sized": bench(upsampled_digits(), (512, 512), args.train, args.window,
                                   args.points, args.brute)}
    result.update(machine_line(watch, "fp32 grid (bf16 grid as a baseline)"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
