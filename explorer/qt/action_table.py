"""The window's menus as data: each row of a table is an action (``Act``), a submenu (``Sub``),
a separator ("File-") or a dock's own toggle, and ``ActionTable`` builds them into QActions and
menus in the order listed, with each action's enabled rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

KEYS = QKeySequence.StandardKey
SEPARATOR = "-"  # a row "File-" puts a separator in the File menu


def shortcuts(standard: QKeySequence.StandardKey, *fallbacks: str) -> list[QKeySequence]:
    """The platform's standard keys plus fallbacks (Linux has no standard Preferences key)."""
    keys = list(QKeySequence.keyBindings(standard))
    for text in fallbacks:
        key = QKeySequence(text)
        if key not in keys:
            keys.append(key)
    return keys


@dataclass(frozen=True)
class Act:
    """One row of the action table: a QAction named ``name`` in ``menu`` ("File/Export" is a
    submenu). ``enabled``: a rule checked whenever the running state changes or a menu opens."""

    name: str
    menu: str
    text: str
    handler: Callable
    keys: object = None  # a key text, a Qt.Key, a StandardKey or a list of QKeySequence
    tip: str = ""
    checkable: bool = False
    group: str = ""  # the checkable actions of one group exclude each other
    enabled: Callable[[], bool] | None = None


@dataclass(frozen=True)
class Sub:
    """A submenu, placed where the table lists it; ``menu`` "File/Export"."""

    menu: str
    tip: str = ""


class ActionTable:
    """The QActions (``actions``, by name) and menus (``menus``, by path) of ``rows``, built
    into ``window``'s menu bar."""

    def __init__(self, window: QMainWindow, rows: list):
        self.window = window
        self.actions: dict[str, QAction] = {}
        self.menus: dict[str, QMenu] = {}
        self._rules: dict[str, Callable[[], bool]] = {}
        groups: dict[str, QActionGroup] = {}
        for row in rows:
            if isinstance(row, str):
                self._menu(row.rstrip(SEPARATOR)).addSeparator()
            elif isinstance(row, Sub):
                self._menu(row.menu, row.tip)
            elif isinstance(row, QAction):  # a dock's toggle: says what it does
                row.setStatusTip(f"Show or hide {row.text()}")
                self._menu("View").addAction(row)
            else:
                action = self._action(row)
                if row.group:
                    groups.setdefault(row.group, QActionGroup(window)).addAction(action)
                if row.enabled is not None:
                    self._rules[row.name] = row.enabled
                self._menu(row.menu).addAction(action)
                self.actions[row.name] = action

    def _action(self, row: Act) -> QAction:
        action = QAction(row.text, self.window)
        if row.keys is not None:
            action.setShortcuts(row.keys if isinstance(row.keys, list)
                                else [QKeySequence(row.keys)])
        action.setCheckable(row.checkable)
        action.setStatusTip(row.tip)
        action.setToolTip(row.tip or row.text)
        action.triggered.connect(row.handler)
        return action

    def _menu(self, path: str, tip: str = "") -> QMenu:
        if path not in self.menus:
            parent, _, name = path.rpartition("/")
            owner = self._menu(parent) if parent else self.window.menuBar()
            menu = owner.addMenu(name if parent else f"&{name}")
            menu.setToolTipsVisible(bool(parent))
            menu.menuAction().setStatusTip(tip)
            menu.aboutToShow.connect(self.refresh)
            self.menus[path] = menu
        return self.menus[path]

    def refresh(self) -> None:
        """Apply each action's enabled rule (on every change of running state, menu open)."""
        for name, rule in self._rules.items():
            self.actions[name].setEnabled(rule())
