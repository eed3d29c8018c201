"""The latent cache: rows refreshed a chunk at a time within a budget, cycling, and trusted
again only once every row was encoded after an invalidation."""

from __future__ import annotations

import numpy as np
import torch

from trainer import Session, TrainConfig, load_source
from trainer.latent_cache import LatentCache


class Encoder:
    """encode(start, stop): row i gets (version * 1000 + i) in every column."""

    def __init__(self):
        self.version = 1
        self.calls: list[tuple[int, int]] = []

    def __call__(self, start: int, stop: int):
        self.calls.append((start, stop))
        rows = np.arange(start, stop, dtype=np.float32)[:, None] + 1000 * self.version
        return np.repeat(rows, 2, axis=1), np.repeat(rows + 0.5, 2, axis=1)


def test_a_budget_cycles_through_the_rows_and_invalidate_asks_for_all_of_them():
    cache, encode = LatentCache(10, 2), Encoder()
    assert not cache.complete
    assert cache.refresh(encode, max_seconds=None, chunk=4) == 1.0
    assert encode.calls == [(0, 4), (4, 8), (8, 10)] and cache.complete
    assert np.array_equal(cache.mu[:, 0], 1000 + np.arange(10))
    assert np.array_equal(cache.sigma[:, 1], 1000.5 + np.arange(10))

    encode.version, encode.calls = 2, []
    # A zero budget still encodes one chunk, and the next call goes on where it stopped.
    assert cache.refresh(encode, max_seconds=0, chunk=4) == 0.4
    assert cache.refresh(encode, max_seconds=0, chunk=4) == 0.4
    assert encode.calls == [(0, 4), (4, 8)]
    assert np.array_equal(cache.mu[:, 0], [*(2000 + np.arange(8)), 1008, 1009])

    cache.invalidate()
    assert not cache.complete
    cache.refresh(encode, max_seconds=0, chunk=4)  # wraps round: rows 8, 9 done
    assert cache.complete and encode.calls[-1] == (8, 10)
    mu, sigma, refined_mu, refined_sigma = cache.copies()
    mu[:] = -1
    assert cache.mu[0, 0] == 2000, "copies are the receiver's"
    assert refined_mu is None and refined_sigma is None  # only a semi-amortized run's cache


def test_a_refined_cache_keeps_both_encodings_of_each_row():
    cache = LatentCache(5, 2, refined=True)
    cache.refresh(lambda a, b: (np.full((b - a, 2), 1.0), np.full((b - a, 2), 2.0),
                                np.full((b - a, 2), 3.0), np.full((b - a, 2), 4.0)))
    mu, sigma, refined_mu, refined_sigma = cache.copies()
    assert [a.mean() for a in (mu, sigma, refined_mu, refined_sigma)] == [1, 2, 3, 4]


def test_the_session_snapshot_reencodes_every_point_after_a_reset():
    digits = load_source("digits")
    session = Session(digits, TrainConfig(hidden=(16,), seed=0, eval_every_seconds=1e9))
    first = session.snapshot(latent_seconds=0)
    assert session.latents.complete and first.mu.shape == (len(digits), 2)
    for _ in range(5):
        session.step()
    session.reset(session.config.replace(seed=1))
    assert not session.latents.complete
    snap = session.snapshot(latent_seconds=0)  # the budget is ignored for a stale cache
    with torch.no_grad():
        mu, _ = session.model.encode(session.datapoint_inputs(torch.arange(len(digits))))
    np.testing.assert_allclose(snap.mu, mu.numpy(), rtol=1e-5, atol=1e-6)
