"""While a window is open the garbage collector runs in the GUI thread only: run in a training
worker it freed a closed window's widgets there and deadlocked against the GUI thread."""

from __future__ import annotations

import gc
import threading

from explorer.qt.gui_collector import gui_collector


class Cycle:
    """A reference cycle that records which thread collected it."""

    freed_in: list[str] = []

    def __init__(self):
        self.me = self

    def __del__(self):
        Cycle.freed_in.append(threading.current_thread().name)


def test_a_window_pauses_automatic_collection_until_it_has_shut_down(qtbot, make_window):
    assert gc.isenabled() and gc.get_freeze_count() == 0
    w = make_window(start=False)
    assert not gc.isenabled()
    # What was alive when the window opened (the imported modules) is left out of the
    # GUI thread's collections, until the window has shut down.
    assert gc.get_freeze_count() > 10_000
    w.close()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_cycles_made_in_a_worker_thread_are_collected_in_the_gui_thread(qtbot, make_window):
    make_window(start=False)
    Cycle.freed_in.clear()

    def worker() -> None:
        for _ in range(20):
            Cycle()
        junk = [[i] for i in range(50_000)]  # far past every automatic threshold
        del junk

    thread = threading.Thread(target=worker, name="worker")
    thread.start()
    thread.join(30)
    assert Cycle.freed_in == []  # the worker's allocations collected nothing
    qtbot.waitUntil(lambda: len(Cycle.freed_in) == 20, timeout=10_000)  # the GUI's timer
    assert set(Cycle.freed_in) == {threading.main_thread().name}
    assert gui_collector().timer.isActive()
