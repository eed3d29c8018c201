"""How many threads numpy's BLAS (OpenBLAS, as numpy's wheels ship it) may use.

The GUI process trains in a thread beside the event loop; numpy's matrix products in the GUI
thread then share the cores with it. OpenBLAS's own pool spins while it waits for work, so
on a busy machine a small product took 61 ms with its default two threads and 0.5 ms with
one (a (70,000, 8) @ (8, 2) product, load ~4 on 2 cores), and the spinning took cycles from
training. threadpoolctl finds the library numpy loaded; only OpenBLAS is limited, since an
MKL can be the one torch's own matrix products use. No Qt.
"""

from __future__ import annotations

import numpy as np  # noqa: F401 - loads numpy's BLAS, so threadpoolctl can see it
from threadpoolctl import ThreadpoolController


def _openblas():
    """numpy's OpenBLAS as threadpoolctl sees it now (empty where numpy uses another BLAS)."""
    return ThreadpoolController().select(internal_api="openblas")


def blas_threads() -> int | None:
    """The threads numpy's OpenBLAS uses, or None where it is not OpenBLAS."""
    found = _openblas().info()
    return found[0]["num_threads"] if found else None


def limit_blas_threads(threads: int = 1) -> int | None:
    """Let numpy's OpenBLAS use ``threads`` threads (process-wide); returns how many it
    used before, or None where numpy's BLAS is not OpenBLAS (nothing is changed)."""
    before = blas_threads()
    if before is not None:
        _openblas().limit(limits=int(threads))
    return before
