"""One x per datapoint: the input every reported number is computed on.

A Bernoulli likelihood is a probability only for binary x, so a grey image needs one binary
version to be scored as a log-density. The rule (``RULES``), applied by every view and command
(the plane's dots mu_i = f_phi(x_i), the inspector, colourings, exports, ``encode``,
``evaluate``, the held-out curves):

- binarization "dynamic": x_i is one fixed Bernoulli sample of the grey image, x_id =
  [u_id < grey_id], with noise u from a hash of the image's pixels and its dataset index. It
  depends on nothing else (not the model's seed, not which subset is asked for), so runs with
  different seeds score the same x, and a point has the same x in every view. An image from
  outside the dataset (a drop, a paste, ``encode``) gets noise from its pixels alone: the same
  file always gives the same x.
- "threshold": x = [grey > 0.5].
- "none" (the Gaussian likelihood): x is the grey image.

Training is not affected: it draws a fresh binarisation every step (dynamic binarisation is
the training scheme); only the numbers reported for a datapoint use its fixed x.
"""

from __future__ import annotations

import numpy as np
import torch

RULES = {
    "dynamic": "x = one fixed binarisation of each image (seeded by its pixels and index), "
               "used by every view and number",
    "threshold": "x = the image thresholded at 0.5, used by every view and number",
    "none": "x = the image itself, not binarised, used by every view and number",
}
OUTSIDE = -1  # the "index" of an image from outside the dataset
NOISE_CHUNK_ELEMENTS = 1 << 21  # pixels hashed at once (~16 MB per int64 temporary)
_M32 = 0xFFFFFFFF
# Multipliers below 2**31: a 32-bit value times one stays below 2**63, so the products are
# exact in int64 on every device (torch has no uint32 arithmetic everywhere).
_K1, _K2, _K3 = 0x7FEB352D, 0x5BD1E995, 0x2C1B3C6D


def rule(binarization: str) -> str:
    """The rule as one short line for the screen."""
    return RULES[binarization]


def likelihood_label(likelihood: str, binarization: str) -> str:
    """What log p(x|z) (and so every ELBO, IWAE and log p(x)) is for this model, in one line:
    a log-probability of binary x, a log-density of real x, or neither."""
    if likelihood == "gaussian":
        return ("Gaussian with a learned variance per value: a log-density (not a "
                "probability), nats per image")
    if binarization == "none":
        return ("Bernoulli per value on non-binary x: a cross-entropy, not a log-probability "
                "(it is one only for binary x), nats per image")
    return "Bernoulli per value of binarised x: a log-probability, nats per image"


def _mix(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xor-shift-multiply rounds) of int64 tensors holding 32-bit values."""
    h = h & _M32
    h = h ^ (h >> 16)
    h = (h * _K1) & _M32
    h = h ^ (h >> 15)
    h = (h * _K2) & _M32
    h = h ^ (h >> 16)
    h = (h * _K3) & _M32
    return h ^ (h >> 15)


def _tables(d: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed per-pixel hash tables: weights (< 2**23) for the content key, offsets for the
    noise. Pure functions of the pixel position, so the same on every machine."""
    pos = torch.arange(d, device=device, dtype=torch.int64)
    return _mix(pos ^ 0x5F3759DF) >> 9, _mix(pos + 0x9E3779B9)


def noise(grey: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Uniform noise in [0, 1), (B, D), fixed by each row's 8-bit grey levels and its index."""
    weights, offsets = _tables(grey.shape[1], grey.device)
    levels = torch.round(grey.clamp(0, 1) * 255).to(torch.int64)  # robust to float rounding
    content = (levels * weights).sum(1)  # < 2**31 per pixel: exact in int64
    key = _mix(_mix(content) ^ _mix(index.to(torch.int64) & _M32 ^ 0x2545F491))
    h = _mix(key[:, None] + offsets[None])
    return (h >> 8).to(torch.float32) * (1.0 / (1 << 24))  # 24 bits: exact in float32


def evidence_tensor(grey: torch.Tensor, binarization: str,
                    index: torch.Tensor | None = None) -> torch.Tensor:
    """x for grey images (B, D) in [0, 1] on any device; ``index`` (B,) their dataset indices,
    None for images from outside the dataset."""
    grey = grey.float()
    if binarization == "none":
        return grey
    if binarization == "threshold":
        return (grey > 0.5).float()
    if binarization != "dynamic":
        raise ValueError(f"unknown binarization {binarization!r}")
    if index is None:
        index = torch.full((grey.shape[0],), OUTSIDE, dtype=torch.int64, device=grey.device)
    index = index.to(grey.device)
    # The hash works in int64, several (rows, D) temporaries at once: bound them to a few tens
    # of MB, so a large held-out set (or a memory-mapped dataset) is binarised in slices.
    rows = max(1, NOISE_CHUNK_ELEMENTS // max(1, grey.shape[1]))
    if grey.shape[0] <= rows:
        return (noise(grey, index) < grey).float()
    return torch.cat([(noise(grey[i:i + rows], index[i:i + rows]) < grey[i:i + rows]).float()
                      for i in range(0, grey.shape[0], rows)])


def evidence_input(grey, binarization: str, index=None) -> np.ndarray:
    """x (float32 numpy, the shape of ``grey``) for a batch of grey images, first axis the
    image ((B, D) or (B, H, W)); ``index`` (B,) their dataset indices, None for images from
    outside the dataset."""
    a = np.asarray(grey, np.float32)
    idx = None if index is None else torch.as_tensor(np.asarray(index).reshape(-1),
                                                     dtype=torch.int64)
    x = evidence_tensor(torch.from_numpy(np.ascontiguousarray(a.reshape(len(a), -1))),
                        binarization, idx)
    return x.numpy().reshape(a.shape)


def dataset_evidence(dataset, binarization: str, index=None) -> np.ndarray:
    """x for datapoints of ``dataset`` (trainer.ImageDataset), (n, D) float32: all of them,
    or those at ``index`` (an array of indices)."""
    idx = np.arange(len(dataset)) if index is None else np.asarray(index, np.int64).reshape(-1)
    return evidence_input(dataset.as_float(idx), binarization, idx).reshape(len(idx), -1)
