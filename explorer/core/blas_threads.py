"""How many threads numpy's BLAS (OpenBLAS, as numpy's wheels ship it) may use.

The GUI process trains in a thread beside the event loop; numpy's matrix products in the GUI
thread then share the cores with it. OpenBLAS's own pool spins while it waits for work, so
on a busy machine a small product took 61 ms with its default two threads and 0.5 ms with
one (a (70,000, 8) @ (8, 2) product, load ~4 on 2 cores), and the spinning took cycles from
training. No Qt; found by the library's exported symbols, so a numpy built on another BLAS
is left as it is (the functions return None).
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys

import numpy as np

# OpenBLAS's setter and getter under the names scipy-openblas and plain builds export.
_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")
_library: ctypes.CDLL | None | bool = False  # False: not looked for yet


def _candidates() -> list[str]:
    """Paths of the OpenBLAS numpy loaded: from the process's memory map where there is one
    (Linux), else the libraries bundled beside numpy (wheels on macOS and Windows)."""
    found = []
    if os.path.exists("/proc/self/maps"):
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if line.strip() else ""
                if "openblas" in os.path.basename(path).lower() and path not in found:
                    found.append(path)
    root = os.path.dirname(os.path.dirname(np.__file__))
    for folder in ("numpy.libs", os.path.join("numpy", ".dylibs")):
        found += [p for p in sorted(glob.glob(os.path.join(root, folder, "*openblas*")))
                  if p not in found]
    return found


def _openblas() -> ctypes.CDLL | None:
    global _library
    if _library is False:
        _library = None
        for path in _candidates():
            try:
                lib = ctypes.CDLL(path) if sys.platform != "win32" else ctypes.WinDLL(path)
            except OSError:
                continue
            if any(hasattr(lib, name) for name in _SETTERS):
                _library = lib
                break
    return _library


def blas_threads() -> int | None:
    """The threads numpy's OpenBLAS uses, or None where it is not OpenBLAS."""
    lib = _openblas()
    for name in _GETTERS if lib is not None else ():
        if hasattr(lib, name):
            return int(getattr(lib, name)())
    return None


def limit_blas_threads(threads: int = 1) -> int | None:
    """Let numpy's OpenBLAS use ``threads`` threads (process-wide); returns how many it
    used before, or None where numpy's BLAS is not OpenBLAS (nothing is changed)."""
    before = blas_threads()
    lib = _openblas()
    for name in _SETTERS if lib is not None and before is not None else ():
        if hasattr(lib, name):
            getattr(lib, name)(ctypes.c_int(int(threads)))
            return before
    return None
