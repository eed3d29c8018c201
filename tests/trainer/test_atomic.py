"""Atomic writes: staged beside the target under a recognisable name, never replacing the
old file when the writer fails, and surviving a real ``kill -9`` mid-save (the old file is
intact; the next save sweeps the stale leftover and touches nothing else). The kills are
real SIGKILLs of child processes; a full disk is a real EFBIG from RLIMIT_FSIZE."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trainer import Session, TrainConfig, load_source
from trainer.atomic import STALE_SECONDS, atomic_write, is_staging_name, sweep_stale
from trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SMALL = TrainConfig(hidden=(16,), threads=1, eval_every_seconds=1e9)
posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")


def write_bytes(data: bytes):
    def write(tmp: str) -> None:
        Path(tmp).write_bytes(data)
    return write


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_staging_file_is_beside_the_target_named_recognisably(tmp_path):
    seen = []

    def write(tmp: str) -> None:
        seen.append(Path(tmp))
        Path(tmp).write_text("x")

    atomic_write(tmp_path / "plane.svg", write)
    [tmp] = seen
    assert tmp.parent == tmp_path and tmp.suffix == ".svg"
    assert tmp.name.startswith(".plane.svg.") and ".partial" in tmp.name
    assert is_staging_name(tmp.name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plane.svg"]


@pytest.mark.parametrize("failure", ["raises", "returns False"])
def test_a_failing_writer_never_replaces_the_old_file(tmp_path, failure):
    target = tmp_path / "run.csv"
    target.write_text("old")

    def write(tmp: str):
        Path(tmp).write_text("half of the new")
        if failure == "raises":
            raise OSError("device full")
        return False  # how QImage.save, QPixmap.save and exporters report failure

    with pytest.raises(OSError):
        atomic_write(target, write)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.csv"]


def test_sweep_removes_only_stale_staging_files_of_this_app(tmp_path):
    stale = tmp_path / ".run.lexp.abcd1234.partial.lexp"
    fresh = tmp_path / ".run.lexp.zyxw9876.partial.lexp"
    stale_dir = tmp_path / ".ckpt.k2j4h5g6.partial"
    others = [tmp_path / n for n in (".run.lexp-abc123.lexp", "notes.partial", ".bashrc",
                                     "run.lexp", ".x.partial", "data.abcd1234.partial")]
    for p in (stale, fresh, *others):
        p.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "model.safetensors").write_text("x")
    for p in (stale, stale_dir, *others):
        age(p, 2 * STALE_SECONDS)
    removed = sweep_stale(tmp_path)
    assert sorted(removed) == sorted([stale, stale_dir])
    assert fresh.exists() and all(p.exists() for p in others)


CHILD_ATOMIC = textwrap.dedent("""
    import sys, time
    from trainer.atomic import atomic_write

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(b"new" * 100_000)
            f.flush()
            print(tmp, flush=True)  # the parent kills us now, mid-write
            time.sleep(600)

    atomic_write(sys.argv[1], write)
""")


def _kill_when_ready(code: str, *args: str) -> str:
    """Run ``code`` in a child, wait for its first line, SIGKILL it; returns the line."""
    child = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = child.stdout.readline().strip()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(60)
    assert child.returncode == -signal.SIGKILL
    return line


@posix_only
def test_kill_9_mid_write_keeps_the_old_file_and_the_next_save_sweeps_the_leftover(tmp_path):
    target = tmp_path / "run.lexp"
    target.write_bytes(b"old session")
    mine = tmp_path / "notes.txt"
    mine.write_text("the user's")
    leftover = Path(_kill_when_ready(CHILD_ATOMIC, str(target)))
    assert target.read_bytes() == b"old session"
    assert leftover.parent == tmp_path and leftover.exists() and is_staging_name(leftover.name)
    atomic_write(target, write_bytes(b"second"))  # young leftover: maybe a save running now
    assert leftover.exists()
    age(leftover, 2 * STALE_SECONDS)
    atomic_write(target, write_bytes(b"third"))
    assert not leftover.exists() and target.read_bytes() == b"third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "run.lexp"]


@pytest.fixture(scope="module")
def session():
    s = Session(load_source("digits"), SMALL)
    s.step()
    return s


CHILD_CHECKPOINT = textwrap.dedent("""
    import os, sys, time
    import trainer.checkpoint as ck
    from trainer import Session, TrainConfig, load_source

    where = sys.argv[2]
    real_write, real_replace = ck._write, os.replace

    def write(path, data):
        real_write(path, data)
        if where == "write" and path.name == ck.MODEL_FILE:
            print(path.parent, flush=True)
            time.sleep(600)

    def replace(src, dst):  # the first rename moves the old checkpoint aside
        real_replace(src, dst)
        if where == "rename":
            print(dst, flush=True)
            time.sleep(600)

    ck._write = write
    ck.os.replace = replace
    s = Session(load_source("digits"), TrainConfig(hidden=(16,), threads=1))
    for _ in range(3):
        s.step()
    ck.save_checkpoint(s, sys.argv[1])
""")


@posix_only
def test_kill_9_mid_checkpoint_write_keeps_the_old_one_and_sweeps_later(session, tmp_path):
    ckpt = save_checkpoint(session, tmp_path / "ckpt")
    step = load_checkpoint(ckpt).counters["step"]
    leftover = Path(_kill_when_ready(CHILD_CHECKPOINT, str(ckpt), "write"))
    assert leftover.parent == tmp_path and is_staging_name(leftover.name)
    assert load_checkpoint(ckpt).counters["step"] == step
    age(leftover, 2 * STALE_SECONDS)
    save_checkpoint(session, ckpt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@posix_only
def test_kill_9_between_the_two_renames_is_recovered(session, tmp_path):
    """Killed after the old checkpoint moved aside and before the new one moved in: the
    next sweep (any save into the folder) puts the old one back."""
    ckpt = save_checkpoint(session, tmp_path / "ckpt")
    step = load_checkpoint(ckpt).counters["step"]
    aside = Path(_kill_when_ready(CHILD_CHECKPOINT, str(ckpt), "rename"))
    assert not ckpt.exists() and aside.exists() and is_staging_name(aside.name)
    sweep_stale(tmp_path)
    assert load_checkpoint(ckpt).counters["step"] == step


@posix_only
def test_train_out_on_a_full_disk_names_the_path_and_keeps_the_previous_checkpoint(tmp_path):
    """RLIMIT_FSIZE makes every write past 4 kB fail in the child with a real EFBIG ("File
    too large"), as a full disk fails with ENOSPC: the same OSError path."""
    out = tmp_path / "ckpt"
    base = [sys.executable, "-m", "trainer", "train", "digits", "--hidden", "16", "--quiet",
            "--threads", "1", "--epochs", "1", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(base, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    before = json.loads((out / "run.json").read_text())["counters"]

    def tiny_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killing signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    full = subprocess.run([*base, "--resume", str(out)], cwd=ROOT, env=env, text=True,
                          capture_output=True, timeout=300, preexec_fn=tiny_disk)
    assert full.returncode == 2, full.stderr
    err = full.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert f"latent-explorer: error: {out}: cannot write the checkpoint (File too large)" in err
    assert "the previous checkpoint there is kept" in err
    assert load_checkpoint(out).counters == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_save_checkpoint_errors_are_checkpoint_errors(session, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="cannot write the checkpoint"):
        save_checkpoint(session, tmp_path / "file" / "ckpt")  # a parent that is a file
