"""The training engine: precision, the fused optimiser, fixed evaluation inputs, the
divergence guard and the controls the GUI drives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer import ConfigError, Session, TrainConfig, load_source
from trainer.elbo import elbo_terms
from trainer.session import resolve_precision

SMALL = TrainConfig(hidden=(32, 32), eval_every_seconds=1e9)


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


def test_precision_option_is_validated_and_resolved():
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) is None
    assert resolve_precision("bf16", cpu) is torch.bfloat16
    assert resolve_precision("auto", cpu) in (None, torch.bfloat16)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_step_trains_at_either_precision_with_fp32_weights(digits, precision):
    session = Session(digits, SMALL.replace(precision=precision))
    before = session.evaluate()["elbo"]
    stats = [session.step() for _ in range(40)]
    assert all(math.isfinite(s["elbo"]) and s["kl"] >= 0 for s in stats)
    assert all(p.dtype == torch.float32 for p in session.model.parameters())
    assert session.evaluate()["elbo"] > before + 5  # it learns (from ~-44 nats)
    assert session.step_count == 40 and session.epoch == 3  # 13 steps per epoch


def test_adam_is_fused_on_cpu(digits):
    session = Session(digits, SMALL)
    assert session.optimizer.defaults["fused"] is True


def test_reported_elbo_is_fp32_whatever_the_training_precision(digits):
    session = Session(digits, SMALL.replace(precision="bf16"))
    for _ in range(10):
        session.step()
    x = session.heldout_inputs()
    got = session.evaluate(x)
    g = torch.Generator().manual_seed(session.config.seed + 3)
    with torch.no_grad():
        t = elbo_terms(session.model.eval(), x, g)  # plain fp32, outside any autocast
    assert got["elbo"] == pytest.approx(t.elbo.mean().item(), abs=1e-4)
    assert got["elbo"] == pytest.approx(got["recon"] - got["kl"], abs=1e-4)


def test_evaluation_inputs_are_fixed_binary_and_split_apart(digits):
    session = Session(digits, SMALL)
    a, b = session.heldout_inputs(), session.heldout_inputs()
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}
    assert len(a) == len(session.split.heldout)
    t = session.train_inputs(500)
    assert len(t) == 500 and torch.equal(t, session.train_inputs(500))
    assert not np.intersect1d(session.split.train, session.split.heldout).size


def test_same_seed_same_run(digits):
    runs = []
    for _ in range(2):
        session = Session(digits, SMALL.replace(seed=11))
        runs.append([session.step() for _ in range(15)])
    assert runs[0] == runs[1]


def test_divergence_guard_restores_finite_weights_and_stops(digits):
    session = Session(digits, SMALL.replace(lr=1e6, precision="fp32"))
    for _ in range(200):
        if session.step() is None:
            break
    assert session.stopped_reason is not None and "diverged" in session.stopped_reason
    assert "Lower the learning rate" in session.stopped_reason
    assert all(torch.isfinite(p).all() for p in session.model.parameters())
    assert session.paused and session.step() is None
    session.set_lr(1e-4)
    session.clear_divergence()
    assert session.step() is not None


def test_controls_between_steps(digits):
    session = Session(digits, SMALL)
    session.step()
    session.set_lr(5e-4)
    session.set_beta(0.5)
    session.set_batch_size(32)
    stats = session.step()
    assert session.optimizer.param_groups[0]["lr"] == 5e-4
    assert session.config.beta == 0.5 and session.samples_seen == 128 + 32
    assert math.isfinite(stats["elbo"])
    session.reset(SMALL.replace(hidden=(16,)))
    assert session.step_count == 0 and session.model.encoder[0].out_features == 16


def test_run_stops_on_epochs_and_request(digits):
    session = Session(digits, SMALL)
    session.run(epochs=2)
    assert session.epoch == 2
    calls = []

    def stop_after_three(s):
        calls.append(s.step_count)
        if len(calls) == 3:
            s.request_stop()

    session.run(epochs=100, on_step=stop_after_three)
    assert len(calls) == 3 and session.epoch < 100


def test_exact_logpx_curve_sits_above_the_elbo_of_the_same_points():
    session = Session(load_source("digits"), TrainConfig(hidden=(32,), threads=1, seed=3,
                                                         logpx_points=64))
    for _ in range(200):
        session.step()
    row = session.evaluate_logpx()
    curve = session.progress().logpx
    assert len(curve["log_px"]) >= 1 and curve["log_px"][-1] == row["log_px"]
    # log p(x) >= ELBO for every point, so for the mean too (up to grid error).
    assert row["log_px"] >= row["elbo"] - 0.01
    assert 0.0 <= row["resolved"] <= 1.0


def test_logpx_curve_is_off_for_other_latent_sizes():
    session = Session(load_source("digits"), TrainConfig(hidden=(16,), latent_dim=3, threads=1))
    for _ in range(5):
        session.step()
    assert len(session.progress().logpx["log_px"]) == 0


def test_divergence_rolls_back_counters_and_curves_with_the_weights(digits, monkeypatch):
    """After "restored the last finite weights, from step N" the session is at step N:
    counters, curves, epoch order and RNG are those of step N, and lowering the lr goes on
    from there."""
    import trainer.session as engine

    monkeypatch.setattr(engine, "RECORD_EVERY_SECONDS", 0.0)  # a curve row every step
    session = Session(digits, SMALL.replace(lr=1e-3, precision="fp32"))
    for _ in range(5):
        session.step()
    at_good = (session.step_count, session.samples_seen, len(session.train_history))
    session._save_good_state()  # as the guard does once a second
    session.set_lr(1e7)
    for _ in range(200):
        if session.step() is None:
            break
    assert session.stopped_reason is not None and f"from step {at_good[0]}," in \
        session.stopped_reason
    assert (session.step_count, session.samples_seen, len(session.train_history)) == at_good
    assert session.train_history.arrays()["step"][-1] == at_good[0]
    assert session.optimizer.param_groups[0]["lr"] == session.config.lr == 1e7
    session.set_lr(1e-3)
    session.clear_divergence()
    assert session.step() is not None and session.step_count == at_good[0] + 1


def test_the_guard_never_keeps_a_copy_of_non_finite_weights(digits, monkeypatch):
    import trainer.session as engine

    session = Session(digits, SMALL.replace(precision="fp32"))
    for _ in range(3):
        session.step()
    session._save_good_state()
    good_step = session.step_count
    with torch.no_grad():  # weights gone bad (as an overflow in the last update would leave them)
        session.model.decoder[0].weight.view(-1)[0] = float("nan")
    monkeypatch.setattr(engine, "GUARD_EVERY_SECONDS", 0.0)  # the guard copies before this step
    assert session.step() is None
    assert f"from step {good_step}," in session.stopped_reason
    assert all(torch.isfinite(p).all() for p in session.model.parameters())
    assert all(torch.isfinite(v).all() for s in session.optimizer.state_dict()["state"].values()
               for v in s.values())


def test_collector_pauses_nest_across_threads_and_restore_the_collector():
    import gc
    import threading

    from trainer.frozen import collector_paused

    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:
        with collector_paused():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    with collector_paused():
        thread.start()
        inside.wait(10)
        with collector_paused():
            assert not gc.isenabled()
    assert not gc.isenabled(), "the other thread's pause still holds"
    leave.set()
    thread.join(10)
    assert gc.isenabled()
