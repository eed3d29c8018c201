"""An in-memory image dataset and the sources it loads from."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources

import numpy as np


class DataError(ValueError):
    """Bad input data. The message names the file and the reason in one line."""


@dataclass
class ImageDataset:
    """N grey images of H x W. Pixel values are ``pixels * scale``, in [0, 1].

    ``pixels`` is kept compact (uint8 wherever the source allows), so 70,000 MNIST
    digits take 55 MB rather than 220 MB as float32.
    """

    pixels: np.ndarray  # (N, H, W), uint8 or float32
    scale: float
    name: str
    source: str
    labels: np.ndarray | None = None  # (N,) int64
    label_names: list[str] | None = None  # label value -> display name
    names: list[str] | None = None  # one per image, e.g. its file name
    notes: list[str] = field(default_factory=list)  # what loading changed or skipped

    def __post_init__(self) -> None:
        if self.pixels.ndim != 3 or len(self.pixels) == 0:
            raise DataError(f"{self.source}: expected N x H x W images, got shape "
                            f"{self.pixels.shape}")
        if self.labels is not None and len(self.labels) != len(self.pixels):
            raise DataError(f"{self.source}: {len(self.labels)} labels for "
                            f"{len(self.pixels)} images")

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.pixels.shape[1], self.pixels.shape[2]

    @property
    def n_pixels(self) -> int:
        return self.pixels.shape[1] * self.pixels.shape[2]

    def as_float(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """Images as float32 in [0, 1], flattened to (n, H*W)."""
        px = self.pixels if index is None else self.pixels[index]
        return (px.reshape(len(px), -1).astype(np.float32) * np.float32(self.scale))

    def fingerprint(self) -> str:
        """SHA-256 over the pixels and labels: tells whether a dataset changed."""
        h = hashlib.sha256()
        h.update(str(self.pixels.shape).encode())
        h.update(np.ascontiguousarray(self.pixels).tobytes())
        if self.labels is not None:
            h.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        return {"name": self.name, "source": self.source, "n": len(self),
                "image_shape": list(self.image_shape), "labelled": self.labels is not None,
                "fingerprint": self.fingerprint(), "notes": list(self.notes)}


@dataclass(frozen=True)
class Split:
    """A deterministic held-out split: the same (N, fraction, seed) gives the same indices."""

    train: np.ndarray
    heldout: np.ndarray
    fraction: float
    seed: int

    def describe(self) -> dict:
        return {"fraction": self.fraction, "seed": self.seed, "n_train": int(len(self.train)),
                "n_heldout": int(len(self.heldout))}


def split_indices(n: int, fraction: float, seed: int) -> Split:
    if n < 2:
        raise DataError(f"need at least 2 images to hold some out, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_heldout = min(n - 1, max(1, round(n * fraction)))
    return Split(train=np.sort(order[n_heldout:]), heldout=np.sort(order[:n_heldout]),
                 fraction=fraction, seed=seed)


def load_digits() -> ImageDataset:
    """The 1,797 8x8 handwritten digits that scikit-learn ships (UCI optdigits), grey
    levels 0..16, bundled in resources/ so no network or scikit-learn is needed."""
    ref = resources.files("resources") / "digits.npz"
    with ref.open("rb") as f, np.load(f) as npz:
        images, labels = npz["images"], npz["labels"]
    return ImageDataset(pixels=images, scale=1 / 16, name="Built-in digits (8x8)",
                        source="digits", labels=labels.astype(np.int64),
                        label_names=[str(i) for i in range(10)])


def load_source(source: str) -> ImageDataset:
    """Load a dataset named on the command line: ``digits`` or a path."""
    if source == "digits":
        return load_digits()
    raise DataError(f"{source}: no such dataset")
