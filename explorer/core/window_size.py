"""The first window's size and dock sizes, from the screen space available (a pure rule).

The window opens at DEFAULT_SIZE where that fits, and shrinks to the screen's available
geometry (less the window frame) where it does not, down to screens of MIN_SCREEN (1280x720),
with the side columns and the curves sized so the plane keeps most of the space.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SIZE = (1400, 860)
MIN_SCREEN = (1280, 720)  # the smallest screen the layout is made for
# The title bar and borders the window manager adds around the client area.
FRAME_ALLOWANCE = (16, 44)
MENU_AND_STATUS = 20 + 27  # menu bar and status bar heights at the default font


@dataclass(frozen=True)
class WindowLayout:
    width: int
    height: int
    left: int  # width of the left column (Training, Dataset)
    right: int  # width of the right column (Decoded image, Manifold, Inspector)
    curves: int  # height of the ELBO curves under the plane
    controls: int  # height of Training in the left column (Dataset takes the rest)
    image: int  # height of Decoded image in the right column (Manifold takes the rest)


def clamp(value: float, lo: int, hi: int) -> int:
    return int(round(min(max(value, lo), hi)))


def first_window_layout(available_width: int, available_height: int) -> WindowLayout:
    """The first window for a screen whose available geometry (without panels and task
    bars) is ``available_width`` x ``available_height`` pixels."""
    width = max(1, min(DEFAULT_SIZE[0], available_width - FRAME_ALLOWANCE[0]))
    height = max(1, min(DEFAULT_SIZE[1], available_height - FRAME_ALLOWANCE[1]))
    return layout_for_window(width, height)


def layout_for_window(width: int, height: int) -> WindowLayout:
    """Dock sizes for a window of ``width`` x ``height`` (the --size of a screenshot)."""
    column = max(1, height - MENU_AND_STATUS)  # what the docks share vertically
    wide = width > DEFAULT_SIZE[0]  # a big --size: the side columns may grow a little
    return WindowLayout(
        width=width, height=height,
        left=clamp(0.2 * width, 230, 300 if wide else 280),
        right=clamp(0.286 * width, 330, 480 if wide else 400),  # the Inspector needs 330
        curves=clamp(0.314 * height, 170, 270),
        controls=clamp(0.517 * column, 300, 420),
        image=clamp(0.37 * column, 220, 300),
    )
