"""One check before any loader opens a path: it must be a regular file.

Reading a FIFO blocks until some other process writes to it (forever, usually), and a
device such as /dev/zero never ends; both can carry an ordinary name (``data.npz``,
``run.lexp``). Every loader (datasets, images, checkpoints, session files) calls
``require_regular_file`` first, so such a path is refused at once with one line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_SPECIAL = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def special_kind(mode: int) -> str | None:
    """What a non-regular, non-folder file is ("a named pipe (FIFO)", ...), or None."""
    for test, kind in _SPECIAL:
        if test(mode):
            return kind
    return None


def require_regular_file(path: str | os.PathLike, error: type[Exception] = ValueError,
                         ) -> os.stat_result | None:
    """``os.stat(path)`` (following links) when ``path`` is a regular file or a folder; None
    when it does not exist (callers keep their own 'no such file' message); raises
    ``error("PATH: is a named pipe (FIFO), not a regular file ...")`` for anything else.
    Stat never opens the file, so it cannot block."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    kind = special_kind(st.st_mode)
    if kind is not None:
        raise error(f"{Path(path)}: is {kind}, not a regular file; refusing to read it")
    return st
