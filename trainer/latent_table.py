"""The latents table: one row per datapoint, the same for File > Export > Latents and for
``latent-explorer export-latents``.

Columns: index, label, name, mu1..muL, sigma1..sigmaL, elbo_nats. mu and sigma are the
encoder's lambda_i = f_phi(x_i) and ``elbo_nats`` that q's ELBO in nats (higher is better),
averaged over ``ELBO_SAMPLES`` reparameterised draws, both for the datapoint's one fixed x
(trainer.evidence), so they match the plane, the inspector and ``inspect``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .evidence import dataset_evidence

ELBO_SAMPLES = 4  # reparameterised draws averaged per datapoint for the ELBO column
ELBO_BATCH = 1024


def latent_columns(latent_dim: int = 2) -> tuple[str, ...]:
    return ("index", "label", "name", *(f"mu{k + 1}" for k in range(latent_dim)),
            *(f"sigma{k + 1}" for k in range(latent_dim)), "elbo_nats")


def iter_latent_rows(dataset, model, elbo_samples: int = ELBO_SAMPLES,
                     batch: int = ELBO_BATCH) -> Iterator[tuple[int, int]]:
    """A generator that yields (done, total) after each batch and returns the rows (see
    ``latent_columns``). ``model`` is a trainer.FrozenVAE (its ``binarization`` makes each
    x); the work runs in the caller's thread, so a GUI runs it as a background job and a
    CLI beside a progress bar."""
    n = len(dataset)
    if tuple(model.image_shape) != tuple(dataset.image_shape):
        raise ValueError(f"the model is for {model.image_shape[0]}x{model.image_shape[1]} images"
                         f" but {dataset.name} has {dataset.image_shape[0]}x"
                         f"{dataset.image_shape[1]}")
    rows: list[list] = []
    labels, names = dataset.labels, dataset.names
    yield 0, n
    for start in range(0, n, batch):
        idx = np.arange(start, min(n, start + batch))
        x = dataset_evidence(dataset, model.binarization, idx)
        mu, sigma = model.encode(x)
        elbo = model.elbo(x, samples=elbo_samples)["elbo"]
        for j, i in enumerate(idx):
            rows.append([int(i), "" if labels is None else int(labels[i]),
                         "" if names is None else names[i],
                         *(f"{float(v):.9g}" for v in (*mu[j], *sigma[j])),
                         f"{float(elbo[j]):.9g}"])
        yield len(rows), n
    return rows


def latent_rows(dataset, model, elbo_samples: int = ELBO_SAMPLES, batch: int = ELBO_BATCH,
                progress: Callable[[int, int], None] | None = None) -> list[list]:
    """The rows at once; ``progress(done, total)`` after each batch."""
    rows = iter_latent_rows(dataset, model, elbo_samples, batch)
    while True:
        try:
            done, total = next(rows)
        except StopIteration as finished:
            return finished.value
        if progress is not None:
            progress(done, total)


def write_latents_csv(path: str | os.PathLike, rows: list[list], latent_dim: int = 2) -> Path:
    """The rows as CSV with the header, written atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(latent_columns(latent_dim))
            w.writerows(rows)

    return atomic_write(path, write)
