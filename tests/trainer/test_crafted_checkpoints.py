"""Crafted checkpoints: a real saved checkpoint, mutated one field at a time. Each must be
refused with one CheckpointError line naming the file and the field, by load_checkpoint and
by the CLI (``evaluate``, ``encode``, ``train --resume``: exit 2, no traceback)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from PIL import Image

from trainer import Session, TrainConfig, load_source
from trainer.checkpoint import (
    MODEL_FILE,
    OPTIMIZER_FILE,
    RUN_FILE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from trainer.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMALL = TrainConfig(hidden=(16, 16), seed=3, eval_every_seconds=1e9, threads=1)


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


@pytest.fixture(scope="module")
def base(digits, tmp_path_factory):
    session = Session(digits, SMALL)
    while session.step_count < 20 or len(session.train_history) == 0:
        session.step()
    session.evaluate_heldout()
    return save_checkpoint(session, tmp_path_factory.mktemp("base") / "ckpt")


def run_edit(key, value):
    def edit(d: Path) -> None:
        run = json.loads((d / RUN_FILE).read_text())
        where, last = run, key.split(".")
        for part in last[:-1]:
            where = where[int(part)] if part.isdigit() else where[part]
        if value is DELETE:
            del where[last[-1]]
        else:
            where[last[-1]] = value
        (d / RUN_FILE).write_text(json.dumps(run))  # NaN and Infinity as Python writes them
    return edit


DELETE = object()


def tensor_edit(file: str, change):
    def edit(d: Path) -> None:
        tensors = safetensors.torch.load((d / file).read_bytes())
        change(tensors)
        (d / file).write_bytes(safetensors.torch.save(tensors))
    return edit


def set_tensor(name, fn):
    return lambda t: t.__setitem__(name, fn(t[name]))


def poke(value):
    def fn(t):
        t = t.clone()
        t.view(-1)[0] = value
        return t
    return fn


def deep_json(d: Path) -> None:
    (d / RUN_FILE).write_text("[" * 100_000 + "]" * 100_000)


# (id, mutation, fragments the one-line message must contain)
LOAD_CASES = [
    ("latent_dim_2.5", run_edit("config.latent_dim", 2.5), ["run.json", "latent_dim"]),
    ("latent_dim_bool", run_edit("config.latent_dim", True), ["run.json", "latent_dim"]),
    ("batch_64.5", run_edit("config.batch_size", 64.5), ["run.json", "batch_size"]),
    ("seed_negative", run_edit("config.seed", -1), ["run.json", "seed"]),
    ("seed_2^63", run_edit("config.seed", 2**63), ["run.json", "seed"]),
    ("threads_1e6", run_edit("config.threads", 10**6), ["run.json", "threads"]),
    ("hidden_float", run_edit("config.hidden", [16.5, 16]), ["run.json", "hidden"]),
    ("hidden_string", run_edit("config.hidden", "16,16"), ["run.json", "hidden"]),
    ("hidden_huge", run_edit("config.hidden", [20000, 20000]),
     ["model.safetensors", "shape", "recorded config"]),
    ("lr_nan", run_edit("config.lr", float("nan")), ["run.json", "lr"]),
    ("device_unknown", run_edit("config.device", "tpu"), ["run.json", "device"]),
    ("device_malformed", run_edit("config.device", "cuda:x"), ["run.json", "device"]),
    ("history_columns", run_edit("history.train.columns", ["a", "b", "c", "d", "e", "f", "g"]),
     ["run.json", "history.train"]),
    ("fit_fraction_text", run_edit("dataset.fit_fraction", "big"),
     ["run.json", "dataset.fit_fraction"]),
    ("beta_inf", run_edit("config.beta", float("inf")), ["run.json", "beta"]),
    ("step_nan", run_edit("counters.step", float("nan")), ["run.json", "counters.step"]),
    ("step_negative", run_edit("counters.step", -5), ["run.json", "counters.step"]),
    ("epoch_fraction", run_edit("counters.epoch", 1.5), ["run.json", "counters.epoch"]),
    ("seconds_inf", run_edit("counters.seconds", float("inf")), ["run.json", "counters.seconds"]),
    ("cursor_past_end", run_edit("counters.cursor", 10**6), ["run.json", "counters.cursor"]),
    ("image_shape_huge", run_edit("dataset.image_shape", [100000, 100000]),
     ["run.json", "image_shape"]),
    ("split_sum", run_edit("split.n_train", 5), ["run.json", "split"]),
    ("deep_json", deep_json, ["run.json", "nested too deeply"]),
    ("two_param_groups", lambda d: run_edit("optimizer.param_groups", [
        json.loads((d / RUN_FILE).read_text())["optimizer"]["param_groups"][0]] * 2)(d),
     ["run.json", "param_groups"]),
    ("group_missing_betas", run_edit("optimizer.param_groups.0.betas", DELETE),
     ["run.json", "param_groups", "betas"]),
    ("group_unknown_key", run_edit("optimizer.param_groups.0.colour", "red"),
     ["run.json", "param_groups", "colour"]),
    ("group_lr_nan", run_edit("optimizer.param_groups.0.lr", float("nan")),
     ["run.json", "param_groups", "lr"]),
    ("group_lr_negative", run_edit("optimizer.param_groups.0.lr", -1.0),
     ["run.json", "param_groups", "lr"]),
    ("group_lr_text", run_edit("optimizer.param_groups.0.lr", "ten"),
     ["run.json", "param_groups", "lr"]),
    ("group_betas", run_edit("optimizer.param_groups.0.betas", [2, 0.9]),
     ["run.json", "param_groups", "betas"]),
    ("scalar_state_overrides_tensor", run_edit("optimizer.scalar_state", {"0": {"exp_avg": 1}}),
     ["run.json", "scalar_state"]),
    ("weight_nan", tensor_edit(MODEL_FILE, set_tensor("encoder.0.weight", poke(float("nan")))),
     ["model.safetensors", "encoder.0.weight", "NaN"]),
    ("weight_inf", tensor_edit(MODEL_FILE, set_tensor("decoder.0.bias", poke(float("inf")))),
     ["model.safetensors", "decoder.0.bias", "NaN or infinite"]),
    ("adam_inf", tensor_edit(OPTIMIZER_FILE, set_tensor("state.0.exp_avg", poke(float("inf")))),
     ["optimizer.safetensors", "state.0.exp_avg"]),
    ("adam_sq_negative",
     tensor_edit(OPTIMIZER_FILE, set_tensor("state.1.exp_avg_sq", poke(-1.0))),
     ["optimizer.safetensors", "state.1.exp_avg_sq", "negative"]),
    ("adam_dtype", tensor_edit(OPTIMIZER_FILE, set_tensor("state.0.exp_avg",
                                                          lambda t: t.double())),
     ["optimizer.safetensors", "state.0.exp_avg", "float64"]),
    ("order_out_of_range", tensor_edit(OPTIMIZER_FILE, set_tensor("engine.order", poke(99999))),
     ["optimizer.safetensors", "engine.order", "permutation"]),
    ("order_duplicates", tensor_edit(OPTIMIZER_FILE, set_tensor(
        "engine.order", lambda t: torch.zeros_like(t))),
     ["optimizer.safetensors", "engine.order", "permutation"]),
    ("order_length", tensor_edit(OPTIMIZER_FILE, set_tensor("engine.order", lambda t: t[:10])),
     ["optimizer.safetensors", "engine.order", "training images"]),
    ("order_float", tensor_edit(OPTIMIZER_FILE, set_tensor("engine.order", lambda t: t.float())),
     ["optimizer.safetensors", "engine.order"]),
    ("rng_size", tensor_edit(OPTIMIZER_FILE, set_tensor("engine.rng_state", lambda t: t[:100])),
     ["optimizer.safetensors", "engine.rng_state", "bytes"]),
    ("rng_content", tensor_edit(OPTIMIZER_FILE, set_tensor(
        "engine.rng_state", lambda t: torch.full_like(t, 255))),
     ["optimizer.safetensors", "engine.rng_state", "not a valid RNG state"]),
    ("header_length_lie", lambda d: (d / MODEL_FILE).write_bytes(
        (2**62).to_bytes(8, "little") + (d / MODEL_FILE).read_bytes()[8:]),
     ["model.safetensors", "header length"]),
    ("trailing_bytes", lambda d: (d / MODEL_FILE).write_bytes(
        (d / MODEL_FILE).read_bytes() + b"\0" * 1000), ["model.safetensors", "bytes"]),
]

# Valid for load_checkpoint, refused when a Session is built on the recorded dataset.
SESSION_CASES = [
    ("device_absent", run_edit("config.device", "cuda:999"), ["crafted: device", "cuda:999"]),
    ("order_holds_heldout_index", lambda d: _order_with_heldout(d),
     ["engine.order", "permutation of this split's training indices"]),
]


def _order_with_heldout(d: Path) -> None:
    run = json.loads((d / RUN_FILE).read_text())
    split = Session(load_source("digits"), TrainConfig.from_dict(run["config"])).split
    def swap(t):
        t = t.clone()
        t[0] = int(split.heldout[0])
        return t
    tensor_edit(OPTIMIZER_FILE, set_tensor("engine.order", swap))(d)


def crafted(base: Path, tmp_path: Path, mutate) -> Path:
    d = tmp_path / "crafted"
    shutil.copytree(base, d)
    mutate(d)
    return d


def assert_one_line(message: str, fragments: list[str]) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize("mutate, fragments", [c[1:] for c in LOAD_CASES],
                         ids=[c[0] for c in LOAD_CASES])
def test_load_checkpoint_refuses_with_one_line(base, tmp_path, mutate, fragments):
    d = crafted(base, tmp_path, mutate)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(d)
    assert_one_line(str(info.value), fragments)
    assert str(d) in str(info.value)


@pytest.mark.parametrize("mutate, fragments", [c[1:] for c in SESSION_CASES],
                         ids=[c[0] for c in SESSION_CASES])
def test_session_refuses_an_order_that_trains_on_heldout_points(base, tmp_path, digits,
                                                                  mutate, fragments):
    d = crafted(base, tmp_path, mutate)
    with pytest.raises(CheckpointError) as info:
        Session.from_checkpoint(load_checkpoint(d), digits)
    assert_one_line(str(info.value), fragments)


def test_the_untouched_base_loads_and_resumes(base, digits):
    session = Session.from_checkpoint(load_checkpoint(base), digits)
    assert session.step() is not None


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "seven.png"
    Image.fromarray((np.eye(16) * 255).astype(np.uint8)).save(path)
    return path


# encode builds no training session, so it never uses the epoch order (SESSION_CASES).
CLI_CASES = [(command, *case) for case in LOAD_CASES for command in ("evaluate", "encode",
                                                                      "train")]
CLI_CASES += [(command, *case) for case in SESSION_CASES for command in ("evaluate", "train")]


@pytest.mark.parametrize("command, mutate, fragments", [(c[0], *c[2:]) for c in CLI_CASES],
                         ids=[f"{c[1]}-{c[0]}" for c in CLI_CASES])
def test_cli_refuses_with_one_line_and_exit_2(base, tmp_path, image, capsys, command,
                                               mutate, fragments):
    d = crafted(base, tmp_path, mutate)
    argv = {"evaluate": ["evaluate", "--checkpoint", str(d), "--k", "2", "--grid", "8",
                         "--max-points", "4"],
            "encode": ["encode", "--checkpoint", str(d), str(image)],
            "train": ["train", "digits", "--resume", str(d), "--out", str(tmp_path / "out"),
                      "--epochs", "1", "--quiet"]}[command]
    code, out, err = _cli(argv, capsys)
    assert code == 2, (out, err)
    assert out == "" and err.startswith("latent-explorer: error: "), err
    assert_one_line(err, fragments)
    assert not (tmp_path / "out").exists()


def test_a_huge_hidden_size_is_refused_before_allocating(base, tmp_path):
    """[20000, 20000] would allocate 3.2 GB of weights: a fresh process must stay small."""
    d = crafted(base, tmp_path, run_edit("config.hidden", [20000, 20000]))
    code = ("import resource, sys\n"
            "from trainer.checkpoint import load_checkpoint, CheckpointError\n"
            "try:\n    load_checkpoint(sys.argv[1])\n"
            "except CheckpointError as e:\n    print('refused:', e)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    refused, peak_kib = done.stdout.splitlines()
    assert refused.startswith("refused:") and "shape" in refused
    assert int(peak_kib) < 1024**2, f"peak RSS {int(peak_kib) / 1024:.0f} MiB"


def test_a_gpu_rng_state_resumes_on_the_cpu_with_a_fresh_order(base, tmp_path, digits):
    """A run saved on CUDA holds a 16-byte Philox state (seed, offset) that a CPU generator
    cannot take: the weights, Adam state and counters resume; the epoch order starts afresh."""
    philox = torch.tensor(list((7).to_bytes(8, "little") + (0).to_bytes(8, "little")),
                          dtype=torch.uint8)
    d = crafted(base, tmp_path, tensor_edit(OPTIMIZER_FILE,
                                            set_tensor("engine.rng_state", lambda t: philox)))
    checkpoint = load_checkpoint(d)
    session = Session.from_checkpoint(checkpoint, digits)
    assert session.step_count == checkpoint.counters["step"] and session._cursor == 0
    assert session.step() is not None
