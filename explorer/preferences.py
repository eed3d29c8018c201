"""User preferences: a dataclass persisted in QSettings, and the dialog that edits it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QSpinBox,
    QWidget,
)

from trainer import available_devices

THEMES = ("system", "dark", "light")


@dataclass
class Preferences:
    device: str = "cpu"
    # One torch thread leaves the second core to the event loop (FIELD_NOTES).
    torch_threads: int = 1
    curve_hz: float = 10.0
    latent_hz: float = 3.0
    ellipse_budget: int = 5000
    theme: str = "system"
    autosave_on_quit: bool = True

    @classmethod
    def load(cls, settings: QSettings) -> Preferences:
        prefs = cls()
        for f in dataclasses.fields(cls):
            raw = settings.value(f"preferences/{f.name}")
            if raw is None:
                continue
            default = getattr(prefs, f.name)
            try:
                if isinstance(default, bool):
                    value = raw if isinstance(raw, bool) else str(raw).lower() == "true"
                else:
                    value = type(default)(raw)
            except (TypeError, ValueError):
                continue  # a hand-edited or stale value: keep the default
            setattr(prefs, f.name, value)
        if prefs.device not in available_devices():
            prefs.device = "cpu"
        if prefs.theme not in THEMES:
            prefs.theme = "system"
        return prefs

    def save(self, settings: QSettings) -> None:
        for f in dataclasses.fields(self):
            settings.setValue(f"preferences/{f.name}", getattr(self, f.name))
        settings.sync()


class PreferencesDialog(QDialog):
    def __init__(self, prefs: Preferences, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        form = QFormLayout(self)

        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.device.setCurrentText(prefs.device)
        self.device.setToolTip("Where the model trains; applies on the next reset or run.")
        form.addRow("Device:", self.device)

        self.threads = QSpinBox(minimum=1, maximum=256, value=prefs.torch_threads)
        self.threads.setToolTip("torch threads for training. 1 keeps the window responsive "
                                "on a 2-core machine.")
        form.addRow("Torch threads:", self.threads)

        self.curve_hz = QDoubleSpinBox(minimum=1, maximum=60, value=prefs.curve_hz, suffix=" Hz")
        self.curve_hz.setToolTip("How often the ELBO curves and status bar update.")
        form.addRow("Curve updates:", self.curve_hz)

        self.latent_hz = QDoubleSpinBox(minimum=0.2, maximum=20, value=prefs.latent_hz,
                                        suffix=" Hz")
        self.latent_hz.setToolTip("How often the latent plane is redrawn with fresh mu/sigma.")
        form.addRow("Latent plane updates:", self.latent_hz)

        self.budget = QSpinBox(minimum=0, maximum=1_000_000, singleStep=1000,
                               value=prefs.ellipse_budget)
        self.budget.setToolTip("Most sigma ellipses drawn at once; the rest are thinned.")
        form.addRow("Ellipse budget:", self.budget)

        self.theme = QComboBox()
        self.theme.addItems(THEMES)
        self.theme.setCurrentText(prefs.theme)
        self.theme.setToolTip("'system' follows the operating system's light or dark mode.")
        form.addRow("Theme:", self.theme)

        self.autosave = QCheckBox("Save the session automatically on quit")
        self.autosave.setChecked(prefs.autosave_on_quit)
        form.addRow(self.autosave)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def preferences(self) -> Preferences:
        return Preferences(device=self.device.currentText(), torch_threads=self.threads.value(),
                           curve_hz=self.curve_hz.value(), latent_hz=self.latent_hz.value(),
                           ellipse_budget=self.budget.value(), theme=self.theme.currentText(),
                           autosave_on_quit=self.autosave.isChecked())
