"""One guard for code that Qt calls from C++: paint overrides, event handlers, slots.

An exception that escapes a virtual override such as ``paint`` unwinds into Qt's C++ frames;
PySide6 then dies in shiboken's error handler (a blown-up sigma made ``int(inf)`` in a paint
and the process segfaulted with no autosave). ``guarded`` catches the exception, logs it once
per function (with its traceback), and returns a fallback, so the frame draws what it can
and the app goes on.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

log = logging.getLogger("explorer")

_counts: Counter[str] = Counter()  # failures per guarded function (qualified name)
_reported_lock = threading.Lock()


def failures() -> list[str]:
    """The guarded functions that have raised so far (qualified names)."""
    with _reported_lock:
        return sorted(_counts)


def failure_count() -> int:
    """How many guarded calls have raised so far (tests check that it stays put)."""
    with _reported_lock:
        return sum(_counts.values())


def _report(name: str, exc: BaseException) -> None:
    with _reported_lock:
        first = name not in _counts
        _counts[name] += 1
    if first:  # once per function: a paint fails on every frame
        log.error("%s failed (drawn without it; further failures not repeated): %s: %s",
                  name, type(exc).__name__, exc, exc_info=exc)


def guarded(fallback: Any = None) -> Callable:
    """Decorate a method that Qt calls (``@guarded()``, ``@guarded(QRectF)``): exceptions
    are logged once and ``fallback`` (or ``fallback()`` when it is callable) is returned."""

    def wrap(func: Callable) -> Callable:
        name = f"{func.__module__}.{func.__qualname__}"

        @functools.wraps(func)
        def call(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - never let it unwind into C++
                _report(name, exc)
                return fallback() if callable(fallback) else fallback

        return call

    return wrap
