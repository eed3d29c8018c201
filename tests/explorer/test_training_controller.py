"""TrainingController and Trainers with real workers and Runs (no window): the Run holds only
echoes, a dataset switch keeps the controller and replaces the worker, a failed worker is
replaced on Reset, and the schedule decides which runs train."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QCoreApplication
from test_worker_failure import failing_checkpoint

from explorer.core.state import AppState
from explorer.qt.controllers.training import Trainers
from trainer import TrainConfig

WAIT_MS = 20_000


def config(**changes):
    return TrainConfig(hidden=(32,), threads=1, batch_size=32, eval_every_seconds=0.2,
                       logpx_points=0).replace(**changes)


def two_runs(digits, schedule="one"):
    state = AppState()
    state.set_schedule(schedule)
    trainers = Trainers(state)
    runs = [state.add_run(digits, config()), state.add_run(digits, config(beta=4.0))]
    for run in runs:
        trainers.add(run).new_worker(start_paused=True)
    return state, trainers, runs


def steps(run):
    return -1 if run.progress is None else run.progress.step


def test_the_run_shows_the_echo_of_start_pause_and_step(qtbot, digits):
    state, trainers, (a, _) = two_runs(digits)
    try:
        controller = trainers.of(a)
        qtbot.waitUntil(lambda: a.snapshot is not None and a.progress is not None,
                        timeout=WAIT_MS)
        assert not a.running and a.config.beta == 1.0
        controller.step()
        qtbot.waitUntil(lambda: steps(a) == 1, timeout=WAIT_MS)
        trainers.start(a)
        assert controller.wants_running and not a.running  # asked, not yet echoed
        qtbot.waitUntil(lambda: a.running and steps(a) > 5, timeout=WAIT_MS)
        controller.set_beta(2.0)
        qtbot.waitUntil(lambda: a.config.beta == 2.0, timeout=WAIT_MS)  # via the snapshot
        controller.pause()
        qtbot.waitUntil(lambda: not a.running, timeout=WAIT_MS)
        assert controller.session.paused
    finally:
        trainers.shutdown()


def test_one_at_a_time_pauses_the_others_all_in_turn_trains_both(qtbot, digits):
    state, trainers, (a, b) = two_runs(digits)
    try:
        trainers.start(a)
        qtbot.waitUntil(lambda: a.running, timeout=WAIT_MS)
        trainers.start(b)
        qtbot.waitUntil(lambda: b.running and not a.running, timeout=WAIT_MS)
        state.set_schedule("all")
        trainers.start(a)
        qtbot.waitUntil(lambda: a.running and b.running, timeout=WAIT_MS)
        a0, b0 = steps(a), steps(b)
        qtbot.waitUntil(lambda: steps(a) > a0 + 20 and steps(b) > b0 + 20, timeout=WAIT_MS)
        state.set_current(b)
        state.set_schedule("one")  # back to one: the current run keeps training
        qtbot.waitUntil(lambda: b.running and not a.running, timeout=WAIT_MS)
    finally:
        trainers.shutdown()
    assert all(not c.worker.isRunning() and not c.alive for c in trainers.all())


def test_a_dataset_switch_keeps_the_controller_and_drops_the_old_workers_answers(qtbot,
                                                                                  digits):
    state, trainers, (a, b) = two_runs(digits)
    try:
        controller = trainers.of(a)
        old = controller.worker
        qtbot.waitUntil(lambda: a.snapshot is not None, timeout=WAIT_MS)
        small = dataclasses.replace(digits, pixels=digits.pixels[:300],
                                    labels=digits.labels[:300])
        controller.switch_dataset(small, config(seed=5))
        assert trainers.of(a) is controller and controller.worker is not old
        assert not old.isRunning() and a.dataset is small and a.snapshot is None
        qtbot.waitUntil(lambda: a.snapshot is not None, timeout=WAIT_MS)
        assert len(a.snapshot.mu) == 300 and a.config.seed == 5
        assert len(b.dataset) == len(digits)  # the other run is untouched
    finally:
        trainers.shutdown()


def test_a_failed_worker_sets_the_runs_failure_and_reset_replaces_it(qtbot, digits, tmp_path):
    checkpoint = failing_checkpoint(tmp_path / "ck", digits)
    state = AppState()
    run = state.add_run(digits, checkpoint.config)
    trainers = Trainers(state)
    controller = trainers.add(run)
    try:
        failed = controller.new_worker(start_paused=True, checkpoint=checkpoint)
        qtbot.waitUntil(lambda: run.failure is not None, timeout=WAIT_MS)
        assert run.failure.startswith("training stopped") and not controller.alive
        controller.start()  # refused: nothing would serve it
        assert not controller.wants_running
        controller.reset(config())
        assert controller.worker is not failed and run.failure is None
        qtbot.waitUntil(lambda: run.snapshot is not None and steps(run) == 0, timeout=WAIT_MS)
        trainers.start(run)
        qtbot.waitUntil(lambda: steps(run) > 5 and run.running, timeout=WAIT_MS)
    finally:
        trainers.shutdown()


def test_answers_that_queued_up_reach_the_run_once_newest_only(qtbot, digits):
    import time

    state, trainers, (a, _) = two_runs(digits)
    try:
        trainers.start(a)
        qtbot.waitUntil(lambda: a.running and steps(a) > 5, timeout=WAIT_MS)
        delivered = []
        a.snapshot_changed.connect(lambda s: delivered.append(("snapshot", s.progress.step)))
        a.progress_changed.connect(lambda p: delivered.append(("progress", p.step)))
        time.sleep(1.5)  # the GUI is busy: several snapshots and progresses queue up
        session_step = trainers.of(a).session.step_count
        for _ in range(2):  # the queued answers, then the one delivery they scheduled
            QCoreApplication.processEvents()
        assert [kind for kind, _ in delivered].count("snapshot") <= 1, delivered
        # Not one per queued answer (~15 of them). At most three: a delivery scheduled
        # just before the sleep can land in the first pass (seen once in CI:
        # progress 976, then snapshot 980 with its progress).
        assert len(delivered) <= 3, delivered
        assert delivered and max(step for _, step in delivered) <= session_step
    finally:
        trainers.shutdown()
