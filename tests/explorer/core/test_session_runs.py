"""Sessions of several runs: every run saved and reopened with its name, colour and weights;
the first run is a complete one-run session at the top of the file; one-run files still open."""

from __future__ import annotations

import dataclasses
import json
import zipfile

import pytest
import torch

from explorer.core.session_file import (
    SESSION_JSON,
    SavedRun,
    SessionFileError,
    SessionState,
    load_session,
    save_session,
)
from trainer import Session, TrainConfig

SMALL = TrainConfig(hidden=(16,), threads=1, batch_size=64, eval_every_seconds=1e9,
                    logpx_points=0)


def trained(dataset, **changes) -> Session:
    session = Session(dataset, SMALL.replace(**changes))
    for _ in range(5):
        session.step()
    return session


@pytest.fixture(scope="module")
def two(digits):
    return trained(digits), trained(digits, beta=4.0, seed=1)



def test_two_runs_round_trip(two, tmp_path):
    first, second = two
    path = save_session(tmp_path / "two.lexp", SessionState(
        first, selected_point=7, name="beta=1", colour="#0072b2",
        more_runs=[SavedRun(second, "beta=4", "#d55e00")], view={"schedule": "all"}))
    loaded = load_session(path)
    assert [(r.name, r.colour) for r in loaded.runs] == [("beta=1", "#0072b2"),
                                                          ("beta=4", "#d55e00")]
    assert loaded.runs[0].checkpoint is loaded.checkpoint
    assert loaded.runs[1].checkpoint.config.beta == 4.0
    assert loaded.runs[1].checkpoint.config.seed == 1
    assert loaded.selected_point == 7 and loaded.view["schedule"] == "all"
    for run, session in zip(loaded.runs, two, strict=True):
        resumed = Session.from_checkpoint(run.checkpoint, session.dataset)
        for name, tensor in session.model.state_dict().items():
            assert torch.equal(resumed.model.state_dict()[name], tensor), name
        assert resumed.step_count == session.step_count


def test_the_first_run_is_a_one_run_session_and_one_run_files_still_open(two, tmp_path):
    first, second = two
    path = save_session(tmp_path / "two.lexp", SessionState(
        first, name="a", more_runs=[SavedRun(second, "b")]))
    # Strip what a one-run reader does not know: what is left is a complete one-run file,
    # the same format version, and it opens as the first run.
    one = tmp_path / "one.lexp"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(one, "w") as dst:
        names = src.namelist()
        assert any(n.startswith("runs/1/") for n in names)
        for name in names:
            if name.startswith("runs/"):
                continue
            data = src.read(name)
            if name == SESSION_JSON:
                meta = json.loads(data)
                assert meta["version"] == 1
                del meta["runs"]  # as written before runs had names
                data = json.dumps(meta).encode()
            dst.writestr(name, data)
    loaded = load_session(one)
    assert len(loaded.runs) == 1 and loaded.runs[0].name is None
    assert loaded.checkpoint.config == load_session(path).checkpoint.config


def test_a_run_on_another_dataset_or_a_missing_run_is_refused(two, digits, tmp_path):
    first, second = two
    other = dataclasses.replace(digits, pixels=digits.pixels[:500], labels=digits.labels[:500])
    with pytest.raises(SessionFileError, match="another dataset"):
        save_session(tmp_path / "mixed.lexp", SessionState(
            first, more_runs=[SavedRun(trained(other), "small")]))
    path = save_session(tmp_path / "two.lexp", SessionState(
        first, more_runs=[SavedRun(second, "b")]))
    cut = tmp_path / "cut.lexp"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(cut, "w") as dst:
        for name in src.namelist():
            if name != "runs/1/model.safetensors":
                dst.writestr(name, src.read(name))
    with pytest.raises(SessionFileError, match="missing runs/1/model.safetensors"):
        load_session(cut)
    with pytest.raises(SessionFileError, match="at most 4 runs"):
        save_session(tmp_path / "many.lexp", SessionState(
            first, more_runs=[SavedRun(second, str(k)) for k in range(4)]))


def test_a_free_form_run_keeps_its_lambda_table_in_the_session(two, digits, tmp_path):
    """The free-form table is part of the checkpoint (trainer names its files): a session
    holding a free run as its second run reopens with the table exactly."""
    first, _ = two
    free = trained(digits, inference="free")
    path = save_session(tmp_path / "free.lexp", SessionState(
        first, more_runs=[SavedRun(free, "free", "#009e73")]))
    with zipfile.ZipFile(path) as zf:
        assert "runs/1/free.safetensors" in zf.namelist()
        assert not any(n.endswith("free.safetensors") and not n.startswith("runs/")
                       for n in zf.namelist())
    resumed = Session.from_checkpoint(load_session(path).runs[1].checkpoint, digits)
    assert torch.equal(resumed.inference.table, free.inference.table)
