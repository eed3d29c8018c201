"""Session files: exact round trips, atomic saves, dataset checks, and crafted or corrupt files
that must fail with a clear one-line message and never run code."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.core import session_file
from explorer.core.session_file import (
    ENCODED_NPZ,
    MEMBERS,
    SESSION_JSON,
    EncodedRecord,
    SessionFileError,
    SessionState,
    check_dataset,
    find_dataset,
    load_session,
    save_session,
)
from explorer.qt.image_jobs import prepare_pixels
from trainer import ImageDataset, Session, TrainConfig, atomic_write, save_checkpoint

SMALL = TrainConfig(hidden=(32,), seed=5, threads=1, batch_size=64, eval_every_seconds=1e9)
VIEW = {"view_region": [-3.5, 2.25, -1.0, 4.0], "sigma_level": 2, "manifold_mode": "view",
        "manifold_grid": 12, "colour_by": "label"}


class Payload:
    """Unpickling this creates ``marker``: proof that a loader ran code from a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def train(dataset) -> Session:
    session = Session(dataset, SMALL)
    while len(session.train_history) < 3 and session.step_count < 2000:
        session.step()  # until the curve has rows (one per 0.1 s of training)
    session.evaluate_heldout()
    return session


@pytest.fixture(scope="module")
def trained(digits):
    return train(digits)


def records(shape=(8, 8)) -> list[EncodedRecord]:
    rng = np.random.default_rng(0)
    return [EncodedRecord(name=f"img{i}.png", source=f"/data/img{i}.png",
                          original=rng.integers(0, 256, (20 + i, 30), dtype=np.uint8),
                          input=rng.random(shape, dtype=np.float32), notes=[f"note {i}"])
            for i in range(3)]


@pytest.fixture
def saved(trained, tmp_path) -> Path:
    return save_session(tmp_path / "run.lexp",
                        SessionState(trained, records(), selected_encoded=1, selected_point=7,
                                     view=VIEW))


def rewrite(src: Path, dst: Path, replace: dict[str, bytes | None],
            extra: list[tuple[str, bytes]] = ()) -> Path:
    """A copy of a session zip with members replaced (None drops one) or added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = replace.get(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns on the duplicate names we plant
            for name, data in extra:
                zout.writestr(name, data)
    return dst


def member(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


# ------------------------------------------------------------------------------ round trip

def test_round_trip_restores_weights_history_latents_encoded_and_view(trained, saved, digits):
    with zipfile.ZipFile(saved) as zf:
        assert sorted(zf.namelist()) == sorted(MEMBERS)
    loaded = load_session(saved)
    restored = loaded.make_session(digits)
    for (name, a), b in zip(trained.model.state_dict().items(),
                            restored.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    sa, sb = trained.optimizer.state_dict()["state"], restored.optimizer.state_dict()["state"]
    for i, state in sa.items():
        for key, value in state.items():
            assert torch.equal(value, sb[i][key]), (i, key)
    for which in ("train", "heldout"):
        a = getattr(trained, f"{which}_history").arrays()
        b = getattr(restored, f"{which}_history").arrays()
        assert len(a["elbo"]) > 0
        for column in a:
            np.testing.assert_array_equal(a[column], b[column], err_msg=f"{which}.{column}")
    np.testing.assert_array_equal(trained.snapshot().mu, restored.snapshot().mu)
    np.testing.assert_array_equal(trained.snapshot().sigma, restored.snapshot().sigma)

    for want, got in zip(records(), loaded.encoded, strict=True):
        assert (got.name, got.source, got.notes) == (want.name, want.source, want.notes)
        np.testing.assert_array_equal(got.original, want.original)
        assert got.original.dtype == np.uint8
        np.testing.assert_array_equal(got.input, want.input)
        assert got.input.dtype == np.float32
    assert (loaded.selected_encoded, loaded.selected_point) == (1, 7)
    assert loaded.view == VIEW
    assert loaded.checkpoint.path == saved  # later errors name the session file


def test_restored_session_continues_exactly_like_the_original(digits, tmp_path):
    original = train(digits)
    path = save_session(tmp_path / "resume.lexp", SessionState(original))
    restored = load_session(path).make_session(digits)
    for _ in range(5):
        original.step()
        restored.step()
    for a, b in zip(original.model.state_dict().values(),
                    restored.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert restored.step_count == original.step_count


def test_saves_prepared_images_and_a_ready_checkpoint_directory(trained, tmp_path):
    grey = np.zeros((40, 40), np.float32)
    grey[10:30, 18:22] = 1.0  # a bright stroke on black
    image = prepare_pixels(grey, "stroke.png", str(tmp_path / "stroke.png"), (8, 8), None,
                           ["a note"])
    folder = save_checkpoint(trained, tmp_path / "ckpt")
    path = save_session(tmp_path / "from-dir.lexp",
                        SessionState(folder, [image], selected_encoded=0))
    loaded = load_session(path)
    (got,) = loaded.encoded
    assert (got.name, got.source, got.notes) == (image.name, image.source, image.notes)
    np.testing.assert_array_equal(got.input, image.input)
    np.testing.assert_array_equal(got.original, image.original)
    assert loaded.selected_encoded == 0 and loaded.selected_point is None
    assert loaded.view == {}


# ------------------------------------------------------------------------------ atomic

def test_atomic_write_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old contents\n")

    def half_then_fail(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("new but unfinish")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old contents\n"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_failed_save_mid_archive_keeps_the_previous_session(trained, saved, monkeypatch):
    before = saved.read_bytes()
    real = zipfile.ZipFile.writestr
    written = []

    def fail_on_third(self, name, data, *args, **kwargs):
        if len(written) == 2:
            raise OSError(28, "No space left on device")
        written.append(name)
        return real(self, name, data, *args, **kwargs)

    # Fault injection: the disk fills up after two members went into the temporary archive.
    monkeypatch.setattr(zipfile.ZipFile, "writestr", fail_on_third)
    with pytest.raises(SessionFileError, match=r"run\.lexp: cannot write it"):
        save_session(saved, SessionState(trained, records()[:1]))
    monkeypatch.undo()
    assert len(written) == 2
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == [saved.name]
    assert len(load_session(saved).encoded) == 3


def test_bad_state_is_refused_before_anything_is_written(trained, tmp_path):
    path = tmp_path / "x.lexp"
    wrong = records(shape=(5, 5))
    with pytest.raises(SessionFileError, match=r"x\.lexp: .*input is \(5, 5\)"):
        save_session(path, SessionState(trained, wrong))
    with pytest.raises(SessionFileError, match="selected_encoded 3 is out of range"):
        save_session(path, SessionState(trained, records(), selected_encoded=3))
    assert not path.exists() and os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------ versions

def with_meta(saved: Path, dst: Path, **changes) -> Path:
    meta = json.loads(member(saved, SESSION_JSON))
    meta.update(changes)
    return rewrite(saved, dst, {SESSION_JSON: json.dumps(meta).encode()})


def test_newer_and_older_format_versions_say_so(saved, tmp_path):
    newer = with_meta(saved, tmp_path / "newer.lexp", version=2)
    with pytest.raises(SessionFileError) as e:
        load_session(newer)
    assert str(e.value) == (f"{newer}: was saved by a newer Latent Explorer (format 2); this "
                            "version reads format 1")
    with pytest.raises(SessionFileError, match=r"older\.lexp: was saved by an older .*format 0"):
        load_session(with_meta(saved, tmp_path / "older.lexp", version=0))
    with pytest.raises(SessionFileError, match="unknown session format version '1'"):
        load_session(with_meta(saved, tmp_path / "text.lexp", version="1"))
    with pytest.raises(SessionFileError, match="not a Latent Explorer session .format 'other'"):
        load_session(with_meta(saved, tmp_path / "other.lexp", format="other"))


# ------------------------------------------------------------------------------ crafted

def test_not_a_zip_truncated_and_missing_files(saved, tmp_path):
    junk = tmp_path / "junk.lexp"
    junk.write_bytes(b"this is not a zip archive at all")
    truncated = tmp_path / "truncated.lexp"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    for path in (junk, truncated, tmp_path / "empty.lexp"):
        path.touch()
        with pytest.raises(SessionFileError, match=f"{path.name}: not a Latent Explorer "
                                                   "session .not a zip archive, or truncated"):
            load_session(path)
    with pytest.raises(SessionFileError, match=r"absent\.lexp: no such file"):
        load_session(tmp_path / "absent.lexp")
    for name in MEMBERS:
        path = rewrite(saved, tmp_path / f"no-{name}.lexp", {name: None})
        with pytest.raises(SessionFileError, match=f"missing {name}; not a complete"):
            load_session(path)


def test_corrupt_member_data_is_reported(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as zf:
        info = zf.getinfo("model.safetensors")  # stored: its bytes sit in the file as written
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:
                                                    info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0xFF
    path = tmp_path / "flipped.lexp"
    path.write_bytes(bytes(data))
    with pytest.raises(SessionFileError, match=r"flipped\.lexp: model\.safetensors is corrupt"):
        load_session(path)


def test_unsafe_and_duplicate_member_names_are_refused(saved, tmp_path):
    cases = {"../evil.txt": "unsafe member name '../evil.txt'",
             "/etc/evil": "unsafe member name '/etc/evil'",
             "a/../../evil": "unsafe member name",
             SESSION_JSON: "duplicate member 'session.json'"}
    for i, (name, message) in enumerate(cases.items()):
        path = rewrite(saved, tmp_path / f"crafted{i}.lexp", {}, extra=[(name, b"{}")])
        with pytest.raises(SessionFileError, match=message):
            load_session(path)
    assert not (tmp_path.parent / "evil.txt").exists()


def claim_size(data: bytes, name: str, size: int) -> bytes:
    """A copy of a zip whose central directory says ``name`` unpacks to ``size`` bytes."""
    data = bytearray(data)
    entry = data.index(b"PK\x01\x02")  # the first central directory record
    while True:
        name_len, extra, comment = struct.unpack("<HHH", data[entry + 28:entry + 34])
        if data[entry + 46:entry + 46 + name_len] == name.encode():
            data[entry + 24:entry + 28] = struct.pack("<I", size)
            return bytes(data)
        entry += 46 + name_len + extra + comment


def test_zip_bomb_sizes_are_refused_before_reading(saved, tmp_path):
    path = tmp_path / "bomb.lexp"
    path.write_bytes(claim_size(saved.read_bytes(), ENCODED_NPZ, 3 * 1024**3))
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(ENCODED_NPZ).file_size == 3 * 1024**3
    with pytest.raises(SessionFileError, match=r"bomb\.lexp: unpacks to 3\.2 GB, more than"):
        load_session(path)
    # The arrays' own archive claims 3 GB for one array: refused before numpy unpacks it.
    inner = claim_size(member(saved, ENCODED_NPZ), "inputs.npy", 3 * 1024**3)
    nested = rewrite(saved, tmp_path / "nested.lexp", {ENCODED_NPZ: inner})
    with pytest.raises(SessionFileError,
                       match=r"nested\.lexp: encoded\.npz: unpacks to 3\.2 GB, more than"):
        load_session(nested)


def test_pickles_in_the_arrays_or_the_weights_never_run(saved, tmp_path):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    evil = np.empty(1, dtype=object)
    evil[0] = Payload(marker)
    np.savez(buf, inputs=evil)
    npz_bytes = buf.getvalue()
    crafted = rewrite(saved, tmp_path / "npz.lexp", {ENCODED_NPZ: npz_bytes})
    with pytest.raises(SessionFileError, match=r"npz\.lexp: encoded\.npz: cannot read it "
                                               ".Object arrays cannot be loaded"):
        load_session(crafted)
    weights = rewrite(saved, tmp_path / "pickled-weights.lexp",
                      {"model.safetensors": pickle.dumps({"w": Payload(marker)})})
    with pytest.raises(SessionFileError,
                       match=r"pickled-weights\.lexp/model\.safetensors: not a valid "
                             "safetensors file"):
        load_session(weights)
    assert not marker.exists()
    # The payload is live: a loader that allowed pickles would have run it.
    with np.load(io.BytesIO(npz_bytes), allow_pickle=True) as npz:
        npz["inputs"]
    assert marker.exists()


def test_malformed_json_and_arrays_are_reported(saved, tmp_path):
    bad_run = rewrite(saved, tmp_path / "badrun.lexp", {"run.json": b"{not json"})
    with pytest.raises(SessionFileError, match=r"badrun\.lexp/run\.json: not valid JSON"):
        load_session(bad_run)
    bad_meta = rewrite(saved, tmp_path / "meta.lexp", {SESSION_JSON: b"\xff\xfe"})
    with pytest.raises(SessionFileError, match="session.json is not valid JSON"):
        load_session(bad_meta)
    buf = io.BytesIO()
    np.savez(buf, inputs=np.zeros((3, 4, 4), np.float32))
    wrong = rewrite(saved, tmp_path / "shape.lexp", {ENCODED_NPZ: buf.getvalue()})
    with pytest.raises(SessionFileError, match=r"'inputs' must be float32 of shape \(3, 8, 8\)"):
        load_session(wrong)
    meta = json.loads(member(saved, SESSION_JSON))
    meta["selection"]["point"] = 10**6
    far = rewrite(saved, tmp_path / "sel.lexp", {SESSION_JSON: json.dumps(meta).encode()})
    with pytest.raises(SessionFileError, match="selection.point 1000000 is out of range"):
        load_session(far)


def test_random_damage_gives_a_clean_error_or_a_valid_session(saved, tmp_path):
    """Seeded byte flips, half of them in the zip's directory: every outcome is a loaded
    session or a SessionFileError, never another exception."""
    data = saved.read_bytes()
    directory = data.index(b"PK\x01\x02")
    rng = np.random.default_rng(1)
    path = tmp_path / "damaged.lexp"
    outcomes = {"loaded": 0, "refused": 0}
    for k in range(200):
        damaged = bytearray(data)
        low = directory if k % 2 == 0 else 0
        for _ in range(int(rng.integers(1, 4))):
            damaged[int(rng.integers(low, len(data)))] = int(rng.integers(256))
        path.write_bytes(bytes(damaged))
        try:
            load_session(path)
            outcomes["loaded"] += 1
        except SessionFileError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100


# ------------------------------------------------------------------------------ dataset

def test_dataset_checks_say_what_differs(saved, digits, tmp_path, monkeypatch):
    loaded = load_session(saved)
    assert check_dataset(loaded, digits) == []
    found, reason = find_dataset(loaded)
    assert reason is None and found.fingerprint() == digits.fingerprint()

    fewer = ImageDataset(pixels=digits.pixels[:1000], scale=digits.scale, name="some digits",
                         source="some.npz", labels=digits.labels[:1000])
    diffs = check_dataset(loaded, fewer)
    assert "1,797 images when saved, 1,000 now" in diffs
    assert "named 'Built-in digits (8x8)' when saved, 'some digits' now" in diffs
    assert diffs[-1].startswith("contents differ (fingerprint ")
    with pytest.raises(SessionFileError, match=r"run\.lexp: some\.npz is not the dataset"):
        loaded.make_session(fewer)

    # MNIST recorded, but not in the (empty) download cache: no download is attempted.
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(tmp_path / "cache"))
    loaded.checkpoint.run["dataset"]["source"] = "mnist"
    assert find_dataset(loaded) == (None, "MNIST is not in the download cache; download it "
                                          "to continue")


def test_find_dataset_at_a_path_missing_or_changed(digits, tmp_path, monkeypatch):
    np.savez(tmp_path / "mine.npz", images=digits.pixels[:300], labels=digits.labels[:300])
    monkeypatch.chdir(tmp_path)
    from trainer import load_source

    dataset = load_source("mine.npz")  # relative, as typed on a command line
    session = Session(dataset, SMALL)
    session.step()
    path = save_session(tmp_path / "mine.lexp", SessionState(session))
    monkeypatch.chdir(tmp_path.parent)  # elsewhere: found beside the session file
    found, reason = find_dataset(load_session(path))
    assert reason is None and len(found) == 300

    np.savez(tmp_path / "mine.npz", images=digits.pixels[:200], labels=digits.labels[:200])
    found, reason = find_dataset(load_session(path))
    assert found is None
    assert "is not the dataset this session was trained on: 300 images when saved, 200 now" \
        in reason
    os.unlink(tmp_path / "mine.npz")
    assert find_dataset(load_session(path)) == (
        None, "mine.npz: no such file or folder (the session's dataset, mine.npz)")


def test_module_imports_no_qt():
    import subprocess
    import sys

    code = ("import sys, explorer.core.session_file; "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(session_file.__file__).parents[1], check=True)
    assert out.stdout.strip() == "[]"
