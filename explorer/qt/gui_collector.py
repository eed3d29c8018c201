"""Garbage collection in the GUI thread only, while a window is open.

Python's automatic collector runs in whichever thread allocates when a threshold is crossed.
Run in a training worker, it freed a closed window's widgets there: the worker's
``~QObject`` held Qt's signal lock and waited for the GIL, while the GUI thread held the GIL
and waited for that lock in Shiboken's deferred deletions (a deadlock, caught with gdb in a
test run). So while any window is open, automatic collection is paused (the pauses of
trainer.frozen, which worker builds share) and a GUI-thread timer collects instead, as
pyqtgraph's GarbageCollector does; it skips a tick while a worker build holds its own pause.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

from trainer.frozen import collector_pauses, pause_collector, resume_collector

INTERVAL_MS = 1000


class GuiThreadCollector(QObject):
    """One per process; ``hold`` when a window opens, ``release`` when it has closed."""

    def __init__(self):
        super().__init__()
        self._holders = 0
        self._thresholds = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.collect)

    def hold(self) -> None:
        if self._holders == 0:
            pause_collector()
            # Everything alive now (imported modules: ~360,000 objects) is left out of
            # later collections: the first of those otherwise took 110 ms of the GUI
            # thread (and of training, through the GIL) traversing them, to free nothing.
            gc.freeze()
            self.timer.start()
        self._holders += 1

    def release(self) -> None:
        self._holders -= 1
        if self._holders == 0:
            self.timer.stop()
            gc.unfreeze()
            resume_collector()

    def collect(self) -> None:
        """The generations the automatic collector would have collected by now."""
        if self._holders == 0 or collector_pauses() > 1:
            return  # a worker is building modules: not now (see trainer.frozen)
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self._thresholds[generation]:
                gc.collect(generation)
                return


_collector: GuiThreadCollector | None = None


def gui_collector() -> GuiThreadCollector:
    """The process's collector, made in the GUI thread on first use."""
    global _collector
    if _collector is None:
        _collector = GuiThreadCollector()
    return _collector
