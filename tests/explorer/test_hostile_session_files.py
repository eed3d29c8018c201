"""Hostile session files, built for real: zip bombs under the 2 GB total cap (a 2 MB file
whose session.json inflates to 1.9 GB), members larger than their role allows, FIFOs named
``.lexp`` and a session whose recorded dataset is a FIFO. Each is refused at once, from the
zip directory, with one line; memory is measured with tracemalloc, never time."""

from __future__ import annotations

import os
import struct
import threading
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from explorer.core.session_file import (
    ENCODED_NPZ,
    MEMBERS,
    SESSION_JSON,
    EncodedRecord,
    SessionFileError,
    SessionState,
    find_dataset,
    load_session,
    save_session,
)
from trainer import Session, TrainConfig, load_source

SMALL = TrainConfig(hidden=(32,), seed=5, threads=1, batch_size=64, eval_every_seconds=1e9)
MiB = 1024**2


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    session = Session(load_source("digits"), SMALL)
    session.step()
    record = EncodedRecord(name="a.png", source=None, original=np.zeros((5, 7), np.uint8),
                           input=np.zeros((8, 8), np.float32), notes=[])
    return save_session(tmp_path_factory.mktemp("s") / "run.lexp",
                        SessionState(session, [record]))


def deflated_repeat(block: bytes, times: int) -> tuple[bytes, int, int]:
    """A raw deflate stream of ``block * times`` built from one compression of ``block``:
    each copy ends in a full flush (byte-aligned, no back-references across copies), so the
    copies concatenate. Returns (stream, crc32, uncompressed size)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)  # an empty last block
    crc = 0
    for _ in range(times):
        crc = zlib.crc32(block, crc)
    return piece * times + tail, crc, len(block) * times


def raw_zip(path: Path, entries: list[tuple[str, int, bytes, int, int]]) -> Path:
    """Write a zip by hand: (name, method, data as stored, crc32, uncompressed size)."""
    out, central = bytearray(), bytearray()
    for name, method, data, crc, size in entries:
        offset = len(out)
        fields = struct.pack("<HHHHHIII", 20, 0, method, 0, 0x21, crc, len(data), size)
        out += b"PK\x03\x04" + fields + struct.pack("<HH", len(name), 0) + name.encode() + data
        central += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                    + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, offset) + name.encode())
    end = struct.pack("<HHHHIIH", 0, 0, len(entries), len(entries), len(central), len(out), 0)
    path.write_bytes(bytes(out + central + b"PK\x05\x06" + end))
    return path


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in MEMBERS}


def stored(name: str, data: bytes) -> tuple[str, int, bytes, int, int]:
    return (name, zipfile.ZIP_STORED, data, zlib.crc32(data), len(data))


def refused_quickly_and_small(path: Path, *fragments: str) -> str:
    tracemalloc.start()
    try:
        with pytest.raises(SessionFileError) as info:
            load_session(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = str(info.value)
    assert "\n" not in text and str(path) in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)
    assert peak < 64 * MiB, f"{peak / MiB:.0f} MiB allocated while refusing"
    return text


def test_a_2mb_session_whose_session_json_inflates_to_1_9gb(saved, tmp_path):
    parts = members_of(saved)
    stream, crc, size = deflated_repeat(b" " * MiB, 1900)
    entries = [stored(name, parts[name]) for name in MEMBERS if name != SESSION_JSON]
    path = raw_zip(tmp_path / "bomb.lexp",
                   [*entries, (SESSION_JSON, zipfile.ZIP_DEFLATED, stream, crc, size)])
    assert path.stat().st_size < 3 * MiB
    with zipfile.ZipFile(path) as zf:  # a real, valid archive: a naive reader inflates it
        assert zf.getinfo(SESSION_JSON).file_size == 1900 * MiB
        with zf.open(SESSION_JSON) as f:
            assert f.read(MiB) == b" " * MiB
    refused_quickly_and_small(path, SESSION_JSON, "1,992,294,400")


def test_an_array_member_inflating_more_than_the_ratio_allows(saved, tmp_path):
    parts = members_of(saved)
    stream, crc, size = deflated_repeat(bytes(MiB), 40)
    entries = [stored(name, parts[name]) for name in MEMBERS if name != ENCODED_NPZ]
    path = raw_zip(tmp_path / "ratio.lexp",
                   [*entries, (ENCODED_NPZ, zipfile.ZIP_DEFLATED, stream, crc, size)])
    refused_quickly_and_small(path, ENCODED_NPZ, "inflates", ":1")


def test_weights_larger_than_the_recorded_config_implies(saved, tmp_path):
    """Stored (ratio 1), so only the role cap can catch it: a 16-unit model's weights
    take ~40 kB, not 8 MB."""
    parts = members_of(saved)
    parts["model.safetensors"] = parts["model.safetensors"] + bytes(8 * MiB)
    path = raw_zip(tmp_path / "fat.lexp", [stored(name, parts[name]) for name in MEMBERS])
    refused_quickly_and_small(path, "model.safetensors unpacks to", "more than the")


def test_an_unexpected_array_inside_encoded_npz(saved, tmp_path):
    import io

    parts = members_of(saved)
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(parts[ENCODED_NPZ])) as zin, \
            zipfile.ZipFile(buf, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info))
        zout.writestr("extra.npy", bytes(100))
    parts[ENCODED_NPZ] = buf.getvalue()
    path = raw_zip(tmp_path / "extra.lexp", [stored(name, parts[name]) for name in MEMBERS])
    refused_quickly_and_small(path, ENCODED_NPZ, "unexpected array 'extra.npy'")


def test_a_large_blank_image_is_saved_so_that_it_opens_again(tmp_path):
    """A 4096 x 4096 blank grey deflates ~1000:1; the writer stores it instead, so the
    ratio guard never locks the user out of their own session."""
    session = Session(load_source("digits"), SMALL)
    session.step()
    record = EncodedRecord(name="blank.png", source=None, original=np.zeros((4096, 4096), np.uint8),
                           input=np.zeros((8, 8), np.float32), notes=[])
    path = save_session(tmp_path / "blank.lexp", SessionState(session, [record]))
    loaded = load_session(path)
    assert loaded.encoded[0].original.shape == (4096, 4096)


def _in_thread(fn, *args, fifo: Path):
    outcome: list = []
    thread = threading.Thread(target=lambda: outcome.append(_call(fn, *args)), daemon=True)
    thread.start()
    thread.join(60)
    if thread.is_alive():
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # unblock the reader
        except OSError:
            pass
        thread.join(10)
        pytest.fail(f"{fn.__name__} blocked on a FIFO")
    return outcome[0]


def _call(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - handed to the test
        return e


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_a_fifo_named_like_a_session(tmp_path):
    fifo = tmp_path / "run.lexp"
    os.mkfifo(fifo)
    e = _in_thread(load_session, fifo, fifo=fifo)
    assert isinstance(e, SessionFileError) and "named pipe" in str(e) and "\n" not in str(e)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_a_session_whose_recorded_dataset_is_now_a_fifo(tmp_path):
    digits = load_source("digits")
    data = tmp_path / "mine.npz"
    np.savez(data, images=digits.pixels[:100], labels=digits.labels[:100])
    session = Session(load_source(data), SMALL)
    session.step()
    path = save_session(tmp_path / "mine.lexp", SessionState(session))
    data.unlink()
    os.mkfifo(data)
    loaded = load_session(path)
    found, reason = _in_thread(find_dataset, loaded, fifo=data)
    assert found is None and "named pipe" in reason and str(data) in reason


@pytest.mark.parametrize("text, fragment", [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"format": "latent-explorer-session", "version": 1, "view": {"sigma_level": NaN}}',
     "NaN is not a JSON number"),
], ids=["deep", "nan"])
def test_hostile_session_json_is_one_line(saved, tmp_path, text, fragment):
    parts = members_of(saved)
    parts[SESSION_JSON] = text.encode()
    path = raw_zip(tmp_path / "json.lexp", [stored(name, parts[name]) for name in MEMBERS])
    refused_quickly_and_small(path, SESSION_JSON, fragment)


CHILD_SAVE = """
import sys, time
import explorer.core.session_file as sf
from trainer import Session, TrainConfig, load_source

real_load = sf.load_checkpoint

def load_then_hang(folder):  # the checkpoint is fully staged now: the parent kills us
    checkpoint = real_load(folder)
    print(folder, flush=True)
    time.sleep(600)
    return checkpoint

sf.load_checkpoint = load_then_hang
s = Session(load_source("digits"), TrainConfig(hidden=(16,), threads=1))
s.step()
sf.save_session(sys.argv[1], sf.SessionState(s))
"""


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_kill_9_mid_session_save_leaves_nothing_in_tmpdir_and_the_old_file(saved, tmp_path):
    import shutil
    import signal
    import subprocess
    import sys

    from trainer.atomic import STALE_SECONDS, is_staging_name

    root = Path(__file__).resolve().parents[2]
    folder, tmpdir = tmp_path / "sessions", tmp_path / "tmpdir"
    folder.mkdir()
    tmpdir.mkdir()
    target = shutil.copy(saved, folder / "run.lexp")
    before = Path(target).read_bytes()
    env = {**os.environ, "PYTHONPATH": str(root), "TMPDIR": str(tmpdir)}
    child = subprocess.Popen([sys.executable, "-c", CHILD_SAVE, str(target)], cwd=root,
                             env=env, text=True, stdout=subprocess.PIPE)
    try:
        staged = Path(child.stdout.readline().strip())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(60)
    assert Path(target).read_bytes() == before
    assert list(tmpdir.iterdir()) == []  # nothing staged in $TMPDIR
    [leftover] = [p for p in folder.iterdir() if p.name != "run.lexp"]
    assert is_staging_name(leftover.name) and staged.is_relative_to(leftover)
    then = os.path.getmtime(leftover) - 2 * STALE_SECONDS
    os.utime(leftover, (then, then))
    session = Session(load_source("digits"), SMALL)
    session.step()
    save_session(target, SessionState(session))
    assert sorted(p.name for p in folder.iterdir()) == ["run.lexp"]
