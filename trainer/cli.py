"""Headless commands: ``train``, ``encode``, ``evaluate``, ``inspect`` and ``export-latents``.

Each prints JSON lines on stdout (numbers in per-datapoint nats: ELBO and log p(x) are
higher-is-better, KL >= 0); progress and notes go to stderr. Bad input ends with one line,
``latent-explorer: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import (
    ARCHS,
    BINARIZATIONS,
    INFERENCE_MODES,
    LIKELIHOODS,
    PRECISIONS,
    ConfigError,
    TrainConfig,
    default_binarization,
)
from .data import DataError, load_source
from .distributed import Ranks, RankStopped, launch, stop_on_sigterm
from .download import KNOWN_DATASETS
from .elbo import elbo_terms, grid_log_px, iwae_log_px
from .evidence import dataset_evidence, evidence_input, likelihood_label
from .frozen import FrozenVAE
from .gaps import mean_gaps
from .inference import INSPECT_GRID_N, INSPECT_IWAE_K, inspect_point
from .inference_modes import heldout_q_description
from .latent_stats import active_units, per_dim_kl
from .latent_table import iter_latent_rows, write_latents_csv
from .session import Session

PROG = "latent-explorer"
DEFAULT_SECONDS = 60.0
FINAL_EVAL_POINTS = 20_000  # held-out points in train's final report (all, up to this)
ENCODE_DRAWS = 64  # z samples averaged for one image's ELBO
MAX_CLI_LATENT_DIM = 64  # the largest latent the views are made for (issue 13)


# ------------------------------------------------------------------------ arguments

def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0 or (kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def _latent_dim(text: str) -> int:
    value = _positive(int)(text)
    if value > MAX_CLI_LATENT_DIM:
        raise argparse.ArgumentTypeError(f"at most {MAX_CLI_LATENT_DIM}, got {text}")
    return value


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected layer sizes like 512,512, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"layer sizes must be positive, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Train and query 2-D variational autoencoders headless. "
        "Numbers are per-datapoint nats; ELBO and log p(x) are higher-is-better.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a VAE and write a checkpoint",
                       description="Train a VAE on SOURCE and write a checkpoint to --out.")
    t.add_argument("source", metavar="SOURCE",
                   help="'digits' or 'sprites' / 'sprites-grey' (built in), 'mnist' or "
                        "'fashion-mnist' (downloaded once), "
                        "a folder of images, .npz/.npy or an IDX file")
    t.add_argument("--out", required=True, metavar="DIR", help="checkpoint directory to write")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=_positive(int), metavar="N",
                        help="train this many epochs (more, with --resume)")
    budget.add_argument("--seconds", type=_positive(float), metavar="S",
                        help=f"train this many seconds (default {DEFAULT_SECONDS:g})")
    t.add_argument("--likelihood", choices=LIKELIHOODS)
    t.add_argument("--binarization", choices=BINARIZATIONS,
                   help="default: dynamic for bernoulli, none for gaussian")
    t.add_argument("--beta", type=float, help="KL weight while training (reports use 1)")
    t.add_argument("--lr", type=_positive(float))
    t.add_argument("--batch-size", type=_positive(int))
    t.add_argument("--hidden", type=_hidden, metavar="H1,H2", help="hidden layer sizes")
    t.add_argument("--latent-dim", type=_latent_dim, metavar="D",
                   help=f"latent dimensions, 1 to {MAX_CLI_LATENT_DIM} (default 2: the exact "
                        "grid posterior and log p(x) need 2)")
    t.add_argument("--arch", choices=ARCHS,
                   help="mlp (default) or conv: two stride-2 convolutions (32, 64) and a dense "
                        "layer, for images 8 to 64 pixels a side")
    t.add_argument("--seed", type=int)
    t.add_argument("--precision", choices=PRECISIONS)
    t.add_argument("--inference", choices=INFERENCE_MODES,
                   help="who gives each training point its q: the encoder (amortized, the "
                        "default), a free table of lambda_i (free) or the encoder refined "
                        "by K steps (semi)")
    t.add_argument("--refine-steps", type=_positive(int), metavar="K",
                   help="semi: Adam steps refining each point's q (default 10)")
    t.add_argument("--refine-lr", type=_positive(float), metavar="LR",
                   help="semi: their step size, in units of the encoder's sigma (default 0.1)")
    t.add_argument("--free-steps", type=_positive(int), metavar="K",
                   help="free: Adam steps on a training point's lambda_i each time it is in "
                        "the minibatch, theta frozen (the E-step; default 1)")
    t.add_argument("--free-lr", type=_positive(float), metavar="LR",
                   help="free: their first step size, in units of the row's sigma, then "
                        "adapted per row (default 0.1)")
    t.add_argument("--resume", metavar="DIR", help="continue from this checkpoint")
    t.add_argument("--checkpoint-every", type=_positive(float), metavar="SECONDS",
                   help="also write the checkpoint every SECONDS of wall time while training")
    t.add_argument("--nproc", type=_positive(int), metavar="N",
                   help="train on N local processes (torchrun; one per GPU with --device "
                        "cuda); --batch-size is the total over all of them")
    _add_machine(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("encode", help="encode image files with a trained model",
                       description="Print one JSON line per FILE: {file, mu, sigma, elbo} "
                       "or {file, error}; a folder gives its image files (hidden ones, named "
                       "with a leading '.', left out). Exit status 1 if any file failed.")
    e.add_argument("--checkpoint", required=True, metavar="DIR")
    e.add_argument("files", nargs="+", metavar="FILE|FOLDER")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=cmd_encode)

    v = sub.add_parser("evaluate", help="held-out ELBO, IWAE and grid log p(x)",
                       description="Evaluate a checkpoint on the held-out split of SOURCE "
                       "(default: the dataset it was trained on).")
    v.add_argument("--checkpoint", required=True, metavar="DIR")
    v.add_argument("source", nargs="?", metavar="SOURCE")
    v.add_argument("--k", type=_positive(int), default=1000, help="IWAE samples (default 1000)")
    v.add_argument("--grid", type=_positive(int), default=256,
                   help="grid points per axis for log p(x) with a 2-D latent (default 256)")
    v.add_argument("--max-points", type=_positive(int), default=1000,
                   help="evaluate at most this many held-out images (default 1000)")
    v.add_argument("--gaps", type=int, default=0, metavar="N",
                   help="also split the inference gap of the run's own q into mean "
                        "amortization and approximation gaps, on N training and N held-out "
                        "images (2-D latent; q* optimised per point)")
    v.add_argument("--seed", type=int, default=0)
    _add_machine(v)
    v.set_defaults(func=cmd_evaluate)

    i = sub.add_parser("inspect", help="the inspector's numbers for one datapoint",
                       description="Print one JSON line with the Inspector's numbers for "
                       "datapoint --index of SOURCE (default: the dataset the checkpoint was "
                       "trained on): lambda_i = (mu, sigma), ELBO_i and its terms, the exact "
                       "log p(x) on a grid, IWAE with its standard error and the inference "
                       "gap; with --optimise also q* and the amortization and approximation "
                       "gaps. Needs a 2-D latent.")
    i.add_argument("--checkpoint", required=True, metavar="DIR")
    i.add_argument("source", nargs="?", metavar="SOURCE")
    i.add_argument("--index", required=True, type=int, metavar="I", help="datapoint index")
    i.add_argument("--optimise", "--optimize", action="store_true",
                   help="also fit the best per-point Gaussian q* (theta frozen)")
    i.set_defaults(func=cmd_inspect)

    x = sub.add_parser("export-latents", help="write every datapoint's mu, sigma and ELBO",
                       description="Write the CSV that File > Export > Latents writes: "
                       "index,label,name,mu1,mu2,...,sigma1,sigma2,...,elbo_nats (ELBO in nats, "
                       "higher is better, of each datapoint's fixed x).")
    x.add_argument("--checkpoint", required=True, metavar="DIR")
    x.add_argument("source", nargs="?", metavar="SOURCE")
    x.add_argument("--out", required=True, metavar="FILE.csv")
    x.add_argument("--quiet", action="store_true", help="no progress bar")
    x.set_defaults(func=cmd_export_latents)
    return parser


def _add_machine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda or mps")
    p.add_argument("--threads", type=_positive(int), help="torch CPU threads")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help or a usage error (argparse already printed it)
        return int(e.code or 0)
    if getattr(args, "nproc", None) and "WORLD_SIZE" not in os.environ:
        return launch(args.nproc, _without_nproc(argv))
    try:
        return args.func(args)
    except (DataError, ConfigError, CheckpointError) as e:
        return _fail(str(e))
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        return _fail(f"{where}{e.strerror or e}")


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return 2


def _finite_or_none(value, key: str, nonfinite: list[str]):
    """``value`` with every NaN or infinity replaced by None (JSON null), naming its key."""
    if isinstance(value, float) and not math.isfinite(value):
        if key not in nonfinite:
            nonfinite.append(key)
        return None
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v, key, nonfinite) for v in value]
    if isinstance(value, dict):
        return {k: _finite_or_none(v, k, nonfinite) for k, v in value.items()}
    return value


def _emit(record: dict) -> None:
    """One strict JSON line: NaN and infinities (a diverged model's numbers) are not JSON,
    so they become null and a "nonfinite" field lists the keys that held them."""
    nonfinite: list[str] = []
    clean = {k: _finite_or_none(v, k, nonfinite) for k, v in record.items()}
    if nonfinite:
        clean["nonfinite"] = nonfinite
    print(json.dumps(clean, allow_nan=False), flush=True)


# ------------------------------------------------------------------------------ train

def _inference_fields(config: TrainConfig) -> dict:
    """The inference mode and the settings it uses, for a JSON line."""
    out = {"inference": config.inference}
    if config.inference == "semi":
        out.update(refine_steps=config.refine_steps, refine_lr=config.refine_lr)
    elif config.inference == "free":
        out.update(free_steps=config.free_steps, free_lr=config.free_lr)
    return out


STRUCTURAL = ("likelihood", "binarization", "hidden", "latent_dim", "seed", "precision",
              "arch", "inference", "refine_steps", "refine_lr", "free_steps",
              "free_lr")


def _config_changes(args) -> dict:
    names = {"likelihood": "likelihood", "binarization": "binarization", "beta": "beta",
             "lr": "lr", "batch_size": "batch_size", "hidden": "hidden",
             "latent_dim": "latent_dim", "seed": "seed", "precision": "precision",
             "device": "device", "threads": "threads", "arch": "arch",
             "inference": "inference", "refine_steps": "refine_steps",
             "refine_lr": "refine_lr", "free_steps": "free_steps", "free_lr": "free_lr"}
    return {field: getattr(args, arg) for arg, field in names.items()
            if getattr(args, arg) is not None}


def cmd_train(args) -> int:
    """Train in this process; under torchrun, as one rank of the run (see
    trainer.distributed): rank 0 alone evaluates, reports and writes checkpoints."""
    checkpoint = load_checkpoint(args.resume) if args.resume else None
    device = args.device or (checkpoint.config.device if checkpoint else "cpu")
    ranks, device = Ranks.from_env(device)
    if not ranks.distributed:
        return _train(args, checkpoint, ranks)
    stop_on_sigterm()
    try:
        args.device = device
        args.quiet = args.quiet or not ranks.is_main
        return _train(args, checkpoint, ranks)
    except (KeyboardInterrupt, RankStopped, RuntimeError) as e:
        if isinstance(e, RuntimeError) and not _peer_failure(e):
            raise  # a bug, not a lost rank: keep its traceback
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else str(e).splitlines()[0]
        if ranks.is_main and "LATENT_EXPLORER_LAUNCHER" not in os.environ:
            print(f"{PROG}: error: rank {ranks.rank} of {ranks.world_size}: {why}; the run "
                  "stopped and wrote no checkpoint (the last complete one is intact)",
                  file=sys.stderr)
        # Leave at once: tearing down a process group whose peers are gone, mid-collective,
        # can hang or abort ("terminate called without an active exception").
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130 if isinstance(e, KeyboardInterrupt) else 1)
    except (DataError, ConfigError, CheckpointError) as e:  # the same on every rank: say it once
        return _fail(str(e)) if ranks.is_main else 2
    finally:
        ranks.close()


def _peer_failure(e: RuntimeError) -> bool:
    """Whether a collective failed because another rank went away (DDP's all-reduce in
    backward raises gloo's or NCCL's error before torchrun's SIGTERM arrives)."""
    text = str(e).lower()
    return (isinstance(e, (RankStopped, torch.distributed.DistBackendError))
            or any(word in text for word in ("gloo", "nccl", "connection", "timed out")))


def _train(args, checkpoint, ranks: Ranks) -> int:
    wall_start = time.perf_counter()
    changes = _config_changes(args)
    # Each machine's first rank reads a folder into its cache before the others open it.
    first_here = ranks.local_rank == 0
    if ranks.distributed and not first_here:
        torch.distributed.barrier()
    dataset = load_with_progress(args.source, quiet=args.quiet or not first_here)
    if ranks.distributed and first_here:
        torch.distributed.barrier()
    if checkpoint is not None:
        fixed = sorted(k for k in STRUCTURAL if k in changes
                       and changes[k] != getattr(checkpoint.config, k))
        if fixed:
            raise ConfigError(f"cannot change {', '.join(fixed)} when resuming {args.resume}")
        same = dataset.fingerprint() == checkpoint.dataset_ref["fingerprint"]
        if not same:
            print(f"{PROG}: note: {args.source} differs from the dataset {args.resume} was "
                  "trained on; continuing with its weights on the new data", file=sys.stderr)
        session = Session.from_checkpoint(checkpoint, dataset, device=changes.get("device"),
                                          threads=changes.get("threads"), strict=False,
                                          ranks=ranks)
        for name, setter in (("lr", session.set_lr), ("beta", session.set_beta),
                             ("batch_size", session.set_batch_size)):
            if name in changes:
                setter(changes[name])
    else:
        if "likelihood" in changes and "binarization" not in changes:
            changes["binarization"] = default_binarization(changes["likelihood"])
        config = TrainConfig().replace(**changes)
        if config.arch == "conv" and "hidden" in changes:
            print(f"{PROG}: note: --hidden sizes the MLP only; the conv model's layers are "
                  "fixed (trainer.conv)", file=sys.stderr)
        if config.threads is None and config.device == "cpu":
            config = config.replace(threads=default_threads(dataset.n_pixels, config))
        session = Session(dataset, config, ranks=ranks)

    seconds = epochs = None
    if args.epochs is not None:
        epochs = session.epoch + args.epochs
    else:
        seconds = session.seconds + (args.seconds or DEFAULT_SECONDS)
    every = args.checkpoint_every if ranks.is_main else None
    stopped = _run_with_progress(session, seconds, epochs, quiet=args.quiet,
                                 checkpoint=(args.out, every) if every else None)
    if not ranks.is_main:
        return 0

    # All held-out points up to FINAL_EVAL_POINTS (a fixed random subset beyond: a dataset
    # larger than memory must not be turned into floats whole).
    heldout_x = session.heldout_inputs(FINAL_EVAL_POINTS)
    heldout = session.evaluate(heldout_x)
    heldout_q_seconds = session.last_q_seconds
    n_train_eval = session.config.eval_max_points
    train = session.evaluate(session.train_inputs(n_train_eval),
                             session.train_indices(n_train_eval))
    out = save_checkpoint(session, args.out)
    spent = session.seconds
    record = {
        "heldout_elbo": heldout["elbo"], "heldout_recon": heldout["recon"],
        "heldout_kl": heldout["kl"], "train_elbo": train["elbo"], "train_recon": train["recon"],
        "train_kl": train["kl"], "samples_seen": session.samples_seen,
        "seconds": round(spent, 3), "train_seconds": round(spent, 3), "epochs": session.epoch,
        "steps": session.step_count,
        "samples_per_s": round(session.samples_seen / spent, 1) if spent > 0 else 0.0,
        "likelihood": session.config.likelihood, "binarization": session.config.binarization,
        "likelihood_label": likelihood_label(session.config.likelihood,
                                             session.config.binarization),
        "arch": session.config.arch, "channels": dataset.channels,
        "latent_dim": session.config.latent_dim,
        "precision": session.precision.name, "precision_reason": session.precision.reason,
        **_inference_fields(session.config),
        "heldout_q": heldout_q_description(session.config),
        "heldout_q_ms_per_point": round(1000 * heldout_q_seconds / len(heldout_x), 4),
        "world_size": ranks.world_size, "backend": ranks.backend,
        "dataset": dataset.source, "n_train": len(session.split.train),
        "n_heldout": len(session.split.heldout), "n_heldout_evaluated": len(heldout_x),
        "checkpoint": str(out),
        "units": "per-datapoint nats; ELBO higher is better; held-out terms in fp32",
    }
    if stopped:
        record["stopped"] = stopped
    # The whole command: loading, training, its evaluations and the checkpoint write.
    record["wall_seconds"] = round(time.perf_counter() - wall_start, 3)
    _emit(record)
    if session.stopped_reason is not None:
        print(f"{PROG}: {session.stopped_reason}", file=sys.stderr)
        return 1
    return 0


def load_with_progress(source: str, quiet: bool = False):
    """load_source with a progress bar on stderr (downloads in bytes, big folders in images);
    the app's command line uses it too."""
    from tqdm import tqdm

    download = source in KNOWN_DATASETS
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total or None, desc=f"loading {source}", file=sys.stderr,
                       unit="B" if download else "img", unit_scale=download,
                       unit_divisor=1024, leave=False, delay=0.5, disable=quiet)
        bar.update(done - bar.n)

    try:
        return load_source(source, progress=progress)
    finally:
        if bar is not None:
            bar.close()


def default_threads(n_pixels: int, config: TrainConfig) -> int | None:
    """One CPU thread for small models, torch's default otherwise.

    Splitting the tiny matmuls of a small model (the 8x8 digits: ~3.6 MFLOP per sample)
    across cores gains little (measured ~20k vs ~21k samples/s on 2 cores), and a thread
    that shares a core with any other busy process stalls every op of the step (measured
    collapses to <2k samples/s); a large model gains from every core.
    The conv model (millions of MACs per sample) always gains from every core.
    """
    if config.arch == "conv":
        return None
    enc = [n_pixels, *config.hidden, 2 * config.latent_dim]
    dec = [config.latent_dim, *reversed(config.hidden), n_pixels]
    macs = sum(a * b for sizes in (enc, dec) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    flops_per_sample = 6 * macs  # forward, and twice that backward
    return 1 if flops_per_sample < 5e6 else None


def _save_uninterrupted(session: Session, directory: str) -> None:
    """save_checkpoint with Ctrl+C and SIGTERM held until it is done, so a stop never
    leaves the checkpoint half replaced (the signal then acts right after)."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        save_checkpoint(session, directory)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        save_checkpoint(session, directory)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _run_with_progress(session: Session, seconds: float | None, epochs: int | None,
                       quiet: bool, checkpoint: tuple[str, float] | None = None) -> str | None:
    """Run with a progress bar on stderr; ``checkpoint=(DIR, SECONDS)`` also writes the
    checkpoint every SECONDS of wall time."""
    from tqdm import tqdm

    if seconds is not None:
        total, where = round(seconds, 1), lambda s: min(round(s.seconds, 1), total)
        bar = tqdm(total=total, unit="s", file=sys.stderr, disable=quiet, desc="train",
                   initial=where(session), bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s "
                   "[{elapsed}<{remaining}{postfix}]")
    else:
        total, where = epochs, lambda s: min(s.epoch, total)
        bar = tqdm(total=total, unit="epoch", file=sys.stderr, disable=quiet, desc="train",
                   initial=where(session))
    last = [0.0]
    saved = [time.monotonic()]

    def update(s: Session) -> None:
        if checkpoint is not None and time.monotonic() - saved[0] >= checkpoint[1]:
            _save_uninterrupted(s, checkpoint[0])
            saved[0] = time.monotonic()
        now = time.perf_counter()
        if now - last[0] < 0.2:
            return
        last[0] = now
        bar.n = where(s)
        held = s.heldout_history.arrays()["elbo"]
        if len(held):
            bar.set_postfix_str(f"held-out ELBO {held[-1]:.2f} nats", refresh=False)
        bar.refresh()

    stopped = None
    try:
        session.run(seconds=seconds, epochs=epochs, on_step=update)
    except KeyboardInterrupt:
        if session.ranks.distributed:  # ranks stop at different steps: save nothing
            raise
        stopped = "interrupted"  # keep what was learnt: evaluate and save as usual
    finally:
        bar.n = where(session)
        bar.close()
    return stopped or session.stopped_reason


# ----------------------------------------------------------------------------- encode

def cmd_encode(args) -> int:
    from .images import ImageError, prepare_image

    checkpoint = load_checkpoint(args.checkpoint)
    model = checkpoint.build_model()
    shape = checkpoint.image_shape
    fill = checkpoint.dataset_ref.get("fit_fraction")
    binarization = checkpoint.config.binarization
    failed = False
    for name in _image_files(args.files):
        try:
            x, notes = prepare_image(name, shape, checkpoint.channels, fill)
            x = x.reshape(1, -1)
        except (ImageError, DataError, OSError, ValueError) as e:
            failed = True
            _emit({"file": name, "error": str(e).splitlines()[0] if str(e) else repr(e)})
            continue
        _emit({"file": name, **_encode_one(model, torch.from_numpy(x), binarization,
                                           args.seed), "notes": notes})
    return 1 if failed else 0


def _image_files(paths: list[str]) -> list[str]:
    """Files as given; a folder as the image files the one walker finds in it (a folder
    that cannot be listed stays, so that reading it says why)."""
    from .folders import walk_folder

    files: list[str] = []
    for name in paths:
        try:
            files += [str(p) for p, _ in walk_folder(name).images()] if os.path.isdir(name) \
                else [name]
        except OSError:
            files.append(name)
    return files


@torch.no_grad()
def _encode_one(model, x: torch.Tensor, binarization: str, seed: int) -> dict:
    """mu and sigma of q(z|x) and its ELBO (averaged over ENCODE_DRAWS z samples) for the
    image's one fixed x (trainer.evidence: an image from outside the dataset is binarised
    with noise keyed by its pixels, so the same file always gives the same numbers)."""
    x = torch.from_numpy(evidence_input(x.numpy(), binarization))
    mu, logvar = model.encode(x)
    g = torch.Generator().manual_seed(seed)
    t = elbo_terms(model, x.expand(ENCODE_DRAWS, -1), g)
    return {"mu": mu[0].tolist(), "sigma": torch.exp(0.5 * logvar[0]).tolist(),
            "elbo": t.elbo.mean().item(), "recon": t.recon.mean().item(),
            "kl": t.kl.mean().item(), "binarization": binarization}


# --------------------------------------------------------------------------- evaluate

def _open_run(checkpoint_dir: str, source: str | None, doing: str):
    """The checkpoint and the dataset to use it on (its recorded one unless SOURCE is given),
    with a note on stderr when they differ."""
    checkpoint = load_checkpoint(checkpoint_dir)
    source = source or checkpoint.dataset_ref["source"]
    dataset = load_source(source)
    same = dataset.fingerprint() == checkpoint.dataset_ref["fingerprint"]
    if not same:
        print(f"{PROG}: note: {source} is not the dataset {checkpoint_dir} was trained on "
              f"(fingerprints differ); {doing}", file=sys.stderr)
    if tuple(dataset.image_shape) != checkpoint.image_shape:
        h, w = checkpoint.image_shape
        raise DataError(f"{source}: has {dataset.image_shape[0]}x{dataset.image_shape[1]} "
                        f"images, but {checkpoint_dir} was trained on {h}x{w}")
    if dataset.channels != checkpoint.channels:
        raise DataError(f"{source}: has {dataset.channels}-channel images, but "
                        f"{checkpoint_dir} was trained on {checkpoint.channels}-channel ones")
    return checkpoint, dataset, source, same


def cmd_evaluate(args) -> int:
    checkpoint, dataset, source, same = _open_run(args.checkpoint, args.source,
                                                  "evaluating on its held-out split")
    session = Session.from_checkpoint(checkpoint, dataset, device=args.device,
                                      threads=args.threads, strict=False)
    x = session.heldout_inputs(args.max_points)
    terms = session.evaluate(x)
    model = session.model.eval()
    g = torch.Generator(session.device).manual_seed(args.seed)
    runs = [iwae_log_px(model, x[i:i + 256], k=args.k, generator=g)
            for i in range(0, len(x), 256)]
    iwae = torch.cat([r.log_px for r in runs]).double()
    se = torch.cat([r.se for r in runs]).double()
    # The mean's standard error: the per-point estimates are independent draws.
    record = {"heldout_elbo": terms["elbo"], "heldout_recon": terms["recon"],
              "heldout_kl": terms["kl"], "iwae": iwae.mean().item(),
              "iwae_se": (se.pow(2).sum().sqrt() / len(se)).item(), "k": args.k,
              "gap_iwae_minus_elbo": iwae.mean().item() - terms["elbo"]}
    if session.config.latent_dim == 2:
        # The grid is decoded once per chunk of images; (256, grid^2) log-joints ~67 MB.
        log_px = torch.cat([grid_log_px(model, x[i:i + 256], n=args.grid)
                            for i in range(0, len(x), 256)])
        record.update(grid_log_px=log_px.mean().item(), grid=args.grid,
                      gap=log_px.mean().item() - terms["elbo"])
        if args.gaps > 0:
            record["train"] = mean_gaps(session, session.train_inputs(args.gaps),
                                        session.train_indices(args.gaps))
            record["heldout"] = mean_gaps(session, session.heldout_inputs(args.gaps))
    else:
        with torch.no_grad():
            mu, logvar = zip(*(model.encode(x[i:i + 256]) for i in range(0, len(x), 256)),
                             strict=True)
        mu, logvar = torch.cat(mu).cpu().numpy(), torch.cat(logvar).cpu().numpy()
        units = active_units(mu)
        record.update(grid_log_px=None,
                      grid_reason=f"the exact grid log p(x) integrates over a 2-D latent; "
                                  f"this model has {session.config.latent_dim} dimensions, "
                                  "so iwae (with iwae_se) is the log p(x) estimate",
                      active_units=int(units.active.sum()),
                      active_threshold=units.threshold,
                      per_dim_kl=per_dim_kl(mu, logvar).tolist())
    record.update(_inference_fields(session.config),
                  heldout_q=heldout_q_description(session.config),
                  heldout_q_ms_per_point=round(1000 * session.last_q_seconds / len(x), 4),
                  iwae_proposal="the encoder's q_phi(z|x)")
    record.update(n_points=len(x), dataset=str(source), same_dataset=same,
                  likelihood=session.config.likelihood,
                  binarization=session.config.binarization,
                  likelihood_label=likelihood_label(session.config.likelihood,
                                                    session.config.binarization),
                  arch=session.config.arch, channels=dataset.channels,
                  latent_dim=session.config.latent_dim,
                  units="per-datapoint nats; higher is better; gap = log p(x) - ELBO >= 0; "
                        "iwae_se: standard error of the mean IWAE estimate (Monte Carlo); "
                        "per_dim_kl: mean KL(q(z_d|x) || N(0, 1)) per dimension, nats; "
                        "active_units: dimensions with Var_x(E_q[z_d]) > active_threshold")
    _emit(record)
    return 0


# ---------------------------------------------------------------------------- inspect

def cmd_inspect(args) -> int:
    checkpoint, dataset, _, _ = _open_run(args.checkpoint, args.source,
                                          "inspecting its datapoint")
    config = checkpoint.config
    if config.latent_dim != 2:
        raise ConfigError(f"{args.checkpoint}: inspect needs a 2-D latent (the exact "
                          f"posterior is a grid), this model has {config.latent_dim}")
    if not 0 <= args.index < len(dataset):
        raise DataError(f"--index {args.index} is out of range: {dataset.source} has "
                        f"{len(dataset)} images (0..{len(dataset) - 1})")
    x = dataset_evidence(dataset, config.binarization, [args.index])[0]
    point = inspect_point(checkpoint.build_model(), x, n=INSPECT_GRID_N, iwae_k=INSPECT_IWAE_K,
                          optimise=args.optimise)
    _emit(inspect_record(point, args.index, dataset, config.binarization))
    return 0


def inspect_record(point, index: int, dataset, binarization: str) -> dict:
    """The Inspector's numbers for one datapoint as a JSON-ready dict."""
    e = point.encoder
    label = None if dataset.labels is None else int(dataset.labels[index])
    record = {"index": index, "label": label, "mu": e.mean.tolist(), "sigma": e.sigma.tolist(),
              "elbo": e.elbo, "recon": e.recon, "kl": e.kl, "log_px": point.log_px,
              "iwae": point.iwae, "iwae_se": point.iwae_se, "iwae_k": point.iwae_k,
              "inference_gap": point.inference_gap, "posterior_shape": point.shape}
    if point.optimum is not None:
        q = point.optimum.diagonal
        record.update(q_star_mu=q.mean.tolist(), q_star_sigma=q.sigma.tolist(),
                      elbo_star=q.elbo, amortization_gap=point.amortisation_gap,
                      approximation_gap=point.approximation_gap,
                      elbo_full_covariance=point.optimum.full.elbo)
    record.update(binarization=binarization,
                  units="nats per datapoint; ELBO, log p(x), IWAE: higher is better; KL and "
                        "the gaps >= 0; IWAE is a stochastic lower bound, <= log p(x) on "
                        "average, iwae_se its standard error")
    return record


# --------------------------------------------------------------------- export-latents

def cmd_export_latents(args) -> int:
    from tqdm import tqdm

    out = Path(args.out)
    if out.is_dir():
        raise DataError(f"{out}: is a folder; --out names the CSV file to write")
    if not out.parent.is_dir():  # before the work, not after it
        raise DataError(f"{out.parent}: no such folder for --out")
    checkpoint, dataset, _, _ = _open_run(args.checkpoint, args.source,
                                          "exporting its latents")
    model = FrozenVAE(checkpoint.build_model(), checkpoint.image_shape,
                      checkpoint.config.binarization)
    rows_job = iter_latent_rows(dataset, model)
    with tqdm(total=len(dataset), unit="img", file=sys.stderr, disable=args.quiet,
              desc="latents") as bar:
        while True:
            try:
                done, _ = next(rows_job)
            except StopIteration as finished:
                rows = finished.value
                break
            bar.update(done - bar.n)
    out = write_latents_csv(args.out, rows, checkpoint.config.latent_dim)
    print(f"{PROG}: wrote {len(rows)} rows to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
