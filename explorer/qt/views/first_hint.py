"""The one line shown on the first start pointing to F1; "Got it" hides it for good."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

HINT_KEY = "guide/f1_hint_dismissed"


class FirstHint(QWidget):
    """Shown until dismissed; ``settings`` remember the dismissal (None: never shown)."""

    def __init__(self, settings: QSettings | None):
        super().__init__()
        self._settings = settings
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        label = QLabel("New here? Press <b>F1</b> (Help &gt; What am I looking at?) to see which "
                       "numbers are &theta;, &phi; and each point's &lambda;<sub>i</sub>.")
        label.setWordWrap(True)
        button = QPushButton("Got it")
        button.setToolTip("Hide this hint; F1 stays in the Help menu")
        button.clicked.connect(self.dismiss)
        row.addWidget(label, 1)
        row.addWidget(button)
        self.setVisible(settings is not None and not settings.value(HINT_KEY, False, bool))

    def dismiss(self) -> None:
        self.hide()
        if self._settings is not None:
            self._settings.setValue(HINT_KEY, True)
            self._settings.sync()
