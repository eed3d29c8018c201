"""The guard against PySide6 6.12.0 on Python 3.11 (bool_dealloc after many emits/repaints):
emitting a signal and repainting a plot thousands of times must not abort the process."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from explorer.qt.views.elbo_view import ElboView


class Emitter(QObject):
    ticked = Signal(int)


class Counter(QObject):
    def __init__(self):
        super().__init__()
        self.total = 0

    def add(self, value: int) -> None:
        self.total += value


def test_thousands_of_emits_and_repaints_do_not_crash(qtbot):
    emitter, counter = Emitter(), Counter()
    emitter.ticked.connect(counter.add)
    for _ in range(5000):
        emitter.ticked.emit(1)
    assert counter.total == 5000

    view = ElboView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    steps = np.arange(1, 201, dtype=float)
    train = {"step": steps, "samples": steps * 64, "seconds": steps / 10, "epoch": steps / 25,
             "elbo": -30 + 10 / steps, "recon": -25 + 10 / steps, "kl": np.full(200, 5.0)}
    view.recon_box.setChecked(True)
    view.kl_box.setChecked(True)
    for i in range(3000):
        if i % 100 == 0:
            train = {k: v + 1 for k, v in train.items()}  # new data now and then
            view.set_history(train, {k: v[::20] for k, v in train.items()})
        view.plot.viewport().repaint()
    assert len(view.raw.getData()[0]) == 200
