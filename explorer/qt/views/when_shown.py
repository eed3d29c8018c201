"""Per-snapshot drawing for a panel only while someone can see it.

The window sends every snapshot to its panels; several of them cost milliseconds of numpy or
decoder passes at 70,000 points (the dimension bars, the traversal strip). A panel that
cannot be seen (its dock behind another dock's tab, or closed) keeps only its newest drawing
and runs it when it comes to the front. A tabbed dock that is not current stays "visible" in
Qt's sense, moved off the window, so what counts is an empty visible region; the dock's
``visibilityChanged`` says when its tab is chosen.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QDockWidget, QWidget


class WhenShown(QObject):
    """Runs ``widget``'s drawings now if it can be seen, else when it can (the newest of
    each kind only)."""

    def __init__(self, widget: QWidget):
        super().__init__(widget)
        self._widget = widget
        self._pending: dict[str, Callable[[], None]] = {}  # kind -> its newest drawing
        self._dock: QDockWidget | None = None  # the dock the widget sits in, once docked
        widget.installEventFilter(self)

    def shown(self) -> bool:
        """Where a person can see it: visible and not behind another dock's tab."""
        return self._widget.isVisible() and not self._widget.visibleRegion().isEmpty()

    def run(self, kind: str, draw: Callable[[], None]) -> None:
        """``draw`` now if the widget can be seen; else it replaces any waiting ``kind``."""
        self._pending[kind] = draw
        self._watch_dock()
        if self.shown():
            self.flush()

    def flush(self) -> None:
        """Run what waits, in the order it first came (a reader that needs it now)."""
        while self._pending:
            kind = next(iter(self._pending))
            self._pending.pop(kind)()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if watched is self._widget and event.type() == QEvent.Type.Show:
            self._watch_dock()
            if self.shown():
                self.flush()
        return False

    def _watch_dock(self) -> None:
        parent = self._widget.parentWidget()
        while parent is not None and not isinstance(parent, QDockWidget):
            parent = parent.parentWidget()
        if parent is not None and parent is not self._dock:
            if self._dock is not None:
                self._dock.visibilityChanged.disconnect(self._on_dock_visibility)
            self._dock = parent
            parent.visibilityChanged.connect(self._on_dock_visibility)

    def _on_dock_visibility(self, visible: bool) -> None:
        if visible:
            self.flush()
