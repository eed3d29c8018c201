"""The headless commands, called in-process through main([...]) and once as a real
``python -m trainer`` subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_output import FAST, assert_one_line_error, lines
from PIL import Image

from trainer import load_source
from trainer.checkpoint import load_checkpoint
from trainer.cli import main

ROOT = Path(__file__).resolve().parents[2]
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run shared by the encode/evaluate tests (2 epochs of digits)."""
    out = tmp_path_factory.mktemp("run") / "ckpt"
    assert main(["train", "digits", "--epochs", "2", "--out", str(out), *FAST]) == 0
    return out


def test_train_writes_a_checkpoint_and_one_json_line(tmp_path, capsys):
    out = tmp_path / "ckpt"
    code = main(["train", "digits", "--epochs", "1", "--out", str(out), "--seed", "5",
                 "--lr", "0.002", "--batch-size", "64", *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    [record] = lines(captured.out)
    for key in ("heldout_elbo", "heldout_recon", "heldout_kl", "train_elbo", "samples_seen",
                "seconds", "epochs", "samples_per_s", "checkpoint", "likelihood",
                "binarization"):
        assert key in record, key
    assert record["heldout_elbo"] < 0 and record["heldout_recon"] < 0
    assert record["heldout_kl"] >= 0
    assert record["heldout_elbo"] == pytest.approx(record["heldout_recon"] - record["heldout_kl"],
                                                   abs=1e-3)
    assert record["train_elbo"] < 0 and record["seconds"] > 0
    assert record["epochs"] == 1 and record["samples_seen"] >= record["n_train"]
    assert (record["likelihood"], record["binarization"]) == ("bernoulli", "dynamic")
    ck = load_checkpoint(record["checkpoint"])
    assert ck.config.hidden == (32, 32) and ck.config.seed == 5 and ck.config.lr == 0.002
    assert ck.config.batch_size == 64


def test_train_for_seconds_and_resume(tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert main(["train", "digits", "--seconds", "0.5", "--out", str(out), *FAST]) == 0
    first = lines(capsys.readouterr().out)[0]
    assert first["seconds"] >= 0.5
    assert main(["train", "digits", "--epochs", "1", "--resume", str(out), "--out", str(out),
                 "--lr", "0.0005", *FAST]) == 0
    second = lines(capsys.readouterr().out)[0]
    assert second["samples_seen"] > first["samples_seen"]
    assert second["epochs"] == first["epochs"] + 1
    ck = load_checkpoint(out)
    assert ck.config.lr == 0.0005 and ck.counters["samples"] == second["samples_seen"]


def test_gaussian_likelihood_defaults_to_no_binarization(tmp_path, capsys):
    code = main(["train", "digits", "--epochs", "1", "--likelihood", "gaussian",
                 "--out", str(tmp_path / "g"), *FAST])
    record = lines(capsys.readouterr().out)[0]
    assert code == 0 and record["binarization"] == "none"


def _digit_png(path: Path, image: np.ndarray, size: int = 32) -> Path:
    # A real digit, shown as a user would draw it: dark ink on white, larger than 8x8.
    grey = (255 - image.astype(np.float32) * 255 / 16).astype(np.uint8)
    Image.fromarray(grey).resize((size, size), Image.NEAREST).save(path)
    return path


def test_encode_reports_each_file_and_survives_bad_ones(trained, tmp_path, capsys):
    digits = load_source("digits")
    good = _digit_png(tmp_path / "three.png", digits.pixels[3])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:40])
    missing = tmp_path / "missing.png"
    also_good = _digit_png(tmp_path / "seven.png", digits.pixels[7], size=64)
    code = main(["encode", "--checkpoint", str(trained), str(good), str(corrupt), str(missing),
                 str(also_good)])
    records = lines(capsys.readouterr().out)
    assert code == 1
    assert [r["file"] for r in records] == [str(good), str(corrupt), str(missing),
                                            str(also_good)]
    for r in (records[0], records[3]):
        assert len(r["mu"]) == 2 and all(s > 0 for s in r["sigma"])
        assert r["elbo"] < 0 and r["kl"] >= 0
    assert "corrupt.png" in records[1]["error"] and "\n" not in records[1]["error"]
    assert "missing.png" in records[2]["error"]


def test_encode_of_good_files_exits_zero(trained, tmp_path, capsys):
    digits = load_source("digits")
    files = [str(_digit_png(tmp_path / f"{i}.png", digits.pixels[i])) for i in range(3)]
    assert main(["encode", "--checkpoint", str(trained), *files]) == 0
    assert len(lines(capsys.readouterr().out)) == 3


def test_encode_of_a_folder_reads_its_visible_images(trained, tmp_path, capsys):
    digits = load_source("digits")
    folder = tmp_path / "mine"
    for sub in ("a", "b", ".hidden"):
        (folder / sub).mkdir(parents=True)
    names = [_digit_png(folder / sub / f"{i}.png", digits.pixels[i])
             for i, sub in ((10, "b"), (2, "a"), (3, ".hidden"), (4, "."))]
    (folder / "notes.txt").write_text("not an image type: left out")
    assert main(["encode", "--checkpoint", str(trained), str(folder)]) == 0
    assert [r["file"] for r in lines(capsys.readouterr().out)] == [
        str(names[3]), str(names[1]), str(names[0])]  # the walker's natural order


def test_evaluate_reports_elbo_iwae_and_grid_log_px(trained, capsys):
    code = main(["evaluate", "--checkpoint", str(trained), "--k", "64", "--grid", "96"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    [r] = lines(captured.out)
    assert r["dataset"] == "digits" and r["same_dataset"] and r["n_points"] == 180
    assert r["heldout_elbo"] < 0 and r["heldout_kl"] >= 0
    # ELBO <= IWAE_k <= log p(x); the grid sum is exact up to its resolution.
    assert r["iwae"] >= r["heldout_elbo"] - 0.05
    assert r["grid_log_px"] >= r["iwae"] - 0.05
    assert r["gap"] == pytest.approx(r["grid_log_px"] - r["heldout_elbo"]) and r["gap"] >= 0


def test_evaluate_splits_the_gap_into_amortization_and_approximation(trained, capsys):
    code = main(["evaluate", "--checkpoint", str(trained), "--k", "16", "--grid", "64",
                 "--max-points", "20", "--gaps", "3"])
    [r] = lines(capsys.readouterr().out)
    assert code == 0 and r["inference"] == "amortized"
    for part in ("train", "heldout"):  # N training and N held-out points, separately
        g = r[part]
        assert g["n_points"] == 3 and g["q"] == "f_phi(x): one encoder pass"
        assert g["mean_amortization_gap"] >= -1e-6 and g["mean_approximation_gap"] >= -0.01
        assert g["mean_inference_gap"] == pytest.approx(
            g["mean_amortization_gap"] + g["mean_approximation_gap"], abs=1e-6)


@pytest.mark.parametrize("mode", ["free", "semi"])
def test_train_and_evaluate_in_each_inference_mode(mode, tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert main(["train", "digits", "--seconds", "1", "--out", str(out), "--inference", mode,
                 "--refine-steps", "3", "--free-steps", "2", *FAST]) == 0
    [t] = lines(capsys.readouterr().out)
    assert t["inference"] == mode and "heldout_q" in t and t["heldout_q_ms_per_point"] > 0
    if mode == "free":
        assert t["free_steps"] == 2 and t["free_lr"] == 0.1
    assert np.isfinite(t["heldout_elbo"]) and np.isfinite(t["train_elbo"])
    assert (out / "free.safetensors").is_file() == (mode == "free")
    assert main(["evaluate", "--checkpoint", str(out), "--k", "8", "--grid", "32",
                 "--max-points", "10", "--gaps", "2"]) == 0
    [r] = lines(capsys.readouterr().out)
    assert r["inference"] == mode and r["heldout_q"] == t["heldout_q"]
    for part in ("train", "heldout"):
        g = r[part]
        assert {"mean_amortization_gap", "mean_approximation_gap", "mean_inference_gap",
                "q", "q_seconds"} <= set(g)
        assert g["mean_amortization_gap"] >= -1e-6
    if mode == "free":  # training points are looked up, held-out points fitted
        assert r["train"]["q"] == "the free-form table"
        assert r["heldout"]["q"].startswith("fitted from the prior")
    else:
        assert r["train"]["q"] == r["heldout"]["q"] and "refined by 3" in r["train"]["q"]
    # The mode is fixed for a run: resuming cannot change it.
    assert main(["train", "digits", "--seconds", "1", "--out", str(out), "--resume", str(out),
                 "--inference", "amortized", *FAST]) == 2
    assert "cannot change inference" in capsys.readouterr().err


def test_evaluate_on_other_data_says_so(trained, tmp_path, capsys):
    digits = load_source("digits")
    other = tmp_path / "some.npy"
    np.save(other, digits.pixels[:300])
    code = main(["evaluate", "--checkpoint", str(trained), str(other), "--k", "8",
                 "--grid", "32"])
    captured = capsys.readouterr()
    assert code == 0
    assert "fingerprints differ" in captured.err
    assert lines(captured.out)[0]["same_dataset"] is False


@pytest.mark.parametrize("argv, fragments", [
    (["train", "no/such/folder", "--out", "X"], ["no/such/folder", "no such file"]),
    (["train", "digits", "--out", "X", "--likelihood", "gaussian", "--binarization",
      "dynamic"], ["binarization", "Gaussian"]),
    (["evaluate", "--checkpoint", "no/such/ckpt"], ["no/such/ckpt", "no such checkpoint"]),
    (["encode", "--checkpoint", "no/such/ckpt", "a.png"], ["no such checkpoint"]),
])
def test_bad_input_is_one_line_and_exit_2(argv, fragments, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_line_error(captured.err, *fragments)


def test_corrupt_data_and_checkpoint_are_one_line_errors(trained, tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["train", str(bad), "--out", str(tmp_path / "o"), *FAST]) == 2
    assert_one_line_error(capsys.readouterr().err, "bad.npz")
    (trained.parent / "broken").mkdir()
    (trained.parent / "broken" / "run.json").write_text("{oops")
    assert main(["evaluate", "--checkpoint", str(trained.parent / "broken")]) == 2
    assert_one_line_error(capsys.readouterr().err, "run.json", "not valid JSON")


def test_resume_cannot_change_the_architecture(trained, tmp_path, capsys):
    assert main(["train", "digits", "--resume", str(trained), "--out", str(tmp_path / "r"),
                 "--hidden", "64,64", "--epochs", "1", "--quiet"]) == 2
    assert_one_line_error(capsys.readouterr().err, "cannot change hidden")


def test_usage_errors_exit_2(capsys):
    assert main(["train", "digits"]) == 2  # --out is required
    assert "--out" in capsys.readouterr().err
    assert main(["train", "digits", "--out", "x", "--hidden", "5,zero"]) == 2
    assert main(["train", "digits", "--out", "x", "--seconds", "-1"]) == 2


def test_python_dash_m_trainer_runs_as_a_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "ckpt"
    done = subprocess.run([sys.executable, "-m", "trainer", "train", "digits", "--epochs", "1",
                           "--threads", "1", "--out", str(out), "--hidden", "16,16"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["heldout_elbo"] < 0 and Path(record["checkpoint"]) == out
    assert "train" in done.stderr  # the progress bar
    failed = subprocess.run([sys.executable, "-m", "trainer", "evaluate", "--checkpoint",
                             str(tmp_path / "nothing")], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert failed.returncode == 2
    assert_one_line_error(failed.stderr, "no such checkpoint directory")
