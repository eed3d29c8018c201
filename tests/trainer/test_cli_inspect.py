"""``inspect`` and ``export-latents``: the inspector's numbers and the latents table, headless;
``evaluate``'s IWAE standard error; ``encode``'s one fixed x per image."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from cli_output import FAST, assert_one_line_error, lines
from PIL import Image

from trainer import Session, load_source
from trainer.checkpoint import load_checkpoint
from trainer.cli import main
from trainer.evidence import evidence_input


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ckpt"
    assert main(["train", "digits", "--epochs", "3", "--out", str(out), *FAST]) == 0
    return out


@pytest.fixture(scope="module")
def plane(trained, digits):
    """The plane's dots as the app draws them: a session resumed from the checkpoint."""
    return Session.from_checkpoint(load_checkpoint(trained), digits).snapshot()


@pytest.mark.parametrize("index", [0, 272, 1482])
def test_inspect_prints_the_inspectors_numbers_for_the_planes_dot(trained, plane, index,
                                                                  capsys):
    assert main(["inspect", "--checkpoint", str(trained), "--index", str(index)]) == 0
    [r] = lines(capsys.readouterr().out)
    assert r["index"] == index and r["label"] == int(load_source("digits").labels[index])
    np.testing.assert_allclose(r["mu"], plane.mu[index], rtol=0, atol=1e-5)
    np.testing.assert_allclose(r["sigma"], plane.sigma[index], rtol=1e-5)
    assert r["elbo"] == pytest.approx(r["recon"] - r["kl"], abs=1e-4) and r["kl"] >= 0
    assert r["inference_gap"] == pytest.approx(r["log_px"] - r["elbo"], abs=1e-6)
    assert r["inference_gap"] >= -1e-3
    assert r["iwae_k"] == 1000 and 0 < r["iwae_se"] < 1
    # A stochastic lower bound: within a few standard errors of the exact value, from below.
    assert r["iwae"] <= r["log_px"] + 4 * r["iwae_se"] + 1e-3
    assert "q_star_mu" not in r


def test_inspect_optimise_splits_the_gap(trained, capsys):
    assert main(["inspect", "--checkpoint", str(trained), "digits", "--index", "5",
                 "--optimise"]) == 0
    [r] = lines(capsys.readouterr().out)
    assert len(r["q_star_mu"]) == 2 and all(s > 0 for s in r["q_star_sigma"])
    assert r["amortization_gap"] >= -1e-6 and r["approximation_gap"] >= -0.01
    assert r["amortization_gap"] + r["approximation_gap"] == pytest.approx(r["inference_gap"],
                                                                         abs=1e-6)


def test_export_latents_writes_the_guis_table_with_a_progress_bar(trained, plane, digits,
                                                                  tmp_path, capsys):
    out = tmp_path / "latents.csv"
    assert main(["export-latents", "--checkpoint", str(trained), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "latents" in err and "100%" in err and f"wrote {len(digits)} rows" in err
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["index", "label", "name", "mu1", "mu2", "sigma1", "sigma2", "elbo_nats"]
    body = rows[1:]
    assert [int(r[0]) for r in body] == list(range(len(digits)))
    assert [int(r[1]) for r in body] == digits.labels.tolist()
    table = np.array([[float(v) for v in r[3:]] for r in body])
    np.testing.assert_allclose(table[:, :2], plane.mu, rtol=0, atol=1e-5)
    np.testing.assert_allclose(table[:, 2:4], plane.sigma, rtol=1e-5)
    assert np.all(np.isfinite(table[:, 4])) and np.all(table[:, 4] < 0)


@pytest.mark.parametrize("argv, fragments", [
    (["inspect", "--checkpoint", "CKPT", "--index", "5000"], ["--index 5000", "0..1796"]),
    (["inspect", "--checkpoint", "CKPT", "--index", "-1"], ["out of range"]),
    (["inspect", "--checkpoint", "no/such/ckpt", "--index", "0"], ["no such checkpoint"]),
    (["inspect", "--checkpoint", "CKPT", "no/such/data", "--index", "0"], ["no/such/data"]),
    (["export-latents", "--checkpoint", "no/such/ckpt", "--out", "x.csv"],
     ["no such checkpoint"]),
    (["export-latents", "--checkpoint", "CKPT", "--out", "no/such/dir/x.csv"], ["no/such/dir"]),
])
def test_bad_input_is_one_line_and_exit_2(trained, argv, fragments, tmp_path, capsys,
                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(trained) if a == "CKPT" else a for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_line_error(captured.err, *fragments)


def test_inspect_of_a_larger_latent_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "ckpt3"
    assert main(["train", "digits", "--epochs", "1", "--latent-dim", "3", "--out", str(out),
                 *FAST]) == 0
    capsys.readouterr()
    assert main(["inspect", "--checkpoint", str(out), "--index", "0"]) == 2
    assert_one_line_error(capsys.readouterr().err, "2-D latent")


def test_evaluate_reports_the_iwae_standard_error(trained, capsys):
    assert main(["evaluate", "--checkpoint", str(trained), "--k", "64", "--grid", "64",
                 "--max-points", "50"]) == 0
    [r] = lines(capsys.readouterr().out)
    assert 0 < r["iwae_se"] < 0.5
    assert r["iwae"] <= r["grid_log_px"] + 4 * r["iwae_se"] + 0.02


def test_encode_scores_one_fixed_x_per_file(trained, digits, tmp_path, capsys):
    path = tmp_path / "seven.png"
    Image.fromarray((digits.as_float([7]).reshape(8, 8) * 255).astype(np.uint8)).save(path)
    assert main(["encode", "--checkpoint", str(trained), str(path), str(path)]) == 0
    first, second = lines(capsys.readouterr().out)
    assert first["mu"] == second["mu"] and first["elbo"] == second["elbo"]
    # mu is f_phi of the file's fixed binarisation, not of its grey image.
    model = load_checkpoint(trained).build_model()
    from trainer import preprocess_image, read_image
    ck = load_checkpoint(trained)
    grey = preprocess_image(read_image(str(path))[0], ck.image_shape,
                            fill=ck.dataset_ref.get("fit_fraction")).reshape(1, -1)
    import torch
    x = torch.from_numpy(evidence_input(grey, "dynamic"))
    assert set(np.unique(x.numpy())) <= {0.0, 1.0}
    mu = model.encode(x)[0][0].tolist()
    np.testing.assert_allclose(first["mu"], mu, rtol=0, atol=1e-6)
