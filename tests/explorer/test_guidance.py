"""Guidance on the first screen: a hint pointing to F1 until dismissed, and a tooltip or a
status tip on every menu action, view and input."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QComboBox,
    QDockWidget,
    QLabel,
    QLineEdit,
    QMenu,
    QSlider,
    QTabBar,
)

INPUTS = (QAbstractButton, QAbstractSpinBox, QComboBox, QLineEdit, QSlider)


def all_menu_actions(menu: QMenu):
    for action in menu.actions():
        if action.isSeparator():
            continue
        yield action
        if action.menu() is not None:
            action.menu().aboutToShow.emit()  # menus filled on demand (Open recent)
            yield from all_menu_actions(action.menu())


def test_every_menu_action_has_a_status_tip(make_window):
    w = make_window(start=False)
    missing = [action.text() for top in w.menuBar().actions()
               for action in all_menu_actions(top.menu()) if not action.statusTip()]
    assert not missing, missing


def owned_by_qt(widget) -> bool:
    """Qt's own parts: a dock's float/close buttons, a tab bar's scroll arrows, the line edit
    inside a spin box or an editable combo box."""
    parent = widget.parentWidget()
    return (isinstance(parent, (QDockWidget, QTabBar, QAbstractSpinBox, QComboBox))
            or widget.objectName().startswith("qt_"))


def test_every_view_and_input_has_a_tooltip(make_window):
    w = make_window(start=False)
    missing = []
    for dock in w.docks.values():
        view = dock.widget()
        inner = getattr(view, "widget", lambda: None)() or view  # scrolled panels
        if not inner.toolTip() and not view.toolTip():
            missing.append(f"view {dock.windowTitle()}")
        for cls in INPUTS:
            for widget in view.findChildren(cls):
                if owned_by_qt(widget):
                    continue
                if not (widget.toolTip() or widget.statusTip()):
                    missing.append(f"{dock.windowTitle()}: {type(widget).__name__} "
                                   f"{getattr(widget, 'text', lambda: '')()!r}")
    if not w.latent_view.toolTip():
        missing.append("the latent plane")
    assert not missing, missing


def test_the_f1_hint_shows_on_first_start_until_dismissed(qtbot, make_window):
    first = make_window(start=False)
    assert first.hint.isVisible()
    text = " ".join(label.text() for label in first.hint.findChildren(QLabel))
    assert "F1" in text
    button = next(b for b in first.hint.findChildren(QAbstractButton) if b.text() == "Got it")
    button.click()
    assert not first.hint.isVisible()
    first.close()
    again = make_window(start=False)
    assert not again.hint.isVisible()  # remembered in the settings
