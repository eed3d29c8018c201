"""Colour datasets: channels kept from files and folders, grey kept grey, dropped and encoded
images brought to the dataset's channels, and the headless commands on colour and conv runs."""

from __future__ import annotations

import numpy as np
import pytest
from cli_output import lines
from PIL import Image

from trainer import load_image_for, load_source, prepare_image, read_colour
from trainer.checkpoint import load_checkpoint
from trainer.cli import main
from trainer.images import load_folder


def colour_images(n: int = 12, side: int = 10, seed: int = 0) -> np.ndarray:
    """Blocks of one saturated colour each, on black."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, side, side, 3), np.uint8)
    for i in range(n):
        top, left = rng.integers(0, side // 2, 2)
        images[i, top:top + side // 2, left:left + side // 2, i % 3] = 255
    return images


def test_npz_colour_images_stay_colour(tmp_path):
    images = colour_images()
    np.savez(tmp_path / "c.npz", images=images, labels=np.arange(12) % 3)
    d = load_source(tmp_path / "c.npz")
    assert d.channels == 3 and d.image_shape == (10, 10) and d.n_pixels == 300
    np.testing.assert_array_equal(d.pixels, images)
    # Flattened in the stored order (rows, columns, channels): what the model's x is.
    np.testing.assert_allclose(d.as_float([4])[0], images[4].reshape(-1) / 255, rtol=1e-6)


def test_a_folder_of_colour_images_is_a_colour_dataset(tmp_path):
    for i, image in enumerate(colour_images()):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    Image.fromarray(colour_images(1, 20)[0]).save(tmp_path / "big.png")  # resized, aspect kept
    d = load_folder(tmp_path)
    assert d.channels == 3 and d.pixels.shape == (13, 10, 10, 3)
    assert d.inverted is False
    assert any("kept in RGB" in note for note in d.notes), d.notes
    assert any("resized" in note for note in d.notes), d.notes
    np.testing.assert_array_equal(d.pixels[d.names.index("0.png")], colour_images()[0])


def test_a_colour_folder_is_cached_in_colour(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i, image in enumerate(colour_images()):
        Image.fromarray(image).save(folder / f"{i}.png")
    first = load_folder(folder, cache_min_images=1)
    again = load_folder(folder, cache_min_images=1)
    assert again.memory_mapped and again.channels == 3
    np.testing.assert_array_equal(again.pixels, first.pixels)
    assert again.fingerprint() == first.fingerprint()


def test_grey_pictures_saved_in_rgb_stay_grey(tmp_path):
    """Scans and JPEGs are often RGB files of grey content: the dataset stays grey, with the
    polarity rule as before."""
    ink = np.full((16, 16), 230, np.uint8)
    ink[4:12, 6:9] = 20  # a dark stroke on white paper
    for i in range(6):
        Image.fromarray(np.roll(ink, i, axis=1)).convert("RGB").save(tmp_path / f"{i}.jpg",
                                                                     quality=90)
    d = load_folder(tmp_path)
    assert d.channels == 1 and d.pixels.ndim == 3
    assert d.inverted is True  # dark ink on light: inverted, like MNIST


def test_dropped_images_take_the_dataset_channels(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20, 0] = 255  # red left half, blue right half
    rgb[:, 20:, 2] = 255
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    Image.fromarray(np.full((10, 10), 128, np.uint8)).save(tmp_path / "grey.png")
    x, _ = prepare_image(tmp_path / "wide.png", (10, 10), channels=3)
    assert x.shape == (10, 10, 3)
    # Fitted whole, aspect kept (40 x 20 -> 10 x 5 rows), centred on black.
    np.testing.assert_allclose(x[:2], 0)
    np.testing.assert_allclose(x[-3:], 0)
    np.testing.assert_allclose(x[4, :5], [[1, 0, 0]] * 5, atol=1e-6)
    np.testing.assert_allclose(x[4, 5:], [[0, 0, 1]] * 5, atol=1e-6)
    g, _ = prepare_image(tmp_path / "grey.png", (10, 10), channels=3)
    np.testing.assert_allclose(g[..., 0], g[..., 2])  # a grey file: three equal channels
    grey, _ = prepare_image(tmp_path / "wide.png", (10, 10), channels=1)
    assert grey.shape == (10, 10)  # a grey dataset: the luma, preprocessed as before
    np.savez(tmp_path / "c.npz", images=colour_images())
    dropped, _ = load_image_for(tmp_path / "wide.png", load_source(tmp_path / "c.npz"))
    np.testing.assert_array_equal(dropped, x)


def test_transparency_is_flattened_in_colour(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[2:6, 2:6] = [255, 255, 0, 255]  # an opaque yellow square, the rest transparent
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    rgb, notes = read_colour(tmp_path / "a.png")
    np.testing.assert_allclose(rgb[0, 0], 0)  # light content: flattened onto black
    np.testing.assert_allclose(rgb[3, 3], [1, 1, 0])
    assert any("transparency" in n for n in notes)


@pytest.fixture(scope="module")
def colour_conv_run(tmp_path_factory):
    """A conv model with an 8-D latent on 60 colour images of 12 x 12."""
    root = tmp_path_factory.mktemp("colour")
    np.savez(root / "c.npz", images=colour_images(60, 12))
    out = root / "ckpt"
    assert main(["train", str(root / "c.npz"), "--arch", "conv", "--latent-dim", "8",
                 "--epochs", "2", "--batch-size", "16", "--out", str(out), "--quiet"]) == 0
    return root, out


def test_train_and_evaluate_a_colour_conv_model(colour_conv_run, capsys):
    root, out = colour_conv_run
    checkpoint = load_checkpoint(out)
    assert (checkpoint.config.arch, checkpoint.channels, checkpoint.config.latent_dim) == \
        ("conv", 3, 8)
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--k", "20", "--max-points", "6"]) == 0
    [r] = lines(capsys.readouterr().out)
    assert (r["arch"], r["channels"], r["latent_dim"]) == ("conv", 3, 8)
    assert r["grid_log_px"] is None and "2-D latent" in r["grid_reason"]
    assert r["iwae_se"] > 0 and len(r["per_dim_kl"]) == 8
    assert 0 <= r["active_units"] <= 8
    # The per-dimension rates add up to the held-out KL term of the same points.
    assert sum(r["per_dim_kl"]) == pytest.approx(r["heldout_kl"], rel=1e-4)
    assert "log-probability" in r["likelihood_label"]


def test_encode_a_colour_image_with_a_colour_model(colour_conv_run, capsys, tmp_path):
    _, out = colour_conv_run
    Image.fromarray(colour_images(1, 30)[0]).save(tmp_path / "drop.png")
    capsys.readouterr()
    assert main(["encode", "--checkpoint", str(out), str(tmp_path / "drop.png")]) == 0
    [r] = lines(capsys.readouterr().out)
    assert len(r["mu"]) == 8 and len(r["sigma"]) == 8 and r["elbo"] < 0


def test_export_latents_of_a_colour_conv_model(colour_conv_run, tmp_path, capsys):
    _, out = colour_conv_run
    csv = tmp_path / "latents.csv"
    assert main(["export-latents", "--checkpoint", str(out), "--out", str(csv),
                 "--quiet"]) == 0
    rows = csv.read_text().splitlines()
    assert len(rows) == 61 and rows[0].count("mu") == 8 and rows[0].count("sigma") == 8


def test_train_line_names_arch_channels_and_latent_dim(tmp_path, capsys):
    code = main(["train", "digits", "--epochs", "1", "--latent-dim", "5", "--hidden", "16",
                 "--likelihood", "bernoulli", "--binarization", "none", "--out",
                 str(tmp_path / "ckpt"), "--quiet"])
    [r] = lines(capsys.readouterr().out)
    assert code == 0
    assert (r["arch"], r["channels"], r["latent_dim"]) == ("mlp", 1, 5)
    assert "not a log-probability" in r["likelihood_label"]


def test_latent_dim_above_64_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        from trainer.cli import build_parser

        build_parser().parse_args(["train", "digits", "--out", str(tmp_path), "--latent-dim",
                                   "65"])
    assert "at most 64" in capsys.readouterr().err


def test_hidden_sizes_with_the_conv_model_are_named_as_unused(tmp_path, capsys):
    np.savez(tmp_path / "c.npz", images=colour_images(20, 12))
    assert main(["train", str(tmp_path / "c.npz"), "--arch", "conv", "--hidden", "16",
                 "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "ckpt"),
                 "--quiet"]) == 0
    assert "--hidden sizes the MLP only" in capsys.readouterr().err
