"""Help > What am I looking at? (the explainer, with the live model's parameter counts) and
Help > About (the versions of the app and its libraries)."""

from __future__ import annotations

import platform

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QTextBrowser, QVBoxLayout, QWidget

from explorer.core.explainer import ParameterCounts, help_html


def versions() -> list[tuple[str, str]]:
    """(name, version) of the app and the libraries the About box lists."""
    from importlib.metadata import PackageNotFoundError, version

    import PySide6
    from PySide6.QtCore import qVersion

    def installed(name: str, fallback: str = "unknown") -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return fallback

    return [("Latent Explorer", installed("latent-explorer", "dev")),
            ("Python", platform.python_version()), ("torch", installed("torch")),
            ("PySide6 / Qt", f"{PySide6.__version__} / {qVersion()}"),
            ("pyqtgraph", installed("pyqtgraph")), ("numpy", np.__version__)]


def about_text() -> str:
    rows = "".join(f"<tr><td>{name}</td><td>{v}</td></tr>" for name, v in versions())
    return ("<p><b>Latent Explorer</b>: watch a VAE with a 2-D latent space learn.<br>"
            "Kingma &amp; Welling (2013), Auto-Encoding Variational Bayes.</p>"
            f"<table>{rows}</table>")


def help_dialog(parent: QWidget, counts: ParameterCounts) -> QDialog:
    """The explainer, shown non-modal (deleted on close)."""
    dialog = QDialog(parent)
    dialog.setWindowTitle("What am I looking at?")
    browser = QTextBrowser(dialog)
    browser.setOpenExternalLinks(True)
    browser.setHtml(help_html(counts))
    QVBoxLayout(dialog).addWidget(browser)
    dialog.resize(620, 560)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog
