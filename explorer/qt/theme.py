"""Light and dark palettes (Fusion style), following the OS unless the user picks one."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from explorer.qt.views.legend import OutsideLegend

# (role, dark colour, light colour); light values are Fusion's own defaults.
_ROLES = [
    (QPalette.ColorRole.Window, "#2b2d31", "#efefef"),
    (QPalette.ColorRole.WindowText, "#e6e6e6", "#000000"),
    (QPalette.ColorRole.Base, "#1e1f22", "#ffffff"),
    (QPalette.ColorRole.AlternateBase, "#2f3136", "#f7f7f7"),
    (QPalette.ColorRole.ToolTipBase, "#3a3c42", "#ffffdc"),
    (QPalette.ColorRole.ToolTipText, "#e6e6e6", "#000000"),
    (QPalette.ColorRole.Text, "#e6e6e6", "#000000"),
    (QPalette.ColorRole.PlaceholderText, "#8a8d93", "#7f7f7f"),
    (QPalette.ColorRole.Button, "#35373c", "#efefef"),
    (QPalette.ColorRole.ButtonText, "#e6e6e6", "#000000"),
    (QPalette.ColorRole.BrightText, "#ff6b6b", "#ff0000"),
    (QPalette.ColorRole.Link, "#6cb6ff", "#0b57d0"),
    (QPalette.ColorRole.Highlight, "#3d7eff", "#308cc6"),
    (QPalette.ColorRole.HighlightedText, "#ffffff", "#ffffff"),
]


def system_prefers_dark() -> bool:
    scheme = QGuiApplication.styleHints().colorScheme()
    return scheme == Qt.ColorScheme.Dark


def palette(dark: bool) -> QPalette:
    pal = QPalette()
    for role, dark_colour, light_colour in _ROLES:
        pal.setColor(role, QColor(dark_colour if dark else light_colour))
    disabled = QColor("#6b6e75" if dark else "#a0a0a0")
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText,
                 QPalette.ColorRole.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return pal


def apply_theme(app: QApplication, theme: str) -> bool:
    """Apply 'system', 'dark' or 'light' to the whole app; returns whether it is dark.

    Plots created afterwards pick up the colours through pyqtgraph's config; existing
    ones are recoloured with ``style_plot``.
    """
    dark = system_prefers_dark() if theme == "system" else theme == "dark"
    app.setStyle("Fusion")
    pal = palette(dark)
    app.setPalette(pal)
    pg.setConfigOptions(background=pal.color(QPalette.ColorRole.Base),
                        foreground=pal.color(QPalette.ColorRole.WindowText))
    return dark


def style_plot(plot: pg.PlotWidget) -> None:
    """Recolour an existing plot with the current palette, all at once: its background, every
    axis in its scene (the colour bar's too) with its label, and every legend's text."""
    pal = QApplication.palette()
    fg = pal.color(QPalette.ColorRole.WindowText)
    plot.setBackground(pal.color(QPalette.ColorRole.Base))
    for item in plot.scene().items():
        if isinstance(item, pg.AxisItem):
            item.setPen(fg)
            item.setTextPen(fg)  # also the axis label's colour
        elif isinstance(item, OutsideLegend):
            item.restyle()
        elif isinstance(item, pg.LegendItem):
            item.setLabelTextColor(fg)
            for _, label in item.items:
                label.setText(label.text, color=fg)
    restyle = getattr(plot, "restyle", None)
    if callable(restyle):  # what only the plot itself knows (LatentView: its value colours)
        restyle()
