"""The window draws grey images only (for now): a colour dataset is refused with one clear
message, from the Datasets menu and from the command line, and the run goes on."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.qt.app import open_startup
from trainer import DataError

WAIT_MS = 20_000


def test_a_colour_dataset_opened_in_the_window_is_refused(qtbot, make_window, digits, tmp_path):
    w = make_window()
    path = tmp_path / "colour.npz"
    np.savez(path, images=np.random.default_rng(0).integers(0, 256, (30, 12, 12, 3),
                                                            dtype=np.uint8))
    w.datasets.open_dataset(str(path))
    qtbot.waitUntil(lambda: not w.datasets.loader.is_running() and w.message_box is not None,
                    timeout=WAIT_MS)
    text = w.message_box.text()
    assert "colour images (3 channels) cannot be shown by the app yet" in text, text
    assert "sprites-grey" in text and f"Still training on {digits.name}" in text
    assert w.state.current.dataset is digits


def test_a_colour_dataset_on_the_command_line_is_one_error():
    with pytest.raises(DataError, match="colour images .* cannot be shown by the app yet"):
        open_startup("sprites", None, "cpu", 1)
    assert open_startup("sprites-grey", None, "cpu", 1).dataset.channels == 1
