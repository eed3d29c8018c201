"""Session files: one ``NAME.lexp`` (a zip archive) that brings a whole session back.

    the checkpoint's files    as trainer.save_checkpoint writes them (their names are the
                    trainer's: trainer.checkpoint.CHECKPOINT_FILES)
    session.json    format + version, the encoded images' names/sources/notes, the selection
                    and the view state (view region, sigma level, manifold mode and grid, ...)
    encoded.npz     the encoded images' arrays: ``inputs`` float32 (M, H, W), or (M, H, W, 3)
                    for a colour model, what the model is given, and ``grey_<i>`` uint8 (h, w)
                    grey or (h, w, 3) RGB, each original (named when only grey was kept)
    runs/<k>/...    the checkpoints of a window's further runs (k = 1..3), on the same dataset;
                    session.json's ``runs`` lists every run's name and colour, the first being
                    the checkpoint at the top. A reader that knows one run opens the first.

Saving is atomic (``trainer.atomic_write``): a crash mid-write leaves the previous file as it
was. Opening never runs code from the file: no pickle anywhere (tensors via safetensors,
arrays via ``np.load(allow_pickle=False)``, the rest JSON), members are read by their known
names into memory (never ``extractall``), with unsafe names, duplicates and oversized members
refused first. Every problem is a SessionFileError whose one-line message names the file.

No Qt here: the window supplies a SessionState and gets a LoadedSession back.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from trainer import (
    KNOWN_DATASETS,
    Checkpoint,
    CheckpointError,
    DataError,
    ImageDataset,
    LoadCancelled,
    Session,
    atomic_write,
    load_checkpoint,
    load_source,
    save_checkpoint,
)
from trainer.atomic import staging_dir
from trainer.checkpoint import CHECKPOINT_FILES, RUN_FILE, checkpoint_files, file_size_limits
from trainer.files import require_regular_file
from trainer.sprites import SOURCES as SPRITE_SOURCES

FORMAT = "latent-explorer-session"
FORMAT_VERSION = 1
SUFFIX = ".lexp"
SESSION_JSON = "session.json"
ENCODED_NPZ = "encoded.npz"
MEMBERS = (*CHECKPOINT_FILES, SESSION_JSON, ENCODED_NPZ)
MAX_RUNS = 4  # explorer.core.state.MAX_RUNS: the runs one window shows


def run_members(k: int, names: tuple[str, ...] = CHECKPOINT_FILES) -> tuple[str, ...]:
    """The members holding run k's checkpoint files ``names`` (run 0's are at the top, as in
    one-run files)."""
    return names if k == 0 else tuple(f"runs/{k}/{n}" for n in names)
# Zip-bomb guards, all checked from the zip directory before a member is inflated: what the
# whole archive unpacks to; each member's size by its role (the JSON members hold a few
# hundred kB; the tensors what the recorded config's shapes imply; the arrays what the
# encoded list implies); and, for any member over RATIO_FLOOR, how far it inflates (deflate
# reaches ~1000:1 only on near-constant data; JSON and weights stay under ~20:1).
MAX_TOTAL_BYTES = 2 * 1024**3
MAX_GREY_SIDE = 4096
MAX_JSON_BYTES = {SESSION_JSON: 8 * 1024**2, RUN_FILE: 16 * 1024**2}
MAX_RATIO = 100
# Files written before the writer stored near-constant arrays deflated them: a session of
# many near-blank drawings may reach a few hundred to one (the 1000:1 of deflate's limit
# means all-constant data: a bomb, or only blank images).
MAX_ARRAY_RATIO = 500
RATIO_FLOOR = 1024**2


class SessionFileError(ValueError):
    """A session file cannot be written or read. The one-line message names the file."""


@dataclass
class EncodedRecord:
    """One encoded image as stored; the same fields as explorer.qt.image_jobs.PreparedImage, so
    ``PreparedImage(r.name, r.source, r.original, r.input, r.notes)`` rebuilds it."""

    name: str
    source: str | None
    original: np.ndarray  # uint8 (h, w) grey or (h, w, 3) RGB
    input: np.ndarray  # float32 (H, W) or (H, W, 3) in [0, 1]
    notes: list[str] = field(default_factory=list)


@dataclass
class SavedRun:
    """A further run to save beside the first: its checkpoint (as SessionState.checkpoint),
    name and colour."""

    checkpoint: Session | str | os.PathLike
    name: str
    colour: str | None = None


@dataclass
class LoadedRun:
    name: str | None  # None in a file saved before runs had names
    colour: str | None
    checkpoint: Checkpoint


@dataclass
class SessionState:
    """What the window supplies to save a session.

    ``checkpoint``: a trainer.Session, written now with trainer.save_checkpoint (call this
    from the thread that steps it, or while it is paused), or the path of a checkpoint
    directory already written (e.g. by the worker, between steps).
    ``encoded``: objects with name, source, original, input and notes (PreparedImage or
    EncodedRecord). ``view``: small JSON-able state, e.g. {"view_region": [x0, x1, y0, y1],
    "sigma_level": 1, "manifold_mode": "prior", "manifold_grid": 15, "colour_by": "label"}.
    """

    checkpoint: Session | str | os.PathLike
    encoded: Sequence = ()
    selected_encoded: int | None = None
    selected_point: int | None = None
    view: dict = field(default_factory=dict)
    name: str | None = None  # the first run's name and colour
    colour: str | None = None
    more_runs: Sequence[SavedRun] = ()  # the window's other runs, in order


@dataclass
class LoadedSession:
    path: Path
    checkpoint: Checkpoint  # tensors in memory; its ``path`` is the session file
    encoded: list[EncodedRecord]
    selected_encoded: int | None
    selected_point: int | None
    view: dict
    meta: dict  # session.json as read
    runs: list[LoadedRun] = field(default_factory=list)  # every run; runs[0] is checkpoint

    def __post_init__(self) -> None:
        if not self.runs:  # a checkpoint folder, or a record built by hand: one run
            self.runs = [LoadedRun(None, None, self.checkpoint)]

    @property
    def dataset_ref(self) -> dict:
        """source, name, n, image_shape and fingerprint of the dataset it was trained on."""
        return self.checkpoint.dataset_ref

    def make_session(self, dataset: ImageDataset, device: str | None = None,
                     threads: int | None = None) -> Session:
        """A training engine that resumes exactly where the saved one stopped."""
        try:
            return Session.from_checkpoint(self.checkpoint, dataset, device=device,
                                           threads=threads)
        except CheckpointError as e:
            raise SessionFileError(str(e)) from None


# ------------------------------------------------------------------------------ save

def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("latent-explorer")
    except PackageNotFoundError:
        return "unknown"


def _optional_index(value, count: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer or None, got {value!r}")
    if value < 0 or (count is not None and value >= count):
        raise ValueError(f"{what} {value} is out of range (0..{count})")
    return int(value)


def _session_json(state: SessionState, records: list[EncodedRecord], n_points: int) -> bytes:
    runs = [{"name": state.name, "colour": state.colour},
            *({"name": r.name, "colour": r.colour} for r in state.more_runs)]
    for run in runs:
        if not isinstance(run["name"], (str, type(None))) or \
                not isinstance(run["colour"], (str, type(None))):
            raise ValueError("run names and colours must be text")
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "app": {"name": "Latent Explorer", "version": _app_version()},
        "encoded": [{"name": r.name, "source": r.source, "notes": list(r.notes)}
                    for r in records],
        "selection": {"encoded": _optional_index(state.selected_encoded, len(records),
                                                 "selected_encoded"),
                      "point": _optional_index(state.selected_point, n_points, "selected_point")},
        "view": dict(state.view),
        "runs": runs,
    }
    return (json.dumps(meta, indent=1, default=_json_default, allow_nan=False) + "\n").encode()


def _encoded_npz(records: list[EncodedRecord], shape: tuple[int, ...]) -> bytes:
    arrays = {"inputs": np.stack([r.input for r in records]) if records
              else np.zeros((0, *shape), np.float32)}
    for i, r in enumerate(records):
        arrays[f"grey_{i}"] = r.original
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def stored_shape(checkpoint) -> tuple[int, ...]:
    """One image of a checkpoint's model as stored: (H, W) grey, (H, W, 3) colour."""
    h, w = checkpoint.image_shape
    return (h, w) if checkpoint.channels == 1 else (h, w, checkpoint.channels)


def _image_shaped(a: np.ndarray) -> bool:
    return a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)


def _records(encoded: Sequence, shape: tuple[int, ...]) -> list[EncodedRecord]:
    records = []
    for i, e in enumerate(encoded):
        r = EncodedRecord(name=str(e.name), source=None if e.source is None else str(e.source),
                          original=np.asarray(e.original),
                          input=np.asarray(e.input, np.float32), notes=[str(n) for n in e.notes])
        if r.original.dtype != np.uint8 or not _image_shaped(r.original):
            raise ValueError(f"encoded image {i} ({r.name}): the original must be uint8 "
                             "(h, w) grey or (h, w, 3) RGB")
        if r.input.shape != shape:
            raise ValueError(f"encoded image {i} ({r.name}): input is {r.input.shape}, the "
                             f"model's images are {shape}")
        records.append(r)
    return records


def save_session(path: str | os.PathLike, state: SessionState) -> Path:
    """Write ``state`` to ``path`` (conventionally ``NAME.lexp``), replacing it atomically."""
    path = Path(path)
    if 1 + len(state.more_runs) > MAX_RUNS:
        raise SessionFileError(f"{path}: at most {MAX_RUNS} runs fit in a session")
    # Staged beside the target (not in $TMPDIR): a killed save leaves a recognisable
    # .NAME.xxxxxxxx.partial folder there, which the next save sweeps once stale.
    with staging_dir(path) as tmp:
        folders = []
        sources = [state.checkpoint, *(r.checkpoint for r in state.more_runs)]
        for k, source in enumerate(sources):
            if isinstance(source, (str, os.PathLike)):
                folders.append(Path(source))
                continue
            folders.append(Path(tmp) / f"checkpoint-{k}")
            try:
                save_checkpoint(source, folders[-1])
            except (CheckpointError, OSError) as e:
                raise SessionFileError(f"{path}: cannot save the checkpoint ({e})") from None
        try:
            payload = {}
            for k, folder in enumerate(folders):
                checkpoint = load_checkpoint(folder)  # never write a session that cannot open
                if k == 0:
                    first = checkpoint
                elif checkpoint.dataset_ref["fingerprint"] != first.dataset_ref["fingerprint"]:
                    raise ValueError(f"run {k + 1} trained on another dataset than run 1")
                names = checkpoint_files(folder / RUN_FILE)  # a free-form run's table too
                payload.update({member: (folder / name).read_bytes() for member, name
                                in zip(run_members(k, names), names, strict=True)})
            checkpoint = first
            records = _records(state.encoded, stored_shape(checkpoint))
            payload[SESSION_JSON] = _session_json(state, records,
                                                  checkpoint.dataset_ref["n"])
            payload[ENCODED_NPZ] = _encoded_npz(records, stored_shape(checkpoint))
        except (CheckpointError, OSError, TypeError, ValueError) as e:
            raise SessionFileError(f"{path}: cannot save the session ({e})") from None

    def write(tmp_path: str) -> None:
        with zipfile.ZipFile(tmp_path, "w") as zf:
            for name in payload:
                # Float weights barely compress; storing them keeps autosave on quit quick.
                # Near-constant arrays (large blank images) are stored too, so the file never
                # trips the loader's inflation-ratio guard.
                data = payload[name]
                kind = (zipfile.ZIP_STORED if name.endswith(".safetensors")
                        or (len(data) > RATIO_FLOOR
                            and len(data) > MAX_RATIO * len(zlib.compress(data, 6)))
                        else zipfile.ZIP_DEFLATED)
                zf.writestr(name, data, compress_type=kind)

    try:
        return atomic_write(path, write)
    except OSError as e:
        raise SessionFileError(f"{path}: cannot write it ({e.strerror or e})") from None


# ------------------------------------------------------------------------------ load

def _unsafe(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return (p.is_absolute() or ".." in p.parts or name.startswith(("/", "\\"))
            or (len(name) > 1 and name[1] == ":"))


def _members(path: Path, zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    for info in infos:
        if _unsafe(info.filename):
            raise SessionFileError(f"{path}: unsafe member name {info.filename!r}")
    dupes = sorted(n for n, c in Counter(i.filename for i in infos).items() if c > 1)
    if dupes:
        raise SessionFileError(f"{path}: duplicate member {dupes[0]!r}")
    total = sum(i.file_size for i in infos)
    if total > MAX_TOTAL_BYTES:
        raise SessionFileError(f"{path}: unpacks to {total / 1e9:.1f} GB, more than the "
                               f"{MAX_TOTAL_BYTES / 1e9:.1f} GB a session may hold")
    found = {i.filename: i for i in infos}
    missing = [name for name in MEMBERS if name not in found]
    if missing:
        raise SessionFileError(f"{path}: missing {missing[0]}; not a complete Latent Explorer "
                               "session")
    _check_inflation(path, infos)
    for info in infos:
        if info.flag_bits & 0x1:
            raise SessionFileError(f"{path}: {info.filename} is encrypted")
        if PurePosixPath(info.filename).name == RUN_FILE or info.filename == SESSION_JSON:
            _check_cap(path, info, MAX_JSON_BYTES[PurePosixPath(info.filename).name])
    return found


def _check_cap(path: Path | str, info: zipfile.ZipInfo, cap: int) -> None:
    if info.file_size > cap:
        raise SessionFileError(f"{path}: {info.filename} unpacks to {info.file_size:,} bytes, "
                               f"more than the {cap:,} it can hold")


def _check_inflation(path: Path | str, infos: list[zipfile.ZipInfo]) -> None:
    for info in infos:
        ratio = MAX_ARRAY_RATIO if info.filename.endswith((".npz", ".npy")) else MAX_RATIO
        if (info.file_size > RATIO_FLOOR
                and info.file_size > ratio * max(1, info.compress_size)):
            raise SessionFileError(f"{path}: {info.filename} inflates {info.compress_size:,} "
                                   f"bytes to {info.file_size:,}, more than {ratio}:1 "
                                   "(a zip bomb?)")


def _read(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)  # zipfile stops at file_size and checks the CRC
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
            RuntimeError, ValueError, OverflowError) as e:
        raise SessionFileError(f"{path}: {info.filename} is corrupt ({e})") from None
    if len(data) != info.file_size:
        raise SessionFileError(f"{path}: {info.filename} is truncated")
    return data


def _check_meta(path: Path, data: bytes) -> dict:
    def no_constants(name: str):  # the writer never writes NaN or Infinity
        raise ValueError(f"{name} is not a JSON number")

    try:
        meta = json.loads(data.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise SessionFileError(f"{path}: {SESSION_JSON} is not valid JSON ({e})") from None
    except RecursionError:
        raise SessionFileError(f"{path}: {SESSION_JSON} is not valid JSON (nested too "
                               "deeply)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise SessionFileError(f"{path}: not a Latent Explorer session (format {found!r})")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise SessionFileError(f"{path}: unknown session format version {version!r}; this "
                               f"version reads format {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise SessionFileError(f"{path}: was saved by a newer Latent Explorer (format "
                               f"{version}); this version reads format {FORMAT_VERSION}")
    if version < FORMAT_VERSION:
        raise SessionFileError(f"{path}: was saved by an older Latent Explorer (format "
                               f"{version}) that this version cannot read; it reads format "
                               f"{FORMAT_VERSION}")
    encoded = meta.get("encoded")
    if not (isinstance(encoded, list) and all(
            isinstance(e, dict) and isinstance(e.get("name"), str)
            and (e.get("source") is None or isinstance(e.get("source"), str))
            and isinstance(e.get("notes"), list)
            and all(isinstance(n, str) for n in e["notes"]) for e in encoded)):
        raise SessionFileError(f"{path}: {SESSION_JSON}: 'encoded' is malformed")
    if not isinstance(meta.get("selection"), dict) or not isinstance(meta.get("view"), dict):
        raise SessionFileError(f"{path}: {SESSION_JSON}: 'selection' or 'view' is missing")
    runs = meta.get("runs", [{"name": None, "colour": None}])  # absent: a one-run file
    if not (isinstance(runs, list) and 1 <= len(runs) <= MAX_RUNS and all(
            isinstance(r, dict) and isinstance(r.get("name"), (str, type(None)))
            and isinstance(r.get("colour"), (str, type(None))) for r in runs)):
        raise SessionFileError(f"{path}: {SESSION_JSON}: 'runs' is malformed")
    meta["runs"] = runs
    return meta


def _load_checkpoint(path: Path, zf: zipfile.ZipFile, found: dict, k: int = 0) -> Checkpoint:
    run_member = run_members(k, (RUN_FILE,))[0]
    if run_member not in found:
        raise SessionFileError(f"{path}: missing {run_member} (run {k + 1} of the session)")
    # The members are copied out to be read; a process killed meanwhile leaves the copy in
    # the temp folder under a staging name, swept by the next open once stale.
    scratch = Path(tempfile.gettempdir()) / f"lexp-open-{path.name}"
    with staging_dir(scratch) as tmp:
        try:
            # The run record first (capped in size): the shapes it records bound the tensors,
            # and its config says which files the checkpoint has.
            run_path = Path(tmp) / RUN_FILE
            run_path.write_bytes(_read(path, zf, found[run_member]))
            names = checkpoint_files(run_path)
            members = dict(zip(names, run_members(k, names), strict=True))
            missing = [m for m in members.values() if m not in found]
            if missing:
                raise SessionFileError(
                    f"{path}: missing {missing[0]} (run {k + 1} of the session)")
            for name, cap in file_size_limits(run_path).items():
                _check_cap(path, found[members[name]], cap)
            for name in names:  # known names only, written by us
                if name != RUN_FILE:
                    (Path(tmp) / name).write_bytes(_read(path, zf, found[members[name]]))
            checkpoint = load_checkpoint(tmp)  # every tensor is copied into memory
        except CheckpointError as e:
            raise SessionFileError(str(e).replace(str(Path(tmp)), str(path))) from None
    checkpoint.path = path  # later messages (e.g. from Session.from_checkpoint) name the file
    return checkpoint


def _load_encoded(path: Path, data: bytes, meta: dict,
                  shape: tuple[int, ...]) -> list[EncodedRecord]:
    entries = meta["encoded"]
    where = f"{path}: {ENCODED_NPZ}"
    try:  # the arrays are a zip of their own: the same size guards before anything unpacks
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except Exception as e:  # noqa: BLE001 - any failure to parse means a bad member
        raise SessionFileError(f"{where}: not a valid .npz archive ({e})") from None
    inner = sum(i.file_size for i in infos)
    if inner > MAX_TOTAL_BYTES:
        raise SessionFileError(f"{where}: unpacks to {inner / 1e9:.1f} GB, more than the "
                               f"{MAX_TOTAL_BYTES / 1e9:.1f} GB a session may hold")
    _check_inflation(where, infos)
    header = 4096  # a .npy header is 64-4096 bytes
    caps = {"inputs.npy": len(entries) * int(np.prod(shape)) * 4 + header,
            **{f"grey_{i}.npy": 3 * MAX_GREY_SIDE**2 + header for i in range(len(entries))}}
    for info in infos:
        if info.filename not in caps:
            raise SessionFileError(f"{where}: unexpected array {info.filename!r}")
        _check_cap(where, info, caps[info.filename])
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # noqa: BLE001 - any failure to parse means a bad member
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SessionFileError(f"{where}: cannot read it ({reason})") from None
    inputs = arrays.get("inputs")
    if (inputs is None or inputs.dtype != np.float32
            or inputs.shape != (len(entries), *shape)):
        got = None if inputs is None else (inputs.dtype, inputs.shape)
        raise SessionFileError(f"{where}: 'inputs' must be float32 of shape "
                               f"{(len(entries), *shape)}, got {got}")
    if not np.all(np.isfinite(inputs)):
        raise SessionFileError(f"{where}: 'inputs' holds non-finite values")
    records = []
    for i, e in enumerate(entries):
        original = arrays.get(f"grey_{i}")
        if (original is None or original.dtype != np.uint8 or not _image_shaped(original)
                or not 0 < max(original.shape[:2]) <= MAX_GREY_SIDE
                or min(original.shape[:2]) == 0):
            raise SessionFileError(f"{where}: 'grey_{i}' is missing or not a uint8 (h, w) "
                                   "grey or (h, w, 3) RGB image")
        records.append(EncodedRecord(name=e["name"], source=e["source"], original=original,
                                     input=inputs[i].copy(), notes=list(e["notes"])))
    return records


def load_session(path: str | os.PathLike) -> LoadedSession:
    """Read and check a session file; raises SessionFileError naming the file and reason."""
    path = Path(path)
    try:
        require_regular_file(path, SessionFileError)  # a FIFO or device would block the read
    except OSError as e:
        raise SessionFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise SessionFileError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, EOFError, ValueError, OverflowError):
        raise SessionFileError(f"{path}: not a Latent Explorer session (not a zip archive, "
                               "or truncated)") from None
    except NotImplementedError as e:  # e.g. "zip file version 14.7" from a damaged header
        raise SessionFileError(f"{path}: cannot read this zip archive ({e})") from None
    except OSError as e:
        raise SessionFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    with zf:
        found = _members(path, zf)
        meta = _check_meta(path, _read(path, zf, found[SESSION_JSON]))
        checkpoint = _load_checkpoint(path, zf, found)
        runs = [LoadedRun(meta["runs"][0]["name"], meta["runs"][0]["colour"], checkpoint)]
        for k, entry in enumerate(meta["runs"][1:], start=1):
            more = _load_checkpoint(path, zf, found, k)
            if more.dataset_ref["fingerprint"] != checkpoint.dataset_ref["fingerprint"]:
                raise SessionFileError(f"{path}: run {k + 1} was trained on another dataset "
                                       "than run 1")
            runs.append(LoadedRun(entry["name"], entry["colour"], more))
        encoded = _load_encoded(path, _read(path, zf, found[ENCODED_NPZ]), meta,
                                stored_shape(checkpoint))
    selection = meta["selection"]
    try:
        selected_encoded = _optional_index(selection.get("encoded"), len(encoded),
                                           "selection.encoded")
        selected_point = _optional_index(selection.get("point"), checkpoint.dataset_ref["n"],
                                         "selection.point")
    except ValueError as e:
        raise SessionFileError(f"{path}: {SESSION_JSON}: {e}") from None
    return LoadedSession(path=path, checkpoint=checkpoint, encoded=encoded,
                         selected_encoded=selected_encoded, selected_point=selected_point,
                         view=dict(meta["view"]), meta=meta, runs=runs)


# ------------------------------------------------------------------------------ dataset

def check_dataset(loaded: LoadedSession, dataset: ImageDataset) -> list[str]:
    """How ``dataset`` differs from the one the session was trained on, one phrase each;
    empty when the contents are identical (same fingerprint), whatever its name or path."""
    ref = loaded.dataset_ref
    if dataset.fingerprint() == ref["fingerprint"]:
        return []
    diffs = []
    if len(dataset) != ref["n"]:
        diffs.append(f"{ref['n']:,} images when saved, {len(dataset):,} now")
    h, w = ref["image_shape"]
    if tuple(dataset.image_shape) != (h, w):
        diffs.append(f"images {h}x{w} when saved, {dataset.image_shape[0]}x"
                     f"{dataset.image_shape[1]} now")
    if dataset.name != ref["name"]:
        diffs.append(f"named {ref['name']!r} when saved, {dataset.name!r} now")
    if str(dataset.source) != ref["source"]:
        diffs.append(f"loaded from {ref['source']} when saved, {dataset.source} now")
    diffs.append(f"contents differ (fingerprint {ref['fingerprint'][:12]} when saved, "
                 f"{dataset.fingerprint()[:12]} now)")
    return diffs


# Names load_source makes in memory (no file, no download): never paths beside a session.
BUILT_IN = ("digits", *SPRITE_SOURCES)


def _candidates(loaded: LoadedSession, source: str) -> list[str]:
    if source in BUILT_IN or source in KNOWN_DATASETS:
        return [source]
    found = [source]
    p = Path(source)
    if not p.is_absolute():  # a relative path on the command line: try beside the session too
        found.append(str(loaded.path.parent / p))
    return found


def find_dataset(loaded: LoadedSession, allow_download: bool = False, progress=None,
                 cancelled=None) -> tuple[ImageDataset | None, str | None]:
    """Load the session's dataset from where it was recorded: the built-in digits, a path,
    or MNIST / Fashion-MNIST from the download cache (downloaded only with
    ``allow_download``). Returns (dataset, None), or (None, a one-line reason) when it is
    missing or no longer the same data (then ask the user to locate it). ``progress`` and
    ``cancelled`` go to ``load_source`` (a cancel raises trainer.LoadCancelled)."""
    ref = loaded.dataset_ref
    source = ref["source"]
    reason = f"{source}: no such file or folder (the session's dataset, {ref['name']})"
    for candidate in _candidates(loaded, source):
        if candidate not in KNOWN_DATASETS and candidate not in BUILT_IN \
                and not Path(candidate).exists():
            continue
        # Cache only: a download polls cancelled() before it connects, and stops there.
        known = candidate in KNOWN_DATASETS and not allow_download
        try:
            dataset = load_source(candidate, progress=progress,
                                  cancelled=(lambda: True) if known else cancelled)
        except LoadCancelled:
            if not known:
                raise  # the user cancelled
            title = KNOWN_DATASETS[candidate].title if candidate in KNOWN_DATASETS else candidate
            return None, f"{title} is not in the download cache; download it to continue"
        except (DataError, OSError) as e:
            return None, str(e)
        diffs = check_dataset(loaded, dataset)
        if not diffs:
            return dataset, None
        reason = f"{candidate} is not the dataset this session was trained on: " + \
            "; ".join(diffs)
    return None, reason
