"""The engine's periodic work stays a bounded share of training when it is slow (a conv
model's held-out evaluation takes seconds on a CPU), and keeps its set period when fast."""

from __future__ import annotations

import time

import numpy as np

from trainer import ImageDataset, Session, TrainConfig
from trainer.session import HELDOUT_SHARE


def run_for(session: Session, seconds: float) -> None:
    while session.seconds < seconds:
        session.step()


def test_a_slow_heldout_evaluation_is_spaced_out_to_its_share():
    rng = np.random.default_rng(0)
    data = ImageDataset(pixels=rng.integers(0, 256, (200, 6, 6), dtype=np.uint8),
                        scale=1 / 255, name="tiny", source="tiny")
    config = TrainConfig(hidden=(8,), batch_size=16, threads=1, eval_every_seconds=0.01,
                         precision="fp32", logpx_points=0)
    fast = Session(data, config)
    run_for(fast, 0.2)
    assert len(fast.heldout_history) >= 8  # cheap: every eval_every_seconds

    slow = Session(data, config)
    evaluate = slow.evaluate
    cost = 0.02

    def slow_evaluate(x):  # the real evaluation, made as slow as a big model's
        time.sleep(cost)
        return evaluate(x)

    slow.evaluate = slow_evaluate
    run_for(slow, 0.5)
    # After each evaluation taking c, at least c / share of training passes (from the
    # second one: the first one's warm-up is not counted).
    assert len(slow.heldout_history) <= 2 + 0.5 / (cost / HELDOUT_SHARE)
    assert len(slow.heldout_history) >= 2
