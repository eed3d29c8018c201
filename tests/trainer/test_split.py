"""The held-out split is data: kept through a reset with a new seed, saved in the checkpoint,
restored exactly on resume, and never trained on."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
import torch

from trainer import Session, TrainConfig, load_source, split_indices
from trainer.checkpoint import OPTIMIZER_FILE, CheckpointError, load_checkpoint, save_checkpoint

SMALL = TrainConfig(hidden=(16,), seed=0, batch_size=256, eval_every_seconds=1e9,
                    logpx_points=0)


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


def train_recording(session: Session, steps: int, seen: set[int]) -> None:
    """Step the real session, recording the dataset indices of every minibatch it trains on
    (the slice of its epoch order that ``step`` gathers its images by)."""
    for _ in range(steps):
        bs = session.config.batch_size
        seen.update(session._order[session._cursor:session._cursor + bs].tolist())
        session.step()


def test_reset_with_a_new_seed_save_and_resume_never_trains_on_heldout(digits, tmp_path):
    session = Session(digits, SMALL)
    heldout = session.split.heldout.copy()
    seen: set[int] = set()
    train_recording(session, 10, seen)
    session.reset(SMALL.replace(seed=7))  # the GUI's Reset with a new seed
    np.testing.assert_array_equal(session.split.heldout, heldout)
    train_recording(session, 10, seen)
    save_checkpoint(session, tmp_path / "ckpt")

    ck = load_checkpoint(tmp_path / "ckpt")
    np.testing.assert_array_equal(ck.engine_state["heldout"].numpy(), heldout)
    resumed = Session.from_checkpoint(ck, digits)
    assert resumed.config.seed == 7
    np.testing.assert_array_equal(resumed.split.heldout, heldout)
    steps_per_epoch = -(-len(resumed.split.train) // SMALL.batch_size)
    train_recording(resumed, 3 * steps_per_epoch, seen)  # several fresh epoch orders too
    assert not seen & set(heldout.tolist())
    assert seen == set(resumed.split.train.tolist())  # and every training image was used
    # The held-out numbers are computed on exactly those images.
    np.testing.assert_array_equal(
        resumed.heldout_inputs().numpy(), Session(digits, SMALL).heldout_inputs().numpy())


def rewrite_engine(path, edit) -> None:
    tensors = safetensors.torch.load_file(path / OPTIMIZER_FILE)
    edit(tensors)
    safetensors.torch.save_file(tensors, path / OPTIMIZER_FILE)


def test_an_older_checkpoint_falls_back_to_the_split_run_json_records(digits, tmp_path):
    session = Session(digits, SMALL)
    session.step()
    session.reset(SMALL.replace(seed=7))
    session.step()
    save_checkpoint(session, tmp_path / "ckpt")
    rewrite_engine(tmp_path / "ckpt", lambda t: t.pop("engine.heldout"))
    ck = load_checkpoint(tmp_path / "ckpt")
    assert ck.split["seed"] == 0
    resumed = Session.from_checkpoint(ck, digits)
    np.testing.assert_array_equal(resumed.split.heldout, session.split.heldout)


def test_another_dataset_gets_the_recorded_split_rule(digits, tmp_path):
    session = Session(digits, SMALL)
    session.step()
    save_checkpoint(session, tmp_path / "ckpt")
    smaller = load_source("digits")
    smaller.pixels = smaller.pixels[:500]
    smaller.labels = smaller.labels[:500]
    resumed = Session.from_checkpoint(load_checkpoint(tmp_path / "ckpt"), smaller, strict=False)
    expected = split_indices(500, SMALL.heldout_fraction, SMALL.seed)
    np.testing.assert_array_equal(resumed.split.heldout, expected.heldout)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update({"engine.heldout": t["engine.heldout"].clone().fill_(0)}), "repeats"),
    (lambda t: t["engine.heldout"].__setitem__(0, 10_000), "outside"),
    (lambda t: t["engine.heldout"].__setitem__(0, -1), "outside"),
    (lambda t: t.update({"engine.heldout": t["engine.heldout"].int()}), "int64"),
    (lambda t: t.update({"engine.heldout": torch.arange(1797)}), "between 1 and n - 1"),
    (lambda t: t.update({"engine.heldout": t["engine.heldout"][:-1]}), "records 180"),
])
def test_a_crafted_heldout_set_is_refused(digits, tmp_path, edit, message):
    session = Session(digits, SMALL)
    session.step()
    save_checkpoint(session, tmp_path / "ckpt")
    rewrite_engine(tmp_path / "ckpt", edit)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(tmp_path / "ckpt")
    assert OPTIMIZER_FILE in str(info.value) and "\n" not in str(info.value)


def test_a_saved_order_that_trains_on_a_saved_heldout_image_is_refused(digits, tmp_path):
    session = Session(digits, SMALL)
    session.step()
    save_checkpoint(session, tmp_path / "ckpt")
    rewrite_engine(tmp_path / "ckpt",
                   lambda t: t["engine.heldout"].__setitem__(0, int(t["engine.order"][0])))
    with pytest.raises(CheckpointError, match="engine.order is not a permutation"):
        Session.from_checkpoint(load_checkpoint(tmp_path / "ckpt"), digits)
