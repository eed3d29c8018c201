"""The action table on its own: rows become QActions and menus in the order listed, with their
keys, tips, exclusive groups and enabled rules; the failure banner shows a reason once."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow

from explorer.qt.action_table import Act, ActionTable, Sub
from explorer.qt.views.banner import Banner


def test_rows_become_menus_actions_and_rules_in_order(qtbot):
    window = QMainWindow()
    qtbot.addWidget(window)
    calls, allowed = [], {"go": False}
    toggle = QAction("Some dock")
    table = ActionTable(window, [
        Act("go", "File", "Go", lambda: calls.append("go"), "Ctrl+G", "Go somewhere",
            enabled=lambda: allowed["go"]),
        "File-",
        Sub("File/More", "More things"),
        Act("deep", "File/More", "Deep", lambda: calls.append("deep")),
        *(Act(f"pick_{k}", "View", f"Pick {k}", lambda: None, checkable=True, group="pick")
          for k in (1, 2)),
        toggle,
    ])
    file_menu = table.menus["File"]
    assert [a.text() for a in file_menu.actions()] == ["Go", "", "More"]
    assert file_menu.actions()[1].isSeparator()
    assert table.menus["File/More"].menuAction().statusTip() == "More things"
    go = table.actions["go"]
    assert go.shortcut() == QKeySequence("Ctrl+G") and go.statusTip() == "Go somewhere"

    table.refresh()
    assert not go.isEnabled()
    allowed["go"] = True
    file_menu.aboutToShow.emit()  # opening the menu applies the rules
    assert go.isEnabled()
    go.trigger()
    table.actions["deep"].trigger()
    assert calls == ["go", "deep"]

    one, two = table.actions["pick_1"], table.actions["pick_2"]
    one.setChecked(True)
    two.setChecked(True)
    assert two.isChecked() and not one.isChecked()  # one group: they exclude each other
    assert toggle in table.menus["View"].actions()
    assert toggle.statusTip() == "Show or hide Some dock"


def test_the_banner_shows_a_reason_once_until_dismissed(qtbot):
    banner = Banner()
    qtbot.addWidget(banner)
    assert banner.isHidden()  # until a message
    assert banner.show_reason("diverged at step 40")
    assert banner.isVisible() and banner.text() == "diverged at step 40"
    assert not banner.show_reason("diverged at step 40")  # the same reason: nothing new
    assert not banner.show_reason(None)
    banner.dismiss()
    assert not banner.isVisible()
    assert banner.show_reason("diverged at step 40")  # seen again after a dismissal
    banner.show_message("the worker failed")
    assert banner.text() == "the worker failed"
