"""Every knob of a training run in one dataclass, serialisable to JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

LIKELIHOODS = ("bernoulli", "gaussian")
PRECISIONS = ("auto", "fp32", "bf16")
BINARIZATIONS = ("dynamic", "threshold", "none")


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field."""


@dataclass
class TrainConfig:
    latent_dim: int = 2
    hidden: tuple[int, ...] = (512, 512)
    # "bernoulli" for images in [0, 1] (Kingma & Welling, appendix C.1);
    # "gaussian" with a learned per-pixel variance for real-valued data (C.2).
    likelihood: str = "bernoulli"
    # How grey pixels become the binary data a Bernoulli decoder models:
    # "dynamic" resamples x ~ Bernoulli(pixel) at every training step and uses one
    # fixed, seeded sample of the held-out set; "threshold" is x > 0.5 throughout;
    # "none" is required for (and only valid with) the Gaussian likelihood.
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
    # (0 turns it off), taking this share of the training time. 5 % of the time keeps the
    # measured throughput cost under 10 % (evaluation also evicts training's caches).
    logpx_points: int = 256
    logpx_share: float = 0.05
    history_limit: int = 2000

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        self.validate()

    def validate(self) -> None:
        def require(ok: bool, name: str, why: str) -> None:
            if not ok:
                raise ConfigError(f"{name}: {why} (got {getattr(self, name)!r})")

        require(self.latent_dim >= 1, "latent_dim", "must be at least 1")
        require(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden",
                "needs one or more positive layer sizes")
        require(self.likelihood in LIKELIHOODS, "likelihood", f"must be one of {LIKELIHOODS}")
        require(self.binarization in BINARIZATIONS, "binarization",
                f"must be one of {BINARIZATIONS}")
        if self.likelihood == "gaussian":
            require(self.binarization == "none", "binarization",
                    "must be 'none' with the Gaussian likelihood")
        else:
            require(self.binarization != "none", "binarization",
                    "must be 'dynamic' or 'threshold' with the Bernoulli likelihood")
        require(self.precision in PRECISIONS, "precision", f"must be one of {PRECISIONS}")
        require(self.lr > 0, "lr", "must be positive")
        require(self.beta >= 0, "beta", "must be non-negative")
        require(self.batch_size >= 1, "batch_size", "must be at least 1")
        require(0 < self.heldout_fraction < 1, "heldout_fraction", "must be between 0 and 1")
        require(self.threads is None or self.threads >= 1, "threads", "must be at least 1")
        require(self.eval_every_seconds > 0, "eval_every_seconds", "must be positive")
        require(self.eval_max_points >= 1, "eval_max_points", "must be at least 1")
        require(self.logpx_points >= 0, "logpx_points", "must be non-negative")
        require(0 < self.logpx_share <= 1, "logpx_share", "must be in (0, 1]")
        require(self.history_limit >= 10, "history_limit", "must be at least 10")

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
        try:
            return cls(**d)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def default_binarization(likelihood: str) -> str:
    return "none" if likelihood == "gaussian" else "dynamic"


