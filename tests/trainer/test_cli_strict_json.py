"""Every command's stdout is strict JSON: NaN and infinities are not JSON (json.dumps writes
them as bare NaN / Infinity, which strict parsers reject), so they come out as null with a
"nonfinite" field naming the keys."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.torch
from PIL import Image

from trainer.checkpoint import MODEL_FILE, load_checkpoint
from trainer.cli import main


def strict(line: str) -> dict:
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON: {line}")
    return json.loads(line, parse_constant=refuse)


def records(out: str) -> list[dict]:
    return [strict(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ckpt"
    assert main(["train", "digits", "--epochs", "1", "--out", str(out), "--hidden", "16",
                 "--quiet", "--threads", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def overflowing(trained, tmp_path_factory):
    """Finite weights whose outputs overflow float32: a decoder bias of 3e38 makes every
    log-likelihood -inf, so ELBO, IWAE and the gaps are -inf or NaN."""
    import shutil

    d = tmp_path_factory.mktemp("over") / "ckpt"
    shutil.copytree(trained, d)
    tensors = safetensors.torch.load((d / MODEL_FILE).read_bytes())
    last = max(k for k in tensors if k.startswith("decoder.") and k.endswith(".bias"))
    tensors[last][:] = 3e38
    (d / MODEL_FILE).write_bytes(safetensors.torch.save(tensors))
    load_checkpoint(d)  # finite, so it loads
    return d


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "diag.png"
    Image.fromarray((np.eye(16) * 255).astype(np.uint8)).save(path)
    return path


def test_train_output_is_strict_json(tmp_path, capsys):
    assert main(["train", "digits", "--epochs", "1", "--out", str(tmp_path / "c"),
                 "--hidden", "16", "--quiet", "--threads", "1"]) == 0
    [record] = records(capsys.readouterr().out)
    assert "nonfinite" not in record and np.isfinite(record["heldout_elbo"])


def test_evaluate_of_an_overflowing_model_writes_null_and_says_why(overflowing, capsys):
    assert main(["evaluate", "--checkpoint", str(overflowing), "--k", "4", "--grid", "16",
                 "--max-points", "8", "--threads", "1"]) == 0
    [record] = records(capsys.readouterr().out)
    assert record["heldout_elbo"] is None and "heldout_elbo" in record["nonfinite"]
    for key in record["nonfinite"]:
        assert record[key] is None
    assert record["n_points"] == 8  # the finite fields are still there


def test_encode_of_an_overflowing_model_writes_null_and_says_why(overflowing, image, capsys):
    assert main(["encode", "--checkpoint", str(overflowing), str(image)]) == 0
    [record] = records(capsys.readouterr().out)
    assert record["elbo"] is None and "elbo" in record["nonfinite"]
    assert all(np.isfinite(record["mu"]))


def test_evaluate_and_encode_of_a_sane_model_are_strict_json(trained, image, capsys):
    assert main(["evaluate", "--checkpoint", str(trained), "--k", "4", "--grid", "16",
                 "--max-points", "8", "--threads", "1"]) == 0
    assert main(["encode", "--checkpoint", str(trained), str(image)]) == 0
    for record in records(capsys.readouterr().out):
        assert "nonfinite" not in record
