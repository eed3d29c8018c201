"""Fixtures for the window tests: isolated settings, a window factory, a worker-leak guard."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from trainer import TrainConfig, load_source


def add_run_from_dialog(qtbot, window, choose, timeout_ms: int = 30_000):
    """File > New run answered by the real dialog, its fields set by ``choose(dialog)`` as a
    user would; returns (first, second) run once both have a snapshot."""
    from explorer.qt.views.new_run_dialog import NewRunDialog

    def answer(base, base_name, schedule):
        dialog = NewRunDialog(base, base_name, schedule, window)
        choose(dialog)
        return dialog.config(), dialog.name()

    window.runs.ask_new_run = answer
    window.actions["new_run"].trigger()
    first, second = window.state.runs
    qtbot.waitUntil(lambda: second.snapshot is not None and first.snapshot is not None,
                    timeout=timeout_ms)
    return first, second

@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """QSettings and autosaves go under tmp_path, never into the real user's folders."""
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      str(tmp_path / "settings"))
    monkeypatch.setenv("LATENT_EXPLORER_DATA", str(tmp_path / "data"))
    yield


@pytest.fixture(autouse=True)
def no_running_workers():
    """Fail a test that leaves a training worker's loop running (close-time bugs)."""
    yield
    from explorer.qt.worker import running_workers

    left = running_workers()
    for worker in left:
        worker.stop(5000)
    assert not left, f"training workers left running: {left}"


def fast_config(**changes) -> TrainConfig:
    """A fast model: one small hidden layer, one thread, frequent held-out evaluation."""
    base = TrainConfig(hidden=(64,), threads=1, eval_every_seconds=0.2, batch_size=64)
    return base.replace(**changes)


@pytest.fixture
def small_config():
    return fast_config


@pytest.fixture(scope="session")
def digits():
    return load_source("digits")


@pytest.fixture
def make_window(qtbot, digits):
    """Build MainWindows (shown, default small config); close each one at teardown and
    check that its worker thread ended (napari's make_napari_viewer pattern)."""
    from explorer.qt.window import MainWindow

    windows = []

    def factory(config: TrainConfig | None = None, dataset=None, show: bool = True, **kwargs):
        window = MainWindow(dataset or digits, config or fast_config(), **kwargs)
        windows.append(window)
        if show:
            window.show()
            qtbot.waitExposed(window)
        return window

    yield factory
    for window in windows:
        window.close()
        for controller in window.trainers.all():
            assert not controller.worker.isRunning(), "worker thread still running after close"
        window.deleteLater()


@pytest.fixture(autouse=True)
def no_guarded_failures(request):
    """Fail a test in which a paint or event handler raised: the guard that keeps the app
    alive (explorer.qt.paint_guard) must not hide bugs from the tests. A test that provokes
    one on purpose is marked ``guarded_failure``."""
    from explorer.qt import paint_guard

    before = paint_guard.failure_count()
    yield
    if request.node.get_closest_marker("guarded_failure") is None:
        assert paint_guard.failure_count() == before, (
            f"a guarded Qt callback raised (see the log): {paint_guard.failures()}")


@pytest.fixture
def restore_look(qapp):
    """Themes change the whole app: put the style, palette and plot colours back after
    (a window whose preferences are applied sets the theme)."""
    import pyqtgraph as pg
    from PySide6.QtGui import QPalette

    style, palette = qapp.style().name(), QPalette(qapp.palette())
    yield
    qapp.setStyle(style)
    qapp.setPalette(palette)
    pg.setConfigOptions(background="k", foreground="d")
