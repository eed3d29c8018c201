"""The worker on its own (napari's test_threading pattern): requests are callables applied in
its thread between steps; "running" goes down as a request and comes back as Progress.paused;
workers sharing Turns step one at a time, in turn; stop always joins."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from explorer.qt.worker import TrainingWorker, Turns
from trainer import TrainConfig

WAIT_MS = 20_000


def config(**changes):
    return TrainConfig(hidden=(32,), threads=1, batch_size=32, eval_every_seconds=0.2,
                       logpx_points=0).replace(**changes)


def started(qtbot, digits, **kwargs):
    worker = TrainingWorker(digits, config(), **kwargs)
    progress = []
    worker.progressed.connect(progress.append)
    worker.start()
    qtbot.waitUntil(lambda: worker.session is not None and bool(progress), timeout=WAIT_MS)
    return worker, progress


def test_requests_run_in_the_worker_thread_between_steps(qtbot, digits):
    worker, progress = started(qtbot, digits)
    try:
        seen = []
        worker.put(lambda s: seen.append((threading.get_ident(), s.step_count)))
        worker.set_lr(0.01)
        qtbot.waitUntil(lambda: bool(seen) and
                        worker.session.optimizer.param_groups[0]["lr"] == 0.01, timeout=WAIT_MS)
        assert seen[0][0] not in (threading.get_ident(), None)
        assert worker.session.config.lr == 0.01  # the session owns the config
    finally:
        assert worker.stop(WAIT_MS)


def test_running_is_the_sessions_paused_flag_echoed_in_progress(qtbot, digits):
    worker, progress = started(qtbot, digits, start_paused=True)
    try:
        qtbot.waitUntil(lambda: progress[-1].paused, timeout=WAIT_MS)
        assert worker.session.step_count == 0  # start_paused: no step before Start
        worker.step_once()
        qtbot.waitUntil(lambda: progress[-1].step == 1, timeout=WAIT_MS)
        assert progress[-1].paused and worker.session.step_count == 1
        worker.resume()
        qtbot.waitUntil(lambda: not progress[-1].paused and progress[-1].step > 5,
                        timeout=WAIT_MS)
        worker.step_once()  # ignored while running: a running session steps anyway
        worker.pause()
        qtbot.waitUntil(lambda: progress[-1].paused, timeout=WAIT_MS)
        stopped_at = worker.session.step_count
        qtbot.wait(300)
        assert worker.session.step_count == stopped_at == progress[-1].step
    finally:
        assert worker.stop(WAIT_MS)


class CountingTurns(Turns):
    """Real Turns that also record who held the turn and how many held it at once."""

    def __init__(self):
        super().__init__()
        self.holders: list[int] = []
        self.overlap = 0
        self._inside = 0

    @contextmanager
    def turn(self):
        with super().turn():
            self._inside += 1
            self.overlap = max(self.overlap, self._inside)
            self.holders.append(threading.get_ident())
            try:
                yield
            finally:
                self._inside -= 1


def test_turns_alternate_between_threads():
    turns = CountingTurns()
    go = threading.Barrier(2)

    def loop():
        go.wait()
        for _ in range(200):
            with turns.turn():
                time.sleep(0.0005)  # a step releases the GIL in torch, so the other asks

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert turns.overlap == 1 and len(turns.holders) == 400
    # Once both wait, a ticket lock hands over every time: no thread takes two turns running
    # (a plain Lock lets the releasing thread win again and again).
    middle = turns.holders[20:380]
    repeats = sum(a == b for a, b in zip(middle, middle[1:], strict=False))
    assert repeats <= 2, repeats


def test_workers_sharing_turns_both_train_one_step_at_a_time(qtbot, digits):
    turns = CountingTurns()
    a, _ = started(qtbot, digits, turns=turns)
    b, _ = started(qtbot, digits, turns=turns)
    try:
        qtbot.waitUntil(lambda: a.session.step_count > 50 and b.session.step_count > 50,
                        timeout=WAIT_MS)
        assert turns.overlap == 1
        steps = (a.session.step_count, b.session.step_count)
        assert max(steps) < 3 * min(steps) + 20, steps  # neither starves the other
    finally:
        assert a.stop(WAIT_MS) and b.stop(WAIT_MS)
    assert not a.isRunning() and not b.isRunning()


def test_stop_joins_a_worker_waiting_for_its_turn(qtbot, digits):
    turns = Turns()
    a, _ = started(qtbot, digits, turns=turns)
    b, _ = started(qtbot, digits, turns=turns)
    assert b.stop(WAIT_MS) and not b.isRunning()
    before = a.session.step_count
    qtbot.waitUntil(lambda: a.session.step_count > before + 10, timeout=WAIT_MS)  # not stuck
    assert a.stop(WAIT_MS) and not a.isRunning()
