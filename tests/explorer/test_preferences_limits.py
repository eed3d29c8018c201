"""Preferences read from disk are validated and clamped: a hand-edited settings file with
``curve_hz = 0`` killed the training worker at start with ZeroDivisionError."""

from __future__ import annotations

from pathlib import Path

import pytest

from explorer.qt.preferences import LIMITS, Preferences
from explorer.qt.window import app_settings
from explorer.qt.worker import TrainingWorker

WAIT_MS = 20_000

BAD_INI = """[preferences]
device=tpu
torch_threads=-3
curve_hz=0
latent_hz=nan
ellipse_budget=1e12
theme=purple
autosave_on_quit=maybe
"""


def test_a_settings_file_of_bad_values_opens_a_window_that_trains(qtbot, make_window,
                                                                   restore_look):
    path = Path(app_settings().fileName())  # the real ini file the window reads
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BAD_INI, encoding="utf-8")
    w = make_window()
    assert w.preferences.prefs == Preferences(torch_threads=1, curve_hz=LIMITS["curve_hz"][0],
                                  latent_hz=Preferences.latent_hz,
                                  ellipse_budget=LIMITS["ellipse_budget"][1])
    assert w.latent_view.ellipse_budget() == LIMITS["ellipse_budget"][1]
    qtbot.waitUntil(lambda: w.state.current.progress is not None
                    and w.state.current.progress.step > 5, timeout=WAIT_MS)
    assert w.state.current.failure is None and not w.banner.isVisible()


@pytest.mark.parametrize(("text", "expected"), [
    ("0", 1.0), ("-5", 1.0), ("1e9", 60.0), ("inf", 10.0), ("nan", 10.0), ("fast", 10.0),
    ("12.5", 12.5)])
def test_each_curve_rate_is_clamped_or_defaulted(qtbot, tmp_path, text, expected):
    from PySide6.QtCore import QSettings

    ini = tmp_path / "prefs.ini"
    ini.write_text(f"[preferences]\ncurve_hz={text}\nellipse_budget=-7\n", encoding="utf-8")
    prefs = Preferences.load(QSettings(str(ini), QSettings.Format.IniFormat))
    assert prefs.curve_hz == expected and prefs.ellipse_budget == 0


def test_preferences_set_from_code_are_clamped_too(qtbot, make_window, restore_look):
    w = make_window()
    w.preferences.apply(Preferences(curve_hz=0.0, latent_hz=-1.0, ellipse_budget=-5,
                                  torch_threads=0))
    assert (w.preferences.prefs.curve_hz, w.preferences.prefs.latent_hz,
            w.preferences.prefs.ellipse_budget,
            w.preferences.prefs.torch_threads) == (1.0, 0.2, 0, 1)
    qtbot.waitUntil(lambda: w.state.current.progress is not None
                    and w.state.current.progress.step > 5, timeout=WAIT_MS)
    assert w.state.current.failure is None


def test_the_worker_refuses_a_zero_rate_in_the_callers_thread(qtbot, digits, small_config):
    worker = TrainingWorker(digits, small_config())
    with pytest.raises(ValueError, match="positive"):
        worker.set_rates(0.0, 3.0)
