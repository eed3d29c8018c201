"""Every leaf of a real run.json replaced by each of a set of hostile values: loading either
succeeds (and then the run resumes, trains a step and evaluates) or raises one
CheckpointError line. No other exception, ever."""

from __future__ import annotations

import json
import shutil

import pytest

from trainer import ConfigError, Session, TrainConfig, load_source
from trainer.checkpoint import RUN_FILE, CheckpointError, load_checkpoint, save_checkpoint

HOSTILE = [None, True, "x", -1, 0, 2.5, 2**70, 1e308, float("nan"), float("-inf"), [], {},
           [1, 2]]


def leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, (*path, k))
    elif isinstance(node, list) and node and len(path) < 4:
        for i, v in enumerate(node[:2]):  # the first rows of a table are enough
            yield from leaves(v, (*path, i))
    else:
        yield path


def replaced(run: dict, path: tuple, value) -> dict:
    run = json.loads(json.dumps(run))
    node = run
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return run


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    digits = load_source("digits")
    session = Session(digits, TrainConfig(hidden=(8,), threads=1, eval_every_seconds=1e9,
                                          seed=2))
    while len(session.train_history) < 2:
        session.step()
    session.evaluate_heldout()
    return save_checkpoint(session, tmp_path_factory.mktemp("b") / "ckpt"), digits


def test_every_hostile_leaf_is_refused_in_one_line_or_works(base, tmp_path):
    ckpt, digits = base
    run = json.loads((ckpt / RUN_FILE).read_text())
    d = tmp_path / "fuzz"
    shutil.copytree(ckpt, d)
    problems, refused, accepted = [], 0, 0
    for path in leaves(run):
        for value in HOSTILE:
            (d / RUN_FILE).write_text(json.dumps(replaced(run, path, value)))
            try:
                checkpoint = load_checkpoint(d)
            except CheckpointError as e:
                refused += 1
                if "\n" in str(e) or str(d) not in str(e):
                    problems.append((path, value, f"message: {e}"))
                continue
            except Exception as e:  # noqa: BLE001 - the point of the test
                problems.append((path, value, f"load: {type(e).__name__}: {e}"))
                continue
            accepted += 1
            try:
                session = Session.from_checkpoint(checkpoint, digits, strict=False)
                session.step()
                session.evaluate_heldout()
                session.snapshot()
                checkpoint.build_model()
            except (CheckpointError, ConfigError):
                pass
            except Exception as e:  # noqa: BLE001
                problems.append((path, value, f"resume: {type(e).__name__}: {e}"))
    assert not problems, "\n".join(map(str, problems[:40]))
    assert refused > 100 and accepted > 10
