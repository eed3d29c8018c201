"""Atomic file writes: a reader or a crash never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make a rename inside ``folder`` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; the rename is atomic there anyway
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write_fn: Callable[[str], object]) -> Path:
    """Have ``write_fn(tmp_path)`` write a temporary file beside ``path``, fsync it, then
    rename it over ``path``. A failure leaves any previous file untouched: an exception
    (from ``write_fn``, a full disk) also removes the temporary file; a hard crash may leave
    it behind as a hidden ``.NAME-*`` file, never a half-written file under ``path``. The
    temporary name keeps the suffix, so writers that choose the format by extension (Qt's
    image writers) still work.
    """
    path = Path(path)
    folder = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=folder)
    os.close(fd)
    try:
        write_fn(tmp)
        # mkstemp makes the file private (0600); a document keeps the mode of the one it
        # replaces, or gets the usual 0644.
        os.chmod(tmp, os.stat(path).st_mode & 0o7777 if path.exists() else 0o644)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(folder)
    return path
