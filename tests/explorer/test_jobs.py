"""The background-job helper on its own (napari's test_threading pattern): real threads, real
signals through the event loop; progress, cancel, one-line errors, latest-wins and queues."""

from __future__ import annotations

import threading

import pytest

from explorer.qt.jobs import JobLane, one_line
from trainer import DataError, LoadCancelled

WAIT_MS = 10_000


class Ends:
    """Every end signal of a lane, in order: ("done", value), ("failed", line), ("cancelled",)."""

    def __init__(self, lane: JobLane):
        self.ends: list[tuple] = []
        self.progress: list = []
        lane.done.connect(lambda v: self.ends.append(("done", v)))
        lane.failed.connect(lambda m: self.ends.append(("failed", m)))
        lane.cancelled.connect(lambda: self.ends.append(("cancelled",)))
        lane.progress.connect(self.progress.append)


def counting(n: int, gate: threading.Event | None = None, reached: list | None = None):
    """Yield 0..n-1, waiting for ``gate`` after the first value; return n."""
    for i in range(n):
        if reached is not None:
            reached.append(i)
        yield i
        if gate is not None:
            assert gate.wait(WAIT_MS / 1000)
    return n


@pytest.fixture
def lane(qtbot):
    lanes = []

    def make(**kwargs) -> JobLane:
        lanes.append(JobLane(**kwargs))
        return lanes[-1]

    yield make
    for one in lanes:
        assert one.cancel_and_wait(WAIT_MS), "a job thread was left running"


def test_a_generator_reports_progress_and_returns_once(qtbot, lane):
    jobs = lane()
    seen = Ends(jobs)
    with qtbot.waitSignal(jobs.done, timeout=WAIT_MS):
        jobs.submit(counting, 4)
    assert seen.progress == [0, 1, 2, 3] and seen.ends == [("done", 4)]
    assert not jobs.busy()


def test_cancel_stops_a_generator_at_its_next_yield(qtbot, lane):
    jobs = lane()
    seen = Ends(jobs)
    gate, reached = threading.Event(), []
    jobs.submit(counting, 1000, gate, reached)
    qtbot.waitUntil(lambda: seen.progress == [0], timeout=WAIT_MS)
    assert jobs.busy()
    jobs.cancel()
    assert not jobs.busy()
    gate.set()
    assert jobs.cancel_and_wait(WAIT_MS)
    qtbot.waitUntil(lambda: seen.ends == [("cancelled",)], timeout=WAIT_MS)
    assert len(reached) <= 2, "the generator went on after the cancel"
    assert seen.progress == [0], "nothing is reported after the cancel"


def test_a_polling_job_reports_and_sees_the_cancel(qtbot, lane):
    jobs = lane()
    seen = Ends(jobs)
    polls: list[bool] = []  # the job is still polling

    def load(n, progress, cancelled):  # the trainer's style (trainer.load_source)
        progress(0, n)
        while not cancelled():
            polls.append(True)
            threading.Event().wait(0.001)
        raise LoadCancelled("stopped")

    jobs.submit_polling(load, 5)
    qtbot.waitUntil(lambda: seen.progress == [(0, 5)], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(polls) > 2, timeout=WAIT_MS)
    jobs.cancel()
    qtbot.waitUntil(lambda: seen.ends == [("cancelled",)], timeout=WAIT_MS)


def test_errors_end_in_one_line(qtbot, lane):
    jobs = lane()
    seen = Ends(jobs)

    def broken():
        raise ValueError("first line\nsecond line")

    def bad_file():
        raise DataError("/data/x.npz: not a zip archive")

    with qtbot.waitSignal(jobs.failed, timeout=WAIT_MS):
        jobs.submit(broken)
    with qtbot.waitSignal(jobs.failed, timeout=WAIT_MS):
        jobs.submit(bad_file)
    assert seen.ends == [("failed", "ValueError: first line second line"),
                         ("failed", "/data/x.npz: not a zip archive")]
    assert one_line(OSError(2, "No such file", "x")) == "[Errno 2] No such file: 'x'"


def test_the_latest_request_wins(qtbot, lane):
    jobs = lane()
    seen = Ends(jobs)
    gate, started = threading.Event(), threading.Event()

    def slow(tag):
        started.set()
        assert gate.wait(WAIT_MS / 1000)
        return tag

    jobs.submit(slow, "first")  # running: its answer will be dropped
    assert started.wait(WAIT_MS / 1000)
    jobs.submit(slow, "second")  # queued, then replaced
    jobs.submit(slow, "third")
    gate.set()
    qtbot.waitUntil(lambda: seen.ends == [("done", "third")], timeout=WAIT_MS)
    assert jobs.cancel_and_wait(WAIT_MS) and seen.ends == [("done", "third")]


def test_a_queue_lane_ends_every_request_in_turn(qtbot, lane):
    jobs = lane(latest_wins=False)
    seen = Ends(jobs)
    for n in (1, 2, 3):
        jobs.submit(counting, n)
    qtbot.waitUntil(lambda: len(seen.ends) == 3, timeout=WAIT_MS)
    assert seen.ends == [("done", 1), ("done", 2), ("done", 3)]
    assert seen.progress == [0, 0, 1, 0, 1, 2]


def test_cancel_and_wait_joins_the_thread_and_the_lane_takes_work_again(qtbot, lane):
    jobs = lane()
    seen = Ends(jobs)
    gate = threading.Event()
    jobs.submit(counting, 10, gate)
    qtbot.waitUntil(lambda: seen.progress == [0], timeout=WAIT_MS)
    opener = threading.Timer(0.05, gate.set)  # the job is blocked until then
    opener.start()
    assert jobs.cancel_and_wait(WAIT_MS)
    opener.join()
    with qtbot.waitSignal(jobs.done, timeout=WAIT_MS):
        jobs.submit(counting, 2)
    assert seen.ends == [("cancelled",), ("done", 2)]
