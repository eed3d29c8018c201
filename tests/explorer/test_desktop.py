"""Desktop conventions: --checkpoint from a headless run, preferences, theme, icon, About box,
shortcuts and tooltips, and a HiDPI screenshot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QKeySequence, QPalette
from PySide6.QtWidgets import QApplication

from explorer.core.window_size import DEFAULT_SIZE
from explorer.qt.app import build_window, main, open_startup
from explorer.qt.preferences import PreferencesDialog
from explorer.qt.views.help import about_text, versions
from trainer import load_checkpoint
from trainer.cli import main as cli_main

WAIT_MS = 20_000
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def headless_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("headless") / "run"
    assert cli_main(["train", "digits", "--epochs", "1", "--out", str(out), "--quiet",
                     "--hidden", "32"]) == 0
    return out


def test_checkpoint_opens_paused_with_its_history(qtbot, headless_run):
    checkpoint = load_checkpoint(headless_run)
    startup = open_startup(None, str(headless_run), "cpu", 1)
    assert startup.dataset.fingerprint() == checkpoint.dataset_ref["fingerprint"]
    window = build_window(startup)
    qtbot.addWidget(window)
    try:
        qtbot.waitUntil(lambda: window.state.current.progress is not None
                        and window.state.current.snapshot is not None,
                        timeout=WAIT_MS)
        step = checkpoint.counters["step"]
        assert window.state.current.progress.step == step and window.state.current.progress.paused
        table = checkpoint.history["heldout"]
        saved = [row[table["columns"].index("elbo")] for row in table["rows"]]
        assert len(saved) > 0  # the curves come back with the run
        np.testing.assert_allclose(window.state.current.progress.heldout["elbo"], saved)
        assert window.state.current.snapshot.mu.shape == (len(startup.dataset), 2)
        assert not window.isWindowModified() and window.controls.start_button.text() == "Resume"
        window.current_run.toggle_running()
        qtbot.waitUntil(lambda: window.trainers.current.worker.session.step_count > step + 5,
                        timeout=WAIT_MS)
    finally:
        window.close()
    assert not window.trainers.current.worker.isRunning()


def test_checkpoint_on_the_command_line(qtbot, headless_run, tmp_path, capsys, restore_look):
    png = tmp_path / "shot.png"
    assert main(["--checkpoint", str(headless_run), "--screenshot", str(png),
                 "--steps", "0"]) == 0
    with Image.open(png) as im:
        assert im.size[0] > 100
    bad = tmp_path / "no-such-run"
    assert main(["--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and err[0].startswith("latent-explorer:")


def test_preferences_persist_and_apply(qtbot, make_window, restore_look):
    w = make_window(start=False)
    dialog = PreferencesDialog(w.preferences.prefs, w)
    dialog.threads.setValue(2)
    dialog.budget.setValue(1234)
    dialog.theme.setCurrentText("dark")
    dialog.autosave.setChecked(False)
    dialog.curve_hz.setValue(5)
    chosen = dialog.preferences()
    w.preferences.apply(chosen)
    assert w.latent_view.ellipse_budget() == 1234
    assert w.current_run.config().threads == 2  # for the next reset or run
    # The worker serves the new rates between steps (here: while paused, within 50 ms).
    qtbot.waitUntil(lambda: w.trainers.current.worker.progress_interval == pytest.approx(1 / 5),
                    timeout=5000)
    window_colour = QApplication.palette().color(QPalette.ColorRole.Window)
    assert window_colour.lightness() < 100  # dark
    background = w.latent_view.backgroundBrush().color()
    assert background.lightness() < 100
    w.close()

    again = make_window(start=False)
    assert again.preferences.prefs == chosen
    assert again.preferences.prefs.theme == "dark" and not again.preferences.prefs.autosave_on_quit


def test_icon_about_shortcuts_and_tips(qtbot, make_window):
    w = make_window(start=False)
    assert not w.windowIcon().isNull()
    names = dict(versions())
    text = about_text()
    for name in ("Latent Explorer", "Python", "torch", "PySide6 / Qt", "pyqtgraph", "numpy"):
        assert name in names and names[name] in text.replace("&amp;", "&")
    assert QKeySequence("Ctrl+O") in w.actions["open"].shortcuts()
    assert QKeySequence("Ctrl+S") in w.actions["save"].shortcuts()
    assert QKeySequence("Ctrl+Shift+S") in w.actions["save_as"].shortcuts()
    file_menu = next(a.menu() for a in w.menuBar().actions() if a.text() == "&File")
    prefs = next(a for a in file_menu.actions() if a.text() == "Preferences...")
    assert QKeySequence("Ctrl+,") in prefs.shortcuts()
    missing = [a.text() for m in w.menuBar().actions() for a in m.menu().actions()
               if not a.isSeparator() and a.menu() is None and not a.statusTip()]
    assert missing == []


def test_hidpi_screenshot_is_twice_the_size_and_drawn(tmp_path):
    png = tmp_path / "hidpi.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR="2",
               LATENT_EXPLORER_DATA=str(tmp_path / "data"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "explorer", "digits", "--screenshot", str(png),
                           "--steps", "50"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with Image.open(png) as im:
        assert im.size == (2 * DEFAULT_SIZE[0], 2 * DEFAULT_SIZE[1])
        grey = np.asarray(im.convert("L"))
    assert grey.std() > 10  # not blank
