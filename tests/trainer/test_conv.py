"""The conv and MLP VAEs on grey and colour images: shapes, the stored pixel order, the
likelihood terms against torch.distributions, and checkpoints that record arch and channels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trainer import FrozenVAE, ImageDataset, Session, TrainConfig, build_vae
from trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from trainer.config import ConfigError
from trainer.conv import ConvVAE

CASES = [(arch, shape, channels) for arch in ("mlp", "conv")
         for shape, channels in (((28, 28), 1), ((32, 32), 3), ((13, 9), 3))]


def config(arch: str, likelihood: str = "bernoulli", latent_dim: int = 3) -> TrainConfig:
    return TrainConfig(arch=arch, likelihood=likelihood, latent_dim=latent_dim, hidden=(16,),
                       binarization="none" if likelihood == "gaussian" else "dynamic")


def tiny_dataset(channels: int, n: int = 40, side: int = 8, seed: int = 0) -> ImageDataset:
    rng = np.random.default_rng(seed)
    shape = (n, side, side) if channels == 1 else (n, side, side, channels)
    return ImageDataset(pixels=rng.integers(0, 256, shape, dtype=np.uint8), scale=1 / 255,
                        name=f"tiny{channels}", source=f"tiny{channels}")


@pytest.mark.parametrize("arch,shape,channels", CASES)
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_shapes_for_every_arch_likelihood_and_channel_count(arch, shape, channels, likelihood):
    torch.manual_seed(0)
    model = build_vae(config(arch, likelihood), shape, channels)
    d = shape[0] * shape[1] * channels
    x = torch.rand(5, d)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 3)
    params = model.decode(mu)
    assert params.shape == ((5, d) if likelihood == "bernoulli" else (5, 2, d))
    assert model.log_likelihood(x, params).shape == (5,)
    assert model.mean_image(params).shape == (5, d)
    assert model.n_pixels == d
    # Any leading dimensions, as IWAE decodes (k, B, L) draws.
    assert model.decode(torch.zeros(4, 2, 3)).shape[:2] == (4, 2)
    frozen = FrozenVAE(model, shape)
    stored = shape if channels == 1 else (*shape, channels)
    assert frozen.decode_mean(np.zeros((2, 3))).shape == (2, *stored)


def test_conv_reads_and_writes_images_in_their_stored_order():
    """x is (H, W, C) flattened; the conv layers must see channels as channels."""
    torch.manual_seed(1)
    model = ConvVAE((12, 10), channels=3, latent_dim=2)
    image = torch.rand(12, 10, 3)
    direct = model.encoder.net(image.permute(2, 0, 1)[None])
    torch.testing.assert_close(model.encoder(image.reshape(1, -1)), direct)
    z = torch.randn(1, 2)
    chw = model.decoder.net(z)[0]  # (heads * C, H, W)
    torch.testing.assert_close(model.decoder(z).reshape(12, 10, 3), chw.permute(1, 2, 0))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_likelihood_terms_match_torch_distributions_on_colour(arch):
    torch.manual_seed(2)
    x = torch.rand(4, 16 * 16 * 3)
    bern = build_vae(config(arch), (16, 16), 3)
    logits = bern.decode(torch.randn(4, 3))
    binary = torch.bernoulli(x)
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(binary).sum(-1)
    torch.testing.assert_close(bern.log_likelihood(binary, logits), expected)
    gauss = build_vae(config(arch, "gaussian"), (16, 16), 3)
    params = gauss.decode(torch.randn(4, 3))
    mean, logvar = params.unbind(-2)
    expected = torch.distributions.Normal(mean, torch.exp(0.5 * logvar)).log_prob(x).sum(-1)
    torch.testing.assert_close(gauss.log_likelihood(x, params), expected)
    # The (B, G) matrix form the grid posterior uses agrees with the pairwise terms.
    pairs = gauss.log_likelihood(x[:, None, :], params[None])
    torch.testing.assert_close(gauss.log_likelihood_matrix(x, params), pairs,
                               rtol=1e-4, atol=1e-2)


def test_conv_refuses_images_it_was_not_made_for():
    with pytest.raises(ConfigError, match="8 to 64 pixels a side, these are 128x128"):
        build_vae(config("conv"), (128, 128), 1)
    with pytest.raises(ConfigError, match="arch"):
        TrainConfig(arch="resnet")


@pytest.mark.parametrize("arch,channels", [("conv", 3), ("conv", 1), ("mlp", 3)])
def test_checkpoint_round_trip_keeps_arch_channels_and_weights(tmp_path, arch, channels):
    dataset = tiny_dataset(channels)
    cfg = config(arch).replace(batch_size=16, logpx_points=0, eval_max_points=16, threads=1)
    session = Session(dataset, cfg)
    for _ in range(3):
        session.step()
    out = save_checkpoint(session, tmp_path / "ckpt")
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["arch"] == arch and run["dataset"]["channels"] == channels
    loaded = load_checkpoint(out)
    assert loaded.config.arch == arch and loaded.channels == channels
    model = loaded.build_model()
    assert type(model) is type(session.model)
    x = session.heldout_inputs(8)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x), session.model.eval().encode(x))
    resumed = Session.from_checkpoint(loaded, dataset)
    assert resumed.step_count == 3 and resumed.config.arch == arch
    other = tiny_dataset(4 - channels)  # grey for colour, colour for grey
    with pytest.raises(CheckpointError, match="trained on .* images, but tiny"):
        Session.from_checkpoint(loaded, other, strict=False)


def test_loading_validates_the_recorded_arch_and_channels(tmp_path):
    session = Session(tiny_dataset(3), config("conv").replace(batch_size=16, logpx_points=0,
                                                               eval_max_points=16))
    out = save_checkpoint(session, tmp_path / "ckpt")
    run_path = out / "run.json"
    original = json.loads(run_path.read_text())

    def tampered(change) -> str:
        run = json.loads(json.dumps(original))
        change(run)
        run_path.write_text(json.dumps(run))
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(out)
        return str(info.value)

    assert "tensor names do not match" in tampered(lambda r: r["config"].update(arch="mlp"))
    assert "arch: must be one of" in tampered(lambda r: r["config"].update(arch="resnet"))
    assert "channels must be 1" in tampered(lambda r: r["dataset"].update(channels=2))
    assert "shape" in tampered(lambda r: r["dataset"].update(channels=1))
    assert "8 to 64 pixels" in tampered(lambda r: r["dataset"].update(image_shape=[4, 4]))


def test_a_checkpoint_without_arch_or_channels_is_a_grey_mlp(tmp_path):
    """Checkpoints written before issue 13 carry neither field."""
    session = Session(tiny_dataset(1), config("mlp").replace(batch_size=16, logpx_points=0,
                                                              eval_max_points=16))
    out = save_checkpoint(session, tmp_path / "ckpt")
    run = json.loads((out / "run.json").read_text())
    del run["config"]["arch"], run["dataset"]["channels"]
    (out / "run.json").write_text(json.dumps(run))
    loaded = load_checkpoint(out)
    assert loaded.config.arch == "mlp" and loaded.channels == 1
