"""User preferences: a dataclass persisted in QSettings, and the dialog that edits it."""

from __future__ import annotations

import dataclasses
import math
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


# The accepted range of each number (the dialog's too); a value read from disk outside it is
# clamped into it, and one that is not a number (or NaN) falls back to the default.
LIMITS = {"torch_threads": (1, 256), "curve_hz": (1.0, 60.0), "latent_hz": (0.2, 20.0),
          "ellipse_budget": (0, 1_000_000)}


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
            value = _parse(raw, getattr(prefs, f.name))
            if value is None:
                continue  # a hand-edited or stale value: keep the default
            if f.name in LIMITS:
                lo, hi = LIMITS[f.name]
                value = type(value)(min(max(value, lo), hi))
            setattr(prefs, f.name, value)
        if prefs.device not in available_devices():
            prefs.device = "cpu"
        if prefs.theme not in THEMES:
            prefs.theme = "system"
        return prefs

    def clamped(self) -> Preferences:
        """A copy with every number inside LIMITS (for values that did not come from disk)."""
        changes = {}
        for name, (lo, hi) in LIMITS.items():
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and math.isfinite(value)
            default = getattr(Preferences(), name)
            changes[name] = type(default)(min(max(value, lo), hi)) if ok else default
        return dataclasses.replace(self, **changes)

    def save(self, settings: QSettings) -> None:
        for f in dataclasses.fields(self):
            settings.setValue(f"preferences/{f.name}", getattr(self, f.name))
        settings.sync()


def _parse(raw, default):
    """``raw`` from QSettings as the type of ``default``, or None when it is not one."""
    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        return {"true": True, "false": False}.get(text)
    if isinstance(default, (int, float)):
        try:
            number = float(raw)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(number):
            return None
        if isinstance(default, int):
            return int(min(max(number, -2.0**62), 2.0**62))  # clamped by LIMITS after
        return number
    return raw if isinstance(raw, str) else None


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

        self.threads = QSpinBox(minimum=LIMITS["torch_threads"][0],
                                maximum=LIMITS["torch_threads"][1], value=prefs.torch_threads)
        self.threads.setToolTip("torch threads for training. 1 keeps the window responsive "
                                "on a 2-core machine.")
        form.addRow("Torch threads:", self.threads)

        self.curve_hz = QDoubleSpinBox(minimum=LIMITS["curve_hz"][0], maximum=LIMITS["curve_hz"][1],
                                       value=prefs.curve_hz, suffix=" Hz")
        self.curve_hz.setToolTip("How often the ELBO curves and status bar update.")
        form.addRow("Curve updates:", self.curve_hz)

        self.latent_hz = QDoubleSpinBox(minimum=LIMITS["latent_hz"][0],
                                        maximum=LIMITS["latent_hz"][1], value=prefs.latent_hz,
                                        suffix=" Hz")
        self.latent_hz.setToolTip("How often the latent plane is redrawn with fresh mu/sigma.")
        form.addRow("Latent plane updates:", self.latent_hz)

        self.budget = QSpinBox(minimum=LIMITS["ellipse_budget"][0],
                               maximum=LIMITS["ellipse_budget"][1], singleStep=1000,
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
