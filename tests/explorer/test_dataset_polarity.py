"""The window shows a folder dataset's polarity rule and applies it to dropped images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from test_bring_your_own import WAIT_MS, drop

from explorer.qt.views.dataset_panel import POLARITY_TEXT
from trainer import fit_fraction, load_source, preprocess_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trainer"))
from test_polarity import square, write_squares  # noqa: E402


def test_a_dropped_image_follows_the_folder_datasets_polarity(qtbot, make_window, tmp_path):
    folder = tmp_path / "squares"
    write_squares(folder)
    dataset = load_source(folder)
    w = make_window(dataset=dataset)
    assert w.dataset_panel.fields["polarity"].text() == POLARITY_TEXT[True]
    assert "polarity, decided for the whole dataset" in w.dataset_panel.fields["notes"].text()

    # Dark ink touching the border: on its own it would stay dark-on-light.
    path = tmp_path / "drop.png"
    Image.fromarray(square(16, 0, 0, 10)).save(path)
    with qtbot.waitSignal(w.encoded_panel.job.finished, timeout=WAIT_MS):
        drop(w.latent_view.viewport(), [path])
    (entry,) = w.encoded_panel.model.entries
    grey = square(16, 0, 0, 10).astype(np.float32) / 255
    fill = fit_fraction(dataset)
    ruled = preprocess_image(grey, (16, 16), fill, invert=True)
    alone = preprocess_image(grey, (16, 16), fill)
    assert np.abs(ruled - alone).max() > 0.5  # the rule makes a difference here
    np.testing.assert_allclose(entry.image.input, ruled, atol=1e-6)
    assert entry.image.input[0, 0] == 0.0  # bright ink on black
    assert "inverted, as every image of the dataset was" in entry.image.notes


def test_digits_leave_each_dropped_image_to_its_own_border(make_window):
    w = make_window()
    assert w.dataset_panel.fields["polarity"].text() == POLARITY_TEXT[None]
    assert np.isclose(w.state.current.dataset.pixels.max() * w.state.current.dataset.scale, 1.0)
