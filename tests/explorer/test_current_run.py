"""The current run's controller in a real window: the Training panel's buttons act on the
current run only, a new dataset leaves one run (the comparison and schedule go with the
others), the config a new run gets is placed on the Preferences' device and threads, and the
sigma level has one owner."""

from __future__ import annotations

from explorer.core.state import derive_config
from explorer.qt.preferences import Preferences

WAIT_MS = 20_000


def test_one_run_again_after_a_dataset_switch_hides_what_compares_runs(qtbot, make_window,
                                                                       digits):
    w = make_window(start=False)
    w.runs.ask_new_run = lambda base, name, schedule: (derive_config(base, beta=4.0), "b4")
    w.actions["new_run"].trigger()
    first, second = w.state.runs
    assert w.docks["compare"].isVisible() and w.schedule_label.isVisible()

    w.current_run.toggle_running()  # Start acts on the current run, not the new one
    qtbot.waitUntil(lambda: first.running, timeout=WAIT_MS)
    assert w.trainers.of(first).started and not w.trainers.of(second).started
    assert w.controls.start_button.text() == "Pause"

    assert w.datasets.switch_dataset(digits)  # a new run on the data: the others go
    assert w.state.runs == (first,) and w.state.current is first
    assert not w.docks["compare"].isVisible() and not w.schedule_label.isVisible()
    assert [p.run for p in w.planes.planes()] == [first]


def test_the_next_run_is_placed_on_the_preferences_device_and_threads(qtbot, make_window):
    w = make_window(start=False)
    assert w.current_run.config() == w.state.current.config  # as the command line gave it
    w.preferences.apply(Preferences(torch_threads=2))
    placed = w.current_run.config()
    assert placed.threads == 2 and w.state.current.config.threads == 1  # from the next run
    assert placed.replace(threads=1) == w.state.current.config


def test_the_sigma_level_has_one_owner_the_state(qtbot, make_window):
    w = make_window(start=False)
    w.actions["sigma_2"].trigger()  # View > 2 sigma ellipses (Ctrl+2)
    assert w.state.sigma_level == 2 and w.inspector.overlay.level == 2
    assert w.sessions.view_state()["sigma_level"] == 2
    w.state.set_sigma_level(1)  # a session or the settings restored: the menu follows
    assert w.actions["sigma_1"].isChecked() and not w.actions["sigma_2"].isChecked()
    assert w.inspector.overlay.level == 1
