"""Every datapoint's encoding, kept for the plane: mu and sigma of q(z|x_i), in dataset order.

Re-encoding a large dataset after every step would stall training, so the cache is refreshed
a chunk at a time, cycling through the dataset within a time budget; rows not reached yet
keep an older model's encoding. After ``invalidate`` (a new model, restored weights) the cache
is not ``complete`` until every row was encoded again; a reader that must not show another
model's rows (trainer.Session.snapshot) refreshes all of them first. Which x is encoded, by
which model, is the caller's rule (``encode``): the cache only keeps rows. A semi-amortized
run keeps two encodings per row: f_phi(x_i) and the refined lambda_i (``refined``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

CHUNK = 1024  # datapoints encoded per call of ``encode``


class LatentCache:
    """``mu`` (N, L) and ``sigma`` (N, L) float32, with ``refined_mu``/``refined_sigma`` of the
    same shape when ``refined`` (else None); ``complete`` once every row was encoded since the
    last ``invalidate``."""

    def __init__(self, n: int, latent_dim: int, refined: bool = False):
        self.mu = np.zeros((n, latent_dim), np.float32)
        self.sigma = np.ones((n, latent_dim), np.float32)
        self.refined_mu = np.zeros_like(self.mu) if refined else None
        self.refined_sigma = np.ones_like(self.sigma) if refined else None
        self.complete = False
        self._cursor = 0  # the next row to re-encode

    def __len__(self) -> int:
        return len(self.mu)

    def invalidate(self) -> None:
        """The model changed wholesale: the next refresh re-encodes every row."""
        self.complete = False

    @property
    def refined(self) -> bool:
        return self.refined_mu is not None

    def refresh(self, encode: Callable[[int, int], tuple[np.ndarray, ...]],
                max_seconds: float | None = None, chunk: int = CHUNK) -> float:
        """Re-encode rows with ``encode(start, stop) -> (mu, sigma)``, or ``(mu, sigma,
        refined_mu, refined_sigma)`` for a refined cache, cycling through the
        dataset from where the last refresh stopped; stop after ``max_seconds`` (None: all
        of them). Returns the fraction of rows refreshed."""
        n = len(self.mu)
        t0 = time.perf_counter()
        done = 0
        while done < n:
            start = self._cursor
            stop = min(n, start + chunk)
            rows = encode(start, stop)
            self.mu[start:stop], self.sigma[start:stop] = rows[:2]
            if self.refined:
                self.refined_mu[start:stop], self.refined_sigma[start:stop] = rows[2:]
            done += stop - start
            self._cursor = 0 if stop == n else stop
            if self._cursor == 0:
                self.complete = True
            if max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
                break
        return done / n if n else 1.0

    def copies(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(mu, sigma, refined_mu, refined_sigma) owned by the receiver (None: not refined)."""
        def own(a):
            return None if a is None else a.copy()

        return own(self.mu), own(self.sigma), own(self.refined_mu), own(self.refined_sigma)
