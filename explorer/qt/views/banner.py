"""The red banner above the plane: why the current run stopped (it diverged, or its worker's
loop ended with an error), until the user acts on it."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel


class Banner(QLabel):
    """Hidden until a message; a divergence's reason is shown once, not on every progress."""

    def __init__(self):
        super().__init__()
        self.setWordWrap(True)
        self.setStyleSheet("background:#b00020; color:white; padding:6px;")
        self.hide()
        self._reason: str | None = None

    def show_message(self, text: str) -> None:
        self.setText(text)
        self.show()

    def show_reason(self, reason: str | None) -> bool:
        """Show why training stopped; True when ``reason`` is new (not already shown)."""
        if not reason or reason == self._reason:
            return False
        self._reason = reason
        self.show_message(reason)
        return True

    def dismiss(self) -> None:
        """Hidden, and a reason seen again is shown again."""
        self.hide()
        self._reason = None
