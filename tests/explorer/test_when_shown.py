"""A panel's drawing waits while no one can see it (explorer.qt.views.when_shown): behind
another dock's tab (where Qt still calls the dock visible) or never shown."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow

from explorer.qt.views.when_shown import WhenShown


def tabbed_window(qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    window.setCentralWidget(QLabel("plane"))
    docks = []
    for title in ("front", "behind"):
        dock = QDockWidget(title, window)
        dock.setObjectName(title)
        dock.setWidget(QLabel(title))
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        docks.append(dock)
    window.tabifyDockWidget(*docks)
    docks[0].raise_()
    window.resize(600, 400)
    window.show()
    qtbot.waitExposed(window)
    return window, docks


def test_a_drawing_behind_a_tab_waits_and_only_the_newest_of_each_kind_runs(qtbot):
    window, (front, behind) = tabbed_window(qtbot)
    panel = behind.widget()
    when = WhenShown(panel)
    drawn = []
    assert panel.isVisible() and not when.shown()  # Qt calls it visible; no one sees it
    for k in range(3):
        when.run("bars", lambda k=k: drawn.append(("bars", k)))
    when.run("strip", lambda: drawn.append(("strip", 0)))
    assert drawn == []
    behind.raise_()
    qtbot.waitUntil(lambda: len(drawn) == 2)
    assert drawn == [("bars", 2), ("strip", 0)]
    assert when.shown()
    when.run("bars", lambda: drawn.append(("bars", 3)))  # in front: at once
    assert drawn[-1] == ("bars", 3)
    front.raise_()
    qtbot.waitUntil(lambda: not when.shown())
    when.run("bars", lambda: drawn.append(("bars", 4)))
    assert drawn[-1] == ("bars", 3)
    when.flush()  # a reader that needs it now
    assert drawn[-1] == ("bars", 4)


def test_a_widget_never_shown_draws_when_it_is_shown(qtbot):
    panel = QLabel("alone")
    qtbot.addWidget(panel)
    when = WhenShown(panel)
    drawn = []
    when.run("text", lambda: drawn.append(1))
    assert drawn == []
    panel.show()
    qtbot.waitUntil(lambda: drawn == [1])
