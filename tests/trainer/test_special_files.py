"""FIFOs and devices named like datasets, images or checkpoints are refused at once with one
line (reading a FIFO blocks until a writer comes: forever). Each loader runs in a thread
with a join timeout, so a regression fails the test instead of hanging the suite."""

from __future__ import annotations

import gzip
import os
import shutil
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer import DataError, ImageError, load_source, read_idx, read_image
from trainer.checkpoint import (
    MODEL_FILE,
    RUN_FILE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from trainer.cli import main
from trainer.data import MAX_IDX_BYTES

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
JOIN_SECONDS = 60


def refused(fn, *args, fifos: list[Path]) -> BaseException | None:
    """What ``fn(*args)`` raised, from a thread; fails (after unblocking it) if it hangs."""
    outcome: list = []

    def target():
        try:
            outcome.append(("returned", fn(*args)))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome.append(("raised", e))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(JOIN_SECONDS)
    if thread.is_alive():
        for fifo in fifos:  # open the write end and close it: the blocked reader sees EOF
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        thread.join(10)
        pytest.fail(f"{fn.__name__} blocked on a FIFO for {JOIN_SECONDS} s")
    kind, value = outcome[0]
    return value if kind == "raised" else None


def one_line(e: BaseException | None, kind: type, *fragments: str) -> None:
    assert isinstance(e, kind), repr(e)
    text = str(e)
    assert "\n" not in text, text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


@pytest.mark.parametrize("name", ["fifo.npz", "fifo.npy", "train-images-idx3-ubyte.gz"])
def test_a_fifo_named_like_a_dataset(tmp_path, name):
    fifo = tmp_path / name
    os.mkfifo(fifo)
    one_line(refused(load_source, str(fifo), fifos=[fifo]), DataError, str(fifo), "named pipe")


def test_read_idx_of_a_fifo(tmp_path):
    fifo = tmp_path / "t10k-labels-idx1-ubyte"
    os.mkfifo(fifo)
    one_line(refused(read_idx, fifo, fifos=[fifo]), DataError, "named pipe")


def test_a_device_named_like_a_dataset(tmp_path):
    link = tmp_path / "zeros.npy"
    link.symlink_to("/dev/zero")  # never ends: a reader would fill memory
    one_line(refused(load_source, str(link), fifos=[]), DataError, "character device")


def test_an_image_that_is_a_fifo(tmp_path):
    fifo = tmp_path / "drop.png"
    os.mkfifo(fifo)
    one_line(refused(read_image, fifo, fifos=[fifo]), ImageError, str(fifo), "named pipe")


def test_a_folder_of_images_with_a_fifo_skips_it_and_says_so(tmp_path):
    (tmp_path / "digits" / "seven").mkdir(parents=True)
    for i in range(3):
        Image.fromarray((np.eye(8) * 255).astype(np.uint8)).save(
            tmp_path / "digits" / "seven" / f"{i}.png")
    fifo = tmp_path / "digits" / "seven" / "9.png"
    os.mkfifo(fifo)
    dataset = refused(lambda: load_source(tmp_path / "digits"), fifos=[fifo])
    assert dataset is None  # returned normally (refused() gives None when nothing raised)
    loaded = load_source(tmp_path / "digits")
    assert len(loaded) == 3
    assert any("9.png (is a named pipe (FIFO)" in note for note in loaded.notes), loaded.notes


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory):
    from trainer import Session, TrainConfig

    session = Session(load_source("digits"), TrainConfig(hidden=(8,), threads=1,
                                                         eval_every_seconds=1e9))
    session.step()
    return save_checkpoint(session, tmp_path_factory.mktemp("ck") / "ckpt")


@pytest.mark.parametrize("name", [RUN_FILE, MODEL_FILE])
def test_a_checkpoint_file_that_is_a_fifo(checkpoint_dir, tmp_path, name):
    d = tmp_path / "ckpt"
    shutil.copytree(checkpoint_dir, d)
    (d / name).unlink()
    os.mkfifo(d / name)
    one_line(refused(load_checkpoint, d, fifos=[d / name]), CheckpointError,
             str(d / name), "named pipe")


def test_cli_train_on_a_fifo_exits_2_with_one_line(tmp_path, capsys):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    argv = ["train", str(fifo), "--out", str(tmp_path / "out"), "--epochs", "1", "--quiet"]
    assert refused(main, argv, fifos=[fifo]) is None
    err = capsys.readouterr().err
    assert err.startswith("latent-explorer: error: ") and err.count("\n") == 1, err
    assert "named pipe" in err


# ---------------------------------------------------------------- IDX inflation limits

def idx_header(dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


def test_an_idx_header_over_the_limit_is_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header((100_000, 1000, 1000)) + bytes(64 * 1024**2), 1))
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            load_source(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_line(info.value, DataError, str(path), f"{MAX_IDX_BYTES:,}-byte limit",
             "100000 x 1000 x 1000")
    assert peak < 8 * 1024**2, f"{peak:,} bytes allocated"  # the 64 MB never inflated


def test_an_idx_stream_longer_than_its_header_stops_at_the_header(tmp_path):
    """10 images promised, 64 MB of data inflating behind them: read stops after 7,841."""
    path = tmp_path / "long-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header((10, 28, 28)) + bytes(64 * 1024**2), 1))
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_line(info.value, DataError, "more bytes follow the 10 x 28 x 28 data")
    assert peak < 8 * 1024**2, f"{peak:,} bytes allocated"
