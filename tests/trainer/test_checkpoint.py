"""Checkpoints: exact round trips and resumes, atomic writes, and crafted files that must
fail cleanly (never executing anything)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer import Session, TrainConfig, load_source
from trainer.checkpoint import (
    CHECKPOINT_FILES,
    MODEL_FILE,
    OPTIMIZER_FILE,
    RUN_FILE,
    CheckpointError,
    load_checkpoint,
    read_run_json,
    save_checkpoint,
)

SMALL = TrainConfig(hidden=(32, 32), seed=3, eval_every_seconds=1e9)


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


@pytest.fixture
def trained(digits):
    session = Session(digits, SMALL)
    # Past two epochs (a mid-epoch cursor, Adam state) and until a train-curve row exists
    # (rows are means over 0.1 s of training time).
    while session.step_count < 30 or len(session.train_history) == 0:
        session.step()
    session.evaluate_heldout()
    return session


@pytest.fixture
def saved(trained, tmp_path):
    return save_checkpoint(trained, tmp_path / "ckpt")


def test_round_trip_keeps_weights_optimizer_history_and_latents(trained, saved, digits):
    ck = load_checkpoint(saved)
    assert sorted(p.name for p in saved.iterdir()) == [MODEL_FILE, OPTIMIZER_FILE, RUN_FILE]
    restored = Session.from_checkpoint(ck, digits)
    for (name, a), b in zip(trained.model.state_dict().items(),
                            restored.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    sa, sb = trained.optimizer.state_dict(), restored.optimizer.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i, state in sa["state"].items():
        for key, value in state.items():
            assert torch.equal(value, sb["state"][i][key]), (i, key)
    for which in ("train", "heldout"):
        a = getattr(trained, f"{which}_history").arrays()
        b = getattr(restored, f"{which}_history").arrays()
        assert len(a["elbo"]) > 0
        for column in a:
            np.testing.assert_array_equal(a[column], b[column])
    assert (restored.step_count, restored.epoch, restored.samples_seen) == (
        trained.step_count, trained.epoch, trained.samples_seen)
    assert restored.seconds == pytest.approx(trained.seconds)
    np.testing.assert_array_equal(trained.snapshot().mu, restored.snapshot().mu)


def test_run_json_states_what_the_numbers_mean(saved, trained, digits):
    run = json.loads((saved / RUN_FILE).read_text())
    assert run["format"] == "latent-explorer-checkpoint" and run["version"] == 1
    assert run["likelihood"] == "bernoulli" and run["binarization"] == "dynamic"
    assert run["dataset"]["fingerprint"] == digits.fingerprint()
    assert run["dataset"]["image_shape"] == [8, 8] and run["dataset"]["n"] == len(digits)
    assert 0 < run["dataset"]["fit_fraction"] <= 1
    assert run["split"] == trained.split.describe()
    assert run["counters"]["step"] == trained.step_count
    assert {"torch", "numpy", "safetensors", "python"} <= set(run["libraries"])
    assert TrainConfig.from_dict(run["config"]) == trained.config


def test_the_layout_is_named_once_and_its_run_record_read_by_one_reader(saved, trained):
    assert sorted(p.name for p in saved.iterdir()) == sorted(CHECKPOINT_FILES)
    run = read_run_json(saved)
    assert run["counters"]["step"] == trained.step_count
    assert run == json.loads((saved / RUN_FILE).read_text())
    (saved / RUN_FILE).write_text('{"format": "something-else", "version": 1}')
    with pytest.raises(CheckpointError, match=f"{RUN_FILE}: not a Latent Explorer checkpoint"):
        read_run_json(saved)


def test_resume_continues_exactly_as_if_never_stopped(trained, saved, digits):
    resumed = Session.from_checkpoint(load_checkpoint(saved), digits)
    for _ in range(20):  # crosses an epoch boundary: the saved order and RNG both matter
        a, b = trained.step(), resumed.step()
        assert a == b
    for p, q in zip(trained.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert resumed.epoch == trained.epoch >= 3


def test_resume_refuses_a_different_dataset_unless_asked(saved, digits):
    other = load_source("digits")
    other.pixels = other.pixels[::-1].copy()
    ck = load_checkpoint(saved)
    with pytest.raises(CheckpointError, match="not the dataset"):
        Session.from_checkpoint(ck, other)
    session = Session.from_checkpoint(ck, other, strict=False)
    assert session.step_count == ck.counters["step"] and session.step() is not None


def test_overwrite_replaces_and_leaves_no_temporary_files(trained, saved):
    for _ in range(5):
        trained.step()
    save_checkpoint(trained, saved)
    assert load_checkpoint(saved).counters["step"] == trained.step_count
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_a_crash_while_writing_leaves_the_old_checkpoint(trained, saved, monkeypatch):
    import trainer.checkpoint as module

    real_write = module._write

    def write_then_crash(path: Path, data: bytes) -> None:
        if path.name == OPTIMIZER_FILE:  # the model file is already half of the new one
            real_write(path, data[: len(data) // 2])
            raise OSError("disk full")
        real_write(path, data)

    steps = trained.step_count
    trained.step()
    monkeypatch.setattr(module, "_write", write_then_crash)
    with pytest.raises(CheckpointError, match=r"ckpt: cannot write the checkpoint \(disk full\); "
                       "the previous checkpoint there is kept"):
        save_checkpoint(trained, saved)
    assert load_checkpoint(saved).counters["step"] == steps
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_refuses_to_overwrite_a_folder_that_is_not_a_checkpoint(trained, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="refusing to overwrite"):
        save_checkpoint(trained, tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


class _Payload:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["pickle", "torch.save"])
def test_a_pickle_renamed_to_safetensors_never_runs(saved, tmp_path, kind):
    marker = tmp_path / "pwned"
    target = saved / MODEL_FILE
    if kind == "pickle":
        target.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        torch.save({"encoder.0.weight": _Payload(marker)}, target)
    with pytest.raises(CheckpointError, match=f"{MODEL_FILE}: not a valid safetensors file"):
        load_checkpoint(saved)
    assert not marker.exists()


@pytest.mark.parametrize("name", [MODEL_FILE, OPTIMIZER_FILE])
def test_truncated_safetensors(saved, name):
    path = saved / name
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=f"{name}: not a valid safetensors file"):
        load_checkpoint(saved)


def test_wrong_tensor_shapes(saved, digits, tmp_path):
    wider = Session(digits, SMALL.replace(hidden=(48, 32)))
    wider.step()
    other = save_checkpoint(wider, tmp_path / "wider")
    (saved / MODEL_FILE).write_bytes((other / MODEL_FILE).read_bytes())
    with pytest.raises(CheckpointError, match=r"model.safetensors: tensor encoder.0.weight has "
                                              r"shape \[48, 64\], the recorded config needs "
                                              r"\[32, 64\]"):
        load_checkpoint(saved)
    (saved / MODEL_FILE).write_bytes((other / OPTIMIZER_FILE).read_bytes())
    with pytest.raises(CheckpointError, match="tensor names do not match"):
        load_checkpoint(saved)


def test_wrong_optimizer_shapes(saved, digits, tmp_path):
    wider = Session(digits, SMALL.replace(hidden=(48, 32)))
    wider.step()
    other = save_checkpoint(wider, tmp_path / "wider")
    (saved / OPTIMIZER_FILE).write_bytes((other / OPTIMIZER_FILE).read_bytes())
    with pytest.raises(CheckpointError, match=r"optimizer.safetensors: tensor state.0.exp_avg"):
        load_checkpoint(saved)


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"format": "something-else", "version": 1}', "not a Latent Explorer checkpoint"),
])
def test_garbage_json(saved, text, message):
    (saved / RUN_FILE).write_text(text)
    with pytest.raises(CheckpointError, match=f"{RUN_FILE}: {message}"):
        load_checkpoint(saved)


def _edit_run(saved: Path, edit) -> None:
    run = json.loads((saved / RUN_FILE).read_text())
    edit(run)
    (saved / RUN_FILE).write_text(json.dumps(run))


def test_future_and_past_format_versions(saved):
    _edit_run(saved, lambda r: r.update(version=99))
    with pytest.raises(CheckpointError, match="newer Latent Explorer .*format 99.*upgrade"):
        load_checkpoint(saved)
    _edit_run(saved, lambda r: r.update(version=0))
    with pytest.raises(CheckpointError, match="format 0 is older"):
        load_checkpoint(saved)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("counters"), "'counters' missing"),
    (lambda r: r["counters"].update(step="ten"), "counters.'step' missing or not a float"),
    (lambda r: r["dataset"].update(image_shape=[8]), "image_shape must be two positive"),
    (lambda r: r["history"]["train"]["rows"].append([1, 2]), "history.train is malformed"),
    (lambda r: r["config"].update(likelihood="poisson"), "bad config: likelihood"),
    (lambda r: r["config"].update(colour="red"), "bad config: unknown config field"),
    (lambda r: r["optimizer"]["param_groups"][0].update(params=[0]), "param_groups do not"),
])
def test_malformed_run_json(saved, edit, message):
    _edit_run(saved, edit)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(saved)


@pytest.mark.parametrize("name", [MODEL_FILE, OPTIMIZER_FILE, RUN_FILE])
def test_missing_files(saved, name):
    (saved / name).unlink()
    with pytest.raises(CheckpointError, match=f"{name}: missing"):
        load_checkpoint(saved)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_checkpoint(tmp_path / "nowhere")


def test_errors_are_one_line_value_errors(saved):
    (saved / RUN_FILE).write_text("{\n\n oops")
    with pytest.raises(ValueError) as info:
        load_checkpoint(saved)
    assert "\n" not in str(info.value) and str(saved / RUN_FILE) in str(info.value)


def test_a_non_finite_curve_point_is_written_as_strict_json_and_read_back(trained, tmp_path):
    trained.train_history.append(**{c: float("nan") for c in trained.train_history.columns})
    folder = save_checkpoint(trained, tmp_path / "nan")
    text = (folder / RUN_FILE).read_text()
    run = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert run["history"]["train"]["rows"][-1] == [None] * len(trained.train_history.columns)

    back = load_checkpoint(folder)
    rows = back.history["train"]["rows"]
    assert rows[:-1] == trained.train_history.to_dict()["rows"][:-1]
    resumed = Session.from_checkpoint(back, trained.dataset)
    assert np.isnan(resumed.train_history.arrays()["elbo"][-1])
