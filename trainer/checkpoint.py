"""Checkpoints: a directory of safetensors weights and one JSON file, written atomically.

    DIR/model.safetensors      the VAE's weights (readable by any safetensors tool)
    DIR/optimizer.safetensors  what else an exact resume needs: Adam's state tensors
                               ("state.<i>.<name>") and the engine's sampling RNG state,
                               epoch order and held-out indices ("engine.<name>")
    DIR/free.safetensors       free-form inference only: the lambda table ("table", one row
                               of (mu, log sigma^2) per training point), each row's
                               E-step count ("visits") and step size ("step_size")
    DIR/run.json               format + version, config, history, counters, dataset reference,
                               split, likelihood and binarization, Adam's scalar settings,
                               library versions

Loading never unpickles: tensors come only from safetensors (a fixed header and raw bytes),
so a crafted file can fail to load but cannot run code. Names and shapes are checked against
the model that the recorded config builds.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import stat
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from .architectures import build_vae
from .atomic import OLD, PARTIAL, fsync_dir, sweep_stale
from .config import ConfigError, TrainConfig
from .files import require_regular_file
from .model import VAE

FORMAT = "latent-explorer-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RUN_FILE = "run.json"
FREE_FILE = "free.safetensors"
FREE_TENSORS = ("table", "visits", "step_size")
# The first free tables (one SparseAdam step a visit) kept Adam's state: still readable,
# the table kept and the moments, which the E-step has no use for, left aside.
FREE_TENSORS_SPARSE_ADAM = ("table", "exp_avg", "exp_avg_sq", "step")
# The checkpoint's whole layout, named here only: what a copy or an archive of it must hold.
CHECKPOINT_FILES = (MODEL_FILE, OPTIMIZER_FILE, RUN_FILE)


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
    free_state: dict[str, torch.Tensor] | None = None  # FREE_TENSORS of a free-form run

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

    @property
    def channels(self) -> int:
        """1 (grey) or 3 (RGB); checkpoints from before colour datasets are grey."""
        return int(self.dataset_ref.get("channels", 1))

    def build_model(self) -> VAE:
        """The trained VAE on the CPU, in eval mode."""
        model = build_vae(self.config, self.image_shape, self.channels)
        model.load_state_dict(self.model_state)
        return model.eval()


# ------------------------------------------------------------------------------ save

def save_checkpoint(session, directory: str | os.PathLike) -> Path:
    """Write ``session`` (a trainer.Session) to ``directory``, replacing a checkpoint there.

    Everything is written into a fresh temporary directory beside it, fsynced, then renamed
    into place, so a crash leaves either the old checkpoint or the new one, never a mix.
    """
    directory = Path(directory)
    try:
        return _save_checkpoint(session, directory)
    except OSError as e:  # a full disk, a read-only folder: say where, and what is kept
        kept = ("the previous checkpoint there is kept" if (directory / RUN_FILE).is_file()
                else "nothing was written")
        raise CheckpointError(f"{directory}: cannot write the checkpoint "
                              f"({e.strerror or e}); {kept}") from None


def _save_checkpoint(session, directory: Path) -> Path:
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(parent)  # what a killed save left behind (first: it may restore DIR)
    if directory.exists() and not directory.is_dir():
        raise CheckpointError(f"{directory}: exists and is not a directory")
    if (directory.is_dir() and any(directory.iterdir())
            and not (directory / RUN_FILE).exists()):
        raise CheckpointError(f"{directory}: exists, is not empty and holds no checkpoint; "
                              "refusing to overwrite it")
    model_tensors, optimizer_tensors, run = _serialise(session)
    inference = getattr(session, "inference", None)
    free_tensors = inference.state_tensors() if hasattr(inference, "state_tensors") else None
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=PARTIAL, dir=parent))
    try:
        _write(tmp / MODEL_FILE, safetensors.torch.save(model_tensors, {"format": FORMAT}))
        _write(tmp / OPTIMIZER_FILE, safetensors.torch.save(optimizer_tensors,
                                                            {"format": FORMAT}))
        if free_tensors is not None:
            _write(tmp / FREE_FILE, safetensors.torch.save(free_tensors, {"format": FORMAT}))
        _write(tmp / RUN_FILE, (json.dumps(run, indent=1) + "\n").encode())
        fsync_dir(tmp)
        if directory.exists():
            # Moved aside, not deleted, until the new one is in place; a crash between the
            # two renames leaves it as .NAME.xxxxxxxx.old, which the next sweep renames back.
            old = parent / f".{directory.name}.{uuid.uuid4().hex[:8]}{OLD}"
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
                    "logpx": session.logpx_history.to_dict(),
                    "gaps": session.gaps_history.to_dict()},
        "dataset": {"source": str(dataset.source), "name": dataset.name, "n": len(dataset),
                    "image_shape": list(dataset.image_shape), "channels": dataset.channels,
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

# Size caps, checked before reading: run.json holds three bounded curve tables (a few
# hundred kB); a safetensors header lists a few dozen tensors (a few kB).
MAX_RUN_BYTES = 64 * 1024**2
MAX_HEADER_BYTES = 16 * 1024**2
MAX_COUNT = 2**63 - 1
MAX_IMAGE_PIXELS = 2**24  # 4096 x 4096
_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                       "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
                       "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                       "BOOL": torch.bool}
# Adam's state per parameter, and the size of the engine's sampling RNG state: torch's CPU
# generator (mt19937, 5056 bytes) or a Philox generator (CUDA: seed + offset, 16 bytes; MPS:
# a few dozen), so the CPU size or at most MAX_PHILOX_STATE bytes.
_ADAM_STATE = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_CPU_RNG_SIZE = int(torch.Generator().get_state().numel())
MAX_PHILOX_STATE = 64


def load_checkpoint(directory: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint directory; raises CheckpointError naming the file.

    Everything is checked before a model is built or a large tensor is read: run.json's
    types and ranges, then the tensor names, shapes and dtypes in each safetensors header
    against the model the recorded config describes (so a config asking for huge layers
    beside a small weights file is refused without allocating them), then the values
    (finite weights and Adam state, the epoch order, the RNG state).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    run_path = directory / RUN_FILE
    run, config, expected = _planned_model(run_path)
    param_shapes = list(expected.values())

    model_path = directory / MODEL_FILE
    header, size = _read_header(model_path)
    _check_names_shapes(model_path, header, expected)
    model_state = _read_tensors(model_path, header, size)
    _check_finite(model_path, model_state)

    optimizer_path = directory / OPTIMIZER_FILE
    header, size = _read_header(optimizer_path)
    _check_optimizer_header(optimizer_path, header, param_shapes)
    tensors = _read_tensors(optimizer_path, header, size)
    engine_state = {k.removeprefix("engine."): v for k, v in tensors.items()
                    if k.startswith("engine.")}
    optimizer_state = _optimizer_state(optimizer_path, run_path, tensors, run["optimizer"],
                                       param_shapes)
    _check_engine(optimizer_path, engine_state, run)
    return Checkpoint(path=directory, config=config, model_state=model_state,
                      optimizer_state=optimizer_state, engine_state=engine_state, run=run,
                      free_state=_read_free_table(directory / FREE_FILE, config, run))


def _read_free_table(path: Path, config: TrainConfig, run: dict) -> dict | None:
    """A free-form run's table and its rows' E-step counts, checked against the run: one
    row of 2 x latent_dim numbers per training point. None for the other inference modes."""
    if config.inference != "free":
        if path.exists():
            raise CheckpointError(f"{path}: a free-form table, but the run's inference is "
                                  f"{config.inference!r}")
        return None
    if not path.exists():
        raise CheckpointError(f"{path}: missing; a free-form run keeps its lambda table there")
    header, size = _read_header(path)
    names = next((n for n in (FREE_TENSORS, FREE_TENSORS_SPARSE_ADAM)
                  if sorted(header) == sorted(n)), None)
    if names is None:
        raise CheckpointError(f"{path}: expected tensors {list(FREE_TENSORS)}, found "
                              f"{sorted(header)[:5]}")
    n_train = run["split"]["n_train"]
    want = (n_train, 2 * config.latent_dim)
    for name in names:
        dtype, shape = header[name]
        need, kind = {"step": ((), torch.int64), "visits": ((n_train,), torch.int64),
                      "step_size": ((n_train,), torch.float32)}.get(name, (want, torch.float32))
        if shape != need:
            raise CheckpointError(
                f"{path}: {name} has shape {list(shape)}, but this run needs {list(need)} "
                f"(N = {want[0]} training points x 2 x latent_dim {config.latent_dim})")
        if dtype != kind:
            raise CheckpointError(f"{path}: {name} is {dtype}, expected {kind}")
    tensors = _read_tensors(path, header, size)
    _check_finite(path, tensors)
    if names == FREE_TENSORS_SPARSE_ADAM:
        if int(tensors["step"]) < 0 or bool((tensors["exp_avg_sq"] < 0).any()):
            raise CheckpointError(f"{path}: step and exp_avg_sq must be >= 0")
        return {"table": tensors["table"]}
    if bool((tensors["visits"] < 0).any()) or bool((tensors["step_size"] <= 0).any()):
        raise CheckpointError(f"{path}: visits must be >= 0 and step_size > 0")
    return tensors


def read_run_json(directory: str | os.PathLike) -> dict:
    """The checkpoint's run record (``RUN_FILE`` in ``directory``: config, counters, history,
    dataset reference), size-capped and type-checked as ``load_checkpoint`` reads it;
    raises CheckpointError naming the file."""
    return _read_run(Path(directory) / RUN_FILE)


def _planned_model(run_path: Path) -> tuple[dict, TrainConfig, dict[str, tuple[int, ...]]]:
    """run.json (validated), its config, and the weight shapes that config implies, taken
    from a model on the meta device: no memory is allocated for its weights."""
    run = _read_run(run_path)
    try:
        config = TrainConfig.from_dict(run["config"])
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{run_path}: bad config: {e}") from None
    shape, channels = run["dataset"]["image_shape"], run["dataset"].get("channels", 1)
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape)
                        for k, v in build_vae(config, shape, channels).state_dict().items()}
    except ConfigError as e:  # e.g. a conv model recorded for images it cannot take
        raise CheckpointError(f"{run_path}: bad config: {e}") from None
    return run, config, expected


def file_size_limits(run_path: str | os.PathLike) -> dict[str, int]:
    """The most bytes each safetensors file of the checkpoint whose run.json is ``run_path``
    can take, from the shapes its config implies (float64 at worst, and a generous header):
    lets an archive reader refuse an inflated member before unpacking it."""
    run, config, expected = _planned_model(Path(run_path))
    numel = sum(math.prod(shape) for shape in expected.values())
    header = 1024**2
    # The optimizer file also holds index tensors (the epoch order, split indices): 8 bytes
    # per datapoint each, two of them at most.
    limits = {MODEL_FILE: 8 * numel + header,
              OPTIMIZER_FILE: 3 * 8 * numel + 16 * run["dataset"]["n"] + _CPU_RNG_SIZE + header}
    if config.inference == "free":  # the table and a count per row (or two Adam moments)
        limits[FREE_FILE] = 3 * 8 * run["split"]["n_train"] * 2 * config.latent_dim + header
    return limits


def checkpoint_files(run_path: str | os.PathLike) -> tuple[str, ...]:
    """The files of the checkpoint whose run.json is ``run_path``: CHECKPOINT_FILES, plus the
    lambda table of a free-form run."""
    return CHECKPOINT_FILES + ((FREE_FILE,) if FREE_FILE in file_size_limits(run_path) else ())


def _check_heldout(heldout: torch.Tensor | None, n: int, n_heldout: int) -> None:
    """The saved held-out indices must be a proper split of the n images, as many as
    run.json records."""
    if heldout is None:
        return  # an older checkpoint: the split is rebuilt from run.json's record
    if heldout.dtype != torch.int64 or heldout.ndim != 1:
        raise ValueError("engine.heldout must be a 1-D int64 tensor")
    if not 0 < len(heldout) < n:
        raise ValueError(f"engine.heldout holds {len(heldout)} indices; a split of {n} "
                         "images needs between 1 and n - 1")
    if len(heldout) != n_heldout:
        raise ValueError(f"engine.heldout holds {len(heldout)} indices, run.json's split "
                         f"records {n_heldout}")
    if int(heldout.min()) < 0 or int(heldout.max()) >= n:
        raise ValueError(f"engine.heldout has an index outside 0..{n - 1}")
    if len(torch.unique(heldout)) != len(heldout):
        raise ValueError("engine.heldout repeats an index")
    # That the epoch order holds only training indices (none of these) is checked by the
    # Session it resumes, against the split it restores.


# key -> the JSON types it may hold; checked before anything is used.
_RUN_SCHEMA = {"format": str, "version": int, "config": dict, "counters": dict,
               "history": dict, "dataset": dict, "split": dict, "optimizer": dict}
_COUNTERS = ("step", "epoch", "samples", "cursor")  # whole numbers; "seconds" is a float
_DATASET = {"source": str, "name": str, "n": int, "image_shape": list, "fingerprint": str}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_run(path: Path) -> dict:
    size = _regular_size(path, "missing; not a checkpoint directory")
    if size > MAX_RUN_BYTES:
        raise CheckpointError(f"{path}: {size:,} bytes, more than the {MAX_RUN_BYTES:,} a "
                              "run.json may hold")
    try:
        with open(path, "rb") as f:
            text = f.read(size + 1)[:MAX_RUN_BYTES].decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read it ({e})") from None
    try:
        run = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not valid JSON (nested too deeply)") from None
    if not isinstance(run, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    if run.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint "
                              f"(format {run.get('format')!r})")
    version = run.get("version")
    if not _is_int(version):
        raise CheckpointError(f"{path}: format version missing or not a number")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer Latent Explorer (checkpoint format "
                              f"{version}; this version reads up to {FORMAT_VERSION}); upgrade "
                              "to open it")
    if version < FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version} is older than this version "
                              f"supports ({FORMAT_VERSION})")

    def fail(why: str) -> None:
        raise CheckpointError(f"{path}: {why}")

    def require(d: dict, key: str, kind: type, where: str) -> None:
        value = d.get(key)
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float:
            ok = _is_number(value)
        if not ok:
            fail(f"{where}{key!r} missing or not a {kind.__name__}")

    for key, kind in _RUN_SCHEMA.items():
        require(run, key, kind, "")
    counters = run["counters"]
    for key in _COUNTERS:
        require(counters, key, float, "counters.")
        if not (_is_int(counters[key]) and 0 <= counters[key] <= MAX_COUNT):
            fail(f"counters.{key} must be a whole number from 0 to {MAX_COUNT} "
                 f"(got {counters[key]!r})")
    require(counters, "seconds", float, "counters.")
    if not (math.isfinite(counters["seconds"]) and counters["seconds"] >= 0):
        fail(f"counters.seconds must be finite and non-negative (got {counters['seconds']!r})")
    for key, kind in _DATASET.items():
        require(run["dataset"], key, kind, "dataset.")
    shape = run["dataset"]["image_shape"]
    if len(shape) != 2 or not all(_is_int(s) and s > 0 for s in shape):
        fail("dataset.image_shape must be two positive integers")
    if shape[0] * shape[1] > MAX_IMAGE_PIXELS:
        fail(f"dataset.image_shape {shape} is over the {MAX_IMAGE_PIXELS:,}-pixel limit")
    channels = run["dataset"].get("channels", 1)
    if not (_is_int(channels) and channels in (1, 3)):
        fail(f"dataset.channels must be 1 (grey) or 3 (RGB) (got {channels!r})")
    if shape[0] * shape[1] * channels > MAX_IMAGE_PIXELS:
        fail(f"dataset.image_shape {shape} with {channels} channels is over the "
             f"{MAX_IMAGE_PIXELS:,}-value limit")
    n = run["dataset"]["n"]
    if not 2 <= n <= MAX_COUNT:
        fail(f"dataset.n must be at least 2 (got {n})")
    split = run["split"]
    for key in ("n_train", "n_heldout"):
        if not (_is_int(split.get(key)) and split[key] >= 1):
            fail(f"split.{key} missing or not a positive whole number")
    # The split's rule: what a resume on other data (or an older checkpoint) redraws it from.
    if not (_is_number(split.get("fraction")) and 0 < split["fraction"] < 1):
        fail(f"split.fraction must be a number between 0 and 1 (got {split.get('fraction')!r})")
    if not (_is_int(split.get("seed")) and 0 <= split["seed"] < 2**63):
        fail(f"split.seed must be a non-negative whole number (got {split.get('seed')!r})")
    if split["n_train"] + split["n_heldout"] != n:
        fail(f"split.n_train + split.n_heldout is {split['n_train'] + split['n_heldout']}, "
             f"but dataset.n is {n}")
    if counters["cursor"] > split["n_train"]:
        fail(f"counters.cursor {counters['cursor']} is past the {split['n_train']} training "
             "images")
    fit = run["dataset"].get("fit_fraction")
    if fit is not None and not (_is_number(fit) and 0 < fit <= 1):
        fail(f"dataset.fit_fraction must be a number in (0, 1] (got {fit!r})")
    # session imports us
    from .session import GAP_COLUMNS, HELDOUT_COLUMNS, LOGPX_COLUMNS, TRAIN_COLUMNS

    columns = {"train": TRAIN_COLUMNS, "heldout": HELDOUT_COLUMNS, "logpx": LOGPX_COLUMNS,
               "gaps": GAP_COLUMNS}
    for table in ("train", "heldout", "logpx", "gaps"):
        if table in ("logpx", "gaps") and table not in run["history"]:
            continue  # optional: older runs, and latents other than 2-D, have no such curve
        require(run["history"], table, dict, "history.")
        t = run["history"][table]
        if not (isinstance(t.get("columns"), list) and isinstance(t.get("rows"), list)
                and tuple(t["columns"]) == columns[table]
                and _is_int(t.get("limit")) and 10 <= t["limit"] <= 10**6
                and len(t["rows"]) <= t["limit"] + 1
                and all(isinstance(r, list) and len(r) == len(t["columns"])
                        and all(v is None or _is_number(v) for v in r)
                        for r in t["rows"])):
            fail(f"history.{table} is malformed")
    require(run["optimizer"], "param_groups", list, "optimizer.")
    return run


def _regular_size(path: Path, missing: str) -> int:
    """The size of ``path``, refusing FIFOs and devices (reading them could block forever)."""
    try:
        st = require_regular_file(path, CheckpointError)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None
    if st is None:
        raise CheckpointError(f"{path}: {missing}")
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path}: is a folder, not a file")
    return st.st_size


def _read_header(path: Path) -> tuple[dict[str, tuple[torch.dtype, tuple[int, ...]]], int]:
    """Tensor name -> (dtype, shape) from a safetensors header, reading only the header
    (an 8-byte little-endian length, then that many bytes of JSON), and the file's size."""
    size = _regular_size(path, "missing")

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{path}: not a valid safetensors file ({why})")

    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise bad("shorter than its 8-byte header length")
            n = int.from_bytes(head, "little")
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise bad(f"header length {n:,} bytes does not fit the file")
            header = json.loads(f.read(n))
    except CheckpointError:
        raise
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError
        raise bad(f"header is not JSON: {str(e)[:80]}") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    tensors: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(info, dict) and info.get("dtype") in _SAFETENSORS_DTYPES
                and isinstance(info.get("shape"), list)
                and all(_is_int(d) and d >= 0 for d in info["shape"])
                and isinstance(info.get("data_offsets"), list) and len(info["data_offsets"]) == 2
                and all(_is_int(o) for o in info["data_offsets"])):
            raise bad(f"header entry {name!r} is malformed")
        tensors[name] = (_SAFETENSORS_DTYPES[info["dtype"]], tuple(info["shape"]))
        end = max(end, info["data_offsets"][1])
    if 8 + n + end != size:
        raise bad(f"the header describes {8 + n + end:,} bytes, the file has {size:,}")
    return tensors, size


def _read_tensors(path: Path, header: dict, size: int) -> dict[str, torch.Tensor]:
    """The tensors, which must be those ``header`` (checked before) listed, in no more bytes
    than it described: the file may have changed between the two reads."""
    changed = CheckpointError(f"{path}: changed while it was being read")
    try:
        with open(path, "rb") as f:
            data = f.read(size + 1)
    except FileNotFoundError:
        raise changed from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read it ({e})") from None
    if len(data) != size:
        raise changed
    tensors = _load_safetensors(path, data)
    if {k: (v.dtype, tuple(v.shape)) for k, v in tensors.items()} != header:
        raise changed
    return tensors


def _load_safetensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        # safetensors parses a length-prefixed JSON header and raw little-endian bytes;
        # it has no code path that could execute anything in the file.
        return safetensors.torch.load(data)
    except Exception as e:  # SafetensorError and friends: any failure means a bad file
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a valid safetensors file ({reason})") from None


def _check_names_shapes(path: Path, header: dict[str, tuple[torch.dtype, tuple[int, ...]]],
                        expected: dict[str, tuple[int, ...]]) -> None:
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: tensor names do not match the recorded config "
                              f"(missing {missing[:3]}, unexpected {extra[:3]})")
    for name, shape in expected.items():
        dtype, got = header[name]
        if got != shape:
            raise CheckpointError(f"{path}: tensor {name} has shape {list(got)}, the recorded "
                                  f"config needs {list(shape)}")
        if not dtype.is_floating_point:
            raise CheckpointError(f"{path}: tensor {name} is {dtype}, expected floating point")


def _check_finite(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: tensor {name} holds NaN or infinite values; "
                                  "the run had diverged when it was saved")


def _check_optimizer_header(path: Path, header: dict, param_shapes: list[tuple[int, ...]]
                            ) -> None:
    """Names, shapes and dtypes of Adam's state and the engine's tensors, before reading."""
    for key, (dtype, shape) in header.items():
        parts = key.split(".")
        if key == "engine.rng_state":
            want, kinds = None, (torch.uint8,)
            if len(shape) != 1 or not (shape[0] == _CPU_RNG_SIZE
                                       or 1 <= shape[0] <= MAX_PHILOX_STATE):
                raise CheckpointError(f"{path}: engine.rng_state has shape {list(shape)}; a "
                                      f"sampling RNG state is {_CPU_RNG_SIZE} bytes (CPU) or "
                                      f"at most {MAX_PHILOX_STATE} (GPU)")
        elif key in ("engine.order", "engine.heldout"):
            want, kinds = None, (torch.int64,)
            if len(shape) != 1:
                raise CheckpointError(f"{path}: {key} must be 1-D, has shape "
                                      f"{list(shape)}")
        elif (len(parts) == 3 and parts[0] == "state" and parts[1].isdigit()
              and parts[2] in _ADAM_STATE):
            index = int(parts[1])
            if index >= len(param_shapes):
                raise CheckpointError(f"{path}: state for parameter {index}, but the model "
                                      f"has {len(param_shapes)}")
            want = () if parts[2] == "step" else param_shapes[index]
            kinds = (torch.float32, torch.float64) if parts[2] == "step" else (torch.float32,)
        else:
            raise CheckpointError(f"{path}: unexpected tensor {key!r}")
        if want is not None and shape != want:
            raise CheckpointError(f"{path}: tensor {key} has shape {list(shape)}, "
                                  f"expected {list(want)}")
        if dtype not in kinds:
            raise CheckpointError(f"{path}: tensor {key} is {dtype}, expected "
                                  f"{' or '.join(str(k) for k in kinds)}")


def _check_engine(path: Path, engine: dict[str, torch.Tensor], run: dict) -> None:
    """The epoch order must be a permutation of distinct training indices, and the RNG
    state one torch accepts."""
    order = engine.get("order")
    if order is not None:
        n, n_train = run["dataset"]["n"], run["split"]["n_train"]
        if len(order) != n_train:
            raise CheckpointError(f"{path}: engine.order holds {len(order)} indices, the split "
                                  f"has {n_train} training images")
        if len(order) and (int(order.min()) < 0 or int(order.max()) >= n
                           or len(torch.unique(order)) != len(order)):
            raise CheckpointError(f"{path}: engine.order is not a permutation of training "
                                  f"indices (values must be distinct, from 0 to {n - 1})")
    try:
        _check_heldout(engine.get("heldout"), run["dataset"]["n"], run["split"]["n_heldout"])
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    rng = engine.get("rng_state")
    if rng is not None and len(rng) == _CPU_RNG_SIZE:
        try:
            torch.Generator().set_state(rng)
        except RuntimeError as e:
            raise CheckpointError(f"{path}: engine.rng_state is not a valid RNG state "
                                  f"({str(e).splitlines()[0]})") from None


# Adam's param-group settings and what each may hold; "params" is checked separately.
_GROUP_KEYS = {"lr": "positive", "betas": "betas", "eps": "positive",
               "weight_decay": "non-negative", "amsgrad": bool, "maximize": bool,
               "foreach": (bool, type(None)), "capturable": bool, "differentiable": bool,
               "fused": (bool, type(None)), "decoupled_weight_decay": bool}
_GROUP_REQUIRED = ("lr", "betas", "eps", "weight_decay", "amsgrad", "params")


def _check_param_groups(run_path: Path, groups: list, n_params: int) -> None:
    def fail(why: str) -> None:
        raise CheckpointError(f"{run_path}: optimizer.param_groups: {why}")

    if len(groups) != 1 or not isinstance(groups[0], dict):
        fail(f"expected one group (the engine's Adam), got {len(groups)}")
    group = groups[0]
    # Keys this torch's Adam knows count too (a later torch adds options with defaults).
    known = set(_GROUP_KEYS) | set(torch.optim.Adam([torch.zeros(1)]).defaults) | {"params"}
    unknown = sorted(set(group) - known)
    missing = [k for k in _GROUP_REQUIRED if k not in group]
    if unknown or missing:
        fail(f"unknown keys {unknown[:3]}, missing keys {missing[:3]}")
    if group["params"] != list(range(n_params)):
        raise CheckpointError(f"{run_path}: optimizer.param_groups do not match the model's "
                              f"{n_params} parameters ('params' must be 0..{n_params - 1})")
    for key, rule in _GROUP_KEYS.items():
        if key not in group:
            continue
        value = group[key]
        if rule == "betas":
            ok = (isinstance(value, list) and len(value) == 2
                  and all(_is_number(b) and 0 <= b < 1 for b in value))
        elif rule in ("positive", "non-negative"):
            ok = _is_number(value) and math.isfinite(value) and (
                value > 0 if rule == "positive" else value >= 0)
        else:
            ok = isinstance(value, rule)
        if key in ("maximize", "differentiable"):  # the engine minimises, and never
            ok = value is False                    # differentiates through a step
        if not ok:
            fail(f"{key} is {value!r}, which Adam cannot use")


def _optimizer_state(path: Path, run_path: Path, tensors: dict[str, torch.Tensor],
                     meta: dict, param_shapes: list[tuple[int, ...]]) -> dict:
    """Rebuild torch's Adam state_dict from named tensors (names, shapes and dtypes were
    checked from the header), checking the values and the param groups."""
    state: dict[int, dict] = {}
    # Numeric order, so the first problem reported is the same whatever the file's order.
    natural = lambda key: [int(p) if p.isdigit() else p for p in key.split(".")]
    for key in sorted(tensors, key=natural):
        if key.startswith("engine."):
            continue
        value = tensors[key]
        _, index, name = key.split(".")
        if not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: tensor {key} holds NaN or infinite values")
        if name in ("step", "exp_avg_sq", "max_exp_avg_sq") and bool((value < 0).any()):
            raise CheckpointError(f"{path}: tensor {key} is negative; Adam keeps it >= 0")
        state.setdefault(int(index), {})[name] = value
    scalar_state = meta.get("scalar_state") or {}
    if not isinstance(scalar_state, dict):
        raise CheckpointError(f"{run_path}: optimizer.scalar_state is malformed")
    for index, extras in scalar_state.items():
        # Only the step count may be a plain number (non-fused Adam on old torch versions).
        if (not str(index).isdigit() or int(index) >= len(param_shapes)
                or not isinstance(extras, dict) or set(extras) - {"step"}
                or not all(_is_number(v) and math.isfinite(v) and v >= 0
                           for v in extras.values())
                or set(extras) & set(state.get(int(index), {}))):
            raise CheckpointError(f"{run_path}: optimizer.scalar_state is malformed")
        state.setdefault(int(index), {}).update(extras)
    for index, s in state.items():
        if not {"step", "exp_avg", "exp_avg_sq"} <= set(s):
            raise CheckpointError(f"{path}: incomplete Adam state for parameter {index}")
    groups = meta["param_groups"]
    _check_param_groups(run_path, groups, len(param_shapes))
    if groups[0]["amsgrad"] and state and not all("max_exp_avg_sq" in s for s in state.values()):
        raise CheckpointError(f"{path}: amsgrad is on but max_exp_avg_sq is missing")
    groups = [dict(g, betas=tuple(g["betas"])) for g in groups]
    return {"state": state, "param_groups": groups}
