"""Every knob of a training run in one dataclass, serialisable to JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
from dataclasses import dataclass

LIKELIHOODS = ("bernoulli", "gaussian")
# "mlp": fully connected encoder and decoder (trainer.model); "conv": the Keras VAE
# example's convolutional pair (trainer.conv), for images 8 to 64 pixels a side.
ARCHS = ("mlp", "conv")
PRECISIONS = ("auto", "fp32", "bf16")
BINARIZATIONS = ("dynamic", "threshold", "none")
# Who produces each training point's lambda_i = (mu_i, log sigma_i): the encoder
# f_phi(x_i) ("amortized"), a free table of them ("free", variational EM), or the encoder
# refined by a few steps on the point's own ELBO ("semi", SA-VAE). See trainer.inference_modes.
INFERENCE_MODES = ("amortized", "free", "semi")
MAX_REFINE_STEPS = 1000
# Upper bounds: far above any model this app trains (MNIST uses 784-512-512-2), low enough
# that a crafted config cannot ask for terabytes of weights or a million threads.
MAX_LATENT_DIM = 4096
MAX_HIDDEN = 65536
MAX_LAYERS = 32
MAX_BATCH_SIZE = 2**20
MAX_SEED = 2**63 - 1  # numpy and torch seeds are unsigned 64-bit; JSON readers often int64
MAX_THREADS = 1024
MAX_EVAL_POINTS = 10**7
MAX_HISTORY = 10**6


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field."""


@dataclass
class TrainConfig:
    latent_dim: int = 2
    # The MLP's hidden layer sizes; the conv model has fixed layers sized from the image.
    hidden: tuple[int, ...] = (512, 512)
    # "bernoulli" for images in [0, 1] (Kingma & Welling, appendix C.1);
    # "gaussian" with a learned per-pixel variance for real-valued data (C.2).
    likelihood: str = "bernoulli"
    # How grey pixels become the binary data a Bernoulli decoder models:
    # "dynamic" resamples x ~ Bernoulli(pixel) at every training step and uses one
    # fixed, seeded sample of the held-out set; "threshold" is x > 0.5 throughout;
    # "none" is required for the Gaussian likelihood; with the Bernoulli it scores the
    # values themselves (the usual cross-entropy for colour images), which is then not a
    # log-probability (trainer.evidence.likelihood_label says so).
    binarization: str = "dynamic"
    lr: float = 1e-3
    beta: float = 1.0
    batch_size: int = 128
    seed: int = 0
    heldout_fraction: float = 0.1
    device: str = "cpu"
    # None leaves torch's default; the GUI sets 1 so the event loop keeps a core.
    threads: int | None = None
    # Precision of the Linear layers' matmuls while training. Weights, Adam state, the
    # loss and every reported ELBO stay fp32. "bf16" runs the matmuls in bfloat16
    # (autocast): ~2x the training throughput on CPUs with native bf16 (AVX-512 BF16,
    # AMX) and GPUs, same held-out ELBO. "auto" picks bf16 only where it was measured
    # faster than fp32 on this machine (trainer.precision: a short race, cached).
    precision: str = "auto"
    # The smallest log-variance the Gaussian decoder may output: without a floor,
    # constant background pixels drive the variance to zero and the ELBO to +inf.
    min_logvar: float = -6.0
    eval_every_seconds: float = 2.0
    eval_max_points: int = 2048
    # The live exact log p(x) curve (2-D latents only): this many fixed held-out points
    # (0 turns it off), taking this share of the training time. With the held-out ELBO,
    # the gap curve and the divergence guard, all evaluation stays under ~10 % of the
    # time (evaluation also evicts training's caches).
    logpx_points: int = 256
    logpx_share: float = 0.03
    history_limit: int = 2000
    arch: str = "mlp"
    inference: str = "amortized"
    # Semi-amortized: K Adam steps on (mu_i, log sigma_i) from f_phi(x_i), theta frozen, the
    # step size in units of the encoder's sigma (trainer.inference_modes.refine).
    refine_steps: int = 10
    refine_lr: float = 0.1
    # Free-form: each visit of a row is an E-step of free_steps Adam steps on its ELBO, theta
    # frozen, in units of the row's sigma; free_lr is every row's first step size, which then
    # adapts per row (trainer.inference_modes.FreeInference; vae_sparse optimises its local
    # parameters for --n_steps steps, lr --param_lr, before each global update).
    free_steps: int = 1
    free_lr: float = 0.1

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Types first (a bool is not a number, 2.5 is not a count), then ranges; the one
        check every config passes, from the GUI, the CLI or a file. Normalises numpy and
        integral values to plain ints and floats."""
        def fail(name: str, why: str) -> None:
            raise ConfigError(f"{name}: {why} (got {getattr(self, name)!r})")

        def integer(name: str, lo: int, hi: int, optional: bool = False) -> None:
            value = getattr(self, name)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                fail(name, "must be a whole number")
            if not lo <= value <= hi:
                fail(name, f"must be between {lo} and {hi}")
            setattr(self, name, int(value))

        def real(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                fail(name, "must be a number")
            if not math.isfinite(value):
                fail(name, "must be finite")
            setattr(self, name, float(value))
            return float(value)

        def text(name: str, choices: tuple[str, ...]) -> None:
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in choices:
                fail(name, f"must be one of {choices}")

        integer("latent_dim", 1, MAX_LATENT_DIM)
        hidden = self.hidden
        if (isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__")
                or not 1 <= len(hidden := tuple(hidden)) <= MAX_LAYERS
                or not all(isinstance(h, numbers.Integral) and not isinstance(h, bool)
                           and 1 <= h <= MAX_HIDDEN for h in hidden)):
            fail("hidden", f"needs 1 to {MAX_LAYERS} whole layer sizes, each 1 to {MAX_HIDDEN}")
        self.hidden = tuple(int(h) for h in hidden)
        text("arch", ARCHS)
        text("likelihood", LIKELIHOODS)
        text("binarization", BINARIZATIONS)
        if self.likelihood == "gaussian" and self.binarization != "none":
            fail("binarization", "must be 'none' with the Gaussian likelihood")
        text("precision", PRECISIONS)
        if real("lr") <= 0:
            fail("lr", "must be positive")
        if real("beta") < 0:
            fail("beta", "must be non-negative")
        integer("batch_size", 1, MAX_BATCH_SIZE)
        integer("seed", 0, MAX_SEED)
        if not 0 < real("heldout_fraction") < 1:
            fail("heldout_fraction", "must be between 0 and 1")
        if not isinstance(self.device, str) or not re.fullmatch(r"cpu|mps|cuda(:\d{1,3})?",
                                                                self.device):
            fail("device", "must be cpu, cuda, cuda:N or mps")
        integer("threads", 1, MAX_THREADS, optional=True)
        if not -30 <= real("min_logvar") <= 10:
            fail("min_logvar", "must be between -30 and 10")
        if real("eval_every_seconds") <= 0:
            fail("eval_every_seconds", "must be positive")
        integer("eval_max_points", 1, MAX_EVAL_POINTS)
        integer("logpx_points", 0, MAX_EVAL_POINTS)
        if not 0 < real("logpx_share") <= 1:
            fail("logpx_share", "must be in (0, 1]")
        integer("history_limit", 10, MAX_HISTORY)
        text("inference", INFERENCE_MODES)
        integer("refine_steps", 1, MAX_REFINE_STEPS)
        integer("free_steps", 1, MAX_REFINE_STEPS)
        for name in ("refine_lr", "free_lr"):
            if not 0 < real(name) <= 10:
                fail(name, "must be in (0, 10]")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        if "hidden" in d and not isinstance(d["hidden"], (list, tuple)):
            raise ConfigError(f"hidden: must be a list of layer sizes (got {d['hidden']!r})")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def default_binarization(likelihood: str) -> str:
    return "none" if likelihood == "gaussian" else "dynamic"


