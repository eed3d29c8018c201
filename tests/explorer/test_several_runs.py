"""Several runs in one window, with real widgets and real workers: File > New run, planes side
by side, one run trains at a time or all in turn, the linked selection and its comparison,
closing while both train, a two-run session saved and reopened, the screenshot mode's JSON."""

from __future__ import annotations

import json

from PySide6.QtCore import QPoint, Qt

from explorer.core.session_file import load_session
from explorer.core.state import derive_config
from explorer.qt.worker import running_workers

WAIT_MS = 20_000


def steps(run) -> int:
    return -1 if run.progress is None else run.progress.step


def with_second_run(qtbot, window, **changes):
    """File > New run, the dialog answered with ``changes`` (the real one: test_run_views)."""
    seen = []

    def answer(base, base_name, schedule):
        seen.append((base, base_name, schedule))
        return derive_config(base, **changes), "beta=4"

    window.runs.ask_new_run = answer
    window.actions["new_run"].trigger()
    assert seen and seen[0][0] == window.state.runs[0].config  # prefilled from the current
    first, second = window.state.runs
    qtbot.waitUntil(lambda: second.snapshot is not None, timeout=WAIT_MS)
    return first, second


def test_a_new_run_trains_beside_the_first_one_at_a_time_or_in_turn(qtbot, make_window):
    w = make_window()
    first, second = with_second_run(qtbot, w, beta=4.0)
    assert second.config.beta == 4.0 and first.config.beta == 1.0
    assert second.colour != first.colour and w.state.current is first
    planes = w.planes.planes()
    assert [p.run for p in planes] == [first, second]
    assert planes[1].isVisible() and "beta=4" in planes[1].title.text()
    assert "one run trains at a time" in w.schedule_label.text()
    qtbot.waitUntil(lambda: first.running and not second.running, timeout=WAIT_MS)

    # Click the second plane: it becomes current; Start then trains it, pausing the first.
    view = planes[1].view
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                     pos=QPoint(view.viewport().width() // 2, view.viewport().height() // 2))
    qtbot.waitUntil(lambda: w.state.current is second, timeout=WAIT_MS)
    assert w.controls.beta.value() == 4.0  # the Training panel shows the current run
    w.current_run.toggle_running()
    qtbot.waitUntil(lambda: second.running and not first.running, timeout=WAIT_MS)

    w.actions["schedule_all"].trigger()  # all in turn: both train, one step each
    assert w.state.schedule == "all" and "in turn" in w.schedule_label.text()
    w.trainers.start(first)
    qtbot.waitUntil(lambda: first.running and second.running, timeout=WAIT_MS)
    a, b = steps(first), steps(second)
    qtbot.waitUntil(lambda: steps(first) > a + 20 and steps(second) > b + 20, timeout=WAIT_MS)
    legend = {name for _, name in w.elbo_view.legend.items}
    assert {"run 1: held-out", "beta=4: held-out"} <= legend  # both curves, one colour each


def test_a_clicked_datapoint_is_selected_in_every_plane_and_compared(qtbot, make_window):
    w = make_window()
    first, second = with_second_run(qtbot, w, beta=4.0)
    qtbot.waitUntil(lambda: first.snapshot is not None, timeout=WAIT_MS)
    w.selection.select_point(7)  # the window's own path: a click on the primary plane
    assert w.state.selected == 7
    assert all(p.view.selected() == 7 for p in w.planes.planes())
    qtbot.waitUntil(lambda: len(w.comparison.rows) == 2, timeout=WAIT_MS)
    rows = {r.run: r for r in w.comparison.rows}
    assert set(rows) == {"run 1", "beta=4"}
    assert all(r.kl >= 0 and r.log_px >= r.elbo - 0.01 for r in rows.values())
    assert w.comparison.table.rowCount() == 2

    # A dot clicked on the other plane: selected there and in every plane, then compared.
    other = w.planes.others[0]
    # The comparison scores each run's newest *snapshot* model, which lags its steps.
    compared_step = first.snapshot.progress.step
    other.view.pointSelected.emit(3)
    assert w.state.selected == 3 and w.planes.primary.view.selected() == 3
    assert other.view.selected() == 3
    qtbot.waitUntil(lambda: len(w.comparison.rows) == 2 and not w.comparison.busy(),
                    timeout=WAIT_MS)
    assert "#3" in w.comparison.status.text()
    shown = list(w.comparison.rows)
    qtbot.waitUntil(lambda: first.snapshot.progress.step > compared_step + 5,
                    timeout=WAIT_MS)
    w.comparison.refresh_button.click()  # the newest models: the numbers move on
    qtbot.waitUntil(lambda: w.comparison.rows != shown and not w.comparison.busy(),
                    timeout=WAIT_MS)


def test_closing_while_both_train_stops_every_worker(qtbot, make_window):
    w = make_window()
    first, second = with_second_run(qtbot, w, beta=4.0)
    w.actions["schedule_all"].trigger()
    w.trainers.start(second)
    qtbot.waitUntil(lambda: first.running and second.running, timeout=WAIT_MS)
    workers = [w.trainers.of(r).worker for r in (first, second)]
    w.confirm = lambda title, question: True
    w.sessions.ask_unsaved = lambda title, question: "discard"
    w.close()
    assert all(not worker.isRunning() for worker in workers)
    assert not [x for x in running_workers() if x in workers]


def test_a_two_run_session_is_saved_and_reopened(qtbot, make_window, tmp_path, monkeypatch):
    w = make_window()
    first, second = with_second_run(qtbot, w, beta=4.0)
    w.current_run.toggle_running()  # pause the first run; the second was never started
    qtbot.waitUntil(lambda: not first.running and first.progress is not None
                    and first.progress.paused, timeout=WAIT_MS)
    path = tmp_path / "two.lexp"
    monkeypatch.setattr(w, "save_file_name", lambda *args: str(path))
    w.actions["save"].trigger()
    assert path.is_file()
    loaded = load_session(path)
    assert [r.name for r in loaded.runs] == ["run 1", "beta=4"]
    assert loaded.runs[1].checkpoint.config.beta == 4.0
    saved_steps = [int(r.checkpoint.counters["step"]) for r in loaded.runs]
    w.close()

    again = make_window()
    again.sessions.ask_unsaved = lambda title, question: "discard"
    assert again.sessions.open_session(path)
    qtbot.waitUntil(lambda: len(again.state.runs) == 2
                    and all(r.snapshot is not None for r in again.state.runs), timeout=WAIT_MS)
    names = [r.name for r in again.state.runs]
    assert names == ["run 1", "beta=4"]
    assert [r.config.beta for r in again.state.runs] == [1.0, 4.0]
    assert [r.progress.step for r in again.state.runs] == saved_steps
    assert not any(r.running for r in again.state.runs)  # a reopened session opens paused


def test_screenshot_mode_prints_one_json_line_per_run(qapp, tmp_path, capsys):
    from explorer.qt.app import main

    out = tmp_path / "runs.png"
    assert main(["digits", "--run", "beta=1", "--run", "beta=4", "--screenshot", str(out),
                 "--steps", "400"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{")]
    assert [r["run"] for r in lines] == ["beta=1", "beta=4"]
    assert lines[0]["config"] == {"beta": 1.0} and lines[1]["config"] == {"beta": 4.0}
    assert all(r["steps"] == 400 for r in lines)
    assert all((r["arch"], r["channels"], r["latent_dim"]) == ("mlp", 1, 2) for r in lines)
    assert lines[1]["heldout_kl"] < lines[0]["heldout_kl"]  # beta = 4 pays less KL
