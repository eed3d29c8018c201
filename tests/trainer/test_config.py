"""TrainConfig.validate, the one check every config passes (GUI, CLI, files): types first
(a bool is not a number, 2.5 is not a count), then ranges with sane upper bounds."""

from __future__ import annotations

import numpy as np
import pytest

from trainer import ConfigError, TrainConfig
from trainer.cli import main
from trainer.config import MAX_HIDDEN, MAX_SEED, MAX_THREADS


@pytest.mark.parametrize("field, value", [
    ("latent_dim", 2.5), ("latent_dim", True), ("latent_dim", "2"), ("latent_dim", 0),
    ("latent_dim", 10**6), ("batch_size", 64.5), ("batch_size", False), ("batch_size", 2**40),
    ("seed", -1), ("seed", MAX_SEED + 1), ("seed", 1.0), ("threads", 0),
    ("threads", MAX_THREADS + 1), ("threads", 2.0), ("hidden", [16.5]), ("hidden", "512"),
    ("hidden", []), ("hidden", [MAX_HIDDEN + 1]), ("hidden", [True]), ("hidden", [8] * 33),
    ("lr", float("nan")), ("lr", float("inf")), ("lr", 0), ("lr", "0.1"), ("lr", True),
    ("beta", -1.0), ("beta", float("nan")), ("heldout_fraction", 1.0),
    ("heldout_fraction", float("nan")), ("min_logvar", -1000.0), ("min_logvar", float("inf")),
    ("eval_every_seconds", float("inf")), ("eval_max_points", 0), ("eval_max_points", 1.5),
    ("logpx_points", -1), ("logpx_share", 0.0), ("history_limit", 9), ("history_limit", 10**7),
    ("device", "tpu"), ("device", 0), ("device", "cuda:x"), ("likelihood", 1),
    ("precision", None),
])
def test_bad_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value})
    assert str(info.value).startswith(f"{field}: ") and "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        TrainConfig().replace(**{field: value})  # replace() validates too


def test_numpy_and_integral_values_become_plain_numbers():
    c = TrainConfig(latent_dim=np.int64(3), hidden=np.array([16, 8]), batch_size=np.int32(32),
                    lr=1, seed=np.uint64(7), threads=np.int8(2))
    assert (c.latent_dim, c.hidden, c.batch_size, c.seed, c.threads) == (3, (16, 8), 32, 7, 2)
    assert type(c.latent_dim) is int and all(type(h) is int for h in c.hidden)
    assert type(c.lr) is float and c.lr == 1.0
    assert TrainConfig(seed=MAX_SEED, device="cuda:1").seed == MAX_SEED  # the limits fit


def test_a_legitimate_cli_run_is_within_the_bounds():
    TrainConfig(lr=10.0, batch_size=65536, seed=2**40, threads=256, hidden=(4096, 4096))


@pytest.mark.parametrize("argv, field", [(["--seed", "-1"], "seed"),
                                         (["--threads", "5000"], "threads"),
                                         (["--hidden", "70000"], "hidden")])
def test_cli_out_of_range_is_one_line_and_exit_2(tmp_path, capsys, argv, field):
    code = main(["train", "digits", "--out", str(tmp_path / "c"), "--epochs", "1", "--quiet",
                 *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"latent-explorer: error: {field}: ")
    assert err.count("\n") == 1 and not (tmp_path / "c").exists()
