"""The training engine: one minibatch per ``step()``, so any thread can own the loop.

Data stays in memory as a tensor on the training device (uint8 where the dataset is),
minibatches are gathered by index, and binarisation happens on the device; there is
no DataLoader and no per-item Python work. A large memory-mapped dataset stays on disk:
each minibatch's rows are read from the map. Several ranks (torchrun) each train on their
shard of every epoch; see trainer.distributed.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .architectures import build_vae
from .config import ConfigError, TrainConfig
from .data import ImageDataset, Split, split_indices
from .distributed import SINGLE, ElboStep, Ranks, shard
from .elbo import elbo_terms, training_loss
from .evidence import evidence_tensor
from .frozen import FrozenVAE
from .gaps import GapCurveRow
from .history import History
from .inference import DutyCycle, heldout_log_px
from .inference_modes import (
    LIVE_HELDOUT_POINTS,
    fit_from_prior,
    heldout_q_description,
    make_inference,
    reparameterised_terms,
)
from .latent_cache import LatentCache
from .model import VAE
from .precision import PrecisionChoice, choose_precision, model_shape, onednn_bf16_native

TRAIN_COLUMNS = ("step", "samples", "seconds", "epoch", "elbo", "recon", "kl")
HELDOUT_COLUMNS = ("step", "samples", "seconds", "epoch", "elbo", "recon", "kl")
# The exact held-out log p(x) (2-D latents) beside the ELBO of the same points: the gap
# between the two curves is the mean inference gap, KL(q || p(z|x)).
LOGPX_COLUMNS = ("step", "samples", "seconds", "epoch", "log_px", "elbo", "resolved")
# The mean amortization gap ELBO(q*) - ELBO(q) (nats, >= 0) of the run's own q over fixed
# subsets of GAP_CURVE_POINTS training and held-out points (2-D latents, trainer.gaps), on a
# duty cycle of at most GAP_CURVE_SHARE of the training time, beside the log p(x) curve's,
# a few points at a time between steps (trainer.gaps.GapCurveRow).
GAP_COLUMNS = ("step", "samples", "seconds", "epoch", "train_amortization_gap",
               "heldout_amortization_gap")
GAP_CURVE_POINTS = 16
GAP_CURVE_SHARE = 0.03
# Not before this much training: one evaluation of the 32 points takes 1 to 4 s at MNIST's
# size on a CPU, which at the log p(x) curve's 2 s took longer than the training before it
# (and all of a 10 s run's evaluation budget).
GAP_CURVE_FIRST_SECONDS = 10.0
# Fixed subsets of the held-out and training sets are drawn with this seed (and the next):
# a property of the split, not of the model's seed.
SUBSET_SEED = 1
# Keep each datapoint's fixed dynamic binarisation (1 byte per pixel) up to this size.
EVIDENCE_CACHE_BYTES = 512 * 2**20
# The periodic held-out evaluation takes at most this share of the training time: every
# eval_every_seconds for a fast model, less often for one whose evaluation is slow (a conv
# model evaluates 2,048 points in seconds on a CPU). On one thread an MLP's took 110-150 ms
# at MNIST's size: every 2 to 3 s then (all the live evaluations total ~10 %).
HELDOUT_SHARE = 0.05
# How often the last finite weights are copied aside for the divergence guard, and the most
# of the training time the copy (and its finiteness check) may take: a conv model's step is
# slow enough that a copy every second took ~17 % of it.
GUARD_EVERY_SECONDS = 2.0
GUARD_SHARE = 0.03
# Train curve rows are means over this much training time.
RECORD_EVERY_SECONDS = 0.1
# A memory-mapped dataset up to this size is copied into memory (faster minibatches);
# a larger one stays on disk and each minibatch reads its rows from the map.
IN_MEMORY_LIMIT = 1 << 30


@dataclass
class Progress:
    """Cheap counters and curves, numpy copies, for frequent updates (10-20 Hz)."""

    step: int
    epoch: int
    epoch_progress: float  # fraction of the current epoch done, 0..1
    samples_seen: int
    seconds: float
    samples_per_second: float
    paused: bool
    stopped_reason: str | None
    train: dict[str, np.ndarray]
    heldout: dict[str, np.ndarray]
    logpx: dict[str, np.ndarray]  # exact held-out log p(x) beside the ELBO (2-D latents)
    # The mean amortization gap on fixed train and held-out subsets (GAP_COLUMNS, 2-D).
    gaps: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclass
class Snapshot:
    """Everything the GUI draws, as copies owned by the receiver."""

    version: int
    progress: Progress
    mu: np.ndarray  # (N, latent_dim), every datapoint in dataset order
    sigma: np.ndarray  # (N, latent_dim)
    model: FrozenVAE
    config: TrainConfig
    # Semi-amortized runs only (None otherwise): the refined lambda_i beside f_phi(x_i),
    # which mu and sigma hold. In free-form runs mu and sigma are the table's lambda_i, and
    # NaN for held-out points (they have none: fit one with Session.fit_q).
    refined_mu: np.ndarray | None = None
    refined_sigma: np.ndarray | None = None


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} was asked for but torch sees no CUDA GPU")
    if name.startswith("cuda:") and name[5:].isdigit() and \
            int(name[5:]) >= torch.cuda.device_count():
        raise ConfigError(f"device: {name!r} was asked for but torch sees "
                          f"{torch.cuda.device_count()} CUDA GPU(s)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device: 'mps' was asked for but it is not available")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise ConfigError(f"device: unknown device {name!r} (use cpu, cuda or mps)")
    return torch.device(name)


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 matmuls run natively (not emulated) on this device."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return onednn_bf16_native()
    return False


def precision_choice(name: str, device: torch.device, shape: tuple[int, ...] = (128, 784, 512)
                     ) -> PrecisionChoice:
    """What ``precision`` means here, and why: "auto" races bf16 against fp32 on the
    model's shape once per machine (trainer.precision), so it never picks the slower."""
    if name == "bf16":
        return PrecisionChoice("bf16", "asked for")
    if name == "fp32":
        return PrecisionChoice("fp32", "asked for")
    return choose_precision(shape, device)


def resolve_precision(name: str, device: torch.device, shape: tuple[int, ...] = (128, 784, 512)
                      ) -> torch.dtype | None:
    """The autocast dtype for training matmuls, or None for plain fp32."""
    return precision_choice(name, device, shape).dtype


def make_adam(params, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one: one pass over all parameters
    instead of a dozen elementwise ops per tensor (measured ~15-30 % of a CPU step)."""
    params = list(params)
    if device.type in ("cpu", "cuda"):
        return torch.optim.Adam(params, lr=lr, fused=True)
    return torch.optim.Adam(params, lr=lr)


def checkpoint_split(checkpoint, dataset: ImageDataset, same_data: bool) -> Split:
    """The held-out split a resumed run keeps: the indices the checkpoint saved (on its own
    dataset), else the split its run.json records (older checkpoints, or other data)."""
    recorded = checkpoint.split  # fraction and seed checked by load_checkpoint
    fraction, seed = float(recorded["fraction"]), int(recorded["seed"])
    heldout = checkpoint.engine_state.get("heldout")
    if same_data and heldout is not None:
        held = np.sort(heldout.numpy().astype(np.int64))
        train = np.setdiff1d(np.arange(len(dataset)), held)
        return Split(train=train, heldout=held, fraction=fraction, seed=seed)
    return split_indices(len(dataset), fraction, seed)


def available_devices() -> list[str]:
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


class Session:
    def __init__(self, dataset: ImageDataset, config: TrainConfig | None = None,
                 split: Split | None = None, ranks: Ranks | None = None,
                 pixels_in_memory: bool | None = None):
        """``split``: the held-out split to keep (a resumed run's); by default one is drawn
        from ``config.seed``. It is data, kept through resets and checkpoints, never
        redrawn from a later seed. ``ranks``: this process's place among torchrun's
        training processes (default: one process). ``pixels_in_memory``: copy the pixels
        into a tensor (default: unless the dataset is memory-mapped and larger than
        IN_MEMORY_LIMIT)."""
        self.dataset = dataset
        self.config = config or TrainConfig()
        self.ranks = ranks or SINGLE
        if self.config.inference != "amortized" and self.ranks.distributed:
            raise ConfigError(f"inference: {self.config.inference!r} runs in one process "
                              "(only amortized inference trains on several ranks)")
        if self.config.batch_size % self.ranks.world_size:
            raise ConfigError(f"batch_size: {self.config.batch_size} does not split evenly "
                              f"over {self.ranks.world_size} ranks")
        self.device = resolve_device(self.config.device)
        if self.config.threads is not None:
            # Process-wide in torch: the GUI sets 1 so the event loop keeps a core.
            torch.set_num_threads(self.config.threads)
        self.split: Split = split or split_indices(len(dataset), self.config.heldout_fraction,
                                                   self.config.seed)
        if pixels_in_memory is None:
            pixels_in_memory = (not dataset.memory_mapped
                                or dataset.pixels.nbytes <= IN_MEMORY_LIMIT)
        self._pixels = None  # None: minibatches are read from the memory map
        if pixels_in_memory:
            # A memory map is read-only: copy it into memory; an array is used as it is.
            pixels = (np.array(dataset.pixels) if dataset.memory_mapped
                      else np.ascontiguousarray(dataset.pixels))
            pixels = torch.from_numpy(pixels).reshape(len(dataset), -1)
            self._pixels = pixels.to(self.device)
        self._scale = float(dataset.scale)
        self._train_idx = torch.from_numpy(self.split.train).to(self.device)
        self._evidence: tuple[torch.Tensor, torch.Tensor] | None = None  # dynamic x, lazily
        self.latents = LatentCache(len(dataset), self.config.latent_dim,
                                   refined=self.config.inference == "semi")  # for snapshots
        self.paused = False
        self.stop_requested = False
        self.stopped_reason: str | None = None
        self._build()

    # ------------------------------------------------------------------ setup
    def _build(self) -> None:
        """(Re)create the model, optimiser, counters and history from the config."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        self.model: VAE = build_vae(cfg, self.dataset.image_shape,
                                    self.dataset.channels).to(self.device)
        self.optimizer = make_adam(self.model.parameters(), cfg.lr, self.device)
        # None (amortized), or the free-form table or the semi-amortized refinement.
        self.inference = make_inference(cfg, self._train_idx.sort().values, self.device)
        # The training objective; with several ranks wrapped in DDP, which all-reduces
        # (averages) the gradients during backward.
        self._objective = self.ranks.wrap(ElboStep(self.model))
        self._stop_vote = False  # this rank wants the run to end (see run())
        self._stop_agreed = False  # some rank wanted it at the last step
        if cfg.arch == "conv" and cfg.precision == "auto":
            # The race times the MLP's matmuls; convolutions were never raced, so stay safe.
            self.precision = PrecisionChoice("fp32", "auto: the conv model trains in fp32 "
                                             "(the bf16 race times MLP layers only)")
        else:
            self.precision = precision_choice(
                cfg.precision, self.device,
                model_shape(cfg.batch_size // self.ranks.world_size, self.dataset.n_pixels,
                            cfg.hidden))
        self._autocast_dtype = self.precision.dtype
        self._gen = torch.Generator(self.device).manual_seed(cfg.seed)
        # Free and semi modes fit or refine every scored point's q: fewer points live.
        live = (cfg.eval_max_points if self.inference is None
                else min(cfg.eval_max_points, LIVE_HELDOUT_POINTS))
        self._heldout_x = self.heldout_inputs(live)
        self.step_count = 0
        self.epoch = 0
        self.samples_seen = 0
        self.seconds = 0.0  # training wall time, excluding pauses and evaluation
        self._set_order(self._new_order())
        self._cursor = 0
        self._window = [0.0, 0.0, 0.0, 0]  # sums of elbo, recon, kl; row count
        self._window_start = 0.0
        # Free and semi runs fit or refine every held-out q they score: not at step 1, where
        # fitting 256 784-pixel points from the prior once took 26 s.
        self._last_eval = -math.inf if self.inference is None else 0.0
        self._eval_cost = 0.0  # seconds the last held-out evaluation took
        self._guard_cost = 0.0  # seconds the last copy for the divergence guard took
        self._good_state = None
        self._good_at = -math.inf
        self.latents.invalidate()
        self._rate = (time.perf_counter(), 0, 0.0)  # for samples/s
        self.train_history = History(TRAIN_COLUMNS, cfg.history_limit)
        self.heldout_history = History(HELDOUT_COLUMNS, cfg.history_limit)
        self.logpx_history = History(LOGPX_COLUMNS, cfg.history_limit)
        self._logpx_x = None  # the fixed subset, prepared on first use
        self.gaps_history = History(GAP_COLUMNS, cfg.history_limit)
        self._gap_sets = None  # the fixed subsets, prepared on first use
        self._gap_row: GapCurveRow | None = None  # the row being measured, slice by slice
        self.gap_curve_seconds = 0.0  # time the gap curve took, for its budget
        # Live with the exact log p(x) curve (logpx_points > 0 turns both on).
        self._gap_cycle = (DutyCycle(GAP_CURVE_SHARE, first_at=GAP_CURVE_FIRST_SECONDS)
                           if self._logpx_enabled() else None)
        # Not at step 1: an untrained model's posteriors are broad and slow to grid.
        self._logpx_cycle = (DutyCycle(cfg.logpx_share, first_at=2.0)
                             if self._logpx_enabled() else None)
        self.version = 0
        self.stopped_reason = None

    # ------------------------------------------------------------ checkpoints
    @classmethod
    def from_checkpoint(cls, checkpoint, dataset: ImageDataset, *, device: str | None = None,
                        threads: int | None = None, strict: bool = True,
                        ranks: Ranks | None = None) -> Session:
        """A session that continues ``checkpoint`` (see trainer.checkpoint) on ``dataset``.

        With the recorded dataset (same fingerprint) training resumes exactly: same weights,
        Adam state, history, counters, sampling RNG and epoch order. A different dataset of
        the same image size raises CheckpointError when ``strict``; otherwise the weights,
        optimiser and history carry over and a fresh epoch order starts.
        """
        from .checkpoint import CheckpointError  # checkpoint.py imports this module

        config = checkpoint.config
        changes = {k: v for k, v in (("device", device), ("threads", threads)) if v is not None}
        if changes:
            config = config.replace(**changes)
        shape = tuple(checkpoint.dataset_ref["image_shape"])
        if tuple(dataset.image_shape) != shape:
            raise CheckpointError(f"{checkpoint.path}: trained on {shape[0]}x{shape[1]} images, "
                                  f"but {dataset.source} has {dataset.image_shape[0]}x"
                                  f"{dataset.image_shape[1]}")
        channels = int(checkpoint.dataset_ref.get("channels", 1))
        if dataset.channels != channels:
            kind = {1: "grey", 3: "colour (RGB)"}
            raise CheckpointError(f"{checkpoint.path}: trained on {kind[channels]} images, "
                                  f"but {dataset.source} is {kind[dataset.channels]}")
        same_data = dataset.fingerprint() == checkpoint.dataset_ref["fingerprint"]
        if strict and not same_data:
            raise CheckpointError(f"{checkpoint.path}: {dataset.source} is not the dataset this "
                                  "checkpoint was trained on (fingerprints differ)")
        try:
            session = cls(dataset, config, ranks=ranks,
                          split=checkpoint_split(checkpoint, dataset, same_data))
        except ConfigError as e:
            if device is not None:
                raise  # the caller's choice of device, not the checkpoint's
            raise CheckpointError(f"{checkpoint.path}: {e}") from None
        session._restore(checkpoint, same_data)
        return session

    def _restore_free_table(self, checkpoint, same_data: bool) -> None:
        """A free-form run's table belongs to its training points: refused (one line) on a
        table of another shape or on data other than the run's."""
        from .checkpoint import CheckpointError  # checkpoint.py imports this module

        state = checkpoint.free_state
        want = (len(self.split.train), 2 * self.config.latent_dim)
        if state is None or tuple(state["table"].shape) != want:
            got = None if state is None else list(state["table"].shape)
            raise CheckpointError(f"{checkpoint.path}: the free-form table has shape {got}, "
                                  f"but {self.dataset.source}'s split needs {list(want)} "
                                  "(one row of 2 x latent_dim per training point)")
        if not same_data:
            raise CheckpointError(f"{checkpoint.path}: a free-form run's lambda table belongs "
                                  f"to its own training points; {self.dataset.source} is other "
                                  "data")
        self.inference.load_tensors(state)

    def _restore(self, checkpoint, same_data: bool) -> None:
        self.model.load_state_dict(checkpoint.model_state)
        self.optimizer.load_state_dict(checkpoint.optimizer_state)
        if self.config.inference == "free":
            self._restore_free_table(checkpoint, same_data)
        c = checkpoint.counters
        self.step_count, self.epoch = int(c["step"]), int(c["epoch"])
        self.samples_seen, self.seconds = int(c["samples"]), float(c["seconds"])
        self._last_eval = self.seconds
        self._window_start = self.seconds
        self._rate = (time.perf_counter(), self.samples_seen, self.seconds)
        self.train_history = History.from_dict(checkpoint.history["train"])
        self.heldout_history = History.from_dict(checkpoint.history["heldout"])
        if "logpx" in checkpoint.history:
            self.logpx_history = History.from_dict(checkpoint.history["logpx"])
        if "gaps" in checkpoint.history:
            self.gaps_history = History.from_dict(checkpoint.history["gaps"])
        for cycle in (self._logpx_cycle, self._gap_cycle):
            if cycle is not None:
                cycle.next_at = self.seconds
        from .checkpoint import CheckpointError  # checkpoint.py imports this module

        order = checkpoint.engine_state.get("order")
        rng = checkpoint.engine_state.get("rng_state")
        if same_data and order is not None and len(order) == len(self._train_idx):
            if not torch.equal(order.sort().values, self._train_idx.cpu().sort().values):
                raise CheckpointError(f"{checkpoint.path}: engine.order is not a permutation "
                                      "of this split's training indices")
            # A sampling RNG state of another device kind (CUDA's 16-byte Philox on a CPU
            # run) cannot be set: continue with a fresh, seeded epoch order instead.
            if rng is not None and rng.numel() == self._gen.get_state().numel():
                try:
                    self._gen.set_state(rng)
                except RuntimeError as e:  # e.g. a Philox offset CUDA refuses
                    raise CheckpointError(f"{checkpoint.path}: engine.rng_state is not a "
                                          f"valid RNG state ({str(e).splitlines()[0]})") from None
                self._set_order(order.to(self.device))
                # The cursor counts positions of the epoch's order taken by all ranks together.
                self._cursor = -(-int(c["cursor"]) // self.ranks.world_size)
        self.version += 1

    def engine_state(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """What besides weights and Adam state an exact resume needs: tensors (sampling RNG
        state, this epoch's order over the whole training split, the held-out indices) and
        counters (the cursor in that order, summed over ranks, so any number of ranks can
        resume it)."""
        tensors = {"rng_state": self._gen.get_state().cpu(), "order": self._epoch_order.cpu(),
                   "heldout": torch.from_numpy(self.split.heldout.astype(np.int64))}
        counters = {"step": self.step_count, "epoch": self.epoch, "samples": self.samples_seen,
                    "seconds": self.seconds, "cursor": self._cursor * self.ranks.world_size}
        return tensors, counters

    def heldout_inputs(self, max_points: int | None = None) -> torch.Tensor:
        """Held-out datapoints as every number scores them: each image's one fixed x
        (trainer.evidence). ``max_points`` takes a fixed random subset, chosen by the
        split, not by the model's seed, so runs with different seeds score the same x."""
        return self._fixed_inputs(self.split.heldout, max_points, SUBSET_SEED)

    def train_inputs(self, max_points: int | None = None) -> torch.Tensor:
        """Training datapoints prepared like ``heldout_inputs``: to compare train and
        held-out ELBO on equal terms (same precision, the same fixed x)."""
        return self._fixed_inputs(self.split.train, max_points, SUBSET_SEED + 1)

    def heldout_indices(self, max_points: int | None = None) -> torch.Tensor:
        """The dataset indices of ``heldout_inputs(max_points)``'s rows."""
        return torch.from_numpy(self._fixed_indices(self.split.heldout, max_points,
                                                    SUBSET_SEED)).to(self.device)

    def train_indices(self, max_points: int | None = None) -> torch.Tensor:
        """The dataset indices of ``train_inputs(max_points)``'s rows."""
        return torch.from_numpy(self._fixed_indices(self.split.train, max_points,
                                                    SUBSET_SEED + 1)).to(self.device)

    @staticmethod
    def _fixed_indices(idx: np.ndarray, max_points: int | None, seed: int) -> np.ndarray:
        if max_points is not None and len(idx) > max_points:
            idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
        return idx

    def _fixed_inputs(self, idx: np.ndarray, max_points: int | None, seed: int) -> torch.Tensor:
        idx = self._fixed_indices(idx, max_points, seed)
        return self.datapoint_inputs(torch.from_numpy(idx).to(self.device))

    def datapoint_inputs(self, idx: torch.Tensor) -> torch.Tensor:
        """The fixed x of the datapoints at ``idx`` (trainer.evidence's rule), on the device.

        Dynamic binarisations are kept once made (one byte per pixel, while that fits
        EVIDENCE_CACHE_BYTES): their hash costs ~2.5x an encoder pass on 784 pixels, and the
        plane re-encodes every datapoint again and again."""
        b = self.config.binarization
        n, n_pixels = len(self.dataset), self.dataset.n_pixels
        if b != "dynamic" or n * n_pixels > EVIDENCE_CACHE_BYTES:
            return evidence_tensor(self._gather(idx).float() * self._scale, b, idx)
        if self._evidence is None:
            self._evidence = (torch.zeros((n, n_pixels), dtype=torch.uint8, device=self.device),
                              torch.zeros(n, dtype=torch.bool, device=self.device))
        cache, ready = self._evidence
        todo = idx[~ready[idx]]
        if len(todo):
            x = evidence_tensor(self._gather(todo).float() * self._scale, b, todo)
            cache[todo] = x.to(torch.uint8)
            ready[todo] = True
        return cache[idx].float()

    def _gather(self, idx: torch.Tensor | np.ndarray | slice) -> torch.Tensor:
        """Rows of flattened pixels on the device, from the in-memory tensor or, for a
        dataset left on disk, read from its memory map (only these rows are read)."""
        if self._pixels is not None:
            return self._pixels[torch.from_numpy(idx).to(self.device)
                                if isinstance(idx, np.ndarray) else idx]
        source = self.dataset.pixels
        if isinstance(idx, slice):
            px = np.array(source[idx])
        else:
            idx = idx.cpu().numpy() if torch.is_tensor(idx) else idx
            ascending = np.argsort(idx, kind="stable")  # read in file order, keep batch order
            px = np.empty((len(idx), *source.shape[1:]), source.dtype)
            px[ascending] = source[idx[ascending]]
        return torch.from_numpy(px.reshape(len(px), -1)).to(self.device)

    def _to_model_input(self, px: torch.Tensor, gen: torch.Generator,
                        rows: tuple[int, int] = (0, 1)) -> torch.Tensor:
        """Pixels as the model's x. ``rows``: px is one rank's rows of a larger minibatch;
        the binarisation noise is drawn for all of it and those rows kept."""
        x = px.float() * self._scale
        b = self.config.binarization
        if b == "dynamic":
            start, step = rows
            noise = torch.rand((len(x) * step, *x.shape[1:]), generator=gen, device=x.device)
            return (noise[start::step] < x).float()
        if b == "threshold":
            return (x > 0.5).float()
        return x

    def _new_order(self) -> torch.Tensor:
        perm = torch.randperm(len(self._train_idx), generator=self._gen, device=self.device)
        return self._train_idx[perm]

    def _set_order(self, epoch_order: torch.Tensor) -> None:
        """This epoch's order of the training split, and this rank's shard of it."""
        self._epoch_order = epoch_order
        self._order = shard(epoch_order, self.ranks)

    # --------------------------------------------------------------- training
    def step(self) -> dict[str, float] | None:
        """Train on one minibatch. Returns its mean terms, or None when the divergence
        guard stopped the run (see ``stopped_reason``)."""
        if self.stopped_reason is not None:
            return None
        t0 = time.perf_counter()
        if self.seconds - self._good_at >= max(GUARD_EVERY_SECONDS,
                                               self._guard_cost / GUARD_SHARE):
            self._save_good_state()
            self._guard_cost = time.perf_counter() - t0
        world = self.ranks.world_size
        bs = self.config.batch_size // world  # this rank's part of the minibatch
        idx = self._order[self._cursor:self._cursor + bs]
        rows = self.ranks.shard_rows
        if self.config.inference == "free":
            # A row of the free table is the q of one x_i: train on the fixed x every number
            # scores, not a fresh binarisation each visit (trainer.inference_modes).
            x = self.datapoint_inputs(idx)
        else:
            x = self._to_model_input(self._gather(idx), self._gen, rows)
        with torch.autocast(self.device.type, dtype=self._autocast_dtype or torch.float32,
                            enabled=self._autocast_dtype is not None):
            if self.inference is None:
                terms, extra = self._objective(x, self._gen, rows), None
            else:
                terms, extra = self.inference.terms(self.model, x, idx, self._gen,
                                                    self.config.beta)
        loss = training_loss(terms, self.config.beta)
        if extra is not None:
            loss = loss + extra
        # One device sync per step for all the numbers (each .item() is a sync on GPU); with
        # several ranks one all-reduce sums them, and the stop votes, over the ranks.
        stats = [loss.detach(), terms.elbo.detach().sum(), terms.recon.detach().sum(),
                 terms.kl.detach().sum()]
        if world > 1:
            stats.append(loss.new_tensor(float(self._stop_vote)))
        loss_sum, elbo, recon, kl, *votes = self.ranks.reduce_sum(torch.stack(stats)).tolist()
        loss_value = loss_sum / world
        self._stop_agreed = bool(votes) and votes[0] > 0
        if not math.isfinite(loss_value):
            self._diverged(loss_value)
            return None
        self.optimizer.zero_grad(set_to_none=True)
        if self.inference is not None:
            self.inference.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.inference is not None:
            self.inference.step()

        n = len(idx) * world  # every rank's shard has the same length
        self.step_count += 1
        self.samples_seen += n
        self._cursor += len(idx)
        if self._cursor >= len(self._order):
            self._cursor = 0
            self.epoch += 1
            self._set_order(self._new_order())
        self.seconds += time.perf_counter() - t0
        self._record(elbo, recon, kl, n)
        # Held-out numbers come from rank 0 alone, over exactly the held-out points.
        main = self.ranks.is_main
        if main and self.seconds - self._last_eval >= max(self.config.eval_every_seconds,
                                                          self._eval_cost / HELDOUT_SHARE):
            self.evaluate_heldout()
        if main and self._logpx_cycle is not None and self._logpx_cycle.due(self.seconds):
            self.evaluate_logpx()
        if main and self._gap_cycle is not None and self._gap_cycle.due(self.seconds):
            self._advance_gap_curve()
        return {"elbo": elbo / n, "recon": recon / n, "kl": kl / n}

    def _record(self, elbo: float, recon: float, kl: float, n: int) -> None:
        w = self._window
        w[0] += elbo
        w[1] += recon
        w[2] += kl
        w[3] += n
        if self.seconds - self._window_start >= RECORD_EVERY_SECONDS:
            self.train_history.append(**self._counters(), elbo=w[0] / w[3], recon=w[1] / w[3],
                                      kl=w[2] / w[3])
            self._window = [0.0, 0.0, 0.0, 0]
            self._window_start = self.seconds
            self.version += 1

    def _counters(self) -> dict[str, float]:
        return {"step": self.step_count, "samples": self.samples_seen,
                "seconds": self.seconds,
                "epoch": self.epoch + self._cursor / max(1, len(self._order))}

    def evaluate_heldout(self) -> dict[str, float]:
        """Held-out ELBO terms on the fixed evaluation subset, appended to the history."""
        t0 = time.perf_counter()
        terms = self.evaluate(self._heldout_x)
        if len(self.heldout_history):  # the first one pays one-off warm-up costs: not counted
            self._eval_cost = time.perf_counter() - t0
        self._last_eval = self.seconds
        self.heldout_history.append(**self._counters(), **terms)
        self.version += 1
        return terms

    def _logpx_enabled(self) -> bool:
        return self.config.latent_dim == 2 and self.config.logpx_points > 0

    def evaluate_logpx(self) -> dict[str, float]:
        """Mean exact log p(x) (grid, see trainer.inference.heldout_log_px) and the ELBO of
        the same fixed held-out subset, appended to ``logpx_history``. Scheduled by a duty
        cycle so it takes at most ``config.logpx_share`` of the training time."""
        if not self._logpx_enabled():
            raise ValueError("the exact log p(x) needs a 2-D latent")
        if self._logpx_x is None:
            self._logpx_x = self.heldout_inputs(self.config.logpx_points)
        t0 = time.perf_counter()
        self.model.eval()
        est = heldout_log_px(self.model, self._logpx_x)
        self.model.train()
        row = {"log_px": est.mean_log_px, "elbo": est.mean_elbo,
               "resolved": float(est.resolved.mean())}
        self.logpx_history.append(**self._counters(), **row)
        if self._logpx_cycle is not None:
            self._logpx_cycle.ran(self.seconds, time.perf_counter() - t0)
        self.version += 1
        return row

    def gap_curve_points(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                        torch.Tensor]:
        """The gap curve's fixed subsets: train x and indices, held-out x and indices."""
        if self._gap_sets is None:
            n = GAP_CURVE_POINTS
            self._gap_sets = (self.train_inputs(n), self.train_indices(n),
                              self.heldout_inputs(n), self.heldout_indices(n))
        return self._gap_sets

    def evaluate_gap_curve(self) -> dict[str, float]:
        """The mean amortization gap (nats, >= 0) of this run's own q on the fixed train and
        held-out subsets (``gap_curve_points``), as trainer.gaps measures it, appended to
        ``gaps_history``: all of a row of the model now (a row training had begun is
        dropped)."""
        if self.config.latent_dim != 2:
            raise ValueError("the amortization gap curve needs a 2-D latent")
        self._gap_row = None
        while (row := self._advance_gap_curve()) is None:
            pass
        return row

    def _advance_gap_curve(self) -> dict[str, float] | None:
        """Measure the next slice of the gap curve's row, beginning one on a copy of the
        model if none is under way; the row once it is complete, else None. Each slice
        taking c seconds waits c / GAP_CURVE_SHARE of training before the next."""
        t0 = time.perf_counter()
        if self._gap_row is None:
            x_train, i_train, x_held, _ = self.gap_curve_points()
            self._gap_row = GapCurveRow(self, {"train": (x_train, i_train),
                                               "heldout": (x_held, None)}, self._counters())
        job = self._gap_row
        if not job.done:
            job.advance()
        cost = time.perf_counter() - t0
        self.gap_curve_seconds += cost
        if self._gap_cycle is not None:
            self._gap_cycle.ran(self.seconds, cost, part=not job.done)
        if not job.done:
            return None
        self._gap_row = None
        row = job.row()
        self.gaps_history.append(**job.counters, **row)
        self.version += 1
        return row

    # ------------------------------------------------------- divergence guard
    def _save_good_state(self) -> None:
        """Copy aside the weights, Adam state and everything that counts them (counters,
        epoch order, sampling RNG, curves), but only when every weight and Adam tensor is
        finite: a copy of non-finite weights would be 'restored' after a divergence."""
        self._good_at = self.seconds
        model_state = self.model.state_dict()
        optim_state = self.optimizer.state_dict()
        tensors = [*model_state.values(),
                   *(v for s in optim_state["state"].values() for v in s.values()
                     if torch.is_tensor(v))]
        if not all(bool(torch.isfinite(t).all()) for t in tensors):
            return  # keep the previous (finite) copy
        self._good_state = {
            "model": copy.deepcopy(model_state), "optimizer": copy.deepcopy(optim_state),
            "counters": (self.step_count, self.epoch, self.samples_seen, self.seconds,
                         self._cursor, self._last_eval),
            "order": self._epoch_order.clone(), "rng": self._gen.get_state(),
            "history": [h.copy() for h in (self.train_history, self.heldout_history,
                                           self.logpx_history, self.gaps_history)],
        }
        if hasattr(self.inference, "state_tensors"):  # the free table and its step sizes
            state = self.inference.state_tensors()
            if all(bool(torch.isfinite(t).all()) for t in state.values()
                   if t.is_floating_point()):
                self._good_state["free"] = state
            else:
                self._good_state = None

    def _diverged(self, loss_value: float) -> None:
        where = f"step {self.step_count + 1} (lr={self.config.lr:g}, beta={self.config.beta:g})"
        good = self._good_state
        if good is not None:
            self.model.load_state_dict(good["model"])
            self.optimizer.load_state_dict(good["optimizer"])
            if "free" in good:
                self.inference.load_tensors(good["free"])
            for group in self.optimizer.param_groups:  # the lr in use, not the saved one
                group["lr"] = self.config.lr
            (self.step_count, self.epoch, self.samples_seen, self.seconds, self._cursor,
             self._last_eval) = good["counters"]
            self._set_order(good["order"].clone())
            self._gen.set_state(good["rng"])
            (self.train_history, self.heldout_history, self.logpx_history,
             self.gaps_history) = (h.copy() for h in good["history"])
            self._window = [0.0, 0.0, 0.0, 0]
            self._window_start = self.seconds
            self._good_at = self.seconds
            self.latents.invalidate()  # re-encode every point with the restored weights
            self._gap_row = None  # begun on weights after the restored step
            restored = (f"restored the last finite weights, from step {self.step_count}, with "
                        "the counters and curves of that step")
        else:
            restored = "no finite weights to restore"
        self.stopped_reason = (f"training diverged: the loss became {loss_value} at {where}; "
                               f"{restored}. Lower the learning rate to continue.")
        self.version += 1
        self.paused = True

    def clear_divergence(self) -> None:
        """Allow stepping again after a divergence (e.g. once the lr is lowered)."""
        self.stopped_reason = None

    # ------------------------------------------------------------- controls
    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def request_stop(self) -> None:
        self.stop_requested = True

    def set_lr(self, lr: float) -> None:
        self.config = self.config.replace(lr=float(lr))
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr

    def set_beta(self, beta: float) -> None:
        self.config = self.config.replace(beta=float(beta))

    def set_batch_size(self, batch_size: int) -> None:
        self.config = self.config.replace(batch_size=int(batch_size))

    def reset(self, config: TrainConfig | None = None) -> None:
        """Rebuild the model from scratch; likelihood, hidden sizes and seed apply here.
        The held-out split stays the one the session was created with."""
        if config is not None:
            semi = config.inference == "semi"
            if config.latent_dim != self.config.latent_dim or semi != self.latents.refined:
                self.latents = LatentCache(len(self.dataset), config.latent_dim, refined=semi)
            self.config = config.replace(heldout_fraction=self.config.heldout_fraction)
            self.device = resolve_device(self.config.device)
        self._build()

    def run(self, seconds: float | None = None, epochs: int | None = None,
            on_step=None) -> None:
        """Step until ``seconds`` of training time or ``epochs`` epochs pass, a stop is
        requested, or the guard stops the run. Sleeps while paused."""
        while not self.stop_requested and self.stopped_reason is None:
            if epochs is not None and self.epoch >= epochs:
                break  # every rank reaches an epoch's end at the same step
            out_of_time = seconds is not None and self.seconds >= seconds
            if not self.ranks.distributed and out_of_time:
                break
            if self.paused:
                time.sleep(0.02)
                continue
            # Ranks' clocks differ: rank 0's decides, and the vote travels with the step's
            # all-reduce, so every rank stops after the same step.
            self._stop_vote = self.ranks.is_main and out_of_time
            self.step()
            if on_step is not None:
                on_step(self)
            if self._stop_agreed:
                break

    # ---------------------------------------------------------------- views
    def samples_per_second(self) -> float:
        t0, s0, sec0 = self._rate
        now = time.perf_counter()
        if now - t0 >= 1.0 or self.samples_seen < s0:
            self._rate = (now, self.samples_seen, self.seconds)
        dt = self.seconds - sec0
        return (self.samples_seen - s0) / dt if dt > 0 else 0.0

    def progress(self) -> Progress:
        return Progress(step=self.step_count, epoch=self.epoch,
                        epoch_progress=self._cursor / max(1, len(self._order)),
                        samples_seen=self.samples_seen, seconds=self.seconds,
                        samples_per_second=self.samples_per_second(), paused=self.paused,
                        stopped_reason=self.stopped_reason,
                        train=self.train_history.arrays(), heldout=self.heldout_history.arrays(),
                        logpx=self.logpx_history.arrays(), gaps=self.gaps_history.arrays())

    @torch.no_grad()
    def refresh_latents(self, max_seconds: float | None = None, chunk: int = 1024) -> float:
        """Re-encode datapoints (each one's fixed x) into the latent cache, cycling
        through the dataset; stop after ``max_seconds`` (None: all of them). Returns the
        fraction of the dataset refreshed."""

        mode = self.config.inference

        def encode(start: int, stop: int) -> tuple[np.ndarray, ...]:
            idx = torch.arange(start, stop, device=self.device)
            if mode == "free":
                mu, logvar = self._free_q(idx)
                return mu.cpu().numpy(), torch.exp(0.5 * logvar).cpu().numpy()
            x = self.datapoint_inputs(idx)
            mu, logvar = self.model.encode(x)
            rows = (mu.cpu().numpy(), torch.exp(0.5 * logvar).cpu().numpy())
            if mode == "semi":
                r = self.inference.refined(self.model, x)[2]
                rows += (r.mu.cpu().numpy(), torch.exp(0.5 * r.logvar).cpu().numpy())
            return rows

        self.model.eval()
        try:
            return self.latents.refresh(encode, max_seconds, chunk)
        finally:
            self.model.train()

    @torch.no_grad()
    def _free_q(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The free-form table's (mu, logvar) at dataset indices ``idx``; NaN for points
        outside it (held out: no lambda_i exists for them)."""
        table = self.inference
        rows = table.rows(idx)
        nan = torch.full((len(idx), self.config.latent_dim), math.nan, device=self.device)
        mu, logvar = nan.clone(), nan.clone()
        have = rows >= 0
        if bool(have.any()):
            mu[have], logvar[have] = table.lookup(idx[have])
        return mu, logvar

    def fit_q(self, x: torch.Tensor, index: torch.Tensor | None = None, model=None
              ) -> tuple[torch.Tensor, torch.Tensor, str, float]:
        """The q this run's inference gives datapoints x (B, D): (mu, logvar), how it was
        obtained, and the seconds it took. ``index``: their dataset indices, which free-form
        runs need to look training points up in the table (without it, or for any point
        outside the table, q is fitted from the prior). ``model``: a copy of this run's
        model to use instead of the live one (x is moved to its device)."""
        t0 = time.perf_counter()
        mode = self.config.inference
        live = model is None
        model = self.model if live else model
        x = x.to(next(model.parameters()).device)
        was_training = model.training
        model.eval()
        try:
            if mode == "amortized":
                with torch.no_grad():
                    mu, logvar = model.encode(x)
                how = "f_phi(x): one encoder pass"
            elif mode == "semi":
                r = self.inference.refined(model, x)[2]
                mu, logvar = r.mu, r.logvar
                how = heldout_q_description(self.config)
            else:
                rows = (torch.full((len(x),), -1, device=self.device) if index is None
                        else self.inference.rows(index.to(self.device)))
                if bool((rows >= 0).all()):
                    mu, logvar = self._free_q(index.to(self.device))
                    how = "the free-form table"
                elif bool((rows < 0).all()):
                    r = fit_from_prior(model, x)
                    mu, logvar = r.mu, r.logvar
                    how = heldout_q_description(self.config)
                else:
                    raise ValueError("fit_q: pass training points or points outside the "
                                     "table, not a mix")
        finally:
            model.train(was_training)
        return mu.detach(), logvar.detach(), how, time.perf_counter() - t0

    def snapshot(self, latent_seconds: float | None = None) -> Snapshot:
        """Numpy copies of everything a viewer draws. ``latent_seconds`` bounds the time
        spent re-encoding (None re-encodes every datapoint); the first snapshot always
        encodes them all."""
        self.refresh_latents(latent_seconds if self.latents.complete else None)
        self.version += 1
        mu, sigma, refined_mu, refined_sigma = self.latents.copies()
        return Snapshot(version=self.version, progress=self.progress(), mu=mu, sigma=sigma,
                        model=FrozenVAE(self.model, self.dataset.image_shape,
                                        self.config.binarization),
                        config=self.config,
                        refined_mu=refined_mu, refined_sigma=refined_sigma)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor | None = None, index: torch.Tensor | None = None
                 ) -> dict[str, float]:
        """Mean ELBO, reconstruction and KL (beta = 1) over x, by default the whole
        held-out set, of the q this run's inference gives (``fit_q``; ``index``: x's dataset
        indices, for free-form training points). Seeded noise: successive evaluations
        differ only because the model changed. ``last_q_seconds``: what obtaining the
        q's took."""
        if x is None:
            x = self.heldout_inputs()
        g = torch.Generator(self.device).manual_seed(self.config.seed + 3)
        sums = torch.zeros(3, device=self.device)
        q_seconds = 0.0
        for start in range(0, len(x), 1024):
            xs = x[start:start + 1024]
            if self.inference is None:
                self.model.eval()
                q_seconds += self.fit_q(xs)[3]  # the encoder pass, timed alone
                self.model.eval()
                t = elbo_terms(self.model, xs, g)
            else:
                part = None if index is None else index[start:start + 1024]
                mu, logvar, _, spent = self.fit_q(xs, part)
                q_seconds += spent
                self.model.eval()
                t = reparameterised_terms(self.model, xs, mu, logvar, g)
            sums += torch.stack((t.elbo.sum(), t.recon.sum(), t.kl.sum()))
        self.model.train()
        self.last_q_seconds = q_seconds
        elbo, recon, kl = (sums / len(x)).tolist()
        return {"elbo": elbo, "recon": recon, "kl": kl}
