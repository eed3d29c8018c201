"""The desktop app of Latent Explorer: PySide6 + pyqtgraph views over trainer."""
