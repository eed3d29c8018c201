"""Checkpoints: a directory of safetensors weights and one JSON file, written atomically.

    DIR/model.safetensors      the VAE's weights (readable by any safetensors tool)
    DIR/optimizer.safetensors  what else an exact resume needs: Adam's state tensors
                               ("state.<i>.<name>") and the engine's sampling RNG state,
                               epoch order and held-out indices ("engine.<name>")
    DIR/run.json               format + version, config, history, counters, dataset reference,
                               split, likelihood and binarization, Adam's scalar settings,
                               library versions

Loading never unpickles: tensors come only from safetensors (a fixed header and raw bytes),
so a crafted file can fail to load but cannot run code. Names and shapes are checked against
the model that the recorded config builds.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from .atomic import fsync_dir
from .config import ConfigError, TrainConfig
from .model import VAE

FORMAT = "latent-explorer-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RUN_FILE = "run.json"


class CheckpointError(ValueError):
    """A checkpoint cannot be written or read. The one-line message names the file."""


@dataclass
class Checkpoint:
    path: Path
    config: TrainConfig
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict  # in torch's Optimizer.state_dict() layout
    engine_state: dict[str, torch.Tensor]  # "rng_state", "order", "heldout"
    run: dict  # run.json as read

    @property
    def counters(self) -> dict:
        return self.run["counters"]

    @property
    def history(self) -> dict:
        return self.run["history"]

    @property
    def dataset_ref(self) -> dict:
        return self.run["dataset"]

    @property
    def split(self) -> dict:
        return self.run["split"]

    @property
    def image_shape(self) -> tuple[int, int]:
        h, w = self.dataset_ref["image_shape"]
        return int(h), int(w)

    def build_model(self) -> VAE:
        """The trained VAE on the CPU, in eval mode."""
        model = VAE.from_config(self.image_shape[0] * self.image_shape[1], self.config)
        model.load_state_dict(self.model_state)
        return model.eval()


# ------------------------------------------------------------------------------ save

def save_checkpoint(session, directory: str | os.PathLike) -> Path:
    """Write ``session`` (a trainer.Session) to ``directory``, replacing a checkpoint there.

    Everything is written into a fresh temporary directory beside it, fsynced, then renamed
    into place, so a crash leaves either the old checkpoint or the new one, never a mix.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"{directory}: exists and is not a directory")
    if (directory.is_dir() and any(directory.iterdir())
            and not (directory / RUN_FILE).exists()):
        raise CheckpointError(f"{directory}: exists, is not empty and holds no checkpoint; "
                              "refusing to overwrite it")
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    model_tensors, optimizer_tensors, run = _serialise(session)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.tmp-", dir=parent))
    try:
        _write(tmp / MODEL_FILE, safetensors.torch.save(model_tensors, {"format": FORMAT}))
        _write(tmp / OPTIMIZER_FILE, safetensors.torch.save(optimizer_tensors,
                                                            {"format": FORMAT}))
        _write(tmp / RUN_FILE, (json.dumps(run, indent=1) + "\n").encode())
        fsync_dir(tmp)
        if directory.exists():
            old = parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def _serialise(session) -> tuple[dict, dict, dict]:
    from .images import fit_fraction  # PIL-based; only needed when saving

    model_tensors = {k: v.detach().cpu().contiguous()
                     for k, v in session.model.state_dict().items()}
    opt = session.optimizer.state_dict()
    optimizer_tensors: dict[str, torch.Tensor] = {}
    scalar_state: dict[str, dict] = {}
    for index, state in opt["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                optimizer_tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalar_state.setdefault(str(index), {})[name] = value
    engine_tensors, counters = session.engine_state()
    for name, value in engine_tensors.items():
        optimizer_tensors[f"engine.{name}"] = value.contiguous()
    cfg = session.config
    dataset = session.dataset
    run = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg.to_dict(),
        # Stated explicitly so nobody has to know the config's defaults to read the numbers.
        "likelihood": cfg.likelihood,
        "binarization": cfg.binarization,
        "units": "per-datapoint nats; ELBO and log p(x) are higher-is-better, KL >= 0",
        "counters": counters,
        "history": {"train": session.train_history.to_dict(),
                    "heldout": session.heldout_history.to_dict(),
                    "logpx": session.logpx_history.to_dict()},
        "dataset": {"source": str(dataset.source), "name": dataset.name, "n": len(dataset),
                    "image_shape": list(dataset.image_shape),
                    "fingerprint": dataset.fingerprint(),
                    "fit_fraction": fit_fraction(dataset)},
        "split": session.split.describe(),  # the indices themselves: engine.heldout
        "optimizer": {"type": "Adam", "param_groups": opt["param_groups"],
                      "scalar_state": scalar_state},
        "libraries": {"python": platform.python_version(), "torch": torch.__version__,
                      "numpy": np.__version__, "safetensors": safetensors.__version__},
    }
    return model_tensors, optimizer_tensors, run


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


# ------------------------------------------------------------------------------ load

def load_checkpoint(directory: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint directory; raises CheckpointError naming the file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    run = _read_run(directory / RUN_FILE)
    run_path = directory / RUN_FILE
    try:
        config = TrainConfig.from_dict(run["config"])
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{run_path}: bad config: {e}") from None
    h, w = run["dataset"]["image_shape"]
    expected = VAE.from_config(int(h) * int(w), config).state_dict()

    model_path = directory / MODEL_FILE
    model_state = _read_tensors(model_path)
    _check_names_shapes(model_path, model_state,
                        {k: tuple(v.shape) for k, v in expected.items()})

    optimizer_path = directory / OPTIMIZER_FILE
    tensors = _read_tensors(optimizer_path)
    engine_state = {k.removeprefix("engine."): v for k, v in tensors.items()
                    if k.startswith("engine.")}
    optimizer_state = _optimizer_state(optimizer_path, run_path, tensors, run["optimizer"],
                                       [tuple(v.shape) for v in expected.values()])
    try:
        order = engine_state.get("order")
        if order is not None and (order.dtype != torch.int64 or order.ndim != 1):
            raise ValueError("engine.order must be a 1-D int64 tensor")
        rng = engine_state.get("rng_state")
        if rng is not None and rng.dtype != torch.uint8:
            raise ValueError("engine.rng_state must be uint8")
        _check_heldout(engine_state.get("heldout"), order, int(run["dataset"]["n"]))
    except ValueError as e:
        raise CheckpointError(f"{optimizer_path}: {e}") from None
    return Checkpoint(path=directory, config=config, model_state=model_state,
                      optimizer_state=optimizer_state, engine_state=engine_state, run=run)


def _check_heldout(heldout: torch.Tensor | None, order: torch.Tensor | None, n: int) -> None:
    """The saved held-out indices must be a proper split of the n images, and the saved
    epoch order must not train on any of them."""
    if heldout is None:
        return  # an older checkpoint: the split is rebuilt from run.json's record
    if heldout.dtype != torch.int64 or heldout.ndim != 1:
        raise ValueError("engine.heldout must be a 1-D int64 tensor")
    if not 0 < len(heldout) < n:
        raise ValueError(f"engine.heldout holds {len(heldout)} indices; a split of {n} "
                         "images needs between 1 and n - 1")
    if int(heldout.min()) < 0 or int(heldout.max()) >= n:
        raise ValueError(f"engine.heldout has an index outside 0..{n - 1}")
    if len(torch.unique(heldout)) != len(heldout):
        raise ValueError("engine.heldout repeats an index")
    if order is not None and bool(torch.isin(order, heldout).any()):
        raise ValueError("engine.order would train on held-out images (engine.heldout)")


# key -> the JSON types it may hold; checked before anything is used.
_RUN_SCHEMA = {"format": str, "version": int, "config": dict, "counters": dict,
               "history": dict, "dataset": dict, "split": dict, "optimizer": dict}
_COUNTERS = ("step", "epoch", "samples", "seconds", "cursor")
_DATASET = {"source": str, "name": str, "n": int, "image_shape": list, "fingerprint": str}


def _read_run(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; not a checkpoint directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read it ({e})") from None
    try:
        run = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(run, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    if run.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint "
                              f"(format {run.get('format')!r})")
    version = run.get("version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: format version missing or not a number")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer Latent Explorer (checkpoint format "
                              f"{version}; this version reads up to {FORMAT_VERSION}); upgrade "
                              "to open it")
    if version < FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version} is older than this version "
                              f"supports ({FORMAT_VERSION})")

    def require(d: dict, key: str, kind: type, where: str) -> None:
        value = d.get(key)
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            raise CheckpointError(f"{path}: {where}{key!r} missing or not a "
                                  f"{kind.__name__}")

    for key, kind in _RUN_SCHEMA.items():
        require(run, key, kind, "")
    for key in _COUNTERS:
        require(run["counters"], key, float, "counters.")
    for key, kind in _DATASET.items():
        require(run["dataset"], key, kind, "dataset.")
    shape = run["dataset"]["image_shape"]
    if len(shape) != 2 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise CheckpointError(f"{path}: dataset.image_shape must be two positive integers")
    for table in ("train", "heldout", "logpx"):
        if table == "logpx" and table not in run["history"]:
            continue  # optional: runs with a latent other than 2-D have no such curve
        require(run["history"], table, dict, "history.")
        t = run["history"][table]
        if not (isinstance(t.get("columns"), list) and isinstance(t.get("rows"), list)
                and isinstance(t.get("limit"), int)
                and all(isinstance(r, list) and len(r) == len(t["columns"])
                        and all(isinstance(v, (int, float)) for v in r) for r in t["rows"])):
            raise CheckpointError(f"{path}: history.{table} is malformed")
    require(run["optimizer"], "param_groups", list, "optimizer.")
    return run


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e})") from None
    try:
        # safetensors parses a length-prefixed JSON header and raw little-endian bytes;
        # it has no code path that could execute anything in the file.
        return safetensors.torch.load(data)
    except Exception as e:  # SafetensorError and friends: any failure means a bad file
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a valid safetensors file ({reason})") from None


def _check_names_shapes(path: Path, tensors: dict[str, torch.Tensor],
                        expected: dict[str, tuple[int, ...]]) -> None:
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: tensor names do not match the recorded config "
                              f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for name, shape in expected.items():
        got = tuple(tensors[name].shape)
        if got != shape:
            raise CheckpointError(f"{path}: tensor {name} has shape {list(got)}, the recorded "
                                  f"config needs {list(shape)}")
        if not tensors[name].is_floating_point():
            raise CheckpointError(f"{path}: tensor {name} is {tensors[name].dtype}, "
                                  "expected floating point")


def _optimizer_state(path: Path, run_path: Path, tensors: dict[str, torch.Tensor],
                     meta: dict, param_shapes: list[tuple[int, ...]]) -> dict:
    """Rebuild torch's Adam state_dict from named tensors, checking names and shapes."""
    state: dict[int, dict] = {}
    # Numeric order, so the first problem reported is the same whatever the file's order.
    natural = lambda key: [int(p) if p.isdigit() else p for p in key.split(".")]
    for key in sorted(tensors, key=natural):
        value = tensors[key]
        if key.startswith("engine."):
            continue
        parts = key.split(".")
        if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit():
            raise CheckpointError(f"{path}: unexpected tensor {key!r}")
        index, name = int(parts[1]), parts[2]
        if index >= len(param_shapes):
            raise CheckpointError(f"{path}: state for parameter {index}, but the model has "
                                  f"{len(param_shapes)}")
        want = () if name == "step" else param_shapes[index]
        if name not in ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            raise CheckpointError(f"{path}: unexpected tensor {key!r}")
        if tuple(value.shape) != want:
            raise CheckpointError(f"{path}: tensor {key} has shape {list(value.shape)}, "
                                  f"expected {list(want)}")
        state.setdefault(index, {})[name] = value
    for index, extras in (meta.get("scalar_state") or {}).items():
        if not str(index).isdigit() or not isinstance(extras, dict):
            raise CheckpointError(f"{run_path}: optimizer.scalar_state is malformed")
        state.setdefault(int(index), {}).update(extras)
    for index, s in state.items():
        if not {"step", "exp_avg", "exp_avg_sq"} <= set(s):
            raise CheckpointError(f"{path}: incomplete Adam state for parameter {index}")
    groups = meta["param_groups"]
    ids = [i for g in groups if isinstance(g, dict) for i in g.get("params", [])]
    if (not all(isinstance(g, dict) for g in groups)
            or sorted(ids) != list(range(len(param_shapes)))):
        raise CheckpointError(f"{run_path}: optimizer.param_groups do not match the model's "
                              f"{len(param_shapes)} parameters")
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in groups]
    return {"state": state, "param_groups": groups}
