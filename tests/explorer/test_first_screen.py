"""The first screen: the window fits the screen it opens on, down to 1280x720."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect
from PySide6.QtGui import QImage

from explorer.core.window_size import (
    DEFAULT_SIZE,
    FRAME_ALLOWANCE,
    MENU_AND_STATUS,
    first_window_layout,
)
from explorer.qt.app import main

SCREENS = [(1280, 720), (1366, 768), (1366, 728), (1440, 900), (1920, 1080), (3840, 2160)]


@pytest.mark.parametrize("screen", SCREENS)
def test_the_sizing_rule_fits_the_screen_and_leaves_the_plane_room(screen):
    layout = first_window_layout(*screen)
    assert layout.width <= screen[0] - FRAME_ALLOWANCE[0]
    assert layout.height <= screen[1] - FRAME_ALLOWANCE[1]
    assert (layout.width, layout.height) <= DEFAULT_SIZE
    plane_width = layout.width - layout.left - layout.right
    plane_height = layout.height - MENU_AND_STATUS - layout.curves
    assert plane_width >= 0.45 * layout.width and plane_height >= 0.5 * layout.height
    assert layout.right >= 330  # the Inspector's numbers
    column = layout.height - MENU_AND_STATUS
    assert 0 < layout.image < column and 0 < layout.controls < column


def test_a_big_screen_gets_the_default_size():
    layout = first_window_layout(1920, 1080)
    assert (layout.width, layout.height) == DEFAULT_SIZE
    assert (layout.left, layout.right, layout.curves) == (280, 400, 270)


def inside(outer: QRect, inner: QRect) -> bool:
    return outer.contains(inner.topLeft()) and outer.contains(inner.bottomRight())


def test_at_1280x720_the_status_bar_and_right_column_lie_inside_the_window(qtbot, make_window):
    w = make_window(start=False)
    w.apply_layout(first_window_layout(1280, 720))
    qtbot.waitUntil(lambda: w.size().height() < 700)
    window = w.rect()
    assert (w.width(), w.height()) == (1264, 676)  # not pushed out by the docks' minimum sizes
    bar = w.statusBar()
    assert bar.isVisible() and inside(window, bar.geometry())
    f = w.figures
    for label in (f.rate_label, f.epoch_label, f.train_label, f.heldout_label, f.epoch_bar):
        assert label.isVisible() and inside(bar.rect(), label.geometry()), label
    for name in ("image", "manifold", "controls", "dataset", "elbo"):
        dock = w.docks[name]
        assert dock.isVisible() and inside(window, dock.geometry()), name
    right = w.docks["image"].geometry()
    assert right.right() <= window.right() and right.width() >= 330
    assert w.latent_view.width() >= 500 and w.latent_view.height() >= 300


def test_screenshot_takes_a_size_and_a_theme(qapp, tmp_path):
    from explorer.qt.theme import apply_theme

    out = tmp_path / "shot.png"
    try:
        assert main(["digits", "--screenshot", str(out), "--steps", "5", "--size", "1366x768",
                     "--theme", "dark"]) == 0
    finally:
        apply_theme(qapp, "system")  # the theme is the application's: leave it as found
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1366, 768)
    window_colour = image.pixelColor(image.width() - 3, image.height() // 2)  # a dock's edge
    assert window_colour.lightness() < 80, window_colour.name()


def test_a_bad_size_is_a_one_line_error(qapp, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["digits", "--screenshot", "x.png", "--size", "big"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--size" in err and "WIDTHxHEIGHT" in err


def test_a_bigger_window_gives_the_side_columns_a_little_more_room():
    from explorer.core.window_size import layout_for_window

    small, big = layout_for_window(*DEFAULT_SIZE), layout_for_window(1920, 1080)
    assert (small.left, small.right) == (280, 400)
    assert (big.left, big.right) == (300, 480)
    assert big.width - big.left - big.right > small.width - small.left - small.right
