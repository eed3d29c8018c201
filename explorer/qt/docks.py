"""The window's docks: which panel goes where (``build_docks``), tabbed with which, and the
sizes of the first window or a --size screenshot (``first_layout``, ``apply_layout``)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QDockWidget, QMainWindow, QScrollArea, QWidget

from explorer.core.window_size import (
    DEFAULT_SIZE,
    MENU_AND_STATUS,
    WindowLayout,
    first_window_layout,
    layout_for_window,
)

RIGHT, LEFT = Qt.DockWidgetArea.RightDockWidgetArea, Qt.DockWidgetArea.LeftDockWidgetArea
BOTTOM = Qt.DockWidgetArea.BottomDockWidgetArea
# (name, title, area): the names that build_docks' ``widgets`` are keyed by.
DOCKS = (("image", "Decoded image", RIGHT), ("manifold", "Manifold", RIGHT),
         ("controls", "Training", LEFT), ("dataset", "Dataset", LEFT),
         ("elbo", "ELBO curves", BOTTOM), ("compare", "Compare runs", BOTTOM),
         ("encoded", "Encoded images", RIGHT), ("inspector", "Inspector", RIGHT),
         ("colouring", "Colour points", LEFT), ("dimensions", "Dimensions", RIGHT),
         ("strips", "Traversals", RIGHT))
TABBED = (("manifold", "encoded"), ("manifold", "inspector"), ("manifold", "strips"),
          ("dataset", "colouring"), ("manifold", "dimensions"))
SCROLLED = ("controls", "inspector", "dimensions", "strips")  # tall panels


def scrolled(widget: QWidget) -> QScrollArea:
    """A tall panel that scrolls rather than widening or lengthening its dock."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    return area


def build_docks(window: QMainWindow, widgets: dict[str, QWidget]) -> dict[str, QDockWidget]:
    """One dock per entry of DOCKS holding ``widgets[name]``, added to ``window``."""
    docks = {}
    for name, title, area in DOCKS:
        widget = widgets[name]
        dock = docks[name] = QDockWidget(title, window)
        dock.setObjectName(f"dock-{title}")  # saveState needs stable names
        dock.setWidget(scrolled(widget) if name in SCROLLED else widget)
        window.addDockWidget(area, dock)
    for first, other in TABBED:
        window.tabifyDockWidget(docks[first], docks[other])
    # The selected datapoint in every run, beside the curves (shown with two runs).
    window.splitDockWidget(docks["elbo"], docks["compare"], Qt.Orientation.Horizontal)
    docks["manifold"].raise_()
    docks["dataset"].raise_()
    # Side columns run the full height; the curves sit under the plane only.
    window.setCorner(Qt.Corner.BottomLeftCorner, LEFT)
    window.setCorner(Qt.Corner.BottomRightCorner, RIGHT)
    return docks


def first_layout() -> WindowLayout:
    """DEFAULT_SIZE, fitted to the screen's available geometry. Headless platforms (tests,
    --screenshot) have no person's screen: they keep DEFAULT_SIZE."""
    screen = QApplication.primaryScreen()
    if screen is None or QApplication.platformName() in ("offscreen", "minimal"):
        return layout_for_window(*DEFAULT_SIZE)
    available = screen.availableGeometry()
    return first_window_layout(available.width(), available.height())


def apply_layout(window: QMainWindow, docks: dict[str, QDockWidget],
                 layout: WindowLayout) -> None:
    """Resize the window and its docks (the first window, or a --size screenshot)."""
    window.resize(layout.width, layout.height)
    d = docks
    window.resizeDocks([d["controls"], d["image"]], [layout.left, layout.right],
                       Qt.Orientation.Horizontal)
    column = layout.height - MENU_AND_STATUS
    window.resizeDocks([d["image"], d["manifold"]], [layout.image, column - layout.image],
                       Qt.Orientation.Vertical)
    window.resizeDocks([d["controls"], d["dataset"]],
                       [layout.controls, column - layout.controls], Qt.Orientation.Vertical)
    window.resizeDocks([d["elbo"]], [layout.curves], Qt.Orientation.Vertical)
