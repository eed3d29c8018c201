"""Preferences and the window's remembered look: File > Preferences (explorer.qt.preferences)
applied at once (theme, ellipse budget, update rates) or from the next run (device, threads),
saved in the user's settings; the window's geometry, docks and sigma level restored on start
and saved on close.
"""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication, QDialog

from explorer.qt.preferences import Preferences, PreferencesDialog
from explorer.qt.theme import apply_theme, style_plot


class PreferencesController:
    """``prefs``: the preferences in force. ``settings``: where they and the window's look
    are kept (None: nothing is read or written, as for a screenshot)."""

    def __init__(self, window, settings: QSettings | None):
        self.window = window
        self.settings = settings
        self.prefs = Preferences.load(settings) if settings is not None else Preferences()
        self.dialog: PreferencesDialog | None = None  # the last one opened (tests, scripts)

    def open_dialog(self) -> None:
        dialog = PreferencesDialog(self.prefs, self.window)
        dialog.setWindowTitle("Preferences (device and threads apply from the next run "
                              "or Reset)")
        self.dialog = dialog
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.apply(dialog.preferences())

    def apply(self, prefs: Preferences) -> None:
        """Apply and persist: theme, ellipse budget and update rates at once; device and
        threads from the next reset or run."""
        w = self.window
        prefs = prefs.clamped()
        self.prefs = prefs
        if self.settings is not None:
            prefs.save(self.settings)
        app = QApplication.instance()
        if app is not None:
            apply_theme(app, prefs.theme)
            for plot in (w.latent_view, w.elbo_view.plot, w.manifold_view.plot):
                style_plot(plot)
        for plane in w.planes.planes():
            plane.view.set_ellipse_budget(prefs.ellipse_budget)
        w.trainers.set_rates(prefs.curve_hz, prefs.latent_hz)
        w.current_run.placement = {"device": prefs.device, "threads": prefs.torch_threads}
        w.status("Preferences saved; device and threads apply from the next Reset or run",
                 6000)

    # ------------------------------------------------------ the window's look
    def restore_window(self) -> None:
        s = self.settings
        if s is None:
            return
        geometry, state = s.value("window/geometry"), s.value("window/state")
        if geometry is not None:
            self.window.restoreGeometry(geometry)
        if state is not None:
            self.window.restoreState(state)
        level = s.value("view/sigma_level")
        if level is not None and str(level) in ("1", "2"):
            self.window.state.set_sigma_level(int(level))

    def save_window(self) -> None:
        s = self.settings
        if s is None:
            return
        s.setValue("window/geometry", self.window.saveGeometry())
        s.setValue("window/state", self.window.saveState())
        s.setValue("view/sigma_level", self.window.state.sigma_level)
        s.sync()
