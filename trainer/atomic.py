"""Atomic file writes: a reader or a crash never sees a half-written file.

Everything is staged beside its target (same folder, same filesystem, so the final rename is
atomic) under a name this module alone uses: ``.<name>.<random>.partial`` (plus the target's
suffix for files, so writers that choose the format by extension still work). A process
killed mid-save (``kill -9``, a power cut) leaves such a file or folder behind; the next
save into that folder sweeps the ones older than STALE_SECONDS, and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

PARTIAL = ".partial"  # staging: a file or checkpoint folder being written
OLD = ".old"  # a checkpoint folder moved aside while its replacement is renamed in
# An hour: far longer than any save takes, so a save running now in another process (or
# another window) is never swept under it.
STALE_SECONDS = 3600.0
# .<name>.<8 random characters, as tempfile makes them><marker><optional suffix>
_STAGING = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<kind>\.partial|\.old)(\.[^./]*)?$")


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


def is_staging_name(name: str) -> bool:
    """Whether ``name`` is one of this module's staging names."""
    return _STAGING.match(name) is not None


def sweep_stale(folder: str | os.PathLike, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove this app's staging files and folders in ``folder`` whose last change is older
    than ``max_age`` seconds; returns what was removed. A checkpoint folder left moved aside
    (``.NAME.xxxxxxxx.old``, a crash between the two renames of a replacement) is renamed
    back to NAME when NAME is missing, whatever its age. Other files are never touched, and
    a failure to remove one is not an error (the next sweep tries again)."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _STAGING.match(entry.name)
        if match is None:
            continue
        path = Path(entry.path)
        try:
            if entry.is_symlink():
                continue  # never follow a link out of the folder
            target = folder / match["name"]
            if match["kind"] == OLD and entry.is_dir() and not os.path.lexists(target):
                os.replace(path, target)
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < max_age:
                continue
            if entry.is_dir():
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(path)
        except OSError:
            continue
    return removed


def _staging_args(path: Path) -> dict:
    return {"prefix": f".{path.name}.", "dir": path.parent}


@contextlib.contextmanager
def staging_dir(beside: str | os.PathLike) -> Iterator[Path]:
    """A fresh, recognisable staging folder beside ``beside``, removed on exit (a crash
    leaves it for the next sweep)."""
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(beside.parent)
    tmp = Path(tempfile.mkdtemp(suffix=PARTIAL, **_staging_args(beside)))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(path: str | os.PathLike, write_fn: Callable[[str], object]) -> Path:
    """Have ``write_fn(tmp_path)`` write a staging file beside ``path``, fsync it, then
    rename it over ``path``. A failure leaves any previous file untouched: an exception from
    ``write_fn`` (a full disk), or ``write_fn`` returning False (Qt's writers report failure
    that way), removes the staging file and raises. A hard crash may leave the staging file
    behind; the next save into the folder sweeps it once it is stale.
    """
    path = Path(path)
    folder = path.parent
    sweep_stale(folder)
    fd, tmp = tempfile.mkstemp(suffix=PARTIAL + path.suffix, **_staging_args(path))
    os.close(fd)
    try:
        if write_fn(tmp) is False:
            raise OSError(f"{path}: the writer reported a failure; the previous file is kept")
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
